"""The read-only content commands against a private containerd 1.6.20, compared with ctr."""

from __future__ import annotations

import hashlib
import os
import re

import pytest

from contentd.cli.output import info_from_json
from contentd.proxy import ProxyStore
from tests.cli.conftest import Cli
from tests.peers import ContainerdPeer

pytestmark = pytest.mark.containerd

ROOT = "containerd.io/gc.root=cli-test"


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@pytest.fixture
def ctrd(containerd_peer: ContainerdPeer, ctr_namespace: str) -> Cli:
    return Cli(containerd_peer.address, ctr_namespace)


def _store(peer: ContainerdPeer, namespace: str, data: bytes) -> str:
    """A blob put there by ctr itself, kept from GC by a root label."""
    peer.ctr("content", "ingest", f"put-{sha(data)[7:19]}", namespace=namespace, input=data)
    digest = sha(data)
    peer.ctr("content", "label", digest, ROOT, namespace=namespace)
    return digest


_AGE = re.compile(r"\t(Less than a second|\d+ seconds?|About a minute)\t")


def test_ls_matches_ctr(containerd_peer: ContainerdPeer, ctrd: Cli) -> None:
    digests = [_store(containerd_peer, ctrd.namespace, os.urandom(n)) for n in (1, 1000, 4096)]
    assert sorted(ctrd("content", "ls", "-q").ok().lines) == sorted(digests)
    for _ in range(5):  # an age may tick over between the two commands: try again
        theirs = containerd_peer.ctr("content", "ls", namespace=ctrd.namespace).stdout.decode()
        ours = ctrd("content", "ls").ok().text
        if _AGE.findall(theirs) == _AGE.findall(ours):
            break
    their_lines = theirs.splitlines()
    assert ours.splitlines()[0] == their_lines[0]
    assert sorted(ours.splitlines()[1:]) == sorted(their_lines[1:])
    assert ctrd("content", "ls", "-q", f"digest=={digests[1]}").ok().lines == [digests[1]]
    objs = ctrd("--output", "json", "content", "ls").ok().json()
    assert {o["digest"]: o["size"] for o in objs} == {
        d: n for d, n in zip(digests, (1, 1000, 4096), strict=True)
    }


def test_info_and_get(containerd_peer: ContainerdPeer, ctrd: Cli) -> None:
    data = os.urandom(3 * 1024 * 1024 + 5)
    digest = _store(containerd_peer, ctrd.namespace, data)
    assert ctrd("content", "get", digest).ok().out == data
    assert ctrd("content", "get", digest, "--offset", "10", "--size", "20").ok().out == data[10:30]
    obj = ctrd("--output", "json", "content", "info", digest).ok().json()
    with ProxyStore(containerd_peer.address, ctrd.namespace) as store:
        assert info_from_json(obj) == store.info(digest)
    assert obj["labels"] == {"containerd.io/gc.root": "cli-test"}
    missing = ctrd("content", "info", sha(b"absent"))
    assert missing.code == 1 and missing.err.startswith("contentd: not found: ")
    bad = ctrd("content", "ls", "labels.==")
    assert bad.code == 1 and bad.err.startswith("contentd: invalid argument: ")


def test_active_matches_ctr(containerd_peer: ContainerdPeer, ctrd: Cli) -> None:
    with ProxyStore(containerd_peer.address, ctrd.namespace) as store:
        writer = store.writer("cli-active", total=1000)
        writer.write(b"y" * 300)
        try:
            ours = ctrd("content", "active").ok().lines
            theirs = containerd_peer.ctr("content", "active", namespace=ctrd.namespace)
            assert ours[0] == theirs.stdout.decode().splitlines()[0]
            assert [c for c in ours[1].split("\t") if c][:2] == ["cli-active", "300B"]
            objs = ctrd("--output", "json", "content", "active", "ref==cli-active").json()
            assert objs[0]["offset"] == 300 and objs[0]["total"] == 1000
        finally:
            writer.close()
            store.abort("cli-active")


def test_gc_says_containerd_has_no_gc_service(containerd_peer: ContainerdPeer, ctrd: Cli) -> None:
    result = ctrd("gc", "--dry-run")
    assert result.code == 1
    assert result.err.strip() == (
        f"contentd: not implemented: the server at unix:{containerd_peer.address} has no "
        "contentd.services.gc.v1.GC service; containerd collects garbage on its own schedule"
    )


def test_version_of_containerd(ctrd: Cli) -> None:
    lines = ctrd("version").ok().lines
    assert lines[1].startswith("server 1.6.20")
