"""A PostgreSQL outage after start: callers get Unavailable, nothing acknowledged is
lost, and the metadata layer works again once the server is back (its pooled
connections are made again)."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest

from contentd import Descriptor, LocalStore, Unavailable, read_blob, write_blob
from contentd.content.digest import digest_of
from contentd.metadata import MetadataDB
from tests.peers.postgres import PostgresPeer, require_postgres


@pytest.fixture
def own_postgres() -> Iterator[PostgresPeer]:
    require_postgres()
    with PostgresPeer() as peer:
        yield peer


def _put(db: MetadataDB, data: bytes, ref: str) -> str:
    dgst = digest_of(data)
    desc = Descriptor(digest=dgst, size=len(data))
    write_blob(db.content_store("ns"), ref, io.BytesIO(data), desc)
    return dgst


def test_outage_is_unavailable_and_loses_nothing(
    own_postgres: PostgresPeer, tmp_path: Path
) -> None:
    db = MetadataDB(None, LocalStore(tmp_path / "content"), dsn=own_postgres.create_database())
    try:
        before = _put(db, b"acknowledged before the outage", "before")
        own_postgres.stop()
        with pytest.raises(Unavailable, match="metadata database"):
            db.content_store("ns").info(before)
        with pytest.raises(Unavailable):  # (write_blob would retry: Unavailable is transient)
            db.content_store("ns").writer("during")
        own_postgres.restart()
        assert read_blob(db.content_store("ns"), before) == b"acknowledged before the outage"
        after = _put(db, b"after the outage", "after")
        assert {i.digest for i in db.content_store("ns").walk()} == {before, after}
    finally:
        db.close()
