"""What the S3 store does beyond the conformance suite, against a real SeaweedFS."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import textwrap
from datetime import timedelta
from pathlib import Path

import pytest

from contentd import FailedPrecondition, NotFound, Unavailable, read_blob
from contentd.content.digest import digest_of
from contentd.s3 import S3Location, SqlIngestStates, check_bucket, make_client
from contentd.s3.reader import RangedReaderAt
from tests.peers.fixtures import S3_BUCKET
from tests.peers.postgres import PostgresPeer
from tests.peers.seaweedfs import SeaweedPeer
from tests.s3.conftest import PART, FailCalls, StoreFactory, forget_written


def _keys(peer: SeaweedPeer, prefix: str) -> list[str]:
    out = peer.client().list_objects_v2(Bucket=S3_BUCKET, Prefix=prefix)
    return sorted(o["Key"][len(prefix) :] for o in out.get("Contents", ()))


def test_blob_keys_and_multipart_without_copy_when_digest_known(
    make_store: StoreFactory, seaweedfs_peer: SeaweedPeer, s3_prefix: str
) -> None:
    store = make_store()
    data = os.urandom(2 * PART + 1234)
    dgst = digest_of(data)
    with store.writer("known", total=len(data), expected=dgst) as w:
        w.write(data)
        w.commit(len(data), dgst)
    assert store.stats.parts == 3 and store.stats.copies == 0
    other = os.urandom(PART + 10)
    with store.writer("unknown") as w:
        w.write(other)
        w.commit(len(other))
    assert store.stats.copies == 1  # staged, then copied server-side
    assert _keys(seaweedfs_peer, s3_prefix) == sorted(
        f"blobs/sha256/{d[7:]}" for d in (dgst, digest_of(other))
    )  # no staging object left behind
    assert read_blob(store, dgst) == data
    assert read_blob(store, digest_of(other)) == other


def test_resume_on_another_node_after_a_kill(
    make_store: StoreFactory, seaweedfs_peer: SeaweedPeer, s3_prefix: str, tmp_path: Path
) -> None:
    """Node A uploads two parts and is killed with 1 MiB in its spool; node B (its own
    spool, the shared ingest records) goes on from the last part; A's spool is ignored."""
    data = os.urandom(3 * PART)
    (tmp_path / "data").write_bytes(data)
    script = textwrap.dedent(
        f"""
        import os, time
        from contentd.s3 import ReadCache, S3Location, S3Store, SqliteIngestStates, make_client
        import boto3
        loc = S3Location(bucket={S3_BUCKET!r}, endpoint={seaweedfs_peer.endpoint!r},
                         prefix={s3_prefix!r})
        session = boto3.session.Session(aws_access_key_id={seaweedfs_peer.access_key!r},
            aws_secret_access_key={seaweedfs_peer.secret_key!r}, region_name="us-east-1")
        store = S3Store(make_client(loc, session=session), loc,
            states=SqliteIngestStates({str(tmp_path / "ingests.db")!r}),
            spool_dir={str(tmp_path / "a" / "spool")!r}, part_size={PART})
        data = open({str(tmp_path / "data")!r}, "rb").read()
        w = store.writer("layer", total=len(data))
        w.write(data[: 2 * {PART} + (1 << 20)])
        for _ in range(600):  # parts go up in the background: wait until both are recorded
            if len(store.states.get("layer").parts) == 2:
                break
            time.sleep(0.05)
            w.write(b"")  # records the parts finished meanwhile
        os.kill(os.getpid(), 9)
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=120)
    assert proc.returncode == -9, proc.stderr.decode()
    b = make_store("b")
    assert b.status("layer").offset == 2 * PART  # B cannot see A's spool
    with b.writer("layer", total=len(data)) as w:
        assert w.status().offset == 2 * PART
        assert w.digest() == digest_of(data[: 2 * PART])
        w.write(data[2 * PART :])
        w.commit(len(data), digest_of(data))
    assert read_blob(b, digest_of(data)) == data
    assert list(b.list_statuses()) == []


def test_resume_on_the_same_node_keeps_the_spool(make_store: StoreFactory) -> None:
    data = os.urandom(PART + 4321)
    a = make_store("a")
    w = a.writer("r", total=len(data))
    w.write(data[: PART + 1000])
    w.close()
    again = make_store("a")  # a restart: same spool, same records
    with again.writer("r", total=len(data)) as w:
        assert w.status().offset == PART + 1000
        w.write(data[PART + 1000 :])
        w.commit(len(data), digest_of(data))
    assert read_blob(again, digest_of(data)) == data


def test_second_read_is_served_by_the_cache(make_store: StoreFactory) -> None:
    store = make_store()
    data = os.urandom(100_000)
    dgst = digest_of(data)
    with store.writer("c") as w:
        w.write(data)
        w.commit(len(data), dgst)
    assert store.cache is not None
    assert read_blob(store, dgst) == data
    gets, hits = store.stats.gets, store.cache.stats.hits
    for _ in range(3):
        with store.reader_at(dgst) as ra:
            assert ra.read_at(5000, 32768) == data[5000 : 5000 + 32768]
    assert store.stats.gets == gets  # no S3 request
    assert store.stats.ranged_gets == 0
    assert store.cache.stats.hits == hits + 3


def test_corrupt_cache_file_is_detected_and_refetched(make_store: StoreFactory) -> None:
    store = make_store()
    data = os.urandom(50_000)
    dgst = digest_of(data)
    with store.writer("c") as w:
        w.write(data)
        w.commit(len(data), dgst)
    assert read_blob(store, dgst) == data
    assert store.cache is not None
    path = Path(store.cache.root) / "sha256" / dgst[7:]
    with open(path, "r+b") as f:  # same size, one byte flipped
        f.seek(1234)
        f.write(bytes([data[1234] ^ 0xFF]))
    gets = store.stats.gets
    assert read_blob(store, dgst) == data
    assert store.cache.stats.corrupt == 1
    assert store.stats.gets == gets + 1
    # a new process (a restart) verifies its first open of every cache file again
    path.write_bytes(b"truncated")
    restarted = make_store()
    assert read_blob(restarted, dgst) == data
    assert restarted.cache is not None and restarted.cache.stats.corrupt == 1


def test_cache_is_bounded_least_recently_used_first(make_store: StoreFactory) -> None:
    store = make_store(cache_size=300_000)
    blobs = [os.urandom(120_000) for _ in range(3)]
    for i, data in enumerate(blobs):
        with store.writer(f"b{i}") as w:
            w.write(data)
            w.commit(len(data))
        forget_written(store, digest_of(data))  # the cache as the reads fill it
    d = [digest_of(b) for b in blobs]
    read_blob(store, d[0])
    read_blob(store, d[1])
    read_blob(store, d[0])  # d[1] is now the least recently used
    read_blob(store, d[2])
    assert store.cache is not None
    assert store.cache.total_bytes <= 300_000
    assert store.cache.stats.evictions == 1
    cached = {p.name for p in (Path(store.cache.root) / "sha256").iterdir()}
    assert cached == {d[0][7:], d[2][7:]}


def test_blob_larger_than_the_cache_is_read_by_ranges(make_store: StoreFactory) -> None:
    store = make_store(cache_size=1000)
    data = os.urandom(200_000)
    with store.writer("big") as w:
        w.write(data)
        w.commit(len(data))
    with store.reader_at(digest_of(data)) as ra:
        assert isinstance(ra, RangedReaderAt)
        assert ra.read_at(199_990, 100) == data[199_990:]
        assert ra.read_at(10, 20) == data[10:30]
    heads = store.stats.heads
    got = b""
    for offset in range(0, len(data), 32768):  # one reader per read, as containerd reads
        with store.reader_at(digest_of(data)) as ra:
            got += ra.read_at(offset, 32768)
    assert got == data
    assert store.stats.ranged_gets == 1  # one window, shared by every reader
    assert store.stats.heads == heads  # the size is remembered
    store.delete(digest_of(data))
    with pytest.raises(NotFound):
        store.reader_at(digest_of(data))


def test_delete_drops_the_cached_copy(make_store: StoreFactory) -> None:
    store = make_store()
    data = b"cached then deleted"
    with store.writer("d") as w:
        w.write(data)
        w.commit(len(data))
    assert read_blob(store, digest_of(data)) == data
    store.delete(digest_of(data))
    with pytest.raises(NotFound):
        store.reader_at(digest_of(data))


def test_wrong_credentials_are_a_clear_error(seaweedfs_peer: SeaweedPeer) -> None:
    secret = "not-the-secret-" + hashlib.sha256(b"x").hexdigest()[:8]
    location = S3Location(bucket=S3_BUCKET, endpoint=seaweedfs_peer.endpoint)
    client = make_client(location, session=seaweedfs_peer.session(secret_key=secret))
    with pytest.raises(FailedPrecondition) as err:
        check_bucket(client, location)
    assert "refused the credentials" in str(err.value)
    assert "AWS_SECRET_ACCESS_KEY" in str(err.value)
    assert secret not in str(err.value)


def test_missing_bucket_is_a_clear_error(seaweedfs_peer: SeaweedPeer) -> None:
    location = S3Location(bucket="no-such-bucket-here", endpoint=seaweedfs_peer.endpoint)
    client = make_client(location, session=seaweedfs_peer.session())
    with pytest.raises(FailedPrecondition, match="bucket does not exist"):
        check_bucket(client, location)


def test_orphan_multipart_uploads_are_aborted(
    make_store: StoreFactory, seaweedfs_peer: SeaweedPeer, s3_prefix: str
) -> None:
    store = make_store()
    orphan = seaweedfs_peer.client().create_multipart_upload(
        Bucket=S3_BUCKET, Key=f"{s3_prefix}ingests/orphan"
    )["UploadId"]
    with store.writer("live") as w:
        w.write(os.urandom(PART))  # a part: a real multipart upload with a record
        live = store.states.get("live")
        assert live is not None and live.upload_id
        aborted = store.abort_orphan_uploads(older_than=timedelta(0))
    assert aborted == [f"{s3_prefix}ingests/orphan"]
    uploads = seaweedfs_peer.client().list_multipart_uploads(Bucket=S3_BUCKET, Prefix=s3_prefix)
    ids = {u["UploadId"] for u in uploads.get("Uploads", ())}
    assert orphan not in ids and live.upload_id in ids
    store.abort("live")
    uploads = seaweedfs_peer.client().list_multipart_uploads(Bucket=S3_BUCKET, Prefix=s3_prefix)
    assert not uploads.get("Uploads")


def test_the_orphan_sweep_leaves_other_stores_uploads_in_the_bucket(
    make_store: StoreFactory, seaweedfs_peer: SeaweedPeer, s3_prefix: str
) -> None:
    # another store in the same bucket under a longer prefix (this one's prefix + "b/"),
    # and a key this store never makes: neither upload is this store's to abort
    store = make_store()
    client = seaweedfs_peer.client()
    others = [f"{s3_prefix}b/ingests/{'0' * 32}", f"{s3_prefix}b/blobs/sha256/{'a' * 64}"]
    others.append(f"{s3_prefix}not-a-store-key")
    ids = [client.create_multipart_upload(Bucket=S3_BUCKET, Key=k)["UploadId"] for k in others]
    orphan = f"{s3_prefix}ingests/{'1' * 32}"
    client.create_multipart_upload(Bucket=S3_BUCKET, Key=orphan)
    try:
        assert store.abort_orphan_uploads(older_than=timedelta(0)) == [orphan]
        uploads = client.list_multipart_uploads(Bucket=S3_BUCKET, Prefix=s3_prefix)
        assert {u["UploadId"] for u in uploads.get("Uploads", ())} == set(ids)
    finally:
        for key, upload_id in zip(others, ids, strict=True):
            client.abort_multipart_upload(Bucket=S3_BUCKET, Key=key, UploadId=upload_id)


def test_ingest_records_in_postgresql_resume_on_another_node(
    make_store: StoreFactory, postgres_peer: PostgresPeer, request: pytest.FixtureRequest
) -> None:
    """Two nodes, each with its own spool and SQLite file, both keeping ingest records in
    one PostgreSQL database (the metadata layer's SQL): B goes on with A's upload."""
    from contentd.metadata.postgres import PostgresDB

    db = PostgresDB(postgres_peer.dsn(postgres_peer.create_database("s3ingests")))
    request.addfinalizer(db.close)
    a, b = make_store("a"), make_store("b")
    a.use_ingest_states(SqlIngestStates(db))
    b.use_ingest_states(SqlIngestStates(db))
    data = os.urandom(2 * PART + 77)
    w = a.writer("layer", total=len(data))
    w.write(data[: PART + 100])
    w.close()
    assert b.status("layer").offset == PART  # A's spool is A's
    with b.writer("layer", total=len(data)) as w2:
        assert w2.digest() == digest_of(data[:PART])
        w2.write(data[PART:])
        w2.commit(len(data), digest_of(data))
    assert read_blob(a, digest_of(data)) == data
    assert list(a.list_statuses()) == []


def test_gc_aborts_orphan_uploads_after_the_ingest_expiry(
    make_store: StoreFactory,
    seaweedfs_peer: SeaweedPeer,
    s3_prefix: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from datetime import UTC, datetime

    import contentd.s3.store as s3store
    from contentd.metadata import INGEST_EXPIRY, MetadataDB

    store = make_store()
    db = MetadataDB(tmp_path / "meta.db", store)
    try:
        client = seaweedfs_peer.client()
        orphan = client.create_multipart_upload(Bucket=S3_BUCKET, Key=f"{s3_prefix}ingests/orphan")[
            "UploadId"
        ]
        cs = db.content_store("default")
        with cs.writer("live") as w:
            w.write(os.urandom(PART))  # a recorded upload, held by a live ingest
        with cs.writer("blob") as w:  # makes the backend dirty: GC cleans it
            w.write(b"x")
            w.commit(1)

        def uploads() -> set[str]:
            out = client.list_multipart_uploads(Bucket=S3_BUCKET, Prefix=s3_prefix)
            return {u["UploadId"] for u in out.get("Uploads", ())}

        db.garbage_collect()
        assert orphan in uploads()  # younger than the ingest expiry
        later = datetime.now(UTC) + INGEST_EXPIRY + timedelta(hours=1)
        monkeypatch.setattr(s3store, "utcnow", lambda: later)
        with cs.writer("blob2") as w:
            w.write(b"y")
            w.commit(1)
        db.garbage_collect()
        left = uploads()
        assert orphan not in left
        live = store.states.get("default/1/live")
        assert live is not None and live.upload_id in left
    finally:
        db.close()


def test_metadata_layer_places_uploads_at_the_blob_key(
    make_store: StoreFactory, seaweedfs_peer: SeaweedPeer, s3_prefix: str, tmp_path: Path
) -> None:
    """Through the metadata layer an expected digest given at open places the multipart
    upload at the blob's key (no copy); bytes that turn out to be other ones are refused,
    and nothing ever appears at the key they do not match."""
    from contentd import DigestMismatch
    from contentd.metadata import MetadataDB

    store = make_store()
    db = MetadataDB(tmp_path / "meta.db", store)
    try:
        cs = db.content_store("default")
        data = os.urandom(PART + 999)
        with cs.writer("known", total=len(data), expected=digest_of(data)) as w:
            w.write(data)
            w.commit(len(data), digest_of(data))
        assert store.stats.copies == 0
        other = os.urandom(PART + 5)
        with cs.writer("unknown") as w:
            w.write(other)
            w.commit(len(other))
        assert store.stats.copies == 1
        claimed = digest_of(b"something else")
        liar = os.urandom(PART + 1)
        w = cs.writer("liar", expected=claimed)
        w.write(liar)
        with pytest.raises(DigestMismatch):
            w.commit(len(liar))
        w.close()
        assert f"blobs/sha256/{claimed[7:]}" not in _keys(seaweedfs_peer, s3_prefix)
        assert f"blobs/sha256/{digest_of(liar)[7:]}" not in _keys(seaweedfs_peer, s3_prefix)
        assert read_blob(cs, digest_of(data)) == data
    finally:
        db.close()


def test_commit_whose_copy_failed_completes_on_retry(
    make_store: StoreFactory, seaweedfs_peer: SeaweedPeer, s3_prefix: str
) -> None:
    """The upload completed at its staging key, then the copy to the blob's key failed:
    the ingest is kept, and committing it again copies the staged object."""
    store = make_store()
    data = os.urandom(PART + 321)  # a part plus a tail, no digest at open: staged
    FailCalls(store, "CopyObject")
    w = store.writer("layer")
    w.write(data)
    with pytest.raises(Unavailable):
        w.commit(len(data), digest_of(data))
    with store.writer("layer") as w:
        assert w.status().offset == len(data)
        w.commit(len(data), digest_of(data))
    assert read_blob(store, digest_of(data)) == data
    assert _keys(seaweedfs_peer, s3_prefix) == [f"blobs/sha256/{digest_of(data)[7:]}"]


def test_a_quarantined_blob_is_repaired_by_a_new_ingest(
    make_store: StoreFactory, seaweedfs_peer: SeaweedPeer, s3_prefix: str, tmp_path: Path
) -> None:
    """S3 keeps no bytes aside at quarantine: the object at the blob's key stays until a
    new ingest of the digest has verified bytes, which then replace it. Bytes that are
    not the digest's take nothing away; after the repair the digest exists again."""
    from contentd import AlreadyExists, DataLoss, DigestMismatch
    from contentd.metadata import FsckOptions, MetadataDB

    store = make_store(cache=False)
    db = MetadataDB(tmp_path / "meta.db", store)
    try:
        data = os.urandom(70_000)
        digest = digest_of(data)
        for ns in ("a", "b"):
            with db.content_store(ns).writer("first", expected=digest) as w:
                w.write(data[w.status().offset :])  # b shares a's upload: nothing to send
                w.commit(len(data), digest, {"containerd.io/gc.root": "x"})
        key = f"{s3_prefix}blobs/sha256/{digest[7:]}"
        bad = bytearray(data)
        bad[100] ^= 0xFF
        seaweedfs_peer.client().put_object(Bucket=S3_BUCKET, Key=key, Body=bytes(bad))
        report = db.fsck(FsckOptions(repair=True))
        assert [f.kind for f in report.findings] == ["corrupt"]
        assert [q.digest for q in db.quarantined()] == [digest]
        with pytest.raises(DataLoss):
            read_blob(db.content_store("a"), digest)

        cs = db.content_store("a")
        w = cs.writer("liar", expected=digest)
        w.write(os.urandom(len(data)))
        with pytest.raises(DigestMismatch):
            w.commit(len(data), digest)
        w.close()
        got = seaweedfs_peer.client().get_object(Bucket=S3_BUCKET, Key=key)["Body"].read()
        assert got == bytes(bad)  # still the quarantined bytes: nothing verified replaced them

        with cs.writer("repair", expected=digest) as w:  # not AlreadyExists: a repair
            w.write(data)
            w.commit(len(data), digest)
        got = seaweedfs_peer.client().get_object(Bucket=S3_BUCKET, Key=key)["Body"].read()
        assert got == data
        assert db.quarantined() == []
        for ns in ("a", "b"):
            assert read_blob(db.content_store(ns), digest) == data
        with pytest.raises(AlreadyExists):  # repaired: the digest exists again
            cs.writer("again", expected=digest)
        assert db.fsck().clean
    finally:
        db.close()
