"""What the commands print: ctr's tables and humanised sizes and ages, and JSON.

Tables are Go's ``text/tabwriter`` output (:func:`tabwrite`), with the settings
each ``ctr`` command uses, so ``contentd content ls`` lines up like ``ctr
content ls``. Sizes and ages are go-units' ``HumanSize`` and ``HumanDuration``.

JSON (:meth:`~contentd.cli.context.Context.emit`, ``emit_list``): with ``--output
json`` a command prints one document, an array for a list; with ``jsonl`` one
object per line. Field names are stable, times are
RFC 3339 in UTC (Go's text form), and :func:`info_from_json` reads an object
of ``content ls``/``content info`` back into an :class:`~contentd.content.Info`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from datetime import datetime

    from contentd.content.types import Info, Status

__all__ = [
    "CTR_TABLE",
    "PLUGINS_TABLE",
    "SPACED_TABLE",
    "AgeCache",
    "SizeCache",
    "TableStyle",
    "TimestampText",
    "format_local_time",
    "format_time",
    "human_duration",
    "human_size",
    "info_from_json",
    "info_to_json",
    "json_line",
    "labels_text",
    "parse_time",
    "status_to_json",
    "table",
    "tabwrite",
]

_DECIMAL_UNITS: Final = ("B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB")


def human_size(size: float) -> str:
    """go-units ``HumanSize``: decimal units, 4 significant digits (``1.024kB``)."""
    unit = 0
    while size >= 1000.0 and unit < len(_DECIMAL_UNITS) - 1:
        size /= 1000.0
        unit += 1
    return f"{size:.4g}{_DECIMAL_UNITS[unit]}"


def human_duration(seconds: float) -> str:
    """go-units ``HumanDuration`` of a duration in seconds (``About a minute``, ``3 days``)."""
    whole = int(seconds)
    if whole < 1:
        return "Less than a second"
    if whole == 1:
        return "1 second"
    if whole < 60:
        return f"{whole} seconds"
    minutes = int(seconds / 60)
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours = int(seconds / 3600 + 0.5)
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // 24 // 7} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // 24 // 30} months"
    return f"{int(seconds / 3600) // 24 // 365} years"


class SizeCache:
    """:func:`human_size` remembered per size (listings repeat sizes)."""

    def __init__(self) -> None:
        self._texts: dict[int, str] = {}

    def __call__(self, size: int) -> str:
        text = self._texts.get(size)
        if text is None:
            text = self._texts[size] = human_size(size)
        return text


class AgeCache:
    """:func:`human_duration` of the time since ``(seconds, nanos)``, from ``now_ns``.

    Ages under an hour depend on whole seconds only and are remembered; longer
    ones round hours from the exact value, as go-units does. An unset
    timestamp (0, 0) is Go's zero time, as the proxy reads it.
    """

    def __init__(self, now_ns: int) -> None:
        self.now_ns = now_ns
        self._texts: dict[int, str] = {}

    def __call__(self, seconds: int, nanos: int) -> str:
        if seconds == 0 and nanos == 0:
            seconds = _ZERO_TIME_UNIX
        elapsed_ns = self.now_ns - (seconds * 1_000_000_000 + nanos)
        whole = elapsed_ns // 1_000_000_000
        if whole >= 3600:
            return human_duration(elapsed_ns / 1e9)
        text = self._texts.get(whole)
        if text is None:
            text = self._texts[whole] = human_duration(whole)
        return text


#: Go's zero time (0001-01-01T00:00:00Z) in Unix seconds.
_ZERO_TIME_UNIX: Final = -62135596800


def labels_text(labels: Mapping[str, str] | None, empty: str = "-") -> str:
    """``k=v,...`` sorted by key (ctr prints Go map order), or ``empty``."""
    if not labels:
        return empty
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


# -- tables ------------------------------------------------------------------------


class TableStyle:
    """The arguments of Go's ``tabwriter.NewWriter(w, minwidth, tabwidth, padding, padchar, 0)``."""

    __slots__ = ("minwidth", "padchar", "padding", "tabwidth")

    def __init__(self, minwidth: int, tabwidth: int, padding: int, padchar: str) -> None:
        self.minwidth = minwidth
        self.tabwidth = tabwidth
        self.padding = padding
        self.padchar = padchar


