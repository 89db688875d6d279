"""Soak: many clients mixing every kind of call; the daemon gives back what it took.

Client threads (each on its own connection) ingest blobs of mixed sizes (some in
several Write streams, resumed), race commits of one digest, read whole and ranged
(checking the bytes), walk with filters, update labels, delete, hold and drop
leases, and abort ingests, for a few passes. After each pass, once the daemon is
idle, its RSS and open file descriptors are read from ``/proc``: RSS must end within
50 MB of where the first pass started and stay flat across passes, and the file
descriptors must come back to the baseline, bounded caches excepted (see ``FD_SLACK``).
``CONTENTD_RELIABILITY=long`` runs 16 clients for 4 minutes a pass.
"""

from __future__ import annotations

import hashlib
import os
import random
import threading
import time
from collections import Counter

import grpc

from contentd.api._pb.containerd.services.content.v1 import content_pb2 as pb
from contentd.api._pb.containerd.services.content.v1 import content_pb2_grpc as pb_grpc
from contentd.api._pb.containerd.services.leases.v1 import leases_pb2 as lpb
from contentd.api._pb.containerd.services.leases.v1 import leases_pb2_grpc as lpb_grpc
from contentd.metadata.db import MAX_IDLE
from tests.daemon.harness import QUIET_GC, ServeProcess, md
from tests.reliability.figures import FIGURES, count
from tests.reliability.profile import PROFILE

MB = 1_000_000
PASSES = 3
CLIENTS, SECONDS = (16, 240.0) if PROFILE.name == "long" else (8, 8.0)
#: open blob files (local/openblobs: the 64 most recent), idle SQLite connections (three
#: files each), and the database descriptors SQLite keeps from closed connections for the
#: next one to reuse while others have the file open (its unix VFS cannot close them
#: without dropping their locks): one per connection open at the busiest moment, here at
#: most one per client
FD_SLACK = 64 + 3 * MAX_IDLE + CLIENTS + 4
EXPECTED = {grpc.StatusCode.NOT_FOUND, grpc.StatusCode.ALREADY_EXISTS}


