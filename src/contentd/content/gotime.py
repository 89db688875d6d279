"""Go's time encodings, as containerd writes them.

- Text (``MarshalText``, RFC 3339 with up to nine fractional digits, trailing
  zeros trimmed, ``Z`` for UTC): the local store's ``startedat``/``updatedat``.
- Binary (``MarshalBinary`` version 1, 15 bytes): bolt's time values.

Python datetimes carry microseconds, so parsed nanoseconds are truncated.
"""

from __future__ import annotations

import re
import struct
from datetime import UTC, datetime, timedelta, timezone

from contentd.content.types import ZERO_TIME

__all__ = ["format_text", "from_ns", "marshal_binary", "parse_text", "to_ns", "unmarshal_binary"]

_TEXT = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(Z|z|[+-]\d{2}:\d{2})"
)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def to_ns(t: datetime) -> int:
    """Nanoseconds since the Unix epoch."""
    delta = t - _EPOCH
    return (delta.days * 86400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000


def from_ns(ns: int) -> datetime:
    """A UTC datetime from nanoseconds since the Unix epoch (truncated to µs)."""
    return _EPOCH + timedelta(microseconds=ns // 1000)


def format_text(t: datetime, nanos: int | None = None) -> str:
    """RFC 3339 with trimmed fractional seconds, as Go's ``Time.MarshalText``.

    ``nanos`` overrides the sub-second part (0..999999999) when the caller
    has nanosecond precision.
    """
    if t.tzinfo is None:
        raise ValueError("naive datetime")
    frac = nanos if nanos is not None else t.microsecond * 1000
    base = t.strftime("%Y-%m-%dT%H:%M:%S")
    if len(base) < 19:  # years before 1000 are not zero-padded on every libc
        base = f"{t.year:04d}" + base[base.index("-") :]
    text = base
    if frac:
        text += "." + f"{frac:09d}".rstrip("0")
    off = t.utcoffset()
    if not off:
        return text + "Z"
    minutes = int(off.total_seconds()) // 60
    sign = "+" if minutes >= 0 else "-"
    minutes = abs(minutes)
    return f"{text}{sign}{minutes // 60:02d}:{minutes % 60:02d}"


def parse_text(text: str) -> datetime:
    """Parse Go's RFC 3339 text; the result is converted to UTC."""
    m = _TEXT.fullmatch(text.strip())
    if m is None:
        raise ValueError(f"cannot parse {text!r} as RFC 3339 time")
    year, month, day, hour, minute, second = (int(g) for g in m.groups()[:6])
    frac = m.group(7) or ""
    micro = int((frac + "000000")[:6]) if frac else 0
    zone = m.group(8)
    if zone in ("Z", "z"):
        tz: timezone = UTC
    else:
        sign = 1 if zone[0] == "+" else -1
        tz = timezone(sign * timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6])))
    return datetime(year, month, day, hour, minute, second, micro, tzinfo=tz).astimezone(UTC)


def marshal_binary(t: datetime) -> bytes:
    """Go ``Time.MarshalBinary`` version 1 (UTC zone)."""
    t = t.astimezone(UTC)
    delta = t - ZERO_TIME
    seconds = delta.days * 86400 + delta.seconds
    return struct.pack(">bqih", 1, seconds, delta.microseconds * 1000, -1)


def unmarshal_binary(data: bytes) -> datetime:
    if len(data) != 15 or data[0] != 1:
        raise ValueError("unsupported time encoding")
    _, seconds, nanos, _offset = struct.unpack(">bqih", data)
    return ZERO_TIME + timedelta(seconds=seconds, microseconds=nanos // 1000)
