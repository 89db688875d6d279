"""Leases: the manager and the content hooks (spec §4.7; checklist 37-40)."""

from __future__ import annotations

import io
import re

import pytest

from contentd import (
    AlreadyExists,
    Descriptor,
    InvalidArgument,
    NotFound,
    NotImplemented,
    write_blob,
)
from contentd.content.digest import digest_of
from contentd.content.types import utcnow
from contentd.metadata import MetadataDB, Resource
from tests.metadata.conftest import put

D1 = "sha256:" + "1" * 64


def test_create_list_delete(db: MetadataDB) -> None:
    leases = db.leases("ns")
    before = utcnow()
    lease = leases.create("l1", {"a": "1", "empty": ""})
    after = utcnow()
    assert lease.id == "l1"
    assert lease.labels == {"a": "1"}
    assert before <= lease.created_at <= after
    with pytest.raises(AlreadyExists):
        leases.create("l1")
    leases.create("l2", {"a": "2", "containerd.io/gc.flat": "true"})
    listed = leases.list()
    assert [x.id for x in listed] == ["l1", "l2"]
    assert listed[0] == lease
    assert listed[1].labels == {"a": "2", "containerd.io/gc.flat": "true"}
    assert [lease.id for lease in leases.list("id==l2")] == ["l2"]
    assert [lease.id for lease in leases.list("labels.a==1", "labels.a==2")] == ["l1", "l2"]
    assert [lease.id for lease in leases.list('labels."containerd.io/gc.flat"')] == ["l2"]
    with pytest.raises(InvalidArgument):
        leases.list("id===x")
    assert db.leases("other").list() == []  # leases are per namespace
    leases.delete("l1")
    with pytest.raises(NotFound):
        leases.delete("l1")
    assert [lease.id for lease in leases.list()] == ["l2"]


def test_generated_ids_look_like_ctrs(db: MetadataDB) -> None:
    leases = db.leases("ns")
    ids = {leases.create().id for _ in range(5)}
    assert len(ids) == 5
    for lease_id in ids:
        assert re.fullmatch(r"\d+-[A-Za-z0-9_-]{4}", lease_id), lease_id
    with pytest.raises(InvalidArgument):
        leases.create("")


def test_resources(db: MetadataDB) -> None:
    leases = db.leases("ns")
    leases.create("l")
    leases.add_resource("l", Resource(id="snap-1", type="snapshots/overlayfs"))
    leases.add_resource("l", Resource(id="ingest-ref", type="ingests"))
    leases.add_resource("l", Resource(id=D1, type="content"))
    leases.add_resource("l", Resource(id=D1, type="content"))  # idempotent
    assert leases.list_resources("l") == [
        Resource(D1, "content"),
        Resource("ingest-ref", "ingests"),
        Resource("snap-1", "snapshots/overlayfs"),
    ]
    with pytest.raises(InvalidArgument):
        leases.add_resource("l", Resource(id="not-a-digest", type="content"))
    with pytest.raises(InvalidArgument):
        leases.add_resource("l", Resource(id="x", type="snapshots"))
    with pytest.raises(InvalidArgument):
        leases.add_resource("l", Resource(id="x", type="ingests/extra"))
    with pytest.raises(NotImplemented):
        leases.add_resource("l", Resource(id="x", type="images"))
    with pytest.raises(NotFound):
        leases.add_resource("missing", Resource(id=D1, type="content"))
    with pytest.raises(NotFound):
        leases.list_resources("missing")
    leases.delete_resource("l", Resource(id=D1, type="content"))
    leases.delete_resource("l", Resource(id=D1, type="content"))  # absent: fine
    with pytest.raises(NotFound):
        leases.delete_resource("missing", Resource(id=D1, type="content"))
    assert Resource(D1, "content") not in leases.list_resources("l")


def test_write_blob_under_lease_leases_the_content(db: MetadataDB) -> None:
    db.leases("ns").create("L")
    cs = db.content_store("ns", lease="L")
    dgst = put(cs, b"leased bytes")
    assert db.leases("ns").list_resources("L") == [Resource(dgst, "content")]


