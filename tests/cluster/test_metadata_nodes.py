"""Cluster semantics of the PostgreSQL metadata layer, with several MetadataDB
instances (nodes) on one database in this process; ``test_serve.py`` does the
same with ``contentd serve`` processes."""

from __future__ import annotations

import io
import threading
import time
from dataclasses import replace

import pytest

from contentd import Descriptor, FailedPrecondition, Unavailable, write_blob
from contentd.content.digest import digest_of
from contentd.content.errors import NotFound
from contentd.metadata import LABEL_GC_MANAGED_EXTERNALLY, TOPIC_CONTENT_CREATE, MetadataDB
from contentd.metadata.postgres import redact_dsn
from tests.cluster.conftest import MakeNode
from tests.cluster.race import commit_race

ROOT = {"containerd.io/gc.root": "test"}


def put(db: MetadataDB, ns: str, data: bytes, labels: dict[str, str] | None = None) -> str:
    dgst = digest_of(data)
    desc = Descriptor(digest=dgst, size=len(data))
    write_blob(db.content_store(ns), f"ref-{dgst[7:19]}", io.BytesIO(data), desc, labels)
    return dgst


def test_committed_on_one_node_is_read_on_another(make_node: MakeNode) -> None:
    a, b = make_node("a"), make_node("b")
    dgst = put(a, "ns", b"hello from a")
    info = b.content_store("ns").info(dgst)
    assert info.size == len(b"hello from a")
    with b.content_store("ns").reader_at(dgst) as ra:
        assert ra.read_at(0, 100) == b"hello from a"


def test_eight_writers_of_one_digest_across_nodes_one_commit(make_node: MakeNode) -> None:
    nodes = [make_node(f"n{i}") for i in range(2)]
    data = b"x" * 100_000
    dgst = digest_of(data)
    stores = [node.content_store("ns") for node in nodes]
    assert commit_race(stores, 8, data, dgst) == ["committed"] + ["exists"] * 7
    assert nodes[1].content_store("ns").info(dgst).size == len(data)


def test_ref_is_locked_across_nodes_and_released(make_node: MakeNode) -> None:
    a, b = make_node("a"), make_node("b")
    w = a.content_store("ns").writer("upload")
    w.write(b"partial")
    with pytest.raises(Unavailable, match=r"ref upload locked .* by a/"):
        b.content_store("ns").writer("upload")
    w.close()
    with b.content_store("ns").writer("upload") as w2:  # resumes A's ingest
        assert w2.status().offset == len(b"partial")
        w2.write(b" and the rest")
        w2.commit(0, digest_of(b"partial and the rest"))


def test_dead_writer_is_taken_over_and_can_never_complete(make_node: MakeNode) -> None:
    a, b = make_node("a", ref_lock_lease=1.0), make_node("b", ref_lock_lease=1.0)
    stale = a.content_store("ns").writer("upload")
    stale.write(b"first half, ")
    a.cluster._stop.set()  # type: ignore[attr-defined] # node a stops renewing: as if dead
    deadline = time.monotonic() + 30
    while True:
        try:
            fresh = b.content_store("ns").writer("upload")
            break
        except Unavailable:
            assert time.monotonic() < deadline, "the dead writer's ref was never taken over"
            time.sleep(0.2)
    data = b"first half, second half"
    # it goes on from what the dead writer had flushed (unflushed bytes die with a node)
    offset = fresh.status().offset
    assert offset <= len(b"first half, ")
    fresh.write(data[offset:])
    # the stale writer cannot commit, not even the right bytes
    with pytest.raises(FailedPrecondition, match="lost its lock"):
        stale.commit(0, "")
    with pytest.raises(NotFound):
        a.content_store("ns").info(digest_of(b"first half, "))
    fresh.commit(len(data), digest_of(data))
    fresh.close()
    stale.close()
    assert b.content_store("ns").info(digest_of(data)).size == len(data)


def test_events_reach_subscribers_on_other_nodes(make_node: MakeNode) -> None:
    a, b = make_node("a"), make_node("b")
    with b.events.subscribe(f'topic=="{TOPIC_CONTENT_CREATE}"') as sub:
        assert b.cluster.listening.wait(30)  # type: ignore[attr-defined]
        dgst = put(a, "ns", b"an event")
        envelope = sub.get(timeout=10)
    assert envelope is not None
    assert (envelope.namespace, envelope.topic) == ("ns", TOPIC_CONTENT_CREATE)
    assert envelope.event.digest == dgst  # type: ignore[attr-defined]


