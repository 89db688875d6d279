"""The write path's syscalls: what is synced when, and early writeback.

New ingests are created without syncing anything (a crash before their data
is synced leaves nothing worth resuming); close makes an ingest durable as it
stands; commit syncs the data, links it, sets times and mode, syncs the blob
directory and only then removes the ingest. The order is the crash-safety
argument, so these tests record it.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from contentd import LocalStore
from contentd.content.digest import digest_of
from contentd.local import writeback

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
    yield events


def test_a_new_ingest_syncs_nothing(tmp_path: Path, syscalls: list[tuple[str, str]]) -> None:
    store = LocalStore(tmp_path)
    w = store.writer("r", total=3)
    assert syscalls == []
    w.write(b"abc")
    assert syscalls == []
    syscalls.clear()
    w.close()


def test_close_makes_the_ingest_durable(tmp_path: Path, syscalls: list[tuple[str, str]]) -> None:
    store = LocalStore(tmp_path)
    w = store.writer("r", total=3)
    w.write(b"ab")
    w.close()
    d = str(ingest_dir(tmp_path, "r"))
    synced = {path for call, path in syscalls if call == "fsync"}
    assert {
        f"{d}/data",
        f"{d}/ref",
        f"{d}/startedat",
        f"{d}/total",
        d,
        str(tmp_path / "ingest"),
    } <= synced
    assert ("open-sync", f"{d}/updatedat.tmp") in syscalls
    assert syscalls[0] == ("fsync", f"{d}/data")  # the data first
    with store.writer("r") as w2:
        assert w2.status().offset == 2
        assert w2.status().total == 3


def test_commit_order(tmp_path: Path, syscalls: list[tuple[str, str]]) -> None:
    store = LocalStore(tmp_path)
    store.writer("first").commit(0)  # blobs/sha256 exists from here on
    w = store.writer("r")
    w.write(b"hello")
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
    st = os.stat(blob)
    assert stat.S_IMODE(st.st_mode) & 0o333 == 0
    assert st.st_atime_ns == st.st_mtime_ns


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


def test_commit_removes_an_ingest_with_stray_files(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    w = store.writer("r", total=1)
    w.write(b"x")
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
