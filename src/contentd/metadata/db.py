"""SQLite plumbing: connections, pragmas, transactions and schema migrations.

:class:`SQLiteDB` is the SQLite :class:`~contentd.metadata.sql.Database`;
:func:`migrate` applies the migrations on either engine.

- **Connections.** A small pool: a thread takes a connection for the length
  of its outermost transaction and gives it back after (a sqlite3 connection
  must not be used by two threads at once). At most :data:`MAX_IDLE` idle ones
  are kept; the rest are closed, so a burst of a hundred worker threads leaves
  no hundred connections (three file descriptors each: the database, its WAL
  and its shared-memory index) open behind it.
- **Transactions.** One explicit transaction per containerd bolt
  transaction. :meth:`SQLiteDB.write` serialises writers of this process on a
  mutex and then runs ``BEGIN IMMEDIATE``, so the write lock is taken up front
  (no deadlocking lock upgrade) and other processes wait on ``busy_timeout``.
  :meth:`SQLiteDB.read` runs a deferred transaction: a consistent snapshot
  that never blocks writers (WAL). Nesting on one thread joins the outer
  transaction; a write inside a read is a programming error.
- **Durability.** ``journal_mode=WAL`` with ``synchronous=FULL``. In WAL mode
  NORMAL syncs the log only at checkpoints, so a power loss may roll back
  transactions that had already returned. That is unsafe here in two ways:
  a commit acknowledged to the client could lose its record (the client then
  sees NotFound for a blob it was told exists), and a GC sweep could be lost
  after GC already deleted the swept blobs from the backend, resurrecting
  records whose bytes are gone - a record without its blob, the one state
  this layer must never reach. FULL fsyncs the WAL at every commit, so once a
  transaction returns it survives power loss; the cost is one fsync per
  write transaction, the same price bolt pays. The one exception is opt-in
  (``write(durable=False)``, used for opening an ingest, whose data is not
  synced either): NORMAL for that transaction, made durable by the next FULL
  commit (one WAL file, synced whole) or by :meth:`SQLiteDB.sync`.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from contentd.content.errors import FailedPrecondition
from contentd.metadata.migrations import MIGRATIONS, Migration
from contentd.metadata.sql import Conn

__all__ = ["MAX_IDLE", "SQLiteDB", "migrate", "schema_version"]

#: idle connections kept open for the next transaction
MAX_IDLE = 4

_BUSY_TIMEOUT = 60.0


class _ThreadState(threading.local):
    conn: sqlite3.Connection | None = None
    #: the cursor generation() reads ``PRAGMA data_version`` with, on ``conn``
    version_cursor: sqlite3.Cursor | None = None
    depth: int = 0
    writing: bool = False
    durable: bool = True


class SQLiteDB:
    """A SQLite database file shared by the threads of this process."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        migrations: Sequence[Migration] = MIGRATIONS,
        busy_timeout: float = _BUSY_TIMEOUT,
    ) -> None:
        self.path = os.fspath(path)
        self._busy_timeout = busy_timeout
        self._state = _ThreadState()
        self._idle: list[sqlite3.Connection] = []
        self._open = 0  # connections open, idle or in a transaction
        self._conns_lock = threading.Lock()
        self._write_mutex = threading.Lock()
        self._closed = False
        # write transactions of this process that have ended (see generation())
        self._writes = 0
        # non-durable commits so far, and how many of them are known synced
        self._lazy_commits = 0
        self._synced_upto = 0
        self._sync_lock = threading.Lock()
        parent = os.path.dirname(os.path.abspath(self.path))
        os.makedirs(parent, exist_ok=True)
        conn = self._conn()
        conn.execute("PRAGMA journal_mode=WAL")
        with self.write() as tx:
            migrate(tx, migrations)

    # -- connections -----------------------------------------------------

    def _conn(self) -> sqlite3.Connection:
        """This thread's connection: the one its transaction holds, else one from the pool."""
        if self._closed:
            raise FailedPrecondition("metadata database is closed")
        conn = self._state.conn
        if conn is not None:
            return conn
        with self._conns_lock:
            conn = self._idle.pop() if self._idle else None
            if conn is None:
                self._open += 1
        if conn is None:
            try:
                conn = sqlite3.connect(
                    self.path,
                    timeout=self._busy_timeout,
                    isolation_level=None,  # we issue BEGIN/COMMIT ourselves
                    check_same_thread=False,  # handed from thread to thread, one at a time
                )
                conn.execute("PRAGMA foreign_keys=ON")
                conn.execute("PRAGMA synchronous=FULL")
            except BaseException:
                with self._conns_lock:
                    self._open -= 1
                raise
        self._state.conn = conn
        return conn

    def _release(self) -> None:
        """The outermost transaction ended: give the connection back (or close it)."""
        conn, self._state.conn = self._state.conn, None
        if conn is None:
            return
        with self._conns_lock:
            keep = not self._closed and len(self._idle) < MAX_IDLE
            if keep:
                self._idle.append(conn)
            else:
                self._open -= 1
        if not keep:
            conn.close()

    @property
    def open_connections(self) -> int:
        """Connections open now (idle ones included)."""
        with self._conns_lock:
            return self._open

    def close(self) -> None:
        with self._conns_lock:
            self._closed = True
            idle, self._idle = self._idle, []
            self._open -= len(idle)
        for conn in idle:
            conn.close()
        self._release()

    @property
    def closed(self) -> bool:
        return self._closed

    # -- transactions ----------------------------------------------------

    def query(self, sql: str, parameters: Sequence[Any] = (), /) -> list[Any]:
        """The rows of one read-only statement (in a read transaction of its own, or in
        this thread's)."""
        with self.read() as conn:
            return conn.execute(sql, parameters).fetchall()

    @contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        """A read transaction (or the enclosing transaction of this thread)."""
        state = self._state
        conn = self._conn()
        if state.depth:
            state.depth += 1
            try:
                yield conn
            finally:
                state.depth -= 1
            return
        try:
            conn.execute("BEGIN")
            state.depth = 1
            try:
                yield conn
            finally:
                state.depth = 0
                # a read transaction has nothing to keep; ending it never fails
                conn.execute("ROLLBACK")
        finally:
            self._release()

    @contextmanager
    def write(self, *, durable: bool = True) -> Iterator[sqlite3.Connection]:
        """A write transaction: committed on success, rolled back on error.

        ``durable=False`` commits without syncing the WAL (``synchronous=NORMAL``
        for this transaction only): the transaction survives a crash of this
        process but not a power loss, until the next durable commit or
        :meth:`sync`. Nested transactions join the outer one, so a durable
        one cannot nest inside a non-durable one.
        """
        state = self._state
        conn = self._conn()
        if state.depth:
            if not state.writing:
                raise RuntimeError("write transaction inside a read transaction")
            if durable and not state.durable:
                raise RuntimeError("durable write transaction inside a non-durable one")
            state.depth += 1
            try:
                yield conn
            finally:
                state.depth -= 1
            return
        try:
            with self._write_transaction(conn, durable) as tx:
                yield tx
        finally:
            self._release()

    @contextmanager
    def _write_transaction(
        self, conn: sqlite3.Connection, durable: bool
    ) -> Iterator[sqlite3.Connection]:
        state = self._state
        with self._write_mutex:
            if not durable:
                conn.execute("PRAGMA synchronous=NORMAL")
            try:
                changes = conn.total_changes
                conn.execute("BEGIN IMMEDIATE")
                state.depth = 1
                state.writing = True
                state.durable = durable
                try:
                    yield conn
                except BaseException:
                    state.depth = 0
                    state.writing = False
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise
                state.depth = 0
                state.writing = False
                try:
                    conn.execute("COMMIT")
                except BaseException:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise
                if not durable:
                    self._lazy_commits += 1
                elif conn.total_changes != changes:
                    # it wrote WAL frames and synced the file: every earlier
                    # frame is durable with it (a commit that changed nothing
                    # may have synced nothing)
                    self._mark_synced(self._lazy_commits)
            finally:
                self._writes += 1  # after the COMMIT (or ROLLBACK): see generation()
                if not durable:
                    conn.execute("PRAGMA synchronous=FULL")

    def generation(self) -> tuple[int, int] | None:
        """A value that changes whenever a transaction is committed, as seen by this thread.

        Two equal values read on one thread mean no transaction of any connection,
        process or thread was committed in between: ``PRAGMA data_version`` of this
        thread's connection changes with every other connection's commit, and this
        process counts its own write transactions once they have ended. None inside
        a transaction of this thread (whose own changes are not committed yet): what
        it reads must not be remembered.
        """
        state = self._state
        if state.depth:
            return None
        conn = self._conn()
        # one cursor per connection, kept: a new one per call was a third of the cost, and
        # containerd's proxy makes this check per 32 KiB it reads (the statement is reset
        # once its one row is fetched: no read transaction stays open)
        cursor = state.version_cursor
        if cursor is None or cursor.connection is not conn:
            cursor = state.version_cursor = conn.cursor()
        row = cursor.execute("PRAGMA data_version").fetchone()
        return self._writes, int(row[0])

    def generation_is_local(self) -> bool:
        """Always: :meth:`generation` reads a pragma of a local file."""
        return True

    def sync(self) -> None:
        """Make every transaction committed so far durable, non-durable ones included.

        Only needed after ``write(durable=False)``; a no-op when a durable
        commit has covered them already. fsyncs the WAL file: the frames of
        every commit are in it (or, after a checkpoint, in the database file,
        which SQLite syncs at every checkpoint; the WAL may then be gone).
        """
        wanted = self._lazy_commits
        if self._synced_upto >= wanted:
            return
        try:
            fd = os.open(self.path + "-wal", os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            pass
        else:
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        self._mark_synced(wanted)

    def _mark_synced(self, upto: int) -> None:
        with self._sync_lock:
            self._synced_upto = max(self._synced_upto, upto)


def schema_version(conn: sqlite3.Connection) -> int:
    """The version of the last migration applied (0 for an empty database)."""
    row = conn.execute(
        "SELECT name FROM sqlite_master WHERE type='table' AND name='schema_version'"
    ).fetchone()
    if row is None:
        return 0
    row = conn.execute("SELECT version FROM schema_version WHERE id = 0").fetchone()
    return int(row[0]) if row else 0


def migrate(
    conn: Conn,
    migrations: Sequence[Migration] = MIGRATIONS,
    translate: Callable[[str], str] = str,
) -> int:
    """Apply, in order, every migration newer than the database; returns the new version.

    Must run inside a write transaction. A database newer than the newest
    migration known here is refused with FailedPrecondition rather than
    touched. ``translate`` turns each statement into the engine's dialect.
    """
    versions = [m.version for m in migrations]
    if versions != sorted(set(versions)) or (versions and versions[0] < 1):
        raise ValueError(f"migrations must have increasing positive versions: {versions}")
    conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_version ("
        " id INTEGER PRIMARY KEY CHECK (id = 0), version INTEGER NOT NULL)"
    )
    row = conn.execute("SELECT version FROM schema_version WHERE id = 0").fetchone()
    current = int(row[0]) if row else 0
    latest = versions[-1] if versions else 0
    if current > latest:
        raise FailedPrecondition(
            f"metadata database schema version {current} is newer than supported ({latest})"
        )
    for migration in migrations:
        if migration.version > current:
            for statement in migration.statements():
                conn.execute(translate(statement))
            current = migration.version
    conn.execute(
        "INSERT INTO schema_version (id, version) VALUES (0, ?)"
        " ON CONFLICT (id) DO UPDATE SET version = excluded.version",
        (current,),
    )
    return current
