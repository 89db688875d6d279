"""The image walk (index -> manifests -> config and layers): order, shared and cyclic
descriptors, and nesting beyond reason."""

from __future__ import annotations

import hashlib
import json

import pytest

from contentd.content.errors import InvalidArgument, NotFound
from contentd.content.types import Descriptor
from contentd.images.media import MAX_NESTING, ManifestError
from contentd.images.tree import walk

INDEX = "application/vnd.oci.image.index.v1+json"
MANIFEST = "application/vnd.oci.image.manifest.v1+json"
CONFIG = "application/vnd.oci.image.config.v1+json"
LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"


class Blobs:
    def __init__(self) -> None:
        self.docs: dict[str, bytes] = {}
        self.reads: list[str] = []

    def add(self, media_type: str, doc: object) -> dict[str, object]:
        data = json.dumps(doc).encode()
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        self.docs[digest] = data
        return {"mediaType": media_type, "digest": digest, "size": len(data)}

    def read(self, desc: Descriptor) -> bytes:
        self.reads.append(desc.digest)
        try:
            return self.docs[desc.digest]
        except KeyError:
            raise NotFound(desc.digest) from None


def _desc(d: dict[str, object]) -> Descriptor:
    return Descriptor(str(d["mediaType"]), str(d["digest"]), int(str(d["size"])))


def _leaf(media_type: str, name: str) -> dict[str, object]:
    return {"mediaType": media_type, "digest": "sha256:" + name * 64, "size": 1}


def _manifest(blobs: Blobs, config: str, *layers: str) -> dict[str, object]:
    doc = {
        "schemaVersion": 2,
        "mediaType": MANIFEST,
        "config": _leaf(CONFIG, config),
        "layers": [_leaf(LAYER, x) for x in layers],
    }
    return blobs.add(MANIFEST, doc)


def _index(blobs: Blobs, *manifests: dict[str, object]) -> dict[str, object]:
    return blobs.add(INDEX, {"schemaVersion": 2, "mediaType": INDEX, "manifests": list(manifests)})


def test_pre_order_each_digest_once() -> None:
    blobs = Blobs()
    amd = _manifest(blobs, "a", "1", "2")
    arm = _manifest(blobs, "b", "2", "3")  # layer 2 shared
    amd["platform"] = {"os": "linux", "architecture": "amd64"}
    arm["platform"] = {"os": "linux", "architecture": "arm64"}
    root = _index(blobs, amd, arm)
    nodes = list(walk(blobs.read, _desc(root)))
    got = [(n.depth, n.role, n.desc.digest[7:8]) for n in nodes]
    assert got[0][:2] == (0, "index")
    assert got[1][:2] == (1, "manifest") and nodes[1].desc.digest == amd["digest"]
    assert got[2:5] == [(2, "config", "a"), (2, "layer", "1"), (2, "layer", "2")]
    assert got[5][:2] == (1, "manifest") and nodes[5].platform["architecture"] == "arm64"
    assert got[6:] == [(2, "config", "b"), (2, "layer", "3")]
    # a missing manifest ends its branch, flagged
    del blobs.docs[str(arm["digest"])]
    missing = [n for n in walk(blobs.read, _desc(root)) if not n.present]
    assert [n.desc.digest for n in missing] == [arm["digest"]]


def test_a_cycle_is_walked_once() -> None:
    # digests cannot really form a cycle, but a store or registry can answer as if they
    # did: the index below lists itself and a manifest that is its own layer
    blobs = Blobs()
    index = _leaf(INDEX, "c")
    manifest = _leaf(MANIFEST, "d")
    blobs.docs[str(index["digest"])] = json.dumps(
        {"schemaVersion": 2, "mediaType": INDEX, "manifests": [index, manifest, index]}
    ).encode()
    blobs.docs[str(manifest["digest"])] = json.dumps(
        {"schemaVersion": 2, "mediaType": MANIFEST, "config": index, "layers": [manifest]}
    ).encode()
    nodes = list(walk(blobs.read, _desc(index)))
    assert [n.desc.digest for n in nodes] == [index["digest"], manifest["digest"]]
    assert sorted(blobs.reads) == sorted([index["digest"], manifest["digest"]])


def _chain(blobs: Blobs, depth: int) -> dict[str, object]:
    """An index nested ``depth`` levels above a manifest (so the manifest is at ``depth``)."""
    node = _manifest(blobs, "e", "4")
    for _ in range(depth):
        node = _index(blobs, node)
    return node


def test_nesting_up_to_the_bound_is_walked() -> None:
    blobs = Blobs()
    nodes = list(walk(blobs.read, _desc(_chain(blobs, MAX_NESTING))))
    assert max(n.depth for n in nodes) == MAX_NESTING + 1  # the manifest's layer
    assert nodes[-1].role == "layer"


@pytest.mark.parametrize("depth", [MAX_NESTING + 1, 5000])
def test_deeper_nesting_is_a_clear_error_not_a_recursion_error(depth: int) -> None:
    blobs = Blobs()
    root = _desc(_chain(blobs, depth))
    with pytest.raises(ManifestError, match=f"nested more than {MAX_NESTING} deep") as caught:
        list(walk(blobs.read, root))
    assert isinstance(caught.value, InvalidArgument)  # invalid argument on the wire
    assert len(blobs.reads) == MAX_NESTING + 1  # nothing read past the bound
