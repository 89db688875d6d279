"""A blob this node commits lands in its read cache as it was written (no GET back)."""

from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path

import pytest

from contentd import AlreadyExists, DigestMismatch, NotFound, SizeMismatch, read_blob
from contentd.content.digest import digest_of
from contentd.s3 import S3Store
from contentd.s3.writer import S3Writer
from tests.s3.conftest import PART, StoreFactory


def _cached(store: S3Store) -> set[str]:
    assert store.cache is not None
    root = Path(store.cache.root) / "sha256"
    return {f"sha256:{p.name}" for p in root.iterdir()} if root.exists() else set()


def _staged(store: S3Store) -> list[str]:
    assert store.cache is not None
    return os.listdir(Path(store.cache.root) / "tmp")


def _read_locally(store: S3Store, digest: str, data: bytes) -> None:
    """The whole blob read back with no S3 request at all."""
    stats = (store.stats.gets, store.stats.ranged_gets, store.stats.heads)
    assert read_blob(store, digest) == data
    assert (store.stats.gets, store.stats.ranged_gets, store.stats.heads) == stats


@pytest.mark.parametrize(
    ("size", "known"),
    [(100_000, False), (2 * PART + 1234, True), (PART + 10, False), (2 * PART, True)],
    ids=["put", "multipart-at-key", "multipart-staged", "whole-parts"],
)
def test_a_committed_blob_is_read_without_a_get(
    make_store: StoreFactory, size: int, known: bool
) -> None:
    store = make_store()
    data = os.urandom(size)
    dgst = digest_of(data)
    with store.writer("w", total=size, expected=dgst if known else None) as w:
        for i in range(0, size, 1 << 20):  # as a Write stream sends it
            w.write(data[i : i + (1 << 20)])
        w.commit(size, dgst)
    assert store.cache is not None
    assert (store.cache.stats.writes, store.cache.stats.write_bytes) == (1, size)
    _read_locally(store, dgst, data)
    assert store.cache.stats.fills == 0 and store.cache.stats.hits == 1
    assert store.holds(dgst, 0, size)  # verified: reads may run inline
    assert _staged(store) == []
    # a restart hashes the file again on its first open, and it passes
    again = make_store()
    _read_locally(again, dgst, data)
    assert again.cache is not None and again.cache.stats.corrupt == 0


def test_total_unknown_is_kept_too(make_store: StoreFactory) -> None:
    store = make_store()
    data = os.urandom(PART + 77)
    with store.writer("w") as w:
        w.write(data)
        w.commit()
    _read_locally(store, digest_of(data), data)


def test_an_aborted_ingest_leaves_nothing(make_store: StoreFactory) -> None:
    store = make_store()
    data = os.urandom(PART + 500)
    w = store.writer("gone", total=len(data))
    w.write(data)
    store.abort("gone")
    with pytest.raises(NotFound):
        w.commit(len(data), digest_of(data))
    # and one only closed (kept for resuming) leaves nothing either
    with store.writer("closed", total=len(data)) as w:
        w.write(data)
    assert _cached(store) == set() and _staged(store) == []
    assert store.cache is not None and store.cache.stats.writes == 0


def test_a_failed_digest_or_size_check_leaves_nothing(make_store: StoreFactory) -> None:
    store = make_store()
    data = os.urandom(PART + 500)
    wrong = digest_of(b"something else")
    with store.writer("bad") as w:
        w.write(data)
        with pytest.raises(DigestMismatch):
            w.commit(len(data), wrong)
    with store.writer("short") as w:
        w.write(data[:1000])
        with pytest.raises(SizeMismatch):
            w.commit(1001, digest_of(data[:1000]))
    assert _cached(store) == set() and _staged(store) == []


def test_an_ingest_resumed_on_another_node_is_not_kept_there(make_store: StoreFactory) -> None:
    """Node A uploaded the first part; B has never seen those bytes: it keeps no copy
    (and neither does A, whose writer closed)."""
    data = os.urandom(2 * PART + 300)
    a, b = make_store("a"), make_store("b")
    w = a.writer("layer", total=len(data))
    w.write(data[: PART + 100])
    w.close()
    with b.writer("layer", total=len(data)) as w:
        assert w.status().offset == PART  # the part S3 has; A's spool stays on A
        w.write(data[PART:])
        w.commit(len(data), digest_of(data))
    assert _cached(a) == set() and _cached(b) == set() and _staged(b) == []
    assert read_blob(b, digest_of(data)) == data
    assert b.stats.gets == 1  # fetched, as any blob this node did not write whole


def test_a_resume_after_an_uploaded_part_on_the_same_node_is_not_kept(
    make_store: StoreFactory,
) -> None:
    data = os.urandom(PART + 300)
    a = make_store("a")
    w = a.writer("r", total=len(data))
    w.write(data[:PART])  # one part up; the copy of it went with the closed writer
    w.close()
    again = make_store("a")
    with again.writer("r", total=len(data)) as w:
        w.write(data[PART:])
        w.commit(len(data), digest_of(data))
    assert _cached(again) == set()


