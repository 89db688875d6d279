"""The ingest record written at open is not synced; commit and close sync it.

SQLite runs ``synchronous=FULL`` for every transaction but the one that opens
an ingest: that one commits with NORMAL (no WAL fsync), and becomes durable
with the next FULL commit (the WAL is one file, synced whole) or with
:meth:`SQLiteDB.sync`, which a writer's close calls.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from contentd.content.digest import digest_of
from contentd.metadata import MetadataDB
from contentd.metadata.db import SQLiteDB
from tests.metadata.conftest import MakeDB, put

pytestmark = pytest.mark.sqlite_only  # the SQLite engine itself


@pytest.fixture
def wal_syncs(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Paths of the files our own code fsyncs (SQLite's own syncs are not seen)."""
    synced: list[str] = []
    real = os.fsync

    def fsync(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    yield synced


def _statements(db: SQLiteDB) -> list[str]:
    seen: list[str] = []
    db._conn().set_trace_callback(seen.append)
    return seen


def test_non_durable_write_is_normal_for_that_transaction_only(tmp_path: Path) -> None:
    db = SQLiteDB(tmp_path / "m.db")
    try:
        with db.write(durable=False) as conn:
            assert conn.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
            conn.execute("INSERT INTO namespaces (name, created_at) VALUES ('a', 0)")
        with db.read() as conn:
            assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL again
            assert conn.execute("SELECT name FROM namespaces").fetchall() == [("a",)]
        with (
            pytest.raises(RuntimeError, match="non-durable"),
            db.write(durable=False),
            db.write(),
        ):
            pass
        with db.read() as conn:
            assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2
    finally:
        db.close()


def test_sync_only_when_a_non_durable_commit_is_unsynced(
    tmp_path: Path, wal_syncs: list[str]
) -> None:
    db = SQLiteDB(tmp_path / "m.db")
    wal = str(tmp_path / "m.db-wal")
    try:
        db.sync()
        assert wal_syncs == []  # nothing to do
        with db.write(durable=False) as conn:
            conn.execute("INSERT INTO namespaces (name, created_at) VALUES ('a', 0)")
        db.sync()
        assert wal_syncs == [wal]
        db.sync()
        assert wal_syncs == [wal]  # once is enough
        with db.write(durable=False) as conn:
            conn.execute("INSERT INTO namespaces (name, created_at) VALUES ('b', 0)")
        with db.write() as conn:  # changes nothing: may sync nothing either
            conn.execute("DELETE FROM namespaces WHERE name = 'nope'")
        db.sync()
        assert wal_syncs == [wal, wal]
        with db.write(durable=False) as conn:
            conn.execute("INSERT INTO namespaces (name, created_at) VALUES ('c', 0)")
        with db.write() as conn:  # a FULL commit that wrote: the WAL is synced whole
            conn.execute("INSERT INTO namespaces (name, created_at) VALUES ('d', 0)")
        db.sync()
        assert wal_syncs == [wal, wal]
    finally:
        db.close()


def test_open_is_not_synced_and_commit_needs_no_extra_sync(
    db: MetadataDB, wal_syncs: list[str]
) -> None:
    cs = db.content_store("default")
    seen = _statements(db._sql)
    w = cs.writer("r")
    assert "PRAGMA synchronous=NORMAL" in seen
    w.write(b"abc")
    seen.clear()
    w.commit(3, digest_of(b"abc"))
    assert "PRAGMA synchronous=NORMAL" not in seen  # the commit is FULL
    w.close()
    assert not [p for p in wal_syncs if p.endswith("-wal")]


def test_close_syncs_the_record(db: MetadataDB, wal_syncs: list[str]) -> None:
    cs = db.content_store("default")
    w = cs.writer("r")
    w.write(b"abc")
    w.close()
    assert wal_syncs[-1] == db.path + "-wal"
    assert wal_syncs.index(db.path + "-wal") > 0  # the data and the ingest first
    assert cs.status("r").offset == 3


def test_closing_a_shared_writer_syncs_the_record(make_db: MakeDB, wal_syncs: list[str]) -> None:
    db = make_db()
    put(db.content_store("a"), b"shared bytes")
    cs = db.content_store("b")
    w = cs.writer("r", expected=digest_of(b"shared bytes"))
    wal_syncs.clear()
    w.close()
    assert wal_syncs == [db.path + "-wal"]
