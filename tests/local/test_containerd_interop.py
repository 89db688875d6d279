"""LocalStore and containerd 1.6.20 on the same content root, both ways.

containerd's backend refs are ``<namespace>/1/<ref>``: what ``ctr content
ingest REF`` writes in namespace ``default`` sits under ``default/1/REF``.
"""

from __future__ import annotations

import hashlib
import os
import random
import subprocess
import time
from pathlib import Path

import pytest

from contentd import LocalStore, read_blob
from contentd.content.digest import digest_of
from tests.peers.containerd import ContainerdPeer
from tests.peers.fixtures import ContainerdFactory

pytestmark = pytest.mark.containerd


def _ctr_ingest_partial(peer: ContainerdPeer, ref: str, part: bytes) -> None:
    """Start ``ctr content ingest``, feed ``part``, then kill ctr mid-stream."""
    proc = subprocess.Popen(
        ["ctr", "--address", peer.address, "-n", "default", "content", "ingest", ref],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert proc.stdin is not None
        proc.stdin.write(part)
        proc.stdin.flush()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            out = peer.ctr("content", "active").stdout.decode()
            if any(line.split()[:2] == [ref, _human(len(part))] for line in out.splitlines()[1:]):
                break
            time.sleep(0.05)
        else:
            pytest.fail(f"ingest {ref} never reached {len(part)} bytes: {out}")
    finally:
        proc.kill()
        proc.wait(10)
    # containerd closes the writer when the stream dies; wait until the ref is free
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        out = peer.ctr("content", "active").stdout.decode()
        if ref in out:
            return
        time.sleep(0.05)


def _human(n: int) -> str:
    """ctr's SIZE column: decimal units, 4 significant digits."""
    units = ["B", "kB", "MB", "GB", "TB"]
    size = float(n)
    i = 0
    while size >= 1000 and i < len(units) - 1:
        size /= 1000
        i += 1
    return f"{size:.4g}{units[i]}"


def test_blobs_written_by_ctr_are_read_by_localstore(
    containerd_peer_factory: ContainerdFactory,
) -> None:
    peer = containerd_peer_factory()
    blobs = [random.Random(i).randbytes(n) for i, n in enumerate([0, 1, 4096, 3 * 1024 * 1024 + 7])]
    for i, data in enumerate(blobs):
        peer.ctr("content", "ingest", f"blob-{i}", input=data)
    store = LocalStore(peer.content_root, readonly=True)
    found = {info.digest: info for info in store.walk()}
    for data in blobs:
        d = digest_of(data)
        assert found[d].size == len(data)
        assert read_blob(store, d) == data
        with store.reader_at(d) as ra:
            assert ra.read_at(len(data) // 2, 10) == data[len(data) // 2 : len(data) // 2 + 10]
    assert found[digest_of(blobs[2])].labels is None


def test_interrupted_ctr_ingest_is_resumed_by_localstore(
    containerd_peer_factory: ContainerdFactory,
) -> None:
    peer = containerd_peer_factory()
    data = random.Random(7).randbytes(2 * 1024 * 1024 + 123)
    part = data[: 1024 * 1024]  # ctr reads stdin in whole 1 MiB buffers
    _ctr_ingest_partial(peer, "resume-me", part)

    store = LocalStore(peer.content_root)
    statuses = {s.ref: s for s in store.list_statuses()}
    backend_ref = "default/1/resume-me"
    assert statuses[backend_ref].offset == len(part)
    ingest = Path(peer.content_root) / "ingest" / hashlib.sha256(backend_ref.encode()).hexdigest()
    assert (ingest / "ref").read_bytes() == backend_ref.encode()

    with store.writer(backend_ref) as w:
        assert w.status().offset == len(part)
        assert w.digest() == digest_of(part)
        w.write(data[len(part) :])
        w.commit(len(data), digest_of(data))
    blob = Path(peer.content_root) / "blobs" / "sha256" / hashlib.sha256(data).hexdigest()
    assert blob.read_bytes() == data
    assert not ingest.exists()


def test_ingest_started_by_localstore_is_resumed_by_containerd(
    containerd_peer_factory: ContainerdFactory, tmp_path: Path
) -> None:
    peer = containerd_peer_factory()
    data = random.Random(11).randbytes(1024 * 1024 + 99)
    store = LocalStore(peer.content_root)
    w = store.writer("default/1/from-contentd")
    w.write(data[:300_000])
    w.close()

    # containerd sees our ingest on its backend and resumes it at our offset (ctr skips
    # ahead in its input by seeking, so give it a file rather than a pipe)
    source = tmp_path / "blob"
    source.write_bytes(data)
    with source.open("rb") as stdin:
        subprocess.run(
            ["ctr", "--address", peer.address, "content", "ingest", "from-contentd"],
            stdin=stdin,
            check=True,
            timeout=60,
            capture_output=True,
        )
    d = digest_of(data)
    assert peer.ctr("content", "get", d).stdout == data
    assert d in peer.ctr("content", "ls", "-q").stdout.decode().split()
    assert store.info(d).size == len(data)
    assert store.list_statuses() == []
    mode = os.stat(Path(peer.content_root) / "blobs" / "sha256" / d[7:]).st_mode
    assert mode & 0o333 == 0


def test_blob_committed_by_localstore_is_served_by_containerd_backend(
    containerd_peer_factory: ContainerdFactory,
) -> None:
    """Same bytes ingested by ctr afterwards: containerd finds the blob already there."""
    peer = containerd_peer_factory()
    data = b"committed by contentd\n" * 100
    store = LocalStore(peer.content_root)
    with store.writer("x") as w:
        w.write(data)
        w.commit(0, "")
    peer.ctr("content", "ingest", "same-bytes", input=data)
    assert peer.ctr("content", "get", digest_of(data)).stdout == data
