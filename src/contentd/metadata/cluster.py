"""What changes when several processes (nodes) share one metadata database.

A :class:`Cluster` is the part of the metadata layer that coordinates with
other nodes. On SQLite there are none (one daemon per root, enforced by its
root lock), and :class:`SingleNode` does nothing beyond the in-process
content lock. PostgreSQL's (:class:`contentd.metadata.postgres.PostgresCluster`)
implements each hook cluster-wide:

- ``lock_ref``: an ingest's ref is held by one writer in the whole cluster, for
  a lease renewed while the writer's node lives, with a fencing token checked
  in the commit's transaction, so a stale writer never completes;
- ``guard_digest`` / ``sweep_digest``: writers hold a digest *shared* from the
  moment they rely on its bytes until their record is written; the collector
  re-checks each candidate blob holding it *exclusively* before deleting it;
- ``collector``: one collection at a time across the cluster;
- ``publish``: content events reach every node's subscribers;
- ``pin``: a header-less namespace is pinned by one live node at a time.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Protocol

from contentd.metadata.events import Envelope
from contentd.metadata.sql import Conn, Database

__all__ = ["Cluster", "RefLock", "SingleNode"]


class RefLock(Protocol):
    """A writer's hold on an ingest ref."""

    def renew(self) -> None:
        """FailedPrecondition if another writer took the ref over; else hold it for a
        whole lease from now."""

    def check(self, conn: Conn) -> None:
        """In the commit's write transaction: FailedPrecondition if another writer took
        the ref over; else the lock ends with that transaction's commit."""

    def release(self) -> None:
        """Give the ref up (idempotent)."""


class Cluster(Protocol):
    #: other nodes write into the same backend: GC cleans the backend at every
    #: collection and spares objects younger than its grace period
    shared_backend: bool

    def lock_ref(self, namespace: str, ref: str, backend_ref: str) -> RefLock | None: ...

    def ref_in_use(self, conn: Conn, backend_ref: str) -> bool: ...

    def guard_digest(self, digest: str) -> AbstractContextManager[None]: ...

    def sweep_digest(self, digest: str) -> AbstractContextManager[Conn]: ...

    def collector(self) -> AbstractContextManager[bool]: ...

    def publish(self, envelope: Envelope) -> None: ...

    def pin(self, namespace: str) -> None: ...

    def close(self) -> None: ...


class SingleNode:
    """The cluster of one process: the content lock already orders everything."""

    shared_backend = False

    def __init__(self, sql: Database) -> None:
        self._sql = sql

    def lock_ref(self, namespace: str, ref: str, backend_ref: str) -> RefLock | None:
        return None  # the backend's own ref lock covers this process

    def ref_in_use(self, conn: Conn, backend_ref: str) -> bool:
        return False

    def guard_digest(self, digest: str) -> AbstractContextManager[None]:
        return nullcontext()

    def sweep_digest(self, digest: str) -> AbstractContextManager[Conn]:
        return self._sql.read()

    @contextmanager
    def collector(self) -> Iterator[bool]:
        yield True

    def publish(self, envelope: Envelope) -> None:
        pass

    def pin(self, namespace: str) -> None:
        pass

    def close(self) -> None:
        pass
