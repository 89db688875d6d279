"""Blob records remembered per thread while the database does not change.

containerd's proxy plugin reads a blob with one Read call per 32 KiB, and the
daemon answers each on the same thread (the connection's reader); each call used
to look the record up again in a read transaction. :class:`RecordCache` keeps
the :class:`~contentd.content.types.Info` of the records a thread looked up,
tagged with the database's ``generation()``: the first lookup after any commit
(by this process or another) finds the tag changed and starts over. On SQLite
a lookup then costs one ``PRAGMA data_version`` instead of a read of the record.
On PostgreSQL, written by several nodes, the generation counts the commits that
changed or removed blob records cluster-wide and is leased for a fraction of a
second (:meth:`~contentd.metadata.postgres.PostgresDB.generation`): a lookup
costs a round trip once per lease instead of once per call, and a commit that
changed a record returns only once no node can answer from its old copy.
Absent records are not remembered (a commit that adds one changes nothing here).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Final

from contentd.content.types import Info
from contentd.metadata.sql import Database

__all__ = ["LIMIT", "RecordCache"]

#: records remembered per thread at most (then it starts over)
LIMIT: Final = 256


class _Local(threading.local):
    generation: object | None = None
    records: dict[tuple[str, str], Info] | None = None


class RecordCache:
    def __init__(self, sql: Database, limit: int = LIMIT) -> None:
        self._sql = sql
        self._limit = limit
        self._local = _Local()

    def get(self, namespace: str, digest: str, load: Callable[[], Info | None]) -> Info | None:
        """The record of ``digest`` in ``namespace``: remembered, or ``load()`` (None: absent)."""
        generation = self._sql.generation()  # read before load(): a commit during it is seen
        if generation is None:
            return load()
        local = self._local
        records = local.records
        if records is None or local.generation != generation:
            records = local.records = {}
            local.generation = generation
        key = (namespace, digest)
        info = records.get(key)
        if info is None:
            info = load()
            if info is not None:
                if len(records) >= self._limit:
                    records.clear()
                records[key] = info
        return info
