"""Images: OCI and Docker media types, platforms, references, the image tree, and (built on
them) registry fetch and push and OCI image-layout import and export.

Image *records* (name -> target descriptor) live in the metadata layer
(:mod:`contentd.metadata.images`); this package reads and writes the content
they point at.
"""

from contentd.images.media import (
    MEDIA_TYPES_INDEX,
    MEDIA_TYPES_MANIFEST,
    ManifestError,
    children,
    is_index,
    is_manifest,
    is_non_distributable,
    parse_descriptor,
)
from contentd.images.platforms import Platform, default_platform, parse_platform
from contentd.images.tree import Node, walk

__all__ = [
    "MEDIA_TYPES_INDEX",
    "MEDIA_TYPES_MANIFEST",
    "ManifestError",
    "Node",
    "Platform",
    "children",
    "default_platform",
    "is_index",
    "is_manifest",
    "is_non_distributable",
    "parse_descriptor",
    "parse_platform",
    "walk",
]
