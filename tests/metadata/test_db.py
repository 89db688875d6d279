"""The SQLite layer: schema, migrations, pragmas, threads, streaming walks,
and the record rules of Info/Update/Commit (spec §1.3, §4.1-§4.5)."""

from __future__ import annotations

import io
import os
import sqlite3
import threading
from pathlib import Path

import pytest

from contentd import (
    Descriptor,
    FailedPrecondition,
    Info,
    InvalidArgument,
    NotFound,
    read_blob,
    write_blob,
)
from contentd.content.digest import digest_of
from contentd.content.types import utcnow
from contentd.metadata import MetadataDB, content
from contentd.metadata.db import SQLiteDB, migrate, schema_version
from contentd.metadata.migrations import MIGRATIONS, Migration
from tests.metadata.conftest import MakeDB, new_backend, put

pytestmark = pytest.mark.sqlite_only  # the SQLite engine itself


def test_unknown_policy(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument, match="unknown policy"):
        MetadataDB(tmp_path / "m.db", new_backend(tmp_path / "c"), content_sharing_policy="open")


LATEST = MIGRATIONS[-1].version
NEXT = LATEST + 1


def test_schema_and_pragmas(db: MetadataDB) -> None:
    with sqlite3.connect(db.path) as conn:
        assert schema_version(conn) == LATEST
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        assert {
            "namespaces",
            "namespace_labels",
            "blobs",
            "blob_labels",
            "ingests",
            "leases",
            "lease_labels",
            "lease_resources",
            "images",
            "image_labels",
            "image_annotations",
            "blob_health",
            "schema_version",
        } <= tables
        index = conn.execute("PRAGMA index_info(blob_labels_by_key_value)").fetchall()
        assert [row[2] for row in index] == ["key", "value"]
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    with db._sql.read() as conn:  # the pragmas of our own connections
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
        assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
        assert conn.execute("PRAGMA busy_timeout").fetchone()[0] > 0


def test_a_version_1_database_gets_blob_health(tmp_path: Path) -> None:
    path = tmp_path / "m.db"
    SQLiteDB(path, migrations=MIGRATIONS[:1]).close()
    db = MetadataDB(path, new_backend(tmp_path / "c"))
    put(db.content_store("ns"), b"after v2")
    with db._sql.read() as conn:
        assert schema_version(conn) == LATEST
        assert conn.execute("SELECT COUNT(*) FROM blob_health").fetchone() == (0,)
    db.close()


_V2 = "ALTER TABLE blobs ADD COLUMN note TEXT; UPDATE blobs SET note = 'migrated'"


def test_migrations_apply_in_order_once(tmp_path: Path) -> None:
    path = tmp_path / "m.db"
    db = MetadataDB(path, new_backend(tmp_path / "c"))
    put(db.content_store("ns"), b"before v2")
    db.close()

    fake = (*MIGRATIONS, Migration(NEXT, "notes on blobs", _V2))
    sql = SQLiteDB(path, migrations=fake)
    with sql.write() as conn:
        conn.execute("UPDATE blobs SET note = 'kept'")
    sql.close()
    sql = SQLiteDB(path, migrations=fake)  # already there: nothing to do
    with sql.read() as conn:
        assert schema_version(conn) == NEXT
        assert conn.execute("SELECT note FROM blobs").fetchall() == [("kept",)]
    sql.close()
    # a newer database is refused, untouched
    with pytest.raises(FailedPrecondition, match="newer"):
        MetadataDB(path, new_backend(tmp_path / "c"))


def test_failed_migration_rolls_back(tmp_path: Path) -> None:
    path = tmp_path / "m.db"
    SQLiteDB(path).close()

    broken = "CREATE TABLE half_done (x INTEGER); SELECT no_such_function()"
    with pytest.raises(sqlite3.OperationalError):
        SQLiteDB(path, migrations=(*MIGRATIONS, Migration(NEXT, "broken", broken)))
    with sqlite3.connect(path) as conn:
        assert schema_version(conn) == LATEST
        assert (
            conn.execute("SELECT name FROM sqlite_master WHERE name='half_done'").fetchone() is None
        )


