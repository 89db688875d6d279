"""The namespaced content store (spec §4.2-§4.6, containerd's ``metadata/content.go``).

A blob is visible in a namespace only while that namespace has a record of
it; the bytes live once in the namespace-agnostic backend. Ingests are
recorded per namespace and map the caller's ref to the backend ref
``<ns>/1/<ref>``, so equal refs in two namespaces never collide.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Iterator
from contextlib import nullcontext
from dataclasses import replace
from datetime import timedelta
from typing import Final

from contentd import filters as filtering
from contentd.content import digest as digests
from contentd.content.errors import (
    AlreadyExists,
    ContentError,
    InvalidArgument,
    NotFound,
)
from contentd.content.filters import info_adaptor, status_adaptor
from contentd.content.gotime import from_ns, to_ns
from contentd.content.labels import LABEL_NAMESPACE_SHAREABLE, validate_labels
from contentd.content.store import ReaderAt, Store, Writer, digest_of_target
from contentd.content.types import Descriptor, Info, InfoRow, Status
from contentd.metadata import health, identifiers, leases
from contentd.metadata.cluster import RefLock
from contentd.metadata.core import Core
from contentd.metadata.crashpoints import crash_point
from contentd.metadata.events import (
    TOPIC_CONTENT_CREATE,
    TOPIC_CONTENT_DELETE,
    ContentCreate,
    ContentDelete,
)
from contentd.metadata.namespaces import LABEL_GC_MANAGED_EXTERNALLY
from contentd.metadata.settle import BytesReaderAt, unsettled_bytes
from contentd.metadata.sql import Conn
from contentd.metadata.writer import NamespacedWriter, insert_blob

__all__ = ["INGEST_EXPIRY", "WALK_CHUNK", "ContentStore", "backend_ref"]

#: an ingest opened without a lease may be collected this long after its last open
INGEST_EXPIRY: Final = timedelta(hours=24)
#: records read per transaction while walking
WALK_CHUNK: Final = 512


def backend_ref(namespace: str, ref: str) -> str:
    """The backend's name for an ingest: the bucket sequence is always 1 (spec §4.1)."""
    return f"{namespace}/1/{ref}"


