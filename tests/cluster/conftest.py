"""Fixtures for cluster tests: nodes (MetadataDB instances, or ``contentd serve``
processes) sharing one PostgreSQL database of the session's private cluster."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from contentd import LocalStore
from contentd.metadata import MetadataDB
from tests.cluster.nodes import Cluster
from tests.peers.postgres import PostgresPeer
from tests.peers.seaweedfs import SeaweedPeer

MakeNode = Callable[..., MetadataDB]


@pytest.fixture
def cluster_dsn(postgres_peer: PostgresPeer) -> str:
    return postgres_peer.create_database("cluster")


@pytest.fixture
def make_node(tmp_path: Path, cluster_dsn: str) -> Iterator[MakeNode]:
    """``make_node(name, **kw)``: a MetadataDB on the shared database and a shared
    content directory (one backend, as every node of a cluster sees one bucket).

    Each node reaches the directory through its own symlink: the local store's
    in-process ref locks are keyed by root path, so nodes in one process hold
    them apart as separate processes would.
    """
    nodes: list[MetadataDB] = []
    shared = tmp_path / "content"
    shared.mkdir()

    def make(name: str = "node", **kw: object) -> MetadataDB:
        root = tmp_path / f"content-{name}"
        if not root.exists():
            root.symlink_to(shared)
        backend = kw.pop("backend", None) or LocalStore(root)
        db = MetadataDB(None, backend, dsn=cluster_dsn, node=name, **kw)  # type: ignore[arg-type]
        nodes.append(db)
        return db

    yield make
    for db in nodes:
        db.close()


@pytest.fixture
def cluster(
    postgres_peer: PostgresPeer, seaweedfs_peer: SeaweedPeer, s3_prefix: str
) -> Iterator[Cluster]:
    """``contentd serve`` nodes on one database and one bucket prefix (started on demand)."""
    nodes = Cluster(postgres_peer, seaweedfs_peer, s3_prefix)
    try:
        yield nodes
    finally:
        nodes.close()
