"""One blob, several namespaces (spec §4.6; checklist 28-35).

containerd's CrossNamespaceShare/Append/Isolate test-suite cases, plus the
shareable-namespace rule and per-namespace visibility and deletion.
"""

from __future__ import annotations

import io

import pytest

from contentd import (
    AlreadyExists,
    Descriptor,
    FailedPrecondition,
    NotFound,
    read_blob,
    write_blob,
)
from contentd.content.digest import EMPTY_DIGEST, digest_of
from contentd.content.labels import LABEL_GC_ROOT, LABEL_NAMESPACE_SHAREABLE
from contentd.content.types import utcnow
from contentd.metadata import MetadataDB, backend_ref
from tests.conformance.harness import create_content
from tests.metadata.conftest import MakeDB

SIZE = 1000
REF = f"ref-{SIZE}"


def _setup(db: MetadataDB) -> tuple[bytes, str]:
    data, dgst = create_content(SIZE)
    write_blob(db.content_store("ns1"), REF, io.BytesIO(data), Descriptor(digest=dgst, size=SIZE))
    return data, dgst


def test_content_of_one_namespace_is_not_found_in_another(make_db: MakeDB) -> None:
    for policy in ("shared", "isolated"):
        db = make_db(policy, name=f"{policy}.db")
        data, dgst = _setup(db)
        ns2 = db.content_store("ns2")
        with pytest.raises(NotFound):
            ns2.info(dgst)
        with pytest.raises(NotFound):
            ns2.reader_at(dgst)
        with pytest.raises(NotFound):
            ns2.delete(dgst)
        assert read_blob(db.content_store("ns1"), dgst) == data


def test_cross_namespace_share(db: MetadataDB) -> None:
    t1 = utcnow()
    data, dgst = _setup(db)
    ns2 = db.content_store("ns2")
    with ns2.writer(REF, total=SIZE, expected=dgst) as w:
        t2 = utcnow()
        st = w.status()
        assert (st.ref, st.offset, st.total) == (REF, SIZE, SIZE)
        assert st.expected == dgst
        assert w.digest() == dgst
        assert t1 <= st.started_at <= t2
        w.commit(SIZE, dgst)
    t3 = utcnow()
    for ns in ("ns1", "ns2"):
        info = db.content_store(ns).info(dgst)
        assert info.size == SIZE
        assert t1 <= info.created_at <= t3
        assert read_blob(db.content_store(ns), dgst) == data
    assert db.content_store("ns2").info(dgst).created_at >= t2


def test_cross_namespace_share_opens_never_lock(db: MetadataDB) -> None:
    _, dgst = _setup(db)
    ns2 = db.content_store("ns2")
    w1 = ns2.writer(REF, total=SIZE, expected=dgst)
    w2 = ns2.writer(REF, total=SIZE, expected=dgst)  # nothing is locked for a shared open
    w1.commit(SIZE, dgst)
    with pytest.raises(AlreadyExists):
        w2.commit(SIZE, dgst)


def test_cross_namespace_share_commits_only_the_expected_digest(db: MetadataDB) -> None:
    _, dgst = _setup(db)
    ns2 = db.content_store("ns2")
    other = digest_of(b"something else")
    with ns2.writer(REF, total=SIZE, expected=dgst) as w:
        with pytest.raises(FailedPrecondition, match="unexpected digest"):
            w.commit(SIZE, other)
        with pytest.raises(FailedPrecondition, match="failed size validation"):
            w.commit(SIZE + 1, dgst)
    for digest in (dgst, other):
        with pytest.raises(NotFound):
            ns2.info(digest)


def test_cross_namespace_share_size_mismatch_is_not_shared(db: MetadataDB) -> None:
    _, dgst = _setup(db)
    with db.content_store("ns2").writer(REF, total=SIZE + 1, expected=dgst) as w:
        assert w.status().offset == 0
        assert w.digest() == EMPTY_DIGEST


def test_cross_namespace_append(db: MetadataDB) -> None:
    data, dgst = _setup(db)
    extra = b"appended bytes"
    data2 = data + extra
    d2 = digest_of(data2)
    ns2 = db.content_store("ns2")
    with ns2.writer(REF, total=SIZE, expected=dgst) as w:
        assert w.status().offset == SIZE
        w.write(extra)
        assert w.status().offset == len(data2)
        assert w.digest() == d2
        w.commit(len(data2), d2)
    assert read_blob(ns2, d2) == data2
    assert read_blob(db.content_store("ns1"), dgst) == data
    with pytest.raises(NotFound):
        ns2.info(dgst)
    with pytest.raises(NotFound):
        db.content_store("ns1").info(d2)