class ContentStore:
    """The content of one namespace, with an optional lease for the calls' hooks.

    Without a namespace every call raises FailedPrecondition ``namespace is
    required``; with an invalid one, InvalidArgument.

    ``link_shared`` (the store of containerd's pinned header-less namespace):
    Info and ReaderAt of a digest this namespace does not record, but another
    containerd's pinned namespace does and shares (the ``shared`` policy, or
    that namespace labelled shareable), record it here first and answer.
    Other tenants' blobs stay invisible to containerd. containerd's metadata layer
    asks Info before it opens a writer and, when the backend has the blob,
    commits without fetching a byte; its writer never tells the backend the
    digest it expects. So a blob one containerd pulled is not downloaded
    again by another containerd on the same store (or the same cluster).
    """

    #: :meth:`writer` raises AlreadyExists for an ``expected`` digest already recorded
    #: (the Write service then skips its own Info check of the first message)
    writer_checks_expected: Final = True

    def __init__(
        self,
        core: Core,
        namespace: str | None,
        lease: str | None = None,
        *,
        link_shared: bool = False,
    ) -> None:
        self._core = core
        self.namespace = namespace
        self.lease = lease or None
        self.link_shared = link_shared
        self._valid_ns: str | None = None

    def __repr__(self) -> str:
        return f"ContentStore(namespace={self.namespace!r}, lease={self.lease!r})"

    def _ns(self) -> str:
        ns = self._valid_ns
        if ns is None:  # checked once: a store serves many calls (the resolver keeps it)
            ns = self._valid_ns = identifiers.require_namespace(self.namespace)
        return ns

    # -- Provider --------------------------------------------------------

    def reader_at(self, target: str | Descriptor) -> ReaderAt:
        digest = digest_of_target(target)
        self._record(self._ns(), digest)
        core = self._core
        try:
            return core.backend.reader_at(digest)
        except NotFound:
            if not core.serve_unsettled:
                raise
        # a blob committed with its bytes in its record's transaction, not linked yet (or
        # whose link failed): its row serves it (contentd.metadata.settle)
        data = unsettled_bytes(core, digest)
        if data is not None:
            return BytesReaderAt(data)
        return core.backend.reader_at(digest)  # settled meanwhile (the row goes after the file)

    def report_corrupt(self, digest: str, reason: str) -> None:
        """A reader found ``digest``'s bytes wrong: quarantine it (every namespace's reads
        fail with DataLoss until an ingest of the digest repairs it)."""
        self._ns()
        health.quarantine(self._core, digest, reason)

    # -- Manager ---------------------------------------------------------

    def info(self, digest: str) -> Info:
        info = self._record(self._ns(), digest)
        labels = dict(info.labels or {})  # the caller's own (not dataclasses.replace: slow)
        return Info(info.digest, info.size, info.created_at, info.updated_at, labels)

    def _record(self, ns: str, digest: str) -> Info:
        """The record of ``digest`` (remembered by this thread while nothing is committed);
        DataLoss while the blob is quarantined."""
        core = self._core
        info = core.records.get(ns, digest, lambda: self._load(ns, digest))
        if info is None and self._link(ns, digest):
            info = core.records.get(ns, digest, lambda: self._load(ns, digest))
        if info is None:
            raise NotFound(f"content digest {digest}")
        reason = core.quarantined.get(digest)
        if reason is not None:
            raise health.data_loss(digest, reason)
        return info

    def _load(self, ns: str, digest: str) -> Info | None:
        # one statement (its own snapshot): on PostgreSQL one round trip per lookup,
        # and a proxied Read makes one lookup per 32 KiB
        rows = self._core.sql.query(_INFO_SQL, (ns, digest))
        if not rows:
            return None
        size, created_at, updated_at = rows[0][:3]
        labels = {key: value for *_, key, value in rows if key is not None}
        return Info(digest, int(size), from_ns(int(created_at)), from_ns(int(updated_at)), labels)

    def _link(self, ns: str, digest: str) -> bool:
        """With ``link_shared``: record ``digest`` here if another namespace shares it."""
        core = self._core
        if not self.link_shared:
            return False
        with core.view() as conn:
            size = _shared_size(conn, digest, core.shared)
        if size is None:
            return False
        with core.content_lock.shared(), core.update() as conn:
            size = _shared_size(conn, digest, core.shared)  # again, in the write transaction
            if size is None:
                return False
            created = insert_blob(core, conn, ns, digest, size, None)
        if created:
            core.publish(ns, TOPIC_CONTENT_CREATE, ContentCreate(digest, size))
        _prefetch(core.backend, digest, size)
        return True

    def update(self, info: Info, *fieldpaths: str) -> Info:
        ns = self._ns()
        digest = info.digest
        given = info.labels or {}
        with self._core.content_lock.shared(), self._core.update() as conn:
            row = _blob_row(conn, ns, digest)
            if row is None:
                raise NotFound(f"content digest {digest}")
            labels = _blob_labels(conn, ns, digest)
            if fieldpaths:
                for path in fieldpaths:
                    if path.startswith("labels."):
                        key = path[len("labels.") :]
                        labels[key] = given.get(key, "")
                    elif path == "labels":
                        labels = dict(given)
                    else:
                        raise InvalidArgument(
                            f'cannot update "{path}" field on content info "{digest}"'
                        )
            else:
                labels = dict(given)
            try:
                validate_labels(labels)
            except ContentError as err:
                raise err.wrap("info.Labels") from None
            labels = {k: v for k, v in labels.items() if v}
            now = self._core.now_ns()
            conn.execute(
                "UPDATE blobs SET updated_at = ? WHERE namespace = ? AND digest = ?",
                (now, ns, digest),
            )
            conn.execute("DELETE FROM blob_labels WHERE namespace = ? AND digest = ?", (ns, digest))
            conn.executemany(
                "INSERT INTO blob_labels (namespace, digest, key, value) VALUES (?, ?, ?, ?)",
                [(ns, digest, k, v) for k, v in labels.items()],
            )
        size, created_at, _ = row
        return Info(digest, size, from_ns(created_at), from_ns(now), labels)

    def walk(self, *filters: str) -> Iterator[Info]:
        """Records in digest byte order, read in chunks; no transaction spans a yield."""
        ns = self._ns()
        match = filtering.parse_all(filters)
        return self._walk(ns, match)

    def _walk(self, ns: str, match: filtering.Filter) -> Iterator[Info]:
        everything = match is filtering.ALWAYS
        for row in self._rows(ns):
            info = _info(row)
            if everything or match.match(info_adaptor(info)):
                yield info

    def walk_rows(
        self, *filters: str, cancelled: Callable[[], bool] | None = None
    ) -> Iterator[InfoRow]:
        """:meth:`walk` as :class:`InfoRow`: times in nanoseconds, no datetimes built
        unless a filter has to look at them. The walk ends early once ``cancelled()``
        is true (asked before each chunk of :data:`WALK_CHUNK` records): a filter that
        matches nothing would otherwise go through every record for a caller gone."""
        ns = self._ns()
        match = filtering.parse_all(filters)
        if match is filtering.ALWAYS:
            return self._rows(ns, cancelled)
        rows = self._rows(ns, cancelled)
        return (row for row in rows if match.match(info_adaptor(_info(row))))

    def _rows(self, ns: str, cancelled: Callable[[], bool] | None = None) -> Iterator[InfoRow]:
        last = ""
        canonical = digests.CANONICAL_FORM.fullmatch  # one C call for nearly every row
        valid = digests.is_valid
        while True:
            if cancelled is not None and cancelled():
                return
            with self._core.view() as conn:
                rows = conn.execute(
                    "SELECT digest, size, created_at, updated_at FROM blobs"
                    " WHERE namespace = ? AND digest > ? ORDER BY digest LIMIT ?",
                    (ns, last, WALK_CHUNK),
                ).fetchall()
                if not rows:
                    return
                labels: dict[str, dict[str, str]] = {}
                for digest, key, value in conn.execute(
                    "SELECT digest, key, value FROM blob_labels"
                    " WHERE namespace = ? AND digest >= ? AND digest <= ?",
                    (ns, rows[0][0], rows[-1][0]),
                ):
                    labels.setdefault(digest, {})[key] = value
            get = labels.get
            yield from [
                InfoRow(digest, size, created_at, updated_at, get(digest))
                for digest, size, created_at, updated_at in rows
                if canonical(digest) or valid(digest)
            ]
            if len(rows) < WALK_CHUNK:
                return
            last = rows[-1][0]

    def delete(self, digest: str) -> None:
        """Drop this namespace's record; the backend bytes wait for GC."""
        ns = self._ns()
        core = self._core
        with core.content_lock.shared(), core.update() as conn:
            cur = conn.execute("DELETE FROM blobs WHERE namespace = ? AND digest = ?", (ns, digest))
            if cur.rowcount == 0:
                raise NotFound(f"content digest {digest}")
            leases.remove_content(conn, ns, self.lease, digest)
            core.mark_dirty(content=True)
        core.publish(ns, TOPIC_CONTENT_DELETE, ContentDelete(digest))

    # -- IngestManager ---------------------------------------------------

    def status(self, ref: str) -> Status:
        ns = self._ns()
        with self._core.view() as conn:
            row = conn.execute(
                "SELECT backend_ref FROM ingests WHERE namespace = ? AND ref = ?", (ns, ref)
            ).fetchone()
        if row is None or not row[0]:
            raise NotFound(f"reference {ref}")
        return _with_ref(self._core.backend.status(row[0]), ref)

    def list_statuses(self, *filters: str) -> builtins.list[Status]:
        ns = self._ns()
        match = filtering.parse_all(filters)
        with self._core.view() as conn:
            rows = conn.execute(
                "SELECT ref, backend_ref FROM ingests WHERE namespace = ? ORDER BY ref", (ns,)
            ).fetchall()
        out: builtins.list[Status] = []
        for ref, bref in rows:
            try:
                status = _with_ref(self._core.backend.status(bref), ref)
            except NotFound:
                continue
            if match.match(status_adaptor(status)):
                out.append(status)
        return out

    def abort(self, ref: str) -> None:
        ns = self._ns()
        core = self._core
        with core.content_lock.shared(), core.update() as conn:
            row = conn.execute(
                "SELECT backend_ref, expected FROM ingests WHERE namespace = ? AND ref = ?",
                (ns, ref),
            ).fetchone()
            if row is None or not row[0]:
                raise NotFound(f"reference {ref}")
            bref, expected = row
            conn.execute("DELETE FROM ingests WHERE namespace = ? AND ref = ?", (ns, ref))
            leases.remove_ingest(conn, ns, self.lease, ref)
            # a shared ingest keeps `expected` even after it was written to (a
            # containerd quirk): its backend ingest is then left for GC
            if not expected:
                core.backend.abort(bref)

    # -- Ingester --------------------------------------------------------

    def writer(self, ref: str, total: int = 0, expected: str | None = None) -> NamespacedWriter:
        """Open (or resume) the ingest ``ref`` (spec §4.3).

        The decisions are made in a read transaction, the backend writer is
        opened outside any transaction (a resume re-hashes the ingest, and a
        held ref retries for about a second: neither may stall every other
        metadata write), and the record is written last. All of it happens
        under the shared content lock, so GC never sees a backend ingest
        whose record is still to come.
        """
        if not ref:
            raise InvalidArgument("ref must not be empty")
        ns = self._ns()
        expected = expected or ""
        core = self._core
        backend = core.backend
        started = core.now()
        with core.content_lock.shared():
            with core.view() as conn:
                # a quarantined blob is no blob: the writer brings good bytes (a repair)
                exists = (
                    bool(expected)
                    and expected not in core.quarantined
                    and _blob_row(conn, ns, expected) is not None
                )
                shareable = (
                    bool(expected)
                    and not exists
                    and expected not in core.quarantined  # its backend bytes are bad
                    and (core.shared or _shareable_elsewhere(conn, expected))
                )
                row = conn.execute(
                    "SELECT backend_ref FROM ingests WHERE namespace = ? AND ref = ?", (ns, ref)
                ).fetchone()
                if not exists:
                    leases.check(conn, ns, self.lease)
            if exists:
                self._lease_existing(expected)
            bref = str(row[0]) if row is not None and row[0] else backend_ref(ns, ref)
            lock: RefLock | None = None
            bw: Writer | None = None
            try:
                # a shared open relies on the backend's bytes: until the ingest
                # record names them, no collector may take them
                with core.cluster.guard_digest(expected) if shareable else nullcontext():
                    shared = False
                    size = total
                    if shareable:
                        try:
                            binfo = backend.info(expected)
                        except ContentError:
                            pass
                        else:
                            if total <= 0 or total == binfo.size:
                                shared = True
                                size = binfo.size
                    if not shared:
                        # other nodes: the ref is ours until close or commit (Unavailable
                        # while another live writer holds it)
                        lock = core.cluster.lock_ref(ns, ref, bref)
                        bw = _backend_writer(backend, bref, size, expected)
                        crash_point("writer:after-backend-open")
                    # not synced: see NamespacedWriter.close
                    with core.update(durable=False) as conn:
                        if (
                            expected
                            and expected not in core.quarantined
                            and _blob_row(conn, ns, expected) is not None
                        ):
                            exists = True  # committed by someone else meanwhile
                        else:
                            self._open_ingest(conn, ns, ref, bref, expected if shared else "")
                crash_point("writer:after-record")
                if exists:
                    self._lease_existing(expected)
                if shared:
                    _prefetch(backend, expected, size)
            except BaseException:
                if bw is not None:
                    bw.close()
                if lock is not None:
                    lock.release()
                raise
        return NamespacedWriter(
            core,
            namespace=ns,
            lease=self.lease,
            ref=ref,
            backend_ref=bref,
            backend_writer=bw,
            started=started,
            size=size,
            digest=expected if shared else "",
            lock=lock,
        )

    def _lease_existing(self, digest: str) -> None:
        """An open that finds ``digest`` recorded: lease it, then report AlreadyExists."""
        ns = self._ns()
        with self._core.update() as conn:
            try:
                leases.add_content(conn, ns, self.lease, digest)
            except NotFound as err:
                raise err.wrap("unable to lease content") from None
        raise AlreadyExists(f"content {digest}")

    def _open_ingest(self, conn: Conn, ns: str, ref: str, bref: str, expected: str) -> None:
        """Create or reuse the ingest record and do the lease bookkeeping."""
        core = self._core
        core.ensure_namespace(conn, ns)
        leased = leases.add_ingest(conn, ns, self.lease, ref)
        expire_at: int | None = None
        if not leased and not _managed_externally(conn, ns):
            # refreshed on every open; a lease, when given, decides instead
            expire_at = to_ns(core.now() + INGEST_EXPIRY)
        # one statement: a resumed ingest keeps its backend ref, and its expiry and
        # expected digest unless this open sets them
        conn.execute(
            "INSERT INTO ingests (namespace, ref, backend_ref, expire_at, expected)"
            " VALUES (?, ?, ?, ?, ?) ON CONFLICT (namespace, ref) DO UPDATE SET"
            " expire_at = COALESCE(excluded.expire_at, ingests.expire_at),"
            " expected = COALESCE(excluded.expected, ingests.expected)",
            (ns, ref, bref, expire_at, expected or None),
        )


