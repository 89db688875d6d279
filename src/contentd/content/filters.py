"""Content's filter adaptors: the fields containerd's filters see on ``Info`` and ``Status``.

The filter language itself is :mod:`contentd.filters`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Final, Protocol, final

from contentd.filters import Adaptor

__all__ = ["HasDigestAndLabels", "HasRef", "info_adaptor", "status_adaptor"]


class HasDigestAndLabels(Protocol):
    """What :func:`info_adaptor` reads: content ``Info``."""

    @property
    def digest(self) -> object: ...

    @property
    def labels(self) -> Mapping[str, str] | None: ...


class HasRef(Protocol):
    """What :func:`status_adaptor` reads: ingest ``Status``."""

    @property
    def ref(self) -> str: ...


_ABSENT: Final = ("", False)


def _label(labels: Mapping[str, str] | None, rest: Sequence[str]) -> tuple[str, bool]:
    if not labels:
        return _ABSENT
    key = ".".join(rest)
    value = labels.get(key)
    return _ABSENT if value is None else (value, True)


@final
class _InfoAdaptor:
    __slots__ = ("info",)

    def __init__(self, info: HasDigestAndLabels) -> None:
        self.info = info

    def field(self, path: Sequence[str], /) -> tuple[str, bool]:
        if not path:
            return _ABSENT
        head = path[0]
        if head == "digest":
            return str(self.info.digest), True
        if head == "labels":
            return _label(self.info.labels, path[1:])
        return _ABSENT  # includes "size", which containerd never reports present


def info_adaptor(info: HasDigestAndLabels) -> Adaptor:
    """containerd's adaptor for content ``Info``.

    ``digest`` is always present; ``size`` is never present; ``labels.a.b`` is the
    label ``"a.b"`` (absent when there are no labels).
    """
    return _InfoAdaptor(info)


@final
class _StatusAdaptor:
    __slots__ = ("status",)

    def __init__(self, status: HasRef) -> None:
        self.status = status

    def field(self, path: Sequence[str], /) -> tuple[str, bool]:
        if path and path[0] == "ref":
            return self.status.ref, True
        return _ABSENT


def status_adaptor(status: HasRef) -> Adaptor:
    """containerd's adaptor for ingest ``Status``: only ``ref`` (always present)."""
    return _StatusAdaptor(status)
