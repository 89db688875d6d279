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
from collections.abc import Iterable, Iterator
from typing import IO, TYPE_CHECKING, Any, BinaryIO, Final

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
        "--expected-size", type=nonnegative, metavar="N", help="the commit checks the size (0 too)"
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
        "--restart",
        action="store_true",
        help="discard what an earlier, interrupted ingest of REF holds and start over",
    )
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
    active.add_argument(
        "-t", "--timeout", type=duration, metavar="D", help="give up after D (0: no limit)"
    )
    active.add_argument("filters", nargs="*", metavar="FILTER", help="e.g. ref==my-ref")

    rm = add_command(
        content,
        "rm",
        aliases=["delete", "del", "remove"],
        help="delete blobs (ones that are not there are skipped, with a warning)",
        example="contentd content rm sha256:e3b0c442...",
        handler=run_rm,
        description=(
            "Delete blobs and print each digest removed. A digest that is not there is\n"
            "skipped with a warning on stderr and the others still go: the exit status is 0,\n"
            "as `ctr content rm`'s (which skips it in silence). Other failures exit 1."
        ),
    )
    rm.add_argument("digests", nargs="+", metavar="DIGEST")
    rm.add_argument(
        "--force",
        "-f",
        action="store_true",
        help="also in a namespace labelled contentd.io/gc.managed-externally=true",
    )

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


def _validate(digest: str, what: str = "DIGEST") -> str:
    """``digest`` if valid; else InvalidArgument naming the argument and the value."""
    from contentd.content.digest import validate
    from contentd.content.errors import InvalidArgument

    try:
        return validate(digest)
    except InvalidArgument as err:
        message = f"{what} {digest!r}: {err.context}"
        # a hex copied without its algorithm, in capitals, or with a space around it
        meant = digest.strip().lower()
        if ":" not in meant:
            meant = f"sha256:{meant}"
        with contextlib.suppress(InvalidArgument):
            message += f"; did you mean {validate(meant)}?"
        raise InvalidArgument(message) from None


def _age(now: float, t: datetime) -> str:
    from contentd.cli.output import human_duration

    return human_duration(now - t.timestamp())


# -- ls, info --------------------------------------------------------------------------


def run_ls(ctx: Context) -> int:
    """One List stream, read as it comes; the table is built from the messages themselves
    (no Info objects), which keeps ``ls`` of many thousand blobs quick."""
    ctx.check_socket()  # first: a missing socket fails before anything loads
    from contentd.api._pb.containerd.services.content.v1 import content_pb2 as pb
    from contentd.cli.output import AgeCache, SizeCache, table

    messages = ctx.quick_stream(
        "/containerd.services.content.v1.Content/List",
        pb.ListContentRequest(filters=ctx.args.filters),
        pb.ListContentResponse,
    )
    if ctx.args.quiet:
        ctx.write("".join(f"{m.digest}\n" for response in messages for m in response.info))
        return 0
    if ctx.json:
        ctx.emit_list(_json_infos(ctx, messages))
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


def _json_infos(ctx: Context, messages: Iterable[Any]) -> Iterator[dict[str, Any]]:
    """``content ls`` objects with the fields and values of ``content info``.

    containerd's List sends no update time (the zero time), so each blob's comes from
    an Info call, all on one connection once the listing has been read. A blob deleted
    in between is left out.
    """
    from contentd.api._pb.containerd.services.content.v1 import content_pb2 as pb
    from contentd.cli.output import TimestampText
    from contentd.content.errors import NotFound

    listed = [m for response in messages for m in response.info]
    stamp = TimestampText()
    with ctx.quick_unary(
        "/containerd.services.content.v1.Content/Info", pb.InfoResponse
    ) as info_call:
        for m in listed:
            try:
                updated = info_call(pb.InfoRequest(digest=m.digest)).info.updated_at
            except NotFound:
                continue
            yield {
                "digest": m.digest,
                "size": m.size,
                "created_at": stamp(
                    m.created_at.seconds, m.created_at.nanos, m.HasField("created_at")
                ),
                "updated_at": stamp(updated.seconds, updated.nanos, True),
                "labels": dict(m.labels),
            }


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
    """One blob: an object; several: a list (with ``--output json``)."""
    from contentd.cli.output import info_to_json

    digests = [_validate(d) for d in ctx.args.digests]
    store = ctx.store()
    if ctx.json:
        infos = (info_to_json(store.info(digest)) for digest in digests)
        if len(digests) == 1:
            ctx.emit(next(infos))
        else:
            ctx.emit_list(infos)
        return 0
    now = time.time()
    for i, digest in enumerate(digests):
        ctx.write(("\n" if i else "") + _info_text(store.info(digest), now))
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
            tmp = os.path.join(directory, f".{name}.contentd-{os.getpid()}.part")
            try:
                self.file = open(tmp, "wb")  # noqa: SIM115 - closed in finish/discard
            except OSError as err:  # named for the path asked for, not the temp file
                raise OSError(err.errno, err.strerror, path) from err
            self.tmp = tmp
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


