"""Ingest records: refs, status, expiry (checklist 33, 34, 36)."""

from __future__ import annotations

import pytest

from contentd import InvalidArgument, NotFound
from contentd.content.gotime import from_ns
from contentd.metadata import INGEST_EXPIRY, LABEL_GC_MANAGED_EXTERNALLY, MetadataDB, backend_ref
from tests.metadata.conftest import FakeClock


def _expire_at(db: MetadataDB, ns: str, ref: str) -> int | None:
    with db._sql.read() as conn:  # either engine
        row = conn.execute(
            "SELECT expire_at FROM ingests WHERE namespace = ? AND ref = ?", (ns, ref)
        ).fetchone()
    assert row is not None, "no ingest record"
    return None if row[0] is None else int(row[0])


def test_status_reports_the_user_ref(db: MetadataDB) -> None:
    cs = db.content_store("ns")
    with cs.writer("my-ref", total=10) as w:
        w.write(b"12345")
        st = cs.status("my-ref")
        assert (st.ref, st.offset, st.total) == ("my-ref", 5, 10)
        assert w.status().ref == "my-ref"
    assert db.backend.status(backend_ref("ns", "my-ref")).offset == 5
    assert [s.ref for s in cs.list_statuses()] == ["my-ref"]
    assert [s.ref for s in cs.list_statuses("ref==my-ref")] == ["my-ref"]
    assert cs.list_statuses("ref==ns/1/my-ref") == []
    with pytest.raises(InvalidArgument):
        cs.list_statuses("ref===x")


def test_status_without_a_record_is_not_found(db: MetadataDB) -> None:
    cs = db.content_store("ns")
    with pytest.raises(NotFound, match="reference nope"):
        cs.status("nope")


def test_list_statuses_skips_records_without_a_backend_ingest(db: MetadataDB) -> None:
    cs = db.content_store("ns")
    for ref in ("keep", "lost"):
        w = cs.writer(ref)
        w.write(b"x")
        w.close()
    db.backend.abort(backend_ref("ns", "lost"))  # the backend lost it behind our back
    assert [s.ref for s in cs.list_statuses()] == ["keep"]
    with pytest.raises(NotFound):
        cs.status("lost")


def test_ingest_without_lease_expires_in_24h_refreshed_on_open(
    clocked_db: MetadataDB, clock: FakeClock
) -> None:
    db = clocked_db
    cs = db.content_store("ns")
    w = cs.writer("r")
    w.write(b"partial")
    w.close()
    first = _expire_at(db, "ns", "r")
    assert first is not None
    assert from_ns(first) == clock.now + INGEST_EXPIRY
    clock.advance(hours=5)
    cs.writer("r").close()  # every open refreshes it
    second = _expire_at(db, "ns", "r")
    assert second is not None and second - first == 5 * 3600 * 10**9


def test_expired_ingest_is_collected_and_its_backend_ingest_aborted(
    clocked_db: MetadataDB, clock: FakeClock
) -> None:
    db = clocked_db
    cs = db.content_store("ns")
    w = cs.writer("stale")
    w.write(b"half of it")
    w.close()
    clock.advance(hours=23, minutes=59)
    db.garbage_collect()
    assert cs.status("stale").offset == len(b"half of it")  # not yet
    clock.advance(minutes=2)
    result = db.garbage_collect()
    assert result.ingests == {"ns": ("stale",)}
    assert result.backend_ingests == (backend_ref("ns", "stale"),)
    with pytest.raises(NotFound):
        cs.status("stale")
    assert db.backend.list_statuses() == []


def test_leased_ingest_has_no_expiry_and_lives_with_the_lease(
    clocked_db: MetadataDB, clock: FakeClock
) -> None:
    db = clocked_db
    db.leases("ns").create("L")
    cs = db.content_store("ns", lease="L")
    w = cs.writer("held")
    w.write(b"abc")
    w.close()
    assert _expire_at(db, "ns", "held") is None
    clock.advance(days=30)
    db.garbage_collect()
    assert cs.status("held").offset == 3
    db.leases("ns").delete("L")
    db.garbage_collect()
    with pytest.raises(NotFound):
        cs.status("held")


def test_managed_externally_namespace_ingests_never_expire(
    clocked_db: MetadataDB, clock: FakeClock
) -> None:
    db = clocked_db
    db.namespaces.set_label("proxy", LABEL_GC_MANAGED_EXTERNALLY, "true")
    cs = db.content_store("proxy")
    w = cs.writer("upload")
    w.write(b"from containerd")
    w.close()
    assert _expire_at(db, "proxy", "upload") is None
    clock.advance(days=365)
    result = db.garbage_collect()
    assert result.ingests == {}
    assert cs.status("upload").offset == len(b"from containerd")
