"""Walking an image: index -> manifests -> config and layers.

:func:`walk` reads manifests and indexes through a ``read(desc) -> bytes`` callable
and yields every descriptor of the image depth first, each digest once, with its depth,
its role and (for manifests) the platform the index gave it. A missing manifest ends
that branch (the node says so); a malformed one, or one nested deeper than
:data:`~contentd.images.media.MAX_NESTING`, is :class:`~contentd.images.media.ManifestError`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from contentd.content.errors import NotFound
from contentd.content.types import Descriptor
from contentd.images.media import check_nesting, children, is_index, is_manifest
from contentd.images.platforms import Platform

__all__ = ["Node", "walk"]


@dataclass(frozen=True, slots=True)
class Node:
    """One descriptor of an image: ``role`` is ``index``, ``manifest``, ``config``,
    ``layer`` or ``blob``; ``present`` is False when the store does not hold it."""

    desc: Descriptor
    depth: int
    role: str
    platform: Mapping[str, Any] = field(default_factory=dict)
    present: bool = True


def _role(desc: Descriptor) -> str:
    if is_index(desc.media_type):
        return "index"
    if is_manifest(desc.media_type):
        return "manifest"
    return "blob"


def walk(
    read: Callable[[Descriptor], bytes],
    root: Descriptor,
    *,
    platforms: Sequence[Platform] = (),
    present: Callable[[Descriptor], bool] | None = None,
) -> Iterator[Node]:
    """Every descriptor under ``root``; with ``platforms``, only an index's manifests
    for those platforms (entries without a platform are kept). ``present`` decides the
    flag of leaves (config and layers), which are never read. The walk keeps its own
    stack (no recursion); an index or manifest deeper than
    :data:`~contentd.images.media.MAX_NESTING` is a ``ManifestError``."""
    seen: set[str] = set()
    # (descriptor, depth, role, platform), the next to visit last: pre-order, children
    # in document order
    stack: list[tuple[Descriptor, int, str, Mapping[str, Any]]] = [(root, 0, _role(root), {})]
    while stack:
        desc, depth, role, platform = stack.pop()
        if desc.digest in seen:
            continue
        seen.add(desc.digest)
        if role not in ("index", "manifest"):
            yield Node(desc, depth, role, platform, present(desc) if present else True)
            continue
        check_nesting(desc.digest, depth)
        try:
            data = read(desc)
        except NotFound:
            yield Node(desc, depth, role, platform, present=False)
            continue
        yield Node(desc, depth, role, platform)
        manifests, config, layers = children(desc, data)
        kids: list[tuple[Descriptor, int, str, Mapping[str, Any]]] = [
            (child, depth + 1, _role(child), child_platform)
            for child, child_platform in manifests
            if not (
                platforms
                and child_platform
                and not any(p.matches(child_platform) for p in platforms)
            )
        ]
        if config is not None:
            kids.append((config, depth + 1, "config", {}))
        kids.extend((layer, depth + 1, "layer", {}) for layer in layers)
        stack.extend(reversed(kids))
