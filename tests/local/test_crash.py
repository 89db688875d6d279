"""SIGKILL a process that is ingesting and committing: what is left is consistent.

After every kill, every commit the worker saw acknowledged is there, each file under
``blobs/`` hashes to its name (no torn or unverified blob is ever published) and every
ingest left behind (at least the worker's long upload) resumes with its bytes and commits.
"""

from __future__ import annotations

import hashlib
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from contentd import LocalStore
from contentd.content.digest import digest_of

WORKER = textwrap.dedent(
    """
    import os, random, sys
    from contentd import LocalStore
    root, seed = sys.argv[1], int(sys.argv[2])
    rng = random.Random(seed)
    store = LocalStore(root)
    # one long upload that is never committed: there is always an ingest to resume
    # (past 1 MiB, so it has its directory on disk: smaller new ones are pending)
    keep = store.writer(f"keep-{seed}")
    keep.write(rng.randbytes((1 << 20) + 4096))
    i = 0
    while True:
        keep.write(rng.randbytes(rng.choice([1, 4096, 65536])))
        data = rng.randbytes(rng.choice([0, 1, 4096, 65536, 1 << 20, 3 << 20]))
        w = store.writer(f"ref-{seed}-{i % 7}")
        w.truncate(0)
        for off in range(0, len(data), 1 << 16):
            w.write(data[off : off + (1 << 16)])
        try:
            w.commit(len(data))
        except Exception:
            pass
        else:  # acknowledged: from here on the blob must survive any crash
            print(w.digest(), flush=True)
        i += 1
    """
)


@pytest.mark.parametrize("seed", range(6))
def test_kill_during_ingest_and_commit(tmp_path: Path, seed: int) -> None:
    root = tmp_path / "content"
    LocalStore(root)
    proc = subprocess.Popen(
        [sys.executable, "-c", WORKER, str(root), str(seed)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    acknowledged: list[str] = []
    try:
        assert proc.stdout is not None
        rng = random.Random(seed)
        while len(acknowledged) < 1 + seed % 3:  # some commits first, then a seeded moment
            line = proc.stdout.readline()
            assert line, proc.stderr.read() if proc.stderr else ""
            acknowledged.append(line.strip())
        time.sleep(rng.random() * 0.3)
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        acknowledged += [line.strip() for line in proc.stdout.read().splitlines()]
    finally:
        proc.kill()
        proc.wait(10)

    blobs = root / "blobs" / "sha256"
    published = list(blobs.iterdir())
    names = {blob.name for blob in published}
    assert acknowledged and all(d.removeprefix("sha256:") in names for d in acknowledged)
    for blob in published:
        h = hashlib.sha256()
        with blob.open("rb") as f:
            while chunk := f.read(1 << 20):
                h.update(chunk)
        assert h.hexdigest() == blob.name, f"torn blob {blob.name}"

    store = LocalStore(root)
    statuses = store.list_statuses()
    assert f"keep-{seed}" in {status.ref for status in statuses}
    for status in statuses:
        data_path = root / "ingest" / hashlib.sha256(status.ref.encode()).hexdigest() / "data"
        on_disk = data_path.read_bytes()
        with store.writer(status.ref) as w:
            assert w.status().offset == len(on_disk)
            assert w.digest() == digest_of(on_disk)
            w.write(b"!")
            try:
                w.commit(len(on_disk) + 1, digest_of(on_disk + b"!"))
            except Exception as err:  # the same bytes may have been committed already
                assert "already exists" in str(err)
    assert store.list_statuses() == []
