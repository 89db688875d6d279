"""One sync per small commit: the bytes ride in the record's transaction and a settler
makes the blob file durable after (contentd.metadata.settle)."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from contentd import ContentError, LocalStore, NotFound, read_blob
from contentd.content.digest import digest_of
from contentd.content.labels import LABEL_GC_ROOT
from contentd.local.check import scan
from contentd.metadata import MetadataDB
from contentd.metadata.settle import INLINE_LIMIT

pytestmark = pytest.mark.sqlite_only  # the SQLite engine only

NS = "settle"


@pytest.fixture
def db(tmp_path: Path) -> Iterator[MetadataDB]:
    db = MetadataDB(tmp_path / "meta.db", LocalStore(tmp_path / "content"))
    try:
        yield db
    finally:
        db.close()


def _commit(
    db: MetadataDB, data: bytes, ref: str = "r", ns: str = NS, labels: dict[str, str] | None = None
) -> str:
    cs = db.content_store(ns)
    w = cs.writer(ref)
    w.write(data)
    w.commit(len(data), digest_of(data), labels)
    return digest_of(data)


def _unsettled(db: MetadataDB) -> list[str]:
    with db._sql.read() as conn:
        return [row[0] for row in conn.execute("SELECT digest FROM unsettled_blobs")]


def _path(db: MetadataDB, digest: str) -> Path:
    root = Path(db.backend.root)  # type: ignore[attr-defined]
    return root / "blobs" / "sha256" / digest.partition(":")[2]


def _pause_settler(db: MetadataDB) -> None:
    settler = db._settler
    assert settler is not None
    settler.stop()


def test_a_small_commit_syncs_nothing_itself(
    db: MetadataDB, monkeypatch: pytest.MonkeyPatch
) -> None:
    _pause_settler(db)
    _commit(db, b"the first blob creates (and syncs) blobs/sha256", "first")
    me = threading.get_ident()
    calls: list[int] = []
    real_fsync = os.fsync

    def counting(fd: int) -> None:
        if threading.get_ident() == me:
            calls.append(fd)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", counting)
    digest = _commit(db, b"x" * 1024)
    # the WAL's sync is SQLite's own (not os.fsync): no blob file, no directory
    assert calls == []
    assert digest in _unsettled(db)
    assert _path(db, digest).read_bytes() == b"x" * 1024
    assert db.settle() == 2
    assert _unsettled(db) == []
    assert calls  # the settle synced
    assert read_blob(db.content_store(NS), digest) == b"x" * 1024


def test_the_settler_thread_settles_by_itself(db: MetadataDB) -> None:
    digest = _commit(db, b"settle me")
    for _ in range(100):
        if not _unsettled(db):
            break
        threading.Event().wait(0.05)
    assert _unsettled(db) == []
    assert _path(db, digest).read_bytes() == b"settle me"


def test_a_blob_over_the_limit_commits_the_usual_way(db: MetadataDB) -> None:
    data = os.urandom(INLINE_LIMIT + 1)
    digest = _commit(db, data)
    assert _unsettled(db) == []
    assert read_blob(db.content_store(NS), digest) == data


def test_a_blob_at_the_limit_and_an_empty_one_ride_along(db: MetadataDB) -> None:
    _pause_settler(db)
    data = os.urandom(INLINE_LIMIT)
    digests = {_commit(db, data, "a"), _commit(db, b"", "b")}
    assert set(_unsettled(db)) == digests
    db.settle()
    assert read_blob(db.content_store(NS), digest_of(data)) == data
    assert read_blob(db.content_store(NS), digest_of(b"")) == b""


def test_reads_before_the_file_is_there_are_served_from_the_row(db: MetadataDB) -> None:
    _pause_settler(db)
    digest = _commit(db, b"in the window")
    path = _path(db, digest)
    path.unlink()  # as between the record and the link, or after a link that failed
    cs = db.content_store(NS)
    assert read_blob(cs, digest) == b"in the window"
    with cs.reader_at(digest) as ra:
        assert ra.size == 13
        assert ra.read_at(3, 3) == b"the"
        assert ra.read_at(13, 1) == b""
    assert db.settle() == 1
    assert path.read_bytes() == b"in the window"  # written from the row
    assert read_blob(cs, digest) == b"in the window"


def test_a_damaged_unsettled_file_is_rewritten(db: MetadataDB) -> None:
    _pause_settler(db)
    digest = _commit(db, b"to be damaged")
    path = _path(db, digest)
    os.chmod(path, 0o644)
    path.write_bytes(b"to be DAMAGED")
    db.settle()
    assert path.read_bytes() == b"to be damaged"
    assert oct(path.stat().st_mode & 0o777) == oct(0o444)
    assert list(scan(str(path.parents[2]))) == []  # no temporary name left in blobs/
    assert read_blob(db.content_store(NS), digest) == b"to be damaged"


def test_reopening_settles_what_was_left(tmp_path: Path) -> None:
    db = MetadataDB(tmp_path / "meta.db", LocalStore(tmp_path / "content"))
    _pause_settler(db)
    db._settler = None  # as if the process died: close settles nothing
    digest = _commit(db, b"left over")
    path = _path(db, digest)
    os.chmod(path, 0o644)
    path.write_bytes(b"")  # a power loss may leave the unsynced file empty
    db.close()
    with MetadataDB(tmp_path / "meta.db", LocalStore(tmp_path / "content")) as again:
        assert _unsettled(again) == []
        assert path.read_bytes() == b"left over"
        assert read_blob(again.content_store(NS), digest) == b"left over"


def test_closing_settles_everything(tmp_path: Path) -> None:
    db = MetadataDB(tmp_path / "meta.db", LocalStore(tmp_path / "content"))
    _pause_settler(db)
    _commit(db, b"one")
    _commit(db, b"two", "r2")
    db.close()
    check = MetadataDB(tmp_path / "meta.db", LocalStore(tmp_path / "content"))
    try:
        assert _unsettled(check) == []
    finally:
        check.close()


def test_gc_of_an_unsettled_blob_does_not_bring_it_back(db: MetadataDB) -> None:
    _pause_settler(db)
    digest = _commit(db, b"collect me")
    cs = db.content_store(NS)
    cs.delete(digest)
    assert _unsettled(db) == [digest]  # kept while the file is there
    result = db.garbage_collect()
    assert digest in result.backend_blobs
    assert _unsettled(db) == []
    assert db.settle() == 0
    assert not _path(db, digest).exists()
    with pytest.raises(NotFound):
        cs.info(digest)


def test_a_recorded_unsettled_blob_survives_gc(db: MetadataDB) -> None:
    _pause_settler(db)
    digest = _commit(db, b"keep me", labels={LABEL_GC_ROOT: "1"})
    cs = db.content_store(NS)
    cs.delete(_commit(db, b"not me", "r2"))
    db.garbage_collect()
    assert digest in _unsettled(db)
    db.settle()
    assert _path(db, digest).read_bytes() == b"keep me"


def test_the_same_bytes_in_two_namespaces(db: MetadataDB) -> None:
    _pause_settler(db)
    digest = _commit(db, b"twice", ns="a")
    assert _commit(db, b"twice", ns="b") == digest  # the file was there: still recorded
    assert _unsettled(db) == [digest]
    for ns in ("a", "b"):
        assert read_blob(db.content_store(ns), digest) == b"twice"
    db.settle()
    assert _unsettled(db) == []


def test_a_mismatch_fails_as_before_and_the_ingest_resumes(db: MetadataDB) -> None:
    cs = db.content_store(NS)
    w = cs.writer("bad")
    w.write(b"abc")
    with pytest.raises(ContentError) as wrong_digest:
        w.commit(3, digest_of(b"abd"))
    assert "unexpected commit digest" in str(wrong_digest.value)
    w = cs.writer("bad")
    assert w.status().offset == 3
    with pytest.raises(ContentError) as wrong_size:
        w.commit(4, digest_of(b"abc"))
    assert "failed size validation" in str(wrong_size.value)
    w = cs.writer("bad")
    assert w.status().offset == 3
    w.commit(3, digest_of(b"abc"))
    assert _unsettled(db) in ([], [digest_of(b"abc")])
    assert read_blob(cs, digest_of(b"abc")) == b"abc"