def test_v1_database_gains_images_and_keeps_its_records(tmp_path: Path) -> None:
    path = tmp_path / "m.db"
    SQLiteDB(path, migrations=MIGRATIONS[:1]).close()
    with sqlite3.connect(path) as conn:
        conn.execute("INSERT INTO namespaces (name, created_at) VALUES ('ns', 1)")
        conn.execute(
            "INSERT INTO blobs (namespace, digest, size, created_at, updated_at)"
            " VALUES ('ns', 'sha256:" + "a" * 64 + "', 3, 1, 1)"
        )
    sql = SQLiteDB(path)
    with sql.read() as conn:
        assert schema_version(conn) == LATEST
        assert conn.execute("SELECT count(*) FROM blobs").fetchone()[0] == 1
        assert conn.execute("SELECT count(*) FROM images").fetchone()[0] == 0
    sql.close()


def test_migrations_must_be_ordered() -> None:
    conn = sqlite3.connect(":memory:")
    with pytest.raises(ValueError):
        migrate(conn, (Migration(2, "b", _V2), Migration(1, "a", _V2)))


def test_records_store_integer_nanoseconds(db: MetadataDB) -> None:
    before = utcnow()
    dgst = put(db.content_store("ns"), b"times")
    with sqlite3.connect(db.path) as conn:
        created, updated = conn.execute(
            "SELECT created_at, updated_at FROM blobs WHERE digest = ?", (dgst,)
        ).fetchone()
    assert isinstance(created, int) and created == updated
    assert created >= int(before.timestamp()) * 10**9


