"""``contentd images ls|tag|rm|inspect``: image records, and the tree of blobs they name.

``ls`` prints ``REF TYPE DIGEST SIZE PLATFORMS LABELS`` as ``ctr images ls`` does, except that
SIZE counts every blob of the image (all platforms), each once, and says how much of it the
store holds when something is missing. ``inspect`` walks index -> manifests -> config and
layers and marks each blob present or missing.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from contentd.cli.parser import add_command, group

if TYPE_CHECKING:
    from collections.abc import Callable

    from contentd.cli.context import Context
    from contentd.content.types import Descriptor
    from contentd.images.tree import Node
    from contentd.metadata.images import Image

__all__ = ["add_commands", "image_nodes"]


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    images = group(
        commands,
        "images",
        aliases=["image", "i"],
        help="manage images: names bound to the root descriptor of an image",
        example="contentd images ls",
    )
    ls = add_command(
        images,
        "ls",
        aliases=["list"],
        help="list images: REF TYPE DIGEST SIZE PLATFORMS LABELS",
        example="contentd images ls 'name~=^docker.io/'",
        handler=run_ls,
    )
    ls.add_argument("-q", "--quiet", action="store_true", help="print only the image names")
    ls.add_argument("filters", nargs="*", metavar="FILTER")

    tag = add_command(
        images,
        "tag",
        help="give an image more names (same target, same labels)",
        example="contentd images tag registry.local/app:1 app:latest",
        handler=run_tag,
    )
    tag.add_argument("--force", "-f", action="store_true", help="retarget names that exist")
    tag.add_argument("source", metavar="SOURCE")
    tag.add_argument("targets", nargs="+", metavar="NAME")

    rm = add_command(
        images,
        "rm",
        aliases=["delete", "del", "remove"],
        help="delete images (their content goes at the next garbage collection; ones that are"
        " not there are skipped, with a warning)",
        example="contentd images rm --sync app:latest",
        handler=run_rm,
        description=(
            "Delete images and print each name removed; their content goes at the next\n"
            "garbage collection (--sync waits for it). A name that is not there is skipped\n"
            "with a warning on stderr and the others still go: the exit status is 0, as\n"
            "`ctr images rm`'s. Any other failure is reported and the names after it\n"
            "still go, as with ctr: the exit status is then 1."
        ),
    )
    rm.add_argument(
        "--sync", action="store_true", help="return only after the garbage collection has run"
    )
    rm.add_argument("names", nargs="+", metavar="NAME")

    inspect = add_command(
        images,
        "inspect",
        help="the image's tree: index, manifests, config and layers, sizes, presence",
        example="contentd images inspect app:latest",
        handler=run_inspect,
    )
    inspect.add_argument("name", metavar="NAME")


# -- calls ---------------------------------------------------------------------


def _stub(ctx: Context) -> Any:
    from contentd.api._pb.containerd.services.images.v1 import images_pb2_grpc

    return images_pb2_grpc.ImagesStub(ctx.channel())


def _get(ctx: Context, name: str) -> Image:
    from contentd.api._pb.containerd.services.images.v1 import images_pb2 as pb
    from contentd.api.images import image_from_pb

    return image_from_pb(ctx.call(_stub(ctx).Get, pb.GetImageRequest(name=name)).image)


def image_nodes(ctx: Context, target: Descriptor) -> list[Node]:
    """Every blob of the image rooted at ``target``, as the store holds it now."""
    from contentd.content.errors import NotFound
    from contentd.content.helpers import read_blob
    from contentd.images.media import MAX_MANIFEST_SIZE, ManifestError
    from contentd.images.tree import walk

    store = ctx.store()

    def read(desc: Descriptor) -> bytes:
        if desc.size > MAX_MANIFEST_SIZE:
            raise ManifestError(f"{desc.digest}: {desc.size} bytes is too big for a manifest")
        return read_blob(store, desc.digest)

    def present(desc: Descriptor) -> bool:
        try:
            store.info(desc.digest)
        except NotFound:
            return False
        return True

    nodes = list(walk(read, target, present=present))
    return [_with_config_platform(n, read, present) for n in nodes]


def _with_config_platform(
    node: Node, read: Callable[[Descriptor], bytes], present: Callable[[Descriptor], bool]
) -> Node:
    """A manifest no index gave a platform gets its config's (os, architecture,
    variant), as ``ctr images ls`` shows it; unchanged when the store cannot tell."""
    import dataclasses
    import json

    from contentd.content.errors import ContentError
    from contentd.images.media import children

    if node.role != "manifest" or node.platform or not node.present:
        return node
    try:
        _, config, _ = children(node.desc, read(node.desc))
        if config is None or not present(config):
            return node
        doc = json.loads(read(config))
    except (ContentError, ValueError):  # a malformed manifest is InvalidArgument
        return node
    if not isinstance(doc, dict) or not isinstance(doc.get("os"), str):
        return node
    keys = ("os", "architecture", "variant")
    platform = {k: doc[k] for k in keys if isinstance(doc.get(k), str) and doc[k]}
    return dataclasses.replace(node, platform=platform)


def _platforms(nodes: list[Node]) -> list[str]:
    texts = (_platform_text(n) for n in nodes if n.role == "manifest")
    return list(dict.fromkeys(t for t in texts if t))


def _summary(ctx: Context, image: Image) -> dict[str, Any]:
    from contentd.content.errors import ContentError

    try:
        nodes = image_nodes(ctx, image.target)
    except ContentError as err:
        return {"error": str(err)}
    return {
        "size": sum(n.desc.size for n in nodes),
        "present": sum(n.desc.size for n in nodes if n.present),
        "blobs": len(nodes),
        "missing": sum(1 for n in nodes if not n.present),
        "platforms": _platforms(nodes),
    }


def _image_json(image: Image, summary: dict[str, Any] | None = None) -> dict[str, Any]:
    from contentd.cli.output import format_time
    from contentd.images.media import descriptor_to_json

    out = {
        "name": image.name,
        "target": descriptor_to_json(image.target),
        "labels": dict(image.labels),
        "created_at": format_time(image.created_at),
        "updated_at": format_time(image.updated_at),
    }
    if summary is not None:
        out.update(summary)
    return out


# -- commands --------------------------------------------------------------------


def run_ls(ctx: Context) -> int:
    from contentd.api._pb.containerd.services.images.v1 import images_pb2 as pb
    from contentd.api.images import image_from_pb
    from contentd.cli.output import SPACED_TABLE, human_size, labels_text, table

    response = ctx.call(_stub(ctx).List, pb.ListImagesRequest(filters=ctx.args.filters))
    images = [image_from_pb(msg) for msg in response.images]
    if ctx.args.quiet:
        ctx.write("".join(f"{image.name}\n" for image in images))
        return 0
    summaries = [_summary(ctx, image) for image in images]
    if ctx.json:
        ctx.emit_list(_image_json(i, s) for i, s in zip(images, summaries, strict=True))
        return 0
    rows = []
    for image, summary in zip(images, summaries, strict=True):
        if "error" in summary:
            size, platforms = "-", "-"
        else:
            size = human_size(summary["size"])
            if summary["missing"]:
                size = f"{human_size(summary['present'])}/{size}"
            platforms = ",".join(summary["platforms"]) or "-"
        rows.append(
            (
                image.name,
                image.target.media_type,
                image.target.digest,
                size,
                platforms,
                labels_text(image.labels),
            )
        )
    header = ("REF", "TYPE", "DIGEST", "SIZE", "PLATFORMS", "LABELS")
    ctx.write(table(header, rows, SPACED_TABLE, trailing_tab=True))
    return 0


def run_tag(ctx: Context) -> int:
    from google.protobuf import field_mask_pb2

    from contentd.api._pb.containerd.services.images.v1 import images_pb2 as pb
    from contentd.api.images import image_to_pb
    from contentd.content.errors import AlreadyExists

    source = _get(ctx, ctx.args.source)
    stub = _stub(ctx)
    tagged: list[dict[str, str]] = []
    for name in ctx.args.targets:
        msg = pb.Image()
        image_to_pb(source, msg)
        msg.name = name
        try:
            ctx.call(stub.Create, pb.CreateImageRequest(image=msg))
        except AlreadyExists:
            if not ctx.args.force:
                raise
            mask = field_mask_pb2.FieldMask(paths=["target", "labels"])
            ctx.call(stub.Update, pb.UpdateImageRequest(image=msg, update_mask=mask))
        if ctx.json:
            tagged.append({"name": name, "target": source.target.digest})
        else:
            ctx.write(f"{name}\n")
    if ctx.json:
        ctx.emit_list(tagged)
    return 0


def run_rm(ctx: Context) -> int:
    """As ``ctr images rm``: an image that is not there is a warning, not a failure (the
    others still go, and the exit status is 0); its name is not printed. Any other failure
    does not stop the names after it either: each is reported (``unable to delete NAME``)
    and the exit status is 1. A daemon that cannot be reached ends the command at once."""
    from contentd.api._pb.containerd.services.images.v1 import images_pb2 as pb
    from contentd.cli.errors import EXIT_ERROR, describe, is_connect_failure
    from contentd.content.errors import ContentError, NotFound

    stub = _stub(ctx)
    failed = 0

    def delete(name: str, sync: bool) -> bool:
        nonlocal failed
        try:
            ctx.call(stub.Delete, pb.DeleteImageRequest(name=name, sync=sync))
        except NotFound:
            ctx.warn(f"{name}: image not found, nothing removed")
            return False
        except ContentError as err:
            if is_connect_failure(err):
                raise
            kind, message = describe(err)
            ctx.warn(f"{kind}: unable to delete {name}: {message}".replace("\n", " "))
            failed += 1
            return False
        return True

    ctx.delete_each(ctx.args.names, delete, "name", sync=ctx.args.sync)
    return EXIT_ERROR if failed else 0


def _platform_text(node: Node) -> str:
    spec = node.platform
    if not spec.get("os"):
        return ""
    parts = [str(spec.get("os")), str(spec.get("architecture", ""))]
    if spec.get("variant"):
        parts.append(str(spec["variant"]))
    return "/".join(parts)


def run_inspect(ctx: Context) -> int:
    from contentd.cli.output import SPACED_TABLE, human_size, labels_text, table
    from contentd.images.media import descriptor_to_json

    image = _get(ctx, ctx.args.name)
    nodes = image_nodes(ctx, image.target)
    if ctx.json:
        tree = [
            {
                "depth": n.depth,
                "role": n.role,
                "platform": _platform_text(n),
                "descriptor": descriptor_to_json(n.desc),
                "present": n.present,
            }
            for n in nodes
        ]
        ctx.emit({**_image_json(image, _summary(ctx, image)), "tree": tree})
        return 0
    total = sum(n.desc.size for n in nodes)
    held = sum(n.desc.size for n in nodes if n.present)
    ctx.write(
        f"Name:     {image.name}\n"
        f"Target:   {image.target.digest} ({image.target.media_type})\n"
        f"Labels:   {labels_text(image.labels)}\n"
        f"Size:     {human_size(total)} in {len(nodes)} blobs, "
        f"{human_size(held)} present\n\n"
    )
    rows = [
        (
            "  " * n.depth + n.role,
            _platform_text(n) or "-",
            n.desc.digest,
            human_size(n.desc.size),
            n.desc.media_type or "-",
            "present" if n.present else "MISSING",
        )
        for n in nodes
    ]
    header = ("BLOB", "PLATFORM", "DIGEST", "SIZE", "TYPE", "STATUS")
    ctx.write(table(header, rows, SPACED_TABLE))
    return 0
