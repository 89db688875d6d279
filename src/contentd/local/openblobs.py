"""Blob files kept open between reads: ``reader_at`` without an open(2) per call.

``ctr content get`` reads a blob in 32 KiB Read RPCs, and every one opened the
blob, stat'ed it and closed it again (measured in-process: 20-90 us of a
30-110 us reader_at+read_at under load). A blob never changes once committed
- it is named by its digest and read-only - so one open file per blob can
serve every reader: the table keeps the most recently used :data:`CAPACITY`
of them, shared by all stores of the process on the same root (like the ref
locks), with a count of the readers using each.

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

__all__ = ["CAPACITY", "OpenBlob", "acquire", "forget", "release"]

#: open blob files kept beyond their readers, per process
CAPACITY: Final = 64


class OpenBlob:
    """One open blob file; closed once it has left the table and its last reader is gone."""

    __slots__ = ("fd", "key", "listed", "readers", "size")

    def __init__(self, key: tuple[str, str], fd: int, size: int) -> None:
        self.key = key
        self.fd = fd
        self.size = size
        self.readers = 0
        self.listed = True


_table: OrderedDict[tuple[str, str], OpenBlob] = OrderedDict()
_mutex = threading.Lock()
_forgets = 0  # deletions so far: an open that raced one is not listed


def acquire(root: str, digest: str, path: str, opener: Callable[[str], int]) -> OpenBlob:
    """The open file of ``path`` (opened with ``opener`` if not open), with one more reader."""
    key = (root, digest)
    with _mutex:
        blob = _table.get(key)
        if blob is not None:
            blob.readers += 1
            _table.move_to_end(key)
            return blob
        forgets = _forgets
    fd = opener(path)  # outside the lock: FileNotFoundError propagates
    try:
        size = os.fstat(fd).st_size
    except BaseException:
        os.close(fd)
        raise
    closing: list[OpenBlob] = []
    with _mutex:
        blob = _table.get(key)
        if blob is not None:  # opened by another thread meanwhile: use that one
            blob.readers += 1
            _table.move_to_end(key)
            closing.append(OpenBlob(key, fd, size))
        elif forgets != _forgets:
            # a blob was deleted while this one was opened: maybe this one, whose
            # file must then not be listed (the deleter's forget has run already)
            blob = OpenBlob(key, fd, size)
            blob.readers, blob.listed = 1, False
        else:
            blob = _table[key] = OpenBlob(key, fd, size)
            blob.readers = 1
            while len(_table) > CAPACITY:
                _, old = _table.popitem(last=False)
                old.listed = False
                if old.readers == 0:
                    closing.append(old)
    for extra in closing:
        os.close(extra.fd)
    return blob


def release(blob: OpenBlob) -> None:
    """A reader is done with ``blob``."""
    with _mutex:
        blob.readers -= 1
        close = not blob.listed and blob.readers == 0
    if close:
        os.close(blob.fd)


def forget(root: str, digest: str) -> None:
    """The blob was deleted (call it after the unlink): no new reader gets its file."""
    global _forgets
    with _mutex:
        _forgets += 1
        blob = _table.pop((root, digest), None)
        if blob is None:
            return
        blob.listed = False
        close = blob.readers == 0
    if close:
        os.close(blob.fd)
