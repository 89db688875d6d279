"""contentd as a library, in this process: LocalStore ingest/read, metadata Info/Walk rates.

No containerd equivalent; absolute figures only.
"""

from __future__ import annotations

import time
from typing import Any

from bench.data import MIB
from bench.env import BenchEnv, Scale
from bench.model import Sample
from bench.peers import Target
from bench.workloads.base import SINGLE, Workload
from contentd.local import LocalStore

__all__ = ["LocalIngest", "LocalRead", "MetaInfo", "MetaWalk"]


def _local(env: BenchEnv) -> LocalStore:
    store = env.extra.get("lib-local")
    if store is None:
        store = env.extra["lib-local"] = LocalStore(env.path("lib-local"))
    assert isinstance(store, LocalStore)
    return store


class LocalIngest(Workload):
    """LocalStore writer: N MiB in 1 MiB writes, commit with size and digest (fsynced)."""

    name = "lib-local-ingest"
    section = "library"
    unit = "MiB/s"
    targets = SINGLE
    limits: tuple[str, ...] = ("dd-fsync", "sha256")

    def __init__(self) -> None:
        self._digest: str | None = None

    def title(self, scale: Scale) -> str:
        return f"LocalStore ingest {scale.mib} MiB (in-process)"

    def sample(self, env: BenchEnv, target: Target | None, rep: int) -> Sample:
        store = _local(env)
        blob = env.data.big(env.scale.mib, f"lib-ingest-{rep}")
        self._digest = blob.digest
        t0 = time.perf_counter()
        with store.writer(f"lib-ingest-{rep}", blob.size, blob.digest) as w:
            for chunk in blob.chunks():
                w.write(chunk)
            w.commit(blob.size, blob.digest)
        seconds = time.perf_counter() - t0
        return Sample(rep, blob.mib / seconds, seconds)

    def cleanup(self, env: BenchEnv, target: Target | None, rep: int) -> None:
        if self._digest:
            _local(env).delete(self._digest)
            self._digest = None


class LocalRead(Workload):
    """LocalStore reader_at: read_at of an N MiB blob in 1 MiB pieces."""

    name = "lib-local-read"
    section = "library"
    unit = "MiB/s"
    targets = SINGLE
    limits: tuple[str, ...] = ("page-cache-read",)

    def title(self, scale: Scale) -> str:
        return f"LocalStore read {scale.mib} MiB (in-process)"

    def _digest(self, env: BenchEnv) -> str:
        digest = env.extra.get("lib-read-digest")
        if digest is None:
            store = _local(env)
            blob = env.data.big(env.scale.mib, "lib-read")
            with store.writer("lib-read", blob.size, blob.digest) as w:
                for chunk in blob.chunks():
                    w.write(chunk)
                w.commit(blob.size, blob.digest)
            digest = env.extra["lib-read-digest"] = blob.digest
        assert isinstance(digest, str)
        return digest

    def setup(self, env: BenchEnv, target: Target | None) -> None:
        self._digest(env)

    def sample(self, env: BenchEnv, target: Target | None, rep: int) -> Sample:
        digest = self._digest(env)
        size = env.scale.mib * MIB
        t0 = time.perf_counter()
        with _local(env).reader_at(digest) as ra:
            offset = 0
            while offset < size:
                chunk = ra.read_at(offset, MIB)
                if not chunk:
                    break
                offset += len(chunk)
        seconds = time.perf_counter() - t0
        if offset != size:
            raise RuntimeError(f"read {offset} of {size} bytes")
        return Sample(rep, env.scale.mib / seconds, seconds)


def _metadata(env: BenchEnv) -> tuple[Any, list[str]]:
    """A MetadataDB over a LocalStore with K small blobs in namespace ``bench``."""
    found = env.extra.get("lib-metadata")
    if found is None:
        from contentd.metadata import MetadataDB

        db = MetadataDB(env.path("lib-meta.db"), LocalStore(env.path("lib-meta-content")))
        env.on_close(db.close)
        store = db.content_store("bench")
        digests: list[str] = []
        for i in range(env.scale.blobs):
            data, digest = env.data.small(env.scale.small_size, f"meta {i}")
            with store.writer(f"meta-{i}", len(data), digest) as w:
                w.write(data)
                w.commit(len(data), digest)
            digests.append(digest)
        found = env.extra["lib-metadata"] = (store, digests)
    return found


class MetaInfo(Workload):
    """MetadataDB content store: ``info(digest)`` for each of K blobs."""

    name = "lib-meta-info"
    section = "library"
    unit = "infos/s"
    targets = SINGLE

    def title(self, scale: Scale) -> str:
        return f"metadata Info over {scale.blobs} blobs (in-process)"

    def setup(self, env: BenchEnv, target: Target | None) -> None:
        _metadata(env)

    def sample(self, env: BenchEnv, target: Target | None, rep: int) -> Sample:
        store, digests = _metadata(env)
        info = store.info
        t0 = time.perf_counter()
        for digest in digests:
            info(digest)
        seconds = time.perf_counter() - t0
        return Sample(rep, len(digests) / seconds, seconds)


class MetaWalk(Workload):
    """MetadataDB content store: one unfiltered ``walk()`` over K blobs."""

    name = "lib-meta-walk"
    section = "library"
    unit = "blobs/s"
    targets = SINGLE

    def title(self, scale: Scale) -> str:
        return f"metadata Walk over {scale.blobs} blobs (in-process)"

    def setup(self, env: BenchEnv, target: Target | None) -> None:
        _metadata(env)

    def sample(self, env: BenchEnv, target: Target | None, rep: int) -> Sample:
        store, digests = _metadata(env)
        t0 = time.perf_counter()
        n = sum(1 for _ in store.walk())
        seconds = time.perf_counter() - t0
        if n != len(digests):
            raise RuntimeError(f"walk saw {n} blobs, want {len(digests)}")
        return Sample(rep, n / seconds, seconds)
