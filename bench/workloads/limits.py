"""Physical limits, measured in the same run on the same filesystem."""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import subprocess
import time

from bench.data import MIB
from bench.env import BenchEnv, Scale
from bench.model import Sample
from bench.peers import Target
from bench.workloads.base import SINGLE, Workload

__all__ = ["DdFsync", "DurableSmallFiles", "PageCacheRead", "Sha256"]


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


class DurableSmallFiles(Workload):
    """K durable 1 KiB files the way a content store commits a blob: write a temp file,
    fsync it, link it into a blob directory, fsync that directory, unlink the temp name.
    The floor for any store that keeps a committed blob durable (no metadata DB)."""

    name = "durable-small-files"
    section = "limits"
    unit = "blobs/s"
    targets = SINGLE

    def title(self, scale: Scale) -> str:
        return f"{scale.blobs} durable {scale.small_size} B files (fsync file + dir)"

    def sample(self, env: BenchEnv, target: Target | None, rep: int) -> Sample:
        root = env.path(f"small-files-{rep}")
        tmp_dir, blob_dir = os.path.join(root, "tmp"), os.path.join(root, "blobs")
        os.makedirs(tmp_dir)
        os.makedirs(blob_dir)
        payloads = [
            env.data.small(env.scale.small_size, f"floor {rep} {i}") for i in range(env.scale.blobs)
        ]
        t0 = time.perf_counter()
        for i, (data, _) in enumerate(payloads):
            tmp = os.path.join(tmp_dir, str(i))
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            try:
                os.write(fd, data)
                os.fsync(fd)
            finally:
                os.close(fd)
            os.link(tmp, os.path.join(blob_dir, str(i)))
            dfd = os.open(blob_dir, os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
            os.unlink(tmp)
        seconds = time.perf_counter() - t0
        shutil.rmtree(root, ignore_errors=True)
        return Sample(rep, env.scale.blobs / seconds, seconds)
