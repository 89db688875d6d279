"""``contentd export`` and ``contentd import``: images as OCI image layouts (dir or tar).

Both run in this process, reading and writing the daemon's store over its Content API,
so the files land where the command runs. Import writes under a short lease and then
records the images, so a collection in between cannot take the blobs.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from contentd.cli.parser import add_command

if TYPE_CHECKING:
    from contentd.cli.context import Context

__all__ = ["add_commands"]


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    export = add_command(
        commands,
        "export",
        help="write images as an OCI image layout: a directory, or a tar (FILE.tar or -)",
        example="contentd export -o app.tar app:1",
        handler=run_export,
    )
    export.add_argument(
        "-o",
        "--output-path",
        dest="dest",
        required=True,
        metavar="DIR|FILE.tar|-",
        help="a directory (created), a file ending in .tar, or - for a tar on stdout",
    )
    export.add_argument("names", nargs="+", metavar="NAME")

    imp = add_command(
        commands,
        "import",
        help="import an OCI image layout (a directory or a tar) and record its images",
        example="contentd import --base-name registry.local/app app.tar",
        handler=run_import,
    )
    imp.add_argument("source", metavar="DIR|FILE.tar")
    imp.add_argument(
        "--base-name",
        default="",
        metavar="NAME",
        help="name images whose layout entry has only a tag NAME:TAG",
    )


def _images_stub(ctx: Context) -> Any:
    from contentd.api._pb.containerd.services.images.v1 import images_pb2_grpc

    return images_pb2_grpc.ImagesStub(ctx.channel())


def run_export(ctx: Context) -> int:
    from contentd.api._pb.containerd.services.images.v1 import images_pb2 as pb
    from contentd.api.images import image_from_pb
    from contentd.images.layout import ExportedImage, export_layout, layout_blobs, write_tar

    if ctx.args.dest == "-" and ctx.streams.out_is_tty:
        from contentd.content.errors import InvalidArgument

        # as tar does: a binary archive garbles the terminal (and it answers escape codes)
        raise InvalidArgument("refusing to write a tar to a terminal: redirect it, or -o FILE.tar")
    stub = _images_stub(ctx)
    images = []
    for name in ctx.args.names:
        image = image_from_pb(ctx.call(stub.Get, pb.GetImageRequest(name=name)).image)
        images.append(ExportedImage(image.name, image.target))
    store = ctx.store()
    if ctx.args.dest == "-":
        blobs, index = layout_blobs(store, images)
        write_tar(store, blobs, index, ctx.streams.out)
        ctx.flush()
        return 0
    blobs = export_layout(store, images, ctx.args.dest)
    total = sum(b.size for b in blobs)
    if ctx.json:
        ctx.emit(
            {"path": ctx.args.dest, "images": ctx.args.names, "blobs": len(blobs), "size": total}
        )
    else:
        from contentd.cli.output import human_size

        ctx.write(
            f"{ctx.args.dest}: {_count(len(images), 'image')}, {_count(len(blobs), 'blob')}, "
            f"{human_size(total)}\n"
        )
    return 0


def run_import(ctx: Context) -> int:
    from datetime import UTC, datetime, timedelta

    from google.protobuf import field_mask_pb2

    from contentd.api._pb.containerd.services.images.v1 import images_pb2 as pb
    from contentd.api._pb.containerd.services.leases.v1 import leases_pb2 as lpb
    from contentd.api._pb.containerd.services.leases.v1 import leases_pb2_grpc
    from contentd.api.images import image_to_pb
    from contentd.cli.output import format_time
    from contentd.content.errors import AlreadyExists
    from contentd.images.layout import import_layout
    from contentd.proxy.store import ProxyStore

    leases = leases_pb2_grpc.LeasesStub(ctx.channel())
    expire = format_time(datetime.now(UTC).replace(microsecond=0) + timedelta(hours=1))
    lease = ctx.call(
        leases.Create, lpb.CreateRequest(labels={"containerd.io/gc.expire": expire})
    ).lease.id
    try:
        store = ProxyStore(ctx.channel(), ctx.namespace, lease)
        found = import_layout(store, ctx.args.source, base_name=ctx.args.base_name)
        stub = _images_stub(ctx)
        for image in found:
            msg = pb.Image()
            image_to_pb(image, msg)
            try:
                ctx.call(stub.Create, pb.CreateImageRequest(image=msg))
            except AlreadyExists:
                mask = field_mask_pb2.FieldMask(paths=["target"])
                ctx.call(stub.Update, pb.UpdateImageRequest(image=msg, update_mask=mask))
    finally:
        ctx.call(leases.Delete, lpb.DeleteRequest(id=lease))
    if ctx.json:
        ctx.emit_list({"name": i.name, "digest": i.target.digest} for i in found)
    else:
        ctx.write("".join(f"{i.name} {i.target.digest}\n" for i in found))
    return 0


def _count(n: int, thing: str) -> str:
    return f"{n} {thing}" if n == 1 else f"{n} {thing}s"
