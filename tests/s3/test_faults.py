"""Faults SeaweedFS cannot be made to produce on demand, injected in-process (moto).

moto serves S3 in this process; a botocore ``before-call`` hook fails the calls a test
picks. Everything else about the S3 store is tested against SeaweedFS.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from contentd import Unavailable, read_blob
from contentd.content.digest import digest_of
from contentd.metadata import health
from contentd.s3 import ReadCache, S3Location, S3Store, SqliteIngestStates, make_client
from tests.s3.conftest import PART, FailCalls, forget_written

moto = pytest.importorskip("moto")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[S3Store]:
    import boto3

    with moto.mock_aws():
        session = boto3.session.Session(
            aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
        )
        location = S3Location(bucket="faults")
        client = make_client(location, session=session, attempts=1)
        client.create_bucket(Bucket="faults")
        s = S3Store(
            client,
            location,
            states=SqliteIngestStates(tmp_path / "ingests.db"),
            spool_dir=tmp_path / "spool",
            cache=ReadCache(tmp_path / "cache", 64 << 20),
            part_size=PART,
        )
        yield s
        s.close()


def test_part_upload_retried_once_on_the_writers_thread(store: S3Store) -> None:
    data = os.urandom(3 * PART + 100)
    fail = FailCalls(store, "UploadPart", count=1)  # the background attempt of part 1
    with store.writer("layer", total=len(data)) as w:
        w.write(data)
        w.commit(len(data), digest_of(data))
    assert fail.count == 0
    assert read_blob(store, digest_of(data)) == data


def test_failed_part_upload_is_unavailable_and_the_ingest_goes_on(store: S3Store) -> None:
    data = os.urandom(3 * PART + 100)
    fail = FailCalls(store, "UploadPart", count=1000)
    w = store.writer("layer", total=len(data))
    with pytest.raises(Unavailable, match="unreachable"):
        w.write(data)  # the third part waits for room: the first one's retry fails
        w.commit(len(data), digest_of(data))
    w.close()
    record = store.states.get("layer")
    assert record is not None and record.parts == ()  # nothing recorded that S3 lacks
    fail.count = 0
    with store.writer("layer", total=len(data)) as w:
        assert w.status().offset == 0  # the record's offset: resume from there
        w.write(data)
        w.commit(len(data), digest_of(data))
    assert read_blob(store, digest_of(data)) == data


def test_failed_commit_keeps_the_ingest_for_a_retry(store: S3Store) -> None:
    data = os.urandom(PART + 5)
    FailCalls(store, "CompleteMultipartUpload")
    w = store.writer("layer", expected=digest_of(data))
    w.write(data)
    with pytest.raises(Unavailable):
        w.commit(len(data), digest_of(data))
    with store.writer("layer", expected=digest_of(data)) as w:
        assert w.status().offset == len(data)
        w.commit(len(data), digest_of(data))
    assert read_blob(store, digest_of(data)) == data


def test_failed_read_is_unavailable_and_caches_nothing(store: S3Store) -> None:
    data = b"x" * 1000
    with store.writer("small") as w:
        w.write(data)
        w.commit(len(data))
    forget_written(store, digest_of(data))
    failing = FailCalls(store, "GetObject", count=1000)  # the fill's GET, then the ranged ones
    with pytest.raises(Unavailable):
        read_blob(store, digest_of(data))
    failing.count = 0
    assert store.cache is not None and store.cache.total_bytes == 0
    assert read_blob(store, digest_of(data)) == data


def test_an_outage_during_verification_is_no_verdict(store: S3Store) -> None:
    """A scrub whose reads fail because S3 is unreachable raises Unavailable: the blob is
    not judged (and so never quarantined) on an outage."""
    data = os.urandom(3 << 20)
    with store.writer("scrubbed") as w:
        w.write(data)
        w.commit(len(data), digest_of(data))
    forget_written(store, digest_of(data))
    failing = FailCalls(store, "GetObject", count=1000)
    with pytest.raises(Unavailable):
        health.verify_blob(store, digest_of(data))
    failing.count = 0
    verdict = health.verify_blob(store, digest_of(data))
    assert verdict is not None and verdict.ok
