"""``contentd content ...``: ctr's content commands, through the proxy client.

``ls``, ``active``, ``rm`` and ``label`` print what ``ctr content`` prints;
``info``, ``abort``, ``get --offset/--size/-o`` and a resumable ``ingest``
are new. Every command works against ``contentd serve`` and containerd alike.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import time
from typing import IO, TYPE_CHECKING, BinaryIO, Final

from contentd.cli.parser import (
    add_command,
    duration,
    group,
    label_pair,
    nonnegative,
    parse_label_args,
)

if TYPE_CHECKING:
    from datetime import datetime

    from contentd.cli.context import Context
    from contentd.content.types import Info
    from contentd.proxy.writer import ProxyWriter

__all__ = ["CHUNK", "add_commands"]

#: Bytes per read or write call.
CHUNK: Final = 1 << 20


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    content = group(
        commands,
        "content",
        help="manage blobs in the content store (ctr content)",
        example="contentd content ls",
    )

    ls = add_command(
        content,
        "ls",
        aliases=["list"],
        help="list blobs: DIGEST SIZE AGE LABELS",
        example="contentd content ls 'labels.\"containerd.io/gc.root\"'",
        handler=run_ls,
    )
    ls.add_argument("-q", "--quiet", action="store_true", help="print only the digests")
    ls.add_argument(
        "filters", nargs="*", metavar="FILTER", help="containerd filters (any may match)"
    )

    info = add_command(
        content,
        "info",
        help="show a blob's size, times and labels",
        example="contentd content info sha256:e3b0c442...",
        handler=run_info,
    )
    info.add_argument("digests", nargs="+", metavar="DIGEST")

    get = add_command(
        content,
        "get",
        help="write a blob (or a range of it) to stdout or a file",
        example="contentd content get sha256:e3b0c442... -o blob.bin",
        handler=run_get,
    )
    get.add_argument("digest", metavar="DIGEST")
    get.add_argument("--offset", type=nonnegative, default=0, metavar="N", help="start at byte N")
    get.add_argument("--size", type=nonnegative, metavar="N", help="at most N bytes")
    get.add_argument(
        "-o",
        "--output-file",
        dest="output_file",
        metavar="FILE",
        help="write to FILE (atomically; '-' is stdout, the default)",
    )

    ingest = add_command(
        content,
        "ingest",
        help="store a file or stdin under a ref; re-running resumes an interrupted ingest",
        example="contentd content ingest my-ref --label containerd.io/gc.root=x < blob.bin",
        handler=run_ingest,
    )
    ingest.add_argument("ref", metavar="REF", help="the ingest's name (its transaction ref)")
    ingest.add_argument("source", nargs="?", default="-", metavar="FILE", help="default: stdin")
    ingest.add_argument(
        "--expected-size", type=nonnegative, metavar="N", help="the commit checks the size"
    )
    ingest.add_argument(
        "--expected-digest",
        metavar="DIGEST",
        help="the commit checks the digest; a blob already stored is not sent again",
    )
    ingest.add_argument(
        "--label",
        action="append",
        type=label_pair,
        default=[],
        metavar="K=V",
        help="label for the committed blob (repeatable)",
    )
    ingest.add_argument("--lease", metavar="ID", help="hold the ingest and blob with this lease")
    ingest.add_argument(
        "--wait",
        type=duration,
        default=2.0,
        metavar="D",
        help="how long to retry while another writer holds the ref (default 2s)",
    )

    active = add_command(
        content,
        "active",
        help="list ingests in progress: REF SIZE AGE",
        example="contentd content active 'ref~=layer'",
        handler=run_active,
    )
    active.add_argument("-t", "--timeout", type=duration, metavar="D", help="give up after D")
    active.add_argument("filters", nargs="*", metavar="FILTER", help="e.g. ref==my-ref")

    rm = add_command(
        content,
        "rm",
        aliases=["delete", "del", "remove"],
        help="delete blobs (ones that are not there are skipped)",
        example="contentd content rm sha256:e3b0c442...",
        handler=run_rm,
    )
    rm.add_argument("digests", nargs="+", metavar="DIGEST")

    label = add_command(
        content,
        "label",
        help="set (k=v, or k for k=true) or remove (k=) labels of a blob",
        example="contentd content label sha256:e3b0c442... containerd.io/gc.root=now old=",
        handler=run_label,
    )
    label.add_argument("digest", metavar="DIGEST")
    label.add_argument("labels", nargs="*", metavar="K=V")

    abort = add_command(
        content,
        "abort",
        help="abort an ingest in progress and drop its data",
        example="contentd content abort my-ref",
        handler=run_abort,
    )
    abort.add_argument("ref", metavar="REF")


# -- helpers ---------------------------------------------------------------------------


def _validate(digest: str) -> str:
    from contentd.content.digest import validate

    return validate(digest)


def _age(now: float, t: datetime) -> str:
    from contentd.cli.output import human_duration

    return human_duration(now - t.timestamp())


# -- ls, info --------------------------------------------------------------------------


def run_ls(ctx: Context) -> int:
    """One List stream, read as it comes; the table is built from the messages themselves
    (no Info objects), which keeps ``ls`` of many thousand blobs quick."""
    ctx.check_socket()  # first: a missing socket fails before anything loads
    from contentd.api._pb.containerd.services.content.v1 import content_pb2 as pb
    from contentd.cli.output import AgeCache, SizeCache, TimestampText, json_line, table

    messages = ctx.quick_stream(
        "/containerd.services.content.v1.Content/List",
        pb.ListContentRequest(filters=ctx.args.filters),
        pb.ListContentResponse,
    )
    if ctx.args.quiet:
        ctx.write("".join(f"{m.digest}\n" for response in messages for m in response.info))
        return 0
    if ctx.json:  # info_to_json(info_from_pb(m)), without the objects in between
        stamp = TimestampText()
        for response in messages:
            ctx.write(
                "".join(
                    json_line(
                        {
                            "digest": m.digest,
                            "size": m.size,
                            "created_at": stamp(
                                m.created_at.seconds,
                                m.created_at.nanos,
                                m.HasField("created_at"),
                            ),
                            "updated_at": stamp(
                                m.updated_at.seconds,
                                m.updated_at.nanos,
                                m.HasField("updated_at"),
                            ),
                            "labels": dict(m.labels),
                        }
                    )
                    for m in response.info
                )
            )
        return 0
    size_text = SizeCache()
    age_text = AgeCache(time.time_ns())
    rows: list[tuple[str, str, str, str]] = []
    add = rows.append
    pair = "=".join
    for response in messages:
        for m in response.info:
            created = m.created_at
            labels = m.labels
            add(
                (
                    m.digest,
                    size_text(m.size),
                    age_text(created.seconds, created.nanos),
                    ",".join(sorted(map(pair, labels.items()))) if labels else "-",
                )
            )
    ctx.write(table(("DIGEST", "SIZE", "AGE", "LABELS"), rows))
    return 0


def _info_text(info: Info, now: float) -> str:
    from contentd.cli.output import format_time, human_size

    labels = sorted((info.labels or {}).items())
    lines = [
        f"digest   {info.digest}",
        f"size     {info.size} ({human_size(info.size)})",
        f"created  {format_time(info.created_at)} ({_age(now, info.created_at)} ago)",
        f"updated  {format_time(info.updated_at)} ({_age(now, info.updated_at)} ago)",
    ]
    if not labels:
        lines.append("labels   -")
    for i, (key, value) in enumerate(labels):
        lines.append(f"{'labels' if i == 0 else '':<8} {key}={value}")
    return "\n".join(lines) + "\n"


def run_info(ctx: Context) -> int:
    from contentd.cli.output import info_to_json, json_line

    digests = [_validate(d) for d in ctx.args.digests]
    store = ctx.store()
    now = time.time()
    for i, digest in enumerate(digests):
        info = store.info(digest)
        if ctx.json:
            ctx.write(json_line(info_to_json(info)))
        else:
            ctx.write(("\n" if i else "") + _info_text(info, now))
    return 0


# -- get ---------------------------------------------------------------------------------


class _Destination:
    """Where ``get`` writes: stdout, a device/FIFO as it is, or a regular file replaced
    atomically once the blob is complete."""

    def __init__(self, ctx: Context, path: str | None) -> None:
        self.path = path
        self.tmp: str | None = None
        self.file: BinaryIO | None = None
        if path is None or path == "-":
            self.stream: IO[bytes] = ctx.streams.out
            self.path = None
            return
        target = os.path.abspath(path)
        if os.path.exists(target) and not os.path.isfile(target):
            self.file = open(target, "wb")  # noqa: SIM115 - closed in finish/discard
        else:
            directory, name = os.path.split(target)
            self.tmp = os.path.join(directory, f".{name}.contentd-{os.getpid()}.part")
            self.file = open(self.tmp, "wb")  # noqa: SIM115 - closed in finish/discard
        self.stream = self.file

    @property
    def is_file(self) -> bool:
        return self.path is not None

    def finish(self) -> None:
        if self.file is None:
            self.stream.flush()
            return
        self.file.close()
        if self.tmp is not None and self.path is not None:
            os.replace(self.tmp, self.path)

    def discard(self) -> None:
        if self.file is not None:
            self.file.close()
        if self.tmp is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.tmp)


def run_get(ctx: Context) -> int:
    import hashlib

    from contentd.cli.progress import Progress
    from contentd.content.errors import DigestMismatch, OutOfRange, Unknown

    args = ctx.args
    digest = _validate(args.digest)
    reader = ctx.store().reader_at(digest)
    size = reader.size
    start: int = args.offset
    if start > size:
        raise OutOfRange(f"offset {start} is past the end of {digest} ({size} bytes)")
    end = size if args.size is None else min(size, start + args.size)
    whole = start == 0 and end == size
    algorithm, _, encoded = digest.partition(":")
    hasher = hashlib.new(algorithm) if whole else None
    dest = _Destination(ctx, args.output_file)
    progress = Progress(
        ctx.streams.err,
        digest[:19],
        end - start,
        enabled=dest.is_file and ctx.streams.err_is_tty,
    )
    try:
        with progress:
            pos = start
            while pos < end:
                chunk = reader.read_at(pos, min(CHUNK, end - pos))
                if not chunk:
                    raise Unknown(f"unexpected EOF: {digest} ended at {pos} of {size} bytes")
                dest.stream.write(chunk)
                if hasher is not None:
                    hasher.update(chunk)
                pos += len(chunk)
                progress.advance(len(chunk))
        if hasher is not None and hasher.hexdigest() != encoded:
            got = f"{algorithm}:{hasher.hexdigest()}"
            raise DigestMismatch(digest, got, f"read {got} from the server, expected {digest}")
        dest.finish()
    except BaseException:
        dest.discard()
        raise
    return 0


# -- ingest ------------------------------------------------------------------------------


def _open_writer(ctx: Context, ref: str, total: int, expected: str | None) -> ProxyWriter:
    """Open the ref, retrying while it is locked for up to ``--wait``."""
    import random

    from contentd.cli.errors import is_connect_failure
    from contentd.content.errors import Unavailable

    store = ctx.store()
    deadline = time.monotonic() + ctx.args.wait
    pause = 0.02
    while True:
        try:
            return store.writer(ref, total=total, expected=expected)
        except Unavailable as err:
            if is_connect_failure(err):
                raise
            if time.monotonic() >= deadline:
                raise err.wrap(
                    f"another writer holds {ref} (retry later, or drop its data with "
                    f"`contentd content abort {ref}`)"
                ) from None
        time.sleep(random.uniform(pause / 2, pause))
        pause = min(pause * 2, 0.5)


def _skip(source: BinaryIO, offset: int, ref: str) -> None:
    """Move ``source`` past what the ref already holds: seek, or read and discard."""
    from contentd.content.errors import FailedPrecondition

    if _seekable(source):
        end = source.seek(0, os.SEEK_END)
        if end < offset:
            raise FailedPrecondition(
                f"ref {ref} already holds {offset} bytes, more than the input's {end}; "
                f"start over with `contentd content abort {ref}`"
            )
        source.seek(offset, os.SEEK_SET)
        return
    left = offset
    while left > 0:
        chunk = source.read(min(left, CHUNK))
        if not chunk:
            raise FailedPrecondition(
                f"ref {ref} already holds {offset} bytes, more than the input's "
                f"{offset - left}; start over with `contentd content abort {ref}`"
            )
        left -= len(chunk)


def _seekable(stream: BinaryIO) -> bool:
    try:
        return stream.seekable()
    except (AttributeError, ValueError, OSError):
        return False


def _has_fileno(stream: BinaryIO) -> bool:
    try:
        stream.fileno()
    except (AttributeError, ValueError, OSError):
        return False
    return True


def _input_size(source: BinaryIO) -> int | None:
    if not _has_fileno(source):
        return None
    st = os.fstat(source.fileno())
    import stat

    return st.st_size if stat.S_ISREG(st.st_mode) else None


def run_ingest(ctx: Context) -> int:
    from contentd.cli.errors import UsageError
    from contentd.cli.output import json_line
    from contentd.cli.progress import Progress
    from contentd.content.errors import AlreadyExists

    args = ctx.args
    ref: str = args.ref
    if not ref:
        raise UsageError("must specify a transaction reference")
    expected = _validate(args.expected_digest) if args.expected_digest else None
    labels = dict(args.label)
    source: BinaryIO
    if args.source == "-":
        source = ctx.streams.inp
        close_source = False
    else:
        source = open(args.source, "rb")  # noqa: SIM115 - closed below
        close_source = True
    try:
        input_size = _input_size(source)
        total = args.expected_size or input_size or 0
        try:
            writer = _open_writer(ctx, ref, total, expected)
        except AlreadyExists:
            _report_ingest(ctx, ref, expected or "", args.expected_size)
            return 0
        try:
            offset = writer.status().offset
            if offset:
                _skip(source, offset, ref)
            progress = Progress(
                ctx.streams.err,
                ref if len(ref) <= 24 else ref[:23] + "\u2026",
                total or None,
                done=offset,
                enabled=ctx.streams.err_is_tty,
            )
            with progress:
                while True:
                    chunk = source.read(CHUNK)
                    if not chunk:
                        break
                    writer.write(chunk)
                    progress.advance(len(chunk))
            size = writer.status().offset
            with contextlib.suppress(AlreadyExists):
                writer.commit(args.expected_size or 0, expected, labels or None)
            digest = writer.digest() or expected or ""
        finally:
            writer.close()
    finally:
        if close_source:
            source.close()
    if ctx.json:
        ctx.write(json_line({"ref": ref, "digest": digest, "size": size}))
    else:
        ctx.write(f"{digest}\n")
    return 0


def _report_ingest(ctx: Context, ref: str, digest: str, size: int | None) -> None:
    from contentd.cli.output import json_line

    if ctx.json:
        ctx.write(json_line({"ref": ref, "digest": digest, "size": size}))
    elif digest:
        ctx.write(f"{digest}\n")


# -- active, rm, label, abort ---------------------------------------------------------------


def run_active(ctx: Context) -> int:
    from contentd.api._pb.containerd.services.content.v1 import content_pb2 as pb
    from contentd.api._pb.containerd.services.content.v1 import content_pb2_grpc as pb_grpc
    from contentd.api.convert import status_from_pb
    from contentd.cli.output import human_size, json_line, status_to_json, table

    stub = pb_grpc.ContentStub(ctx.channel())
    response = ctx.call(
        stub.ListStatuses,
        pb.ListStatusesRequest(filters=ctx.args.filters),
        timeout=ctx.args.timeout or None,
    )
    statuses = [status_from_pb(s) for s in response.statuses]
    if ctx.json:
        ctx.write("".join(json_line(status_to_json(s)) for s in statuses))
        return 0
    now = time.time()
    rows = [(s.ref, human_size(s.offset), _age(now, s.started_at)) for s in statuses]
    ctx.write(table(("REF", "SIZE", "AGE"), rows, trailing_tab=True))
    return 0


def run_rm(ctx: Context) -> int:
    from contentd.cli.errors import connection_lost, report
    from contentd.cli.output import json_line
    from contentd.content.errors import ContentError, NotFound

    status = 0
    store = None
    for arg in ctx.args.digests:
        try:
            digest = _validate(arg)
            store = store or ctx.store()
            store.delete(digest)
        except NotFound:
            continue
        except ContentError as err:
            if connection_lost(err):
                raise
            status = status or report(err, ctx.streams.err, debug=ctx.debug)
            continue
        ctx.write(json_line({"digest": digest}) if ctx.json else f"{digest}\n")
    return status


def run_label(ctx: Context) -> int:
    from contentd.cli.output import info_to_json, json_line, labels_text
    from contentd.content.types import Info

    digest = _validate(ctx.args.digest)
    labels = parse_label_args(ctx.args.labels)
    store = ctx.store()
    if labels:
        paths = [f"labels.{key}" for key in labels]
        update = Info(digest=digest, labels={k: v for k, v in labels.items() if v})
        info = store.update(update, *paths)
    else:
        info = store.info(digest)
    if ctx.json:
        ctx.write(json_line(info_to_json(info)))
    else:
        ctx.write(labels_text(info.labels, empty="") + "\n")
    return 0


def run_abort(ctx: Context) -> int:
    ctx.store().abort(ctx.args.ref)
    return 0
