"""Crash safety: a process SIGKILLed inside commit, writer open or GC leaves a
store that reopens consistent (no record without its blob), whose
interrupted ingests resume, and whose orphans the first GC removes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from contentd import NotFound, read_blob
from contentd.content.digest import digest_of
from contentd.metadata import MetadataDB, backend_ref
from contentd.metadata.crashpoints import CRASH_ENV
from tests.metadata import crash_child as child

pytestmark = pytest.mark.sqlite_only  # the SQLite engine itself

REPO = Path(__file__).resolve().parents[2]


def _child(tmp_path: Path, scenario: str, point: str | None) -> int:
    env = {k: v for k, v in os.environ.items() if k != CRASH_ENV}
    env["PYTHONPATH"] = str(REPO)
    if point is not None:
        env[CRASH_ENV] = point
    proc = subprocess.run(
        [sys.executable, "-m", "tests.metadata.crash_child", scenario, str(tmp_path)],
        env=env,
        cwd=REPO,
        capture_output=True,
        timeout=120,
    )
    if proc.returncode not in (0, -signal.SIGKILL):
        raise AssertionError(proc.stderr.decode())
    return proc.returncode


def crash(tmp_path: Path, scenario: str, point: str) -> MetadataDB:
    """Set up (a clean run), then run ``scenario`` until it dies at ``point``."""
    assert _child(tmp_path, "setup", None) == 0
    assert _child(tmp_path, scenario, point) == -signal.SIGKILL
    return child.open_db(tmp_path)


def assert_consistent(db: MetadataDB) -> None:
    """Every record in every namespace has its blob, with the right bytes."""
    for ns in db.namespaces.list():
        cs = db.content_store(ns)
        for info in cs.walk():
            assert digest_of(read_blob(cs, info.digest)) == info.digest
            assert db.backend.info(info.digest).size == info.size


def assert_half_resumes(db: MetadataDB) -> None:
    cs = db.content_store(child.NS)
    with cs.writer("half", total=len(child.HALF), expected=digest_of(child.HALF)) as w:
        offset = w.status().offset
        assert offset == len(child.HALF) // 2
        w.write(child.HALF[offset:])
        w.commit(len(child.HALF), digest_of(child.HALF))
    assert read_blob(cs, digest_of(child.HALF)) == child.HALF


def test_crash_between_backend_commit_and_record(tmp_path: Path) -> None:
    db = crash(tmp_path, "commit-big", "commit:after-backend")
    try:
        cs = db.content_store(child.NS)
        victim = digest_of(child.BIG_VICTIM)
        assert_consistent(db)
        with pytest.raises(NotFound):
            cs.info(victim)  # the record was never written...
        assert db.backend.info(victim).size == len(child.BIG_VICTIM)  # ...the blob was
        assert [s.ref for s in cs.list_statuses()] == ["half"]  # victim's ingest is consumed
        result = db.garbage_collect()  # dirty since open: the orphan goes
        assert result.backend_blobs == (victim,)
        assert_consistent(db)
        assert_half_resumes(db)
        with cs.writer("victim") as w:  # the interrupted ref starts over and commits
            assert w.status().offset == 0
            w.write(child.BIG_VICTIM)
            w.commit(len(child.BIG_VICTIM), victim)
        assert read_blob(cs, victim) == child.BIG_VICTIM
    finally:
        db.close()


@pytest.mark.parametrize("scenario", ["commit", "commit-big"])
def test_crash_after_the_record(tmp_path: Path, scenario: str) -> None:
    db = crash(tmp_path, scenario, "commit:after-record")
    try:
        cs = db.content_store(child.NS)
        data = child.VICTIM if scenario == "commit" else child.BIG_VICTIM
        assert read_blob(cs, digest_of(data)) == data
        with pytest.raises(NotFound):
            cs.status("victim")
        assert_consistent(db)
        assert_half_resumes(db)
    finally:
        db.close()


def _unsettled(db: MetadataDB) -> list[str]:
    with db._sql.read() as conn:
        return [row[0] for row in conn.execute("SELECT digest FROM unsettled_blobs")]


@pytest.mark.parametrize("point", ["commit:inline-after-record", "commit:inline-after-link"])
@pytest.mark.parametrize("damage", ["none", "empty", "short", "missing"])
def test_crash_inside_a_one_sync_commit(tmp_path: Path, point: str, damage: str) -> None:
    # a small blob's record and bytes were durable in one transaction; its file was not
    # linked yet, or linked unsynced (a power loss may leave it empty, short or gone)
    assert _child(tmp_path, "setup", None) == 0
    assert _child(tmp_path, "commit", point) == -signal.SIGKILL
    victim = digest_of(child.VICTIM)
    path = tmp_path / "content" / "blobs" / "sha256" / victim.partition(":")[2]
    assert path.exists() == (point == "commit:inline-after-link")
    if damage != "none" and path.exists():
        if damage == "missing":
            path.unlink()
        else:
            os.chmod(path, 0o644)
            path.write_bytes(b"" if damage == "empty" else child.VICTIM[:7])
    db = child.open_db(tmp_path)  # settles what the crash left before it serves
    try:
        assert path.read_bytes() == child.VICTIM  # written out (durably) at open
        assert _unsettled(db) == []
        cs = db.content_store(child.NS)
        assert read_blob(cs, victim) == child.VICTIM
        with pytest.raises(NotFound):
            cs.status("victim")  # the ingest was consumed by the commit
        assert_consistent(db)
        db.garbage_collect()  # the victim is unrooted: it goes, record and file alike
        assert_consistent(db)
        assert _unsettled(db) == []
        assert_half_resumes(db)
    finally:
        db.close()


def test_crash_while_opening_a_writer(tmp_path: Path) -> None:
    db = crash(tmp_path, "open", "writer:after-backend-open")
    try:
        cs = db.content_store(child.NS)
        with pytest.raises(NotFound):
            cs.status("opened")  # the record was rolled back
        result = db.garbage_collect()
        # a new backend ingest has no directory until it is closed or grows, so the
        # crash usually left nothing; without O_TMPFILE it left an orphan for GC
        assert result.backend_ingests in ((), (backend_ref(child.NS, "opened"),))
        assert "crash/1/opened" not in set(db.backend.walk_status_refs())
        assert_consistent(db)
        assert_half_resumes(db)
    finally:
        db.close()


def test_crash_after_the_unsynced_open_record(tmp_path: Path) -> None:
    # the open's transaction skips the WAL fsync: a killed process still leaves it
    db = crash(tmp_path, "open", "writer:after-record")
    try:
        cs = db.content_store(child.NS)
        with db._sql.read() as conn:  # the record survived the kill...
            assert conn.execute(
                "SELECT backend_ref FROM ingests WHERE namespace = ? AND ref = 'opened'",
                (child.NS,),
            ).fetchone() == (backend_ref(child.NS, "opened"),)
        with pytest.raises(NotFound):
            cs.status("opened")  # ...its backend ingest, pending in the dead process, did not
        db.garbage_collect()
        assert_consistent(db)
        assert_half_resumes(db)
        with cs.writer("opened") as w:  # the ref starts over
            assert w.status().offset == 0
            w.write(b"resumed")
            w.commit(7, digest_of(b"resumed"))
        assert read_blob(cs, digest_of(b"resumed")) == b"resumed"
    finally:
        db.close()


@pytest.mark.parametrize("point", ["gc:after-sweep", "gc:after-backend-delete"])
def test_crash_inside_gc(tmp_path: Path, point: str) -> None:
    db = crash(tmp_path, "gc", point)
    try:
        cs = db.content_store(child.NS)
        unrooted = {digest_of(data) for data in child.UNROOTED}
        for dgst in unrooted:
            with pytest.raises(NotFound):
                cs.info(dgst)  # the sweep committed before the crash
        assert_consistent(db)
        left = {info.digest for info in db.backend.walk()} & unrooted
        if point == "gc:after-backend-delete":
            assert len(left) == 1  # one of the two was deleted before the crash
        result = db.garbage_collect()
        assert set(result.backend_blobs) == left
        assert not {info.digest for info in db.backend.walk()} & unrooted
        assert_consistent(db)
        assert_half_resumes(db)
    finally:
        db.close()
