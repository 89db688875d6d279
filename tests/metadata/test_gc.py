"""Garbage collection (spec §4.8; checklist 35, 41-44, 46).

Scenarios after containerd's metadata/gc_test.go and content_test.go: roots,
references, lease expiry, flat leases, ingest expectations, dry runs,
backend cleanup, the externally managed namespace, and commit/GC races.
"""

from __future__ import annotations

import io
import threading
from datetime import timedelta

import pytest

from contentd import Descriptor, NotFound, read_blob, write_blob
from contentd.content.digest import digest_of
from contentd.content.gotime import format_text
from contentd.content.labels import (
    LABEL_GC_EXPIRE,
    LABEL_GC_FLAT,
    LABEL_GC_REF_CONTENT,
    LABEL_GC_ROOT,
)
from contentd.content.types import Info, utcnow
from contentd.metadata import LABEL_GC_MANAGED_EXTERNALLY, MetadataDB, Resource
from tests.metadata.conftest import FakeClock, MakeDB, new_backend, put

ROOT = {LABEL_GC_ROOT: "always"}


def _has(db: MetadataDB, ns: str, dgst: str) -> bool:
    try:
        db.content_store(ns).info(dgst)
    except NotFound:
        return False
    return True


def _in_backend(db: MetadataDB, dgst: str) -> bool:
    try:
        db.backend.info(dgst)
    except NotFound:
        return False
    return True


def test_unrooted_content_is_collected_rooted_kept(db: MetadataDB) -> None:
    cs = db.content_store("ns")
    kept = put(cs, b"rooted", labels=ROOT)
    gone = put(cs, b"unrooted")
    result = db.garbage_collect()
    assert result.content == {"ns": (gone,)}
    assert result.backend_blobs == (gone,)
    assert result.bytes_freed == len(b"unrooted")
    assert result.backend_cleaned and result.backend_error is None
    assert result.duration >= 0
    assert _has(db, "ns", kept) and _in_backend(db, kept)
    assert not _has(db, "ns", gone) and not _in_backend(db, gone)


def test_references_are_followed_within_the_namespace(db: MetadataDB) -> None:
    ns1, ns2 = db.content_store("ns1"), db.content_store("ns2")
    leaf = put(ns1, b"leaf")
    mid = put(ns1, b"mid", labels={f"{LABEL_GC_REF_CONTENT}/anything": leaf})
    top = put(ns1, b"top", labels={**ROOT, f"{LABEL_GC_REF_CONTENT}.m.0": mid})
    ignored = put(ns1, b"ignored")
    put(ns1, b"referrer", labels={**ROOT, f"{LABEL_GC_REF_CONTENT}X": ignored})
    # the same digest in another namespace is not kept by ns1's reference
    other = put(ns2, b"leaf")
    bare = put(ns1, b"bare", labels={**ROOT, LABEL_GC_REF_CONTENT: put(ns1, b"bare child")})
    result = db.garbage_collect()
    assert result.content == {"ns1": (ignored,), "ns2": (other,)}
    for dgst in (leaf, mid, top, bare, digest_of(b"bare child")):
        assert _has(db, "ns1", dgst)
    assert _in_backend(db, leaf)  # ns1 still records it
    assert not _in_backend(db, ignored)


def test_leases_keep_content_until_deleted(db: MetadataDB) -> None:
    leases = db.leases("ns")
    leases.create("L")
    dgst = put(db.content_store("ns", lease="L"), b"leased")
    db.garbage_collect()
    assert _has(db, "ns", dgst)
    leases.delete("L")
    result = db.garbage_collect()
    assert result.content == {"ns": (dgst,)}
    assert not _in_backend(db, dgst)


def test_expired_lease_protects_nothing_and_is_removed(
    clocked_db: MetadataDB, clock: FakeClock
) -> None:
    db = clocked_db
    leases = db.leases("ns")
    soon = format_text(clock.now + timedelta(hours=1))
    leases.create("expiring", {LABEL_GC_EXPIRE: soon})
    leases.create("garbled", {LABEL_GC_EXPIRE: "next tuesday"})
    kept = put(db.content_store("ns", "garbled"), b"garbled lease")
    dgst = put(db.content_store("ns", "expiring"), b"expiring lease")
    db.garbage_collect()
    assert _has(db, "ns", dgst)
    clock.advance(hours=1)  # exactly at the expiry time: still valid
    assert db.garbage_collect().leases == {}
    clock.advance(seconds=1)
    result = db.garbage_collect()
    assert result.leases == {"ns": ("expiring",)}
    assert result.content == {"ns": (dgst,)}
    assert [lease.id for lease in leases.list()] == ["garbled"]
    assert _has(db, "ns", kept)


