"""link_shared: containerd's pinned namespace sees what another containerd's pinned
namespace holds (no second download), never another tenant's blobs."""

from __future__ import annotations

import pytest

from contentd import NotFound, read_blob
from contentd.metadata import LABEL_GC_MANAGED_EXTERNALLY, TOPIC_CONTENT_CREATE
from contentd.metadata.metadb import MetadataDB
from tests.metadata.conftest import MakeDB, put


def _pinned(db: MetadataDB, *names: str) -> None:
    for name in names:
        db.namespaces.set_label(name, LABEL_GC_MANAGED_EXTERNALLY, "true")


def test_another_containerds_blob_is_linked_when_asked_for(db: MetadataDB) -> None:
    _pinned(db, "node-a", "node-b")
    dgst = put(db.content_store("node-a"), b"pulled by a's containerd")
    b = db.content_store("node-b", link_shared=True)
    with db.events.subscribe() as sub:
        assert b.info(dgst).size == len(b"pulled by a's containerd")
        envelope = sub.get(timeout=5)
    assert envelope is not None and envelope.topic == TOPIC_CONTENT_CREATE
    assert envelope.namespace == "node-b"
    assert [i.digest for i in db.content_store("node-b").walk()] == [dgst]  # recorded
    assert read_blob(b, dgst) == b"pulled by a's containerd"


def test_reader_at_links_too_and_plain_stores_never_link(db: MetadataDB) -> None:
    _pinned(db, "node-a", "node-b", "node-c")
    dgst = put(db.content_store("node-a"), b"read directly")
    with pytest.raises(NotFound):
        db.content_store("node-c").info(dgst)  # without link_shared
    assert read_blob(db.content_store("node-b", link_shared=True), dgst) == b"read directly"


def test_a_tenants_blob_stays_invisible(db: MetadataDB) -> None:
    _pinned(db, "node-b")
    dgst = put(db.content_store("tenant"), b"a tenant's own")
    with pytest.raises(NotFound):
        db.content_store("node-b", link_shared=True).info(dgst)
    assert list(db.content_store("node-b").walk()) == []


def test_isolated_policy_links_only_from_a_shareable_namespace(make_db: MakeDB) -> None:
    db = make_db("isolated")
    _pinned(db, "node-a", "node-b")
    dgst = put(db.content_store("node-a"), b"isolated")
    b = db.content_store("node-b", link_shared=True)
    with pytest.raises(NotFound):
        b.info(dgst)
    db.namespaces.set_label("node-a", "containerd.io/namespace.shareable", "true")
    assert b.info(dgst).size == len(b"isolated")