class _Input:
    """The input's chunks; :meth:`skip` hashes the first bytes (what a resumed ingest
    already holds) and the rest come from iterating."""

    def __init__(self, source: BinaryIO) -> None:
        from contentd.cli.interrupt import read_interruptibly

        self._chunks = read_interruptibly(source, CHUNK)
        self._held = b""

    def skip(self, n: int, hasher: Any) -> int:
        """Read and hash up to ``n`` bytes; how many there were."""
        left = n
        while left:
            chunk = self._held or next(self._chunks, b"")
            if not chunk:
                break
            used = chunk[:left]
            hasher.update(used)
            left -= len(used)
            self._held = chunk[len(used) :]
        return n - left

    def __iter__(self) -> Iterator[bytes]:
        if self._held:
            held, self._held = self._held, b""
            yield held
        yield from self._chunks


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


def _check_resumed(writer: ProxyWriter, ref: str, offset: int, data: _Input, hasher: Any) -> int:
    """Hash as much of the input as the ingest already holds and compare it with the
    digest the daemon reported for what it holds; the offset to go on from.

    A different input under the same ref (or a changed file) is refused: appending
    to it would commit one file's head with another's tail.
    """
    from contentd.content.errors import FailedPrecondition

    if not offset:
        return 0
    held = writer.digest()
    restart = f"start over with `contentd content ingest --restart {ref} ...`"
    got = data.skip(offset, hasher)
    if got < offset:
        raise FailedPrecondition(
            f"ref {ref} already holds {offset} bytes, more than the input's {got}; {restart}"
        )
    mine = f"{hasher.name}:{hasher.hexdigest()}"
    if mine != held:
        raise FailedPrecondition(
            f"ref {ref} holds {offset} bytes that are not the input's first {offset} bytes "
            f"({held or 'no digest reported'} != {mine}): was another input ingested under "
            f"this ref? {restart}, or use another ref"
        )
    return offset


def _set_labels(ctx: Context, digest: str, labels: dict[str, str]) -> None:
    """Labels for a blob that was stored already: an Update, said on stderr."""
    from contentd.content.types import Info

    if not labels:
        return
    ctx.store().update(Info(digest=digest, labels=labels), *(f"labels.{k}" for k in labels))
    text = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
    ctx.warn(f"{digest} was already stored; labels set: {text}")


def run_ingest(ctx: Context) -> int:
    import hashlib

    from contentd.cli.errors import UsageError
    from contentd.cli.interrupt import raise_if_interrupted
    from contentd.cli.progress import Progress
    from contentd.content.errors import AlreadyExists, FailedPrecondition, NotFound, SizeMismatch

    args = ctx.args
    ref: str = args.ref
    if not ref:
        raise UsageError("must specify a transaction reference")
    expected = None
    if args.expected_digest:
        expected = _validate(args.expected_digest, "--expected-digest")
    labels: dict[str, str] = dict(args.label)  # each checked by the parser
    source: BinaryIO
    if args.source == "-":
        source = ctx.streams.inp
        close_source = False
    else:
        source = open(args.source, "rb")  # noqa: SIM115 - closed below
        close_source = True
    try:
        input_size = _input_size(source)
        if args.expected_size is not None and input_size not in (None, args.expected_size):
            raise FailedPrecondition(
                f"{args.source} holds {input_size} bytes, not the --expected-size "
                f"{args.expected_size}"
            )
        if args.source == "-" and _isatty(source):
            ctx.warn("reading stdin (Ctrl-D to end)")
        total = args.expected_size or input_size or 0
        try:
            writer = _open_writer(ctx, ref, total, expected)
        except AlreadyExists:  # the expected blob is stored: nothing to send
            assert expected is not None
            size = ctx.store().info(expected).size
            _set_labels(ctx, expected, labels)
            _report_ingest(ctx, ref, expected, size)
            return 0
        try:
            held = writer.status().offset
            if held and args.restart:
                writer.close()
                with contextlib.suppress(NotFound):
                    ctx.store().abort(ref)
                ctx.warn(f"discarded {held} bytes of a previous ingest of {ref}")
                writer = _open_writer(ctx, ref, total, expected)
                held = writer.status().offset
            data = _Input(source)
            algorithm = (writer.digest() or "sha256:").partition(":")[0]
            hasher = hashlib.new(algorithm)
            offset = _check_resumed(writer, ref, held, data, hasher)
            if offset:
                ctx.warn(f"resuming {ref} at {offset} of {total or 'unknown'} bytes")
            progress = Progress(
                ctx.streams.err,
                ref if len(ref) <= 24 else ref[:23] + "\u2026",
                total or None,
                done=offset,
                enabled=ctx.streams.err_is_tty,
            )
            with progress:
                for chunk in data:
                    hasher.update(chunk)
                    writer.write(chunk)
                    progress.advance(len(chunk))
            raise_if_interrupted()  # never commit after Ctrl-C, even one a finalizer ate
            size = writer.status().offset
            digest = f"{hasher.name}:{hasher.hexdigest()}"
            if args.expected_size == 0 and size:
                # the commit takes a size of 0 for "not checked" (as containerd's does):
                # --expected-size 0 must not pass whatever a pipe brought
                raise SizeMismatch(
                    0, size, f'commit failed: "{ref}" failed size validation: {size} != 0'
                )
            try:
                writer.commit(args.expected_size or 0, expected, labels or None)
            except AlreadyExists:
                _set_labels(ctx, digest, labels)
        except BaseException:
            writer.cancel()  # the daemon keeps the ingest: running the command again resumes
            raise
        finally:
            writer.close()
    finally:
        if close_source:
            source.close()
    _report_ingest(ctx, ref, digest, size)
    return 0


