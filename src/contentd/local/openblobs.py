"""Blob files kept open between reads: ``reader_at`` without an open(2) per call.

``ctr content get`` reads a blob in 32 KiB Read RPCs, and every one opened the
blob, stat'ed it and closed it again (measured in-process: 20-90 us of a
30-110 us reader_at+read_at under load). A blob never changes once committed
- it is named by its digest and read-only - so one open file per blob can
serve every reader: :class:`OpenBlobs` keeps the most recently used
:data:`CAPACITY` of them, with a count of the readers using each. There is one
per store root, held by the root's :class:`~contentd.local.roots.RootState` and
so shared by all stores of the process on that root (like the ref locks); its
idle files are closed when the root's state goes.

Deleting a blob through any store of the process drops its entry (the file
is closed when its last reader closes), so a deleted blob is never served.
A blob deleted behind the process's back (another process on the same root,
which the daemon's lock rules out) could still be read from an open entry.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Final

__all__ = ["CAPACITY", "OpenBlob", "OpenBlobs"]

#: open blob files kept beyond their readers, per store root
CAPACITY: Final = 64


class OpenBlob:
    """One open blob file; closed once it has left the table and its last reader is gone."""

    __slots__ = ("digest", "fd", "listed", "readers", "size")

    def __init__(self, digest: str, fd: int, size: int) -> None:
        self.digest = digest
        self.fd = fd
        self.size = size
        self.readers = 0
        self.listed = True


class OpenBlobs:
    """The open blob files of one store root, by digest."""

    __slots__ = ("_forgets", "_mutex", "_table", "capacity")

    def __init__(self, capacity: int = CAPACITY) -> None:
        self.capacity = capacity
        self._table: OrderedDict[str, OpenBlob] = OrderedDict()
        self._mutex = threading.Lock()
        self._forgets = 0  # deletions so far: an open that raced one is not listed

    def acquire(self, digest: str, path: str, opener: Callable[[str], int]) -> OpenBlob:
        """The open file of ``path`` (opened with ``opener`` if not open), with one more reader."""
        table = self._table
        with self._mutex:
            blob = table.get(digest)
            if blob is not None:
                blob.readers += 1
                table.move_to_end(digest)
                return blob
            forgets = self._forgets
        fd = opener(path)  # outside the lock: FileNotFoundError propagates
        try:
            size = os.fstat(fd).st_size
        except BaseException:
            os.close(fd)
            raise
        closing: list[OpenBlob] = []
        with self._mutex:
            blob = table.get(digest)
            if blob is not None:  # opened by another thread meanwhile: use that one
                blob.readers += 1
                table.move_to_end(digest)
                closing.append(OpenBlob(digest, fd, size))
            elif forgets != self._forgets:
                # a blob was deleted while this one was opened: maybe this one, whose
                # file must then not be listed (the deleter's forget has run already)
                blob = OpenBlob(digest, fd, size)
                blob.readers, blob.listed = 1, False
            else:
                blob = table[digest] = OpenBlob(digest, fd, size)
                blob.readers = 1
                while len(table) > self.capacity:
                    _, old = table.popitem(last=False)
                    old.listed = False
                    if old.readers == 0:
                        closing.append(old)
        for extra in closing:
            os.close(extra.fd)
        return blob

    def release(self, blob: OpenBlob) -> None:
        """A reader is done with ``blob``."""
        with self._mutex:
            blob.readers -= 1
            close = not blob.listed and blob.readers == 0
        if close:
            os.close(blob.fd)

    def forget(self, digest: str) -> None:
        """The blob was deleted (call it after the unlink): no new reader gets its file."""
        with self._mutex:
            self._forgets += 1
            blob = self._table.pop(digest, None)
            if blob is None:
                return
            blob.listed = False
            close = blob.readers == 0
        if close:
            os.close(blob.fd)

    def close(self) -> None:
        """Drop every entry: idle files close now, the others when their last reader is done."""
        with self._mutex:
            blobs = list(self._table.values())
            self._table.clear()
            closing = []
            for blob in blobs:
                blob.listed = False
                if blob.readers == 0:
                    closing.append(blob)
        for blob in closing:
            os.close(blob.fd)
