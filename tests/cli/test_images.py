"""``contentd images ls|tag|rm|inspect`` against a daemon holding the peers' test image."""

from __future__ import annotations

import io

import grpc
import pytest

from contentd import Descriptor, write_blob
from contentd.api._pb.containerd.services.images.v1 import images_pb2 as ipb
from contentd.api._pb.containerd.services.images.v1 import images_pb2_grpc as ipb_grpc
from contentd.api._pb.containerd.types import descriptor_pb2
from contentd.api.metadata_keys import NAMESPACE_KEY
from contentd.proxy import ProxyStore
from tests.cli.conftest import Cli
from tests.peers.images import MT_INDEX, MT_MANIFEST, OciImage, build_image

IMAGE = build_image()


def load(
    cli: Cli,
    image: OciImage,
    name: str,
    *,
    skip: str | None = None,
    target_platform: str | None = None,
) -> None:
    """Write every blob of ``image`` (but ``skip``) and record it as ``name``, its target
    the index (or the manifest of ``target_platform``)."""
    store = ProxyStore(cli.address, namespace=cli.namespace)
    try:
        for blob in image.iter_blobs():
            if blob.digest != skip:
                desc = Descriptor(digest=blob.digest, size=blob.size)
                write_blob(store, f"load-{blob.digest}", io.BytesIO(blob.data), desc)
    finally:
        store.close()
    root, media_type = image.index, MT_INDEX
    if target_platform is not None:
        root, media_type = image.platform(target_platform).manifest, MT_MANIFEST
    target = descriptor_pb2.Descriptor(media_type=media_type, digest=root.digest, size=root.size)
    with grpc.insecure_channel(cli.address) as channel:
        ipb_grpc.ImagesStub(channel).Create(
            ipb.CreateImageRequest(image=ipb.Image(name=name, target=target, labels={"k": "v"})),
            metadata=((NAMESPACE_KEY, cli.namespace),),
        )


def test_ls_tag_inspect_rm(cli: Cli) -> None:
    load(cli, IMAGE, "example.com/app:1")
    rows = [line.split() for line in cli("images", "ls").ok().lines]
    assert rows[0] == ["REF", "TYPE", "DIGEST", "SIZE", "PLATFORMS", "LABELS"]
    total = sum(b.size for b in IMAGE.iter_blobs())
    assert rows[1][:3] == ["example.com/app:1", MT_INDEX, IMAGE.index.digest]
    assert rows[1][4:] == ["linux/amd64,linux/arm64", "k=v"]
    (doc,) = cli("--output", "json", "images", "ls").ok().json()
    assert (doc["size"], doc["present"], doc["missing"]) == (total, total, 0)
    assert doc["blobs"] == len(list(IMAGE.iter_blobs()))

    assert cli("images", "tag", "example.com/app:1", "app:a", "app:b").ok().lines == [
        "app:a",
        "app:b",
    ]
    again = cli("images", "tag", "example.com/app:1", "app:a")
    assert again.code == 1 and "already exists" in again.err
    cli("images", "tag", "--force", "example.com/app:1", "app:a").ok()
    assert cli("images", "ls", "-q").ok().lines == ["app:a", "app:b", "example.com/app:1"]
    assert cli("images", "ls", "-q", "name~=^app:b$").ok().lines == ["app:b"]

    out = cli("images", "inspect", "app:a").ok().text
    assert f"Target:   {IMAGE.index.digest}" in out
    tree = [
        line.split() for line in out.splitlines() if line.startswith(" ") or line[:5] == "index"
    ]
    roles = [row[0] for row in tree]
    amd64 = ["manifest", "config", "layer", "layer", "layer"]
    assert roles == ["index", *amd64, "manifest", "config", "layer"]
    assert all(row[-1] == "present" for row in tree)
    assert [row[1] for row in tree if row[0] == "manifest"] == ["linux/amd64", "linux/arm64"]

    assert cli("images", "rm", "--sync", "app:a", "app:b").ok().lines == ["app:a", "app:b"]
    # as ctr images rm: a missing image is a warning, the others still go, exit 0
    cli("images", "tag", "example.com/app:1", "app:c").ok()
    again = cli("images", "rm", "app:a", "app:c").ok()
    assert again.lines == ["app:c"]
    assert again.err == "contentd: app:a: image not found, nothing removed\n"
    assert cli("images", "ls", "-q").ok().lines == ["example.com/app:1"]
    cli("images", "rm", "--sync", "example.com/app:1").ok()
    assert cli("content", "ls", "-q").ok().lines == []  # the image was the only root


