"""Samples, series, goals and rows: what a run measures and how it is judged."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Goal", "Row", "Sample", "Series"]


@dataclass
class Sample:
    """One repetition on one target: ``value`` in the row's unit, plus what else was seen."""

    rep: int
    value: float
    seconds: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"rep": self.rep, "value": self.value}
        if self.seconds is not None:
            out["seconds"] = self.seconds
        out.update(self.extra)
        return out


@dataclass
class Series:
    """Every sample of one row on one target (or the error that stopped it)."""

    target: str
    higher_is_better: bool
    samples: list[Sample] = field(default_factory=list)
    error: str | None = None
    note: str | None = None

    @property
    def growth(self) -> float | None:
        """Median of the samples' ``growth`` extra (memory rows), if they have one."""
        values = [s.extra["growth"] for s in self.samples if "growth" in s.extra]
        return statistics.median(values) if values else None

    @property
    def cpu_median(self) -> float | None:
        """Median daemon CPU seconds per sample (where the runner could measure it)."""
        values = [s.extra["daemon_cpu_s"] for s in self.samples if "daemon_cpu_s" in s.extra]
        return statistics.median(values) if values else None

    @property
    def client_cpu_median(self) -> float | None:
        """Median CPU seconds of the benchmark's client per sample (its own process and
        the ``ctr`` it ran): the same client drives both targets."""
        values = [s.extra["client_cpu_s"] for s in self.samples if "client_cpu_s" in s.extra]
        return statistics.median(values) if values else None

    @property
    def values(self) -> list[float]:
        return [s.value for s in self.samples]

    @property
    def median(self) -> float | None:
        return statistics.median(self.values) if self.samples else None

    @property
    def best(self) -> float | None:
        """The best sample: the largest rate, or the smallest time/size (= the min time)."""
        if not self.samples:
            return None
        return max(self.values) if self.higher_is_better else min(self.values)

    def as_json(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "median": self.median,
            "best": self.best,
            "daemon_cpu_s_median": self.cpu_median,
            "client_cpu_s_median": self.client_cpu_median,
            "error": self.error,
            "note": self.note,
            "samples": [s.as_json() for s in self.samples],
        }


@dataclass(frozen=True)
class Goal:
    """A row's goal: ``ratio`` (> 1 means contentd better) at least ``min_ratio``, and/or
    contentd's median at most ``max_value`` (in the row's unit), and/or the median of its
    samples' ``growth`` (the figure at N minus the figure at N/4) at most ``max_growth``."""

    text: str
    min_ratio: float | None = None
    max_value: float | None = None
    max_growth: float | None = None

    def met(
        self, ratio: float | None, value: float | None, growth: float | None = None
    ) -> bool | None:
        checks: list[bool] = []
        if self.max_growth is not None:
            if growth is None:
                return None
            checks.append(growth <= self.max_growth)
        if self.min_ratio is not None:
            if ratio is None:
                return None
            checks.append(ratio >= self.min_ratio)
        if self.max_value is not None:
            if value is None:
                return None
            checks.append(value <= self.max_value)
        return all(checks) if checks else None


@dataclass
class Row:
    """One line of the table.

    A pair row has a ``baseline`` series (containerd) and a ``subject`` series
    (contentd, or containerd with contentd behind it); a single row (library,
    limits) only a ``subject``. ``limits`` names the limit rows this row's
    figure is compared with (the smallest one is used).
    """

    name: str
    title: str
    unit: str
    higher_is_better: bool
    subject: Series
    baseline: Series | None = None
    goal: Goal | None = None
    limits: tuple[str, ...] = ()
    section: str = "daemons"
    error: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def ratio(self) -> float | None:
        """contentd relative to containerd, > 1 meaning contentd is better (medians)."""
        if self.baseline is None:
            return None
        a, b = self.baseline.median, self.subject.median
        if a is None or b is None or a <= 0 or b <= 0:
            return None
        return b / a if self.higher_is_better else a / b

    @property
    def met(self) -> bool | None:
        if self.goal is None:
            return None
        return self.goal.met(self.ratio, self.subject.median, self.subject.growth)

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "title": self.title,
            "section": self.section,
            "unit": self.unit,
            "higher_is_better": self.higher_is_better,
            "baseline": self.baseline.as_json() if self.baseline else None,
            "subject": self.subject.as_json(),
            "ratio": self.ratio,
            "goal": self.goal.text if self.goal else None,
            "met": self.met,
            "limits": list(self.limits),
            "error": self.error,
            "notes": self.notes,
        }
