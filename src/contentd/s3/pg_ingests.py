"""S3 ingest state in the cluster's PostgreSQL database (the metadata's).

The :class:`~contentd.s3.ingests.IngestStates` of a cluster: every node reads
and writes the same ``s3_ingests`` table, so an ingest one node opened (its
upload id, parts and sha256 state) can be continued and committed by another.
Each call is one autocommit statement on this store's own connection (made
again if it breaks; the call then gets ``Unavailable``). Exclusive use of a ref
is the metadata layer's cluster ref lock.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Sequence
from typing import Any, Self

import psycopg

from contentd.content.errors import Unavailable
from contentd.s3.ingests import _COLUMNS, IngestState, _from_row

__all__ = ["PostgresIngestStates"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS s3_ingests (
    ref TEXT COLLATE "C" PRIMARY KEY,
    ingest_id TEXT NOT NULL,
    key TEXT NOT NULL,
    part_size BIGINT NOT NULL,
    total BIGINT NOT NULL,
    expected TEXT NOT NULL,
    upload_id TEXT NOT NULL,
    parts TEXT NOT NULL,
    hash_state BYTEA NOT NULL,
    tail_node TEXT NOT NULL,
    tail_size BIGINT NOT NULL,
    started_ns BIGINT NOT NULL,
    updated_ns BIGINT NOT NULL
)
"""


class PostgresIngestStates:
    def __init__(self, dsn: str) -> None:
        self._dsn = dsn
        self._mutex = threading.Lock()
        self._conn: psycopg.Connection[Any] | None = None
        self._run(_SCHEMA)

    def _run(self, sql: str, params: Sequence[object] = ()) -> psycopg.Cursor[Any]:
        from contentd.metadata.postgres import redact_dsn

        with self._mutex:
            try:
                if self._conn is None or self._conn.closed:
                    self._conn = psycopg.connect(self._dsn, autocommit=True, connect_timeout=10)
                return self._conn.execute(sql, params or None)
            except psycopg.OperationalError as err:
                if self._conn is not None:
                    self._conn.close()
                    self._conn = None
                raise Unavailable(
                    f"S3 ingest state ({redact_dsn(self._dsn)}): {str(err).strip()}"
                ) from None

    def get(self, ref: str) -> IngestState | None:
        row = self._run(f"SELECT {_COLUMNS} FROM s3_ingests WHERE ref = %s", (ref,)).fetchone()
        return _from_row(row) if row is not None else None

    def put(self, state: IngestState) -> None:
        parts = json.dumps([[p.number, p.etag, p.size] for p in state.parts])
        self._run(
            f"INSERT INTO s3_ingests ({_COLUMNS})"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (ref) DO UPDATE SET ingest_id = excluded.ingest_id,"
            " key = excluded.key, part_size = excluded.part_size, total = excluded.total,"
            " expected = excluded.expected, upload_id = excluded.upload_id,"
            " parts = excluded.parts, hash_state = excluded.hash_state,"
            " tail_node = excluded.tail_node, tail_size = excluded.tail_size,"
            " started_ns = excluded.started_ns, updated_ns = excluded.updated_ns",
            (
                state.ref,
                state.ingest_id,
                state.key,
                state.part_size,
                state.total,
                state.expected,
                state.upload_id,
                parts,
                state.hash_state,
                state.tail_node,
                state.tail_size,
                state.started_ns,
                state.updated_ns,
            ),
        )

    def delete(self, ref: str, ingest_id: str | None = None) -> bool:
        if ingest_id is None:
            cur = self._run("DELETE FROM s3_ingests WHERE ref = %s", (ref,))
        else:
            cur = self._run(
                "DELETE FROM s3_ingests WHERE ref = %s AND ingest_id = %s", (ref, ingest_id)
            )
        return cur.rowcount > 0

    def all(self) -> Iterator[IngestState]:
        rows = self._run(f"SELECT {_COLUMNS} FROM s3_ingests ORDER BY ref").fetchall()
        for row in rows:
            yield _from_row(row)

    def close(self) -> None:
        with self._mutex:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
