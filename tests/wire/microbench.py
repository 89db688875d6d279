"""Per-RPC cost of Content/Read through each engine (``python -m tests.wire.microbench``).

Starts ``contentd serve`` once per engine, writes one blob, then a grpcio client
reads it 32 KiB per Read RPC (as ``ctr content get`` does), engines interleaved
round by round. Prints wall ms per RPC and the daemon's CPU ms per RPC.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import time

from contentd.api._pb.containerd.services.content.v1 import content_pb2 as pb
from contentd.api._pb.containerd.services.content.v1 import content_pb2_grpc as pb_grpc
from tests.daemon.harness import QUIET_GC, ServeProcess, md

CHUNK = 32 << 10


def _cpu(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


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


if __name__ == "__main__":
    main()
