"""The metadata database on PostgreSQL (psycopg 3), shared by every node of a cluster.

:class:`PostgresDB` is the :class:`~contentd.metadata.sql.Database` the
shared metadata code runs on: the same migrations as SQLite (translated:
``INTEGER`` -> ``BIGINT``, ``TEXT`` -> ``TEXT COLLATE "C"`` so text sorts
bytewise as in SQLite, no ``WITHOUT ROWID``), the same SQL (``?``
placeholders rewritten to psycopg's ``%s``).

- **Connections.** A bounded pool (``pool_size``, 16 by default); a thread
  holds one only for the length of a transaction (nested transactions join
  it). A connection that breaks is dropped; the call gets ``Unavailable``.
- **Transactions.** ``query()`` runs one statement without a transaction around
  it (autocommit; one round trip), for single-statement reads. ``read()`` is
  ``REPEATABLE READ READ ONLY``: one snapshot, never blocking writers.
  ``write()`` takes ``pg_advisory_xact_lock`` on one key first: metadata writes
  are serialised across the whole cluster, as SQLite serialises them per file,
  so the shared code's check-then-write steps stay atomic. ``write(durable=False)``
  commits with ``synchronous_commit=off`` for that transaction (the ingest record
  at open, as on SQLite); :meth:`PostgresDB.sync` makes such commits durable.

:class:`PostgresCluster` is the :class:`~contentd.metadata.cluster.Cluster`:

- **Ref locks**: a row per backend ref in ``cluster_ref_locks`` (holder node,
  fencing token from a sequence, expiry on the server's clock). Taking a ref
  inserts the row or takes over one whose lease expired (a new, larger
  token); a thread renews this node's rows every ``lease/3``. A commit checks
  its token with ``SELECT ... FOR UPDATE`` in its write transaction and ends
  the lock there: a writer whose ref was taken over fails its commit.
- **Digest guards**: session-level advisory locks, shared for writers (from
  the moment they rely on a blob's bytes until their record is written),
  exclusive, per candidate, for the collector's re-check and delete.
- **One collector**: ``pg_try_advisory_lock`` on the GC key, polled while
  another node collects (then this node collects too, or skips after a while).
- **Events**: ``NOTIFY contentd_events`` with a JSON payload; a listener
  thread forwards other nodes' events to this node's exchange.
- **Pins**: a session-level advisory lock per pinned header-less namespace,
  held while this node lives (a dead node's session ends, and its locks with
  it); ``cluster_pins`` names the holder for the error message.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import socket
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from typing import Any, Final

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from contentd.content.errors import FailedPrecondition, InvalidArgument, Unavailable
from contentd.content.gotime import from_ns, to_ns
from contentd.metadata.db import migrate
from contentd.metadata.events import (
    TOPIC_CONTENT_CREATE,
    TOPIC_CONTENT_DELETE,
    ContentCreate,
    ContentDelete,
    Envelope,
    Exchange,
)
from contentd.metadata.migrations import MIGRATIONS, Migration
from contentd.metadata.sql import Conn, Cursor

__all__ = [
    "DEFAULT_REF_LOCK_LEASE",
    "PostgresCluster",
    "PostgresDB",
    "advisory_key",
    "redact_dsn",
    "translate_ddl",
]

log = logging.getLogger(__name__)

DEFAULT_REF_LOCK_LEASE: Final = 30.0
#: seconds a node may answer from the blob records it remembers (:meth:`PostgresDB.generation`)
#: before it asks the database again whether any record changed
DEFAULT_RECORD_LEASE: Final = 0.25
#: the longest record lease a node may take (a commit that changed records waits at most this)
MAX_RECORD_LEASE: Final = 60.0
EVENTS_CHANNEL: Final = "contentd_events"
_POOL_WAIT: Final = 30.0


def advisory_key(name: str) -> int:
    """A signed 64-bit advisory lock key for ``name`` (collisions only cost contention)."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


