"""Many clients at once on ``contentd serve``: the right one wins, the rest get the right code.

* 32 Write streams on one ref: the first holds it, the other 31 get UNAVAILABLE.
* 32 writers of one digest under 32 refs, committing at once: one commit creates the
  blob, 31 get ALREADY_EXISTS, nothing else.
* Writers racing deletes, garbage collections and expiring leases, with readers: only
  ALREADY_EXISTS, and NOT_FOUND where a race allows it (a read of a deleted blob, a
  commit under a lease that expired and was collected first), and ``fsck`` clean after.
"""

from __future__ import annotations

import hashlib
import os
import queue
import random
import threading
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import grpc
import pytest

from contentd.api._pb.containerd.services.content.v1 import content_pb2 as pb
from contentd.api._pb.containerd.services.content.v1 import content_pb2_grpc as pb_grpc
from contentd.api._pb.containerd.services.leases.v1 import leases_pb2 as lpb
from contentd.api._pb.containerd.services.leases.v1 import leases_pb2_grpc as lpb_grpc
from contentd.api._pb.contentd.services.gc.v1 import gc_pb2 as gpb
from contentd.api._pb.contentd.services.gc.v1 import gc_pb2_grpc as gpb_grpc
from tests.cli.conftest import Cli
from tests.daemon.harness import ServeProcess, md
from tests.peers.contentd_fixtures import start_contentd
from tests.reliability.figures import count
from tests.reliability.profile import PROFILE

Code = grpc.StatusCode
N = 32
ROOT = {"containerd.io/gc.root": "x"}


@pytest.fixture(scope="module")
def daemon() -> Iterator[ServeProcess]:
    d = start_contentd(
        'version = 2\n[plugins."io.containerd.grpc.v1.fsck"]\n  scrub_interval = "0"\n',
        name="contentd-race",
    )
    try:
        yield d
    finally:
        d.close()


def _code(err: BaseException) -> grpc.StatusCode:
    assert isinstance(err, grpc.RpcError), repr(err)
    return err.code()  # type: ignore[no-any-return, attr-defined]