# -- queries -----------------------------------------------------------------


def _info(row: InfoRow) -> Info:
    digest, size, created_ns, updated_ns, labels = row
    return Info(digest, size, from_ns(created_ns), from_ns(updated_ns), labels or {})


#: a record and its labels in one statement: one row per label, or one row with NULLs
_INFO_SQL: Final = (
    "SELECT b.size, b.created_at, b.updated_at, l.key, l.value FROM blobs b"
    " LEFT JOIN blob_labels l ON l.namespace = b.namespace AND l.digest = b.digest"
    " WHERE b.namespace = ? AND b.digest = ?"
)


def _blob_row(conn: Conn, ns: str, digest: str) -> tuple[int, int, int] | None:
    row = conn.execute(
        "SELECT size, created_at, updated_at FROM blobs WHERE namespace = ? AND digest = ?",
        (ns, digest),
    ).fetchone()
    return None if row is None else (int(row[0]), int(row[1]), int(row[2]))


def _blob_labels(conn: Conn, ns: str, digest: str) -> dict[str, str]:
    return dict(
        conn.execute(
            "SELECT key, value FROM blob_labels WHERE namespace = ? AND digest = ?", (ns, digest)
        ).fetchall()
    )


def _shareable_elsewhere(conn: Conn, digest: str) -> bool:
    """A namespace labelled ``containerd.io/namespace.shareable=true`` records ``digest``."""
    row = conn.execute(
        "SELECT 1 FROM blobs b JOIN namespace_labels l ON l.namespace = b.namespace"
        " WHERE b.digest = ? AND l.key = ? AND l.value = 'true' LIMIT 1",
        (digest, LABEL_NAMESPACE_SHAREABLE),
    ).fetchone()
    return row is not None