_WRITE_KEY: Final = advisory_key("contentd:metadata-write")
_GC_KEY: Final = advisory_key("contentd:gc")


def redact_dsn(dsn: str) -> str:
    """``dsn`` without its secrets (the password and the TLS key's ``sslpassword``; key/value
    or URL form), for logs and errors."""
    try:
        parts = conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        return "<unparsable dsn>"
    for secret in ("password", "sslpassword"):
        if secret in parts:
            parts[secret] = "***"
    return make_conninfo(**{k: str(v) for k, v in parts.items() if v is not None})


def translate_ddl(statement: str) -> str:
    """A migration statement in SQLite's spelling, as PostgreSQL needs it."""
    statement = re.sub(r"\)\s*WITHOUT ROWID\s*$", ")", statement)
    statement = re.sub(r"\bINTEGER\b", "BIGINT", statement)
    statement = re.sub(r"\bBLOB\b", "BYTEA", statement)
    return re.sub(r"\bTEXT\b", 'TEXT COLLATE "C"', statement)


_CLUSTER_DDL: Final = (
    "CREATE SEQUENCE IF NOT EXISTS cluster_fence",
    "CREATE TABLE IF NOT EXISTS cluster_ref_locks ("
    ' backend_ref TEXT COLLATE "C" PRIMARY KEY,'
    ' holder TEXT COLLATE "C" NOT NULL,'
    " fence BIGINT NOT NULL,"
    " since TIMESTAMPTZ NOT NULL,"
    " expires_at TIMESTAMPTZ NOT NULL)",
    "CREATE TABLE IF NOT EXISTS cluster_pins ("
    ' namespace TEXT COLLATE "C" PRIMARY KEY,'
    ' node TEXT COLLATE "C" NOT NULL,'
    " since TIMESTAMPTZ NOT NULL)",
    # one row: how often blob records were changed or removed, and until when some node
    # may still answer from records it remembers (see PostgresDB.generation)
    "CREATE TABLE IF NOT EXISTS cluster_records ("
    " id INTEGER PRIMARY KEY CHECK (id = 1),"
    " generation BIGINT NOT NULL DEFAULT 0,"
    " leased_until TIMESTAMPTZ NOT NULL DEFAULT 'epoch')",
    "INSERT INTO cluster_records (id) VALUES (1) ON CONFLICT DO NOTHING",
)

#: a statement that changes or removes blob records (a commit only inserts new ones)
_CHANGES_RECORDS: Final = re.compile(r"\s*(DELETE\s+FROM|UPDATE)\s+blob(s|_labels)\b", re.I)
_LEASE_RECORDS: Final = (
    "UPDATE cluster_records SET leased_until ="
    " GREATEST(leased_until, clock_timestamp() + make_interval(secs => %s))"
    " WHERE id = 1 RETURNING generation"
)
_BUMP_RECORDS: Final = (
    "UPDATE cluster_records SET generation = generation + 1 WHERE id = 1"
    " RETURNING GREATEST("
    "EXTRACT(EPOCH FROM leased_until) - EXTRACT(EPOCH FROM clock_timestamp()), 0)"
)

_PLACEHOLDERS: dict[str, tuple[str, bool]] = {}


def _translate(sql: str) -> tuple[str, bool]:
    """``sql`` with psycopg's placeholders, and whether it changes or removes blob records."""
    out = _PLACEHOLDERS.get(sql)
    if out is None:
        out = sql.replace("%", "%%").replace("?", "%s"), bool(_CHANGES_RECORDS.match(sql))
        if len(_PLACEHOLDERS) < 4096:
            _PLACEHOLDERS[sql] = out
    return out


def _pg_sql(sql: str) -> str:
    return _translate(sql)[0]


