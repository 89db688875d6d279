"""The Store contract, as small protocols composed the way containerd composes them.

``Store = Manager + Provider + IngestManager + Ingester``. Every store in
contentd (local, metadata, proxy, other backends) satisfies :class:`Store`, and
one conformance suite checks them all.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from types import TracebackType
from typing import Protocol, Self, runtime_checkable

from contentd.content.types import Descriptor, Info, Status

__all__ = [
    "IngestManager",
    "Ingester",
    "LabelStore",
    "Manager",
    "Provider",
    "ReaderAt",
    "Store",
    "Writer",
    "digest_of_target",
]


def digest_of_target(target: str | Descriptor) -> str:
    """The digest a reader is asked for: a digest string or a descriptor's digest."""
    return target.digest if isinstance(target, Descriptor) else target


@runtime_checkable
class ReaderAt(Protocol):
    """Random access to one committed blob. ``size`` is fixed when opened."""

    @property
    def size(self) -> int: ...

    def read_at(self, offset: int, n: int) -> bytes:
        """Up to ``n`` bytes at ``offset``: short at the end, ``b""`` at or past it."""
        ...

    def close(self) -> None: ...

    def __enter__(self) -> Self: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


@runtime_checkable
class Writer(Protocol):
    """One ingest, held exclusively by its ref until closed or committed."""

    def write(self, data: bytes | memoryview) -> int:
        """Append ``data``; returns how many bytes were written."""
        ...

    def digest(self) -> str:
        """Digest of everything written so far."""
        ...

    def status(self) -> Status: ...

    def truncate(self, size: int) -> None: ...

    def commit(
        self,
        size: int = 0,
        expected: str | None = None,
        labels: Mapping[str, str] | None = None,
    ) -> None:
        """Verify and publish the blob. Always releases the writer, even on error."""
        ...

    def close(self) -> None:
        """Release the writer and keep the ingest for resuming. Idempotent."""
        ...

    def __enter__(self) -> Self: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


class Provider(Protocol):
    def reader_at(self, target: str | Descriptor) -> ReaderAt: ...


class Ingester(Protocol):
    def writer(self, ref: str, total: int = 0, expected: str | None = None) -> Writer: ...


class Manager(Protocol):
    def info(self, digest: str) -> Info: ...

    def update(self, info: Info, *fieldpaths: str) -> Info: ...

    def walk(self, *filters: str) -> Iterator[Info]: ...

    def delete(self, digest: str) -> None: ...


class IngestManager(Protocol):
    def status(self, ref: str) -> Status: ...

    def list_statuses(self, *filters: str) -> list[Status]: ...

    def abort(self, ref: str) -> None: ...


@runtime_checkable
class Store(Manager, Provider, IngestManager, Ingester, Protocol):
    """The whole contract."""


class LabelStore(Protocol):
    """Optional label storage for a backend that keeps no labels of its own."""

    def get(self, digest: str) -> dict[str, str]: ...

    def set(self, digest: str, labels: Mapping[str, str]) -> None: ...

    def update(self, digest: str, labels: Mapping[str, str]) -> dict[str, str]:
        """Merge ``labels`` in; an empty value deletes the key. Returns the result."""
        ...
