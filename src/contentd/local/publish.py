"""Publishing a committed ingest as its blob: the one step that makes content exist.

A writer whose data is fsynced and verified calls :func:`publish_blob`. The order
of what it does is the store's crash-safety argument: the blob gets its name by
``link(2)`` (exclusive: of several writers of the same bytes exactly one wins),
then its times and mode, then one sync of its directory makes all three durable,
and only then does the ingest lose its name for the data. A crash at any point
leaves a resumable ingest, a durable blob, or both (which resume handles).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import threading
import time

from contentd.content.errors import AlreadyExists
from contentd.local.layout import IngestPaths, fsync_dir, remove_ingest
from contentd.local.pending import link_anonymous

__all__ = ["publish_blob"]

log = logging.getLogger(__name__)


def publish_blob(
    blob_dir: str,
    fd: int,
    paths: IngestPaths | None,
    target: str,
    digest: str,
    mode: int,
    *,
    durable: bool = True,
) -> None:
    """Publish the fsynced ingest open as ``fd`` as ``target``, exactly once.

    ``paths`` is the ingest's directory, whose ``data`` is linked; None for a
    pending ingest, whose anonymous file is linked through ``/proc/self/fd``.
    ``link(2)`` fails with EEXIST if the blob is already there, so of several
    writers committing the same bytes at once exactly one wins; every other
    gets AlreadyExists and its ingest is discarded. The blob gets containerd's
    commit time and read-only mode through ``fd`` before its directory is
    synced, so that one sync makes the name, the times and the mode durable.
    The ingest's name for the data is removed only after that sync, so a crash
    leaves either a resumable ingest or a durable blob (or both, which resume
    handles).

    ``durable=False`` (a small blob whose bytes a metadata transaction has made
    durable already, see :mod:`contentd.metadata.settle`): the same, without
    the directory sync; the caller's settler makes the file and name durable.
    """
    try:
        _link(fd, paths, target, blob_dir)
    except FileExistsError:
        if paths is not None:
            remove_ingest(paths)
        raise AlreadyExists(f"content {digest}") from None
    except OSError as err:
        if err.errno not in (errno.EPERM, errno.ENOTSUP, errno.EXDEV) or paths is None:
            raise
        # no hard links on this filesystem: an exclusive create stands in for link
        _publish_by_rename(paths.data, target, paths, digest)
    # The blob is published; its times and mode are best effort, as in containerd.
    now_ns = time.time_ns()
    try:
        os.utime(fd, ns=(now_ns, now_ns))
        os.fchmod(fd, mode & ~0o333)
    except OSError as err:
        log.error("commit %s: cannot set times/mode: %s", digest, err)
    if durable:
        fsync_dir(blob_dir)
    if paths is not None:
        remove_ingest(paths)


def _link(fd: int, paths: IngestPaths | None, target: str, blob_dir: str) -> None:
    try:
        _link_once(fd, paths, target)
    except FileNotFoundError:
        # the first blob of its algorithm (or the ingest vanished: then this fails again)
        _ensure_dir(blob_dir)
        _link_once(fd, paths, target)


def _link_once(fd: int, paths: IngestPaths | None, target: str) -> None:
    if paths is None:
        link_anonymous(fd, target)
    else:
        os.link(paths.data, target)


def _ensure_dir(path: str) -> None:
    """Create ``path`` (and its parent) durably if missing: mkdir, then fsync the parent.

    Runs only when a link found no directory (the first blob of an algorithm), so the
    parent is synced even when another thread made the directory first: its sync may
    not have happened yet, and this commit must not return before it has.
    """
    parent = os.path.dirname(path)
    if not os.path.isdir(parent):
        _ensure_dir(parent)
    with contextlib.suppress(FileExistsError):
        os.mkdir(path, 0o755)
    fsync_dir(parent)


_rename_mutex = threading.Lock()


def _publish_by_rename(source: str, target: str, paths: IngestPaths, digest: str) -> None:
    # Without link(2) only this process can be kept from racing itself.
    with _rename_mutex:
        if os.path.lexists(target):
            remove_ingest(paths)
            raise AlreadyExists(f"content {digest}")
        os.rename(source, target)
