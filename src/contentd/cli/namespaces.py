"""``contentd namespaces ls|create|rm|label``: ctr's namespace commands."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from contentd.cli.parser import add_command, group, parse_label_args

if TYPE_CHECKING:
    from contentd.cli.context import Context

__all__ = ["add_commands"]


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    namespaces = group(
        commands,
        "namespaces",
        aliases=["namespace", "ns"],
        help="manage namespaces",
        example="contentd namespaces ls",
    )
    ls = add_command(
        namespaces,
        "ls",
        aliases=["list"],
        help="list namespaces: NAME LABELS",
        example="contentd namespaces ls -q",
        handler=run_ls,
    )
    ls.add_argument("-q", "--quiet", action="store_true", help="print only the names")

    create = add_command(
        namespaces,
        "create",
        help="create a namespace",
        example="contentd namespaces create team-a owner=alice",
        handler=run_create,
    )
    create.add_argument("name", metavar="NAME")
    create.add_argument("labels", nargs="*", metavar="K=V")

    rm = add_command(
        namespaces,
        "rm",
        aliases=["remove", "delete", "del"],
        help="remove empty namespaces (ones that are not there are skipped)",
        example="contentd namespaces rm team-a",
        handler=run_rm,
    )
    rm.add_argument("names", nargs="+", metavar="NAME")

    label = add_command(
        namespaces,
        "label",
        help="set (k=v) or clear (k=) labels of a namespace",
        example="contentd namespaces label team-a contentd.io/gc.managed-externally=true",
        handler=run_label,
    )
    label.add_argument("name", metavar="NAME")
    label.add_argument("labels", nargs="+", metavar="K=V")


def _stub(ctx: Context) -> Any:
    from contentd.api._pb.containerd.services.namespaces.v1 import namespace_pb2_grpc

    return namespace_pb2_grpc.NamespacesStub(ctx.channel())


def run_ls(ctx: Context) -> int:
    from contentd.api._pb.containerd.services.namespaces.v1 import namespace_pb2 as pb
    from contentd.cli.output import SPACED_TABLE, labels_text, table

    response = ctx.call(_stub(ctx).List, pb.ListNamespacesRequest())
    namespaces = list(response.namespaces)
    if ctx.args.quiet:
        ctx.write("".join(f"{ns.name}\n" for ns in namespaces))
    elif ctx.json:
        ctx.emit_list({"name": ns.name, "labels": dict(ns.labels)} for ns in namespaces)
    else:
        rows = [(ns.name, labels_text(ns.labels, empty="")) for ns in namespaces]
        ctx.write(table(("NAME", "LABELS"), rows, SPACED_TABLE, trailing_tab=True))
    return 0


def run_create(ctx: Context) -> int:
    from contentd.api._pb.containerd.services.namespaces.v1 import namespace_pb2 as pb

    labels = parse_label_args(ctx.args.labels)
    request = pb.CreateNamespaceRequest(namespace=pb.Namespace(name=ctx.args.name, labels=labels))
    created = ctx.call(_stub(ctx).Create, request).namespace
    if ctx.json:
        ctx.emit({"name": created.name, "labels": dict(created.labels)})
    else:
        ctx.write(f"{created.name}\n")
    return 0


def run_rm(ctx: Context) -> int:
    from contentd.api._pb.containerd.services.namespaces.v1 import namespace_pb2 as pb
    from contentd.cli.errors import connection_lost, report
    from contentd.content.errors import ContentError, NotFound

    stub = _stub(ctx)
    status = 0
    removed: list[dict[str, str]] = []
    for name in ctx.args.names:
        try:
            ctx.call(stub.Delete, pb.DeleteNamespaceRequest(name=name))
        except NotFound:
            pass
        except ContentError as err:
            if connection_lost(err):
                raise
            status = status or report(err.wrap(f"unable to delete {name}"), ctx.streams.err)
            continue
        if ctx.json:
            removed.append({"name": name})
        else:
            ctx.write(f"{name}\n")
    if ctx.json:
        ctx.emit_list(removed)
    return status


def run_label(ctx: Context) -> int:
    from google.protobuf.field_mask_pb2 import FieldMask

    from contentd.api._pb.containerd.services.namespaces.v1 import namespace_pb2 as pb
    from contentd.cli.output import labels_text

    name: str = ctx.args.name
    labels = parse_label_args(ctx.args.labels)
    stub = _stub(ctx)
    request = pb.UpdateNamespaceRequest(
        namespace=pb.Namespace(name=name, labels={k: v for k, v in labels.items() if v}),
        update_mask=FieldMask(paths=[f"labels.{key}" for key in labels]),
    )
    ctx.call(stub.Update, request)
    current = ctx.call(stub.Get, pb.GetNamespaceRequest(name=name)).namespace
    if ctx.json:
        ctx.emit({"name": current.name, "labels": dict(current.labels)})
    else:
        ctx.write(labels_text(current.labels, empty="") + "\n")
    return 0
