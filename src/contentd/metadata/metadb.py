"""MetadataDB: containerd's metadata layer for content, on SQLite or PostgreSQL."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Final, Literal, Self

from contentd.content.errors import InvalidArgument
from contentd.content.store import Store
from contentd.content.types import utcnow
from contentd.metadata import fsck, health
from contentd.metadata.cluster import Cluster
from contentd.metadata.content import ContentStore
from contentd.metadata.core import Clock, Core
from contentd.metadata.db import SQLiteDB
from contentd.metadata.events import Exchange
from contentd.metadata.fsck import Options as FsckOptions
from contentd.metadata.fsck import Report as FsckReport
from contentd.metadata.gc import GCResult, collect
from contentd.metadata.images import ImageStore
from contentd.metadata.leases import LeaseManager
from contentd.metadata.namespaces import NamespaceStore
from contentd.metadata.scheduler import Scheduler, SchedulerConfig
from contentd.metadata.scrub import Scrubber, ScrubConfig
from contentd.metadata.settle import INLINE_LIMIT, Settler, SettlingBackend
from contentd.metadata.sql import Database

__all__ = ["POLICIES", "MetadataDB"]

log = logging.getLogger(__name__)

POLICIES: Final = ("shared", "isolated")
Policy = Literal["shared", "isolated"]


class MetadataDB:
    """Namespaces, leases and per-namespace content records over a backend store.

    ``content_sharing_policy`` is containerd's: ``shared`` lets a namespace
    claim bytes the backend already holds by naming their digest;
    ``isolated`` makes it write them again (unless a namespace labelled
    ``containerd.io/namespace.shareable=true`` records them). ``clock``
    (UTC-aware datetimes) stamps records and decides expiry; tests inject
    one. ``backend_grace`` keeps backend blobs younger than that many seconds
    from GC (see :mod:`contentd.metadata.gc` for why 0 is safe on one node).

    With ``dsn`` the records live in that PostgreSQL database instead of the
    SQLite file ``path`` (which is then ignored), and every node given the
    same ``dsn`` and the same backend is one store
    (:mod:`contentd.metadata.postgres`): ``node`` names this one in locks and
    errors, ``ref_lock_lease`` is how long a dead node's ingest stays locked,
    ``pool_size`` bounds this node's connections.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | None,
        backend: Store,
        *,
        content_sharing_policy: str = "shared",
        clock: Clock | None = None,
        backend_grace: float = 0.0,
        dsn: str | None = None,
        node: str | None = None,
        ref_lock_lease: float | None = None,
        pool_size: int = 16,
    ) -> None:
        if content_sharing_policy not in POLICIES:
            raise InvalidArgument("unknown policy")
        self.backend = backend
        self.policy = content_sharing_policy
        self.events = Exchange()
        cluster: Cluster | None = None
        sql: Database
        if dsn:
            from contentd.metadata.postgres import (
                DEFAULT_REF_LOCK_LEASE,
                PostgresCluster,
                PostgresDB,
            )

            pg = PostgresDB(dsn, pool_size=pool_size)
            try:
                cluster = PostgresCluster(
                    pg,
                    self.events,
                    node=node,
                    ref_lock_lease=ref_lock_lease or DEFAULT_REF_LOCK_LEASE,
                )
            except BaseException:
                pg.close()
                raise
            self.path = pg.redacted
            sql = pg
        elif path is None:
            raise InvalidArgument("a metadata database needs a path or a dsn")
        else:
            self.path = os.fspath(path)
            sql = SQLiteDB(self.path)
        self._sql = sql
        if cluster is not None:
            # a backend keeping ingest records of its own (S3: multipart upload state)
            # keeps them in this database, where every node sees them
            keep = getattr(backend, "keep_ingest_records_in", None)
            if callable(keep):
                keep(sql)
        self._core = Core(
            self._sql,
            backend,
            shared=content_sharing_policy == "shared",
            clock=clock or utcnow,
            events=self.events,
            backend_grace=backend_grace,
            cluster=cluster,
        )
        self._core.sync_gc = self._sync_gc
        with self._sql.read() as conn:
            self._core.quarantined = health.load_quarantined(conn)
        self.namespaces = NamespaceStore(self._core)
        self._scheduler: Scheduler | None = None
        self._lock = threading.Lock()
        self._settler: Settler | None = None
        self._core.serve_unsettled = cluster is None
        if cluster is None and isinstance(backend, SettlingBackend) and not _readonly(backend):
            # small commits sync once (contentd.metadata.settle); what a crash left
            # unsettled is made durable before anything is served
            settler = Settler(self._core, backend)
            try:
                settler.settle_all()
            except BaseException:
                self._sql.close()
                raise
            self._core.inline_limit = INLINE_LIMIT
            self._core.settle_notify = settler.notify
            settler.start()
            self._settler = settler

    def __repr__(self) -> str:
        return f"MetadataDB({self.path!r}, policy={self.policy!r})"

    def content_store(
        self, namespace: str | None, lease: str | None = None, *, link_shared: bool = False
    ) -> ContentStore:
        """The content of ``namespace``, with ``lease`` (if any) applied to its calls;
        ``link_shared``: see :class:`~contentd.metadata.content.ContentStore`."""
        return ContentStore(self._core, namespace, lease, link_shared=link_shared)

    def lookups_are_local(self) -> bool:
        """Whether a record this process looked up before is answered now without asking
        a database server (always on SQLite; on PostgreSQL while a record lease holds)."""
        return self._core.sql.generation_is_local()

    @property
    def cluster(self) -> Cluster:
        """The coordination with other nodes (a no-op on SQLite)."""
        return self._core.cluster

    def pin_namespace(self, namespace: str) -> None:
        """Claim ``namespace`` for this node's header-less callers: FailedPrecondition
        while another live node of a shared database has claimed it."""
        self._core.cluster.pin(namespace)

    def leases(self, namespace: str | None) -> LeaseManager:
        return LeaseManager(self._core, namespace)

    def images(self, namespace: str | None) -> ImageStore:
        """The image records of ``namespace``; an image's target is a GC root."""
        return ImageStore(self._core, namespace)

    def garbage_collect(self, *, dry_run: bool = False) -> GCResult:
        """Collect now, on this thread; ``dry_run`` reports and touches nothing."""
        return collect(self._core, dry_run=dry_run)

    def fsck(self, options: FsckOptions | None = None) -> FsckReport:
        """Check (and with ``options.repair``, repair) this store; see :mod:`~.fsck`."""
        return fsck.run(self._core, options or FsckOptions())

    def quarantine(self, digest: str, reason: str) -> str | None:
        """Quarantine ``digest`` (reads fail with DataLoss until an ingest repairs it);
        where the backend moved its bytes. See :mod:`contentd.metadata.health`."""
        return health.quarantine(self._core, digest, reason)

    def quarantined(self) -> list[health.Quarantined]:
        return health.quarantined(self._core)

    def scrubber(self, config: ScrubConfig | None = None) -> Scrubber:
        """An online scrubber for this database (not started); see :mod:`~.scrub`."""
        return Scrubber(self._core, config)

    def gc_scheduler(
        self, config: SchedulerConfig | Mapping[str, object] | None = None
    ) -> Scheduler:
        """A scheduler for this database (not started). Lease deletes with ``sync``
        wait on the running one, or collect directly when none runs."""
        if config is None:
            config = SchedulerConfig()
        elif not isinstance(config, SchedulerConfig):
            config = SchedulerConfig.from_mapping(config)
        scheduler = Scheduler(
            self.garbage_collect,
            config,
            register=self._core.register_mutation_callback,
            unregister=self._core.unregister_mutation_callback,
        )
        with self._lock:
            self._scheduler = scheduler
        return scheduler

    def collect_and_wait(self) -> GCResult | None:
        """A collection through the running scheduler (or directly when none runs),
        returned from once it is done: what deletes with ``sync`` wait for."""
        return self._sync_gc()

    def register_mutation_callback(self, fn: Callable[[bool], None]) -> None:
        """Call ``fn(dirty)`` after every successful metadata write transaction."""
        self._core.register_mutation_callback(fn)

    @property
    def dirty(self) -> bool:
        """The backend will be cleaned at the next collection."""
        return self._core.dirty_content

    def close(self) -> None:
        with self._lock:
            scheduler, self._scheduler = self._scheduler, None
        if scheduler is not None:
            scheduler.stop()
        settler, self._settler = self._settler, None
        if settler is not None:
            settler.stop()
            self._core.inline_limit = 0
            try:
                settler.settle_all()
            except Exception as err:  # the next open settles them
                log.warning("cannot settle unsynced blobs at close: %s", err)
        self._core.cluster.close()
        self._sql.close()

    def settle(self) -> int:
        """Make every blob committed unsynced so far durable now (the settler does it
        within a second anyway); how many there were."""
        settler = self._settler
        return settler.settle_all() if settler is not None else 0

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _sync_gc(self) -> GCResult | None:
        with self._lock:
            scheduler = self._scheduler
        if scheduler is not None and scheduler.running:
            return scheduler.trigger(wait=True)
        return self.garbage_collect()


def _readonly(backend: Store) -> bool:
    return bool(getattr(backend, "readonly", False))
