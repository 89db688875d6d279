"""Namespaces: the namespace requirement (checklist 27) and the namespace store."""

from __future__ import annotations

import io

import pytest

from contentd import (
    AlreadyExists,
    Descriptor,
    FailedPrecondition,
    Info,
    InvalidArgument,
    NotFound,
    write_blob,
)
from contentd.metadata import MetadataDB, Resource
from tests.metadata.conftest import put

DIGEST = "sha256:" + "a" * 64


@pytest.mark.parametrize("namespace", [None, ""])
def test_every_call_requires_a_namespace(db: MetadataDB, namespace: str | None) -> None:
    cs = db.content_store(namespace)
    calls = [
        lambda: cs.info(DIGEST),
        lambda: cs.reader_at(DIGEST),
        lambda: cs.update(Info(digest=DIGEST)),
        lambda: cs.walk(),
        lambda: cs.delete(DIGEST),
        lambda: cs.status("r"),
        lambda: cs.list_statuses(),
        lambda: cs.abort("r"),
        lambda: cs.writer("r"),
        lambda: db.leases(namespace).create("l"),
        lambda: db.leases(namespace).list(),
    ]
    for call in calls:
        with pytest.raises(FailedPrecondition, match="namespace is required"):
            call()


def test_invalid_namespace_is_invalid_argument(db: MetadataDB) -> None:
    for bad in ["bad/ns", "-x", "x-", "a..b", "n" * 77]:
        cs = db.content_store(bad)
        with pytest.raises(InvalidArgument):
            cs.info(DIGEST)
        with pytest.raises(InvalidArgument):
            cs.writer("r")
    db.content_store("a.b-c_d9").list_statuses()  # valid


def test_writer_checks_ref_before_namespace(db: MetadataDB) -> None:
    with pytest.raises(InvalidArgument, match="ref must not be empty"):
        db.content_store(None).writer("")


def test_create_get_list_labels(db: MetadataDB) -> None:
    ns = db.namespaces
    ns.create("one", {"a": "1", "empty": ""})
    ns.create("two")
    with pytest.raises(AlreadyExists):
        ns.create("one")
    with pytest.raises(InvalidArgument):
        ns.create("bad/name")
    with pytest.raises(InvalidArgument):
        ns.create("three", {"k": "v" * 4096})
    assert ns.list() == ["one", "two"]
    assert ns.get("one") == {"a": "1"}
    assert ns.get("two") == {}
    with pytest.raises(NotFound):
        ns.get("missing")
    assert ns.labels("missing") == {}


def test_set_label_sets_deletes_and_creates(db: MetadataDB) -> None:
    ns = db.namespaces
    ns.set_label("implicit", "k", "v")
    assert ns.get("implicit") == {"k": "v"}
    ns.set_label("implicit", "k", "w")
    ns.set_label("implicit", "other", "x")
    assert ns.labels("implicit") == {"k": "w", "other": "x"}
    ns.set_label("implicit", "k", "")
    assert ns.labels("implicit") == {"other": "x"}
    with pytest.raises(InvalidArgument):
        ns.set_label("implicit", "k" * 4000, "v" * 97)
    ns.set_label("implicit", "k" * 4000, "v" * 96)  # exactly 4096 bytes


def test_content_and_leases_create_the_namespace(db: MetadataDB) -> None:
    put(db.content_store("viacontent"), b"hello")
    db.leases("vialease").create("l1")
    assert db.namespaces.list() == ["viacontent", "vialease"]
    with pytest.raises(AlreadyExists):
        db.namespaces.create("viacontent")


def test_delete_only_when_empty(db: MetadataDB) -> None:
    ns = db.namespaces
    with pytest.raises(NotFound):
        ns.delete("missing")

    cs = db.content_store("busy")
    dgst = put(cs, b"some bytes")
    with pytest.raises(FailedPrecondition, match="blobs"):
        ns.delete("busy")
    cs.delete(dgst)

    w = cs.writer("ingest")
    w.write(b"x")
    w.close()
    with pytest.raises(FailedPrecondition, match="ingests"):
        ns.delete("busy")
    cs.abort("ingest")

    leases = db.leases("busy")
    leases.create("l")
    leases.add_resource("l", Resource(id=dgst, type="content"))
    with pytest.raises(FailedPrecondition, match="leases"):
        ns.delete("busy")
    leases.delete("l")

    ns.delete("busy")
    assert "busy" not in ns.list()
    with pytest.raises(NotFound):
        ns.get("busy")


def test_namespaces_do_not_see_each_other(db: MetadataDB) -> None:
    a = db.content_store("a")
    b = db.content_store("b")
    write_blob(a, "r", io.BytesIO(b"only in a"), Descriptor())
    assert [i.digest for i in a.walk()] and not list(b.walk())