def test_malformed_notifications_do_not_stop_a_nodes_listener(
    make_node: MakeNode, cluster_dsn: str
) -> None:
    import psycopg

    a, b = make_node("a"), make_node("b")
    with b.events.subscribe(f'topic=="{TOPIC_CONTENT_CREATE}"') as sub:
        assert b.cluster.listening.wait(30)  # type: ignore[attr-defined]
        # any client of the database may NOTIFY the channel: JSON that is no object,
        # fields of the wrong types, no JSON at all
        with psycopg.connect(cluster_dsn, autocommit=True) as raw:
            for junk in ("[]", "3", '{"node": [], "topic": {}}', '{"ts": "x"}', "not json"):
                raw.execute("SELECT pg_notify('contentd_events', %s)", (junk,))
        time.sleep(0.5)
        dgst = put(a, "ns", b"an event after the junk")
        envelope = sub.get(timeout=10)
    assert envelope is not None
    assert envelope.event.digest == dgst  # type: ignore[attr-defined]


def test_a_pinned_namespace_is_refused_to_a_second_live_node(make_node: MakeNode) -> None:
    a, b = make_node("a"), make_node("b")
    a.pin_namespace("node-a")
    b.pin_namespace("node-b")
    with pytest.raises(FailedPrecondition, match=r"pinned by another live contentd node .*a/"):
        b.pin_namespace("node-a")
    a.close()  # a's session ends: the server frees the namespace as it notices
    deadline = time.monotonic() + 10
    while True:
        try:
            b.pin_namespace("node-a")
            break
        except FailedPrecondition:
            assert time.monotonic() < deadline
            time.sleep(0.1)


def test_one_collector_at_a_time(make_node: MakeNode) -> None:
    a, b = make_node("a"), make_node("b")
    b.cluster.collector_wait = 0.5  # type: ignore[attr-defined]
    with a.cluster.collector() as ours:
        assert ours
        assert b.garbage_collect().skipped  # waited, then gave up
    assert not b.garbage_collect().skipped


def test_a_requested_collection_waits_for_the_other_nodes_and_runs(make_node: MakeNode) -> None:
    a, b = make_node("a"), make_node("b")
    loose = put(a, "ns", b"collected after a's collection ends")
    results: list[object] = []
    with a.cluster.collector():
        thread = threading.Thread(target=lambda: results.append(b.garbage_collect()))
        thread.start()
        thread.join(1.0)
        assert thread.is_alive()  # b waits while a collects
    thread.join(60)
    (result,) = results
    assert not result.skipped  # type: ignore[attr-defined]
    assert result.content == {"ns": (loose,)}  # type: ignore[attr-defined]


def test_gc_keeps_what_another_nodes_lease_and_pinned_namespace_hold(make_node: MakeNode) -> None:
    a, b = make_node("a"), make_node("b")
    a.leases("ns").create("holding")
    leased = a.content_store("ns", lease="holding")
    dgst_leased = put_store(leased, b"leased on a")
    a.namespaces.set_label("proxy-a", LABEL_GC_MANAGED_EXTERNALLY, "true")
    dgst_pinned = put(a, "proxy-a", b"pinned namespace of a")
    dgst_loose = put(a, "ns", b"nobody holds this")
    result = b.garbage_collect()
    assert result.content == {"ns": (dgst_loose,)}
    assert a.content_store("ns").info(dgst_leased).size
    assert a.content_store("proxy-a").info(dgst_pinned).size
    # the bytes stay too; the unheld blob's went (it was old enough: no grace here)
    assert dgst_loose in result.backend_blobs
    assert {dgst_leased, dgst_pinned}.isdisjoint(result.backend_blobs)


def put_store(store: object, data: bytes) -> str:
    dgst = digest_of(data)
    write_blob(
        store, f"ref-{dgst[7:19]}", io.BytesIO(data), Descriptor(digest=dgst, size=len(data))
    )  # type: ignore[arg-type]
    return dgst


def test_gc_spares_backend_blobs_younger_than_the_grace(make_node: MakeNode) -> None:
    a = make_node("a", backend_grace=3600.0)
    orphan = put_store(a.backend, b"committed to the backend, record still to come")
    result = a.garbage_collect()
    assert orphan not in result.backend_blobs
    assert a.backend.info(orphan).size


