"""Where an S3 ingest's state lives between calls, processes and nodes.

An S3 ingest is a multipart upload plus what the uploader must remember to go
on with it: the upload id, every uploaded part's number, ETag and size, the
offset those parts reach and the sha256 state at that offset (serialised by
``rehashes``: hashlib's state cannot be). The bytes after the last part wait
in a node-local spool file; the record names the node that holds them and how
many bytes it had when the ingest was last closed.

:class:`IngestStates` is the small interface the store takes, so the record
can live wherever the metadata does. :class:`SqlIngestStates` keeps it in a
table of any :class:`contentd.metadata.sql.Database` (the metadata layer's
SQL, SQLite or PostgreSQL: with PostgreSQL an ingest opened on one node resumes
on another); :class:`SqliteIngestStates` is the same over an SQLite file of
its own next to the spool (one node, any number of processes). Exclusive use
of a ref across nodes is not this interface's job: the metadata layer above
holds the ref lock.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, Self

if TYPE_CHECKING:
    from contentd.metadata.sql import Database

__all__ = ["IngestState", "IngestStates", "Part", "SqlIngestStates", "SqliteIngestStates"]


@dataclass(frozen=True, slots=True)
class Part:
    """One uploaded part of a multipart upload."""

    number: int
    etag: str
    size: int


@dataclass(frozen=True, slots=True)
class IngestState:
    """Everything needed to go on with an ingest, on any node.

    ``key`` is the object the upload completes to (the blob's key when the
    digest was known at open, else a staging key); ``upload_id`` is empty
    until the first part is uploaded. ``hash_state`` is the sha256 state after
    ``uploaded`` bytes (``b""`` for none). ``tail_node``/``tail_size``: the
    node whose spool held the bytes after ``uploaded`` at the last close.
    """

    ref: str
    ingest_id: str
    key: str
    part_size: int
    total: int = 0
    expected: str = ""
    upload_id: str = ""
    parts: tuple[Part, ...] = ()
    hash_state: bytes = b""
    tail_node: str = ""
    tail_size: int = 0
    started_ns: int = 0
    updated_ns: int = 0

    @property
    def uploaded(self) -> int:
        """Bytes in uploaded parts."""
        return sum(p.size for p in self.parts)


class IngestStates(Protocol):
    """Persistent ingest records, keyed by the backend ref."""

    def get(self, ref: str) -> IngestState | None: ...

    def put(self, state: IngestState) -> None:
        """Create or replace the record of ``state.ref`` (durable on return)."""
        ...

    def delete(self, ref: str, ingest_id: str | None = None) -> bool:
        """Remove the record (only if it is still ``ingest_id``, when given)."""
        ...

    def all(self) -> Iterator[IngestState]: ...

    def close(self) -> None: ...


# types both engines take as they are (PostgreSQL has no BLOB: the hash state is hex)
_SCHEMA = """
CREATE TABLE IF NOT EXISTS s3_ingests (
    ref TEXT PRIMARY KEY,
    ingest_id TEXT NOT NULL,
    key TEXT NOT NULL,
    part_size BIGINT NOT NULL,
    total BIGINT NOT NULL,
    expected TEXT NOT NULL,
    upload_id TEXT NOT NULL,
    parts TEXT NOT NULL,
    hash_state TEXT NOT NULL,
    tail_node TEXT NOT NULL,
    tail_size BIGINT NOT NULL,
    started_ns BIGINT NOT NULL,
    updated_ns BIGINT NOT NULL
)
"""

_COLUMNS = (
    "ref, ingest_id, key, part_size, total, expected, upload_id, parts, hash_state,"
    " tail_node, tail_size, started_ns, updated_ns"
)
_UPDATES = ", ".join(f"{c} = excluded.{c}" for c in _COLUMNS.replace(" ", "").split(",")[1:])


class SqlIngestStates:
    """:class:`IngestStates` in the table ``s3_ingests`` of ``db``.

    ``db`` is not closed by :meth:`close` (it belongs to whoever made it).
    """

    def __init__(self, db: Database) -> None:
        self._db = db
        with db.write() as conn:
            conn.execute(_SCHEMA)

    def get(self, ref: str) -> IngestState | None:
        with self._db.read() as conn:
            row = conn.execute(
                f"SELECT {_COLUMNS} FROM s3_ingests WHERE ref = ?", (ref,)
            ).fetchone()
        return _from_row(row) if row is not None else None

    def put(self, state: IngestState) -> None:
        parts = json.dumps([[p.number, p.etag, p.size] for p in state.parts])
        with self._db.write() as conn:
            conn.execute(
                f"INSERT INTO s3_ingests ({_COLUMNS})"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                f" ON CONFLICT (ref) DO UPDATE SET {_UPDATES}",
                (
                    state.ref,
                    state.ingest_id,
                    state.key,
                    state.part_size,
                    state.total,
                    state.expected,
                    state.upload_id,
                    parts,
                    state.hash_state.hex(),
                    state.tail_node,
                    state.tail_size,
                    state.started_ns,
                    state.updated_ns,
                ),
            )

    def delete(self, ref: str, ingest_id: str | None = None) -> bool:
        with self._db.write() as conn:
            if ingest_id is None:
                cur = conn.execute("DELETE FROM s3_ingests WHERE ref = ?", (ref,))
            else:
                cur = conn.execute(
                    "DELETE FROM s3_ingests WHERE ref = ? AND ingest_id = ?",
                    (ref, ingest_id),
                )
            return cur.rowcount > 0

    def all(self) -> Iterator[IngestState]:
        with self._db.read() as conn:
            rows = conn.execute(f"SELECT {_COLUMNS} FROM s3_ingests ORDER BY ref").fetchall()
        for row in rows:
            yield _from_row(row)

    def close(self) -> None:
        pass

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _SqliteFile:
    """The little of :class:`~contentd.metadata.sql.Database` SqlIngestStates uses, over
    one SQLite file (WAL; autocommit statements, one thread at a time)."""

    def __init__(self, path: str) -> None:
        self._mutex = threading.Lock()
        self._conn = sqlite3.connect(
            path, timeout=30, isolation_level=None, check_same_thread=False
        )
        self._conn.execute("PRAGMA journal_mode=WAL")
        # a process crash keeps every record; a power loss may lose the newest part
        # records, and re-uploading those parts under the same numbers is harmless
        self._conn.execute("PRAGMA synchronous=NORMAL")

    @contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        with self._mutex:
            yield self._conn

    def write(self, *, durable: bool = True) -> Any:
        return self.read()

    def close(self) -> None:
        with self._mutex:
            self._conn.close()


class SqliteIngestStates(SqlIngestStates):
    """:class:`SqlIngestStates` in an SQLite file of its own (safe for several processes)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        self._file = _SqliteFile(self.path)
        super().__init__(self._file)  # type: ignore[arg-type]

    def close(self) -> None:
        self._file.close()


def _from_row(row: Any) -> IngestState:
    (ref, ingest_id, key, part_size, total, expected, upload_id, parts, hash_state,
     tail_node, tail_size, started_ns, updated_ns) = row  # fmt: skip
    return IngestState(
        ref=str(ref),
        ingest_id=str(ingest_id),
        key=str(key),
        part_size=int(part_size),
        total=int(total),
        expected=str(expected),
        upload_id=str(upload_id),
        parts=tuple(Part(int(n), str(e), int(s)) for n, e, s in json.loads(str(parts))),
        hash_state=bytes.fromhex(str(hash_state)),
        tail_node=str(tail_node),
        tail_size=int(tail_size),
        started_ns=int(started_ns),
        updated_ns=int(updated_ns),
    )
