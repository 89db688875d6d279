"""The write path's syscalls: what is synced when, pending ingests, early writeback.

A new ingest is pending (an anonymous file, no directory) and syncs nothing
(a crash before its data is synced leaves nothing worth resuming); close gives
it its directory and makes it durable as it stands; commit syncs the data,
links it, sets times and mode, syncs the blob directory and only then removes
the ingest's directory, if it has one. The order is the crash-safety
argument, so these tests record it.
"""

from __future__ import annotations

import errno
import gc
import hashlib
import os
import stat
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from contentd import (
    AlreadyExists,
    DigestMismatch,
    FailedPrecondition,
    LocalStore,
    NotFound,
    ResourceExhausted,
)
from contentd.content.digest import digest_of
from contentd.local import pending, writeback
from contentd.local import publish as publish_module
from contentd.local import writer as writer_module
from contentd.local.writer import LocalWriter

MiB = 1 << 20


def ingest_dir(root: Path, ref: str) -> Path:
    return root / "ingest" / hashlib.sha256(ref.encode()).hexdigest()


@pytest.fixture
def syscalls(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[str, str]]]:
    """(call, path) of every fsync, O_SYNC open, link, fchmod and unlink, in order."""
    events: list[tuple[str, str]] = []
    real_fsync, real_open, real_link = os.fsync, os.open, os.link
    real_fchmod, real_unlink = os.fchmod, os.unlink

    def fd_path(fd: int) -> str:
        return os.readlink(f"/proc/self/fd/{fd}")

    def fsync(fd: int) -> None:
        events.append(("fsync", fd_path(fd)))
        real_fsync(fd)

    def open_(path: str, flags: int, mode: int = 0o777, **kw: object) -> int:
        if flags & os.O_SYNC == os.O_SYNC:
            events.append(("open-sync", os.fspath(path)))
        return real_open(path, flags, mode, **kw)  # type: ignore[arg-type]

    def link(src: str, dst: str, **kw: object) -> None:
        events.append(("link", os.fspath(dst)))
        real_link(src, dst, **kw)  # type: ignore[arg-type]

    def fchmod(fd: int, mode: int) -> None:
        events.append(("fchmod", fd_path(fd)))
        real_fchmod(fd, mode)

    def unlink(path: str, **kw: object) -> None:
        events.append(("unlink", os.fspath(path)))
        real_unlink(path, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "open", open_)
    monkeypatch.setattr(os, "link", link)
    monkeypatch.setattr(os, "fchmod", fchmod)
    monkeypatch.setattr(os, "unlink", unlink)
    real_link_anonymous = writer_module.link_anonymous

    def link_anonymous(fd: int, dst: str) -> None:
        events.append(("link", dst))
        real_link_anonymous(fd, dst)

    monkeypatch.setattr(writer_module, "link_anonymous", link_anonymous)  # materialize
    monkeypatch.setattr(publish_module, "link_anonymous", link_anonymous)  # commit
    yield events


def on_disk_writer(store: LocalStore, root: Path, ref: str, data: bytes = b"") -> LocalWriter:
    """A writer whose ingest has its directory: opened, closed, reopened (a resume)."""
    w = store.writer(ref)
    w.write(data)
    w.close()
    w = store.writer(ref)
    assert (ingest_dir(root, ref) / "data").is_file()
    return w


def test_a_new_ingest_is_pending_and_syncs_nothing(
    tmp_path: Path, syscalls: list[tuple[str, str]]
) -> None:
    store = LocalStore(tmp_path)
    store.writer("probe").commit(0)  # the first pending writer probes the filesystem once
    syscalls.clear()
    w = store.writer("r", total=3)
    w.write(b"ab")
    assert syscalls == []
    assert os.listdir(tmp_path / "ingest") == []  # nothing on disk yet...
    st = store.status("r")  # ...but the store knows it
    assert (st.ref, st.offset, st.total) == ("r", 2, 3)
    assert [s.ref for s in store.list_statuses("ref==r")] == ["r"]
    assert list(store.walk_status_refs()) == ["r"]
    assert LocalStore(tmp_path).status("r").offset == 2  # any store on this root
    w.close()


