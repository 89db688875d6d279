"""Media types and the descriptors an index or a manifest names (OCI image-spec 1.0/1.1,
Docker schema 2).

Manifest and index bodies come from registries and archives: hostile input. They are
parsed as JSON no larger than :data:`MAX_MANIFEST_SIZE`, every descriptor is checked
(a valid digest, a non-negative integer size, a string media type) and anything else is
:class:`ManifestError` (an ``InvalidArgument``) naming the blob.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, Final

from contentd.content import digest as digests
from contentd.content.errors import ContentError, InvalidArgument
from contentd.content.types import Descriptor

__all__ = [
    "MAX_MANIFEST_SIZE",
    "MAX_NESTING",
    "MEDIA_TYPES_INDEX",
    "MEDIA_TYPES_MANIFEST",
    "MT_DOCKER_CONFIG",
    "MT_DOCKER_INDEX",
    "MT_DOCKER_MANIFEST",
    "MT_OCI_CONFIG",
    "MT_OCI_INDEX",
    "MT_OCI_MANIFEST",
    "ManifestError",
    "check_nesting",
    "children",
    "descriptor_to_json",
    "gc_labels",
    "is_index",
    "is_manifest",
    "is_non_distributable",
    "parse_descriptor",
    "parse_document",
]

MT_OCI_INDEX: Final = "application/vnd.oci.image.index.v1+json"
MT_OCI_MANIFEST: Final = "application/vnd.oci.image.manifest.v1+json"
MT_OCI_CONFIG: Final = "application/vnd.oci.image.config.v1+json"
MT_DOCKER_INDEX: Final = "application/vnd.docker.distribution.manifest.list.v2+json"
MT_DOCKER_MANIFEST: Final = "application/vnd.docker.distribution.manifest.v2+json"
MT_DOCKER_CONFIG: Final = "application/vnd.docker.container.image.v1+json"
MEDIA_TYPES_INDEX: Final = (MT_OCI_INDEX, MT_DOCKER_INDEX)
MEDIA_TYPES_MANIFEST: Final = (MT_OCI_MANIFEST, MT_DOCKER_MANIFEST)
#: manifests and indexes are small; anything bigger is refused rather than parsed
MAX_MANIFEST_SIZE: Final = 4 << 20
#: how deep manifests and indexes may sit under an image's root (the root is depth 0; real
#: images nest two deep, index -> manifest); deeper is a ManifestError, not a long walk
MAX_NESTING: Final = 32

_NON_DISTRIBUTABLE: Final = (
    "application/vnd.oci.image.layer.nondistributable.v1.tar",
    "application/vnd.docker.image.rootfs.foreign.diff.tar",
)


class ManifestError(InvalidArgument):
    """A manifest or index that is not what its media type says."""


def check_nesting(digest: str, depth: int) -> None:
    """ManifestError when a manifest or index at ``depth`` is deeper than
    :data:`MAX_NESTING`."""
    if depth > MAX_NESTING:
        raise ManifestError(f"{digest}: manifests and indexes nested more than {MAX_NESTING} deep")


def is_index(media_type: str) -> bool:
    return media_type in MEDIA_TYPES_INDEX


def is_manifest(media_type: str) -> bool:
    return media_type in MEDIA_TYPES_MANIFEST


def is_non_distributable(media_type: str) -> bool:
    """Layers registries do not serve (containerd's ``images.IsNonDistributable``)."""
    return media_type.startswith(_NON_DISTRIBUTABLE)


def parse_descriptor(obj: object, where: str = "descriptor") -> Descriptor:
    """A :class:`Descriptor` from its JSON object; ManifestError unless well-formed."""
    if not isinstance(obj, dict):
        raise ManifestError(f"{where}: not an object")
    media_type = obj.get("mediaType", "")
    digest = obj.get("digest")
    size = obj.get("size")
    if not isinstance(media_type, str):
        raise ManifestError(f"{where}: mediaType is not a string")
    if not isinstance(digest, str):
        raise ManifestError(f"{where}: digest missing")
    try:
        digests.parse(digest)
    except ContentError as err:
        raise ManifestError(f"{where}: digest {digest!r}: {err.context or err}") from None
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise ManifestError(f"{where}: size must be a non-negative integer")
    annotations = obj.get("annotations") or {}
    if not isinstance(annotations, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in annotations.items()
    ):
        raise ManifestError(f"{where}: annotations must map strings to strings")
    urls = obj.get("urls") or []
    if not isinstance(urls, list) or not all(isinstance(u, str) for u in urls):
        raise ManifestError(f"{where}: urls must be strings")
    return Descriptor(
        media_type=media_type,
        digest=digest,
        size=size,
        urls=tuple(urls),
        annotations=dict(annotations),
    )


def descriptor_to_json(desc: Descriptor, **extra: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"mediaType": desc.media_type, "digest": desc.digest, "size": desc.size}
    if desc.urls:
        out["urls"] = list(desc.urls)
    if desc.annotations:
        out["annotations"] = dict(desc.annotations)
    out.update(extra)
    return out


def parse_document(data: bytes, desc: Descriptor) -> dict[str, Any]:
    """The JSON object of a manifest or index ``desc`` names."""
    if len(data) > MAX_MANIFEST_SIZE:
        raise ManifestError(f"{desc.digest}: {len(data)} bytes is too big for a manifest")
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError) as err:
        raise ManifestError(f"{desc.digest}: not JSON: {err}") from None
    if not isinstance(doc, dict):
        raise ManifestError(f"{desc.digest}: not a JSON object")
    declared = doc.get("mediaType")
    if declared is not None and declared != desc.media_type and desc.media_type:
        # a manifest declaring another type than its descriptor: refuse (OCI 1.1 requires
        # them to match; a registry serving such a thing is confused or hostile)
        raise ManifestError(
            f"{desc.digest}: mediaType {declared!r} does not match descriptor {desc.media_type!r}"
        )
    return doc


