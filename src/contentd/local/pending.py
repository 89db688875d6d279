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

Creating the anonymous file is itself journaled inode work (about half a
millisecond of kernel time on ext4, most of what opening a small ingest
waits for), so one is made ahead per directory on a background thread
(:class:`_Spares`) and the next open takes it.
"""

from __future__ import annotations

import contextlib
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
    if directory in _probed_dirs:
        fd = _spares.take(directory)
        if fd is not None:
            return fd
    try:
        fd = os.open(directory, os.O_RDWR | os.O_TMPFILE | os.O_CLOEXEC, 0o666)
    except OSError as err:
        if err.errno in (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL):
            _unsupported_dirs.add(directory)  # no O_TMPFILE on this filesystem: stop asking
            return None
        raise
    if directory not in _probed_dirs:
        if not _probe(directory):
            os.close(fd)
            _unsupported_dirs.add(directory)
            return None
        _probed_dirs.add(directory)
        _spares.ask(directory)
    return fd


class _Spares:
    """Anonymous files made ahead of need, a few per directory, on a background thread.

    Creating one is journaled inode work (about half a millisecond of kernel time on
    ext4) that every new ingest would otherwise wait for; :meth:`take` hands out a
    file made earlier. The thread is woken only when a directory runs low (at most
    one spare left), and then makes :attr:`per_directory` of them in one go: waking
    it costs the taker a futex wake and a round of GIL hand-offs, once per few
    ingests instead of once per ingest. A spare has no name, so a crash leaves
    nothing of it. At most :attr:`limit` are held (the oldest directory's oldest is
    closed); one whose directory is gone or now on another filesystem is discarded
    (a link to it would fail at commit); a forked child holds none of its parent's.
    """

    def __init__(self, limit: int = 8, per_directory: int = 4) -> None:
        self.limit = limit
        self.per_directory = per_directory
        self._reset()

    def _reset(self) -> None:
        self._files: dict[str, list[int]] = {}  # directory -> fds, oldest first
        self._wanted: list[str] = []
        self._cond = threading.Condition(threading.Lock())
        self._thread: threading.Thread | None = None

    def forked(self) -> None:
        """In a forked child: the parent's spares are the parent's (the fds are closed)."""
        for fds in self._files.values():
            for fd in fds:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._reset()

    def take(self, directory: str) -> int | None:
        """A spare made for ``directory`` (None if there is none yet); more are made when
        few are left."""
        with self._cond:
            fds = self._files.get(directory)
            fd = fds.pop() if fds else None
            if not fds:
                self._files.pop(directory, None)
            if len(fds or ()) <= 1:
                self._ask(directory)
        if fd is not None and not _same_filesystem(fd, directory):
            os.close(fd)
            return None
        return fd

    def ask(self, directory: str) -> None:
        """Have spares made for ``directory``."""
        with self._cond:
            self._ask(directory)

    def _ask(self, directory: str) -> None:
        if directory not in self._wanted:
            self._wanted.append(directory)
            self._cond.notify()
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run, name="contentd-spare-files", daemon=True
            )
            self._thread.start()

    def held(self) -> int:
        with self._cond:
            return sum(len(fds) for fds in self._files.values())

    def wait_made(self, directory: str) -> None:
        """Until the spares asked for ``directory`` are made or given up (for tests)."""
        with self._cond:
            while directory in self._wanted:
                self._cond.wait()

    def _run(self) -> None:
        cond = self._cond
        while True:
            with cond:
                while not self._wanted:
                    cond.wait()
                directory = self._wanted[0]
                want = min(self.per_directory, self.limit)
                made = len(self._files.get(directory, ())) >= want
            fd = None
            if not made:
                try:
                    fd = os.open(directory, os.O_RDWR | os.O_TMPFILE | os.O_CLOEXEC, 0o666)
                except OSError as err:
                    log.debug("no spare anonymous file in %s: %s", directory, err)
            with cond:
                if cond is not self._cond:  # forked meanwhile (in a child, never reached)
                    return
                if fd is not None:
                    fds = self._files.get(directory, [])
                    if len(fds) >= want:
                        with contextlib.suppress(OSError):  # this thread must not end
                            os.close(fd)
                    else:
                        # room within the limit, at other directories' cost (this one holds
                        # fewer than want <= limit: the others hold the rest)
                        while sum(len(f) for f in self._files.values()) >= self.limit:
                            self._drop_oldest(directory)
                        self._files.setdefault(directory, fds).append(fd)
                        if len(fds) < want:
                            continue  # another one for this directory before it leaves the list
                self._wanted.remove(directory)
                cond.notify_all()

    def _drop_oldest(self, keep: str) -> None:
        """Close the oldest spare of the directory, other than ``keep``, that has held
        spares longest (lock held)."""
        oldest = next(d for d in self._files if d != keep)
        fds = self._files[oldest]
        with contextlib.suppress(OSError):  # the thread must not end
            os.close(fds.pop(0))
        if not fds:
            del self._files[oldest]


def _same_filesystem(fd: int, directory: str) -> bool:
    try:
        return os.fstat(fd).st_dev == os.stat(directory).st_dev
    except OSError:
        return False


_spares = _Spares()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_spares.forked)


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