def test_flat_lease_keeps_content_but_not_its_references(db: MetadataDB) -> None:
    leases = db.leases("ns")
    leases.create("flat", {LABEL_GC_FLAT: "1"})
    cs = db.content_store("ns")
    child = put(cs, b"child")
    parent = put(cs, b"parent", labels={f"{LABEL_GC_REF_CONTENT}.l.0": child})
    leases.add_resource("flat", Resource(parent, "content"))
    result = db.garbage_collect()
    assert result.content == {"ns": (child,)}
    assert _has(db, "ns", parent)

    # reachable both flat and through a normal lease: the references count
    child = put(cs, b"child")
    leases.create("normal")
    leases.add_resource("normal", Resource(parent, "content"))
    assert db.garbage_collect().content == {}
    assert _has(db, "ns", child)


def test_leased_ingest_keeps_its_expected_content(db: MetadataDB) -> None:
    data = b"shared bytes" * 50
    dgst = put(db.content_store("ns1"), data)
    db.leases("ns2").create("L")
    ns2 = db.content_store("ns2", lease="L")
    w = ns2.writer("share", total=len(data), expected=dgst)  # shared: no backend writer
    assert w.status().offset == len(data)
    db.content_store("ns1").delete(dgst)
    result = db.garbage_collect()
    assert result.content == {}
    assert result.backend_blobs == ()  # the ingest's expected digest keeps the bytes
    w.commit(len(data), dgst)
    assert read_blob(ns2, dgst) == data


def test_ingest_expected_keeps_the_namespace_record(db: MetadataDB) -> None:
    data = b"expected by an ingest"
    dgst = put(db.content_store("ns1"), data, labels=ROOT)
    ns2 = db.content_store("ns2")
    w = ns2.writer("pending", total=len(data), expected=dgst)  # shared, expires in 24 h
    w.close()
    put(ns2, data, ref="other")  # ns2 records it too, with no root and no lease
    assert db.garbage_collect().content == {}
    assert _has(db, "ns2", dgst)
    ns2.abort("pending")
    assert db.garbage_collect().content == {"ns2": (dgst,)}


def test_dry_run_reports_and_touches_nothing(db: MetadataDB) -> None:
    cs = db.content_store("ns")
    kept = put(cs, b"kept", labels=ROOT)
    gone = put(cs, b"gone")
    db.leases("ns").create("old", {LABEL_GC_EXPIRE: "2000-01-01T00:00:00Z"})
    w = db.backend.writer("stray-backend-ingest")
    w.write(b"??")
    w.close()
    dry = db.garbage_collect(dry_run=True)
    assert dry.dry_run
    assert dry.content == {"ns": (gone,)}
    assert dry.leases == {"ns": ("old",)}
    assert dry.backend_blobs == (gone,)
    assert dry.backend_ingests == ("stray-backend-ingest",)
    assert _has(db, "ns", gone) and _in_backend(db, gone)
    assert db.backend.status("stray-backend-ingest").offset == 2
    assert db.dirty
    real = db.garbage_collect()
    assert not real.dry_run
    assert (real.content, real.leases, real.backend_blobs, real.backend_ingests) == (
        dry.content,
        dry.leases,
        dry.backend_blobs,
        dry.backend_ingests,
    )
    assert real.bytes_freed == dry.bytes_freed == len(b"gone")
    assert _has(db, "ns", kept)
    assert not db.dirty