class _PgConn:
    """A psycopg connection inside one transaction, speaking the shared SQL.

    ``changes_records``: a statement of the transaction changed or removed blob
    records (its commit then ends the records other nodes remember)."""

    __slots__ = ("changes_records", "raw")

    def __init__(self, raw: psycopg.Connection[Any]) -> None:
        self.raw = raw
        self.changes_records = False

    def execute(self, sql: str, parameters: Sequence[Any] = (), /) -> Cursor:
        text, changes = _translate(sql)
        if changes:
            self.changes_records = True
        return self.raw.execute(text, parameters or None)

    def executemany(self, sql: str, parameters: Iterable[Sequence[Any]], /) -> Cursor:
        text, changes = _translate(sql)
        if changes:
            self.changes_records = True
        cur = self.raw.cursor()
        cur.executemany(text, list(parameters))
        return cur


class _ThreadState(threading.local):
    conn: _PgConn | None = None
    depth: int = 0
    writing: bool = False
    lazy: bool = False


def _unavailable(err: BaseException) -> Unavailable:
    return Unavailable(f"metadata database unavailable: {str(err).strip()}")


class PostgresDB:
    """A PostgreSQL metadata database, for the threads of this process."""

    def __init__(
        self,
        dsn: str,
        *,
        migrations: Sequence[Migration] = MIGRATIONS,
        pool_size: int = 16,
        connect_timeout: float = 10.0,
        record_lease: float = DEFAULT_RECORD_LEASE,
    ) -> None:
        if pool_size < 1:
            raise InvalidArgument("pool_size must be at least 1")
        if not 0 < record_lease <= MAX_RECORD_LEASE:
            raise InvalidArgument(f"record lease must be above 0 and at most {MAX_RECORD_LEASE} s")
        self.record_lease = record_lease
        # (generation, until): this node may answer from records remembered under that
        # generation until then (monotonic), and the monotonic time the lease was asked at
        self._records: tuple[int, float] = (0, 0.0)
        self._records_asked = 0.0
        self._records_lock = threading.Lock()
        self.dsn = dsn
        self.redacted = redact_dsn(dsn)
        self._connect_timeout = connect_timeout
        self._pool_size = pool_size
        self._idle: list[psycopg.Connection[Any]] = []
        self._open = 0
        self._pool_cond = threading.Condition(threading.Lock())
        self._state = _ThreadState()
        self._closed = False
        self._lazy_lock = threading.Lock()
        self._lazy_pending = False
        with self.write() as conn:
            migrate(conn, migrations, translate_ddl)
            for statement in _CLUSTER_DDL:
                conn.execute(statement)

    def __repr__(self) -> str:
        return f"PostgresDB({self.redacted!r})"

    # -- connections -----------------------------------------------------

    def connect(self, *, autocommit: bool = True) -> psycopg.Connection[Any]:
        """A new connection (outside the pool); Unavailable when the server cannot be reached."""
        try:
            return psycopg.connect(
                self.dsn,
                autocommit=autocommit,
                connect_timeout=max(1, int(self._connect_timeout)),
                application_name="contentd",
            )
        except psycopg.Error as err:
            raise Unavailable(
                f"cannot connect to the metadata database ({self.redacted}): {str(err).strip()}"
            ) from None

    def _acquire(self) -> psycopg.Connection[Any]:
        deadline = time.monotonic() + _POOL_WAIT
        with self._pool_cond:
            while True:
                if self._closed:
                    raise FailedPrecondition("metadata database is closed")
                if self._idle:
                    return self._idle.pop()
                if self._open < self._pool_size:
                    self._open += 1
                    break
                left = deadline - time.monotonic()
                if left <= 0:
                    raise Unavailable("metadata database: every pooled connection is busy")
                self._pool_cond.wait(left)
        try:
            return self.connect()
        except BaseException:
            with self._pool_cond:
                self._open -= 1
                self._pool_cond.notify()
            raise

    def _release(self, raw: psycopg.Connection[Any], *, broken: bool) -> None:
        with self._pool_cond:
            if broken or self._closed or raw.closed or raw.info.transaction_status != 0:
                self._open -= 1
                discard = True
            else:
                self._idle.append(raw)
                discard = False
            self._pool_cond.notify()
        if discard:
            raw.close()

    def close(self) -> None:
        with self._pool_cond:
            self._closed = True
            idle, self._idle = self._idle, []
            self._pool_cond.notify_all()
        for raw in idle:
            raw.close()

    @property
    def closed(self) -> bool:
        return self._closed

    # -- transactions ----------------------------------------------------

    def _begin(self, begin: Sequence[str]) -> psycopg.Connection[Any]:
        """A pooled connection with the transaction begun. A broken one (the server
        restarted since it was pooled) is replaced once, with every idle one."""
        for attempt in range(2):
            raw = self._acquire()
            try:
                for statement in begin:
                    raw.execute(statement)
                return raw
            except psycopg.OperationalError as err:
                self._release(raw, broken=True)
                if attempt:
                    raise _unavailable(err) from None
                self._drop_idle()
            except BaseException:
                self._release(raw, broken=True)
                raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _drop_idle(self) -> None:
        with self._pool_cond:
            idle, self._idle = self._idle, []
            self._open -= len(idle)
            self._pool_cond.notify_all()
        for raw in idle:
            raw.close()

    @contextmanager
    def _transaction(self, begin: Sequence[str], *, writing: bool) -> Iterator[_PgConn]:
        state = self._state
        raw = self._begin(begin)
        conn = _PgConn(raw)
        broken = False
        leased = 0.0
        state.conn, state.depth, state.writing = conn, 1, writing
        try:
            try:
                yield conn
                if conn.changes_records:
                    # under the row's lock until the commit: no node gets a new lease on
                    # the old generation, and the last one granted ends in ``leased`` s
                    row = raw.execute(_BUMP_RECORDS).fetchone()
                    leased = float(row[0]) if row else 0.0
            except BaseException:
                try:
                    raw.execute("ROLLBACK")
                except psycopg.Error:
                    broken = True
                raise
            try:
                raw.execute("COMMIT")
            except psycopg.OperationalError as err:
                # the commit may or may not have happened: the caller was told nothing yet
                broken = True
                raise _unavailable(err) from None
        except psycopg.OperationalError as err:
            broken = True
            raise _unavailable(err) from None
        finally:
            state.conn, state.depth, state.writing = None, 0, False
            self._release(raw, broken=broken or raw.closed)
        if conn.changes_records:
            self._end_records_lease(leased)

    @contextmanager
    def _nested(self, *, writing: bool) -> Iterator[_PgConn]:
        state = self._state
        assert state.conn is not None
        if writing and not state.writing:
            raise RuntimeError("write transaction inside a read transaction")
        state.depth += 1
        try:
            yield state.conn
        finally:
            state.depth -= 1

    def read(self) -> Any:
        """A read transaction: one snapshot (or the enclosing transaction of this thread)."""
        if self._state.depth:
            return self._nested(writing=False)
        return self._transaction(
            ["BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY"], writing=False
        )

    def query(self, sql: str, parameters: Sequence[Any] = (), /) -> list[Any]:
        """One read-only statement on a pooled connection without a transaction around
        it (autocommit: the statement is its own snapshot), so one round trip instead of
        four (BEGIN, the statement, COMMIT). Inside a transaction of this thread, in it.
        A connection the server dropped while pooled is replaced once."""
        if self._state.depth:
            assert self._state.conn is not None
            return self._state.conn.execute(sql, parameters).fetchall()
        text = _pg_sql(sql)
        for attempt in range(2):
            raw = self._acquire()
            try:
                rows = raw.execute(text, parameters or None).fetchall()
            except psycopg.OperationalError as err:
                self._release(raw, broken=True)
                if attempt:
                    raise _unavailable(err) from None
                self._drop_idle()
                continue
            except BaseException:
                self._release(raw, broken=True)
                raise
            self._release(raw, broken=False)
            return rows
        raise AssertionError("unreachable")  # pragma: no cover

    def generation(self) -> int | None:
        """How often blob records were changed or removed, cluster-wide, as this node may
        still assume it: while two calls return the same value, no change or removal of
        a blob record was committed by any node that this node must see. None inside a
        transaction of this thread (what it reads must not be remembered).

        A lease: the value is asked from the database (one round trip, which extends
        ``cluster_records.leased_until`` to the database's clock plus ``record_lease``)
        and trusted for ``record_lease`` seconds from the moment it was asked. A
        transaction that changes or removes a blob record increments the value and,
        after its commit, waits until the last lease any node was granted on the old
        value has run out (:meth:`_end_records_lease`). So a node never answers from
        a remembered record once the change of it has returned to its caller, and
        nodes that do not read pay nothing, nor do deletes while no node reads."""
        if self._state.depth:
            return None
        generation, until = self._records
        if time.monotonic() < until:
            return generation
        asked = time.monotonic()
        raw = self._acquire()
        try:
            row = raw.execute(_LEASE_RECORDS, (self.record_lease,)).fetchone()
        except psycopg.OperationalError as err:
            self._release(raw, broken=True)
            raise _unavailable(err) from None
        except BaseException:
            self._release(raw, broken=True)
            raise
        self._release(raw, broken=False)
        generation = int(row[0]) if row else -1
        with self._records_lock:
            if asked > self._records_asked:  # never replaced by an older answer
                self._records_asked = asked
                self._records = (generation, asked + self.record_lease)
        return generation

    def generation_is_local(self) -> bool:
        """Whether this node holds a record lease now (:meth:`generation` needs no round trip)."""
        return time.monotonic() < self._records[1]

    def _end_records_lease(self, leased: float) -> None:
        """After a commit that changed blob records: forget this node's lease and wait
        until the leases of every node on the old generation have ended (``leased``
        seconds as the database counted them, whatever lease each node takes)."""
        with self._records_lock:
            self._records = (self._records[0], 0.0)
        if leased > 0:
            # a little longer: the nodes' clocks count the lease from before the
            # database did, and may run a little slower than the database's
            time.sleep(min(leased, MAX_RECORD_LEASE) * 1.01 + 0.002)

    def write(self, *, durable: bool = True) -> Any:
        """A write transaction, serialised with every other writer of the database."""
        if self._state.depth:
            return self._nested(writing=True)
        begin = ["BEGIN", f"SELECT pg_advisory_xact_lock({_WRITE_KEY})"]
        if not durable:
            begin.append("SET LOCAL synchronous_commit = off")
            with self._lazy_lock:
                self._lazy_pending = True
        return self._transaction(begin, writing=True)

    @contextmanager
    def locked(self, key: int) -> Iterator[_PgConn]:
        """A read-committed transaction holding the advisory lock ``key`` exclusively."""
        if self._state.depth:
            raise RuntimeError("locked() cannot nest in another transaction")
        with self._transaction(
            ["BEGIN", f"SELECT pg_advisory_xact_lock({key})"], writing=False
        ) as c:
            yield c

    def sync(self) -> None:
        """Make every commit so far durable: a commit with an xid flushes the WAL up to it."""
        with self._lazy_lock:
            if not self._lazy_pending:
                return
            self._lazy_pending = False
        with self._transaction(["BEGIN"], writing=True) as conn:
            conn.execute("SELECT txid_current()")


