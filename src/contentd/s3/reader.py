"""Reads of a blob too big for the read cache: ranged GETs with a read-ahead window."""

from __future__ import annotations

from types import TracebackType
from typing import TYPE_CHECKING, Final, Self

from contentd.content.errors import FailedPrecondition, InvalidArgument

if TYPE_CHECKING:
    from contentd.s3.store import S3Store

__all__ = ["WINDOW", "RangedReaderAt"]

#: bytes fetched per GET at least, so small reads do not each cost a request
WINDOW: Final = 8 << 20


class RangedReaderAt:
    """A ReaderAt over one object, fetching ``WINDOW``-sized ranges as reads need them."""

    def __init__(self, store: S3Store, key: str, size: int) -> None:
        self._store = store
        self._key = key
        self._size = size
        self._start = 0
        self._window = b""
        self._closed = False

    @property
    def size(self) -> int:
        return self._size

    def read_at(self, offset: int, n: int) -> bytes:
        if offset < 0:
            raise InvalidArgument(f"read at negative offset {offset}")
        if self._closed:
            raise FailedPrecondition("read on closed reader")
        if offset >= self._size or n <= 0:
            return b""
        n = min(n, self._size - offset)
        start, window = self._start, self._window
        if not (start <= offset and offset + n <= start + len(window)):
            end = min(offset + max(n, WINDOW), self._size) - 1
            window = self._store._ranged_get(self._key, offset, end)
            start = offset
            self._start, self._window = start, window
        return window[offset - start : offset - start + n]

    def close(self) -> None:
        self._closed = True
        self._window = b""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
