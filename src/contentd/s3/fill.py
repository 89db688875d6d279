"""A blob being copied from S3 into the read cache, readable while it arrives.

A cold read used to wait for the whole blob (one GET, written and hashed) before
its first byte: for a 512 MiB layer, seconds in which containerd's unpack could
not start. A :class:`Fill` runs that GET on a store thread instead and lets
readers (:class:`FillReaderAt`) read every byte as soon as it is on local disk,
waiting only for the bytes they ask for. The cache entry gets its digest's name
only once the whole blob matched its size and digest (:class:`CacheFill`); until
then readers get the bytes as S3 sent them, as a ranged read of a blob too big
for the cache does.

A fill that fails on the way (S3 unreachable, a timeout) leaves its readers to
ranged GETs for what they still need; one whose bytes fail verification fails
its readers' later reads, as a whole-blob fill does.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Final, Self

from contentd.content.errors import ContentError, FailedPrecondition, InvalidArgument
from contentd.content.store import ReaderAt
from contentd.local.reader import FileReaderAt
from contentd.s3.cache import CacheFill

__all__ = ["STALL_TIMEOUT", "Fill", "FillReaderAt"]

#: seconds a reader waits for a fill that makes no progress, then reads by range
STALL_TIMEOUT: Final = 60.0


class Fill:
    """The state of one fill, shared by its thread and its readers."""

    def __init__(self, pending: CacheFill, fallback: Callable[[], ReaderAt]) -> None:
        self.digest = pending.digest
        self.size = pending.size
        self.pending = pending
        #: a reader for what the fill could not bring (ranged GETs)
        self._fallback = fallback
        self._cond = threading.Condition(threading.Lock())
        self._done = 0
        self._refs = 1  # the fill's thread
        #: set when the fill stopped early: its readers read by range
        self.failed: ContentError | None = None
        #: set when the bytes failed verification: its readers fail
        self.corrupt: ContentError | None = None
        self.finished = False
        #: dropped while running (the blob was deleted): never committed
        self.cancelled = False

    # -- the fill's thread ---------------------------------------------------

    def advance(self, n: int) -> None:
        with self._cond:
            self._done += n
            self._cond.notify_all()

    def finish(
        self, *, failed: ContentError | None = None, corrupt: ContentError | None = None
    ) -> None:
        with self._cond:
            self.failed = failed
            self.corrupt = corrupt
            self.finished = True
            self._cond.notify_all()
        self.release()

    # -- readers ---------------------------------------------------------------

    def reader(self) -> FillReaderAt | None:
        """A reader of this fill; None once it ended (open the cache instead)."""
        with self._cond:
            if self.finished or self.cancelled:
                return None
            self._refs += 1
        return FillReaderAt(self)

    def release(self) -> None:
        with self._cond:
            self._refs -= 1
            last = self._refs == 0
        if last:
            self.pending.close()

    def wait(self, end: int) -> bool:
        """Wait until the first ``end`` bytes are on disk: True, or False when the fill
        stopped before (the reader reads by range). Raises the verification error.

        A read of the blob's last bytes waits for the verification too: no reader gets
        all of an object that fails it, and once it has, the cache holds the blob."""
        with self._cond:
            deadline = time.monotonic() + STALL_TIMEOUT
            seen = self._done
            while self._done < end or (end >= self.size and not self.finished):
                if self.corrupt is not None:
                    raise self.corrupt
                if self.finished or self.failed is not None:
                    return False
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
                if self._done != seen:  # progress: a new stall timeout
                    seen = self._done
                    deadline = time.monotonic() + STALL_TIMEOUT
            if self.corrupt is not None:
                raise self.corrupt
            return True

    def holds(self, end: int) -> bool:
        """Whether a read of the first ``end`` bytes would not wait (no lock: a hint)."""
        return (
            self._done >= end
            and (end < self.size or self.finished)
            and self.failed is None
            and self.corrupt is None
        )

    def ranged(self) -> ReaderAt:
        return self._fallback()


class FillReaderAt:
    """A ReaderAt over a :class:`Fill`: waits for the bytes it reads, then reads them
    from the fill's file (or by ranged GETs when the fill stopped early)."""

    def __init__(self, fill: Fill) -> None:
        fd = fill.pending.fd
        assert fd is not None  # open while the fill's thread or a reader holds a reference
        self._fill: Fill | None = fill
        # positional reads of the fill's file; closing it releases this reader's reference
        self._file = FileReaderAt(fd, fill.size, fill.release)
        self._ranged: Callable[[int, int], bytes] | None = None

    @property
    def size(self) -> int:
        return self._file.size

    def read_at(self, offset: int, n: int) -> bytes:
        if offset < 0:
            raise InvalidArgument(f"read at negative offset {offset}")
        fill = self._fill
        if fill is None:
            raise FailedPrecondition("read on closed reader")
        size = self._file.size
        if offset >= size or n <= 0:
            return b""
        n = min(n, size - offset)
        if self._ranged is None and fill.wait(offset + n):
            return self._file.read_at(offset, n)
        if self._ranged is None:
            self._ranged = fill.ranged().read_at
        return self._ranged(offset, n)

    def close(self) -> None:
        self._fill = None
        self._file.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
