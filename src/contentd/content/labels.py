"""Labels: size validation and the well-known keys the garbage collector reads."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Final

from contentd.content.errors import InvalidArgument

if TYPE_CHECKING:
    from contentd.content.store import LabelStore
    from contentd.content.types import Info

__all__ = [
    "LABEL_GC_EXPIRE",
    "LABEL_GC_FLAT",
    "LABEL_GC_REF_CONTENT",
    "LABEL_GC_REF_SNAPSHOT",
    "LABEL_GC_ROOT",
    "LABEL_NAMESPACE_SHAREABLE",
    "MAX_LABEL_SIZE",
    "apply_label_update",
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


def apply_label_update(store: LabelStore, info: Info, fieldpaths: Sequence[str]) -> None:
    """Update ``info.digest``'s labels in ``store`` as containerd's Update does.

    ``labels`` (also the default, with no field paths) replaces them all with
    ``info.labels``; ``labels.<key>`` sets that key from ``info.labels`` (an
    absent or empty value removes it). Any other field path is InvalidArgument,
    raised before anything changes.
    """
    given = dict(info.labels or {})
    replace = False
    changes: dict[str, str] = {}
    for fieldpath in fieldpaths or ("labels",):
        if fieldpath.startswith("labels."):
            key = fieldpath[len("labels.") :]
            changes[key] = given.get(key, "")
        elif fieldpath == "labels":
            replace = True
        else:
            raise InvalidArgument(
                f'cannot update "{fieldpath}" field on content info "{info.digest}"'
            )
    if replace:
        store.set(info.digest, given)
    if changes:
        store.update(info.digest, changes)
