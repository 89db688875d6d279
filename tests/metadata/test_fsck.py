"""fsck over a metadata database and its local store; quarantine and repair by ingest."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from contentd import DataLoss, NotFound, read_blob
from contentd.content.labels import LABEL_GC_ROOT
from contentd.local import LocalStore
from contentd.metadata import TOPIC_CONTENT_CORRUPT, FsckOptions, MetadataDB
from tests.metadata.conftest import FakeClock, MakeDB, put

ROOT = {LABEL_GC_ROOT: "x"}


def _blob_path(db: MetadataDB, digest: str) -> Path:
    backend = db.backend
    assert isinstance(backend, LocalStore)
    return Path(backend.root, "blobs", *digest.split(":"))


def _corrupt(path: Path) -> None:
    os.chmod(path, 0o644)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    os.chmod(path, 0o444)


def _kinds(report: object) -> list[str]:
    return [f.kind for f in report.findings]  # type: ignore[attr-defined]


def test_a_healthy_store_is_clean_and_every_blob_is_hashed(db: MetadataDB) -> None:
    for i in range(5):
        put(db.content_store("a"), os.urandom(1000 + i), labels=ROOT)
    put(db.content_store("b"), b"shared bytes", labels=ROOT)
    put(db.content_store("c"), b"shared bytes", labels=ROOT)
    report = db.fsck(FsckOptions(jobs=3))
    assert report.clean and report.findings == []
    assert (report.blobs, report.records) == (6, 7)
    assert report.bytes == sum(1000 + i for i in range(5)) + len(b"shared bytes")


def test_corrupt_blob_is_found_quarantined_and_repaired_by_an_ingest(db: MetadataDB) -> None:
    data = os.urandom(70_000)
    digest = put(db.content_store("a"), data, labels=ROOT)
    put(db.content_store("b"), data, labels=ROOT)
    path = _blob_path(db, digest)
    _corrupt(path)
    sub = db.events.subscribe(f'topic=="{TOPIC_CONTENT_CORRUPT}"')

    report = db.fsck()  # read-only: found, nothing changed
    assert _kinds(report) == ["corrupt"] and not report.clean
    assert "bytes hash to sha256:" in report.findings[0].detail
    assert path.exists() and db.quarantined() == []

    report = db.fsck(FsckOptions(repair=True))
    assert report.clean and report.findings[0].repair.startswith("quarantined, bytes moved to ")
    assert not path.exists()
    moved = report.findings[0].repair.removeprefix("quarantined, bytes moved to ")
    assert Path(moved).is_file() and "/quarantine/sha256/" in moved  # kept, never deleted
    assert [q.digest for q in db.quarantined()] == [digest]
    namespaces = sorted(sub.get(timeout=5).namespace for _ in range(2))
    assert namespaces == ["a", "b"]
    sub.close()
    for ns in ("a", "b"):
        cs = db.content_store(ns)
        with pytest.raises(DataLoss, match="quarantined"):
            cs.reader_at(digest)
        with pytest.raises(DataLoss):
            cs.info(digest)
        assert [i.digest for i in cs.walk()] == [digest]  # the record and labels stay

    # still not clean: the data is lost until someone brings the bytes again
    report = db.fsck()
    assert _kinds(report) == ["quarantined", "quarantined"] and not report.clean

    # an ingest expecting the digest is not told it exists, and its commit repairs it
    put(db.content_store("a"), data, ref="again")
    for ns in ("a", "b"):
        assert read_blob(db.content_store(ns), digest) == data
    assert db.quarantined() == []
    assert db.fsck().clean


def test_missing_blob_is_marked_so_reads_fail_with_data_loss(db: MetadataDB) -> None:
    digest = put(db.content_store("a"), b"will vanish", labels=ROOT)
    _blob_path(db, digest).unlink()
    report = db.fsck(FsckOptions(repair=True))
    assert _kinds(report) == ["missing"] and report.findings[0].repair == "quarantined"
    with pytest.raises(DataLoss):
        read_blob(db.content_store("a"), digest)
    put(db.content_store("z"), b"will vanish")  # another namespace brings the bytes
    assert read_blob(db.content_store("a"), digest) == b"will vanish"


def test_orphans_and_dead_ingests_go_through_gc(make_db: MakeDB, clock: FakeClock) -> None:
    db = make_db(clock=clock)
    backend = db.backend
    orphan = put(backend, b"no record knows me")  # written behind the metadata's back
    w = backend.writer("stray-ingest")
    w.write(b"x" * 10)
    w.close()
    cs = db.content_store("a")
    w2 = cs.writer("will-expire")
    w2.write(b"abc")
    w2.close()
    kept = put(cs, b"rooted", labels=ROOT)
    clock.advance(hours=25)  # past the unleased ingest expiry
    report = db.fsck()
    assert sorted(_kinds(report)) == ["expired-ingest", "orphan-blob", "orphan-ingest"]
    assert {f.digest for f in report.findings} >= {orphan}
    # the store was just opened (as after a crash): GC removes all three at its next
    # collection, so they are reported but the store counts as clean
    assert report.clean and not any(f.problem for f in report.findings)
    report = db.fsck(FsckOptions(repair=True))
    assert report.clean, report.findings
    assert all(f.repair == "removed by garbage collection" for f in report.findings)
    with pytest.raises(NotFound):
        backend.info(orphan)
    assert backend.list_statuses() == []
    assert read_blob(cs, kept) == b"rooted"
    assert db.fsck().clean
    # once a collection ran, bytes written behind the metadata's back are a problem
    assert not db.dirty
    put(backend, b"another one nobody records")
    report = db.fsck()
    assert _kinds(report) == ["orphan-blob"] and not report.clean


def test_ingest_record_without_data_is_aborted(db: MetadataDB) -> None:
    cs = db.content_store("a")
    w = cs.writer("lost")
    w.write(b"x" * (2 << 20))  # big enough to have its directory on disk
    w.close()
    backend = db.backend
    assert isinstance(backend, LocalStore)
    backend.abort("a/1/lost")  # the bytes went behind the metadata's back
    report = db.fsck(FsckOptions(repair=True))
    assert _kinds(report) == ["ingest-without-data"] and report.clean
    with pytest.raises(NotFound):
        cs.status("lost")


def test_modes_and_strays(db: MetadataDB) -> None:
    digest = put(db.content_store("a"), b"read only", labels=ROOT)
    path = _blob_path(db, digest)
    os.chmod(path, 0o664)
    backend = db.backend
    assert isinstance(backend, LocalStore)
    (Path(backend.root) / "notes.txt").write_text("mine")
    (Path(backend.root) / "blobs" / "sha256" / "not-a-digest").write_text("?")
    report = db.fsck(FsckOptions(repair=True))
    assert sorted(_kinds(report)) == ["mode", "stray", "stray"]
    assert not report.clean  # strays are reported and left alone
    assert stat.S_IMODE(path.stat().st_mode) == 0o444
    assert (Path(backend.root) / "notes.txt").exists()


def test_a_mode_repair_never_follows_a_symlink(tmp_path: Path) -> None:
    # the blob's name became a symlink between the scan and the repair: the file it
    # points at (outside the root) keeps its mode
    from contentd.local.check import fix_mode

    outside = tmp_path / "outside"
    outside.write_text("not a blob")
    os.chmod(outside, 0o666)
    link = tmp_path / "blob"
    link.symlink_to(outside)
    with pytest.raises(OSError):
        fix_mode(str(link))
    assert stat.S_IMODE(outside.stat().st_mode) == 0o666


def test_namespace_scope(db: MetadataDB) -> None:
    a = put(db.content_store("a"), b"in a", labels=ROOT)
    put(db.content_store("b"), b"in b", labels=ROOT)
    _corrupt(_blob_path(db, a))
    put(db.backend, b"orphan")
    assert _kinds(db.fsck(FsckOptions(namespace="b"))) == []
    report = db.fsck(FsckOptions(namespace="a"))
    assert _kinds(report) == ["corrupt"] and report.blobs == 1


def test_writers_never_wait_for_fsck(db: MetadataDB, monkeypatch: pytest.MonkeyPatch) -> None:
    """fsck stopped in the middle of hashing a blob: commits, deletes and GC go on."""
    import threading

    from contentd.metadata import health

    put(db.content_store("a"), os.urandom(1 << 20), labels=ROOT)
    hashing, release = threading.Event(), threading.Event()

    def take(self: health.RateLimiter, n: int) -> bool:
        hashing.set()
        return release.wait(30)

    monkeypatch.setattr(health.RateLimiter, "take", take)
    result: list[object] = []
    t = threading.Thread(target=lambda: result.append(db.fsck(FsckOptions(bytes_per_second=1))))
    t.start()
    try:
        assert hashing.wait(10)
        digests = [put(db.content_store("a"), os.urandom(100), labels=ROOT) for _ in range(5)]
        db.content_store("a").delete(digests[0])
        db.garbage_collect()
        assert t.is_alive()  # still stopped in the middle of its hashing
    finally:
        release.set()
        t.join(30)
    assert result and result[0].clean  # type: ignore[attr-defined]


def test_the_scrubber_goes_oldest_verified_first_and_records_it(
    make_db: MakeDB, clock: FakeClock
) -> None:
    from contentd.metadata import ScrubConfig, health

    db = make_db(clock=clock)
    a, b, c = (put(db.content_store("a"), bytes([i]) * 100, labels=ROOT) for i in range(3))
    core = db._core
    now = core.now_ns()
    health.mark_verified(core, [a], now - 3 * 3600 * 10**9)
    health.mark_verified(core, [b], now - 2 * 3600 * 10**9)
    health.mark_verified(core, [c], now)
    scrubber = db.scrubber(ScrubConfig(interval=3600.0, bytes_per_second=0))
    assert scrubber._due() == [a, b]  # c is not due; a is the most overdue
    assert scrubber.status().verified == 1
    never = put(db.content_store("b"), b"never verified", labels=ROOT)
    assert scrubber._due() == [never, a, b]
    for digest in scrubber._due():
        verdict = scrubber.scrub_one(digest)
        assert verdict is not None and verdict.ok
    assert scrubber._due() == []
    status = scrubber.status()
    assert (status.blobs, status.verified, status.scrubbed_blobs) == (4, 4, 3)
    _corrupt(_blob_path(db, c))
    clock.advance(hours=2)
    assert c in scrubber._due()
    verdict = scrubber.scrub_one(c)
    assert verdict is not None and not verdict.ok
    assert [q.digest for q in db.quarantined()] == [c]
    assert c not in scrubber._due()  # quarantined blobs wait for a repair, not a re-check


def test_a_quarantine_over_a_proxy_backend_is_repaired_by_an_ingest(tmp_path: Path) -> None:
    """A proxy cannot move the remote's bytes aside: the quarantine is a mark until an
    ingest brings bytes that hash to the digest, whose commit then replaces the remote
    blob (deleted, stored again) and lifts it."""
    from contentd import AlreadyExists
    from contentd.proxy import ProxyStore
    from tests.api.servers import ContentdServer

    with ContentdServer() as remote:
        backend = ProxyStore(remote.address, namespace="backend")
        db = MetadataDB(tmp_path / "meta.db", backend)
        try:
            data = os.urandom(70_000)
            digest = put(db.content_store("a"), data, labels=ROOT)
            _corrupt(Path(remote.dir, "content", "blobs", *digest.split(":")))
            report = db.fsck(FsckOptions(repair=True))
            assert _kinds(report) == ["corrupt"] and report.findings[0].repair == "quarantined"
            with pytest.raises(DataLoss):
                read_blob(db.content_store("a"), digest)

            put(db.content_store("a"), data, ref="repair")  # not AlreadyExists: a repair
            assert read_blob(backend, digest) == data
            assert read_blob(db.content_store("a"), digest) == data
            assert db.quarantined() == [] and db.fsck().clean
            with pytest.raises(AlreadyExists):
                db.content_store("a").writer("again", expected=digest)
        finally:
            db.close()
            backend.close()
