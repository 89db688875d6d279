"""What the process keeps per store root: open blob files, ref locks, pending ingests.

reader_at shares one open file per blob and a deleted blob is never served from it.
All of it belongs to the root's state: shared by every store on the root, separate
from other roots', and gone (idle files closed) once nothing of the root is left.
"""

from __future__ import annotations

import gc
import os
from pathlib import Path

import pytest

from contentd import LocalStore, NotFound, Unavailable
from contentd.content.digest import digest_of
from contentd.local.roots import root_state


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
    store = LocalStore(tmp_path)
    monkeypatch.setattr(root_state(store.root).blobs, "capacity", 2)
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

    blobs = root_state(store.root).blobs
    blob = blobs.acquire(d, path, open_then_delete)
    assert not blob.listed
    blobs.release(blob)
    with pytest.raises(NotFound):
        store.reader_at(d)


def test_roots_do_not_share_open_files(tmp_path: Path) -> None:
    one, two = LocalStore(tmp_path / "one"), LocalStore(tmp_path / "two")
    d = put(one, b"same bytes")
    put(two, b"same bytes")
    with one.reader_at(d) as ra, two.reader_at(d) as rb:
        assert os.fstat(ra._fd).st_ino != os.fstat(rb._fd).st_ino  # type: ignore[arg-type]
    two.delete(d)
    with one.reader_at(d) as ra:  # a delete on another root does not drop this one's file
        assert ra.read_at(0, 4) == b"same"


def files_open_under(directory: Path) -> int:
    """This process's open files below ``directory`` (other threads' fds do not count)."""
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        count += target.startswith(f"{directory}/")
    return count


def test_a_root_nothing_uses_any_more_holds_no_files(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    digests = [put(store, bytes([i]) * 3) for i in range(5)]
    for d in digests:
        store.reader_at(d).close()
    held = store.reader_at(digests[0])
    blobs = tmp_path / "blobs"
    assert files_open_under(blobs) == 5
    del store
    gc.collect()
    assert files_open_under(blobs) == 1  # the idle four closed with the root's state
    assert held.read_at(0, 3) == bytes([0]) * 3
    held.close()
    assert files_open_under(blobs) == 0


def test_stores_on_one_root_share_ref_locks_and_pending_ingests(tmp_path: Path) -> None:
    first, second = LocalStore(tmp_path), LocalStore(tmp_path)
    elsewhere = LocalStore(tmp_path / "elsewhere")
    w = first.writer("ref")
    w.write(b"pending")  # no directory yet: known to this process only
    with pytest.raises(Unavailable, match="ref ref locked for"):
        second.writer("ref")
    assert second.status("ref").offset == 7
    assert [s.ref for s in second.list_statuses()] == ["ref"]
    with elsewhere.writer("ref") as other:  # another root: its own locks
        assert other.status().offset == 0
    second.abort("ref")
    with pytest.raises(NotFound):
        w.commit(7)
    with second.writer("ref") as again:  # the commit released the lock
        assert again.status().offset == 0