# -- the cluster ----------------------------------------------------------------


def _node_id(name: str | None) -> str:
    base = name or socket.gethostname()
    return f"{base}/{os.getpid()}/{os.urandom(4).hex()}"


class _Session:
    """One autocommit connection, used by one thread at a time, reconnected when broken."""

    def __init__(self, db: PostgresDB) -> None:
        self._db = db
        self._raw: psycopg.Connection[Any] | None = None
        self._lock = threading.Lock()

    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        with self._lock:
            if self._raw is None or self._raw.closed:
                self._raw = self._db.connect()
            try:
                cur = self._raw.execute(_pg_sql(sql), params or None)
                return cur.fetchall() if cur.description is not None else []
            except psycopg.OperationalError as err:
                self._raw.close()
                self._raw = None
                raise _unavailable(err) from None

    def close(self) -> None:
        with self._lock:
            if self._raw is not None:
                self._raw.close()
                self._raw = None


class _PgRefLock:
    def __init__(self, cluster: PostgresCluster, ref: str, backend_ref: str, fence: int) -> None:
        self._cluster = cluster
        self.ref = ref
        self.backend_ref = backend_ref
        self.fence = fence
        self.released = False

    def _lost(self, holder: str | None) -> FailedPrecondition:
        now = f" (now held by {holder})" if holder else ""
        return FailedPrecondition(
            f"ref {self.ref}: this writer lost its lock, another writer took the ingest over{now}"
        )

    def renew(self) -> None:
        rows = self._cluster._session.execute(
            "UPDATE cluster_ref_locks SET expires_at = clock_timestamp() + make_interval(secs => ?)"
            " WHERE backend_ref = ? AND fence = ? RETURNING fence",
            (self._cluster.lease, self.backend_ref, self.fence),
        )
        if not rows:
            raise self._lost(None)

    def check(self, conn: Conn) -> None:
        row = conn.execute(
            "SELECT fence, holder FROM cluster_ref_locks WHERE backend_ref = ? FOR UPDATE",
            (self.backend_ref,),
        ).fetchone()
        if row is None or int(row[0]) != self.fence:
            raise self._lost(str(row[1]) if row is not None else None)
        conn.execute(
            "DELETE FROM cluster_ref_locks WHERE backend_ref = ? AND fence = ?",
            (self.backend_ref, self.fence),
        )

    def release(self) -> None:
        if self.released:
            return
        self.released = True
        self._cluster._forget(self)


