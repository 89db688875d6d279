"""The shape of a workload: what the runner calls, in which order."""

from __future__ import annotations

from bench.env import BenchEnv, Scale
from bench.model import Goal, Row, Sample
from bench.peers import Target

__all__ = ["PAIR", "PROXY_PAIR", "SINGLE", "Workload"]

#: containerd first (the baseline), then contentd.
PAIR = ("containerd", "contentd")
#: plain containerd, then containerd with contentd as its content proxy plugin.
PROXY_PAIR = ("containerd", "containerd+contentd")
#: In-process rows (library, physical limits): no daemon.
SINGLE = ("library",)


class Workload:
    """One row. The runner calls, for each target in :attr:`targets`: :meth:`setup`; then
    for each repetition, for each target in turn (A B A B ...): :meth:`sample` (the timed
    part) and :meth:`cleanup` (untimed); finally :meth:`teardown` per target.

    For :data:`SINGLE` rows ``target`` is None. A workload whose
    :meth:`sample_interleaved` returns samples is measured that way instead.
    """

    name: str = ""
    section: str = "daemons"
    unit: str = ""
    higher_is_better: bool = True
    goal: Goal | None = None
    limits: tuple[str, ...] = ()
    targets: tuple[str, ...] = PAIR
    #: repetitions at most (None: as many as the run asks for)
    max_reps: int | None = None

    def title(self, scale: Scale) -> str:
        raise NotImplementedError

    def timeout(self, scale: Scale) -> float:
        """Bound on one sample's subprocess or RPC, in seconds."""
        return 120.0 + 0.6 * scale.mib

    def target(self, env: BenchEnv, name: str) -> Target | None:
        return None if name == "library" else env.target(name)

    def setup(self, env: BenchEnv, target: Target | None) -> None:
        pass

    def sample(self, env: BenchEnv, target: Target | None, rep: int) -> Sample:
        raise NotImplementedError

    def sample_interleaved(
        self, env: BenchEnv, targets: dict[str, Target | None], rep: int
    ) -> dict[str, Sample | Exception] | None:
        """One repetition on all ``targets`` at once, alternating between them in small
        steps (for samples that take minutes, so a change in machine load hits both
        alike). None (the default) means: call :meth:`sample` per target instead."""
        return None

    def cleanup(self, env: BenchEnv, target: Target | None, rep: int) -> None:
        pass

    def teardown(self, env: BenchEnv, target: Target | None) -> None:
        pass

    def notes(self, row: Row) -> list[str]:
        """Lines printed under the table for this row (figures the table has no column for)."""
        return []