def _rss(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def _fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def _client(address: str, seed: int, stop: threading.Event, tally: Counter[str]) -> None:
    rng = random.Random(seed)
    ns = md("soak")
    mine: list[tuple[str, bytes]] = []
    shared = random.Random(7).randbytes(300_000)  # every client races to commit this one
    with grpc.insecure_channel(address) as ch:
        content = pb_grpc.ContentStub(ch)
        leases = lpb_grpc.LeasesStub(ch)
        i = 0
        while not stop.is_set():
            i += 1
            op = rng.choices(
                ["ingest", "resumed", "race", "read", "ranged", "list", "label", "delete",
                 "lease", "abort"],
                [6, 2, 1, 4, 3, 1, 2, 2, 1, 1],
            )[0]  # fmt: skip
            try:
                if op in ("ingest", "race"):
                    data = (
                        shared if op == "race" else rng.randbytes(rng.choice([100, 60_000, 2 * MB]))
                    )
                    digest = "sha256:" + hashlib.sha256(data).hexdigest()
                    request = pb.WriteContentRequest(
                        action=pb.COMMIT,
                        ref=f"s{seed}-{i}",
                        data=data,
                        total=len(data),
                        expected=digest,
                        labels={"containerd.io/gc.root": "x"},
                    )
                    list(content.Write(iter([request]), metadata=ns))
                    if op == "ingest":
                        mine.append((digest, data))
                elif op == "resumed":
                    data = rng.randbytes(3 * MB)
                    digest = "sha256:" + hashlib.sha256(data).hexdigest()
                    ref = f"r{seed}-{i}"
                    half = pb.WriteContentRequest(action=pb.WRITE, ref=ref, data=data[: MB + 7])
                    list(content.Write(iter([half]), metadata=ns))
                    offset = content.Status(pb.StatusRequest(ref=ref), metadata=ns).status.offset
                    rest = pb.WriteContentRequest(
                        action=pb.COMMIT,
                        ref=ref,
                        offset=offset,
                        data=data[offset:],
                        total=len(data),
                        expected=digest,
                        labels={"containerd.io/gc.root": "x"},
                    )
                    list(content.Write(iter([rest]), metadata=ns))
                    mine.append((digest, data))
                elif op in ("read", "ranged") and mine:
                    digest, data = rng.choice(mine)
                    if op == "read":
                        request = pb.ReadContentRequest(digest=digest)
                        want = data
                    else:
                        off = rng.randrange(len(data) + 1)
                        size = rng.randrange(1, 70_000)
                        request = pb.ReadContentRequest(digest=digest, offset=off, size=size)
                        want = data[off : off + size]
                    got = b"".join(r.data for r in content.Read(request, metadata=ns))
                    assert got == want, f"wrong bytes for {digest}"
                elif op == "list":
                    filters = ['labels."containerd.io/gc.root"==x', 'labels.n~="[0-4]"']
                    for _ in content.List(pb.ListContentRequest(filters=filters), metadata=ns):
                        pass
                elif op == "label" and mine:
                    digest, _ = rng.choice(mine)
                    info = pb.Info(
                        digest=digest,
                        labels={"containerd.io/gc.root": "x", "n": str(rng.randrange(9))},
                    )
                    content.Update(pb.UpdateRequest(info=info), metadata=ns)
                elif op == "delete" and mine:
                    digest, _ = mine.pop(rng.randrange(len(mine)))
                    content.Delete(pb.DeleteContentRequest(digest=digest), metadata=ns)
                elif op == "lease":
                    lease = f"l{seed}-{i}"
                    leases.Create(lpb.CreateRequest(id=lease), metadata=ns)
                    leases.Delete(lpb.DeleteRequest(id=lease), metadata=ns)
                elif op == "abort":
                    ref = f"a{seed}-{i}"
                    part = pb.WriteContentRequest(action=pb.WRITE, ref=ref, data=b"x" * 1000)
                    list(content.Write(iter([part]), metadata=ns))
                    content.Abort(pb.AbortRequest(ref=ref), metadata=ns)
                else:
                    continue
                tally[op] += 1
            except grpc.RpcError as err:
                code = err.code()  # type: ignore[attr-defined]
                tally[f"{op} {code.name}"] += 1
                if code not in EXPECTED:
                    tally["unexpected"] += 1
        if mine:  # the blobs still recorded: deleted, so every pass ends where it began
            for digest, _ in mine:
                content.Delete(pb.DeleteContentRequest(digest=digest), metadata=ns)


def _idle(pid: int) -> int:
    """The fd count once the daemon has finished its in-flight work (it has stopped
    moving for a second)."""
    last = _fds(pid)
    deadline = time.monotonic() + 30
    stable = time.monotonic()
    while time.monotonic() < deadline and time.monotonic() - stable < 1.0:
        time.sleep(0.1)
        now = _fds(pid)
        if now != last:
            last, stable = now, time.monotonic()
    return last


def _rss_within(pid: int, limit: int) -> int:
    """RSS once it is within ``limit`` (the daemon trims its heap every few seconds),
    or after 30 s whatever it is."""
    deadline = time.monotonic() + 30
    rss = _rss(pid)
    while rss > limit and time.monotonic() < deadline:
        time.sleep(0.2)
        rss = _rss(pid)
    return rss


def test_soak_gives_back_memory_and_descriptors() -> None:
    daemon = ServeProcess(
        config=QUIET_GC + '[plugins."io.containerd.grpc.v1.fsck"]\n  scrub_interval = "0"\n',
        name="soak",
    ).start()
    try:
        assert daemon.proc is not None
        pid = daemon.proc.pid
        fds0 = _idle(pid)
        rss0 = _rss(pid)
        ends: list[tuple[int, int]] = []
        for p in range(PASSES):
            stop = threading.Event()
            tallies = [Counter[str]() for _ in range(CLIENTS)]
            threads = [
                threading.Thread(target=_client, args=(daemon.address, 1000 * p + c, stop, t))
                for c, t in enumerate(tallies)
            ]
            for t in threads:
                t.start()
            stop.wait(SECONDS)
            stop.set()
            for t in threads:
                t.join(120)
            tally = sum(tallies, Counter())
            for what, n in tally.items():
                count(f"soak: {what}", n)
            assert tally["unexpected"] == 0, tally
            fds_now = _idle(pid)
            limit = rss0 + 50 * MB if not ends else min(rss0 + 50 * MB, ends[0][0] + 10 * MB)
            ends.append((_rss_within(pid, limit), fds_now))
        rss = [r for r, _ in ends]
        fds = [f for _, f in ends]
        FIGURES[f"soak: RSS MB start/after each pass ({CLIENTS} clients x {SECONDS:g}s)"] = (
            " -> ".join(f"{x / MB:.0f}" for x in [rss0, *rss])
        )
        FIGURES["soak: fds start/after each pass"] = " -> ".join(map(str, [fds0, *fds]))
        assert fds[-1] <= fds0 + FD_SLACK, (fds0, fds)
        assert rss[-1] <= rss0 + 50 * MB, (rss0, rss)
        assert rss[-1] <= rss[0] + 10 * MB, ("RSS keeps growing across passes", rss)
    finally:
        daemon.close()
