"""``contentd fsck`` online and offline, DATA_LOSS on a corrupt whole read, and the
online scrubber, against ``contentd serve`` processes (blobs corrupted on disk)."""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from contentd.api._pb.containerd.services.content.v1 import content_pb2 as pb
from contentd.api._pb.containerd.services.content.v1 import content_pb2_grpc as pb_grpc
from contentd.api.event_types import TYPE_CONTENT_CORRUPT, decode_fields
from contentd.cli.fsck import EXIT_NOT_CLEAN
from tests.cli.conftest import Cli
from tests.daemon.harness import QUIET_GC, ServeProcess, md
from tests.daemon.test_events import subscribed
from tests.peers.contentd_fixtures import start_contentd

ROOT_LABEL = {"containerd.io/gc.root": "x"}
NO_SCRUB = QUIET_GC + '[plugins."io.containerd.grpc.v1.fsck"]\n  scrub_interval = "0"\n'
FAST_SCRUB = (
    QUIET_GC + '[plugins."io.containerd.grpc.v1.fsck"]\n'
    '  scrub_interval = "1s"\n  scrub_startup_delay = "0s"\n'
)


@pytest.fixture
def daemon() -> Iterator[ServeProcess]:
    d = start_contentd(NO_SCRUB, name="contentd-fsck")
    try:
        yield d
    finally:
        d.close()


def _put(daemon: ServeProcess, namespace: str, data: bytes) -> str:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    with grpc.insecure_channel(daemon.address) as ch:
        request = pb.WriteContentRequest(
            action=pb.COMMIT, ref=f"r-{digest[7:19]}", data=data, labels=ROOT_LABEL
        )
        list(pb_grpc.ContentStub(ch).Write(iter([request]), metadata=md(namespace)))
    return digest


def _blob_path(daemon: ServeProcess, digest: str) -> Path:
    return Path(daemon.root, "io.containerd.content.v1.content", "blobs", *digest.split(":"))


def _corrupt(path: Path) -> None:
    os.chmod(path, 0o644)
    data = bytearray(path.read_bytes())
    data[-1] ^= 0x01
    path.write_bytes(bytes(data))
    os.chmod(path, 0o444)


def _whole_read(daemon: ServeProcess, namespace: str, digest: str) -> tuple[bytes, grpc.RpcError]:
    got = b""
    with grpc.insecure_channel(daemon.address) as ch:
        call = pb_grpc.ContentStub(ch).Read(
            pb.ReadContentRequest(digest=digest), metadata=md(namespace)
        )
        with pytest.raises(grpc.RpcError) as info:
            for response in call:
                got += response.data
    return got, info.value


def test_online_fsck_finds_quarantines_and_an_ingest_repairs(
    daemon: ServeProcess, ctr_namespace: str
) -> None:
    cli = Cli(daemon.address, ctr_namespace)
    data = os.urandom(3 << 20)
    digest = _put(daemon, ctr_namespace, data)
    _put(daemon, ctr_namespace, b"a healthy neighbour")
    assert cli("fsck").ok().lines[-1].endswith(": clean")
    _corrupt(_blob_path(daemon, digest))

    found = cli("--output", "json", "fsck")
    assert found.code == EXIT_NOT_CLEAN
    report = found.json()
    assert not report["clean"] and report["blobs"] == 2
    [finding] = report["findings"]
    assert (finding["kind"], finding["digest"], finding["fixed"]) == ("corrupt", digest, False)

    # a whole-blob read finds it too: DATA_LOSS, the last chunk held back, the blob
    # quarantined and /content/corrupt published
    with grpc.insecure_channel(daemon.address) as ch, subscribed(ch, "topic~=corrupt") as sub:
        got, err = _whole_read(daemon, ctr_namespace, digest)
        envelope = sub.get(timeout=10)
    assert err.code() == grpc.StatusCode.DATA_LOSS  # type: ignore[attr-defined]
    assert "bytes hash to" in err.details()  # type: ignore[attr-defined]
    assert len(got) < len(data)
    assert (envelope.topic, envelope.namespace) == ("/content/corrupt", ctr_namespace)
    assert envelope.event.type_url == TYPE_CONTENT_CORRUPT
    assert decode_fields(envelope.event)["digest"] == digest  # type: ignore[index]
    status = cli("--output", "json", "fsck", "--status")
    assert status.code == EXIT_NOT_CLEAN
    [quarantined] = status.json()["quarantined"]
    assert quarantined["digest"] == digest and quarantined["reason"].startswith("read: ")
    assert not _blob_path(daemon, digest).exists()
    info = cli("content", "info", digest)
    assert info.code == 1 and "data loss" in info.err

    # the same bytes again: the ingest is not told "already exists", and repairs it
    assert cli("content", "ingest", "again", "-", input=data).ok().text.strip() == digest
    assert cli("content", "get", digest).ok().out == data
    assert cli("fsck").ok().lines[-1].endswith(": clean")
    assert cli("--output", "json", "fsck", "--status").ok().json()["quarantined"] == []


