"""Running out: a full disk mid-ingest, and a client that vanishes in the middle of a Write.

* The daemon's root is a small tmpfs, partly filled by another file: an ingest that
  outgrows the space fails with RESOURCE_EXHAUSTED, nothing is committed, ``fsck``
  stays clean, and once the other file is gone the ingest resumes at the offset it
  kept and commits. (Needs root for the mount; skipped otherwise, with the reason.)
* A client process SIGKILLed while its Write stream is open: the ref is released
  (another writer gets it) and the ingest is kept at the bytes it had sent.
* The daemon at its file-descriptor limit (RLIMIT_NOFILE lowered on the running
  process): more connections and open ingests than descriptors get UNAVAILABLE
  (the connection is refused) or RESOURCE_EXHAUSTED (a call that could not open a
  file), never UNKNOWN; the daemon neither dies nor floods its log retrying
  accept, and once the clients go its descriptors are back at the baseline and a
  Write, commit and Read succeed.
"""

from __future__ import annotations

import hashlib
import os
import queue
import re
import resource
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from contentd.api._pb.containerd.services.content.v1 import content_pb2 as pb
from contentd.api._pb.containerd.services.content.v1 import content_pb2_grpc as pb_grpc
from contentd.content.errors import Unavailable
from contentd.proxy import ProxyStore
from tests.cli.conftest import Cli
from tests.daemon.harness import ServeProcess, md, short_tmpdir
from tests.reliability.figures import count

CONFIG = 'version = 2\n[plugins."io.containerd.grpc.v1.fsck"]\n  scrub_interval = "0"\n'
MiB = 1 << 20


@pytest.fixture
def tmpfs_root() -> Iterator[Path]:
    base = short_tmpdir()
    root = base / "root"
    root.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=24m,mode=0700", "tmpfs", str(root)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {mounted.stderr.strip()}")
    try:
        yield root
    finally:
        subprocess.run(["umount", "-l", str(root)], check=False)
        subprocess.run(["rm", "-rf", str(base)], check=False)


def test_a_full_disk_mid_ingest_is_resource_exhausted_and_resumable(tmpfs_root: Path) -> None:
    filler = tmpfs_root / "filler"
    filler.write_bytes(b"\0" * (12 * MiB))
    data = os.urandom(20 * MiB)
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    daemon = ServeProcess(tmpfs_root.parent, root=tmpfs_root, config=CONFIG, name="full")
    daemon.start()
    try:
        ns = md("full")
        with grpc.insecure_channel(daemon.address) as ch:
            stub = pb_grpc.ContentStub(ch)
            requests = [pb.WriteContentRequest(action=pb.STAT, ref="big", total=len(data))] + [
                pb.WriteContentRequest(action=pb.WRITE, offset=-1, data=data[i : i + MiB])
                for i in range(0, len(data), MiB)
            ]
            requests.append(
                pb.WriteContentRequest(
                    action=pb.COMMIT, offset=-1, total=len(data), expected=digest
                )
            )
            with pytest.raises(grpc.RpcError) as info:
                list(stub.Write(iter(requests), metadata=ns))
            assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED  # type: ignore[attr-defined]
            assert "No space left on device" in info.value.details()  # type: ignore[attr-defined]
            with pytest.raises(grpc.RpcError) as info:
                stub.Info(pb.InfoRequest(digest=digest), metadata=ns)
            assert info.value.code() == grpc.StatusCode.NOT_FOUND  # type: ignore[attr-defined]
            kept = stub.Status(pb.StatusRequest(ref="big"), metadata=ns).status.offset
            assert 0 < kept < len(data)
            assert Cli(daemon.address, "full")("fsck").code == 0

            filler.unlink()  # room again: the ingest resumes where it stopped
            store = ProxyStore(daemon.address, namespace="full")
            try:
                with store.writer("big", total=len(data), expected=digest) as w:
                    assert w.status().offset == kept
                    assert w.digest() == "sha256:" + hashlib.sha256(data[:kept]).hexdigest()
                    w.write(data[kept:])
                    w.commit(len(data), digest, {"containerd.io/gc.root": "x"})
            finally:
                store.close()
            got = b"".join(
                r.data for r in stub.Read(pb.ReadContentRequest(digest=digest), metadata=ns)
            )
            assert got == data
        assert Cli(daemon.address, "full")("fsck").code == 0
        count("full disk: ingests refused with RESOURCE_EXHAUSTED and resumed after")
    finally:
        daemon.stop()


CLIENT = textwrap.dedent(
    """
    import queue, sys, time, grpc
    from contentd.api._pb.containerd.services.content.v1 import content_pb2 as pb
    from contentd.api._pb.containerd.services.content.v1 import content_pb2_grpc as pbg
    requests = queue.SimpleQueue()
    ch = grpc.insecure_channel(sys.argv[1])
    call = pbg.ContentStub(ch).Write(
        iter(requests.get, None), metadata=(("containerd-namespace", "gone"),)
    )
    responses = iter(call)
    requests.put(pb.WriteContentRequest(action=pb.STAT, ref="vanishing"))
    next(responses)
    requests.put(pb.WriteContentRequest(action=pb.WRITE, offset=0, data=b"v" * (3 << 20)))
    print(next(responses).offset, flush=True)
    time.sleep(3600)
    """
)


