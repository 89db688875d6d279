"""One-statement reads (``Database.query``), on SQLite and on PostgreSQL."""

from __future__ import annotations

import pytest

from contentd import Info
from contentd.metadata import MetadataDB
from tests.metadata.conftest import put


class _Rollback(Exception):
    pass


def test_query_reads_committed_rows_or_the_open_transactions(db: MetadataDB) -> None:
    """``query`` (one statement) sees what is committed; inside a transaction of the same
    thread it sees that transaction's own changes."""
    digest = put(db.content_store("q"), b"query me")
    sql = "SELECT digest FROM blobs WHERE namespace = ?"
    assert [tuple(r) for r in db._sql.query(sql, ("q",))] == [(digest,)]
    with pytest.raises(_Rollback), db._sql.write() as conn:
        conn.execute("DELETE FROM blobs WHERE namespace = ?", ("q",))
        assert db._sql.query(sql, ("q",)) == []
        raise _Rollback
    assert [tuple(r) for r in db._sql.query(sql, ("q",))] == [(digest,)]


def test_info_reads_a_record_with_and_without_labels(db: MetadataDB) -> None:
    store = db.content_store("labels")
    plain = put(store, b"no labels")
    labelled = put(store, b"two labels")
    store.update(Info(labelled, 0, labels={"a": "1", "b": "2"}), "labels")
    assert store.info(plain).labels == {}
    info = store.info(labelled)
    assert info.labels == {"a": "1", "b": "2"}
    assert info.size == len(b"two labels")
