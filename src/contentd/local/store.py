"""LocalStore: containerd's ``content/local`` store on containerd's own layout.

A directory written by containerd 1.6 can be opened by LocalStore and the
other way round: blobs, ingests and interrupted ingests all carry over.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shutil
import stat
import time
from collections.abc import Iterator, Mapping
from functools import partial
from typing import Final

from contentd import filters as filtering
from contentd.content import digest as digests
from contentd.content.errors import (
    AlreadyExists,
    ContentError,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
)
from contentd.content.filters import info_adaptor, status_adaptor
from contentd.content.gotime import from_ns
from contentd.content.labels import apply_label_update
from contentd.content.store import LabelStore, digest_of_target
from contentd.content.types import Descriptor, Info, Status, utcnow
from contentd.local import pending
from contentd.local.layout import (
    IngestPaths,
    Layout,
    create_ingest_files,
    fsync_dir,
    read_timestamp,
    remove_ingest,
)
from contentd.local.pending import link_anonymous
from contentd.local.reader import FileReaderAt
from contentd.local.roots import root_state
from contentd.local.writeback import syncfs
from contentd.local.writer import LocalWriter

__all__ = ["LocalStore"]

log = logging.getLogger(__name__)

_HASH_CHUNK = 1 << 20


class LocalStore:
    """The on-disk content store rooted at ``root``.

    ``readonly=True`` never creates or writes anything: writers, deletes,
    aborts and label updates raise FailedPrecondition, and a missing root is
    NotFound. ``label_store`` keeps labels (containerd's daemon uses none: its
    labels live in the metadata layer); without one, commit labels are
    dropped, ``Info.labels`` is None and ``update`` is FailedPrecondition.
    """

    #: :meth:`writer` raises AlreadyExists for an ``expected`` digest already recorded
    #: (the Write service then skips its own Info check of the first message)
    writer_checks_expected: Final = True

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        readonly: bool = False,
        label_store: LabelStore | None = None,
    ) -> None:
        self.root = os.path.abspath(os.fspath(root))
        self.readonly = readonly
        self._labels = label_store
        self._layout = Layout(self.root)
        self._state = root_state(self.root)  # shared with every store on this root
        if readonly:
            if not os.path.isdir(self.root):
                raise NotFound(f"content store root {self.root}")
        else:
            os.makedirs(self._layout.ingests, 0o777, exist_ok=True)

    def __repr__(self) -> str:
        return f"LocalStore({self.root!r}{', readonly=True' if self.readonly else ''})"

    # -- Provider --------------------------------------------------------

    def reader_at(self, target: str | Descriptor) -> FileReaderAt:
        digest = digest_of_target(target)
        path = self._layout.blob_path(digest)
        try:
            blob = self._state.blobs.acquire(digest, path, _open_noatime)
        except (FileNotFoundError, NotADirectoryError):
            raise NotFound(f"content {digest}") from None
        return FileReaderAt(blob.fd, blob.size, partial(self._state.blobs.release, blob))

    # -- Manager ---------------------------------------------------------

    def info(self, digest: str) -> Info:
        path = self._layout.blob_path(digest)
        try:
            st = os.stat(path)
        except FileNotFoundError:
            raise NotFound(f"content {digest}") from None
        return self._info(digest, st)

    def _info(self, digest: str, st: os.stat_result) -> Info:
        return Info(
            digest=digest,
            size=st.st_size,
            created_at=from_ns(st.st_mtime_ns),
            updated_at=from_ns(st.st_atime_ns),
            labels=self._labels.get(digest) if self._labels is not None else None,
        )

    def update(self, info: Info, *fieldpaths: str) -> Info:
        self._require_writable("update")
        if self._labels is None:
            raise FailedPrecondition("update not supported on immutable content store")
        path = self._layout.blob_path(info.digest)
        try:
            st = os.stat(path)
        except FileNotFoundError:
            raise NotFound(f"content {info.digest}") from None
        apply_label_update(self._labels, info, fieldpaths)
        now = utcnow()
        with contextlib.suppress(OSError):
            os.utime(path, ns=(time.time_ns(), st.st_mtime_ns))
        return Info(
            digest=info.digest,
            size=st.st_size,
            created_at=from_ns(st.st_mtime_ns),
            updated_at=now,
            labels=self._labels.get(info.digest),
        )

    def walk(self, *filters: str) -> Iterator[Info]:
        match = filtering.parse_all(filters)
        try:
            algorithms = sorted(os.listdir(self._layout.blobs))
        except FileNotFoundError:
            return
        for algorithm in algorithms:
            if algorithm not in digests.ALGORITHMS:
                continue
            directory = self._layout.blob_dir(algorithm)
            try:
                names = sorted(os.listdir(directory))
            except (FileNotFoundError, NotADirectoryError):
                continue
            for name in names:
                try:
                    st = os.stat(os.path.join(directory, name))
                except FileNotFoundError:
                    continue  # deleted while walking
                if not stat.S_ISREG(st.st_mode):
                    continue
                digest = f"{algorithm}:{name}"
                if not digests.is_valid(digest):
                    log.warning("invalid digest in blob store: %s", digest)
                info = self._info(digest, st)
                if match.match(info_adaptor(info)):
                    yield info

    def delete(self, digest: str) -> None:
        self._require_writable("delete")
        path = self._layout.blob_path(digest)
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        except IsADirectoryError:
            shutil.rmtree(path)
        self._state.blobs.forget(digest)  # after the unlink: see OpenBlobs.acquire

    def quarantine(self, digest: str) -> str | None:
        """Move a blob found corrupt to ``quarantine/<alg>/<hex>.<ns>`` (never deleted):
        where it went, or None if there was no blob. Readers that have it open keep
        reading the same file; new ones get NotFound."""
        self._require_writable("quarantine")
        path = self._layout.blob_path(digest)
        parsed = digests.parse(digest)
        directory = os.path.join(self._layout.quarantine, parsed.algorithm)
        os.makedirs(directory, 0o700, exist_ok=True)
        target = os.path.join(directory, f"{parsed.encoded}.{time.time_ns()}")
        try:
            os.rename(path, target)
        except FileNotFoundError:
            return None
        self._state.blobs.forget(digest)
        fsync_dir(directory)
        fsync_dir(os.path.dirname(path))
        return target

    # -- settling blobs committed without a sync (contentd.metadata.settle) --

    def settle_blobs(self, blobs: Mapping[str, bytes]) -> list[str]:
        """Make each blob of ``blobs`` (digest -> its verified bytes) durable as those bytes.

        A file that is there with exactly those bytes is synced where it is; one that is
        missing, short or different is written anew from them (an anonymous file, synced,
        then linked in its place: see :func:`_rewrite_durably`). Then each blob directory
        is synced once, which makes the names durable. Many files at once are synced with
        one ``syncfs(2)`` instead.
        Returns the digests now durable; a blob that failed (logged) is left out, to be
        tried again.
        """
        self._require_writable("settle")
        settled: list[str] = []
        dirs: set[str] = set()
        unsynced: list[tuple[str, int]] = []
        try:
            for digest, data in blobs.items():
                try:
                    path = self._layout.blob_path(digest)
                    fd = _open_if_equal(path, data)
                    if fd is None:
                        _rewrite_durably(path, data)
                        self._state.blobs.forget(digest)
                        log.warning("blob %s was missing or wrong on disk: rewritten", digest)
                        settled.append(digest)
                    else:
                        unsynced.append((digest, fd))
                    dirs.add(os.path.dirname(path))
                except (OSError, ContentError) as err:
                    log.warning("cannot settle blob %s yet: %s", digest, err)
            if len(unsynced) >= SYNCFS_MIN and dirs and syncfs(next(iter(dirs))):
                settled.extend(digest for digest, _ in unsynced)
            else:
                for digest, fd in unsynced:
                    try:
                        os.fsync(fd)
                    except OSError as err:
                        log.warning("cannot settle blob %s yet: %s", digest, err)
                    else:
                        settled.append(digest)
                for directory in dirs:
                    fsync_dir(directory)
        except OSError as err:  # a directory sync: none of the names is known durable
            log.warning("cannot settle blobs yet: %s", err)
            return []
        finally:
            for _, fd in unsynced:
                os.close(fd)
        return settled

    # -- IngestManager ---------------------------------------------------

    def status(self, ref: str) -> Status:
        w = self._state.pending.get(ref)
        if w is not None:
            return w.status()
        return self._status(self._layout.ingest(ref))

    def _status(self, paths: IngestPaths) -> Status:
        try:
            data = os.stat(paths.data)
            with open(paths.ref, "rb") as f:
                ref = f.read().decode()
        except FileNotFoundError as err:
            raise NotFound(f"{err.filename}: no such file or directory") from None
        started_at = read_timestamp(paths.startedat)
        updated_at = read_timestamp(paths.updatedat)
        modified = from_ns(data.st_mtime_ns)
        if modified > updated_at:
            updated_at = modified
        return Status(
            ref=ref,
            offset=data.st_size,
            total=_read_total(paths.total),
            started_at=started_at,
            updated_at=updated_at,
        )

    def list_statuses(self, *filters: str) -> list[Status]:
        match = filtering.parse_all(filters)
        # pending first: one that gets its directory meanwhile is then seen twice, not never
        found = {st.ref: st for st in (w.status() for w in self._state.pending.writers())}
        try:
            names = os.listdir(self._layout.ingests)
        except FileNotFoundError:
            names = []
        for name in names:
            try:
                status = self._status(self._layout.ingest_dir(name))
            except (NotFound, ValueError, OSError):
                continue  # vanished or half-created
            found[status.ref] = status
        return [s for s in found.values() if match.match(status_adaptor(s))]

    def walk_status_refs(self) -> Iterator[str]:
        """The ref of every ingest, pending or on disk (for garbage collection)."""
        seen = {w.status().ref for w in self._state.pending.writers()}
        yield from seen
        try:
            names = os.listdir(self._layout.ingests)
        except FileNotFoundError:
            return
        for name in names:
            try:
                with open(self._layout.ingest_dir(name).ref, "rb") as f:
                    ref = f.read().decode()
            except (OSError, UnicodeDecodeError):
                continue
            if ref not in seen:
                yield ref

    def abort(self, ref: str) -> None:
        self._require_writable("abort")
        self._state.pending.abort(ref)
        remove_ingest(self._layout.ingest(ref))

    # -- Ingester --------------------------------------------------------

    def writer(self, ref: str, total: int = 0, expected: str | None = None) -> LocalWriter:
        if not ref:
            raise InvalidArgument("ref must not be empty")
        self._require_writable("write")
        self._state.locks.lock(ref)
        try:
            return self._open_writer(ref, total, expected or "")
        except BaseException:
            self._state.locks.unlock(ref)
            raise

    def _open_writer(self, ref: str, total: int, expected: str) -> LocalWriter:
        if expected:
            try:
                target = self._layout.blob_path(expected)
            except ContentError as err:
                raise err.wrap("calculating expected blob path for writer") from None
            if os.path.exists(target):
                raise AlreadyExists(f"content {expected}")
        paths = self._layout.ingest(ref)
        hasher = digests.new_hasher()
        if not os.path.lexists(paths.dir):
            fd = pending.open_anonymous(self._layout.ingests)
            if fd is not None:  # a new ingest: on disk only when it must be
                now = utcnow()
                w = LocalWriter(
                    self._state,
                    self._layout,
                    self._labels,
                    ref,
                    paths,
                    fd,
                    offset=0,
                    total=total,
                    hasher=hasher,
                    started_at=now,
                    updated_at=now,
                    pending_ingest=True,
                )
                self._state.pending.add(ref, w)
                return w
        resumed: Status | None = None
        fresh = True
        try:
            os.mkdir(paths.dir, 0o755)
        except FileExistsError:
            fresh = False
            try:
                resumed = self._resume(paths, ref, total, hasher)
            except (ContentError, OSError, ValueError) as err:
                log.info("cannot resume ingest %s (%s); starting it over", paths.dir, err)
                hasher = digests.new_hasher()
        if resumed is not None:
            offset, total = resumed.offset, resumed.total
            started_at, updated_at = resumed.started_at, resumed.updated_at
            flags = os.O_WRONLY | os.O_CREAT
        else:
            offset = 0
            started_at = updated_at = utcnow()
            create_ingest_files(paths, ref, started_at, total, fresh=fresh)
            # a broken ingest starts over from nothing (containerd keeps the stale tail)
            flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
        fd = os.open(paths.data, flags | os.O_CLOEXEC, 0o666)
        return LocalWriter(
            self._state,
            self._layout,
            self._labels,
            ref,
            paths,
            fd,
            offset=offset,
            total=total,
            hasher=hasher,
            started_at=started_at,
            updated_at=updated_at,
        )

    def _resume(self, paths: IngestPaths, ref: str, total: int, hasher: hashlib._Hash) -> Status:
        status = self._status(paths)
        if status.ref != ref:
            raise ValueError(f"ref key does not match: {ref} != {status.ref}")
        if total > 0 and status.total > 0 and total != status.total:
            raise ValueError(f"provided total differs from status: {total} != {status.total}")
        offset = _hash_file(paths.data, hasher)
        return Status(
            ref=ref,
            offset=offset,
            total=status.total,
            started_at=status.started_at,
            updated_at=status.updated_at,
        )

    def _require_writable(self, op: str) -> None:
        if self.readonly:
            raise FailedPrecondition(f"{op}: content store at {self.root} is read-only")


#: files settled at once from which one syncfs(2) replaces their fsyncs
SYNCFS_MIN: Final = 4


def _open_if_equal(path: str, data: bytes) -> int | None:
    """``path`` opened for reading if it holds exactly ``data``; None if not (or missing)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except (FileNotFoundError, NotADirectoryError):
        return None
    try:
        same = os.fstat(fd).st_size == len(data) and os.pread(fd, len(data) + 1, 0) == data
    except BaseException:
        os.close(fd)
        raise
    if not same:
        os.close(fd)
        return None
    return fd


