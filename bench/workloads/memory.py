"""Daemon memory: peak resident set during an ingest and during a read.

Each sample restarts the daemon (so ``VmHWM``, the peak since process start,
belongs to this sample), runs the operation at N/4 MiB and then at N MiB, and
reads ``VmHWM`` after each; ``VmRSS`` is also sampled every 5 ms. The figure
is ``VmHWM`` after the N MiB operation; ``growth`` is that minus ``VmHWM``
after the N/4 one (flat in blob size means a growth near 0). The restarted
daemons keep their stores, so later rows are not affected.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bench.env import KEEP_NAMESPACE, BenchEnv, Scale
from bench.model import Goal, Sample
from bench.peers import RssSampler, Target
from bench.workloads.base import Workload
from bench.workloads.transfer import INGEST_NAMESPACE, _need

__all__ = ["RssIngest", "RssRead"]

_MB = 1e6


def _mb(kib: int) -> float:
    return kib * 1024 / _MB


class _RssRow(Workload):
    unit = "MB"
    higher_is_better = False
    goal: Goal | None = Goal("≤ 100 MB, flat in blob size", max_value=100.0, max_growth=10.0)
    what = ""

    def title(self, scale: Scale) -> str:
        return f"daemon peak RSS, {self.what} {scale.mib} MiB"

    def op(self, env: BenchEnv, t: Target, mib: int, rep: int) -> Callable[[], Any]:
        raise NotImplementedError

    def sample(self, env: BenchEnv, target: Target | None, rep: int) -> Sample:
        t = _need(target)
        sizes = sorted({env.scale.quarter_mib, env.scale.mib})
        ops = [(m, self.op(env, t, m, rep)) for m in sizes]
        t.restart()
        t.client.wait_ready(timeout=30)
        pid = t.pid
        if pid is None:
            raise RuntimeError(f"{t.name} is not running")
        extra: dict[str, Any] = {"pid": pid}
        for mib, run in ops:
            with RssSampler(pid) as s:
                run()
            extra[f"hwm_mb_{mib}"] = _mb(s.hwm_kib)
            extra[f"rss_peak_mb_{mib}"] = _mb(s.peak_kib)
            extra[f"rss_before_mb_{mib}"] = _mb(s.before_kib)
            extra[f"rss_anon_peak_mb_{mib}"] = _mb(s.anon_peak_kib)
        quarter, full = env.scale.quarter_mib, env.scale.mib
        value = extra[f"hwm_mb_{full}"]
        extra["growth"] = value - extra[f"hwm_mb_{quarter}"]
        return Sample(rep, value, None, extra)


class RssIngest(_RssRow):
    name = "rss-ingest"
    what = "Write stream of"

    def __init__(self) -> None:
        self._digests: dict[str, list[str]] = {}

    def op(self, env: BenchEnv, t: Target, mib: int, rep: int) -> Callable[[], Any]:
        blob = env.data.big(mib, f"rss-{t.name}-{rep}-{mib}")
        self._digests.setdefault(t.address, []).append(blob.digest)

        def run() -> None:
            t.client.write_blob(
                f"bench-rss-{rep}-{mib}",
                blob.chunks(),
                total=blob.size,
                expected=blob.digest,
                namespace=INGEST_NAMESPACE,
            )

        return run

    def cleanup(self, env: BenchEnv, target: Target | None, rep: int) -> None:
        t = _need(target)
        env.discard(t, INGEST_NAMESPACE, self._digests.pop(t.address, []))


class RssRead(_RssRow):
    name = "rss-read"
    what = "Read stream of"

    def setup(self, env: BenchEnv, target: Target | None) -> None:
        t = _need(target)
        for mib in {env.scale.quarter_mib, env.scale.mib}:
            env.kept_blob(t, mib)

    def op(self, env: BenchEnv, t: Target, mib: int, rep: int) -> Callable[[], Any]:
        digest = env.kept_blob(t, mib)

        def run() -> None:
            t.client.read(digest, namespace=KEEP_NAMESPACE)

        return run