#: ``ctr content ls``/``active``: padded with tabs.
CTR_TABLE: Final = TableStyle(1, 8, 1, "\t")
#: ``ctr leases ls``, ``ctr namespaces ls``: padded with spaces.
SPACED_TABLE: Final = TableStyle(1, 8, 1, " ")
#: ``ctr plugins ls``.
PLUGINS_TABLE: Final = TableStyle(4, 8, 4, " ")


def tabwrite(text: str, style: TableStyle = CTR_TABLE) -> str:
    """Align ``text`` as Go's tabwriter does: every tab-terminated cell is a column cell.

    Columns are blocks of consecutive lines that have a cell in that column;
    the text after a line's last tab is not aligned.
    """
    lines = [line.split("\t") for line in text.split("\n")]
    out: list[str] = []
    widths: list[int] = []

    def padding(textw: int, cellw: int) -> str:
        if style.padchar == "\t":
            if style.tabwidth == 0:
                return ""
            cellw = (cellw + style.tabwidth - 1) // style.tabwidth * style.tabwidth
            return "\t" * ((cellw - textw + style.tabwidth - 1) // style.tabwidth)
        return style.padchar * (cellw - textw)

    def write_lines(line0: int, line1: int) -> None:
        for i in range(line0, line1):
            cells = lines[i]
            parts: list[str] = []
            for j, cell in enumerate(cells):
                parts.append(cell)
                if j < len(widths) and j < len(cells) - 1:
                    parts.append(padding(len(cell), widths[j]))
            out.append("".join(parts))

    def format_block(line0: int, line1: int) -> None:
        column = len(widths)
        this = line0
        while this < line1:
            if column >= len(lines[this]) - 1:
                this += 1
                continue
            write_lines(line0, this)
            line0 = this
            width = style.minwidth
            while this < line1 and column < len(lines[this]) - 1:
                width = max(width, len(lines[this][column]) + style.padding)
                this += 1
            widths.append(width)
            format_block(line0, this)
            widths.pop()
            line0 = this
        write_lines(line0, line1)

    format_block(0, len(lines))
    return "\n".join(out)


def table(
    header: Sequence[str],
    rows: Iterable[Sequence[str]],
    style: TableStyle = CTR_TABLE,
    *,
    trailing_tab: bool = False,
) -> str:
    """A header and rows joined by tabs (one more tab at each line's end with
    ``trailing_tab``, as most ctr tables have), aligned as :func:`tabwrite` would;
    ends with a newline. Every row has the header's number of cells."""
    lines = [list(header), *(list(row) for row in rows)]
    if trailing_tab:
        for line in lines:
            line.append("")
    columns = len(header) + (1 if trailing_tab else 0) - 1  # the last cell is not aligned
    if any(len(line) != columns + 1 for line in lines):
        end = "\t\n" if trailing_tab else "\n"
        text = "".join("\t".join(row) + end for row in (header, *rows))
        return tabwrite(text, style)
    widths = [
        max(style.minwidth, max(len(line[j]) for line in lines) + style.padding)
        for j in range(columns)
    ]
    tabs = style.padchar == "\t"
    tw = style.tabwidth
    if tabs:
        if tw == 0:
            return "".join("".join(line) + "\n" for line in lines)
        widths = [(w + tw - 1) // tw * tw for w in widths]
    # The fill after a cell depends only on its column and length: build each once.
    fills: list[list[str]] = []
    for j in range(columns):
        longest = max(len(line[j]) for line in lines)
        if tabs:
            fills.append(["\t" * ((widths[j] - n + tw - 1) // tw) for n in range(longest + 1)])
        else:
            fills.append([style.padchar * (widths[j] - n) for n in range(longest + 1)])
    if columns == 3:  # four cells, as ctr's DIGEST SIZE AGE LABELS: the big listings
        f0, f1, f2 = fills
        return "".join(
            [f"{a}{f0[len(a)]}{b}{f1[len(b)]}{c}{f2[len(c)]}{d}\n" for a, b, c, d in lines]
        )
    out: list[str] = []
    for line in lines:
        parts: list[str] = []
        for j in range(columns):
            cell = line[j]
            parts.append(cell)
            parts.append(fills[j][len(cell)])
        parts.append(line[columns])
        parts.append("\n")
        out.append("".join(parts))
    return "".join(out)


# -- times and JSON ----------------------------------------------------------------


def format_time(t: datetime) -> str:
    """RFC 3339 in UTC with trimmed fractional seconds (Go's ``Time.MarshalText``)."""
    from datetime import UTC  # here: a command that shows no time need not load datetime

    t = t.astimezone(UTC)
    text = t.strftime("%Y-%m-%dT%H:%M:%S")
    if len(text) < 19:  # years before 1000
        text = f"{t.year:04d}" + text[text.index("-") :]
    if t.microsecond:
        text += "." + f"{t.microsecond:06d}".rstrip("0")
    return text + "Z"


def format_local_time(t: datetime) -> str:
    """RFC 3339 in local time to the second (Go's ``t.Local().Format(time.RFC3339)``)."""
    from contentd.content.gotime import format_text

    return format_text(t.astimezone().replace(microsecond=0))


def parse_time(text: str) -> datetime:
    """The inverse of :func:`format_time` (any RFC 3339 offset; the result is UTC)."""
    from datetime import UTC, datetime

    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    return datetime.fromisoformat(text).astimezone(UTC)


_ENCODER: Final = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


def json_line(obj: Any) -> str:
    """One compact JSON object and a newline."""
    return _ENCODER.encode(obj) + "\n"


class TimestampText:
    """:func:`format_time` of a protobuf Timestamp's ``(seconds, nanos)`` as the proxy client
    reads it (microseconds; years 1..9999), without building a datetime; an absent
    Timestamp is Go's zero time. The seconds' text is remembered (listings repeat it)."""

    def __init__(self) -> None:
        self._base: dict[int, str] = {}

    def __call__(self, seconds: int, nanos: int, present: bool = True) -> str:
        if not present or seconds <= _ZERO_TIME_UNIX:
            return _ZERO_TIME_TEXT
        seconds = min(seconds, _MAX_UNIX)
        base = self._base.get(seconds)
        if base is None:
            t = time.gmtime(seconds)
            base = self._base[seconds] = (
                f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}"
                f"T{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}"
            )
        micro = nanos // 1000
        if micro:
            return base + "." + f"{micro:06d}".rstrip("0") + "Z"
        return base + "Z"


_ZERO_TIME_TEXT: Final = "0001-01-01T00:00:00Z"
_MAX_UNIX: Final = 253402300799  # 9999-12-31T23:59:59Z


def info_to_json(info: Info) -> dict[str, Any]:
    return {
        "digest": info.digest,
        "size": info.size,
        "created_at": format_time(info.created_at),
        "updated_at": format_time(info.updated_at),
        "labels": dict(info.labels or {}),
    }


def info_from_json(obj: Mapping[str, Any]) -> Info:
    from contentd.content.types import Info

    return Info(
        digest=str(obj["digest"]),
        size=int(obj["size"]),
        created_at=parse_time(str(obj["created_at"])),
        updated_at=parse_time(str(obj["updated_at"])),
        labels={str(k): str(v) for k, v in dict(obj.get("labels") or {}).items()},
    )


def status_to_json(status: Status) -> dict[str, Any]:
    return {
        "ref": status.ref,
        "offset": status.offset,
        "total": status.total,
        "expected": status.expected,
        "started_at": format_time(status.started_at),
        "updated_at": format_time(status.updated_at),
    }
