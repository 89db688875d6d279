"""Labels: size validation and the well-known keys the garbage collector reads."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from contentd.content.errors import InvalidArgument

__all__ = [
    "LABEL_GC_EXPIRE",
    "LABEL_GC_FLAT",
    "LABEL_GC_REF_CONTENT",
    "LABEL_GC_REF_SNAPSHOT",
    "LABEL_GC_ROOT",
    "LABEL_NAMESPACE_SHAREABLE",
    "MAX_LABEL_SIZE",
    "content_refs",
    "validate_label",
    "validate_labels",
]

MAX_LABEL_SIZE: Final = 4096
LABEL_GC_ROOT: Final = "containerd.io/gc.root"
LABEL_GC_REF_CONTENT: Final = "containerd.io/gc.ref.content"
LABEL_GC_REF_SNAPSHOT: Final = "containerd.io/gc.ref.snapshot"
LABEL_GC_EXPIRE: Final = "containerd.io/gc.expire"
LABEL_GC_FLAT: Final = "containerd.io/gc.flat"
LABEL_NAMESPACE_SHAREABLE: Final = "containerd.io/namespace.shareable"


def validate_label(key: str, value: str) -> None:
    """Raise InvalidArgument unless ``len(key) + len(value) <= 4096`` bytes.

    An empty key is rejected too (containerd's bolt store fails on it with an
    unmapped error; InvalidArgument is the safe deviation the spec allows).
    """
    if not key:
        raise InvalidArgument("label key must not be empty")
    kb = key.encode()
    if len(kb) + len(value.encode()) > MAX_LABEL_SIZE:
        first = kb[:10].decode(errors="replace")
        raise InvalidArgument(
            f"label key and value greater than maximum size ({MAX_LABEL_SIZE} bytes), key: {first}"
        )


def validate_labels(labels: Mapping[str, str] | None) -> None:
    for key, value in (labels or {}).items():
        validate_label(key, value)


def content_refs(labels: Mapping[str, str]) -> list[str]:
    """Digests a blob keeps alive through ``containerd.io/gc.ref.content[./]…`` labels."""
    out: list[str] = []
    prefix = LABEL_GC_REF_CONTENT
    for key, value in labels.items():
        if key.startswith(prefix) and (len(key) == len(prefix) or key[len(prefix)] in "./"):
            out.append(value)
    return out
