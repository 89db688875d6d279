"""State shared by the parts of one metadata database.

The content store, lease manager, namespace store, garbage collector and
scheduler of one :class:`~contentd.metadata.MetadataDB` all work through one
:class:`Core`: the database (SQLite or PostgreSQL), the cluster hooks, the
backend, the clock, the content lock, the event exchange, the dirty
bookkeeping that drives GC, and the records threads looked up since the last
commit.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import datetime

from contentd.content.gotime import to_ns
from contentd.content.store import Store
from contentd.metadata.cluster import Cluster, SingleNode
from contentd.metadata.events import Exchange
from contentd.metadata.recordcache import RecordCache
from contentd.metadata.rwlock import RWLock
from contentd.metadata.sql import Conn, Database

__all__ = ["Clock", "Core"]

Clock = Callable[[], datetime]


class Core:
    def __init__(
        self,
        sql: Database,
        backend: Store,
        *,
        shared: bool,
        clock: Clock,
        events: Exchange,
        backend_grace: float,
        cluster: Cluster | None = None,
    ) -> None:
        self.sql = sql
        self.cluster: Cluster = cluster if cluster is not None else SingleNode(sql)
        self.backend = backend
        # blob records each thread looked up, until the next commit
        self.records = RecordCache(sql)
        self.shared = shared
        self.clock = clock
        self.events = events
        self.backend_grace = backend_grace
        # writer open/commit, update, delete and abort hold it shared; GC exclusive
        self.content_lock = RWLock()
        self._dirty_lock = threading.Lock()
        # deletions (content, leases, lease resources) since the last GC
        self._dirty = 0
        # the backend may hold blobs or ingests no record knows: clean it at the
        # next GC. True at open, so the first GC removes what a crash left behind.
        self.dirty_content = True
        self._callbacks: list[Callable[[bool], None]] = []
        # runs a GC and waits for it (set by MetadataDB: the scheduler's, or a direct GC)
        self.sync_gc: Callable[[], object] | None = None
        # digest -> reason of each quarantined blob (see contentd.metadata.health),
        # loaded at open; one get or set at a time, so readers need no lock
        self.quarantined: dict[str, str] = {}
        # held by a commit that repairs a quarantined digest, from clearing the bad
        # bytes until the quarantine is lifted: one repair commits, later ones exist
        self.repair_lock = threading.Lock()
        # commits of at most this many bytes put them in the record's transaction and
        # link the blob unsynced (0: never; see contentd.metadata.settle)
        self.inline_limit = 0
        # readers whose blob file is missing look for an unsettled row (SQLite only)
        self.serve_unsettled = False
        # tells the settler a commit added an unsettled row
        self.settle_notify: Callable[[], None] | None = None

    # -- time ------------------------------------------------------------

    def now(self) -> datetime:
        return self.clock()

    def now_ns(self) -> int:
        return to_ns(self.clock())

    # -- transactions ----------------------------------------------------

    def publish(self, namespace: str, topic: str, event: object) -> None:
        """An event for this node's subscribers and, through the cluster, every other node's."""
        self.cluster.publish(self.events.publish(namespace, topic, event))

    def view(self) -> AbstractContextManager[Conn]:
        return self.sql.read()

    @contextmanager
    def update(self, *, durable: bool = True) -> Iterator[Conn]:
        """A write transaction that counts as a mutation for the GC scheduler."""
        with self.sql.write(durable=durable) as conn:
            yield conn
        dirty = self.dirty > 0
        for callback in list(self._callbacks):
            callback(dirty)

    def register_mutation_callback(self, fn: Callable[[bool], None]) -> None:
        self._callbacks.append(fn)

    def unregister_mutation_callback(self, fn: Callable[[bool], None]) -> None:
        if fn in self._callbacks:
            self._callbacks.remove(fn)

    # -- dirty bookkeeping -------------------------------------------------

    @property
    def dirty(self) -> int:
        with self._dirty_lock:
            return self._dirty

    def mark_dirty(self, *, content: bool = False) -> None:
        with self._dirty_lock:
            self._dirty += 1
            if content:
                self.dirty_content = True

    def reset_dirty(self) -> None:
        with self._dirty_lock:
            self._dirty = 0

    # -- shared helpers --------------------------------------------------

    def ensure_namespace(self, conn: Conn, namespace: str) -> None:
        """Create the namespace row on first use, as bolt creates its bucket."""
        conn.execute(
            "INSERT INTO namespaces (name, created_at) VALUES (?, ?) ON CONFLICT DO NOTHING",
            (namespace, self.now_ns()),
        )
