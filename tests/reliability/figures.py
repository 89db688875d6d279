"""Counts the reliability tests report (cycles, inputs, failures), printed at the end."""

from __future__ import annotations

from collections import Counter

__all__ = ["FIGURES", "count"]

FIGURES: Counter[str] = Counter()


def count(name: str, n: int = 1) -> None:
    FIGURES[name] += n
