"""The table (Markdown, so it can go into the README as printed) and the JSON document."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from bench.model import Row, Series

__all__ = ["format_table", "format_value", "limit_of", "write_json"]

RATIO_HEADER = "ratio (>1: contentd better)"


def format_value(value: float | None, unit: str) -> str:
    if value is None:
        return "–"
    if unit == "s":
        return f"{value:.2f} s"
    if unit == "ms":
        return f"{value:.0f} ms"
    if unit == "MB":
        return f"{value:.1f} MB"
    if value >= 100:
        text = f"{value:,.0f}"
    elif value >= 10:
        text = f"{value:.1f}"
    else:
        text = f"{value:.2f}"
    return f"{text} {unit}"


def _number(value: float | None, unit: str) -> str:
    return format_value(value, unit).removesuffix(f" {unit}")


def _cell(series: Series | None, unit: str) -> str:
    if series is None:
        return "–"
    if series.error and not series.samples:
        return "ERROR: " + _short(series.error)
    text = format_value(series.median, unit)
    if len(series.samples) > 1:
        text += f" (best {_number(series.best, unit)})"
    if series.error:
        text += " ERROR after some samples"
    return text


def _short(text: str, width: int = 60) -> str:
    line = " ".join(text.split())
    return line if len(line) <= width else line[: width - 1] + "…"


def limit_of(row: Row, rows: Mapping[str, Row]) -> tuple[str, float] | None:
    """The smallest of the row's limit figures measured in this run: (name, median)."""
    found = [
        (name, rows[name].subject.median)
        for name in row.limits
        if name in rows and rows[name].subject.median
    ]
    if not found:
        return None
    name, value = min(found, key=lambda nv: nv[1] or 0.0)
    assert value is not None
    return name, value


def _of_limit(row: Row, rows: Mapping[str, Row]) -> str:
    limit = limit_of(row, rows)
    if limit is None:
        return ""
    name, value = limit
    parts = []
    for series in (row.subject, row.baseline):
        if series is not None and series.median is not None:
            share = 100 * series.median / value
            parts.append(f"{share:.1f}%" if share < 10 else f"{share:.0f}%")
    return f"{' | '.join(parts)} of {name}" if parts else ""


def _met(row: Row) -> str:
    met = row.met
    if row.goal is None:
        return ""
    return "–" if met is None else ("yes" if met else "**no**")


def format_table(rows: Iterable[Row]) -> str:
    """One Markdown table: daemon rows, then library rows, then the limits."""
    rows = list(rows)
    by_name = {r.name: r for r in rows}
    header = [
        "workload",
        "containerd 1.6.20",
        "contentd",
        RATIO_HEADER,
        "goal",
        "met?",
        "share of limit (contentd | containerd)",
    ]
    lines = [header, ["---"] * len(header)]
    order = {"daemons": 0, "library": 1, "limits": 2}
    for row in sorted(rows, key=lambda r: order.get(r.section, 3)):
        ratio = row.ratio
        lines.append(
            [
                row.title,
                _cell(row.baseline, row.unit),
                _cell(row.subject, row.unit),
                "–" if ratio is None else f"{ratio:.2f}×",
                row.goal.text if row.goal else "",
                _met(row),
                _of_limit(row, by_name),
            ]
        )
    return "\n".join("| " + " | ".join(cells) + " |" for cells in lines)


def errors_text(rows: Iterable[Row]) -> str:
    out = []
    for row in rows:
        for series in (row.baseline, row.subject):
            if series is not None and series.error:
                out.append(f"- {row.name} on {series.target}: {series.error}")
        for note in row.notes:
            out.append(f"- {row.name}: {note}")
    return "\n".join(out)


def write_json(path: str | Path, doc: Mapping[str, Any]) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(doc, indent=2, sort_keys=False) + "\n")
    tmp.replace(path)
