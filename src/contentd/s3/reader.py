"""Reads of a blob too big for the read cache: ranged GETs of aligned windows.

containerd reads through one ``reader_at`` per 32 KiB Read call, so the windows
are kept by the store (the few most recently used, bounded), not by a reader:
consecutive readers of one blob share each GET.
"""

from __future__ import annotations

from types import TracebackType
from typing import TYPE_CHECKING, Final, Self

from contentd.content.errors import FailedPrecondition, InvalidArgument

if TYPE_CHECKING:
    from contentd.s3.store import S3Store

__all__ = ["WINDOW", "RangedReaderAt"]

#: bytes per ranged GET (a window starts at a multiple of it)
WINDOW: Final = 8 << 20


class RangedReaderAt:
    """A ReaderAt over one object, read in :data:`WINDOW`-aligned ranges."""

    def __init__(self, store: S3Store, key: str, size: int) -> None:
        self._store = store
        self._key = key
        self._size = size
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
        end = min(offset + n, self._size)
        out = []
        while offset < end:
            index = offset // WINDOW
            window = self._store._window(self._key, index, self._size)
            start = offset - index * WINDOW
            piece = window[start : start + (end - offset)]
            if not piece:
                break
            out.append(piece)
            offset += len(piece)
        return b"".join(out)

    def close(self) -> None:
        self._closed = True

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