class PostgresCluster:
    """The cluster hooks over a :class:`PostgresDB` (see the module docstring)."""

    shared_backend = True

    def __init__(
        self,
        db: PostgresDB,
        events: Exchange,
        *,
        node: str | None = None,
        ref_lock_lease: float = DEFAULT_REF_LOCK_LEASE,
    ) -> None:
        if ref_lock_lease <= 0:
            raise InvalidArgument("ref_lock_lease must be positive")
        self.db = db
        self.events = events
        self.node = _node_id(node)
        self.lease = ref_lock_lease
        self._session = _Session(db)  # collector and pin locks, renewals, notifies
        self._guards = _Session(db)  # digest guards (shared advisory locks)
        self._held: dict[str, _PgRefLock] = {}
        self._held_lock = threading.Lock()
        self._stop = threading.Event()
        #: set while this node receives other nodes' events
        self.listening = threading.Event()
        #: how long a collection waits for another node's to end before it skips
        self.collector_wait = 60.0
        self._threads = [
            threading.Thread(target=self._renew_loop, name="contentd-ref-locks", daemon=True),
            threading.Thread(target=self._listen_loop, name="contentd-events", daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def __repr__(self) -> str:
        return f"PostgresCluster(node={self.node!r})"

    # -- ref locks ---------------------------------------------------------

    def lock_ref(self, namespace: str, ref: str, backend_ref: str) -> _PgRefLock:
        for attempt in range(10):  # as a local ref lock, retry for about a second
            rows = self._session.execute(
                "INSERT INTO cluster_ref_locks (backend_ref, holder, fence, since, expires_at)"
                " VALUES (?, ?, nextval('cluster_fence'), clock_timestamp(),"
                " clock_timestamp() + make_interval(secs => ?))"
                " ON CONFLICT (backend_ref) DO UPDATE SET holder = excluded.holder,"
                " fence = excluded.fence, since = excluded.since, expires_at = excluded.expires_at"
                " WHERE cluster_ref_locks.expires_at < clock_timestamp()"
                " RETURNING fence",
                (backend_ref, self.node, self.lease),
            )
            if rows:
                lock = _PgRefLock(self, ref, backend_ref, int(rows[0][0]))
                with self._held_lock:
                    self._held[backend_ref] = lock
                return lock
            if attempt < 9:
                time.sleep(0.1)
        held = self._session.execute(
            "SELECT holder, since, clock_timestamp() - since FROM cluster_ref_locks"
            " WHERE backend_ref = ?",
            (backend_ref,),
        )
        detail = ""
        if held:
            holder, since, age = held[0]
            detail = f" for {age.total_seconds():.0f}s (since {since.isoformat()}) by {holder}"
        raise Unavailable(f"ref {ref} locked{detail}")

    def _forget(self, lock: _PgRefLock) -> None:
        with self._held_lock:
            if self._held.get(lock.backend_ref) is lock:
                del self._held[lock.backend_ref]
        try:
            self._session.execute(
                "DELETE FROM cluster_ref_locks WHERE backend_ref = ? AND fence = ?",
                (lock.backend_ref, lock.fence),
            )
        except Unavailable as err:  # it expires on its own
            log.warning("releasing ref lock %s: %s", lock.ref, err)

    def _renew_loop(self) -> None:
        while not self._stop.wait(self.lease / 3):
            with self._held_lock:
                held = list(self._held.values())
            if not held:
                continue
            try:
                rows = self._session.execute(
                    "UPDATE cluster_ref_locks l"
                    " SET expires_at = clock_timestamp() + make_interval(secs => ?)"
                    " FROM unnest(?::text[], ?::bigint[]) AS h(b, f)"
                    " WHERE l.backend_ref = h.b AND l.fence = h.f RETURNING l.backend_ref",
                    (self.lease, [h.backend_ref for h in held], [h.fence for h in held]),
                )
            except Unavailable as err:
                log.warning("renewing ref locks: %s", err)
                continue
            kept = {row[0] for row in rows}
            for lock in held:
                if lock.backend_ref not in kept and not lock.released:
                    log.warning("ref %s: lock taken over by another writer", lock.ref)

    def ref_in_use(self, conn: Conn, backend_ref: str) -> bool:
        row = conn.execute(
            "SELECT 1 FROM cluster_ref_locks WHERE backend_ref = ?"
            " AND expires_at > clock_timestamp()"
            " UNION ALL SELECT 1 FROM ingests WHERE backend_ref = ? LIMIT 1",
            (backend_ref, backend_ref),
        ).fetchone()
        return row is not None

    # -- digests -------------------------------------------------------------

    @contextmanager
    def guard_digest(self, digest: str) -> Iterator[None]:
        key = advisory_key("digest:" + digest)
        deadline = time.monotonic() + _POOL_WAIT
        # try, never block: one session serves every writer thread of this node
        while not self._guards.execute("SELECT pg_try_advisory_lock_shared(?)", (key,))[0][0]:
            if time.monotonic() > deadline:
                raise Unavailable(f"content {digest} is being collected; try again")
            time.sleep(0.01)
        try:
            yield
        finally:
            with suppress(Unavailable):  # else the session is gone, and its locks with it
                self._guards.execute("SELECT pg_advisory_unlock_shared(?)", (key,))

    def sweep_digest(self, digest: str) -> Any:
        return self.db.locked(advisory_key("digest:" + digest))

    @contextmanager
    def collector(self) -> Iterator[bool]:
        """The cluster's collector lock. While another node collects, wait for it (up to
        :attr:`collector_wait` seconds, polling: the session serves other calls
        meanwhile) and then collect too, so that a requested collection (``contentd gc``,
        a lease deleted with ``sync``) always runs after the request; past the wait, skip."""
        deadline = time.monotonic() + self.collector_wait
        while True:
            ours = bool(self._session.execute("SELECT pg_try_advisory_lock(?)", (_GC_KEY,))[0][0])
            if ours or time.monotonic() >= deadline:
                break
            time.sleep(0.1)
        try:
            if ours:
                # dead writers' locks nobody took over; a holder that comes back finds its
                # lock gone, which fails its commit as a takeover would
                self._session.execute(
                    "DELETE FROM cluster_ref_locks WHERE expires_at < clock_timestamp()"
                    " - make_interval(secs => ?)",
                    (max(self.lease * 10, 3600.0),),
                )
            yield ours
        finally:
            if ours:
                with suppress(Unavailable):
                    self._session.execute("SELECT pg_advisory_unlock(?)", (_GC_KEY,))

    # -- events --------------------------------------------------------------

    def publish(self, envelope: Envelope) -> None:
        event = envelope.event
        payload: dict[str, object] = {
            "node": self.node,
            "ns": envelope.namespace,
            "topic": envelope.topic,
            "ts": to_ns(envelope.timestamp),
        }
        if isinstance(event, ContentCreate):
            payload.update(digest=event.digest, size=event.size)
        elif isinstance(event, ContentDelete):
            payload.update(digest=event.digest)
        else:
            return
        try:
            self._session.execute("SELECT pg_notify(?, ?)", (EVENTS_CHANNEL, json.dumps(payload)))
        except Unavailable as err:
            log.warning("event %s not sent to other nodes: %s", envelope.topic, err)

    def _listen_loop(self) -> None:
        backoff = 0.5
        while not self._stop.is_set():
            try:
                raw = self.db.connect()
            except Unavailable as err:
                log.warning("events from other nodes: %s", err)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 10.0)
                continue
            backoff = 0.5
            try:
                with raw:
                    raw.execute(f"LISTEN {EVENTS_CHANNEL}")
                    self.listening.set()
                    while not self._stop.is_set():
                        for notify in raw.notifies(timeout=0.5):
                            self._deliver(notify.payload)
            except psycopg.Error as err:
                self.listening.clear()
                if not self._stop.is_set():
                    log.warning("events from other nodes: connection lost: %s", err)

    def _deliver(self, payload: str) -> None:
        try:
            data = json.loads(payload)
            if data.get("node") == self.node:
                return
            topic = str(data["topic"])
            event: object
            if topic == TOPIC_CONTENT_CREATE:
                event = ContentCreate(str(data["digest"]), int(data["size"]))
            elif topic == TOPIC_CONTENT_DELETE:
                event = ContentDelete(str(data["digest"]))
            else:
                return
            stamp = from_ns(int(data["ts"])).astimezone(UTC)
            self.events.forward(Envelope(stamp, str(data["ns"]), topic, event))
        except (ValueError, KeyError, TypeError, AttributeError) as err:
            # AttributeError: JSON that is not an object (any client may NOTIFY)
            log.warning("ignoring a malformed event from another node: %s", err)

    # -- pins ------------------------------------------------------------------

    def pin(self, namespace: str) -> None:
        key = advisory_key("pin:" + namespace)
        if not self._session.execute("SELECT pg_try_advisory_lock(?)", (key,))[0][0]:
            rows = self._session.execute(
                "SELECT node, since FROM cluster_pins WHERE namespace = ?", (namespace,)
            )
            who = f" ({rows[0][0]}, since {rows[0][1].isoformat()})" if rows else ""
            raise FailedPrecondition(
                f"header-less namespace {namespace!r} is pinned by another live contentd node"
                f"{who}: give each node its own [grpc] headerless_namespace"
            )
        self._session.execute(
            "INSERT INTO cluster_pins (namespace, node, since) VALUES (?, ?, ?)"
            " ON CONFLICT (namespace) DO UPDATE SET node = excluded.node, since = excluded.since",
            (namespace, self.node, datetime.now(UTC)),
        )

    def close(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=5)
        with self._held_lock:
            held = list(self._held.values())
        for lock in held:
            lock.release()
        self._session.close()
        self._guards.close()
