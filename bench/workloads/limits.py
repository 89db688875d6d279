"""Physical limits, measured in the same run on the same filesystem."""

from __future__ import annotations

import contextlib
import hashlib
import os
import subprocess
import time

from bench.data import MIB
from bench.env import BenchEnv, Scale
from bench.model import Sample
from bench.peers import Target
from bench.workloads.base import SINGLE, Workload

__all__ = ["DdFsync", "PageCacheRead", "Sha256"]


class DdFsync(Workload):
    """``dd if=/dev/zero bs=1M count=N conv=fsync`` into the run's temp dir (wall time)."""

    name = "dd-fsync"
    section = "limits"
    unit = "MiB/s"
    targets = SINGLE

    def title(self, scale: Scale) -> str:
        return f"dd {scale.mib} MiB with fsync (same filesystem)"

    def sample(self, env: BenchEnv, target: Target | None, rep: int) -> Sample:
        path = env.path("dd.bin")
        argv = ["dd", "if=/dev/zero", f"of={path}", "bs=1M", f"count={env.scale.mib}"]
        t0 = time.perf_counter()
        subprocess.run(
            [*argv, "conv=fsync", "status=none"], check=True, timeout=self.timeout(env.scale)
        )
        seconds = time.perf_counter() - t0
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        return Sample(rep, env.scale.mib / seconds, seconds)


class Sha256(Workload):
    """hashlib.sha256 over N MiB in 1 MiB updates (OpenSSL, SHA-NI where the CPU has it)."""

    name = "sha256"
    section = "limits"
    unit = "MiB/s"
    targets = SINGLE

    def title(self, scale: Scale) -> str:
        return f"hashlib sha256, {scale.mib} MiB"

    def sample(self, env: BenchEnv, target: Target | None, rep: int) -> Sample:
        block = env.data.block
        h = hashlib.sha256()
        t0 = time.perf_counter()
        for _ in range(env.scale.mib):
            h.update(block)
        h.hexdigest()
        seconds = time.perf_counter() - t0
        return Sample(rep, env.scale.mib / seconds, seconds)


class PageCacheRead(Workload):
    """Reading an N MiB file that is in the page cache, 1 MiB ``readinto`` at a time."""

    name = "page-cache-read"
    section = "limits"
    unit = "MiB/s"
    targets = SINGLE

    def title(self, scale: Scale) -> str:
        return f"read {scale.mib} MiB from the page cache"

    def _file(self, env: BenchEnv) -> str:
        path = env.path(f"pread-{env.scale.mib}.bin")
        if not os.path.exists(path):
            env.data.write_file(path, env.scale.mib, "pread")
        return path

    def _read(self, path: str) -> int:
        buf = bytearray(MIB)
        n = 0
        with open(path, "rb", buffering=0) as f:
            while True:
                got = f.readinto(buf)
                if not got:
                    return n
                n += got

    def setup(self, env: BenchEnv, target: Target | None) -> None:
        self._read(self._file(env))  # warm the cache

    def sample(self, env: BenchEnv, target: Target | None, rep: int) -> Sample:
        path = self._file(env)
        t0 = time.perf_counter()
        n = self._read(path)
        seconds = time.perf_counter() - t0
        return Sample(rep, n / MIB / seconds, seconds)
