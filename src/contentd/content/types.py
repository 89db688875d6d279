"""The values the content store deals in: Descriptor, Info, Status.

All timestamps are timezone-aware UTC :class:`datetime` values (microsecond
precision; Go's nanoseconds are truncated). ``ZERO_TIME`` stands for Go's zero
``time.Time`` (``0001-01-01T00:00:00Z``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Final, NamedTuple

__all__ = ["ZERO_TIME", "Descriptor", "Info", "InfoRow", "Status", "utcnow"]

ZERO_TIME: Final = datetime(1, 1, 1, tzinfo=UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class Descriptor:
    """An OCI descriptor. The store reads only ``digest`` and ``size``."""

    media_type: str = ""
    digest: str = ""
    size: int = 0
    urls: tuple[str, ...] = ()
    annotations: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Info:
    """A committed blob: its digest, size, times and labels.

    ``labels`` is ``None`` when the store keeps no labels (a local store
    without a label store), otherwise a mapping (possibly empty).
    """

    digest: str
    size: int = 0
    created_at: datetime = ZERO_TIME
    updated_at: datetime = ZERO_TIME
    labels: Mapping[str, str] | None = None


class InfoRow(NamedTuple):
    """An :class:`Info` as a store keeps it: times in nanoseconds since the Unix epoch.

    Listing many blobs (``ctr content ls``) goes from rows to the wire without
    building a datetime per time; nanoseconds are kept, as containerd's List sends.
    """

    digest: str
    size: int
    created_ns: int
    updated_ns: int
    labels: Mapping[str, str] | None


@dataclass(frozen=True, slots=True)
class Status:
    """An ingest in progress. ``ref`` is the ref as the caller sees it."""

    ref: str
    offset: int = 0
    total: int = 0
    expected: str = ""
    started_at: datetime = ZERO_TIME
    updated_at: datetime = ZERO_TIME