def test_32_writers_of_one_ref(daemon: ServeProcess, ctr_namespace: str) -> None:
    for _ in range(PROFILE.concurrency_rounds):
        results: queue.Queue[object] = queue.Queue()
        tried = threading.Barrier(N, timeout=60)

        def writer(results: queue.Queue[object], tried: threading.Barrier) -> None:
            requests: queue.SimpleQueue[pb.WriteContentRequest | None] = queue.SimpleQueue()
            with grpc.insecure_channel(daemon.address) as ch:
                call = pb_grpc.ContentStub(ch).Write(
                    iter(requests.get, None), metadata=md(ctr_namespace)
                )
                requests.put(pb.WriteContentRequest(action=pb.STAT, ref="the-one-ref"))
                try:
                    next(call)
                    results.put("held")
                except grpc.RpcError as err:
                    results.put(_code(err))
                tried.wait()  # the holder keeps the ref until every writer has tried
                requests.put(None)
                call.cancel()

        threads = [threading.Thread(target=writer, args=(results, tried)) for _ in range(N)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        got = Counter(results.get_nowait() for _ in range(N))
        assert got == Counter({"held": 1, Code.UNAVAILABLE: N - 1}), got
        count("one ref, 32 writers: rounds with 1 holder and 31 UNAVAILABLE")


def test_32_writers_of_one_digest(daemon: ServeProcess, ctr_namespace: str) -> None:
    for round_ in range(PROFILE.concurrency_rounds):
        data = os.urandom(200_000)
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        results: queue.Queue[object] = queue.Queue()
        written = threading.Barrier(N, timeout=60)

        def writer(
            i: int,
            name: str,
            data: bytes,
            digest: str,
            results: queue.Queue[object],
            written: threading.Barrier,
        ) -> None:
            requests: queue.SimpleQueue[pb.WriteContentRequest | None] = queue.SimpleQueue()
            with grpc.insecure_channel(daemon.address) as ch:
                call = pb_grpc.ContentStub(ch).Write(
                    iter(requests.get, None), metadata=md(ctr_namespace)
                )
                responses = iter(call)
                try:
                    requests.put(pb.WriteContentRequest(action=pb.WRITE, ref=f"{name}-{i}"))
                    next(responses)
                    requests.put(pb.WriteContentRequest(action=pb.WRITE, offset=0, data=data))
                    next(responses)
                except grpc.RpcError as err:
                    results.put(("write", _code(err)))
                    written.wait()
                    return
                written.wait()  # every writer has all the bytes: now all commit at once
                requests.put(
                    pb.WriteContentRequest(
                        action=pb.COMMIT,
                        offset=len(data),
                        total=len(data),
                        expected=digest,
                        labels=ROOT,
                    )
                )
                try:
                    next(responses)
                    results.put("committed")
                except grpc.RpcError as err:
                    results.put(_code(err))
                requests.put(None)

        threads = [
            threading.Thread(target=writer, args=(i, f"d{round_}", data, digest, results, written))
            for i in range(N)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        got = Counter(results.get_nowait() for _ in range(N))
        assert got == Counter({"committed": 1, Code.ALREADY_EXISTS: N - 1}), got
        count("one digest, 32 writers: rounds with 1 commit and 31 ALREADY_EXISTS")


def test_writers_racing_gc_deletes_and_lease_expiry(
    daemon: ServeProcess, ctr_namespace: str
) -> None:
    ns = md(ctr_namespace)
    stop = threading.Event()
    unexpected: list[str] = []
    committed: list[str] = []
    seen: Counter[str] = Counter()
    lock = threading.Lock()

    def note(what: str) -> None:
        with lock:
            seen[what] += 1

    def writer(seed: int) -> None:
        rng = random.Random(seed)
        with grpc.insecure_channel(daemon.address) as ch:
            content = pb_grpc.ContentStub(ch)
            leases = lpb_grpc.LeasesStub(ch)
            i = 0
            while not stop.is_set():
                i += 1
                data = rng.randbytes(rng.choice([10, 5000, 300_000]))
                digest = "sha256:" + hashlib.sha256(data).hexdigest()
                metadata = ns
                labels = dict(ROOT)
                allowed = {Code.ALREADY_EXISTS}
                if rng.random() < 0.5:  # under a lease that expires in a moment
                    lease = f"l{seed}-{i}"
                    expire = datetime.now(UTC) + timedelta(milliseconds=rng.randrange(1, 300))
                    leases.Create(
                        lpb.CreateRequest(
                            id=lease,
                            labels={"containerd.io/gc.expire": expire.isoformat()},
                        ),
                        metadata=ns,
                    )
                    metadata = md(ctr_namespace, lease)
                    labels = {}
                    # the lease may expire and be collected first, with its ingest
                    allowed.add(Code.NOT_FOUND)
                request = pb.WriteContentRequest(
                    action=pb.COMMIT,
                    ref=f"w{seed}-{i}",
                    data=data,
                    total=len(data),
                    expected=digest,
                    labels=labels,
                )
                try:
                    list(content.Write(iter([request]), metadata=metadata))
                    note("commit ok")
                    with lock:
                        committed.append(digest)
                except grpc.RpcError as err:
                    code = _code(err)
                    note(f"commit {code.name}")
                    if code not in allowed:
                        unexpected.append(f"commit: {code} {err.details()}")  # type: ignore[attr-defined]

    def deleter_and_reader(seed: int) -> None:
        rng = random.Random(seed)
        with grpc.insecure_channel(daemon.address) as ch:
            content = pb_grpc.ContentStub(ch)
            while not stop.is_set():
                with lock:
                    digest = rng.choice(committed) if committed else None
                if digest is None:
                    continue
                try:
                    if rng.random() < 0.3:
                        content.Delete(pb.DeleteContentRequest(digest=digest), metadata=ns)
                        note("delete ok")
                    else:
                        got = b"".join(
                            r.data
                            for r in content.Read(pb.ReadContentRequest(digest=digest), metadata=ns)
                        )
                        assert hashlib.sha256(got).hexdigest() == digest[7:]
                        note("read ok")
                except grpc.RpcError as err:
                    code = _code(err)
                    note(f"delete/read {code.name}")
                    if code != Code.NOT_FOUND:
                        unexpected.append(f"delete/read: {code} {err.details()}")  # type: ignore[attr-defined]

    def collector() -> None:
        with grpc.insecure_channel(daemon.address) as ch:
            gc = gpb_grpc.GCStub(ch)
            while not stop.is_set():
                gc.Collect(gpb.CollectRequest())
                note("gc")

    threads = [
        *(threading.Thread(target=writer, args=(s,)) for s in range(8)),
        *(threading.Thread(target=deleter_and_reader, args=(100 + s,)) for s in range(4)),
        threading.Thread(target=collector),
    ]
    for t in threads:
        t.start()
    stop.wait(3.0 * PROFILE.concurrency_rounds)
    stop.set()
    for t in threads:
        t.join(120)
    assert not unexpected, unexpected[:5]
    assert seen["commit ok"] > 0 and seen["gc"] > 0 and seen["read ok"] > 0, seen
    for what, n in seen.items():
        count(f"race: {what}", n)
    cli = Cli(daemon.address, ctr_namespace)
    repaired = cli("--output", "json", "fsck", "--repair")
    kinds = {f["kind"] for f in repaired.json()["findings"]}
    assert kinds <= {"orphan-blob", "orphan-ingest"}, repaired.json()["findings"]
    assert cli("fsck").code == 0