def test_walk_streams_in_chunks_in_digest_order(
    db: MetadataDB, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(content, "WALK_CHUNK", 3)
    cs = db.content_store("ns")
    digests = [put(cs, f"blob {i}".encode(), labels={"i": str(i)}) for i in range(10)]
    put(db.content_store("other"), b"blob 3")
    walked = list(cs.walk())
    assert [i.digest for i in walked] == sorted(digests)
    assert {i.digest: i.labels for i in walked} == {d: {"i": str(n)} for n, d in enumerate(digests)}
    assert [i.digest for i in cs.walk("labels.i==7")] == [digests[7]]
    # no transaction is open while the caller holds an item: writes work in between
    for info in cs.walk():
        cs.update(Info(digest=info.digest, labels={"visited": "yes"}))
        put(cs, info.digest.encode())  # new records after the cursor are fine too
    assert all(i.labels == {"visited": "yes"} for i in cs.walk() if i.digest in digests)


def test_many_threads_share_the_database(db: MetadataDB) -> None:
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            cs = db.content_store(f"ns{i % 3}")
            for j in range(5):
                data = f"{i}:{j}".encode()
                dgst = put(cs, data, labels={"t": str(i)})
                assert read_blob(cs, dgst) == data
                cs.update(Info(digest=dgst, labels={"t": str(i), "j": str(j)}))
                list(cs.walk())
        except BaseException as err:
            errors.append(err)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert sum(len(list(db.content_store(f"ns{k}").walk())) for k in range(3)) == 20


def test_update_rules(db: MetadataDB) -> None:
    cs = db.content_store("ns")
    dgst = put(cs, b"labelled", labels={"a": "1", "b": "2"})
    before = cs.info(dgst)
    t0 = utcnow()
    out = cs.update(
        Info(digest=dgst, size=999, labels={"a": "x", "c": "3"}), "labels.a", "labels.b"
    )
    t1 = utcnow()
    assert out.labels == {"a": "x"}  # b deleted (absent from info), c not in the paths
    info = cs.info(dgst)
    assert info == out
    assert info.size == before.size and info.created_at == before.created_at
    assert t0 <= info.updated_at <= t1
    # "labels" replaces; later per-key paths apply on top
    out = cs.update(Info(digest=dgst, labels={"z": "26", "y": ""}), "labels", "labels.a")
    assert out.labels == {"z": "26"}
    with pytest.raises(InvalidArgument, match='cannot update "size"'):
        cs.update(Info(digest=dgst), "size")
    with pytest.raises(NotFound):
        cs.update(Info(digest="sha256:" + "0" * 64, labels={}))
    with pytest.raises(NotFound):  # the metadata layer never validates digests
        cs.info("not-a-digest")


def test_label_size_limit_on_commit_and_update(db: MetadataDB) -> None:
    cs = db.content_store("ns")
    key = "k" * 96
    exact = {key: "v" * 4000}
    too_big = {key: "v" * 4001}
    dgst = put(cs, b"fits", labels=exact)
    cs.update(Info(digest=dgst, labels=exact))
    with pytest.raises(InvalidArgument, match="greater than maximum size"):
        cs.update(Info(digest=dgst, labels=too_big))
    with pytest.raises(InvalidArgument):
        cs.update(Info(digest=dgst, labels={"": "empty key"}))

    w = cs.writer("too-big")
    w.write(b"payload")
    with pytest.raises(InvalidArgument):
        w.commit(0, "", too_big)
    # the ingest is kept and can be resumed and committed
    with cs.writer("too-big") as w:
        assert w.status().offset == len(b"payload")
        w.commit(0, "", {"ok": "1"})
    assert cs.info(digest_of(b"payload")).labels == {"ok": "1"}


def test_commit_labels_drop_empty_values(db: MetadataDB) -> None:
    cs = db.content_store("ns")
    write_blob(cs, "r", io.BytesIO(b"x"), Descriptor(), {"keep": "1", "drop": ""})
    assert cs.info(digest_of(b"x")).labels == {"keep": "1"}


def test_reopen_sees_everything(make_db: MakeDB) -> None:
    db = make_db()
    cs = db.content_store("ns")
    dgst = put(cs, b"persisted", labels={"l": "v"})
    db.leases("ns").create("L", {"x": "y"})
    w = cs.writer("half")
    w.write(b"half")
    w.close()
    db.close()
    with pytest.raises(FailedPrecondition):
        cs.info(dgst)  # closed
    db = make_db()
    cs = db.content_store("ns")
    assert cs.info(dgst).labels == {"l": "v"}
    assert db.leases("ns").list()[0].labels == {"x": "y"}
    assert cs.status("half").offset == 4


def test_backend_writer_open_holds_no_database_lock(make_db: MakeDB, tmp_path: Path) -> None:
    """A slow backend open (a resume re-hashing a big ingest, a held ref
    retrying) must not stall other metadata writes."""
    entered, release = threading.Event(), threading.Event()
    inner = new_backend(tmp_path / "content")

    class SlowOpen:
        def __getattr__(self, name: str) -> object:
            return getattr(inner, name)

        def writer(self, ref: str, total: int = 0, expected: str | None = None) -> object:
            entered.set()
            assert release.wait(60)
            return inner.writer(ref, total=total, expected=expected)

    db = make_db(backend=SlowOpen())
    opened: list[object] = []
    opener = threading.Thread(target=lambda: opened.append(db.content_store("ns").writer("r")))
    opener.start()
    assert entered.wait(60)
    other = threading.Thread(target=lambda: db.leases("ns").create("meanwhile"))
    other.start()
    other.join(60)
    finished = not other.is_alive()
    release.set()
    opener.join(60)
    assert finished, "a lease create waited for a backend writer open"
    assert [lease.id for lease in db.leases("ns").list()] == ["meanwhile"]
    opened[0].close()  # type: ignore[attr-defined]


def test_connections_are_pooled_not_one_per_thread(db: MetadataDB) -> None:
    """A hundred threads that each ran transactions leave at most MAX_IDLE connections."""
    from contentd.metadata.db import MAX_IDLE

    if not isinstance(db._sql, SQLiteDB):
        pytest.skip("SQLite's pool (PostgreSQL's is its own)")

    barrier = threading.Barrier(100)

    def work() -> None:
        with db._sql.read() as conn:
            conn.execute("SELECT COUNT(*) FROM blobs").fetchone()
            barrier.wait(30)  # all hold one at once: a hundred open
        put(db.content_store("pool"), os.urandom(16))

    threads = [threading.Thread(target=work) for _ in range(100)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert db._sql.open_connections <= MAX_IDLE
    with db._sql.read() as conn:  # and one is reused, not opened anew
        assert conn.execute("SELECT COUNT(*) FROM blobs").fetchone()[0] == 100
    assert db._sql.open_connections <= MAX_IDLE
