"""The namespaced writer (spec §4.4-§4.5, containerd's ``namespacedWriter``).

A writer either wraps a backend writer on the backend ref ``<ns>/1/<ref>``,
or, when opened *shared* (the bytes already exist in the backend and the
policy allows sharing them), holds no backend writer at all: committing it
only records the digest in this namespace. Writing to or truncating a shared
writer first copies the shared blob into a fresh backend ingest.

Commit order is what makes crashes safe: the backend commit (the blob is
fsynced and linked into place) happens first, then the record's write
transaction, both under the shared content lock (so GC cannot run between
them). A crash between the two leaves a blob no record knows, which the next
dirty GC removes; it can never leave a record without its blob.

A small blob (at most ``core.inline_limit`` bytes, a backend writer that can
commit unsynced, the SQLite database) turns that order round and syncs once:
verified first, its bytes go into the record's transaction (``unsettled_blobs``,
whose WAL sync makes them durable), and only then is the file linked into
place, unsynced; a settler makes the file durable later. A crash between the
two leaves a record whose bytes are in its row, which the next open writes
out; a linked file never exists without a durable row behind it. See
:mod:`contentd.metadata.settle`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from contextlib import nullcontext
from datetime import datetime
from types import TracebackType
from typing import Self, cast

from contentd.content.digest import digest_of
from contentd.content.errors import (
    AlreadyExists,
    ContentError,
    FailedPrecondition,
    NotFound,
    Unknown,
)
from contentd.content.helpers import COPY_BUFFER
from contentd.content.labels import validate_labels
from contentd.content.store import Writer
from contentd.content.types import Status
from contentd.metadata import health, leases
from contentd.metadata.cluster import RefLock
from contentd.metadata.core import Core
from contentd.metadata.crashpoints import crash_point
from contentd.metadata.events import TOPIC_CONTENT_CREATE, ContentCreate
from contentd.metadata.settle import InlineWriter
from contentd.metadata.sql import Conn

__all__ = ["NamespacedWriter", "insert_blob"]

log = logging.getLogger(__name__)


class NamespacedWriter:
    def __init__(
        self,
        core: Core,
        *,
        namespace: str,
        lease: str | None,
        ref: str,
        backend_ref: str,
        backend_writer: Writer | None,
        started: datetime,
        size: int,
        digest: str,
        lock: RefLock | None = None,
    ) -> None:
        self._core = core
        self._ns = namespace
        self._lease = lease
        self._ref = ref
        self._bref = backend_ref
        self._w = backend_writer
        self._started = started
        self._size = size  # desc.size: the expected total (the blob's size when shared)
        self._digest = digest  # desc.digest: the shared blob (only read while shared)
        self._done = False
        self._lock = lock  # other nodes' writers of this ref wait for it

    @property
    def shared(self) -> bool:
        """True while no backend writer exists (the bytes are another namespace's blob)."""
        return self._w is None

    # -- Writer protocol -------------------------------------------------

    def write(self, data: bytes | memoryview) -> int:
        if self._w is None:
            if not data:
                return 0
            self._require_open("write")
            self._w = self._create_and_copy(self._size)
        return self._w.write(data)

    def digest(self) -> str:
        if self._w is not None:
            return self._w.digest()
        return self._digest

    def status(self) -> Status:
        if self._w is not None:
            # not dataclasses.replace: it costs more than the rest of a message's status
            st = self._w.status()
            return Status(self._ref, st.offset, st.total, st.expected, st.started_at, st.updated_at)
        return Status(
            ref=self._ref,
            offset=self._size,
            total=self._size,
            expected=self._digest,
            started_at=self._started,
            updated_at=self._started,
        )

    def truncate(self, size: int) -> None:
        if self._w is not None:
            self._w.truncate(size)
            return
        self._require_open("truncate")
        self._w = self._create_and_copy(size)

    def close(self) -> None:
        """Make the ingest durable as it stands (its data, then its record)."""
        try:
            if self._w is not None:
                self._w.close()
            if not self._done:
                # the record was written without a sync at open; commit syncs it
                # with its own transaction, a closed ingest needs it here
                self._core.sql.sync()
        finally:
            if self._lock is not None:
                self._lock.release()

    def commit(
        self,
        size: int = 0,
        expected: str | None = None,
        labels: Mapping[str, str] | None = None,
    ) -> None:
        self._require_open("commit")
        expected = expected or ""
        try:
            validate_labels(labels)
        except ContentError as err:
            self.close()
            raise err.wrap("info.Labels") from None
        core = self._core
        created: ContentCreate | None = None
        exists: AlreadyExists | None = None
        repaired = False
        if core.sql.closed:
            raise FailedPrecondition("metadata database is closed")
        try:
            # the digest the bytes are expected to have: no other node's collector
            # may delete that blob between the backend commit and the record
            guarded = expected or self.digest()
            repairing = self._w is not None and guarded in core.quarantined
            with (
                core.content_lock.shared(),
                core.cluster.guard_digest(guarded),
                core.repair_lock if repairing else nullcontext(),
            ):
                if repairing:
                    self._clear_quarantined(guarded)
                if self._lock is not None:
                    # still ours, and for a whole lease from now: the backend commit
                    # must not complete an ingest another node has taken over
                    self._lock.renew()
                inline = None if repairing else self._inline_bytes(size, expected)
                if inline is None:
                    # the backend commit (fsync, link) needs no database transaction:
                    # a record written after it cannot be undone by one anyway
                    actual, size, stored = self._commit_backend(size, expected)
                    crash_point("commit:after-backend")
                else:
                    # verified, not committed: the backend file is linked after the record
                    actual, size, _ = inline
                    stored = False
                try:
                    with core.update() as conn:
                        if self._lock is not None:
                            # the fencing token, checked where the record is written
                            self._lock.check(conn)
                        # good bytes for a quarantined digest repair it in every namespace
                        repaired = stored and health.lift(core, conn, actual)
                        # the ingest row names the namespace (a foreign key): while it was
                        # there, so is the namespace, and the blob's row needs no check of it
                        had_row = (
                            conn.execute(
                                "DELETE FROM ingests WHERE namespace = ? AND ref = ?",
                                (self._ns, self._ref),
                            ).rowcount
                            == 1
                        )
                        if insert_blob(
                            core, conn, self._ns, actual, size, labels, namespace_known=had_row
                        ):
                            created = ContentCreate(actual, size)
                        elif not repaired:
                            exists = AlreadyExists(f"content {actual}")
                        leases.remove_ingest(conn, self._ns, self._lease, self._ref)
                        leases.add_content(conn, self._ns, self._lease, actual)
                        if inline is not None:
                            # the bytes ride in the record's transaction: its sync is theirs
                            conn.execute(
                                "INSERT INTO unsettled_blobs (digest, data, recorded_at)"
                                " VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
                                (actual, inline[2], core.now_ns()),
                            )
                except BaseException:
                    if inline is not None:
                        self._close_backend()  # nothing committed: the ingest is kept
                    raise
                if inline is not None:
                    self._publish_unsynced(actual)
                if repaired:  # still under the repair lock: the next writer sees it lifted
                    core.quarantined.pop(actual, None)
            self._done = True
        finally:
            # every outcome releases the ref, as the backend's own lock is
            if self._lock is not None:
                self._lock.release()
        if repaired:
            log.warning("quarantined blob %s repaired by a new ingest", actual)
        crash_point("commit:after-record")
        if created is not None:
            core.publish(self._ns, TOPIC_CONTENT_CREATE, created)
        if exists is not None:
            raise exists

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- internals -------------------------------------------------------

    def _require_open(self, op: str) -> None:
        if self._done:
            raise FailedPrecondition(f"cannot {op} on closed writer")

    def _clear_quarantined(self, digest: str) -> None:
        """Before a commit that repairs ``digest`` (under the repair lock): delete the
        bad bytes the backend still holds at its key, so that the commit stores the
        new ones instead of finding the blob there. Only when the new bytes hash to
        ``digest``: an ingest that will fail its commit takes nothing away. A backend
        that moved the bytes aside at quarantine (the local store) has none left."""
        assert self._w is not None
        if digest not in self._core.quarantined or self._w.digest() != digest:
            return  # repaired by another writer meanwhile, or not the bytes of digest
        try:
            self._core.backend.delete(digest)
        except NotFound:
            return
        log.info("deleted the quarantined bytes of %s from the backend to store new ones", digest)

    def _inline_bytes(self, size: int, expected: str) -> tuple[str, int, bytes] | None:
        """For a commit that puts the bytes in the record's transaction: (digest, size,
        bytes), verified against the size and digest asked for. None when this commit
        takes the usual path: too big, no such backend writer, or a size or digest that
        does not match (the usual path reports those, keeping the ingest)."""
        w = self._w
        limit = self._core.inline_limit
        if w is None or not limit or not hasattr(w, "publish_unsynced"):
            return None
        offset = w.status().offset
        if offset > limit or (size != 0 and size != offset):
            return None
        actual = w.digest()
        if expected and expected != actual:
            return None
        # (a cast, not isinstance: a Protocol's isinstance costs ~35 us)
        data = cast("InlineWriter", w).unsynced_bytes(limit)
        # the bytes the row keeps are the ones verified, not just the ones hashed
        if data is None or len(data) != offset or digest_of(data) != actual:
            return None
        return actual, offset, data

    def _publish_unsynced(self, digest: str) -> None:
        """After the record and its bytes are durable: link the blob file, unsynced."""
        crash_point("commit:inline-after-record")
        try:
            cast("InlineWriter", self._w).publish_unsynced()
        except AlreadyExists:
            pass  # the backend had the file: the settler syncs it
        except Exception as err:  # the record is committed: the settler writes the file
            log.warning(
                "commit %s: linking the blob failed (the settler writes it): %s", digest, err
            )
        crash_point("commit:inline-after-link")
        notify = self._core.settle_notify
        if notify is not None:
            notify()

    def _close_backend(self) -> None:
        if self._w is not None:
            try:
                self._w.close()
            except Exception as err:
                log.warning("ingest %s: cannot keep it after a failed commit: %s", self._ref, err)

    def _commit_backend(self, size: int, expected: str) -> tuple[str, int, bool]:
        """Verify (and, with a backend writer, commit) the bytes: (digest, size, whether
        the backend stored them - False when it had them already)."""
        if self._w is None:
            if size != 0 and size != self._size:
                raise FailedPrecondition(
                    f'"{self._ref}" failed size validation: {self._size} != {size}'
                )
            if expected and expected != self._digest:
                raise FailedPrecondition(f'"{self._ref}" unexpected digest')
            return self._digest, self._size, False
        offset = self._w.status().offset
        if size != 0 and size != offset:
            self._w.close()
            raise FailedPrecondition(f'"{self._ref}" failed size validation: {offset} != {size}')
        # AlreadyExists: the bytes are in the backend already; this namespace gets a record
        try:
            self._w.commit(offset, expected or None)
        except AlreadyExists:
            return self._w.digest(), offset, False
        return self._w.digest(), offset, True

    def _create_and_copy(self, size: int) -> Writer:
        """Unshare: a backend ingest holding the first ``size`` bytes of the shared blob."""
        backend = self._core.backend
        if self._lock is None:
            self._lock = self._core.cluster.lock_ref(self._ns, self._ref, self._bref)
        w = backend.writer(self._bref, total=size)
        try:
            if w.status().offset:
                w.truncate(0)  # a stale ingest left under this ref: start it over
            if size > 0:
                with backend.reader_at(self._digest) as ra:
                    offset = 0
                    while offset < size:
                        chunk = ra.read_at(offset, min(COPY_BUFFER, size - offset))
                        if not chunk:
                            raise Unknown(
                                f"failed to copy {self._digest}: unexpected EOF at {offset}"
                            )
                        w.write(chunk)
                        offset += len(chunk)
        except BaseException:
            w.close()
            raise
        return w


def insert_blob(
    core: Core,
    conn: Conn,
    namespace: str,
    digest: str,
    size: int,
    labels: Mapping[str, str] | None,
    *,
    namespace_known: bool = False,
) -> bool:
    """Record ``digest`` in ``namespace``; False if it is already recorded there.

    ``namespace_known``: this transaction has seen the namespace's row (no need
    to create it).

    The row decides (``INSERT ... ON CONFLICT DO NOTHING``): of any number of
    commits of one digest into one namespace, in this process or on other
    nodes of a shared database, exactly one inserts it.
    """
    if not namespace_known:
        core.ensure_namespace(conn, namespace)
    now = core.now_ns()
    cur = conn.execute(
        "INSERT INTO blobs (namespace, digest, size, created_at, updated_at)"
        " VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
        (namespace, digest, size, now, now),
    )
    if cur.rowcount != 1:
        return False
    conn.executemany(
        "INSERT INTO blob_labels (namespace, digest, key, value) VALUES (?, ?, ?, ?)",
        [(namespace, digest, k, v) for k, v in (labels or {}).items() if v],
    )
    return True