def test_cross_namespace_truncate_copies_a_prefix(db: MetadataDB) -> None:
    data, dgst = _setup(db)
    ns2 = db.content_store("ns2")
    with ns2.writer("trunc", total=SIZE, expected=dgst) as w:
        w.truncate(100)
        assert w.status().offset == 100
        assert w.digest() == digest_of(data[:100])
        w.write(b"tail")
        w.commit(0, "")
    assert read_blob(ns2, digest_of(data[:100] + b"tail")) == data[:100] + b"tail"


def test_cross_namespace_isolate(make_db: MakeDB) -> None:
    db = make_db("isolated")
    data, dgst = _setup(db)
    ns2 = db.content_store("ns2")
    t3 = utcnow()
    w = ns2.writer(REF, total=SIZE, expected=dgst)
    t4 = utcnow()
    st = w.status()
    assert st.offset == 0
    assert w.digest() == EMPTY_DIGEST
    assert t3 <= st.started_at <= t4
    w.write(data)
    w.commit(SIZE, dgst)  # the backend's AlreadyExists is ignored: the record is made
    assert read_blob(ns2, dgst) == data


def test_isolated_shares_from_a_shareable_namespace(make_db: MakeDB) -> None:
    db = make_db("isolated")
    db.namespaces.set_label("base", LABEL_NAMESPACE_SHAREABLE, "true")
    data, dgst = create_content(SIZE)
    write_blob(db.content_store("base"), REF, io.BytesIO(data), Descriptor(digest=dgst))
    with db.content_store("consumer").writer(REF, total=SIZE, expected=dgst) as w:
        assert w.status().offset == SIZE
        assert w.digest() == dgst
        w.commit(SIZE, dgst)
    assert read_blob(db.content_store("consumer"), dgst) == data

    # a namespace without the label (or with another value) is no source
    other, odgst = create_content(SIZE)
    db.namespaces.set_label("private", LABEL_NAMESPACE_SHAREABLE, "yes")
    write_blob(db.content_store("private"), "p", io.BytesIO(other), Descriptor(digest=odgst))
    with db.content_store("consumer").writer("p", total=SIZE, expected=odgst) as w:
        assert w.status().offset == 0


def test_same_namespace_rewrite_is_already_exists(db: MetadataDB) -> None:
    data, dgst = _setup(db)
    ns1 = db.content_store("ns1")
    w = ns1.writer("again")
    w.write(data)
    with pytest.raises(AlreadyExists):
        w.commit(0, "")
    with pytest.raises(AlreadyExists):
        ns1.writer("again2", expected=dgst)
    with pytest.raises(NotFound):  # no ingest record was made (checklist 32)
        ns1.status("again2")


def test_same_ref_in_two_namespaces_never_collides(make_db: MakeDB) -> None:
    db = make_db("isolated")
    a, b = db.content_store("a"), db.content_store("b")
    wa = a.writer("same")
    wb = b.writer("same")  # distinct backend refs: no Unavailable
    wa.write(b"aaa")
    wb.write(b"bbbbb")
    assert a.status("same").offset == 3
    assert b.status("same").offset == 5
    assert a.status("same").ref == "same"
    backend_refs = {s.ref for s in db.backend.list_statuses()}
    assert backend_refs == {backend_ref("a", "same"), backend_ref("b", "same")}
    assert backend_ref("a", "same") == "a/1/same"
    wa.close()
    wb.close()


def test_abort_removes_the_ingest(db: MetadataDB) -> None:
    cs = db.content_store("ns1")
    w = cs.writer("ab")
    w.write(b"12345")
    w.close()
    cs.abort("ab")
    with pytest.raises(NotFound):
        cs.status("ab")
    with pytest.raises(NotFound):
        cs.abort("ab")
    assert db.backend.list_statuses() == []


def test_delete_in_one_namespace_keeps_the_other(db: MetadataDB) -> None:
    data, dgst = create_content(SIZE)
    ns1, ns2 = db.content_store("ns1"), db.content_store("ns2")
    for cs in (ns1, ns2):
        write_blob(cs, REF, io.BytesIO(data), Descriptor(digest=dgst), {LABEL_GC_ROOT: "x"})
    ns1.delete(dgst)
    with pytest.raises(NotFound):
        ns1.info(dgst)
    with pytest.raises(NotFound):
        ns1.delete(dgst)
    assert read_blob(ns2, dgst) == data
    db.garbage_collect()
    assert read_blob(ns2, dgst) == data
    assert db.backend.info(dgst).size == SIZE
