"""Several ``contentd serve`` nodes as one store: one PostgreSQL database (metadata,
ref locks, S3 ingest state), one SeaweedFS bucket (blobs, multipart ingests)."""

from __future__ import annotations

import hashlib
import io
import json
import signal
import subprocess
import sys
import time

import psycopg
import pytest

from contentd import Descriptor, Unavailable, read_blob, write_blob
from contentd.content.errors import ContentError, NotFound
from tests.cluster.nodes import Cluster, node_config
from tests.cluster.race import commit_race
from tests.peers.process import clean_env

MiB = 1 << 20


def _blob(seed: bytes, size: int) -> tuple[bytes, str]:
    block = hashlib.sha512(seed).digest()
    data = (block * (size // len(block) + 1))[:size]
    return data, "sha256:" + hashlib.sha256(data).hexdigest()


def _put(cluster: Cluster, node: str, ns: str | None, data: bytes, dgst: str, **kw: str) -> None:
    store = cluster.store(node, ns, **kw)
    desc = Descriptor(digest=dgst, size=len(data))
    write_blob(store, f"w-{dgst[7:19]}", io.BytesIO(data), desc)


def test_committed_on_one_node_is_read_on_another(cluster: Cluster) -> None:
    cluster.start("a")
    cluster.start("b")
    data, dgst = _blob(b"a to b", 6 * MiB + 3)
    _put(cluster, "a", "ns", data, dgst)
    assert cluster.store("b", "ns").info(dgst).size == len(data)
    assert read_blob(cluster.store("b", "ns"), dgst) == data
    assert f"{cluster.prefix}blobs/sha256/{dgst[7:]}" in cluster.s3_keys()


def test_eight_writers_of_one_digest_across_three_nodes_commit_once(cluster: Cluster) -> None:
    for name in "abc":
        cluster.start(name)
    data, dgst = _blob(b"contended", 2 * MiB)
    stores = [cluster.store(name, "ns") for name in "abc"]
    outcomes = commit_race(stores, 8, data, dgst, expected=True)
    assert outcomes == ["committed"] + ["exists"] * 7, cluster.logs()
    for name in "abc":
        assert read_blob(cluster.store(name, "ns"), dgst) == data


def _recorded(dsn: str, ref: str) -> int:
    """Bytes of ``ref``'s ingest recorded as uploaded parts in the shared S3 ingest state."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute("SELECT parts FROM s3_ingests WHERE ref = %s", (ref,)).fetchone()
    return sum(int(p[2]) for p in json.loads(row[0])) if row is not None else 0


def test_ingest_begun_on_a_killed_node_resumes_and_commits_on_another(cluster: Cluster) -> None:
    a = cluster.start("a")
    cluster.start("b")
    data, dgst = _blob(b"resumed", 13 * MiB)
    w = cluster.store("a", "ns").writer("layer", total=len(data), expected=dgst)
    sent = 7 * MiB
    w.write(data[:sent])  # one 5 MiB part goes to S3; the rest waits in a's spool
    # a part is recorded by the writer's next call after S3 took it
    deadline = time.monotonic() + 60
    while (uploaded := _recorded(cluster.dsn, "ns/1/layer")) == 0:
        assert time.monotonic() < deadline, "no part of the ingest was recorded"
        time.sleep(0.2)
        w.write(data[sent : sent + 1])
        sent += 1
    assert uploaded == 5 * MiB
    a.signal(signal.SIGKILL)
    a.wait_exit(30)
    store_b = cluster.store("b", "ns")
    deadline = time.monotonic() + 60  # a 2 s lease here; 30 s by default
    while True:
        try:
            wb = store_b.writer("layer", total=len(data), expected=dgst)
            offset = wb.status().offset
            break
        except Unavailable:
            assert time.monotonic() < deadline, "node a's ref lock never expired"
            time.sleep(0.5)
    # what S3 had is kept; the spooled tail died with node a
    assert offset == uploaded
    wb.write(data[offset:])
    wb.commit(len(data), dgst)
    wb.close()
    assert read_blob(cluster.store("b", "ns"), dgst) == data


def test_gc_on_one_node_keeps_what_another_nodes_lease_and_pinned_namespace_hold(
    cluster: Cluster,
) -> None:
    cluster.start("a")
    cluster.start("b")
    from contentd.api._pb.containerd.services.leases.v1 import leases_pb2, leases_pb2_grpc
    from contentd.api.metadata_keys import NAMESPACE_KEY

    with cluster.nodes["a"].channel() as channel:
        leases_pb2_grpc.LeasesStub(channel).Create(
            leases_pb2.CreateRequest(id="held"), metadata=((NAMESPACE_KEY, "ns"),), timeout=30
        )
    leased, d_leased = _blob(b"leased on a", MiB)
    pinned, d_pinned = _blob(b"pulled by a's containerd", MiB)
    loose, d_loose = _blob(b"held by nobody", MiB)
    _put(cluster, "a", "ns", leased, d_leased, lease="held")
    _put(cluster, "a", None, pinned, d_pinned)  # header-less: a's pinned namespace node-a
    _put(cluster, "a", "ns", loose, d_loose)
    result = cluster.gc("b")
    content = {ns: got["content"] for ns, got in result["removed"].items() if got.get("content")}
    assert content == {"ns": [d_loose]}, result
    assert result["backend_blobs"] == [d_loose], result
    assert read_blob(cluster.store("a", "ns"), d_leased) == leased
    assert read_blob(cluster.store("a", None), d_pinned) == pinned
    keys = cluster.s3_keys()
    assert f"{cluster.prefix}blobs/sha256/{d_leased[7:]}" in keys
    assert f"{cluster.prefix}blobs/sha256/{d_pinned[7:]}" in keys
    assert f"{cluster.prefix}blobs/sha256/{d_loose[7:]}" not in keys


def test_a_node_refuses_to_start_while_another_live_node_pins_its_namespace(
    cluster: Cluster,
) -> None:
    cluster.start("a")
    c = cluster.spawn("c", pinned="node-a")
    assert c.wait_exit(60) != 0
    assert "pinned by another live contentd node" in c.log_text()
    assert "give each node its own [grpc] headerless_namespace" in c.log_text()


def test_unreachable_database_stops_the_start_and_no_password_is_shown(cluster: Cluster) -> None:
    config = node_config(
        "x",
        "host=/nonexistent port=1 dbname=x user=x password=s3cret-pw connect_timeout=2",
        cluster.seaweed.endpoint,
        cluster.prefix,
    )
    from tests.daemon.harness import ServeProcess

    node = ServeProcess(config=config, env=cluster.seaweed.env(), name="x")
    cluster.nodes["x"] = node
    node.spawn()
    assert node.wait_exit(60) != 0
    log = node.log_text()
    assert "cannot connect to the metadata database" in log
    assert "s3cret-pw" not in log
    assert "password=***" in log


def test_config_dump_masks_the_dsn_password(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "config.toml"
    path.write_text(
        node_config(
            "a", "postgresql://contentd:s3cret-pw@127.0.0.1:5432/contentd", "http://x", "p/"
        )
    )
    out = subprocess.run(
        [sys.executable, "-m", "contentd", "config", "dump", "--config", str(path)],
        capture_output=True,
        check=True,
        timeout=60,
        env=clean_env(),
    ).stdout.decode()
    assert "s3cret-pw" not in out
    assert "password=***" in out
    assert 'node_name = "a"' in out


def test_a_node_killed_mid_commit_leaves_no_visible_blob(cluster: Cluster) -> None:
    from contentd.metadata.crashpoints import CRASH_ENV

    a = cluster.start("a", env={CRASH_ENV: "commit:after-backend"})
    cluster.start("b")
    data, dgst = _blob(b"killed mid-commit", 6 * MiB)
    w = cluster.store("a", "ns").writer("half", total=len(data), expected=dgst)
    w.write(data)
    with pytest.raises(ContentError):  # node a dies between the S3 commit and the record
        w.commit(len(data), dgst)
    assert a.wait_exit(30) != 0
    with pytest.raises(NotFound):  # the bytes may be in the bucket; no node shows them
        cluster.store("b", "ns").info(dgst)
    assert dgst not in {i.digest for i in cluster.store("b", "ns").walk()}
    # the ingest's record is still there: b takes it over once a's lease lapses, and commits
    deadline = time.monotonic() + 60
    while True:
        try:
            wb = cluster.store("b", "ns").writer("half", total=len(data), expected=dgst)
            break
        except Unavailable:
            assert time.monotonic() < deadline, "node a's ref lock never expired"
            time.sleep(0.5)
    offset = wb.status().offset
    wb.write(data[offset:])
    wb.commit(len(data), dgst)  # the blob may be at its key already: b records it all the same
    wb.close()
    assert read_blob(cluster.store("b", "ns"), dgst) == data
