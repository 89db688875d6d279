"""The S3 store's Writer: a multipart upload fed from a node-local spool file.

Written bytes are hashed (with ``rehashes``, whose sha256 state can be saved)
and appended to the ingest's spool file until it holds one part
(``part_size``, at least S3's minimum of 5 MiB); the part is then uploaded and
its number, ETag and size, with the hash state at its end, are recorded in the
:class:`~contentd.s3.ingests.IngestStates` once S3 has it. So the record always
describes uploaded parts exactly, and any node can go on from it; the bytes
still in a spool are this node's alone (recorded at close).

Parts go up in the background, at most :data:`IN_FLIGHT` per writer (their
bytes held in memory meanwhile), and are recorded in order as they finish: a
Write stream keeps arriving while S3 takes the previous part. A part whose
upload failed is tried once more on the writer's thread at the next call; if
that fails too the call raises (Unavailable, usually). Closing gives up on
parts that cannot be uploaded: the record, and so a resume, then ends at the
last part S3 has.

A blob smaller than one part never starts a multipart upload: its commit puts
the spool's bytes straight at the blob's key.

The node's read cache keeps a copy of what it writes (a :class:`CacheTee`): each
part's bytes, read back from the spool for the upload, are appended to a cache
file too (the tail at commit), so a blob this node just stored (containerd
unpacks a layer right after writing it) is read locally, not fetched back. The
copy is named only after the commit verified size and digest, and only if it
holds the blob from its first byte: a writer that resumes after uploaded parts
(on another node, or after a restart) keeps none; a truncate starts it again.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections import deque
from collections.abc import Mapping
from concurrent.futures import Future
from dataclasses import replace
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, NamedTuple, Self

from contentd.content import digest as digests
from contentd.content.errors import (
    AlreadyExists,
    ContentError,
    DigestMismatch,
    FailedPrecondition,
    NotFound,
    SizeMismatch,
    Unknown,
)
from contentd.content.gotime import from_ns
from contentd.content.types import Status
from contentd.s3.ingests import IngestState, Part

if TYPE_CHECKING:
    from contentd.s3.cache import CacheTee
    from contentd.s3.store import S3Store

__all__ = ["IN_FLIGHT", "S3Writer", "new_hasher", "restore_hasher"]

log = logging.getLogger(__name__)

#: parts of one writer uploading at once (each held in memory until S3 has it)
IN_FLIGHT: Final = 2


class _Pending(NamedTuple):
    """A part handed to the uploader, not yet recorded."""

    number: int
    data: bytes
    hash_state: bytes
    future: Future[str]


def new_hasher() -> Any:
    import rehashes

    return rehashes.PySha256()


def restore_hasher(state: bytes) -> Any:
    import rehashes

    return rehashes.PySha256.deserialize(state) if state else rehashes.PySha256()


class S3Writer:
    """Holds the ref lock from open until :meth:`close` or :meth:`commit`."""

    def __init__(
        self,
        store: S3Store,
        state: IngestState,
        hasher: Any,
        spool_fd: int,
        tail: int,
        tee: CacheTee | None = None,
    ) -> None:
        self._store = store
        self._state = state
        self._hasher = hasher
        self._fd: int | None = spool_fd
        self._tail = tail
        self._updated_ns = state.updated_ns
        self._gone = False  # aborted underneath: nothing to keep or commit
        self._pending: deque[_Pending] = deque()
        # the read cache's copy: every byte from the first one up to the spool's
        self._tee = tee

    @property
    def ref(self) -> str:
        return self._state.ref

    # -- Writer protocol -------------------------------------------------

    def write(self, data: bytes) -> int:
        fd = self._require_open("write")
        if self._gone:
            raise NotFound(f"ingest {self.ref}: aborted")
        self._record_done()
        view = memoryview(data)
        part_size = self._state.part_size
        while view:
            take = view[: part_size - self._tail]
            n = os.pwrite(fd, take, self._tail)
            take = take[:n]
            self._hasher.update(bytes(take))
            self._tail += n
            view = view[n:]
            if self._tail == part_size:
                self._submit_part(fd)
        self._updated_ns = time.time_ns()
        return len(data)

    def digest(self) -> str:
        copy = restore_hasher(self._hasher.serialize())
        return f"{digests.CANONICAL}:{copy.finalize()}"

    def status(self) -> Status:
        return Status(
            ref=self.ref,
            offset=self._state.uploaded + sum(len(p.data) for p in self._pending) + self._tail,
            total=self._state.total,
            started_at=from_ns(self._state.started_ns),
            updated_at=from_ns(self._updated_ns),
        )

    def truncate(self, size: int) -> None:
        if size != 0:
            raise Unknown("Truncate: unsupported size")
        fd = self._require_open("truncate")
        self._drop_pending()
        state = self._state
        if state.upload_id:
            self._store._abort_upload(state.key, state.upload_id)
        os.ftruncate(fd, 0)
        self._tail = 0
        self._hasher = new_hasher()
        self._updated_ns = time.time_ns()
        self._save(replace(state, upload_id="", parts=(), hash_state=b"", tail_size=0))
        self._drop_tee()
        self._tee = self._store._begin_tee(state.total)

    def commit(
        self,
        size: int = 0,
        expected: str | None = None,
        labels: Mapping[str, str] | None = None,
    ) -> None:
        try:
            self._commit(size, expected or "", labels)
        finally:
            self._store._release(self)

    def close(self) -> None:
        """Keep the ingest for resuming: the spool synced, its size recorded."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            if not self._gone:
                self._keep(fd)
        finally:
            self._drop_tee()
            os.close(fd)
            self._store._release(self)

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

    # -- internals -------------------------------------------------------

    def _aborted(self) -> None:
        self._gone = True

    def _require_open(self, op: str) -> int:
        if self._fd is None:
            raise FailedPrecondition(f"cannot {op} on closed writer")
        return self._fd

    def _save(self, state: IngestState) -> None:
        self._state = replace(state, updated_ns=self._updated_ns)
        self._store.states.put(self._state)

    def _keep(self, fd: int) -> None:
        """Record what can be resumed: every part S3 takes, then the spool's size."""
        try:
            self._record_done(keep=0)
        except ContentError as err:
            # the parts after the last recorded one are lost, so is the spool after them
            log.warning("ingest %s: keeping it without its last parts: %s", self.ref, err)
            self._drop_pending()
            self._tail = 0
            os.ftruncate(fd, 0)
            self._hasher = restore_hasher(self._state.hash_state)
        os.fsync(fd)
        self._save(replace(self._state, tail_node=self._store.node_id, tail_size=self._tail))

    def _drop_tee(self) -> None:
        tee, self._tee = self._tee, None
        if tee is not None:
            tee.close()

    def _tee_write(self, data: bytes) -> None:
        if self._tee is not None and not self._tee.write(data):
            self._tee = None  # dropped (too big, or the disk refused it)

    def _drop_pending(self) -> None:
        for p in self._pending:
            p.future.cancel()
        for p in self._pending:
            with contextlib.suppress(BaseException):
                p.future.result()
        self._pending.clear()

    def _spool_bytes(self, fd: int) -> bytes:
        data = os.pread(fd, self._tail, 0)
        if len(data) != self._tail:
            raise Unknown(f"ingest {self.ref}: spool file shorter than recorded")
        return data

    def _submit_part(self, fd: int) -> None:
        """Hand the full spool to the uploader; wait while :data:`IN_FLIGHT` are going."""
        store, state = self._store, self._state
        if not state.upload_id:  # recorded at once: an upload no record knows is an orphan
            self._save(replace(state, upload_id=store._create_upload(state.key)))
            state = self._state
        number = len(state.parts) + len(self._pending) + 1
        data = self._spool_bytes(fd)
        future = store._upload_part_async(state.key, state.upload_id, number, data)
        self._pending.append(_Pending(number, data, self._hasher.serialize(), future))
        self._tee_write(data)
        os.ftruncate(fd, 0)
        self._tail = 0
        self._record_done(keep=IN_FLIGHT - 1)

    def _record_done(self, keep: int | None = None) -> None:
        """Record finished parts, oldest first. ``keep``: wait until at most that many
        are pending (None: record only those already finished). A failed upload is
        tried once more here; if that fails it raises, and the part stays pending."""
        while self._pending:
            head = self._pending[0]
            if not head.future.done() and (keep is None or len(self._pending) <= keep):
                return
            try:
                etag = head.future.result()
            except ContentError:
                if self._gone:
                    raise NotFound(f"ingest {self.ref}: aborted") from None
                state = self._state
                etag = self._store._upload_part(state.key, state.upload_id, head.number, head.data)
                self._pending[0] = head = head._replace(future=_done(etag))
            self._pending.popleft()
            state = self._state
            self._save(
                replace(
                    state,
                    parts=(*state.parts, Part(head.number, etag, len(head.data))),
                    hash_state=head.hash_state,
                    tail_node=self._store.node_id,
                    tail_size=0,
                )
            )

    def _commit(self, size: int, expected: str, labels: Mapping[str, str] | None) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            raise FailedPrecondition("cannot commit on closed writer")
        store = self._store
        outcome = "keep"  # or "discard" (aborted, already exists) or "done"
        try:
            if self._gone:
                outcome = "discard"
                raise NotFound(f"ingest {self.ref}: aborted")
            self._record_done(keep=0)
            state = self._state
            offset = state.uploaded + self._tail
            if size > 0 and size != offset:
                raise SizeMismatch(size, offset)
            actual = self.digest()
            if expected and expected != actual:
                raise DigestMismatch(expected, actual)
            key = store._blob_key(actual)
            if state.upload_id and state.key != key and state.key != store._staging_key(state):
                # opened for another digest: its upload can only complete at that key
                raise DigestMismatch(state.expected, actual)
            with store._commit_lock(actual):
                if store._exists(key):
                    outcome = "discard"
                    raise AlreadyExists(f"content {actual}")
                tail = self._spool_bytes(fd)
                if state.upload_id:
                    self._complete(tail, state, key, offset, actual)
                else:
                    store._put(key, tail, actual)
                outcome = "done"
                if self._tee is not None:  # the bytes just verified: the read cache keeps them
                    self._tee_write(tail)
                    tee, self._tee = self._tee, None
                    if tee is not None:
                        store._publish_tee(tee, actual, offset)
            if labels is not None and store.labels is not None:
                store.labels.set(actual, labels)
        finally:
            try:
                if outcome == "keep":
                    self._keep(fd)
                else:
                    store._forget_ingest(self._state, abort=outcome == "discard")
            finally:
                self._drop_tee()
                os.close(fd)

    def _complete(
        self, tail: bytes, state: IngestState, key: str, offset: int, actual: str
    ) -> None:
        store = self._store
        parts = state.parts
        try:
            if self._tail or not parts:
                number = len(parts) + 1
                etag = store._upload_part(state.key, state.upload_id, number, tail)
                parts = (*parts, Part(number, etag, self._tail))
            store._complete_upload(state.key, state.upload_id, parts)
        except NotFound:
            # completed by an earlier commit that failed (or crashed) before its copy:
            # the staged object, verified then, is the ingest
            if store._size_of(state.key) != offset:
                raise
        if state.key != key:
            store._copy(state.key, key, offset, actual)
            store._delete_key(state.key)


def _done(value: str) -> Future[str]:
    future: Future[str] = Future()
    future.set_result(value)
    return future
