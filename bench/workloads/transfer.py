"""Big transfers between one client and a daemon: ``ctr`` and the raw gRPC client."""

from __future__ import annotations

import os
import time

from bench.data import MIB
from bench.env import KEEP_NAMESPACE, BenchEnv, Scale
from bench.model import Goal, Sample
from bench.peers import Target
from bench.workloads.base import Workload

__all__ = ["CtrGet", "CtrIngest", "ReadStream", "WriteStream"]

#: Namespace of the blobs ingested (and then discarded) by the ingest rows.
INGEST_NAMESPACE = "bench-ingest"


def _need(target: Target | None) -> Target:
    if target is None:
        raise RuntimeError("this workload needs a daemon")
    return target


class CtrIngest(Workload):
    """``ctr content ingest`` with stdin redirected from an N MiB file (in the page cache)."""

    name = "ctr-ingest"
    unit = "MiB/s"
    goal: Goal | None = Goal("≥ 2.5×", min_ratio=2.5)
    limits: tuple[str, ...] = ("dd-fsync", "sha256")

    def __init__(self) -> None:
        self._digest: dict[str, str] = {}

    def title(self, scale: Scale) -> str:
        return f"ctr content ingest {scale.mib} MiB"

    def _file(self, env: BenchEnv) -> str:
        path = env.path(f"ingest-{env.scale.mib}.bin")
        if not os.path.exists(path):
            env.data.write_file(path, env.scale.mib, "initial")
        return path

    def setup(self, env: BenchEnv, target: Target | None) -> None:
        self._file(env)

    def sample(self, env: BenchEnv, target: Target | None, rep: int) -> Sample:
        t = _need(target)
        mib = env.scale.mib
        path = self._file(env)
        digest = self._digest[t.address] = env.data.retag_file(path, mib, f"ctr-{t.name}-{rep}")
        with open(path, "rb") as stdin:
            r = t.ctr(
                "content",
                "ingest",
                f"bench-ingest-{rep}",
                namespace=INGEST_NAMESPACE,
                stdin=stdin,
                capture=False,
                timeout=self.timeout(env.scale),
            )
        size = t.client.info_size(digest, namespace=INGEST_NAMESPACE)
        if size != mib * MIB:
            raise RuntimeError(f"{t.name} committed {size} bytes, expected {mib * MIB}")
        return Sample(rep, mib / r.seconds, r.seconds)

    def cleanup(self, env: BenchEnv, target: Target | None, rep: int) -> None:
        t = _need(target)
        digest = self._digest.pop(t.address, None)
        if digest:
            env.discard(t, INGEST_NAMESPACE, [digest])


class WriteStream(Workload):
    """One Write stream of N MiB in 1 MiB WRITE messages, lock-step, with expected digest."""

    name = "write-stream"
    unit = "MiB/s"
    goal: Goal | None = Goal("≥ 3×", min_ratio=3.0)
    limits: tuple[str, ...] = ("dd-fsync", "sha256")

    def __init__(self) -> None:
        self._digest: dict[str, str] = {}

    def title(self, scale: Scale) -> str:
        return f"raw Write stream {scale.mib} MiB (1 MiB messages, lock-step)"

    def sample(self, env: BenchEnv, target: Target | None, rep: int) -> Sample:
        t = _need(target)
        blob = env.data.big(env.scale.mib, f"ws-{t.name}-{rep}")
        self._digest[t.address] = blob.digest
        t0 = time.perf_counter()
        t.client.write_blob(
            f"bench-ws-{rep}",
            blob.chunks(),
            total=blob.size,
            expected=blob.digest,
            namespace=INGEST_NAMESPACE,
        )
        seconds = time.perf_counter() - t0
        return Sample(rep, blob.mib / seconds, seconds)

    def cleanup(self, env: BenchEnv, target: Target | None, rep: int) -> None:
        t = _need(target)
        digest = self._digest.pop(t.address, None)
        if digest:
            env.discard(t, INGEST_NAMESPACE, [digest])


class CtrGet(Workload):
    """``ctr content get`` of an N MiB blob to /dev/null (ctr reads in 32 KiB Read RPCs)."""

    name = "ctr-get"
    unit = "MiB/s"
    goal: Goal | None = Goal("≥ 1.0×", min_ratio=1.0)
    limits: tuple[str, ...] = ("page-cache-read",)

    def title(self, scale: Scale) -> str:
        return f"ctr content get {scale.mib} MiB (32 KiB Read RPCs)"

    def setup(self, env: BenchEnv, target: Target | None) -> None:
        env.kept_blob(_need(target), env.scale.mib)

    def sample(self, env: BenchEnv, target: Target | None, rep: int) -> Sample:
        t = _need(target)
        digest = env.kept_blob(t, env.scale.mib)
        r = t.ctr(
            "content",
            "get",
            digest,
            namespace=KEEP_NAMESPACE,
            capture=False,
            timeout=self.timeout(env.scale),
        )
        return Sample(rep, env.scale.mib / r.seconds, r.seconds)


class ReadStream(Workload):
    """One Read stream of a whole N MiB blob (the server picks the chunk size)."""

    name = "read-stream"
    unit = "MiB/s"
    goal: Goal | None = Goal("≥ 1.0×", min_ratio=1.0)
    limits: tuple[str, ...] = ("page-cache-read",)

    def title(self, scale: Scale) -> str:
        return f"raw Read stream {scale.mib} MiB"

    def setup(self, env: BenchEnv, target: Target | None) -> None:
        env.kept_blob(_need(target), env.scale.mib)

    def sample(self, env: BenchEnv, target: Target | None, rep: int) -> Sample:
        t = _need(target)
        digest = env.kept_blob(t, env.scale.mib)
        t0 = time.perf_counter()
        n = t.client.read(digest, namespace=KEEP_NAMESPACE)
        seconds = time.perf_counter() - t0
        if n != env.scale.mib * MIB:
            raise RuntimeError(f"{t.name} sent {n} bytes, expected {env.scale.mib * MIB}")
        return Sample(rep, env.scale.mib / seconds, seconds)