def test_a_resume_from_the_spool_alone_is_kept(make_store: StoreFactory) -> None:
    """No part uploaded yet: the node's spool holds every byte from the first, so the
    resumed writer's copy is whole."""
    data = os.urandom(PART + 300)
    a = make_store("a")
    w = a.writer("r", total=len(data))
    w.write(data[:1000])
    w.close()
    again = make_store("a")
    with again.writer("r", total=len(data)) as w:
        assert w.status().offset == 1000
        w.write(data[1000:])
        w.commit(len(data), digest_of(data))
    _read_locally(again, digest_of(data), data)


def test_a_truncated_ingest_keeps_only_what_follows(make_store: StoreFactory) -> None:
    store = make_store()
    data = os.urandom(PART + 300)
    with store.writer("t") as w:
        w.write(os.urandom(PART + 5))  # a part up, then thrown away
        w.truncate(0)
        w.write(data)
        w.commit(len(data), digest_of(data))
    _read_locally(store, digest_of(data), data)
    assert _staged(store) == []


def test_concurrent_commits_of_one_digest_keep_one_copy(make_store: StoreFactory) -> None:
    store = make_store()
    data = os.urandom(PART + 300)
    dgst = digest_of(data)
    writers = [store.writer(f"c{i}", total=len(data)) for i in range(2)]
    for w in writers:
        w.write(data)
    errors: list[BaseException] = []

    def commit(w: S3Writer) -> None:
        try:
            w.commit(len(data), dgst)
        except AlreadyExists as err:
            errors.append(err)

    threads = [threading.Thread(target=commit, args=(w,)) for w in writers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(errors) == 1
    assert store.cache is not None and store.cache.stats.writes == 1
    assert _cached(store) == {dgst} and _staged(store) == []
    _read_locally(store, dgst, data)


def test_the_cache_bound_applies_to_written_blobs(make_store: StoreFactory) -> None:
    store = make_store(cache_size=300_000)
    blobs = [os.urandom(120_000) for _ in range(3)]
    for i, data in enumerate(blobs):
        with store.writer(f"b{i}") as w:
            w.write(data)
            w.commit(len(data))
    d = [digest_of(b) for b in blobs]
    assert store.cache is not None
    assert _cached(store) == {d[1], d[2]}  # the oldest made room
    assert store.cache.stats.evictions == 1 and store.cache.total_bytes == 240_000
    # bigger than the whole cache: not kept, whether the total was announced or not
    big = os.urandom(300_001)
    with store.writer("big-known", total=len(big)) as w:
        w.write(big)
        w.commit(len(big))
    other = os.urandom(300_001)
    with store.writer("big-unknown") as w:
        for i in range(0, len(other), 65536):
            w.write(other[i : i + 65536])
        w.commit(len(other))
    assert _cached(store) == {d[1], d[2]} and _staged(store) == []
    assert store.cache.stats.writes == 3


def test_no_cache_or_an_unusable_one_never_fails_a_commit(make_store: StoreFactory) -> None:
    plain = make_store("plain", cache=False)
    data = os.urandom(PART + 300)
    with plain.writer("n") as w:
        w.write(data)
        w.commit(len(data), digest_of(data))
    assert read_blob(plain, digest_of(data)) == data

    store = make_store()
    assert store.cache is not None
    shutil.rmtree(store.cache.root)  # no staging directory: no copy begun
    with store.writer("x") as w:
        w.write(data[:-1])
        w.commit(len(data) - 1)
    os.makedirs(Path(store.cache.root) / "tmp")
    other = os.urandom(PART + 301)
    with store.writer("y") as w:
        w.write(other)
        shutil.rmtree(store.cache.root)  # the copy cannot be named any more
        w.commit(len(other), digest_of(other))
    assert store.cache.stats.writes == 0
    os.makedirs(Path(store.cache.root) / "tmp")
    assert read_blob(store, digest_of(other)) == other  # fetched from S3
    assert store.stats.gets == 1


def test_through_the_metadata_layer_as_a_pull_writes(
    make_store: StoreFactory, tmp_path: Path
) -> None:
    """A pull's layer (expected digest and total at open, the metadata layer above) is
    read back by the unpack that follows without a GET."""
    from contentd.metadata import MetadataDB

    store = make_store()
    db = MetadataDB(tmp_path / "meta.db", store)
    try:
        cs = db.content_store("default")
        data = os.urandom(2 * PART + 999)
        dgst = digest_of(data)
        with cs.writer("layer", total=len(data), expected=dgst) as w:
            w.write(data)
            w.commit(len(data), dgst)
        gets = (store.stats.gets, store.stats.ranged_gets)
        assert read_blob(cs, dgst) == data
        assert (store.stats.gets, store.stats.ranged_gets) == gets == (0, 0)
    finally:
        db.close()