def test_close_gives_a_pending_ingest_its_durable_directory(
    tmp_path: Path, syscalls: list[tuple[str, str]]
) -> None:
    store = LocalStore(tmp_path)
    w = store.writer("r", total=3)
    w.write(b"ab")
    w.close()
    d = str(ingest_dir(tmp_path, "r"))
    assert sorted(os.listdir(d)) == ["data", "ref", "startedat", "total", "updatedat"]
    synced = [path for call, path in syscalls if call == "fsync"]
    assert synced[0].endswith("(deleted)")  # the data first, through its anonymous fd
    assert {f"{d}/ref", f"{d}/startedat", f"{d}/total", d, str(tmp_path / "ingest")} <= set(synced)
    assert ("open-sync", f"{d}/updatedat.tmp") in syscalls
    assert store.status("r").offset == 2
    with store.writer("r") as w2:
        assert w2.status().offset == 2
        assert w2.status().total == 3
        assert w2.digest() == digest_of(b"ab")


def test_close_keeps_an_ingest_on_disk_durable(
    tmp_path: Path, syscalls: list[tuple[str, str]]
) -> None:
    store = LocalStore(tmp_path)
    w = on_disk_writer(store, tmp_path, "r", b"ab")
    w.write(b"c")
    syscalls.clear()
    w.close()
    d = str(ingest_dir(tmp_path, "r"))
    synced = [path for call, path in syscalls if call == "fsync"]
    assert synced[0] == f"{d}/data"
    assert {f"{d}/ref", f"{d}/startedat", d, str(tmp_path / "ingest")} <= set(synced)