def test_fsck_repair_through_the_daemon(daemon: ServeProcess, ctr_namespace: str) -> None:
    cli = Cli(daemon.address, ctr_namespace)
    digest = _put(daemon, ctr_namespace, os.urandom(5000))
    _blob_path(daemon, digest).unlink()
    result = cli("--output", "json", "fsck", "--repair", "--namespace", ctr_namespace)
    assert result.code == 0, result.err  # everything found was repaired
    [finding] = result.json()["findings"]
    assert (finding["kind"], finding["repair"], finding["fixed"]) == (
        "missing",
        "quarantined",
        True,
    )
    _, err = _whole_read(daemon, ctr_namespace, digest)
    assert err.code() == grpc.StatusCode.DATA_LOSS  # type: ignore[attr-defined]


def test_offline_fsck_is_refused_while_the_daemon_runs(
    daemon: ServeProcess, ctr_namespace: str
) -> None:
    cli = Cli(daemon.address, ctr_namespace)
    digest = _put(daemon, ctr_namespace, os.urandom(10_000))
    refused = cli.raw("fsck", "--root", str(daemon.root))
    assert refused.code == 1
    assert "unavailable" in refused.err and "already running" in refused.err
    daemon.stop()
    assert cli.raw("fsck", "--root", str(daemon.root)).ok().lines[-1].endswith(": clean")
    _corrupt(_blob_path(daemon, digest))
    result = cli.raw("--output", "json", "fsck", "--root", str(daemon.root), "--repair")
    assert result.code == 0 and result.json()["findings"][0]["kind"] == "corrupt"
    assert cli.raw("fsck", "--root", str(daemon.root)).code == EXIT_NOT_CLEAN  # quarantined
    missing = cli.raw("fsck", "--root", str(daemon.root / "nope"))
    assert missing.code == 1 and "no contentd root" in missing.err


def test_the_scrubber_finds_corruption_on_its_own(ctr_namespace: str) -> None:
    daemon = start_contentd(FAST_SCRUB, name="contentd-scrub")
    try:
        cli = Cli(daemon.address, ctr_namespace)
        digest = _put(daemon, ctr_namespace, os.urandom(100_000))
        _put(daemon, ctr_namespace, os.urandom(100))

        def status() -> dict[str, object]:
            result = cli("--output", "json", "fsck", "--status")
            assert result.code in (0, EXIT_NOT_CLEAN), result.err
            return result.json()  # type: ignore[no-any-return]

        deadline = time.monotonic() + 60
        while status()["scrubbed_blobs"] < 2 and time.monotonic() < deadline:  # type: ignore[operator]
            time.sleep(0.1)
        assert status()["scrubbed_blobs"] >= 2 and status()["corrupt_found"] == 0
        _corrupt(_blob_path(daemon, digest))
        while not status()["quarantined"] and time.monotonic() < deadline:
            time.sleep(0.1)
        now = status()
        assert now["corrupt_found"] == 1
        [q] = now["quarantined"]  # type: ignore[misc]
        assert q["digest"] == digest and q["reason"].startswith("scrub: bytes hash to")
        while "quarantined" not in daemon.log_text() and time.monotonic() < deadline:
            time.sleep(0.1)  # logged right after the quarantine is recorded
        assert f"blob {digest} quarantined: scrub: bytes hash to" in daemon.log_text()
    finally:
        daemon.close()


def test_the_summary_counts_one_in_the_singular() -> None:
    """`1 ingest`, not `1 ingests` (a newcomer's first fsck with one resumable ingest)."""
    from contentd.api._pb.contentd.services.fsck.v1 import fsck_pb2
    from contentd.cli.fsck import summary

    response = fsck_pb2.CheckResponse(blobs=1, bytes=5, records=1, ingests=1, clean=True)
    assert summary(response) == "hashed 1 blob (5B), 1 record, 1 ingest in 0.00s: clean"
    response = fsck_pb2.CheckResponse(blobs=2, bytes=5, records=0, ingests=3, clean=True)
    assert summary(response).startswith("hashed 2 blobs (5B), 0 records, 3 ingests in ")
