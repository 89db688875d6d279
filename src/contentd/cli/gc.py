"""``contentd gc [--dry-run]``: collect garbage now and say what went.

It calls contentd's own ``contentd.services.gc.v1.GC`` service; containerd
has none (it collects on its own schedule), and the command says so.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from contentd.cli.parser import add_command

if TYPE_CHECKING:
    from contentd.api._pb.contentd.services.gc.v1 import gc_pb2
    from contentd.cli.context import Context

__all__ = ["add_commands", "response_to_json", "summary"]

SERVICE = "contentd.services.gc.v1.GC"


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    gc = add_command(
        commands,
        "gc",
        help="collect garbage now: print what goes and the bytes freed",
        example="contentd gc --dry-run",
        handler=run_gc,
        description=(
            "Run one garbage collection over every namespace now and print what it removed:\n"
            "content, ingests and leases per namespace, then the backend's blobs and the bytes\n"
            "they freed. With --dry-run nothing is removed. Needs contentd serve (containerd\n"
            "has no GC service)."
        ),
    )
    gc.add_argument("--dry-run", action="store_true", help="remove nothing; print what would go")


def response_to_json(response: gc_pb2.CollectResponse) -> dict[str, Any]:
    return {
        "dry_run": response.dry_run,
        "removed": {
            r.namespace: {
                "content": list(r.content),
                "ingests": list(r.ingests),
                "leases": list(r.leases),
            }
            for r in response.removed
        },
        "backend_blobs": list(response.backend_blobs),
        "backend_ingests": list(response.backend_ingests),
        "bytes_freed": response.bytes_freed,
        "backend_cleaned": response.backend_cleaned,
        "backend_error": response.backend_error or None,
        "duration_seconds": response.duration.ToNanoseconds() / 1e9,
    }


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def summary(response: gc_pb2.CollectResponse) -> str:
    """One line: how many records and blobs went (or would go), and the bytes."""
    from contentd.cli.output import human_size

    content = sum(len(r.content) for r in response.removed)
    ingests = sum(len(r.ingests) for r in response.removed)
    leases = sum(len(r.leases) for r in response.removed)
    verb = "would remove" if response.dry_run else "removed"
    freed = "would free" if response.dry_run else "freed"
    return (
        f"{verb} {_plural(content, 'content record')}, {_plural(ingests, 'ingest')}, "
        f"{_plural(leases, 'lease')}; {freed} {human_size(response.bytes_freed)} "
        f"({_plural(len(response.backend_blobs), 'blob')}, "
        f"{_plural(len(response.backend_ingests), 'backend ingest')})"
    )


def run_gc(ctx: Context) -> int:
    from contentd.api._pb.contentd.services.gc.v1 import gc_pb2 as pb
    from contentd.api._pb.contentd.services.gc.v1 import gc_pb2_grpc as pb_grpc
    from contentd.cli.errors import unimplemented_service
    from contentd.cli.output import SPACED_TABLE, table
    from contentd.content.errors import NotImplemented

    stub = pb_grpc.GCStub(ctx.channel())
    try:
        response = ctx.call(stub.Collect, pb.CollectRequest(dry_run=ctx.args.dry_run))
    except NotImplemented:
        raise unimplemented_service(
            ctx.target, SERVICE, "containerd collects garbage on its own schedule"
        ) from None
    if ctx.json:
        ctx.emit(response_to_json(response))
        return 0
    rows: list[tuple[str, str, str]] = []
    for removed in response.removed:
        rows += [(removed.namespace, "content", d) for d in removed.content]
        rows += [(removed.namespace, "ingest", ref) for ref in removed.ingests]
        rows += [(removed.namespace, "lease", lease) for lease in removed.leases]
    rows += [("-", "blob", d) for d in response.backend_blobs]
    rows += [("-", "backend ingest", ref) for ref in response.backend_ingests]
    if rows:
        ctx.write(table(("NAMESPACE", "KIND", "ID"), rows, SPACED_TABLE))
    ctx.write(summary(response) + "\n")
    if response.backend_error:
        ctx.warn(
            f"backend cleanup failed (retried at the next collection): {response.backend_error}"
        )
        return 1
    return 0