def test_a_client_that_vanishes_mid_write_releases_the_ref_and_keeps_the_ingest() -> None:
    with ServeProcess(config=CONFIG, name="vanish") as daemon:
        client = subprocess.Popen(
            [sys.executable, "-c", CLIENT, daemon.address], stdout=subprocess.PIPE, text=True
        )
        try:
            assert client.stdout is not None
            assert int(client.stdout.readline()) == 3 << 20
        finally:
            client.kill()
            client.wait(10)
        store = ProxyStore(daemon.address, namespace="gone")
        try:
            deadline = time.monotonic() + 30
            while True:  # until the server has seen the connection go
                try:
                    w = store.writer("vanishing")
                    break
                except Unavailable:
                    assert time.monotonic() < deadline, "the ref stayed locked"
            with w:
                assert w.status().offset == 3 << 20
                assert w.digest() == "sha256:" + hashlib.sha256(b"v" * (3 << 20)).hexdigest()
        finally:
            store.close()
        count("vanished clients: ref released, ingest kept")


#: what /proc/PID/fd shows for an anonymous (O_TMPFILE) file
_ANONYMOUS = re.compile(r"/#\d+ \(deleted\)$")


def _fds(pid: int) -> int:
    """The daemon's open descriptors, not counting the anonymous files its local store
    makes ahead for new ingests (a few per directory, refilled as ingests take them:
    how many are held depends on when they were counted, not on a leak)."""
    return sum(1 for _ in _descriptors(pid, spares=False))


def _spares(pid: int) -> int:
    return sum(1 for _ in _descriptors(pid, spares=True))


def _descriptors(pid: int, *, spares: bool) -> Iterator[str]:
    base = f"/proc/{pid}/fd"
    for name in os.listdir(base):
        try:
            target = os.readlink(os.path.join(base, name))
        except OSError:  # closed meanwhile
            continue
        if bool(_ANONYMOUS.search(target)) == spares:
            yield target


def test_the_descriptor_limit_refuses_clearly_and_recovers() -> None:
    with ServeProcess(config=CONFIG, name="nofile") as daemon:
        assert daemon.proc is not None
        pid = daemon.proc.pid
        ns = md("nofile")
        baseline = _fds(pid)
        resource.prlimit(pid, resource.RLIMIT_NOFILE, (baseline + 24, baseline + 24))
        channels: list[grpc.Channel] = []
        held: list[tuple[Any, queue.SimpleQueue[Any]]] = []
        refused: dict[grpc.StatusCode, int] = {}
        try:
            for i in range(48):  # each its own connection, each holding an ingest open
                ch = grpc.insecure_channel(
                    daemon.address, options=[("grpc.use_local_subchannel_pool", 1)]
                )
                channels.append(ch)
                requests: queue.SimpleQueue[Any] = queue.SimpleQueue()
                call = pb_grpc.ContentStub(ch).Write(
                    iter(requests.get, None), metadata=ns, timeout=30
                )
                held.append((call, requests))
                requests.put(pb.WriteContentRequest(action=pb.STAT, ref=f"held-{i}"))
                requests.put(pb.WriteContentRequest(action=pb.WRITE, offset=0, data=b"h" * 99))
                try:
                    responses = iter(call)
                    next(responses)
                    assert next(responses).offset == 99
                except grpc.RpcError as err:
                    code = err.code()  # type: ignore[attr-defined]
                    refused[code] = refused.get(code, 0) + 1
            assert refused, "the limit was never reached"
            assert set(refused) <= {
                grpc.StatusCode.UNAVAILABLE,
                grpc.StatusCode.RESOURCE_EXHAUSTED,
            }, refused
            assert daemon.proc.poll() is None
            warnings = daemon.log_text().count("out of file descriptors")
            assert 1 <= warnings <= 5, f"{warnings} warnings: accept is retried in a loop"
        finally:
            for call, requests in held:
                requests.put(None)
                call.cancel()
            for ch in channels:
                ch.close()
        deadline = time.monotonic() + 30
        while _fds(pid) > baseline + 2:  # until the server has seen the clients go
            assert time.monotonic() < deadline, f"fds {_fds(pid)} vs {baseline} at the start"
            time.sleep(0.1)
        assert _spares(pid) <= 8  # local/pending: the spares are bounded
        data = b"after the limit"
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        store = ProxyStore(daemon.address, namespace="nofile")
        try:
            with store.writer("after", total=len(data), expected=digest) as w:
                w.write(data)
                w.commit(len(data), digest, {"containerd.io/gc.root": "x"})
            reader = store.reader_at(digest)
            try:
                assert reader.read_at(0, len(data)) == data
            finally:
                reader.close()
        finally:
            store.close()
        assert daemon.proc.poll() is None
        count("descriptor limit: connections refused clearly, recovered after")
