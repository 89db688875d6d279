"""The local store's Writer: one open ingest, appended to and then committed."""

from __future__ import annotations

import contextlib
import errno
import logging
import os
from collections.abc import Mapping
from concurrent.futures import Future, wait
from datetime import datetime
from types import TracebackType
from typing import TYPE_CHECKING, Final, Self

from contentd._pools import SharedPool
from contentd.content import digest as digests
from contentd.content.errors import (
    AlreadyExists,
    DigestMismatch,
    FailedPrecondition,
    NotFound,
    ResourceExhausted,
    SizeMismatch,
    Unknown,
)
from contentd.content.types import Status, utcnow
from contentd.local import pending
from contentd.local.layout import (
    IngestPaths,
    Layout,
    create_ingest_files,
    remove_ingest,
    sync_ingest,
    write_timestamp,
)
from contentd.local.pending import link_anonymous
from contentd.local.publish import publish_blob
from contentd.local.writeback import WINDOW, start_writeback

if TYPE_CHECKING:
    import hashlib

    from contentd.content.store import LabelStore
    from contentd.local.roots import RootState

__all__ = ["LocalWriter"]

log = logging.getLogger(__name__)

#: a full disk or quota: ResourceExhausted, the ingest kept as it was
_NO_SPACE = frozenset({errno.ENOSPC, errno.EDQUOT})

#: A write at least this large is written to the file by a helper thread while the
#: writer's own thread hashes it. sha256 (about 0.7 ms a MiB with SHA-NI) and pwrite
#: into the page cache (about 0.3 ms a MiB) both release the GIL, so with two cores a
#: 1 MiB message costs the longer of the two instead of their sum; below this size
#: the hand-off (tens of microseconds) would cost more than it saves.
OVERLAP_MIN: Final = 256 << 10

#: helper threads for those writes: more than the cores would only queue on them
_OVERLAP_THREADS: Final = 4

_pool = SharedPool(_OVERLAP_THREADS, "contentd-pwrite")


def _pwrite_all(fd: int, data: bytes | memoryview, offset: int) -> int:
    """Write all of ``data`` at ``offset`` (a short write, after a signal or at a full
    disk, is finished or raises)."""
    size = len(data)
    written = os.pwrite(fd, data, offset)
    if written < size:
        view = memoryview(data)
        while written < size:
            written += os.pwrite(fd, view[written:], offset + written)
    return written


