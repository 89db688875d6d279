"""Many small blobs: sequential 1 KiB ingests, and ``ctr content ls`` over them
(all of them, and through a regexp filter that matches none)."""

from __future__ import annotations

import time

from bench.env import BenchEnv, Scale
from bench.model import Goal, Sample
from bench.peers import Target, client_cpu_seconds
from bench.workloads.base import Workload
from bench.workloads.transfer import _need

__all__ = ["CtrLs", "CtrLsRegexp", "SmallIngests"]

#: Blobs one target ingests before the other takes its turn (interleaved sampling).
STEP = 100
#: Where :class:`CtrLs` populates its own blobs when no small-ingest namespace is left.
LS_NAMESPACE = "bench-ls"


def _populated(env: BenchEnv) -> dict[str, str]:
    """``{target address: namespace holding exactly scale.blobs small blobs}``."""
    return env.extra.setdefault("small-namespaces", {})  # type: ignore[no-any-return]


def _ingest_all(
    t: Target, blobs: list[tuple[bytes, str]], namespace: str, prefix: str, first: int = 0
) -> None:
    write = t.client.write_blob
    for i, (data, digest) in enumerate(blobs, first):
        write(f"{prefix}-{i}", (data,), total=len(data), expected=digest, namespace=namespace)


class SmallIngests(Workload):
    """K sequential ingests of distinct 1 KiB blobs, one lock-step Write stream each
    (STAT, WRITE, COMMIT with the expected digest), each committed durably. The two
    targets take turns every :data:`STEP` blobs; each one's time is the sum of its turns."""

    name = "small-ingests"
    unit = "blobs/s"
    goal: Goal | None = Goal("≥ 2× (durability kept)", min_ratio=2.0)
    limits: tuple[str, ...] = ("durable-small-files",)

    def title(self, scale: Scale) -> str:
        return f"{scale.blobs} sequential {scale.small_size} B ingests (a Write stream each)"

    def timeout(self, scale: Scale) -> float:
        return 60.0 + 0.2 * scale.blobs

    def sample(self, env: BenchEnv, target: Target | None, rep: int) -> Sample:
        result = self.sample_interleaved(env, {_need(target).name: target}, rep)
        sample = result[_need(target).name]
        if isinstance(sample, Exception):
            raise sample
        return sample

    def sample_interleaved(
        self, env: BenchEnv, targets: dict[str, Target | None], rep: int
    ) -> dict[str, Sample | Exception]:
        """Each target ingests its K blobs in steps of :data:`STEP`, the targets taking
        turns (a sample lasts minutes at full scale; load changes hit both alike)."""
        k, size = env.scale.blobs, env.scale.small_size
        namespace = f"bench-small-{rep}"
        work = {
            name: (
                _need(t),
                [env.data.small(size, f"small {name} {rep} {i}") for i in range(k)],
            )
            for name, t in targets.items()
        }
        seconds = dict.fromkeys(work, 0.0)
        cpu: dict[str, float | None] = dict.fromkeys(work, 0.0)
        client = dict.fromkeys(work, 0.0)
        failed: dict[str, Exception] = {}
        for start in range(0, k, STEP):
            for name, (t, blobs) in work.items():
                if name in failed:
                    continue
                cpu0 = t.cpu_seconds()
                client0 = client_cpu_seconds()
                t0 = time.perf_counter()
                try:
                    _ingest_all(t, blobs[start : start + STEP], namespace, f"small-{rep}", start)
                except Exception as err:
                    failed[name] = err
                seconds[name] += time.perf_counter() - t0
                client[name] += client_cpu_seconds() - client0
                cpu1, used = t.cpu_seconds(), cpu[name]
                cpu[name] = (
                    None if cpu0 is None or cpu1 is None or used is None else used + cpu1 - cpu0
                )
        out: dict[str, Sample | Exception] = {}
        for name, (t, _) in work.items():
            if name in failed:
                out[name] = failed[name]
            else:
                _populated(env).setdefault(t.address, namespace)
                extra: dict[str, object] = {"step": STEP, "client_cpu_s": round(client[name], 3)}
                if cpu[name] is not None:
                    extra["daemon_cpu_s"] = round(cpu[name] or 0.0, 3)
                out[name] = Sample(rep, k / seconds[name], seconds[name], extra)
        return out


class CtrLs(Workload):
    """``ctr content ls`` of a namespace holding K blobs (only the ls is timed)."""

    name = "ctr-ls"
    unit = "ms"
    higher_is_better = False
    goal: Goal | None = Goal("≤ 1.0× (time)", min_ratio=1.0)

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


class CtrLsRegexp(CtrLs):
    """:class:`CtrLs` through a ``~=`` filter that fails on every digest only after
    exponentially many tries on a backtracking engine (``(...+)+`` then a ``!`` no
    digest has); Go's regexp and RE2 answer in time linear in the digest."""

    name = "ctr-ls-regexp"
    #: no digest ends in "!": nothing is listed
    FILTER = "digest~=^([0-9a-z:]+)+!$"

    def title(self, scale: Scale) -> str:
        return f"ctr content ls {self.FILTER} over {scale.blobs} blobs"

    def sample(self, env: BenchEnv, target: Target | None, rep: int) -> Sample:
        t = _need(target)
        r = t.ctr(
            "content",
            "ls",
            self.FILTER,
            namespace=self._namespace[t.address],
            timeout=self.timeout(env.scale),
        )
        lines = r.stdout.count(b"\n") - 1
        if lines != 0:
            raise RuntimeError(f"{t.name}: ls {self.FILTER} listed {lines} blobs, want none")
        return Sample(rep, r.seconds * 1000.0, r.seconds)
