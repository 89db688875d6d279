"""The local store on disk: containerd's layout byte for byte (checklist 23–26)."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

import pytest

from contentd import FailedPrecondition, InvalidArgument, LocalStore, NotFound
from contentd.content import gotime
from contentd.content.digest import digest_of
from contentd.content.types import ZERO_TIME, utcnow


def ingest_dir(root: Path, ref: str) -> Path:
    return root / "ingest" / hashlib.sha256(ref.encode()).hexdigest()


def test_ingest_dir_exists_after_construction(tmp_path: Path) -> None:
    LocalStore(tmp_path / "c")
    assert (tmp_path / "c" / "ingest").is_dir()
    assert not (tmp_path / "c" / "blobs").exists()


def test_ingest_files(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    w = store.writer("my/ref:1", total=42)
    w.write(b"hello")
    w.close()  # a new ingest gets its directory at close (or when it grows big)
    d = ingest_dir(tmp_path, "my/ref:1")
    assert (d / "ref").read_bytes() == b"my/ref:1"
    assert (d / "total").read_bytes() == b"42"
    assert (d / "data").read_bytes() == b"hello"
    started = gotime.parse_text((d / "startedat").read_text())
    assert started == w.status().started_at
    assert (d / "startedat").read_text().endswith("Z")
    assert stat.S_IMODE(d.stat().st_mode) == 0o755 & ~_umask()
    updated = gotime.parse_text((d / "updatedat").read_text())
    assert updated == w.status().updated_at
    assert not list(d.glob("*.tmp"))


def test_no_total_file_without_total(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    store.writer("r").close()
    assert not (ingest_dir(tmp_path, "r") / "total").exists()


def test_blob_path_mode_and_ingest_removed(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    data = b"blob bytes"
    before = utcnow()
    with store.writer("r") as w:
        w.write(data)
        w.commit(len(data), digest_of(data))
    after = utcnow()
    blob = tmp_path / "blobs" / "sha256" / hashlib.sha256(data).hexdigest()
    assert blob.read_bytes() == data
    assert blob.stat().st_mode & 0o333 == 0
    assert blob.stat().st_nlink == 1
    assert not ingest_dir(tmp_path, "r").exists()
    info = store.info(digest_of(data))
    assert before <= info.created_at <= after
    assert info.created_at == gotime.from_ns(blob.stat().st_mtime_ns)


def test_zero_time_round_trips_through_file(tmp_path: Path) -> None:
    from contentd.local.layout import read_timestamp, write_timestamp

    p = str(tmp_path / "t")
    write_timestamp(p, ZERO_TIME)
    assert Path(p).read_text() == "0001-01-01T00:00:00Z"
    assert read_timestamp(p) == ZERO_TIME


def test_status_reads_from_disk(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    w = store.writer("r", total=10)
    w.write(b"abc")
    st = store.status("r")
    assert (st.ref, st.offset, st.total, st.expected) == ("r", 3, 10, "")
    w.close()


def test_status_half_created_ingest_is_skipped(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    (tmp_path / "ingest" / ("0" * 64)).mkdir()
    store.writer("ok").close()
    assert [s.ref for s in store.list_statuses()] == ["ok"]


def test_missing_delete_and_abort_succeed(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    store.delete("sha256:" + "0" * 64)
    store.abort("never")


@pytest.mark.parametrize("bad", ["sha256:../../etc/passwd", "sha256:" + "A" * 64, "../x:y", "nope"])
def test_bad_digests_never_become_paths(tmp_path: Path, bad: str) -> None:
    store = LocalStore(tmp_path)
    for op in (store.info, store.delete, store.reader_at):
        with pytest.raises(InvalidArgument):
            op(bad)
    with pytest.raises(InvalidArgument):
        store.writer("r", expected=bad)


def test_hostile_refs_stay_inside_root(tmp_path: Path) -> None:
    root = tmp_path / "root"
    store = LocalStore(root)
    for ref in ["../../escape", "/etc/passwd", "a\x00b", "x" * 5000]:
        with store.writer(ref) as w:
            w.write(b"1")
    assert sorted(os.listdir(tmp_path)) == ["root"]
    assert {s.ref for s in store.list_statuses()} == {
        "../../escape",
        "/etc/passwd",
        "a\x00b",
        "x" * 5000,
    }


def test_readonly_never_writes(tmp_path: Path) -> None:
    with pytest.raises(NotFound):
        LocalStore(tmp_path / "missing", readonly=True)
    assert not (tmp_path / "missing").exists()
    rw = LocalStore(tmp_path / "c")
    data = b"abc"
    with rw.writer("r") as w:
        w.write(data)
        w.commit(0, "")
    rw.writer("open").close()
    snapshot = _tree(tmp_path / "c")
    ro = LocalStore(tmp_path / "c", readonly=True)
    assert ro.info(digest_of(data)).size == 3
    assert [i.digest for i in ro.walk()] == [digest_of(data)]
    assert [s.ref for s in ro.list_statuses()] == ["open"]
    with ro.reader_at(digest_of(data)) as ra:
        assert ra.read_at(0, 10) == data
    for call in (
        lambda: ro.writer("x"),
        lambda: ro.delete(digest_of(data)),
        lambda: ro.abort("open"),
    ):
        with pytest.raises(FailedPrecondition):
            call()
    assert _tree(tmp_path / "c") == snapshot


def test_readonly_empty_root_is_not_created(tmp_path: Path) -> None:
    tmp_path.joinpath("empty").mkdir()
    ro = LocalStore(tmp_path / "empty", readonly=True)
    assert list(ro.walk()) == []
    assert ro.list_statuses() == []
    assert os.listdir(tmp_path / "empty") == []


def test_resume_after_corrupt_ingest_starts_over(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    w = store.writer("r")
    w.write(b"0123456789")
    w.close()
    (ingest_dir(tmp_path, "r") / "ref").write_bytes(b"someone else")
    with store.writer("r") as w:
        assert w.status().offset == 0
        w.write(b"abc")
        w.commit(3, digest_of(b"abc"))
    assert store.info(digest_of(b"abc")).size == 3


def test_abort_while_writer_open(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    w = store.writer("r")
    w.write(b"abc")
    store.abort("r")
    w.close()  # the ingest vanished; close still releases the lock
    with store.writer("r") as w2:
        assert w2.status().offset == 0


def test_walk_skips_unknown_algorithms_and_dirs(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    with store.writer("r") as w:
        w.write(b"x")
        w.commit(0, "")
    (tmp_path / "blobs" / "md5").mkdir()
    (tmp_path / "blobs" / "md5" / "abc").write_bytes(b"")
    (tmp_path / "blobs" / "loose").write_bytes(b"")
    (tmp_path / "blobs" / "sha256" / "subdir").mkdir()
    assert [i.digest for i in store.walk()] == [digest_of(b"x")]


def test_walk_lexical_order(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    digests = []
    for i in range(20):
        data = str(i).encode()
        with store.writer(f"r{i}") as w:
            w.write(data)
            w.commit(0, "")
        digests.append(digest_of(data))
    assert [i.digest for i in store.walk()] == sorted(digests)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _tree(root: Path) -> list[tuple[str, int, int]]:
    out = []
    for dirpath, _dirs, files in os.walk(root):
        for name in sorted(files):
            st = os.stat(os.path.join(dirpath, name))
            out.append((os.path.join(dirpath, name), st.st_size, st.st_mtime_ns))
    return sorted(out)