def test_dsn_password_never_shown() -> None:
    assert "s3cret" not in redact_dsn("host=/run/pg dbname=x user=u password=s3cret")
    assert "s3cret" not in redact_dsn("postgresql://u:s3cret@127.0.0.1:5/x")
    assert "password=***" in redact_dsn("postgresql://u:s3cret@127.0.0.1:5/x")
    # the passphrase of the client's TLS key is a secret too
    assert "k3ypass" not in redact_dsn("host=/run/pg sslkey=/k.pem sslpassword=k3ypass")
    assert "k3ypass" not in redact_dsn("postgresql://u@h/x?sslpassword=k3ypass&password=s3cret")


def test_unreachable_database_is_unavailable_without_the_password(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from contentd import LocalStore

    dsn = f"host={tmp_path} port=1 dbname=x user=u password=s3cret connect_timeout=2"
    with pytest.raises(Unavailable) as info:
        MetadataDB(None, LocalStore(tmp_path / "c"), dsn=dsn)
    assert "cannot connect to the metadata database" in str(info.value)
    assert "s3cret" not in str(info.value)


def test_a_live_writer_keeps_its_ref_past_the_lease(make_node: MakeNode) -> None:
    a, b = make_node("a", ref_lock_lease=4.0), make_node("b", ref_lock_lease=4.0)
    w = a.content_store("ns").writer("long")
    w.write(b"slow writer")
    time.sleep(9)  # over two leases: renewed every third of one meanwhile
    with pytest.raises(Unavailable, match="locked"):
        b.content_store("ns").writer("long")
    w.write(b", still going")
    w.commit(0, digest_of(b"slow writer, still going"))
    w.close()


def _lease(node: MetadataDB, seconds: float) -> None:
    """How long ``node`` answers from the blob records it remembers (see PostgresDB.generation)."""
    node._core.sql.record_lease = seconds  # type: ignore[attr-defined]


def test_a_node_never_answers_from_a_remembered_record_once_its_change_returned(
    make_node: MakeNode,
) -> None:
    a, b = make_node("a"), make_node("b")
    # b's lease outlasts each step below: only a's wait for it keeps b from the old records
    _lease(b, 3.0)
    on_b = b.content_store("ns")
    deleted = put(a, "ns", b"deleted on a", ROOT)
    relabelled = put(a, "ns", b"relabelled on a", ROOT)
    collected = put(a, "ns", b"collected by a's gc", ROOT)
    for dgst in (deleted, relabelled, collected):
        on_b.info(dgst)  # remembered by b from here on
        with on_b.reader_at(dgst):
            pass

    a.content_store("ns").delete(deleted)
    with pytest.raises(NotFound):
        on_b.info(deleted)
    with pytest.raises(NotFound):
        on_b.reader_at(deleted)

    info = replace(a.content_store("ns").info(relabelled), labels={**ROOT, "changed": "on a"})
    a.content_store("ns").update(info, "labels")
    assert on_b.info(relabelled).labels == {**ROOT, "changed": "on a"}

    a.content_store("ns").update(replace(on_b.info(collected), labels={}), "labels")
    assert a.garbage_collect().content == {"ns": (collected,)}
    with pytest.raises(NotFound):
        on_b.reader_at(collected)


def test_a_node_reads_remembered_records_without_the_database_within_its_lease(
    make_node: MakeNode,
) -> None:
    a, b = make_node("a"), make_node("b")
    _lease(b, 60.0)  # nothing below changes a record: no one waits for it
    dgst = put(a, "ns", b"read again and again on b")
    on_b = b.content_store("ns")
    sql = b._core.sql  # type: ignore[attr-defined]
    asked: list[str] = []
    real_query = sql.query

    def counting(statement: str, parameters: object = (), /) -> list[object]:
        asked.append(statement)
        return real_query(statement, parameters)  # type: ignore[no-any-return]

    sql.query = counting
    assert on_b.info(dgst).size == len(b"read again and again on b")
    assert len(asked) == 1  # the record, once
    for _ in range(50):
        with on_b.reader_at(dgst) as ra:
            assert ra.read_at(0, 4) == b"read"
        assert on_b.info(dgst).size
    # a commit adds a record: what b remembers stays good
    put(a, "ns", b"another blob")
    assert on_b.info(dgst).size
    assert len(asked) == 1