def test_a_pending_ingest_gets_its_directory_at_the_limit(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    w = store.writer("big")
    w.write(b"x" * (pending.LIMIT - 1))
    assert os.listdir(tmp_path / "ingest") == []
    w.write(b"x")
    d = ingest_dir(tmp_path, "big")
    assert (d / "data").stat().st_size == pending.LIMIT
    assert (d / "ref").read_bytes() == b"big"
    assert [s.ref for s in store.list_statuses()] == ["big"]  # once, not twice
    w.write(b"y")
    w.commit(pending.LIMIT + 1)
    assert os.listdir(tmp_path / "ingest") == []


def test_commit_of_a_pending_ingest(tmp_path: Path, syscalls: list[tuple[str, str]]) -> None:
    store = LocalStore(tmp_path)
    store.writer("first").commit(0)  # blobs/sha256 exists from here on
    w = store.writer("r")
    w.write(b"hello")
    syscalls.clear()
    w.commit(5, digest_of(b"hello"))
    blob = str(tmp_path / "blobs" / "sha256" / digest_of(b"hello").split(":")[1])
    assert [call for call, _ in syscalls] == ["fsync", "link", "fchmod", "fsync"]
    assert syscalls[1] == ("link", blob)
    assert syscalls[3] == ("fsync", str(tmp_path / "blobs" / "sha256"))
    assert os.listdir(tmp_path / "ingest") == []
    with pytest.raises(NotFound):
        store.status("r")
    st = os.stat(blob)
    assert stat.S_IMODE(st.st_mode) & 0o333 == 0
    assert st.st_atime_ns == st.st_mtime_ns
    assert st.st_nlink == 1


def test_commit_order_of_an_ingest_on_disk(tmp_path: Path, syscalls: list[tuple[str, str]]) -> None:
    store = LocalStore(tmp_path)
    store.writer("first").commit(0)
    w = on_disk_writer(store, tmp_path, "r", b"hel")
    w.write(b"lo")
    syscalls.clear()
    w.commit(5, digest_of(b"hello"))
    d = str(ingest_dir(tmp_path, "r"))
    blob = str(tmp_path / "blobs" / "sha256" / digest_of(b"hello").split(":")[1])
    assert syscalls[:4] == [
        ("fsync", f"{d}/data"),  # the bytes are durable before they get a name
        ("link", blob),
        ("fchmod", f"{d}/data"),  # read-only before the directory sync makes it durable
        ("fsync", str(tmp_path / "blobs" / "sha256")),
    ]
    assert ("unlink", f"{d}/data") in syscalls[4:]  # the ingest goes last
    assert not ingest_dir(tmp_path, "r").exists()
    assert os.stat(blob).st_nlink == 1


def test_first_blob_creates_its_directory_durably(
    tmp_path: Path, syscalls: list[tuple[str, str]]
) -> None:
    store = LocalStore(tmp_path)
    w = store.writer("r")
    w.write(b"x")
    w.commit(1)
    synced = [path for call, path in syscalls if call == "fsync"]
    assert str(tmp_path) in synced  # blobs/ created
    assert str(tmp_path / "blobs") in synced  # blobs/sha256 created
    assert synced[-1] == str(tmp_path / "blobs" / "sha256")


def test_a_failed_commit_keeps_a_pending_ingest(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    w = store.writer("r", total=5)
    w.write(b"hel")
    with pytest.raises(FailedPrecondition):
        w.commit(5)  # too short: kept for resuming, on disk like a closed one
    assert (ingest_dir(tmp_path, "r") / "data").read_bytes() == b"hel"
    with store.writer("r") as w2:
        assert w2.status().offset == 3
        w2.write(b"lo")
        w2.commit(5, digest_of(b"hello"))
    assert os.listdir(tmp_path / "ingest") == []


def test_existing_blob_discards_a_pending_ingest(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    for ref in ("a", "b"):
        w = store.writer(ref)
        w.write(b"same")
        if ref == "a":
            w.commit(4)
        else:
            with pytest.raises(AlreadyExists):
                w.commit(4)
    assert os.listdir(tmp_path / "ingest") == []
    assert store.list_statuses() == []
    assert store.writer("b").status().offset == 0


def test_abort_of_a_pending_ingest(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    w = store.writer("r")
    w.write(b"abc")
    store.abort("r")
    with pytest.raises(NotFound):
        store.status("r")
    assert store.list_statuses() == []
    w.write(b"more")  # as with an ingest on disk, writes still land somewhere
    with pytest.raises(NotFound, match="aborted"):
        w.commit(0)
    assert not (tmp_path / "blobs" / "sha256").exists()
    assert os.listdir(tmp_path / "ingest") == []
    with store.writer("r") as w2:
        assert w2.status().offset == 0


def test_abort_then_close_of_a_pending_ingest_leaves_nothing(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    w = store.writer("r")
    w.write(b"x" * 10)
    store.abort("r")
    w.close()
    assert os.listdir(tmp_path / "ingest") == []


def test_a_dropped_pending_writer_is_closed_and_kept(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    w = store.writer("r")
    w.write(b"abc")
    del w
    gc.collect()
    assert store.status("r").offset == 3  # on disk now, as close leaves it
    assert (ingest_dir(tmp_path, "r") / "data").read_bytes() == b"abc"
    with store.writer("r") as w2:  # and the ref lock was released
        assert w2.status().offset == 3


def test_the_probe_leaves_nothing_behind(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    store.writer("r").close()
    assert sorted(os.listdir(tmp_path)) == ["ingest"]


def test_without_anonymous_files_ingests_start_on_disk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pending, "_supported", False)
    store = LocalStore(tmp_path)
    w = store.writer("r", total=3)
    d = ingest_dir(tmp_path, "r")
    assert sorted(os.listdir(d)) == ["data", "ref", "startedat", "total", "updatedat"]
    w.write(b"abc")
    w.commit(3)
    assert not d.exists()
    assert store.info(digest_of(b"abc")).size == 3


def test_commit_removes_an_ingest_with_stray_files(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    w = on_disk_writer(store, tmp_path, "r", b"x")
    (ingest_dir(tmp_path, "r") / "updatedat.tmp").write_bytes(b"left by a crash")
    w.commit(1)
    assert os.listdir(tmp_path / "ingest") == []
    assert store.info(digest_of(b"x")).size == 1


def test_abort_removes_an_ingest_with_stray_files(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    store.writer("r").close()
    (ingest_dir(tmp_path, "r") / "startedat.tmp").write_bytes(b"")
    store.abort("r")
    assert os.listdir(tmp_path / "ingest") == []


def test_early_writeback_covers_what_was_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[int, int]] = []
    real = writeback.start_writeback

    def spy(fd: int, offset: int, length: int) -> None:
        calls.append((offset, length))
        real(fd, offset, length)

    monkeypatch.setattr("contentd.local.writer.start_writeback", spy)
    store = LocalStore(tmp_path)
    chunk = os.urandom(MiB)
    w = store.writer("big")
    for _ in range(writeback.WINDOW // MiB + 1):
        w.write(chunk)
    w.truncate(0)  # a restart: writeback starts over from offset 0
    n = 2 * writeback.WINDOW // MiB + 3
    for _ in range(n):
        w.write(chunk)
    w.commit(n * MiB, digest_of(chunk * n))
    window = writeback.WINDOW
    assert calls == [(0, window), (0, window), (window, window)]
    assert store.info(digest_of(chunk * n)).size == n * MiB


def test_ingest_without_writeback_support(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def failing(fd: int, offset: int, length: int, flags: int) -> int:
        import ctypes

        ctypes.set_errno(38)  # ENOSYS
        return -1

    monkeypatch.setattr(writeback, "_loaded", True)
    monkeypatch.setattr(writeback, "_sync_file_range", failing)
    store = LocalStore(tmp_path)
    data = os.urandom(writeback.WINDOW + MiB)
    w = store.writer("r")
    w.write(data[: writeback.WINDOW])
    assert writeback._sync_file_range is None  # given up after ENOSYS
    w.write(data[writeback.WINDOW :])
    w.commit(len(data), digest_of(data))
    assert store.info(digest_of(data)).size == len(data)


def test_a_pending_ingest_that_cannot_get_its_directory_is_gone_after_close(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full_disk(*args: object, **kw: object) -> None:
        raise OSError(28, "No space left on device")

    store = LocalStore(tmp_path)
    w = store.writer("r")
    w.write(b"abc")
    monkeypatch.setattr(writer_module, "create_ingest_files", full_disk)
    with pytest.raises(OSError, match="No space"):
        w.close()
    monkeypatch.undo()
    with pytest.raises(NotFound):
        store.status("r")  # no phantom left in the table
    assert os.listdir(tmp_path / "ingest") == []
    with store.writer("r") as w2:  # and the lock is free
        assert w2.status().offset == 0


def test_an_ingest_kept_after_a_failed_commit_is_synced_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A mismatch keeps the ingest for resuming; all its files are synced, updatedat too
    (an empty one after a power loss would make it start over)."""
    synced: list[str] = []
    real_fsync = os.fsync

    def recording(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    store = LocalStore(tmp_path)
    w = store.writer("kept", total=3)
    w.write(b"abc")
    monkeypatch.setattr(os, "fsync", recording)
    with pytest.raises(DigestMismatch):
        w.commit(3, "sha256:" + "0" * 64)
    monkeypatch.undo()
    directory = store._layout.ingest("kept").dir
    for name in ("ref", "startedat", "updatedat", "total"):  # data: synced before the link
        assert os.path.join(directory, name) in synced, name
    resumed = store.writer("kept", total=3)
    assert resumed.status().offset == 3
    resumed.close()


class _FailingLabels:
    def get(self, digest: str) -> dict[str, str]:
        return {}

    def set(self, digest: str, labels: Mapping[str, str]) -> None:
        raise OSError(errno.EIO, "label store failed")

    def update(self, digest: str, changes: Mapping[str, str]) -> None:
        pass


def test_a_commit_failing_after_the_link_leaves_no_second_name_for_the_blob(
    tmp_path: Path,
) -> None:
    """Once the blob has its name, a later failure must not keep the ingest: resuming it
    would rewrite the published file in place."""
    store = LocalStore(tmp_path, label_store=_FailingLabels())  # type: ignore[arg-type]
    w = store.writer("r", total=3)
    w.write(b"abc")
    with pytest.raises(OSError):
        w.commit(3, None, {"a": "b"})
    digest = "sha256:" + hashlib.sha256(b"abc").hexdigest()
    blob = store._layout.blob_path(digest)
    assert not os.path.exists(store._layout.ingest("r").dir)
    again = store.writer("r", total=3)
    assert again.status().offset == 0
    again.truncate(0)
    again.write(b"x")
    again.close()
    with open(blob, "rb") as f:
        assert f.read() == b"abc"


def test_a_small_blob_written_whole_is_committed_without_a_directory(tmp_path: Path) -> None:
    """A write that takes a pending ingest past the limit but also completes its declared
    total leaves it pending: the commit is next (and a close without it makes one)."""
    store = LocalStore(tmp_path)
    data = b"z" * (pending.LIMIT + 5)
    w = store.writer("whole", total=len(data))
    w.write(data)
    assert os.listdir(tmp_path / "ingest") == []
    assert [s.ref for s in store.list_statuses()] == ["whole"]
    w.commit(len(data), digest_of(data))
    assert (tmp_path / "blobs" / "sha256" / digest_of(data).split(":")[1]).read_bytes() == data
    # not committed: the close gives it its directory, and it resumes where it stood
    w = store.writer("kept", total=len(data))
    w.write(data)
    w.close()
    assert (ingest_dir(tmp_path, "kept") / "data").stat().st_size == len(data)
    resumed = store.writer("kept", total=len(data))
    assert resumed.status().offset == len(data)
    resumed.close()


def _inode(fd: int) -> tuple[int, int]:
    st = os.fstat(fd)
    return st.st_dev, st.st_ino


def test_a_new_ingest_takes_the_anonymous_file_made_ahead(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    ingests = str(tmp_path / "ingest")
    store.writer("first").close()  # probes the directory, then asks for a spare
    pending._spares.wait_made(ingests)
    spares = pending._spares._files[ingests]
    assert len(spares) == pending._spares.per_directory  # made in one go
    made = _inode(spares[-1])
    w = store.writer("second", total=2)
    assert w._fd is not None and _inode(w._fd) == made
    assert w._fd not in pending._spares._files[ingests]
    for i in range(pending._spares.per_directory - 2):  # taken until one is left
        store.writer(f"more-{i}").close()
    pending._spares.wait_made(ingests)  # then more are made: other files
    assert len(pending._spares._files[ingests]) == pending._spares.per_directory
    assert w._fd not in pending._spares._files[ingests]
    w.write(b"ok")
    w.commit(2)
    assert (tmp_path / "blobs" / "sha256" / digest_of(b"ok")[7:]).read_bytes() == b"ok"


def test_a_spare_no_longer_on_its_directory_s_filesystem_is_not_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = LocalStore(tmp_path)
    ingests = str(tmp_path / "ingest")
    store.writer("first").close()
    pending._spares.wait_made(ingests)
    for spare in pending._spares._files[ingests]:  # tells them apart (inodes are reused)
        os.pwrite(spare, b"spare", 0)
    monkeypatch.setattr(pending, "_same_filesystem", lambda fd, directory: False)
    w = store.writer("second", total=1)
    assert w._fd is not None and os.fstat(w._fd).st_size == 0
    w.write(b"x")
    w.commit(1)
    assert store.info(digest_of(b"x")).size == 1


def test_spares_are_bounded(tmp_path: Path) -> None:
    for i in range(pending._spares.limit + 3):
        store = LocalStore(tmp_path / str(i))
        store.writer("r").close()
        pending._spares.wait_made(str(tmp_path / str(i) / "ingest"))
        store.writer("r2").close()  # takes the spare, asks for the next
        pending._spares.wait_made(str(tmp_path / str(i) / "ingest"))
    assert pending._spares.held() <= pending._spares.limit


def test_a_forked_child_holds_none_of_the_parents_spares(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    store.writer("first").close()
    pending._spares.wait_made(str(tmp_path / "ingest"))
    assert pending._spares.held() >= 1
    pid = os.fork()
    if pid == 0:  # the child: exit status 0 only if it holds no spare of its parent
        os._exit(0 if pending._spares.held() == 0 else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert pending._spares.held() >= 1  # the parent's are still there


@pytest.mark.parametrize(
    "size", [4096, writer_module.OVERLAP_MIN, MiB], ids=["small", "at-overlap", "1MiB"]
)
def test_a_write_refused_for_lack_of_space_counts_for_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, size: int
) -> None:
    """A full disk mid-write (half of it written, then ENOSPC): ResourceExhausted, and the
    file, offset and running digest are those of the earlier writes, so the ingest
    resumes there (large writes are hashed while another thread writes them: the same)."""
    store = LocalStore(str(tmp_path))
    first, second, third = os.urandom(size), os.urandom(size), os.urandom(size)
    w = store.writer("full-disk")
    w.write(first)
    real_pwrite = os.pwrite
    failing = True

    def pwrite(fd: int, data: bytes | memoryview, offset: int) -> int:
        nonlocal failing
        if failing and offset >= size:
            failing = False
            real_pwrite(fd, memoryview(data)[: len(data) // 2], offset)
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_pwrite(fd, data, offset)

    monkeypatch.setattr(writer_module.os, "pwrite", pwrite)
    with pytest.raises(ResourceExhausted):
        w.write(second)
    assert w.status().offset == size
    assert w.digest() == digest_of(first)
    w.write(third)  # room again: on from where it was
    w.commit(2 * size, digest_of(first + third))
    assert store.info(digest_of(first + third)).size == 2 * size


def test_large_writes_hash_while_a_helper_thread_writes(tmp_path: Path) -> None:
    """The overlapped path writes on another thread, and what it commits is what came."""
    store = LocalStore(str(tmp_path))
    chunks = [os.urandom(writer_module.OVERLAP_MIN + i) for i in range(3)]
    seen: set[str] = set()
    real_pwrite = os.pwrite

    def pwrite(fd: int, data: bytes | memoryview, offset: int) -> int:
        seen.add(threading.current_thread().name)
        return real_pwrite(fd, data, offset)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(writer_module.os, "pwrite", pwrite)
        w = store.writer("overlap")
        for chunk in chunks:
            w.write(chunk)
        whole = b"".join(chunks)
        w.commit(len(whole), digest_of(whole))
    assert any(name.startswith("contentd-pwrite") for name in seen)
    assert Path(tmp_path, "blobs", "sha256", digest_of(whole).split(":")[1]).read_bytes() == whole


def test_a_forked_child_writes_large_chunks_with_threads_of_its_own(tmp_path: Path) -> None:
    store = LocalStore(str(tmp_path))
    chunk = os.urandom(writer_module.OVERLAP_MIN)
    w = store.writer("parent")
    w.write(chunk)  # the parent's helper threads exist now
    w.close()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            cw = LocalStore(str(tmp_path)).writer("child")
            cw.write(chunk)
            cw.commit(len(chunk), digest_of(chunk))
        finally:
            os._exit(0)
    deadline = 30
    for _ in range(deadline * 10):
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        time.sleep(0.1)
    else:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
        pytest.fail("the child's large write hung on the parent's helper threads")
    assert status == 0
    assert store.info(digest_of(chunk)).size == len(chunk)
