"""Info and Status <-> their protobuf messages (spec §5.1).

Timestamps follow containerd's non-nullable Go times: every time is sent, the
zero time as ``seconds=-62135596800, nanos=0``, and an absent timestamp
decodes as the zero time (:data:`~contentd.content.types.ZERO_TIME`).

Labels: the wire cannot tell "no labels" from "empty labels" (Go sends a nil
map as nothing), so an empty label map decodes as ``None``, as in Go.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Final

from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from contentd.api._pb.containerd.services.content.v1 import content_pb2 as pb
from contentd.content.gotime import to_ns
from contentd.content.types import ZERO_TIME, Info, InfoRow, Status

__all__ = [
    "ZERO_SECONDS",
    "datetime_from_pb",
    "fill_timestamp",
    "info_from_pb",
    "info_rows",
    "info_to_pb",
    "labels_from_pb",
    "status_from_pb",
    "status_to_pb",
    "statuses_from_pb",
    "time_field",
    "timestamp_to_pb",
]

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MIN_SECONDS: Final = -62135596800  # 0001-01-01T00:00:00Z
_MAX_SECONDS: Final = 253402300799  # 9999-12-31T23:59:59Z
#: Seconds of Go's zero time (0001-01-01T00:00:00Z) since the Unix epoch.
ZERO_SECONDS: Final = _MIN_SECONDS


def fill_timestamp(ts: Timestamp, t: datetime) -> None:
    """Set ``ts`` to ``t`` (an aware datetime; naive ones are taken as UTC)."""
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    delta = t - _EPOCH
    ts.seconds = delta.days * 86400 + delta.seconds
    ts.nanos = delta.microseconds * 1000


def timestamp_to_pb(t: datetime) -> Timestamp:
    ts = Timestamp()
    fill_timestamp(ts, t)
    return ts


def datetime_from_pb(ts: Timestamp) -> datetime:
    """A UTC datetime from ``ts``; nanoseconds are truncated to microseconds.

    Values outside years 1..9999 (which Python cannot hold) are clamped.
    """
    seconds = ts.seconds
    if seconds <= _MIN_SECONDS:
        return ZERO_TIME
    if seconds > _MAX_SECONDS:
        seconds = _MAX_SECONDS
    return _EPOCH + timedelta(seconds=seconds, microseconds=ts.nanos // 1000)


def time_field(msg: Message, name: str) -> datetime:
    """The time in ``msg``'s Timestamp field ``name``; absent is the zero time."""
    if not msg.HasField(name):
        return ZERO_TIME
    ts: Timestamp = getattr(msg, name)
    return datetime_from_pb(ts)


def labels_from_pb(labels: Mapping[str, str]) -> dict[str, str] | None:
    return dict(labels) if labels else None


def info_to_pb(info: Info, msg: pb.Info | None = None, *, updated_at: bool = True) -> pb.Info:
    """Fill ``msg`` (or a new message) from ``info``.

    ``updated_at=False`` sends the zero time instead, as containerd's List does.
    """
    if msg is None:
        msg = pb.Info()
    msg.digest = info.digest
    msg.size = info.size
    fill_timestamp(msg.created_at, info.created_at)
    fill_timestamp(msg.updated_at, info.updated_at if updated_at else ZERO_TIME)
    if info.labels:
        msg.labels.update(info.labels)
    return msg


def info_rows(infos: Iterable[Info]) -> Iterator[InfoRow]:
    """``infos`` as rows, for stores that have no row walk of their own."""
    for info in infos:
        yield InfoRow(
            info.digest, info.size, to_ns(info.created_at), to_ns(info.updated_at), info.labels
        )


def info_from_pb(msg: pb.Info) -> Info:
    return Info(
        digest=msg.digest,
        size=msg.size,
        created_at=time_field(msg, "created_at"),
        updated_at=time_field(msg, "updated_at"),
        labels=labels_from_pb(msg.labels),
    )


def status_to_pb(status: Status, msg: pb.Status | None = None) -> pb.Status:
    if msg is None:
        msg = pb.Status()
    fill_timestamp(msg.started_at, status.started_at)
    fill_timestamp(msg.updated_at, status.updated_at)
    msg.ref = status.ref
    msg.offset = status.offset
    msg.total = status.total
    msg.expected = status.expected
    return msg


def status_from_pb(msg: pb.Status) -> Status:
    return Status(
        ref=msg.ref,
        offset=msg.offset,
        total=msg.total,
        expected=msg.expected,
        started_at=time_field(msg, "started_at"),
        updated_at=time_field(msg, "updated_at"),
    )


def statuses_from_pb(msgs: Iterable[pb.Status]) -> list[Status]:
    return [status_from_pb(m) for m in msgs]