class LocalWriter:
    """Holds the ref lock from open until :meth:`close` or :meth:`commit`.

    A *pending* writer's ingest is not on disk yet: ``fd`` is an anonymous
    file, linked to ``data`` in a new ingest directory when the ingest is
    closed or reaches :data:`pending.LIMIT`, or straight to the blob at commit.
    """

    def __init__(
        self,
        state: RootState,
        layout: Layout,
        labels: LabelStore | None,
        ref: str,
        paths: IngestPaths,
        fd: int,
        *,
        offset: int,
        total: int,
        hasher: hashlib._Hash,
        started_at: datetime,
        updated_at: datetime,
        pending_ingest: bool = False,
    ) -> None:
        self._state = state  # the root's ref locks and pending ingests
        self._layout = layout
        self._labels = labels
        self._ref = ref
        self._paths = paths
        self._fd: int | None = fd
        self._offset = offset
        self._total = total
        self._hasher = hasher
        self._started_at = started_at
        self._updated_at = updated_at
        # bytes before this offset are on their way to disk (early writeback)
        self._flushed = offset
        self._pending = pending_ingest
        self._gone = False  # aborted while pending: nothing to keep or commit

    # -- Writer protocol -------------------------------------------------

    def write(self, data: bytes | memoryview) -> int:
        fd = self._require_open("write")
        offset = self._offset
        hasher = self._hasher
        try:
            if len(data) < OVERLAP_MIN:
                written = _pwrite_all(fd, data, offset)
                hasher.update(data)
            else:
                # hash a copy while a helper writes: if the write fails, the running
                # digest must still be that of the bytes in the file
                hasher = hasher.copy()
                job: Future[int] = _pool.get().submit(_pwrite_all, fd, data, offset)
                try:
                    hasher.update(data)
                finally:
                    wait((job,))  # never leave a pwrite running on an fd that may be closed
                written = job.result()
        except OSError as err:
            if err.errno not in _NO_SPACE:
                raise
            # none of it counts: the file keeps exactly the bytes hashed so far, so the
            # ingest resumes at this offset once there is room
            with contextlib.suppress(OSError):
                os.ftruncate(fd, offset)
            raise ResourceExhausted(
                f"write {self._ref} at {offset}: {os.strerror(err.errno)}"
            ) from None
        self._hasher = hasher
        self._offset = offset = offset + written
        self._updated_at = utcnow()
        if offset - self._flushed >= WINDOW:
            start_writeback(fd, self._flushed, offset - self._flushed)
            self._flushed = offset
        # a write that completes the declared total leaves the ingest pending: the commit
        # comes next and needs no directory (a close without it makes one)
        if self._pending and offset >= pending.LIMIT and not 0 < self._total <= offset:
            try:
                self._materialize(fd)
            except OSError as err:  # the bytes are written: stay pending, try again later
                log.warning("ingest %s: cannot create its directory yet: %s", self._ref, err)
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
        self._flushed = 0
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
            self._state.locks.unlock(self._ref)

    def close(self) -> None:
        """Make the ingest durable as it stands, so it resumes after any crash."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            if self._pending:
                self._materialize(fd)
            if not self._gone:
                os.fsync(fd)
        finally:
            if self._pending:  # it could not get its directory: it is gone with the fd
                self._state.pending.pop(self._ref, self)
            os.close(fd)
            try:
                if not self._gone and not self._pending:
                    write_timestamp(self._paths.updatedat, self._updated_at, durable=True)
                    # a new ingest's small files were written without syncing
                    sync_ingest(self._paths)
            except OSError:  # aborted underneath us: nothing left to resume
                log.debug("ingest %s vanished before close", self._ref)
            self._state.locks.unlock(self._ref)

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
            with contextlib.suppress(Exception):
                self.close()

    # -- commits through the metadata database (contentd.metadata.settle) ----

    def unsynced_bytes(self, limit: int) -> bytes | None:
        """All the ingest's bytes, read back from its file, when there are at most ``limit``
        of them; None otherwise (or when closed, aborted, or the file reads short)."""
        fd = self._fd
        size = self._offset
        if fd is None or self._gone or size > limit:
            return None
        try:
            data = os.pread(fd, size, 0)
        except OSError as err:
            if err.errno != errno.EBADF:
                raise
            # a resumed ingest's file is open write-only: read it through a reopening
            rfd = os.open(f"/proc/self/fd/{fd}", os.O_RDONLY | os.O_CLOEXEC)
            try:
                data = os.pread(rfd, size, 0)
            finally:
                os.close(rfd)
        return data if len(data) == size else None

    def publish_unsynced(self) -> None:
        """Commit without a single sync: link the ingest's file as its blob, unsynced.

        Only for bytes a durable metadata transaction holds already (the caller
        verified them against :meth:`digest`); the caller settles the file later.
        AlreadyExists when the blob is there (the ingest is discarded). Any other
        failure propagates and also discards the ingest: its record and bytes are
        committed, so it is not to be resumed. Releases the ref in every case.
        """
        fd, self._fd = self._fd, None
        try:
            if fd is None:
                raise FailedPrecondition("cannot commit on closed writer")
            try:
                if self._gone:
                    raise NotFound(f"ingest {self._ref}: aborted")
                actual = self.digest()
                target = self._layout.blob_path(actual)
                blob_dir = self._layout.blob_dir(digests.parse(actual).algorithm)
                paths = None if self._pending else self._paths
                mode = os.fstat(fd).st_mode & 0o777
                try:
                    publish_blob(blob_dir, fd, paths, target, actual, mode, durable=False)
                except BaseException:
                    if paths is not None:  # not to be resumed: its record is committed
                        with contextlib.suppress(OSError):
                            remove_ingest(paths)
                    raise
            finally:
                if self._pending:
                    self._state.pending.pop(self._ref, self)
                os.close(fd)
        finally:
            self._state.locks.unlock(self._ref)

    # -- internals -------------------------------------------------------

    def _require_open(self, op: str) -> int:
        if self._fd is None:
            raise FailedPrecondition(f"cannot {op} on closed writer")
        return self._fd

    def _commit(self, size: int, expected: str, labels: Mapping[str, str] | None) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            raise FailedPrecondition("cannot commit on closed writer")
        target: str | None = None
        try:
            if self._gone:
                raise NotFound(f"ingest {self._ref}: aborted")
            os.fsync(fd)
            st = os.fstat(fd)
            if size > 0 and size != st.st_size:
                raise SizeMismatch(size, st.st_size)
            actual = self.digest()
            if expected and expected != actual:
                raise DigestMismatch(expected, actual)
            target = self._layout.blob_path(actual)
            blob_dir = self._layout.blob_dir(digests.parse(actual).algorithm)
            paths = None if self._pending else self._paths
            publish_blob(blob_dir, fd, paths, target, actual, st.st_mode & 0o777)
            if self._labels is not None and labels is not None:
                self._labels.set(actual, labels)
        except AlreadyExists:
            raise  # the ingest is discarded
        except BaseException:
            if target is not None and _same_file(fd, target):
                # Failed after the blob got its name (its directory sync, the labels): the
                # ingest must not stay as a second name for the published file, or resuming
                # it would rewrite the blob in place. Discard it; the error propagates.
                if not self._pending:
                    with contextlib.suppress(OSError):
                        remove_ingest(self._paths)
                raise
            # the ingest is kept for resuming (a mismatch): durably, as close keeps it
            try:
                if self._pending:
                    self._materialize(fd)
                if not self._gone:
                    sync_ingest(self._paths)
            except OSError as err:
                log.warning("ingest %s: cannot keep it after a failed commit: %s", self._ref, err)
            raise
        finally:
            if self._pending:
                self._state.pending.pop(self._ref, self)
            os.close(fd)

    # -- pending ingests ---------------------------------------------------

    def _materialize(self, fd: int) -> None:
        """Give a pending ingest its directory, with ``fd`` as its ``data``.

        On an error the ingest stays pending (what was made of its directory
        is removed) and the error propagates.
        """
        paths = self._paths
        if self._gone:  # aborted meanwhile
            self._pending = False
            return
        try:
            os.mkdir(paths.dir, 0o755)
        except FileExistsError:  # made by another process meanwhile: ours wins
            remove_ingest(paths)
            os.mkdir(paths.dir, 0o755)
        try:
            create_ingest_files(
                paths, self._ref, self._started_at, self._total, self._updated_at, fresh=True
            )
            link_anonymous(fd, paths.data)
        except BaseException:
            remove_ingest(paths)
            raise
        self._pending = False
        self._state.pending.pop(self._ref, self)
        if self._gone:  # aborted meanwhile
            remove_ingest(paths)

    def _aborted(self) -> None:
        """Called by the store's abort while pending: nothing is to be kept or committed."""
        self._gone = True


def _same_file(fd: int, path: str) -> bool:
    """Whether ``path`` names the file open as ``fd``."""
    try:
        st = os.stat(path)
    except OSError:
        return False
    own = os.fstat(fd)
    return (st.st_dev, st.st_ino) == (own.st_dev, own.st_ino)