_LABELLED = (
    " AND EXISTS (SELECT 1 FROM namespace_labels l WHERE l.namespace = b.namespace"
    " AND l.key = ? AND l.value = 'true')"
)


def _shared_size(conn: Conn, digest: str, shared: bool) -> int | None:
    """The size of ``digest`` if another containerd's pinned namespace records it and
    may share it (``shared`` policy, or that namespace labelled shareable). Other
    tenants' blobs stay out of a header-less caller's sight."""
    sql = "SELECT b.size FROM blobs b WHERE b.digest = ?" + _LABELLED
    args: list[str] = [digest, LABEL_GC_MANAGED_EXTERNALLY]
    if not shared:
        sql += _LABELLED
        args.append(LABEL_NAMESPACE_SHAREABLE)
    row = conn.execute(sql + " LIMIT 1", args).fetchone()
    return None if row is None else int(row[0])


def _managed_externally(conn: Conn, ns: str) -> bool:
    row = conn.execute(
        "SELECT 1 FROM namespace_labels WHERE namespace = ? AND key = ? AND value = 'true'",
        (ns, LABEL_GC_MANAGED_EXTERNALLY),
    ).fetchone()
    return row is not None


def _with_ref(status: Status, ref: str) -> Status:
    return replace(status, ref=ref)


def _prefetch(backend: Store, digest: str, size: int) -> None:
    """Tell a backend that keeps a local read cache (S3) that this node is about to
    read ``digest``, another node's bytes it just linked: it can copy them ahead."""
    prefetch = getattr(backend, "prefetch", None)
    if callable(prefetch):
        prefetch(digest, size)


def _backend_writer(backend: Store, bref: str, size: int, expected: str) -> Writer:
    """The backend writer of a new or resumed ingest.

    The expected digest was checked against this namespace only, so the backend
    must not short-cut on it (AlreadyExists); a backend that can put the upload
    where that blob goes (S3: no copy at commit) is told it as a target.
    """
    place = getattr(backend, "writer_for", None)
    if expected and callable(place):
        writer: Writer = place(bref, size, expected)
        return writer
    return backend.writer(bref, total=size)
