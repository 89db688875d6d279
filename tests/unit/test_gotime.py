from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from contentd.content import gotime
from contentd.content.types import ZERO_TIME


@pytest.mark.parametrize(
    ("t", "text"),
    [
        (ZERO_TIME, "0001-01-01T00:00:00Z"),
        (datetime(2024, 5, 1, 10, 0, 0, 123456, tzinfo=UTC), "2024-05-01T10:00:00.123456Z"),
        (datetime(2024, 5, 1, 10, 0, 0, 120000, tzinfo=UTC), "2024-05-01T10:00:00.12Z"),
        (datetime(2024, 5, 1, 10, 0, 0, tzinfo=UTC), "2024-05-01T10:00:00Z"),
        (
            datetime(2024, 5, 1, 10, 0, 0, 500000, tzinfo=timezone(timedelta(hours=2))),
            "2024-05-01T10:00:00.5+02:00",
        ),
    ],
)
def test_format(t: datetime, text: str) -> None:
    assert gotime.format_text(t) == text
    assert gotime.parse_text(text) == t


def test_nanoseconds_trimmed_and_truncated() -> None:
    t = gotime.parse_text("2024-05-01T10:00:00.123456789+02:00")
    assert t == datetime(2024, 5, 1, 8, 0, 0, 123456, tzinfo=UTC)
    assert gotime.format_text(t, nanos=123456780) == "2024-05-01T08:00:00.12345678Z"


def test_bad_text() -> None:
    with pytest.raises(ValueError):
        gotime.parse_text("yesterday")


@given(st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31)))
def test_text_and_binary_round_trip(naive: datetime) -> None:
    t = naive.replace(tzinfo=UTC)
    assert gotime.parse_text(gotime.format_text(t)) == t
    b = gotime.marshal_binary(t)
    assert len(b) == 15
    assert gotime.unmarshal_binary(b) == t


def test_zero_time_binary_matches_go() -> None:
    # Go: time.Time{}.MarshalBinary() == 01 00..00 00000000 ffff
    assert gotime.marshal_binary(ZERO_TIME) == bytes([1] + [0] * 12 + [0xFF, 0xFF])


def test_ns_conversions() -> None:
    assert gotime.to_ns(gotime.from_ns(1_700_000_000_123_456_789)) == 1_700_000_000_123_456_000
