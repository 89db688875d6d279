"""Positional reads of one committed blob file."""

from __future__ import annotations

import os
from collections.abc import Callable
from types import TracebackType
from typing import Self

from contentd.content.errors import FailedPrecondition, InvalidArgument

__all__ = ["FileReaderAt"]


class FileReaderAt:
    """A ReaderAt over an open file; ``size`` is fixed when opened.

    With ``on_close`` the file is shared (see :mod:`contentd.local.openblobs`):
    closing the reader calls it instead of closing the file.
    """

    def __init__(
        self, fd: int, size: int | None = None, on_close: Callable[[], None] | None = None
    ) -> None:
        self._fd: int | None = fd
        self._size = os.fstat(fd).st_size if size is None else size
        self._on_close = on_close

    @property
    def size(self) -> int:
        return self._size

    def read_at(self, offset: int, n: int) -> bytes:
        if offset < 0:
            raise InvalidArgument(f"read at negative offset {offset}")
        if self._fd is None:
            raise FailedPrecondition("read on closed reader")
        if offset >= self._size or n <= 0:
            return b""
        n = min(n, self._size - offset)
        data = os.pread(self._fd, n, offset)
        while len(data) < n:  # a short read before the end: keep going
            more = os.pread(self._fd, n - len(data), offset + len(data))
            if not more:
                break
            data += more
        return data

    def readinto_at(self, offset: int, buf: memoryview) -> int:
        """Fill ``buf`` from ``offset``; returns the count (0 at or past the end)."""
        if offset < 0:
            raise InvalidArgument(f"read at negative offset {offset}")
        if self._fd is None:
            raise FailedPrecondition("read on closed reader")
        want = min(len(buf), max(self._size - offset, 0))
        done = 0
        while done < want:
            got = os.preadv(self._fd, [buf[done:want]], offset + done)
            if got == 0:
                break
            done += got
        return done

    def close(self) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        if self._on_close is not None:
            self._on_close()
        else:
            os.close(fd)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __del__(self) -> None:
        if getattr(self, "_fd", None) is not None:
            self.close()
