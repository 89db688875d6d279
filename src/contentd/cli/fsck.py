"""``contentd fsck``: prove the store's integrity, or say exactly what is wrong.

    contentd fsck [--repair] [--namespace NS] [--jobs N] [--bytes-per-second N]
    contentd fsck --root DIR [--repair] ...        offline, no daemon on DIR
    contentd fsck --status                         the online scrubber, quarantined blobs

Online it calls the daemon's ``contentd.services.fsck.v1.Fsck`` service (writers
never wait for it). Offline (``--root``, the daemon's root directory) it takes the
root's lock, so it refuses while a daemon runs there, and opens the local store
and the SQLite metadata the daemon keeps under it.

Exit status: 0 when the store is clean (nothing found, or everything found was
repaired), 3 when problems remain, 1 on an error, 2 on a usage error.
"""

from __future__ import annotations

import argparse
import os
from typing import TYPE_CHECKING, Any, Final

from contentd.cli.parser import add_command, count_between, nonnegative

if TYPE_CHECKING:
    from contentd.api._pb.contentd.services.fsck.v1 import fsck_pb2
    from contentd.cli.context import Context
    from contentd.metadata import FsckReport

__all__ = ["EXIT_NOT_CLEAN", "MAX_JOBS", "add_commands", "response_to_json", "run_fsck"]

SERVICE = "contentd.services.fsck.v1.Fsck"
#: the exit status when problems remain
EXIT_NOT_CLEAN: Final = 3
#: the most --jobs the daemon takes (contentd.api.fsck.MAX_JOBS; not imported: it loads grpcio)
MAX_JOBS: Final = 64
_CONTENT_DIR: Final = "io.containerd.content.v1.content"
_METADATA_DB: Final = os.path.join("io.containerd.metadata.v1.sqlite", "meta.db")


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    fsck = add_command(
        commands,
        "fsck",
        help="verify every blob's bytes and the records against them; --repair fixes",
        example=[
            "contentd fsck",
            "contentd fsck --repair --output json",
            "contentd fsck --root /var/lib/contentd",
            "contentd fsck --status",
        ],
        handler=run_fsck,
        description=(
            "Hash every blob and compare it with its digest and recorded size, and check the\n"
            "records against the store: records without blobs, blobs and ingests no record\n"
            "knows (orphans), expired ingests, writable blobs, stray files. Read-only unless\n"
            "--repair: corrupt or missing blobs are quarantined (moved aside under the root,\n"
            "reads fail with DATA_LOSS until the digest is ingested again), orphans and dead\n"
            "ingests go through garbage collection, modes are fixed. Strays are only reported.\n"
            "Exit status: 0 clean, 3 problems remain, 1 error."
        ),
    )
    fsck.add_argument("--repair", action="store_true", help="fix what can be fixed")
    fsck.add_argument(
        "--jobs",
        "-j",
        type=count_between(1, MAX_JOBS),
        default=2,
        metavar="N",
        help=f"blobs hashed at once (1 to {MAX_JOBS})",
    )
    fsck.add_argument(
        "--bytes-per-second",
        type=nonnegative,
        default=0,
        metavar="N",
        help="hashing budget in bytes/s (default: no limit)",
    )
    fsck.add_argument(
        "--root",
        metavar="DIR",
        help="check the daemon root DIR offline (refused while a daemon holds it)",
    )
    fsck.add_argument(
        "--status",
        action="store_true",
        help="show the online scrubber's progress and the quarantined blobs",
    )


def response_to_json(response: fsck_pb2.CheckResponse) -> dict[str, Any]:
    return {
        "clean": response.clean,
        "repair": response.repair,
        "blobs": response.blobs,
        "bytes": response.bytes,
        "records": response.records,
        "ingests": response.ingests,
        "duration_seconds": response.duration.ToNanoseconds() / 1e9,
        "findings": [
            {
                "kind": f.kind,
                "detail": f.detail,
                "digest": f.digest,
                "namespace": f.namespace,
                "ref": f.ref,
                "path": f.path,
                "repair": f.repair,
                "fixed": f.fixed,
                "problem": f.problem,
            }
            for f in response.findings
        ],
    }


def summary(response: fsck_pb2.CheckResponse) -> str:
    from contentd.cli.output import human_size

    def counted(n: int, word: str) -> str:
        return f"{n} {word}{'' if n == 1 else 's'}"

    checked = (
        f"hashed {counted(response.blobs, 'blob')} ({human_size(response.bytes)}), "
        f"{counted(response.records, 'record')}, {counted(response.ingests, 'ingest')} "
        f"in {response.duration.ToNanoseconds() / 1e9:.2f}s"
    )
    found = len(response.findings)
    if not found:
        return f"{checked}: clean"
    fixed = sum(1 for f in response.findings if f.fixed)
    left = sum(1 for f in response.findings if f.problem and not f.fixed)
    state = "clean" if response.clean else f"{left} problem{'s' if left != 1 else ''} left"
    return f"{checked}: {found} found, {fixed} fixed; {state}"