def test_an_image_of_one_manifest_shows_its_configs_platform(cli: Cli) -> None:
    # no index gives the manifest a platform: the config has it (ctr images ls shows it too)
    load(cli, IMAGE, "example.com/one:1", target_platform="linux/arm64")
    (row,) = [line.split() for line in cli("images", "ls").ok().lines[1:]]
    assert row[1:3] == [MT_MANIFEST, IMAGE.platform("linux/arm64").manifest.digest]
    assert row[4] == "linux/arm64"
    (doc,) = cli("--output", "json", "images", "ls").ok().json()
    assert doc["platforms"] == ["linux/arm64"]
    out = cli("images", "inspect", "example.com/one:1").ok().text
    assert [line.split()[1] for line in out.splitlines() if line.startswith("manifest")] == [
        "linux/arm64"
    ]
    cli("images", "rm", "--sync", "example.com/one:1").ok()


def test_inspect_shows_missing_blobs(cli: Cli) -> None:
    arm = IMAGE.platform("linux/arm64")
    load(cli, IMAGE, "partial:1", skip=arm.layers[-1].digest)
    (doc,) = cli("--output", "json", "images", "ls").ok().json()
    assert doc["missing"] == 1
    assert doc["present"] == doc["size"] - arm.layers[-1].size
    rows = [line.split() for line in cli("images", "inspect", "partial:1").ok().lines]
    missing = [row for row in rows if row and row[-1] == "MISSING"]
    assert [row[2] for row in missing] == [arm.layers[-1].digest]
    cli("images", "rm", "partial:1").ok()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("images", "inspect", "nope"), 'not found: image "nope"'),
        (("images", "tag", "nope", "x"), 'not found: image "nope"'),
        (("images", "ls", "name==="), "invalid argument"),
    ],
)
def test_errors(cli: Cli, args: tuple[str, ...], message: str) -> None:
    result = cli(*args)
    assert result.code == 1
    assert message in result.err


def test_rm_tries_every_name_and_reports_each_failure(
    cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As ``ctr images rm``: a name that fails (other than not found) does not stop the
    names after it; each failure is reported, and the exit status is 1."""
    from contentd.cli.context import Context
    from contentd.content.errors import FailedPrecondition

    load(cli, IMAGE, "example.com/app:1")
    cli("images", "tag", "example.com/app:1", "app:a", "app:b", "app:c").ok()
    real = Context.call

    def call(self: Context, method: object, request: object, **kwargs: object) -> object:
        name = getattr(request, "name", "")
        if name in ("app:a", "app:c"):
            raise FailedPrecondition(f"{name} is held")
        return real(self, method, request, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Context, "call", call)
    result = cli("images", "rm", "app:a", "nope", "app:b", "app:c")
    monkeypatch.undo()
    assert result.code == 1
    assert result.lines == ["app:b"]
    assert result.err.splitlines() == [
        "contentd: failed precondition: unable to delete app:a: app:a is held",
        "contentd: nope: image not found, nothing removed",
        "contentd: failed precondition: unable to delete app:c: app:c is held",
    ]
    assert cli("images", "ls", "-q").ok().lines == ["app:a", "app:c", "example.com/app:1"]
    cli("images", "rm", "--sync", "app:a", "app:c", "example.com/app:1").ok()