@pytest.mark.sqlite_only  # shared by nodes, PostgreSQL's backend is cleaned at every collection
def test_backend_cleanup_runs_only_when_dirty(db: MetadataDB) -> None:
    cs = db.content_store("ns")
    put(cs, b"anchor", labels=ROOT)
    db.garbage_collect()  # first collection: dirty since open
    orphan = put(db.backend, b"written to the backend directly")
    result = db.garbage_collect()
    assert not result.backend_cleaned
    assert _in_backend(db, orphan)  # nothing was deleted since the last GC
    dgst = put(cs, b"to delete", labels=ROOT)
    cs.delete(dgst)
    assert db.dirty
    result = db.garbage_collect()
    assert result.backend_cleaned
    assert set(result.backend_blobs) == {orphan, dgst}
    assert not _in_backend(db, orphan)


def test_first_gc_after_open_removes_orphans(make_db: MakeDB) -> None:
    db = make_db()
    cs = db.content_store("ns")
    kept = put(cs, b"kept", labels=ROOT)
    db.garbage_collect()
    orphan = put(db.backend, b"orphan from a crash")
    w = db.backend.writer("ns/1/crashed")
    w.write(b"x")
    w.close()
    db.close()
    db = make_db()
    assert db.dirty
    result = db.garbage_collect()
    assert result.backend_blobs == (orphan,)
    assert result.backend_ingests == ("ns/1/crashed",)
    assert _in_backend(db, kept)


def test_unknown_backend_ingests_are_aborted_known_kept(db: MetadataDB) -> None:
    cs = db.content_store("ns")
    w = cs.writer("mine")
    w.write(b"resumable")
    w.close()
    stray = db.backend.writer("ns/1/not-mine")
    stray.write(b"x")
    stray.close()
    result = db.garbage_collect()
    assert result.backend_ingests == ("ns/1/not-mine",)
    assert cs.status("mine").offset == len(b"resumable")


def test_backend_without_walk_status_refs_uses_list_statuses(make_db: MakeDB, tmp_path) -> None:  # type: ignore[no-untyped-def]
    class NoRefWalker:
        def __init__(self, inner: object) -> None:
            self._inner = inner

        def __getattr__(self, name: str) -> object:
            if name == "walk_status_refs":
                raise AttributeError(name)
            return getattr(self._inner, name)

    db = make_db(backend=NoRefWalker(new_backend(tmp_path / "content")))
    stray = db.backend.writer("stray")
    stray.write(b"x")
    stray.close()
    assert db.garbage_collect().backend_ingests == ("stray",)


def test_content_deleted_in_one_namespace_survives_in_another(db: MetadataDB) -> None:
    data = b"in two namespaces"
    dgst = put(db.content_store("ns1"), data, labels=ROOT)
    db.leases("ns2").create("L")
    put(db.content_store("ns2", lease="L"), data)
    db.content_store("ns1").delete(dgst)
    result = db.garbage_collect()
    assert result.backend_blobs == ()
    assert read_blob(db.content_store("ns2"), dgst) == data


def test_managed_externally_namespace_is_never_swept(db: MetadataDB) -> None:
    db.namespaces.set_label("pinned", LABEL_GC_MANAGED_EXTERNALLY, "true")
    pinned = db.content_store("pinned")
    child = put(db.content_store("pinned"), b"child")
    dgst = put(pinned, b"no lease, no root", labels={f"{LABEL_GC_REF_CONTENT}.0": child})
    also = put(db.content_store("other"), b"no lease, no root")
    assert also == dgst
    result = db.garbage_collect()
    assert result.content == {"other": (dgst,)}
    assert result.backend_blobs == ()
    assert read_blob(pinned, dgst) == b"no lease, no root"
    # containerd manages it: an explicit delete still works, and then GC frees the bytes
    pinned.delete(dgst)
    pinned.delete(child)
    assert set(db.garbage_collect().backend_blobs) == {dgst, child}
    # a value other than "true" pins nothing
    db.namespaces.set_label("loose", LABEL_GC_MANAGED_EXTERNALLY, "yes")
    loose = put(db.content_store("loose"), b"loose")
    assert db.garbage_collect().content == {"loose": (loose,)}


def test_grace_window_spares_young_backend_blobs(make_db: MakeDB) -> None:
    db = make_db(backend_grace=3600.0)
    orphan = put(db.backend, b"young orphan")
    assert db.garbage_collect().backend_blobs == ()
    assert _in_backend(db, orphan)
    db.close()
    db = make_db(name="meta.db")  # same files, no grace
    assert db.garbage_collect().backend_blobs == (orphan,)


