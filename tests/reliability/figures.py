"""Counts the reliability tests report (cycles, inputs, failures), printed at the end."""

from __future__ import annotations

__all__ = ["FIGURES", "count"]

#: name -> a count, or a measured figure as text
FIGURES: dict[str, int | str] = {}


def count(name: str, n: int = 1) -> None:
    value = FIGURES.get(name, 0)
    FIGURES[name] = (value if isinstance(value, int) else 0) + n