def _rewrite_durably(path: str, data: bytes) -> None:
    """Put ``data`` at ``path``, the file synced (the caller syncs the directory).

    Whatever is at ``path`` goes first (readers meanwhile find no file and are served
    the caller's bytes elsewhere). The new file is an anonymous one in the blob
    directory, written, synced and then linked: a crash leaves no partial file and no
    temporary name in ``blobs/``. Without ``O_TMPFILE`` it is written in place (a crash
    then leaves a short file, which the caller's next settle rewrites).
    """
    directory = os.path.dirname(path)
    os.makedirs(directory, 0o755, exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    anonymous = True
    try:
        fd = os.open(directory, os.O_RDWR | os.O_TMPFILE | os.O_CLOEXEC, 0o444)
    except (OSError, AttributeError):
        anonymous = False
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o444)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
        if anonymous:
            link_anonymous(fd, path)  # FileExistsError: a commit linked it meanwhile
    finally:
        os.close(fd)


def _open_noatime(path: str) -> int:
    """Open for reading without moving atime (Info.UpdatedAt) where allowed."""
    flags = os.O_RDONLY | os.O_CLOEXEC
    noatime = getattr(os, "O_NOATIME", 0)
    if noatime:
        try:
            return os.open(path, flags | noatime)
        except PermissionError:  # O_NOATIME needs ownership of the file
            pass
    return os.open(path, flags)


def _read_total(path: str) -> int:
    try:
        with open(path, "rb") as f:
            return int(f.read().decode().strip())
    except (OSError, ValueError):
        return 0


def _hash_file(path: str, hasher: hashlib._Hash) -> int:
    """Feed the whole file to ``hasher`` in bounded chunks; returns its length."""
    update = hasher.update
    total = 0
    buf = bytearray(_HASH_CHUNK)
    view = memoryview(buf)
    with open(path, "rb", buffering=0) as f:
        while True:
            n = f.readinto(buf)
            if not n:
                return total
            update(view[:n])
            total += n