def test_prune_references_then_sync_lease_delete_collects(db: MetadataDB) -> None:
    """What ``ctr content prune references`` does, checklist 46."""
    cs = db.content_store("default")
    dgst = put(cs, b"ingested with ctr content ingest")
    leases = db.leases("default")
    leases.create("prune", {LABEL_GC_EXPIRE: format_text(utcnow() + timedelta(hours=1))})
    leases.delete("prune", sync=True)
    assert not _has(db, "default", dgst)
    assert not _in_backend(db, dgst)


def test_update_labels_change_reachability(db: MetadataDB) -> None:
    cs = db.content_store("ns")
    dgst = put(cs, b"maybe root", labels=ROOT)
    db.garbage_collect()
    assert _has(db, "ns", dgst)
    cs.update(Info(digest=dgst, labels={}), f"labels.{LABEL_GC_ROOT}")
    assert db.garbage_collect().content == {"ns": (dgst,)}


class _SlowCommitBackend:
    """A backend whose commits pause after the bytes land, widening the
    window between the backend commit and the metadata record."""

    def __init__(self, inner: object, pause: threading.Event) -> None:
        self._inner = inner
        self._pause = pause

    def __getattr__(self, name: str) -> object:
        return getattr(self._inner, name)

    def writer(self, ref: str, total: int = 0, expected: str | None = None) -> object:
        inner = self._inner.writer(ref, total=total, expected=expected)  # type: ignore[attr-defined]
        pause = self._pause

        class W:
            def __getattr__(self, name: str) -> object:
                return getattr(inner, name)

            def commit(self, *args: object, **kw: object) -> None:
                try:
                    inner.commit(*args, **kw)
                finally:
                    pause.wait(0.01)

        return W()


def test_gc_never_deletes_a_blob_whose_commit_is_in_flight(make_db: MakeDB, tmp_path) -> None:  # type: ignore[no-untyped-def]
    never = threading.Event()
    db = make_db(backend=_SlowCommitBackend(new_backend(tmp_path / "content"), never))
    stop = threading.Event()
    swept: list[str] = []
    errors: list[BaseException] = []

    def collector() -> None:
        try:
            while not stop.is_set():
                swept.extend(db.garbage_collect().backend_blobs)
                db.content_store("gc").delete(put(db.content_store("gc"), b"keep it dirty"))
        except BaseException as err:  # pragma: no cover - reported below
            errors.append(err)

    def committer(i: int) -> None:
        try:
            cs = db.content_store(f"ns{i % 2}")
            for j in range(12):
                data = f"blob {i}/{j}".encode()
                write_blob(cs, f"r{i}-{j}", io.BytesIO(data), Descriptor(), ROOT)
        except BaseException as err:  # pragma: no cover - reported below
            errors.append(err)

    gc_thread = threading.Thread(target=collector)
    gc_thread.start()
    workers = [threading.Thread(target=committer, args=(i,)) for i in range(4)]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    stop.set()
    gc_thread.join()
    assert not errors, errors
    committed = {digest_of(f"blob {i}/{j}".encode()) for i in range(4) for j in range(12)}
    assert not committed & set(swept)
    for i in range(4):
        cs = db.content_store(f"ns{i % 2}")
        for j in range(12):
            data = f"blob {i}/{j}".encode()
            assert read_blob(cs, digest_of(data)) == data
    # and every record in every namespace has its bytes
    for ns in db.namespaces.list():
        for info in db.content_store(ns).walk():
            assert _in_backend(db, info.digest)


@pytest.mark.parametrize("policy", ["shared", "isolated"])
def test_gc_with_walk_in_progress(make_db: MakeDB, policy: str) -> None:
    """A walk holds no transaction between items, so GC and writes proceed meanwhile."""
    db = make_db(policy)
    cs = db.content_store("ns")
    digests = [put(cs, f"item {i}".encode(), labels=ROOT) for i in range(5)]
    seen = []
    for info in cs.walk():
        seen.append(info.digest)
        db.garbage_collect()
        cs.update(Info(digest=info.digest, labels={**ROOT, "seen": "1"}))
    assert seen == sorted(digests)
