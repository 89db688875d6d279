"""``contentd serve`` on S3: stock ctr through it, fail-fast start, outages."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path

import pytest

from contentd import Unavailable, read_blob
from contentd.proxy import ProxyStore
from tests.daemon.harness import QUIET_GC, ServeProcess
from tests.peers.fixtures import S3_BUCKET, ContainerdFactory
from tests.peers.images import PushedImage
from tests.peers.postgres import PostgresPeer
from tests.peers.process import clean_env, free_port
from tests.peers.requires import requires
from tests.peers.seaweedfs import SeaweedPeer


def _config(endpoint: str, prefix: str, bucket: str = S3_BUCKET) -> str:
    return (
        QUIET_GC
        + f"""
[plugins."io.contentd.content.v1.s3"]
  endpoint = "{endpoint}"
  bucket = "{bucket}"
  prefix = "{prefix}"
  cache_size = "256MiB"
  part_size = "5MiB"
"""
    )


def _serve(config: str, env: dict[str, str]) -> ServeProcess:
    daemon = ServeProcess(config=config, env=env)
    try:
        return daemon.start(timeout=60)
    except BaseException:
        daemon.close()
        raise


def test_ctr_ingest_and_get_through_s3(seaweedfs_peer: SeaweedPeer, s3_prefix: str) -> None:
    ctr = requires("ctr")
    daemon = _serve(_config(seaweedfs_peer.endpoint, s3_prefix), seaweedfs_peer.env())
    try:
        data = os.urandom(12 << 20)  # three parts
        dgst = "sha256:" + hashlib.sha256(data).hexdigest()
        base = [ctr, "--address", str(daemon.socket), "--namespace", "s3test"]
        subprocess.run(
            [*base, "content", "ingest", "--expected-digest", dgst, "layer"],
            input=data,
            env=clean_env(),
            check=True,
            timeout=120,
            capture_output=True,
        )
        key = f"{s3_prefix}blobs/sha256/{dgst[7:]}"
        head = seaweedfs_peer.client().head_object(Bucket=S3_BUCKET, Key=key)
        assert head["ContentLength"] == len(data)
        for _ in range(2):  # cold, then from the read cache
            out = subprocess.run(
                [*base, "content", "get", dgst],
                env=clean_env(),
                check=True,
                timeout=120,
                capture_output=True,
            )
            assert out.stdout == data
        assert "io.contentd.content.v1.s3" in daemon.log_text()
    finally:
        daemon.close()


def test_config_dump_shows_no_credentials(
    seaweedfs_peer: SeaweedPeer, s3_prefix: str, tmp_path: Path
) -> None:
    path = tmp_path / "config.toml"
    path.write_text(_config(seaweedfs_peer.endpoint, s3_prefix))
    out = subprocess.run(
        [_contentd(), "config", "dump", "--config", str(path)],
        env=clean_env(seaweedfs_peer.env()),
        capture_output=True,
        check=True,
        timeout=60,
    )
    text = out.stdout.decode()
    assert f'bucket = "{S3_BUCKET}"' in text
    assert seaweedfs_peer.secret_key not in text
    assert seaweedfs_peer.access_key not in text


def _contentd() -> str:
    import sys

    return str(Path(sys.executable).parent / "contentd")


@pytest.mark.parametrize("fault", ["unreachable", "credentials", "bucket"])
def test_serve_fails_fast_with_the_reason(
    seaweedfs_peer: SeaweedPeer, s3_prefix: str, fault: str
) -> None:
    endpoint, env, bucket = seaweedfs_peer.endpoint, seaweedfs_peer.env(), S3_BUCKET
    if fault == "unreachable":
        endpoint = f"http://127.0.0.1:{free_port()}"
    elif fault == "credentials":
        env = {**env, "AWS_SECRET_ACCESS_KEY": "wrong-secret-value"}
    else:
        bucket = "no-such-bucket-here"
    daemon = ServeProcess(config=_config(endpoint, s3_prefix, bucket), env=env)
    try:
        daemon.spawn()
        assert daemon.wait_exit(60) != 0
        log = daemon.log_text()
    finally:
        daemon.close()
    assert "io.contentd.content.v1.s3" in log
    want = {
        "unreachable": "S3 endpoint unreachable",
        "credentials": "S3 refused the credentials",
        "bucket": "bucket does not exist",
    }[fault]
    assert want in log
    assert "wrong-secret-value" not in log


def test_outage_is_unavailable_and_nothing_acknowledged_is_lost(tmp_path: Path) -> None:
    with SeaweedPeer() as peer:
        peer.create_bucket("outage")
        daemon = _serve(_config(peer.endpoint, "", "outage"), peer.env())
        try:
            store = ProxyStore(daemon.address, namespace="outage")
            data = os.urandom(300_000)
            dgst = "sha256:" + hashlib.sha256(data).hexdigest()
            with store.writer("before") as w:
                w.write(data)
                w.commit(len(data), dgst)
            peer.stop()
            # kept by the node's read cache as it was written: readable without S3
            assert read_blob(store, dgst) == data
            with pytest.raises(Unavailable), store.writer("during") as w:
                w.write(b"y" * 1000)
                w.commit(1000)
            peer.start()
            assert read_blob(store, dgst) == data
            store.close()
        finally:
            daemon.close()


def test_serve_on_s3_and_postgresql_keeps_ingest_records_in_the_database(
    seaweedfs_peer: SeaweedPeer, s3_prefix: str, postgres_peer: PostgresPeer
) -> None:
    """With the PostgreSQL metadata plugin, an ingest left open on the node is a row of the
    cluster's database (upload id, parts), not of the node's SQLite file."""
    import psycopg

    dsn = postgres_peer.create_database("s3serve")
    config = (
        _config(seaweedfs_peer.endpoint, s3_prefix)
        + f'\n[plugins."io.contentd.metadata.v1.postgres"]\n  dsn = "{dsn}"\n'
    )
    daemon = _serve(config, seaweedfs_peer.env())
    try:
        store = ProxyStore(daemon.address, namespace="pg")
        data = os.urandom(6 << 20)
        w = store.writer("half", total=len(data))
        w.write(data)  # one 5 MiB part uploaded, 1 MiB in the spool
        w.close()
        with psycopg.connect(dsn) as conn:
            rows = conn.execute("SELECT upload_id, parts FROM s3_ingests").fetchall()
        assert len(rows) == 1 and rows[0][0] and len(json.loads(rows[0][1])) == 1
        with store.writer("half", total=len(data)) as w:
            assert w.status().offset == len(data)
            w.commit(len(data), "sha256:" + hashlib.sha256(data).hexdigest())
        assert read_blob(store, "sha256:" + hashlib.sha256(data).hexdigest()) == data
        with psycopg.connect(dsn) as conn:
            assert conn.execute("SELECT count(*) FROM s3_ingests").fetchone() == (0,)
        store.close()
    finally:
        daemon.close()


@pytest.mark.containerd
@pytest.mark.registry
def test_containerd_pulls_an_image_into_contentd_on_s3(
    seaweedfs_peer: SeaweedPeer,
    s3_prefix: str,
    containerd_peer_factory: ContainerdFactory,
    test_image: PushedImage,
) -> None:
    """containerd 1.6.20 with contentd (blobs on SeaweedFS) as its proxy content plugin
    pulls the multi-platform test image from a docker-registry; every blob is then an
    object in the bucket, and containerd reads each one back intact."""
    daemon = _serve(_config(seaweedfs_peer.endpoint, s3_prefix), seaweedfs_peer.env())
    try:
        peer = containerd_peer_factory(
            f"""
version = 2
disabled_plugins = ["io.containerd.content.v1.content"]
[proxy_plugins.contentd]
  type = "content"
  address = "{daemon.socket}"
"""
        )
        peer.ctr("images", "pull", "--plain-http", "--all-platforms", test_image.ref, timeout=180)
        keys = set(_keys_under(seaweedfs_peer, f"{s3_prefix}blobs/sha256/"))
        assert {d.split(":")[1] for d in test_image.blobs} <= keys
        for digest, data in test_image.blobs.items():
            assert peer.ctr("content", "get", digest).stdout == data
    finally:
        daemon.close()


def _keys_under(peer: SeaweedPeer, prefix: str) -> list[str]:
    out = peer.client().list_objects_v2(Bucket=S3_BUCKET, Prefix=prefix)
    return [o["Key"][len(prefix) :] for o in out.get("Contents", ())]
