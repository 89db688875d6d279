"""Per-RPC cost of Content/Read through each engine (``python -m tests.wire.microbench``).

Starts ``contentd serve`` once per engine, writes one blob, then a grpcio client
reads it 32 KiB per Read RPC (as ``ctr content get`` does), engines interleaved
round by round. Prints wall ms per RPC and the daemon's CPU ms per RPC; then the
CPU per RPC of the sans-IO core alone (``H2Connection`` fed a unary Read-shaped
call and its 32 KiB answer, no socket), for the variant this process runs
(compiled with mypyc, or pure Python with ``CONTENTD_PURE_PYTHON=1``).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import time

import hpack

from contentd import _compiled
from contentd.api._pb.containerd.services.content.v1 import content_pb2 as pb
from contentd.api._pb.containerd.services.content.v1 import content_pb2_grpc as pb_grpc
from contentd.content import codes
from contentd.wire import frames as fr
from contentd.wire.limits import Limits
from contentd.wire.protocol import H2Connection
from tests.daemon.harness import QUIET_GC, ServeProcess, md
from tests.wire.helpers import message, request_headers

CHUNK = 32 << 10


def _cpu(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class _Unary:
    request_streaming = False


def core_cpu_us(calls: int = 20_000) -> float:
    """CPU µs per call of the protocol core alone: a Read request in (HEADERS from the
    header-block cache, one DATA frame), a 32 KiB message and the status out."""
    handler = _Unary()
    conn = H2Connection(Limits(), route=lambda request: handler)
    conn.initiate()
    conn.receive(fr.PREFACE + fr.settings({}) + fr.window_update(0, 1 << 30))
    conn.data_to_send()
    encoder = hpack.Encoder()
    fields = request_headers(
        "/containerd.services.content.v1.Content/Read", [("containerd-namespace", "default")]
    )
    first = bytes(encoder.encode(fields))
    again = bytes(encoder.encode(fields))  # what a client sends on later calls
    body = message(bytes(80))
    payload = bytes(CHUNK)
    t0 = time.process_time()
    for i in range(calls):
        sid = 2 * i + 1
        events = conn.receive(
            fr.headers(sid, first if i == 0 else again) + fr.data(sid, body, end_stream=True)
        )
        stream = events[-1].stream
        conn.send_message(stream, payload)
        conn.finish(stream, codes.OK, "")
        conn.data_to_send()
        conn.drained.clear()
        conn.receive(fr.window_update(0, CHUNK + 5) + fr.window_update(sid, CHUNK + 5))
    return (time.process_time() - t0) / calls * 1e6


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--mib", type=int, default=64)
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args()
    data = os.urandom(args.mib << 20)
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    meta = md("default")
    daemons = {}
    try:
        for engine in ("contentd", "grpcio"):
            config = QUIET_GC + f'\n[grpc]\nengine = "{engine}"\n'
            daemons[engine] = ServeProcess(config=config, name=f"mb-{engine}").start()
            with daemons[engine].channel() as ch:
                stub = pb_grpc.ContentStub(ch)
                reqs = [
                    pb.WriteContentRequest(
                        action=pb.WRITE, ref="mb", data=data[i : i + (1 << 20)], offset=i
                    )
                    for i in range(0, len(data), 1 << 20)
                ]
                reqs.append(
                    pb.WriteContentRequest(
                        action=pb.COMMIT,
                        ref="mb",
                        offset=len(data),
                        total=len(data),
                        expected=digest,
                    )
                )
                list(stub.Write(iter(reqs), metadata=meta))
        results: dict[str, list[tuple[float, float]]] = {e: [] for e in daemons}
        for _ in range(args.rounds):
            for engine, daemon in daemons.items():
                assert daemon.proc is not None
                with daemon.channel() as ch:
                    stub = pb_grpc.ContentStub(ch)
                    n = len(data) // CHUNK
                    c0, t0 = _cpu(daemon.proc.pid), time.perf_counter()
                    for i in range(n):
                        for r in stub.Read(
                            pb.ReadContentRequest(digest=digest, offset=i * CHUNK, size=CHUNK),
                            metadata=meta,
                        ):
                            assert len(r.data) == CHUNK
                    wall, cpu = time.perf_counter() - t0, _cpu(daemon.proc.pid) - c0
                    results[engine].append((wall / n * 1e3, cpu / n * 1e3))
        print(f"load {os.getloadavg()[0]:.2f}; {args.mib} MiB in 32 KiB Reads, grpcio client")
        for engine, samples in results.items():
            walls = [w for w, _ in samples]
            cpus = [c for _, c in samples]
            print(
                f"{engine:9} wall ms/RPC min {min(walls):.3f} median {statistics.median(walls):.3f}"
                f"  daemon CPU ms/RPC min {min(cpus):.3f} median {statistics.median(cpus):.3f}"
            )
    finally:
        for daemon in daemons.values():
            daemon.close()
    print(f"core      CPU us/RPC {core_cpu_us():.1f}  ({_compiled.variant().describe()})")


if __name__ == "__main__":
    main()