def children(
    desc: Descriptor, data: bytes
) -> tuple[list[tuple[Descriptor, Mapping[str, Any]]], Descriptor | None, list[Descriptor]]:
    """What an index or manifest names: ``(manifests with their platform objects, config,
    layers)``. An index has only manifests; a manifest only a config and layers; anything
    else has none."""
    if is_index(desc.media_type):
        doc = parse_document(data, desc)
        entries = doc.get("manifests")
        entries = [] if entries is None else entries
        if not isinstance(entries, list):
            raise ManifestError(f"{desc.digest}: manifests is not a list")
        out: list[tuple[Descriptor, Mapping[str, Any]]] = []
        for i, entry in enumerate(entries):
            child = parse_descriptor(entry, f"{desc.digest}: manifests[{i}]")
            platform = entry.get("platform") or {}
            if not isinstance(platform, dict):
                raise ManifestError(f"{desc.digest}: manifests[{i}].platform is not an object")
            out.append((child, platform))
        return out, None, []
    if is_manifest(desc.media_type):
        doc = parse_document(data, desc)
        config = parse_descriptor(doc.get("config"), f"{desc.digest}: config")
        entries = doc.get("layers")
        entries = [] if entries is None else entries
        if not isinstance(entries, list):
            raise ManifestError(f"{desc.digest}: layers is not a list")
        layers = [
            parse_descriptor(entry, f"{desc.digest}: layers[{i}]")
            for i, entry in enumerate(entries)
        ]
        return [], config, layers
    return [], None, []


def gc_labels(
    manifests: Sequence[Descriptor], config: Descriptor | None, layers: Sequence[Descriptor]
) -> dict[str, str]:
    """The ``containerd.io/gc.ref.content`` labels containerd's pull and import put on an
    index (``.m.<i>``, over the manifests it kept) or a manifest (``.config``, ``.l.<i>``)."""
    labels = {f"containerd.io/gc.ref.content.m.{i}": m.digest for i, m in enumerate(manifests)}
    if config is not None:
        labels["containerd.io/gc.ref.content.config"] = config.digest
    for i, layer in enumerate(layers):
        labels[f"containerd.io/gc.ref.content.l.{i}"] = layer.digest
    return labels
