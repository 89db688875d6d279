"""Early writeback: start writing an ingest's bytes to disk while it is still arriving.

Linux keeps written pages dirty in memory until a background threshold (10% of
RAM by default) or a 30 s expiry, so without help a 1 GiB ingest reaches the
disk only inside the commit's fsync, after the last byte arrived, and the
client waits for all of it there. ``sync_file_range(SYNC_FILE_RANGE_WRITE)``
queues the writeback of a range that is complete and returns without
waiting, so the disk works while the stream goes on and the commit fsync
only has the tail left (measured here on 512 MiB: the commit's fsync went
from about 1 s to 0.01-0.05 s).

It is a hint, never durability: the commit fsync still makes the data
durable, and where the call is missing (not Linux, no libc symbol) or fails,
nothing changes but the timing. Python's ``os`` has no binding, so ctypes
calls libc (ctypes releases the GIL around the call).
"""

from __future__ import annotations

import ctypes
import errno
import logging
import os
from collections.abc import Callable
from typing import Final

__all__ = ["WINDOW", "start_writeback", "syncfs"]

log = logging.getLogger(__name__)

#: bytes gathered before their writeback is started: large enough that the
#: call is rare (one per 8 one-MiB messages), small enough that the tail left
#: for the commit fsync is short
WINDOW: Final = 8 << 20

_SYNC_FILE_RANGE_WRITE: Final = 2


_Fn = Callable[[int, int, int, int], int]


def _load() -> _Fn | None:
    try:
        # the process's own symbols include libc's (no find_library: it forks ldconfig)
        fn = ctypes.CDLL(None, use_errno=True).sync_file_range
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    fn.restype = ctypes.c_int
    call: _Fn = fn
    return call


_sync_file_range: _Fn | None = None
_loaded = False


def start_writeback(fd: int, offset: int, length: int) -> None:
    """Queue ``[offset, offset+length)`` of ``fd`` for writeback; no waiting for it, no errors."""
    global _sync_file_range, _loaded
    if not _loaded:  # on first use, so importing the store stays cheap
        _sync_file_range, _loaded = _load(), True
    fn = _sync_file_range
    if fn is None or length <= 0:
        return
    if fn(fd, offset, length, _SYNC_FILE_RANGE_WRITE) != 0:
        err = ctypes.get_errno()
        # ENOSYS/EINVAL/ESPIPE (no support, odd file): stop trying; EIO etc.
        # surface at the commit fsync, which is where they must be reported
        log.debug("sync_file_range failed (errno %d); early writeback off", err)
        if err in (errno.EINVAL, errno.ESPIPE, errno.ENOSYS):
            _sync_file_range = None


_syncfs: Callable[[int], int] | None = None
_syncfs_loaded = False


def syncfs(path: str) -> bool:
    """``syncfs(2)`` the filesystem holding ``path`` (its every dirty file and directory,
    and since Linux 5.8 the errors of their writeback); False where it is missing or
    failed, and the caller syncs file by file instead."""
    global _syncfs, _syncfs_loaded
    if not _syncfs_loaded:
        loaded: Callable[[int], int] | None = None
        try:
            fn = ctypes.CDLL(None, use_errno=True).syncfs
        except (OSError, AttributeError):
            pass
        else:
            fn.argtypes = [ctypes.c_int]
            fn.restype = ctypes.c_int
            loaded = fn
        _syncfs, _syncfs_loaded = loaded, True
    call = _syncfs
    if call is None:
        return False
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        if call(fd) != 0:
            log.warning("syncfs failed (errno %d): syncing file by file", ctypes.get_errno())
            return False
    finally:
        os.close(fd)
    return True
