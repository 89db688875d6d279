"""``contentd leases ls|create|rm``: ctr's lease commands."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any, Final

from contentd.cli.parser import add_command, duration, group, label_pair

if TYPE_CHECKING:
    from contentd.api._pb.containerd.services.leases.v1 import leases_pb2
    from contentd.cli.context import Context

__all__ = ["EXPIRE_LABEL", "add_commands", "lease_to_json"]

#: The label that makes a lease expire (containerd's ``leases.WithExpiration``).
EXPIRE_LABEL: Final = "containerd.io/gc.expire"


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    leases = group(
        commands,
        "leases",
        aliases=["lease"],
        help="manage leases, which keep content from garbage collection",
        example="contentd leases ls",
    )
    ls = add_command(
        leases,
        "ls",
        aliases=["list"],
        help="list leases: ID CREATED AT LABELS",
        example="contentd leases ls 'labels.\"containerd.io/gc.expire\"'",
        handler=run_ls,
    )
    ls.add_argument("-q", "--quiet", action="store_true", help="print only the lease ids")
    ls.add_argument("filters", nargs="*", metavar="FILTER")

    create = add_command(
        leases,
        "create",
        help="create a lease and print its id",
        example="contentd leases create --id build-42 --expires 1h",
        handler=run_create,
    )
    create.add_argument("--id", default="", help="the lease id (default: a random one)")
    create.add_argument(
        "--expires",
        "-x",
        type=duration,
        default=24 * 3600.0,
        metavar="D",
        help="expire after D (default 24h; 0 never expires)",
    )
    create.add_argument(
        "--label", action="append", type=label_pair, default=[], metavar="K=V", help="repeatable"
    )

    rm = add_command(
        leases,
        "rm",
        aliases=["delete", "del", "remove"],
        help="delete leases",
        example="contentd leases rm --sync build-42",
        handler=run_rm,
    )
    rm.add_argument(
        "--sync",
        action="store_true",
        help="return only after the garbage collection the delete causes has run",
    )
    rm.add_argument("ids", nargs="+", metavar="ID")


def _stub(ctx: Context) -> Any:
    from contentd.api._pb.containerd.services.leases.v1 import leases_pb2_grpc

    return leases_pb2_grpc.LeasesStub(ctx.channel())


def lease_to_json(lease: leases_pb2.Lease) -> dict[str, Any]:
    from contentd.api.convert import datetime_from_pb
    from contentd.cli.output import format_time

    return {
        "id": lease.id,
        "created_at": format_time(datetime_from_pb(lease.created_at)),
        "labels": dict(lease.labels),
    }


def run_ls(ctx: Context) -> int:
    from contentd.api._pb.containerd.services.leases.v1 import leases_pb2 as pb
    from contentd.api.convert import datetime_from_pb
    from contentd.cli.output import (
        SPACED_TABLE,
        format_local_time,
        labels_text,
        table,
    )

    response = ctx.call(_stub(ctx).List, pb.ListRequest(filters=ctx.args.filters))
    leases = list(response.leases)
    if ctx.args.quiet:
        ctx.write("".join(f"{lease.id}\n" for lease in leases))
    elif ctx.json:
        ctx.emit_list(lease_to_json(lease) for lease in leases)
    else:
        rows = [
            (
                lease.id,
                format_local_time(datetime_from_pb(lease.created_at)),
                labels_text(lease.labels),
            )
            for lease in leases
        ]
        ctx.write(table(("ID", "CREATED AT", "LABELS"), rows, SPACED_TABLE, trailing_tab=True))
    return 0


def run_create(ctx: Context) -> int:
    from datetime import UTC, datetime, timedelta

    from contentd.api._pb.containerd.services.leases.v1 import leases_pb2 as pb
    from contentd.cli.output import format_time

    labels = dict(ctx.args.label)
    if ctx.args.expires > 0:
        expire_at = datetime.now(UTC) + timedelta(seconds=ctx.args.expires)
        labels[EXPIRE_LABEL] = format_time(expire_at.replace(microsecond=0))
    response = ctx.call(_stub(ctx).Create, pb.CreateRequest(id=ctx.args.id, labels=labels))
    if ctx.json:
        ctx.emit(lease_to_json(response.lease))
    else:
        ctx.write(f"{response.lease.id}\n")
    return 0


def run_rm(ctx: Context) -> int:
    from contentd.api._pb.containerd.services.leases.v1 import leases_pb2 as pb

    stub = _stub(ctx)

    def delete(lease_id: str, sync: bool) -> None:
        ctx.call(stub.Delete, pb.DeleteRequest(id=lease_id, sync=sync))

    ctx.delete_each(ctx.args.ids, delete, "id", sync=ctx.args.sync)
    return 0
