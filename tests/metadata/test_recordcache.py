"""Records a thread remembers are never served after a commit changed them.

The cache (``contentd.metadata.recordcache``) is what lets a thread answer
containerd's proxy plugin's stream of Info/Read calls without a transaction
each; these tests change the record between two lookups in every way a commit
can reach it (this thread, another thread, another connection to the file as
another process would) and check the second lookup sees the change.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from contentd.content.errors import NotFound
from contentd.content.types import Info
from contentd.metadata import MetadataDB
from contentd.metadata.db import SQLiteDB
from contentd.metadata.recordcache import RecordCache
from tests.metadata.conftest import MakeDB, put

NS = "cache-ns"


def _on_thread(fn: Callable[[], object]) -> None:
    errors: list[BaseException] = []

    def run() -> None:
        try:
            fn()
        except BaseException as err:  # pragma: no cover - reported below
            errors.append(err)

    t = threading.Thread(target=run)
    t.start()
    t.join()
    assert not errors, errors


def _sqlite(db: MetadataDB) -> SQLiteDB:
    sql = db._core.sql
    if not isinstance(sql, SQLiteDB):
        pytest.skip("SQLite's generation")
    return sql


def test_a_second_lookup_is_remembered(db: MetadataDB) -> None:
    if not isinstance(db._core.sql, SQLiteDB):
        # PostgreSQL: within the node's record lease (long here: nothing changes a record)
        db._core.sql.record_lease = 60.0  # type: ignore[attr-defined]
    store = db.content_store(NS)
    digest = put(store, b"remembered")
    loads: list[str] = []
    cache = RecordCache(db._core.sql)  # the same generation rules as the store's own cache

    def load() -> Info:
        loads.append(digest)
        return store.info(digest)

    assert cache.get(NS, digest, load) == cache.get(NS, digest, load)
    assert len(loads) == 1


def test_update_on_this_thread_is_seen(db: MetadataDB) -> None:
    store = db.content_store(NS)
    digest = put(store, b"labelled", labels={"a": "1"})
    assert store.info(digest).labels == {"a": "1"}
    store.update(Info(digest, labels={"a": "2"}), "labels.a")
    assert store.info(digest).labels == {"a": "2"}


def test_delete_on_this_thread_is_seen(db: MetadataDB) -> None:
    store = db.content_store(NS)
    digest = put(store, b"deleted here")
    store.reader_at(digest).close()
    store.info(digest)
    store.delete(digest)
    with pytest.raises(NotFound):
        store.reader_at(digest)
    with pytest.raises(NotFound):
        store.info(digest)


def test_delete_on_another_thread_is_seen(db: MetadataDB) -> None:
    store = db.content_store(NS)
    digest = put(store, b"deleted there")
    store.reader_at(digest).close()
    _on_thread(lambda: db.content_store(NS).delete(digest))
    with pytest.raises(NotFound):
        store.reader_at(digest)


def test_labels_changed_on_another_thread_are_seen(db: MetadataDB) -> None:
    store = db.content_store(NS)
    digest = put(store, b"relabelled", labels={"k": "old"})
    assert store.info(digest).labels == {"k": "old"}
    _on_thread(lambda: db.content_store(NS).update(Info(digest, labels={"k": "new"}), "labels.k"))
    assert store.info(digest).labels == {"k": "new"}


def test_a_commit_by_another_process_is_seen(make_db: MakeDB, tmp_path: Path) -> None:
    db = make_db()
    _sqlite(db)
    store = db.content_store(NS)
    digest = put(store, b"deleted by another process")
    store.info(digest)
    # another process writes the file (no in-process counter can know of it)
    script = (
        "import sqlite3, sys\n"
        "c = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
        "c.execute('PRAGMA foreign_keys=ON')\n"
        "c.execute('DELETE FROM blob_labels WHERE namespace = ? AND digest = ?', sys.argv[2:])\n"
        "c.execute('DELETE FROM blobs WHERE namespace = ? AND digest = ?', sys.argv[2:])\n"
    )
    subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "meta.db"), NS, digest], check=True
    )
    with pytest.raises(NotFound):
        store.info(digest)


def test_inside_a_transaction_nothing_is_remembered(db: MetadataDB) -> None:
    store = db.content_store(NS)
    digest = put(store, b"in a transaction")
    sql = db._core.sql
    with sql.read():
        assert sql.generation() is None
        store.info(digest)
    assert sql.generation() is not None


def test_the_cache_is_bounded(db: MetadataDB) -> None:
    cache = RecordCache(db._core.sql, limit=4)
    for i in range(10):
        cache.get(NS, f"sha256:{i:064x}", lambda: Info("x"))
    records = cache._local.records
    assert records is None or len(records) <= 4


def test_labels_returned_are_the_callers_own(db: MetadataDB) -> None:
    store = db.content_store(NS)
    digest = put(store, b"own labels", labels={"a": "1"})
    first = store.info(digest)
    assert isinstance(first.labels, dict)
    first.labels["a"] = "changed by the caller"
    assert store.info(digest).labels == {"a": "1"}


def test_generation_leaves_no_read_transaction_open(make_db: MakeDB, tmp_path: Path) -> None:
    db = make_db()
    sql = _sqlite(db)
    digest = put(db.content_store(NS), b"checkpointed")
    first = sql.generation()
    assert sql.generation() == first  # its kept cursor, read twice
    # another connection can checkpoint the whole WAL away: no snapshot of ours pins it
    other = sqlite3.connect(tmp_path / "meta.db", isolation_level=None)
    try:
        other.execute("DELETE FROM blob_labels WHERE digest = ?", (digest,))
        busy, _, _ = other.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    finally:
        other.close()
    assert busy == 0
    assert sql.generation() != first