def run_fsck(ctx: Context) -> int:
    args = ctx.args
    if args.status:
        return _status(ctx)
    namespace = getattr(args, "namespace", None)  # only when given: no env default here
    if args.root is not None:
        report = _offline(args.root, args.repair, namespace, args.jobs, args.bytes_per_second)
        from contentd.api.fsck import report_to_pb

        response = report_to_pb(report)
    else:
        response = _online(ctx, args.repair, namespace, args.jobs, args.bytes_per_second)
    if ctx.json:
        ctx.emit(response_to_json(response))
    else:
        _print(ctx, response)
    return 0 if response.clean else EXIT_NOT_CLEAN


def _online(
    ctx: Context, repair: bool, namespace: str | None, jobs: int, budget: int
) -> fsck_pb2.CheckResponse:
    from contentd.api._pb.contentd.services.fsck.v1 import fsck_pb2 as pb
    from contentd.api._pb.contentd.services.fsck.v1 import fsck_pb2_grpc as pb_grpc
    from contentd.cli.errors import unimplemented_service
    from contentd.content.errors import NotImplemented

    request = pb.CheckRequest(
        repair=repair, namespace=namespace or "", jobs=jobs, bytes_per_second=budget
    )
    try:
        return ctx.call(pb_grpc.FsckStub(ctx.channel()).Check, request)
    except NotImplemented:
        raise unimplemented_service(
            ctx.target, SERVICE, "containerd verifies a blob only when it is committed"
        ) from None


def _offline(root: str, repair: bool, namespace: str | None, jobs: int, budget: int) -> FsckReport:
    from contentd.content.errors import NotFound
    from contentd.daemon.lock import RootLock
    from contentd.local import LocalStore
    from contentd.metadata import FsckOptions, MetadataDB

    root = os.path.abspath(root)
    content = os.path.join(root, _CONTENT_DIR)
    meta = os.path.join(root, _METADATA_DB)
    if not os.path.isfile(meta) or not os.path.isdir(content):
        raise NotFound(f"no contentd root at {root} (want {_CONTENT_DIR}/ and {_METADATA_DB})")
    lock = RootLock(root).acquire()  # RootLocked (unavailable) while a daemon runs there
    try:
        with MetadataDB(meta, LocalStore(content)) as db:
            return db.fsck(
                FsckOptions(repair=repair, namespace=namespace, jobs=jobs, bytes_per_second=budget)
            )
    finally:
        lock.release()


def _print(ctx: Context, response: fsck_pb2.CheckResponse) -> None:
    from contentd.cli.output import SPACED_TABLE, table

    rows = [
        (
            f.kind,
            f.namespace or "-",
            f.digest or f.ref or f.path,
            f.detail,
            f.repair or "-",
        )
        for f in response.findings
    ]
    if rows:
        ctx.write(table(("KIND", "NAMESPACE", "OBJECT", "PROBLEM", "REPAIR"), rows, SPACED_TABLE))
    ctx.write(summary(response) + "\n")


def _status(ctx: Context) -> int:
    from contentd.api._pb.contentd.services.fsck.v1 import fsck_pb2 as pb
    from contentd.api._pb.contentd.services.fsck.v1 import fsck_pb2_grpc as pb_grpc
    from contentd.cli.output import human_size

    status = ctx.call(pb_grpc.FsckStub(ctx.channel()).Status, pb.StatusRequest())
    oldest = (
        status.oldest_verified.ToDatetime().isoformat() + "Z"
        if status.HasField("oldest_verified")
        else None
    )
    quarantined = [
        {
            "digest": q.digest,
            "quarantined_at": q.quarantined_at.ToDatetime().isoformat() + "Z",
            "reason": q.reason,
        }
        for q in status.quarantined
    ]
    if ctx.json:
        ctx.emit(
            {
                "scrub_enabled": status.scrub_enabled,
                "interval_seconds": status.interval.ToNanoseconds() / 1e9,
                "bytes_per_second": status.bytes_per_second,
                "blobs": status.blobs,
                "verified": status.verified,
                "oldest_verified": oldest,
                "scrubbed_blobs": status.scrubbed_blobs,
                "scrubbed_bytes": status.scrubbed_bytes,
                "corrupt_found": status.corrupt_found,
                "quarantined": quarantined,
            }
        )
    else:
        if status.scrub_enabled:
            every = status.interval.ToNanoseconds() / 1e9
            ctx.write(
                f"scrub: every blob every {every:g}s at <= "
                f"{human_size(status.bytes_per_second)}/s; {status.verified} of "
                f"{status.blobs} verified within the interval, oldest: {oldest or 'never'}\n"
                f"since start: {status.scrubbed_blobs} blobs "
                f"({human_size(status.scrubbed_bytes)}) hashed, "
                f"{status.corrupt_found} corrupt\n"
            )
        else:
            ctx.write("scrub: off\n")
        for q in quarantined:
            ctx.write(f"quarantined {q['digest']} at {q['quarantined_at']}: {q['reason']}\n")
    return 0 if not quarantined else EXIT_NOT_CLEAN
