"""Conformance factories for the S3 store, against the session's SeaweedFS.

* ``s3``: :class:`S3Store` alone (no label store, like containerd's backend store:
  deleting a missing blob and aborting a missing ref succeed), with a read cache;
* ``metadata-s3``: the metadata layer (SQLite) over an S3Store, as ``contentd serve``
  runs it with ``[plugins."io.contentd.content.v1.s3"]`` set;
* ``metadata-postgres-s3``: the metadata layer on PostgreSQL over an S3Store, which then
  keeps its ingest records in that database (the cluster set-up).

Each test gets its own key prefix in the session's bucket and its own spool, cache and
ingest-state directory; ``reopen`` is a second store on the same prefix and files.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from contentd import Store
from contentd.metadata import MetadataDB
from contentd.s3 import (
    ReadCache,
    S3Location,
    S3Store,
    SqlIngestStates,
    SqliteIngestStates,
    make_client,
)
from tests.conformance.harness import Harness, register
from tests.peers.fixtures import S3_BUCKET
from tests.peers.seaweedfs import SeaweedPeer

NAMESPACE = "testing"


def s3_store(peer: SeaweedPeer, prefix: str, root: Path, request: pytest.FixtureRequest) -> S3Store:
    """An S3Store on ``peer``'s test bucket under ``prefix``, its local files in ``root``."""
    location = S3Location(bucket=S3_BUCKET, endpoint=peer.endpoint, prefix=prefix)
    client = make_client(location, session=peer.session())
    root.mkdir(parents=True, exist_ok=True)
    states = SqliteIngestStates(root / "ingests.db")
    request.addfinalizer(states.close)
    return S3Store(
        client,
        location,
        states=states,
        spool_dir=root / "spool",
        cache=ReadCache(root / "cache", 64 << 20),
    )


@register("s3")
def _s3(tmp_path: Path, request: pytest.FixtureRequest) -> Harness:
    peer: SeaweedPeer = request.getfixturevalue("seaweedfs_peer")
    prefix: str = request.getfixturevalue("s3_prefix")
    root = tmp_path / "s3"
    return Harness(
        store=s3_store(peer, prefix, root, request),
        labels=False,
        missing_ok=True,
        reopen=lambda: s3_store(peer, prefix, root, request),
        extra={"peer": peer, "prefix": prefix, "root": root},
    )


def _metadata_s3(
    tmp_path: Path, request: pytest.FixtureRequest, *, postgres: bool = False
) -> Harness:
    peer: SeaweedPeer = request.getfixturevalue("seaweedfs_peer")
    prefix: str = request.getfixturevalue("s3_prefix")
    dsn = request.getfixturevalue("postgres_peer").create_database() if postgres else None
    root = tmp_path / "s3"
    path = tmp_path / "meta.db"
    store = s3_store(peer, prefix, root, request)
    db = MetadataDB(path, store, dsn=dsn)
    request.addfinalizer(db.close)
    if postgres:
        assert isinstance(store.states, SqlIngestStates)
        assert not isinstance(store.states, SqliteIngestStates)

    def reopen() -> Store:
        other = MetadataDB(path, s3_store(peer, prefix, root, request), dsn=dsn)
        request.addfinalizer(other.close)
        return other.content_store(NAMESPACE)

    return Harness(
        store=db.content_store(NAMESPACE),
        labels=True,
        missing_ok=False,
        truncate_zero_only=True,
        reopen=reopen,
        extra={"db": db, "namespace": NAMESPACE, "peer": peer, "prefix": prefix},
    )


@register("metadata-s3")
def _metadata_s3_sqlite(tmp_path: Path, request: pytest.FixtureRequest) -> Harness:
    return _metadata_s3(tmp_path, request)


@register("metadata-postgres-s3")
def _metadata_s3_postgres(tmp_path: Path, request: pytest.FixtureRequest) -> Harness:
    return _metadata_s3(tmp_path, request, postgres=True)
