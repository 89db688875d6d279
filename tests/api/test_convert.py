"""Info/Status <-> protobuf (spec §5.1)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from google.protobuf.timestamp_pb2 import Timestamp
from hypothesis import given
from hypothesis import strategies as st

from contentd.api._pb.containerd.services.content.v1 import content_pb2 as pb
from contentd.api.convert import (
    ZERO_SECONDS,
    datetime_from_pb,
    info_from_pb,
    info_to_pb,
    status_from_pb,
    status_to_pb,
    timestamp_to_pb,
)
from contentd.content.types import ZERO_TIME, Info, Status


def test_zero_time_on_the_wire() -> None:
    ts = timestamp_to_pb(ZERO_TIME)
    assert (ts.seconds, ts.nanos) == (ZERO_SECONDS, 0) == (-62135596800, 0)
    assert datetime_from_pb(ts) == ZERO_TIME


def test_absent_timestamps_decode_as_zero() -> None:
    info = info_from_pb(pb.Info(digest="d", size=3))
    assert info.created_at == info.updated_at == ZERO_TIME
    status = status_from_pb(pb.Status(ref="r"))
    assert status.started_at == status.updated_at == ZERO_TIME


def test_unix_epoch_is_not_zero() -> None:
    assert datetime_from_pb(Timestamp(seconds=0, nanos=0)) == datetime(1970, 1, 1, tzinfo=UTC)


def test_nanoseconds_are_truncated() -> None:
    t = datetime_from_pb(Timestamp(seconds=10, nanos=123456789))
    assert t == datetime(1970, 1, 1, 0, 0, 10, 123456, tzinfo=UTC)


def test_out_of_range_seconds_are_clamped() -> None:
    assert datetime_from_pb(Timestamp(seconds=-(10**12))) == ZERO_TIME
    assert datetime_from_pb(Timestamp(seconds=10**12)).year == 9999


def test_other_zones_are_converted() -> None:
    t = datetime(2024, 5, 1, 12, 0, tzinfo=UTC).astimezone(
        __import__("datetime").timezone(timedelta(hours=2))
    )
    assert datetime_from_pb(timestamp_to_pb(t)) == t


@given(st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59)))
def test_times_round_trip(naive: datetime) -> None:
    t = naive.replace(tzinfo=UTC)
    assert datetime_from_pb(timestamp_to_pb(t)) == t


def test_info_round_trip() -> None:
    t1 = datetime(2024, 1, 2, 3, 4, 5, 6, tzinfo=UTC)
    t2 = datetime(2025, 1, 2, 3, 4, 5, 7, tzinfo=UTC)
    info = Info("sha256:" + "a" * 64, 42, t1, t2, {"k": "v", "a/b.c": ""})
    assert info_from_pb(info_to_pb(info)) == info
    listed = info_to_pb(info, updated_at=False)
    assert listed.HasField("updated_at") and listed.updated_at.seconds == ZERO_SECONDS


def test_empty_labels_decode_as_none() -> None:
    assert info_from_pb(info_to_pb(Info("d", labels={}))).labels is None
    assert info_from_pb(info_to_pb(Info("d", labels=None))).labels is None


def test_status_round_trip() -> None:
    t = datetime(2024, 1, 2, tzinfo=UTC)
    status = Status("ref", 10, 20, "sha256:x", t, t + timedelta(seconds=1))
    assert status_from_pb(status_to_pb(status)) == status
