"""Image records: the store (containerd's metadata/images.go) and images as GC roots."""

from __future__ import annotations

import pytest

from contentd import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from contentd.content.types import Descriptor, utcnow
from contentd.metadata import Image, MetadataDB
from tests.metadata.conftest import put

INDEX = "application/vnd.oci.image.index.v1+json"
MANIFEST = "application/vnd.oci.image.manifest.v1+json"
D1 = "sha256:" + "1" * 64
D2 = "sha256:" + "2" * 64


def image(name: str, digest: str = D1, **labels: str) -> Image:
    return Image(name, Descriptor(media_type=INDEX, digest=digest, size=10), labels)


def test_create_get_list_delete(db: MetadataDB) -> None:
    images = db.images("ns")
    before = utcnow()
    created = images.create(image("docker.io/library/a:1", team="blue", empty=""))
    assert created.labels == {"team": "blue"}
    assert before <= created.created_at == created.updated_at <= utcnow()
    assert images.get("docker.io/library/a:1") == created
    with pytest.raises(AlreadyExists, match=r'image "docker.io/library/a:1"'):
        images.create(image("docker.io/library/a:1"))
    images.create(image("b", D2))
    assert [i.name for i in images.list()] == ["b", "docker.io/library/a:1"]
    assert db.images("other").list() == []  # per namespace
    with pytest.raises(NotFound):
        db.images("other").get("b")
    images.delete("b")
    with pytest.raises(NotFound, match=r'image "b": not found'):
        images.delete("b")
    with pytest.raises(NotFound):
        images.get("b")


def test_filters_are_containerds(db: MetadataDB) -> None:
    images = db.images("ns")
    images.create(image("a", D1, kind="base"))
    images.create(
        Image("b", Descriptor(MANIFEST, D2, 5, annotations={"org.x": "y"}), {"kind": "app"})
    )

    def names(*filters: str) -> list[str]:
        return [i.name for i in images.list(*filters)]

    assert names("name==a") == ["a"]
    assert names("name~=^[ab]$") == ["a", "b"]
    assert names(f"target.digest=={D2}") == ["b"]
    assert names(f"target.mediatype=={INDEX}") == ["a"]
    assert names("labels.kind==app", "labels.kind==base") == ["a", "b"]
    assert names('annotations."org.x"==y') == ["b"]
    assert names("labels.kind!=app") == ["a"]
    with pytest.raises(InvalidArgument):
        images.list("name===x")


def test_validation(db: MetadataDB) -> None:
    images = db.images("ns")
    with pytest.raises(InvalidArgument, match=r"image name must not be empty"):
        images.create(image(""))
    with pytest.raises(InvalidArgument, match=r'Target.Digest "nope" invalid'):
        images.create(image("x", "nope"))
    with pytest.raises(InvalidArgument, match=r"Target.Size must be greater than zero"):
        images.create(Image("x", Descriptor(INDEX, D1, 0)))
    with pytest.raises(InvalidArgument, match=r"Target.MediaType must be set"):
        images.create(Image("x", Descriptor("", D1, 3)))
    with pytest.raises(InvalidArgument, match=r"image.Labels"):
        images.create(image("x", big="v" * 5000))
    with pytest.raises(FailedPrecondition, match=r"namespace is required"):
        db.images(None).list()
    assert images.list() == []


def test_update_with_and_without_fieldpaths(db: MetadataDB) -> None:
    images = db.images("ns")
    created = images.create(
        Image("a", Descriptor(INDEX, D1, 10, annotations={"x": "1"}), {"k": "v", "keep": "1"})
    )
    updated = images.update(Image("a", Descriptor(), {"k": "w", "new": "n"}), "labels.k")
    assert updated.labels == {"k": "w", "keep": "1"}
    assert updated.target == created.target
    assert updated.created_at == created.created_at
    assert updated.updated_at >= created.updated_at
    updated = images.update(Image("a", Descriptor(), {}), "labels.keep")  # absent: removed
    assert updated.labels == {"k": "w"}
    updated = images.update(Image("a", Descriptor(annotations={"y": "2"})), "annotations.y")
    assert updated.target.annotations == {"x": "1", "y": "2"}
    updated = images.update(Image("a", Descriptor(MANIFEST, D2, 7)), "target")
    assert updated.target == Descriptor(MANIFEST, D2, 7)
    updated = images.update(Image("a", Descriptor(INDEX, D1, 3), {"all": "new"}))  # no mask
    assert (updated.target.digest, updated.labels) == (D1, {"all": "new"})
    assert images.get("a") == updated
    with pytest.raises(InvalidArgument, match=r'cannot update "size" field on image "a"'):
        images.update(image("a"), "size")
    with pytest.raises(InvalidArgument, match=r"Target.Size"):
        images.update(Image("a", Descriptor(INDEX, D1, 0)))
    with pytest.raises(NotFound):
        images.update(image("missing"))
    with pytest.raises(InvalidArgument, match=r"image name is required"):
        images.update(image(""))
    assert images.get("a") == updated  # failed updates changed nothing


def test_namespace_with_images_cannot_be_deleted(db: MetadataDB) -> None:
    db.images("ns").create(image("a"))
    with pytest.raises(FailedPrecondition, match=r"still has images"):
        db.namespaces.delete("ns")
    db.images("ns").delete("a")
    db.namespaces.delete("ns")


def test_image_target_is_a_gc_root(db: MetadataDB) -> None:
    cs = db.content_store("ns")
    layer = put(cs, b"layer")
    config = put(cs, b"config")
    manifest = put(
        cs,
        b"manifest",
        labels={
            "containerd.io/gc.ref.content.config": config,
            "containerd.io/gc.ref.content.l.0": layer,
        },
    )
    by_label = put(cs, b"referenced by the image's own label")
    stray = put(cs, b"stray")
    db.images("ns").create(
        Image(
            "img",
            Descriptor(MANIFEST, manifest, 8),
            {"containerd.io/gc.ref.content.extra": by_label},
        )
    )
    # an image in another namespace roots nothing here
    db.images("other").create(image("elsewhere", layer))
    result = db.garbage_collect()
    assert result.content == {"ns": (stray,)}
    assert result.bytes_freed == len(b"stray")
    assert {info.digest for info in cs.walk()} == {manifest, config, layer, by_label}
    # retargeting the image releases the old tree
    db.images("ns").update(image("img", by_label), "target")
    db.garbage_collect()
    assert {info.digest for info in cs.walk()} == {by_label}
    # deleting the image frees the rest (sync: the collection has run on return)
    db.images("ns").delete("img", sync=True)
    assert list(cs.walk()) == []
