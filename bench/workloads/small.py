"""Many small blobs: sequential 1 KiB ingests, and ``ctr content ls`` over them."""

from __future__ import annotations

import time

from bench.env import BenchEnv, Scale
from bench.model import Goal, Sample
from bench.peers import Target
from bench.workloads.base import Workload
from bench.workloads.transfer import _need

__all__ = ["CtrLs", "SmallIngests"]

#: Where :class:`CtrLs` populates its own blobs when no small-ingest namespace is left.
LS_NAMESPACE = "bench-ls"


def _populated(env: BenchEnv) -> dict[str, str]:
    """``{target address: namespace holding exactly scale.blobs small blobs}``."""
    return env.extra.setdefault("small-namespaces", {})  # type: ignore[no-any-return]


def _ingest_all(t: Target, blobs: list[tuple[bytes, str]], namespace: str, prefix: str) -> None:
    write = t.client.write_blob
    for i, (data, digest) in enumerate(blobs):
        write(f"{prefix}-{i}", (data,), total=len(data), expected=digest, namespace=namespace)


class SmallIngests(Workload):
    """K sequential ingests of distinct 1 KiB blobs, one lock-step Write stream each
    (STAT, WRITE, COMMIT with the expected digest), each committed durably."""

    name = "small-ingests"
    unit = "blobs/s"
    goal = Goal("≥ 2× (durability kept)", min_ratio=2.0)
    limits = ("durable-small-files",)

    def title(self, scale: Scale) -> str:
        return f"{scale.blobs} sequential {scale.small_size} B ingests (a Write stream each)"

    def timeout(self, scale: Scale) -> float:
        return 60.0 + 0.2 * scale.blobs

    def sample(self, env: BenchEnv, target: Target | None, rep: int) -> Sample:
        t = _need(target)
        k, size = env.scale.blobs, env.scale.small_size
        blobs = [env.data.small(size, f"small {t.name} {rep} {i}") for i in range(k)]
        namespace = f"bench-small-{rep}"
        t0 = time.perf_counter()
        _ingest_all(t, blobs, namespace, f"small-{rep}")
        seconds = time.perf_counter() - t0
        _populated(env).setdefault(t.address, namespace)
        return Sample(rep, k / seconds, seconds)


class CtrLs(Workload):
    """``ctr content ls`` of a namespace holding K blobs (only the ls is timed)."""

    name = "ctr-ls"
    unit = "ms"
    higher_is_better = False
    goal = Goal("≤ 1.0× (time)", min_ratio=1.0)

    def __init__(self) -> None:
        self._namespace: dict[str, str] = {}

    def title(self, scale: Scale) -> str:
        return f"ctr content ls over {scale.blobs} blobs"

    def setup(self, env: BenchEnv, target: Target | None) -> None:
        t = _need(target)
        k = env.scale.blobs
        namespace = _populated(env).get(t.address)
        if namespace is None or t.client.count(namespace=namespace) != k:
            namespace = LS_NAMESPACE
            have = t.client.count(namespace=namespace)
            if have != k:
                if have:
                    raise RuntimeError(f"{t.name}: {namespace} holds {have} blobs, want {k}")
                size = env.scale.small_size
                blobs = [env.data.small(size, f"ls {t.name} {i}") for i in range(k)]
                _ingest_all(t, blobs, namespace, "ls")
        self._namespace[t.address] = namespace

    def sample(self, env: BenchEnv, target: Target | None, rep: int) -> Sample:
        t = _need(target)
        r = t.ctr(
            "content", "ls", namespace=self._namespace[t.address], timeout=self.timeout(env.scale)
        )
        lines = r.stdout.count(b"\n") - 1  # a header line, then one line per blob
        if lines != env.scale.blobs:
            raise RuntimeError(f"{t.name}: ls listed {lines} blobs, want {env.scale.blobs}")
        return Sample(rep, r.seconds * 1000.0, r.seconds)
