"""Open ingests that are not on disk yet, and the anonymous files that hold their bytes.

Creating an ingest directory costs a mkdir and five file creations, and
committing it five unlinks and an rmdir: journaled metadata operations that
cost more than everything else a 1 KiB ingest does. So a new ingest starts
*pending*: its bytes go to an anonymous file (``O_TMPFILE`` in ``ingest/``,
no name on disk), and a commit links that file straight to
``blobs/<alg>/<hex>``. It gets its containerd directory (``ref``,
``startedat``, ``updatedat``, ``total``, ``data``) only when it is closed
without a commit or grows past :data:`LIMIT` bytes, unless the write that takes
it past the limit also completes its declared total (a small blob written
whole: the commit comes next).

While pending, the ingest is known to this process only: the root's
:class:`PendingIngests` (held by its :class:`~contentd.local.roots.RootState`,
like the ref locks) lets status, list_statuses, walk_status_refs and abort of
every store on the root see it. A crash loses a pending ingest entirely
(at most :data:`LIMIT` bytes, or the one write that completed it, never
synced); reopening the ref then starts it over, which is what happens to any
ingest whose data a power loss took.

Where ``O_TMPFILE`` or ``/proc/self/fd`` is missing, every ingest is created
on disk at open, as before.
"""

from __future__ import annotations

import ctypes
import errno
import logging
import os
import threading
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from contentd.local.writer import LocalWriter

__all__ = ["LIMIT", "PendingIngests", "link_anonymous", "open_anonymous"]

log = logging.getLogger(__name__)

#: a pending ingest gets its directory once it holds this many bytes: small
#: blobs never need one, and a crash loses at most this much progress
LIMIT: Final = 1 << 20

_supported = hasattr(os, "O_TMPFILE") and os.path.isdir("/proc/self/fd")
# what a directory's filesystem allows is a fact of the machine, not of a store
_unsupported_dirs: set[str] = set()
_probed_dirs: set[str] = set()


class PendingIngests:
    """The pending ingests of one store root: ref -> its open writer."""

    __slots__ = ("_mutex", "_writers")

    def __init__(self) -> None:
        # weak: a writer dropped without close is collected (its __del__ closes it), not kept here
        self._writers: weakref.WeakValueDictionary[str, LocalWriter] = weakref.WeakValueDictionary()
        self._mutex = threading.Lock()

    def add(self, ref: str, writer: LocalWriter) -> None:
        with self._mutex:
            self._writers[ref] = writer

    def get(self, ref: str) -> LocalWriter | None:
        with self._mutex:
            return self._writers.get(ref)

    def pop(self, ref: str, writer: LocalWriter | None = None) -> LocalWriter | None:
        """Remove the entry (only if it is ``writer``, when given); returns what was removed."""
        with self._mutex:
            held = self._writers.get(ref)
            if held is None or (writer is not None and held is not writer):
                return None
            del self._writers[ref]
            return held

    def abort(self, ref: str) -> None:
        """Forget a pending ingest: its writer can then neither keep nor commit it."""
        with self._mutex:
            held = self._writers.pop(ref, None)
        if held is not None:
            held._aborted()

    def writers(self) -> list[LocalWriter]:
        with self._mutex:
            return list(self._writers.values())


def open_anonymous(directory: str) -> int | None:
    """An unnamed, writable regular file on ``directory``'s filesystem; None if unsupported.

    The first time per directory, a probe file is linked next to
    ``directory`` and removed again, so a system where the link through /proc
    is refused (no O_TMPFILE support, /proc hidden, a sandbox) creates every
    ingest on disk instead of failing at commit.
    """
    if not _supported or directory in _unsupported_dirs:
        return None
    try:
        fd = os.open(directory, os.O_RDWR | os.O_TMPFILE | os.O_CLOEXEC, 0o666)
    except OSError as err:
        if err.errno in (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL):
            _unsupported_dirs.add(directory)  # no O_TMPFILE on this filesystem: stop asking
            return None
        raise
    if directory not in _probed_dirs and not _probe(directory):
        os.close(fd)
        _unsupported_dirs.add(directory)
        return None
    _probed_dirs.add(directory)
    return fd


def _probe(directory: str) -> bool:
    # beside the directory (the store root for ingest/), where containerd looks for nothing
    name = os.path.join(
        os.path.dirname(directory), f".contentd-link-probe-{os.getpid()}-{threading.get_ident()}"
    )
    fd = os.open(directory, os.O_RDWR | os.O_TMPFILE | os.O_CLOEXEC, 0o666)
    try:
        link_anonymous(fd, name)
    except OSError as err:
        log.info("no links to anonymous files in %s (%s): ingests start on disk", directory, err)
        return False
    finally:
        os.close(fd)
    os.unlink(name)
    return True


def link_anonymous(fd: int, path: str) -> None:
    """Give the anonymous file ``fd`` the name ``path`` (FileExistsError if it is taken).

    ``linkat(AT_FDCWD, "/proc/self/fd/N", AT_FDCWD, path, AT_SYMLINK_FOLLOW)``
    through ctypes: ``os.link`` calls plain ``link(2)`` unless dir fds are
    given, and that links the /proc symlink itself (EXDEV).
    """
    global _linkat
    if _linkat is None:
        fn = ctypes.CDLL(None, use_errno=True).linkat
        fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        fn.restype = ctypes.c_int
        _linkat = fn
    if _linkat(_AT_FDCWD, f"/proc/self/fd/{fd}".encode(), _AT_FDCWD, os.fsencode(path), _FOLLOW):
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), path)


_AT_FDCWD: Final = -100
_FOLLOW: Final = 0x400  # AT_SYMLINK_FOLLOW
_linkat: Callable[[int, bytes, int, bytes, int], int] | None = None
