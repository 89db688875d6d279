"""Debian's containerd 1.6.20 using a plain ``contentd serve`` as its proxy content plugin.

No contentd config at all: containerd's header-less calls land in contentd's pinned
namespace (``containerd-proxy``). containerd's own GC then deletes there, and only there:
another tenant's record of the same bytes keeps them.
"""

from __future__ import annotations

import hashlib
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.daemon.harness import QUIET_GC, ServeProcess
from tests.peers.fixtures import ContainerdFactory
from tests.peers.process import clean_env

pytestmark = pytest.mark.containerd


@pytest.fixture
def contentd() -> Iterator[ServeProcess]:
    # contentd's own GC stays quiet so that the tenant's unleased record is not what goes
    with ServeProcess(config=QUIET_GC) as daemon:
        yield daemon


def _blob(seed: bytes, size: int) -> tuple[bytes, str]:
    data = (hashlib.sha256(seed).digest() * (size // 32 + 1))[:size]
    return data, "sha256:" + hashlib.sha256(data).hexdigest()


def _contentd_ctr(daemon: ServeProcess, ns: str, *args: str, input: bytes | None = None) -> bytes:
    # no preexec_fn: this process may hold gRPC threads
    return subprocess.run(
        ["ctr", "--address", str(daemon.socket), "--namespace", ns, *args],
        input=input,
        stdin=None if input is not None else subprocess.DEVNULL,
        capture_output=True,
        timeout=60,
        env=clean_env(),
        check=True,
    ).stdout


def test_containerd_uses_contentd_and_its_gc_stays_in_its_namespace(
    contentd: ServeProcess, containerd_peer_factory: ContainerdFactory
) -> None:
    shared, shared_digest = _blob(b"shared", 300_000)
    own, own_digest = _blob(b"containerd only", 5000)
    # another tenant of contentd holds the shared bytes first
    _contentd_ctr(contentd, "tenant", "content", "ingest", "t", input=shared)

    peer = containerd_peer_factory(
        f"""
version = 2
disabled_plugins = ["io.containerd.content.v1.content"]
[proxy_plugins.contentd]
  type = "content"
  address = "{contentd.socket}"
"""
    )
    peer.ctr("content", "ingest", "c1", input=shared)
    peer.ctr("content", "ingest", "c2", input=own)
    assert set(peer.ctr("content", "ls", "-q").stdout.decode().split()) == {
        shared_digest,
        own_digest,
    }
    assert peer.ctr("content", "get", shared_digest).stdout == shared

    pinned = set(_contentd_ctr(contentd, "containerd-proxy", "content", "ls", "-q").split())
    assert pinned == {shared_digest.encode(), own_digest.encode()}
    # the bytes live once in contentd's local store
    blobs = Path(contentd.root) / "io.containerd.content.v1.content" / "blobs" / "sha256"
    assert sorted(p.name for p in blobs.iterdir()) == sorted(
        [shared_digest.split(":")[1], own_digest.split(":")[1]]
    )

    # containerd deletes and collects (its backend cleanup walks and deletes in contentd)
    assert peer.ctr("content", "rm", shared_digest).stdout.decode().strip() == shared_digest
    peer.ctr("content", "prune", "references")
    assert shared_digest.encode() not in _contentd_ctr(
        contentd, "containerd-proxy", "content", "ls", "-q"
    )
    # the other tenant's record, and the bytes, are untouched
    assert _contentd_ctr(contentd, "tenant", "content", "get", shared_digest) == shared
    assert (blobs / shared_digest.split(":")[1]).exists()
