"""The local store's Writer: one open ingest, appended to and then committed."""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import shutil
import threading
from collections.abc import Mapping
from datetime import datetime
from types import TracebackType
from typing import TYPE_CHECKING, Self

from contentd.content import digest as digests
from contentd.content.errors import (
    AlreadyExists,
    DigestMismatch,
    FailedPrecondition,
    SizeMismatch,
    Unknown,
)
from contentd.content.types import Status, utcnow
from contentd.local.layout import IngestPaths, fsync_dir, write_timestamp

if TYPE_CHECKING:
    import hashlib

    from contentd.local.store import LocalStore

__all__ = ["LocalWriter"]

log = logging.getLogger(__name__)


class LocalWriter:
    """Holds the ref lock from open until :meth:`close` or :meth:`commit`."""

    def __init__(
        self,
        store: LocalStore,
        ref: str,
        paths: IngestPaths,
        fd: int,
        *,
        offset: int,
        total: int,
        hasher: hashlib._Hash,
        started_at: datetime,
        updated_at: datetime,
    ) -> None:
        self._store = store
        self._ref = ref
        self._paths = paths
        self._fd: int | None = fd
        self._offset = offset
        self._total = total
        self._hasher = hasher
        self._started_at = started_at
        self._updated_at = updated_at

    # -- Writer protocol -------------------------------------------------

    def write(self, data: bytes) -> int:
        fd = self._require_open("write")
        view = memoryview(data)
        written = 0
        while written < len(view):
            written += os.pwrite(fd, view[written:], self._offset + written)
        self._hasher.update(view)
        self._offset += written
        self._updated_at = utcnow()
        return written

    def digest(self) -> str:
        return f"{digests.CANONICAL}:{self._hasher.hexdigest()}"

    def status(self) -> Status:
        return Status(
            ref=self._ref,
            offset=self._offset,
            total=self._total,
            started_at=self._started_at,
            updated_at=self._updated_at,
        )

    def truncate(self, size: int) -> None:
        if size != 0:
            raise Unknown("Truncate: unsupported size")
        fd = self._require_open("truncate")
        os.ftruncate(fd, 0)
        self._offset = 0
        self._hasher = digests.new_hasher()
        self._updated_at = utcnow()

    def commit(
        self,
        size: int = 0,
        expected: str | None = None,
        labels: Mapping[str, str] | None = None,
    ) -> None:
        try:
            self._commit(size, expected or "", labels)
        finally:
            self._store._locks.unlock(self._ref)

    def close(self) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
            try:
                write_timestamp(self._paths.updatedat, self._updated_at)
            except OSError:  # aborted underneath us: nothing left to resume
                log.debug("ingest %s vanished before close", self._ref)
            self._store._locks.unlock(self._ref)

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
        if self._fd is not None:
            with contextlib.suppress(Exception):
                self.close()

    # -- internals -------------------------------------------------------

    def _require_open(self, op: str) -> int:
        if self._fd is None:
            raise FailedPrecondition(f"cannot {op} on closed writer")
        return self._fd

    def _commit(self, size: int, expected: str, labels: Mapping[str, str] | None) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            raise FailedPrecondition("cannot commit on closed writer")
        try:
            os.fsync(fd)
            actual_size = os.fstat(fd).st_size
            mode = os.fstat(fd).st_mode & 0o777
        finally:
            os.close(fd)
        if size > 0 and size != actual_size:
            raise SizeMismatch(size, actual_size)
        actual = self.digest()
        if expected and expected != actual:
            raise DigestMismatch(expected, actual)
        self._store._publish(self._paths, actual, mode, labels)


def publish_blob(
    layout_blob_dir: str, source: str, target: str, ingest_dir: str, digest: str
) -> None:
    """Link ``source`` to ``target`` atomically, exactly once per digest.

    ``link(2)`` fails with EEXIST if the blob is already there, so of several
    writers committing the same bytes at once exactly one wins; every other
    gets AlreadyExists and its ingest is discarded. The ingest's name for the
    data stays until the blob's directory is synced, so a crash leaves either a
    resumable ingest or a durable blob (or both, which resume handles).
    """
    _ensure_dir(layout_blob_dir)
    try:
        os.link(source, target)
    except FileExistsError:
        shutil.rmtree(ingest_dir, ignore_errors=True)
        raise AlreadyExists(f"content {digest}") from None
    except OSError as err:
        if err.errno not in (errno.EPERM, errno.ENOTSUP, errno.EXDEV):
            raise
        # no hard links on this filesystem: an exclusive create stands in for link
        _publish_by_rename(source, target, ingest_dir, digest)
    fsync_dir(layout_blob_dir)


def _ensure_dir(path: str) -> None:
    """Create ``path`` (and its parent) durably if missing: mkdir, then fsync the parent."""
    if os.path.isdir(path):
        return
    parent = os.path.dirname(path)
    _ensure_dir(parent)
    try:
        os.mkdir(path, 0o755)
    except FileExistsError:
        return
    fsync_dir(parent)


_rename_mutex = threading.Lock()


def _publish_by_rename(source: str, target: str, ingest_dir: str, digest: str) -> None:
    # Without link(2) only this process can be kept from racing itself.
    with _rename_mutex:
        if os.path.lexists(target):
            shutil.rmtree(ingest_dir, ignore_errors=True)
            raise AlreadyExists(f"content {digest}")
        os.rename(source, target)