def _isatty(stream: BinaryIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError, OSError):
        return False


def _report_ingest(ctx: Context, ref: str, digest: str, size: int) -> None:
    if ctx.json:
        ctx.emit({"ref": ref, "digest": digest, "size": size})
    else:
        ctx.write(f"{digest}\n")


# -- active, rm, label, abort ---------------------------------------------------------------


def run_active(ctx: Context) -> int:
    from contentd.api._pb.containerd.services.content.v1 import content_pb2 as pb
    from contentd.api._pb.containerd.services.content.v1 import content_pb2_grpc as pb_grpc
    from contentd.api.convert import status_from_pb
    from contentd.cli.output import human_size, status_to_json, table

    stub = pb_grpc.ContentStub(ctx.channel())
    response = ctx.call(
        stub.ListStatuses,
        pb.ListStatusesRequest(filters=ctx.args.filters),
        timeout=ctx.args.timeout or None,
    )
    statuses = [status_from_pb(s) for s in response.statuses]
    if ctx.json:
        ctx.emit_list(status_to_json(s) for s in statuses)
        return 0
    now = time.time()
    rows = [(s.ref, human_size(s.offset), _age(now, s.started_at)) for s in statuses]
    ctx.write(table(("REF", "SIZE", "AGE"), rows, trailing_tab=True))
    return 0


def _refuse_managed_namespace(ctx: Context) -> None:
    """FailedPrecondition when the namespace's blobs are another daemon's to delete."""
    from contentd.api._pb.containerd.services.namespaces.v1 import namespace_pb2 as pb
    from contentd.api._pb.containerd.services.namespaces.v1 import namespace_pb2_grpc
    from contentd.content.errors import FailedPrecondition, NotFound
    from contentd.metadata.namespaces import LABEL_GC_MANAGED_EXTERNALLY

    stub = namespace_pb2_grpc.NamespacesStub(ctx.channel())
    try:
        namespace = ctx.call(stub.Get, pb.GetNamespaceRequest(name=ctx.namespace)).namespace
    except NotFound:
        return
    if namespace.labels.get(LABEL_GC_MANAGED_EXTERNALLY) == "true":
        raise FailedPrecondition(
            f"namespace {ctx.namespace} is labelled {LABEL_GC_MANAGED_EXTERNALLY}=true: its "
            "blobs are managed by the containerd that uses contentd as its content store, "
            "which still references them; delete them through containerd, or pass --force"
        )


def run_rm(ctx: Context) -> int:
    from contentd.cli.errors import connection_lost, report
    from contentd.content.errors import ContentError, NotFound

    if not ctx.args.force:
        _refuse_managed_namespace(ctx)
    status = 0
    store = None
    removed: list[dict[str, str]] = []
    for arg in ctx.args.digests:
        try:
            digest = _validate(arg)
            store = store or ctx.store()
            store.delete(digest)
        except NotFound:
            # ctr content rm skips it in silence (exit 0); a warning on stderr says why
            # the digest is not printed, and keeps ctr's stdout and exit status
            ctx.warn(f"{digest}: not found, nothing removed")
            continue
        except ContentError as err:
            if connection_lost(err):
                raise
            status = status or report(err, ctx.streams.err, debug=ctx.debug)
            continue
        if ctx.json:
            removed.append({"digest": digest})
        else:
            ctx.write(f"{digest}\n")
    if ctx.json:
        ctx.emit_list(removed)
    return status


def run_label(ctx: Context) -> int:
    from contentd.cli.output import info_to_json, labels_text
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
        ctx.emit(info_to_json(info))
    else:
        ctx.write(labels_text(info.labels, empty="") + "\n")
    return 0


def run_abort(ctx: Context) -> int:
    ctx.store().abort(ctx.args.ref)
    return 0
