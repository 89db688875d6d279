"""reader_at shares one open file per blob; a deleted blob is never served from it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from contentd import LocalStore, NotFound
from contentd.content.digest import digest_of
from contentd.local import openblobs


def put(store: LocalStore, data: bytes) -> str:
    w = store.writer(f"ref-{digest_of(data)}")
    w.write(data)
    w.commit(len(data))
    return digest_of(data)


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def blob_path(root: Path, digest: str) -> Path:
    return root / "blobs" / "sha256" / digest.split(":")[1]


def test_readers_of_one_blob_share_its_open_file(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    d = put(store, b"shared bytes")
    with store.reader_at(d) as first:
        before = open_fds()
        with store.reader_at(d) as second, LocalStore(tmp_path).reader_at(d) as third:
            assert open_fds() == before
            assert second.read_at(0, 6) == b"shared"
            assert third.read_at(7, 5) == b"bytes"
            assert second.size == third.size == 12
        assert first.read_at(0, 12) == b"shared bytes"
    with store.reader_at(d) as again:  # kept open between readers
        assert open_fds() == before
        assert again.read_at(0, 3) == b"sha"


def test_a_deleted_blob_is_not_served(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    d = put(store, b"to be deleted")
    reader = store.reader_at(d)
    store.delete(d)
    with pytest.raises(NotFound):
        store.reader_at(d)
    assert reader.read_at(0, 5) == b"to be"  # an open reader reads on, as from any open file
    reader.close()
    put(store, b"to be deleted")  # the same digest, a new file
    with store.reader_at(d) as ra:
        assert os.fstat(ra._fd).st_ino == blob_path(tmp_path, d).stat().st_ino  # type: ignore[arg-type]


def test_a_blob_deleted_by_another_store_on_the_root_is_not_served(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    d = put(store, b"x")
    store.reader_at(d).close()
    LocalStore(tmp_path).delete(d)
    with pytest.raises(NotFound):
        store.reader_at(d)


def test_the_table_is_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(openblobs, "CAPACITY", 2)
    store = LocalStore(tmp_path)
    digests = [put(store, bytes([i]) * 10) for i in range(5)]
    store.reader_at(digests[0]).close()
    base = open_fds()
    held = store.reader_at(digests[1])  # in use while it is evicted
    for d in digests[2:]:
        store.reader_at(d).close()
    assert open_fds() <= base + 2  # CAPACITY files (plus none for the evicted-but-held one)
    assert held.read_at(0, 10) == bytes([1]) * 10
    held.close()
    assert open_fds() <= base + 1


def test_an_open_that_races_a_delete_is_not_kept(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    d = put(store, b"racy")
    path = str(blob_path(tmp_path, d))

    def open_then_delete(p: str) -> int:
        fd = os.open(p, os.O_RDONLY)
        store.delete(d)  # between this open and its entry in the table
        return fd

    blob = openblobs.acquire(store.root, d, path, open_then_delete)
    assert not blob.listed
    openblobs.release(blob)
    with pytest.raises(NotFound):
        store.reader_at(d)