def test_open_hitting_existing_digest_adds_it_to_the_lease(db: MetadataDB) -> None:
    dgst = put(db.content_store("ns"), b"already here")
    db.leases("ns").create("L")
    with pytest.raises(AlreadyExists):
        db.content_store("ns", lease="L").writer("r", expected=dgst)
    assert db.leases("ns").list_resources("L") == [Resource(dgst, "content")]


def test_writer_under_lease_adds_the_ingest_and_abort_removes_it(db: MetadataDB) -> None:
    db.leases("ns").create("L")
    cs = db.content_store("ns", lease="L")
    w = cs.writer("ing")
    w.write(b"x")
    w.close()
    assert db.leases("ns").list_resources("L") == [Resource("ing", "ingests")]
    cs.abort("ing")
    assert db.leases("ns").list_resources("L") == []


def test_commit_moves_the_entry_from_ingests_to_content(db: MetadataDB) -> None:
    db.leases("ns").create("L")
    cs = db.content_store("ns", lease="L")
    with cs.writer("ing") as w:
        w.write(b"payload")
        assert db.leases("ns").list_resources("L") == [Resource("ing", "ingests")]
        w.commit(0, "")
    assert db.leases("ns").list_resources("L") == [Resource(digest_of(b"payload"), "content")]


def test_delete_removes_the_content_from_the_lease(db: MetadataDB) -> None:
    db.leases("ns").create("L")
    cs = db.content_store("ns", lease="L")
    dgst = put(cs, b"to delete")
    cs.delete(dgst)
    assert db.leases("ns").list_resources("L") == []


def test_missing_lease_is_not_found(db: MetadataDB) -> None:
    cs = db.content_store("ns", lease="nope")
    with pytest.raises(NotFound, match="lease does not exist"):
        cs.writer("r")
    with pytest.raises(NotFound):
        cs.status("r")  # and no ingest record was left behind
    dgst = put(db.content_store("ns"), b"exists")
    with pytest.raises(NotFound, match="unable to lease content"):
        cs.writer("r", expected=dgst)


def test_lease_deleted_before_commit_fails_the_commit(db: MetadataDB) -> None:
    db.leases("ns").create("L")
    cs = db.content_store("ns", lease="L")
    w = cs.writer("r")
    w.write(b"data")
    db.leases("ns").delete("L")
    with pytest.raises(NotFound):
        w.commit(0, "")
    with pytest.raises(NotFound):  # the record was rolled back with the commit
        db.content_store("ns").info(digest_of(b"data"))


def test_lease_labels_are_validated(db: MetadataDB) -> None:
    with pytest.raises(InvalidArgument):
        db.leases("ns").create("l", {"k": "v" * 5000})


def test_same_lease_id_in_two_namespaces(db: MetadataDB) -> None:
    db.leases("a").create("L")
    db.leases("b").create("L")
    write_blob(db.content_store("a", "L"), "r", io.BytesIO(b"in a"), Descriptor())
    assert db.leases("b").list_resources("L") == []


def test_set_labels_changes_only_the_keys_given(db: MetadataDB) -> None:
    """The daemon's own update (a resumed fetch renews its lease's expiry); containerd's
    Leases API has none."""
    leases = db.leases("ns")
    created = leases.create("l1", {"containerd.io/gc.expire": "2026-01-01T00:00:00Z", "a": "1"})
    updated = leases.set_labels("l1", {"containerd.io/gc.expire": "2027-01-01T00:00:00Z", "b": "2"})
    assert updated.labels == {"containerd.io/gc.expire": "2027-01-01T00:00:00Z", "a": "1", "b": "2"}
    assert updated.created_at == created.created_at
    assert leases.list("id==l1")[0] == updated
    assert leases.set_labels("l1", {"a": ""}).labels == {
        "containerd.io/gc.expire": "2027-01-01T00:00:00Z",
        "b": "2",
    }
    with pytest.raises(NotFound):
        leases.set_labels("nope", {"a": "1"})
    with pytest.raises(InvalidArgument):
        leases.set_labels("l1", {"": "1"})
