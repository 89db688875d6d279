from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from contentd.s3 import ReadCache, S3Location, S3Store, SqliteIngestStates, make_client
from tests.peers.fixtures import S3_BUCKET
from tests.peers.seaweedfs import SeaweedPeer

PART = 5 << 20

StoreFactory = Callable[..., S3Store]


@pytest.fixture
def make_store(
    seaweedfs_peer: SeaweedPeer, s3_prefix: str, tmp_path: Path, request: pytest.FixtureRequest
) -> StoreFactory:
    """``make_store(node="a", cache_size=64 MiB, cache=True)``: an S3Store on the test's
    prefix; ``node`` names its local directory (spool, cache), the ingest database is shared
    by every node of the test (as PostgreSQL would be)."""

    def make(node: str = "a", cache_size: int = 64 << 20, cache: bool = True) -> S3Store:
        location = S3Location(bucket=S3_BUCKET, endpoint=seaweedfs_peer.endpoint, prefix=s3_prefix)
        store = S3Store(
            make_client(location, session=seaweedfs_peer.session()),
            location,
            states=SqliteIngestStates(tmp_path / "ingests.db"),
            spool_dir=tmp_path / node / "spool",
            cache=ReadCache(tmp_path / node / "cache", cache_size) if cache else None,
            part_size=PART,
        )
        request.addfinalizer(store.close)
        return store

    return make


def forget_written(store: S3Store, digest: str) -> None:
    """Drop the copy of ``digest`` the node's read cache kept as the node wrote it, so
    the next read fetches it from S3 (as a first read on another node does)."""
    assert store.cache is not None and store.cache.has(digest)
    store.cache.remove(digest)


class FailCalls:
    """Fail the next ``count`` calls of ``operation`` as a dropped connection would
    (a botocore ``before-call`` hook: works on any server, SeaweedFS or moto)."""

    def __init__(self, store: S3Store, operation: str, count: int = 1) -> None:
        self.count = count
        store.client.meta.events.register(f"before-call.s3.{operation}", self)

    def __call__(self, **kwargs: Any) -> None:
        import botocore.exceptions

        if self.count > 0:
            self.count -= 1
            raise botocore.exceptions.EndpointConnectionError(endpoint_url="http://s3.invalid")
