"""Sizes, ages, tables and JSON as the commands print them (no daemon)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from contentd.cli.output import (
    CTR_TABLE,
    PLUGINS_TABLE,
    SPACED_TABLE,
    TableStyle,
    TimestampText,
    format_local_time,
    format_time,
    human_duration,
    human_size,
    info_from_json,
    info_to_json,
    json_line,
    labels_text,
    parse_time,
    table,
    tabwrite,
)
from contentd.cli.parser import parse_go_duration, parse_label_args
from contentd.content.types import Info

KB, MB, GB, TB, PB = 1000, 1000**2, 1000**3, 1000**4, 1000**5


@pytest.mark.parametrize(
    ("size", "text"),
    [
        (0, "0B"),
        (1, "1B"),
        (256, "256B"),
        (999, "999B"),
        (1000, "1kB"),
        (1024, "1.024kB"),
        (4194304, "4.194MB"),
        (1048576, "1.049MB"),
        (2 * MB, "2MB"),
        (int(3.42 * GB), "3.42GB"),
        (int(5.372 * TB), "5.372TB"),
        (int(2.22 * PB), "2.22PB"),
        (999_999, "1000kB"),
        (10_000_000_000_000 * PB, "1e+04YB"),
    ],
)
def test_human_size_is_go_units(size: int, text: str) -> None:
    assert human_size(size) == text


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (-3, "Less than a second"),
        (0.45, "Less than a second"),
        (1, "1 second"),
        (1.9, "1 second"),
        (45, "45 seconds"),
        (59, "59 seconds"),
        (60, "About a minute"),
        (119, "About a minute"),
        (3 * 60, "3 minutes"),
        (35 * 60 + 40, "35 minutes"),
        (59 * 60 + 59, "59 minutes"),
        (3600, "About an hour"),
        (3600 + 29 * 60, "About an hour"),
        (3600 + 30 * 60, "2 hours"),
        (3 * 3600, "3 hours"),
        (47 * 3600, "47 hours"),
        (48 * 3600, "2 days"),
        (13 * 86400, "13 days"),
        (14 * 86400, "2 weeks"),
        (59 * 86400, "8 weeks"),
        (60 * 86400, "2 months"),
        (729 * 86400, "24 months"),
        (730 * 86400, "2 years"),
    ],
)
def test_human_duration_is_go_units(seconds: float, text: str) -> None:
    assert human_duration(seconds) == text


DIGEST = "sha256:5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03"


def test_content_table_is_ctr_byte_for_byte() -> None:
    # `ctr content ls` of one blob, as containerd 1.6.20's ctr printed it
    rows = [(DIGEST, "6B", "5 seconds", "containerd.io/gc.root=x")]
    assert table(("DIGEST", "SIZE", "AGE", "LABELS"), rows, CTR_TABLE) == (
        "DIGEST\t\t\t\t\t\t\t\t\tSIZE\tAGE\t\tLABELS\n"
        f"{DIGEST}\t6B\t5 seconds\tcontainerd.io/gc.root=x\n"
    )
    # `ctr content active` with nothing active
    assert table(("REF", "SIZE", "AGE"), [], trailing_tab=True) == "REF\tSIZE\tAGE\t\n"


def test_spaced_table_is_ctr_leases_ls() -> None:
    rows = [("L1", "2026-11-28T01:13:04Z", "a=b")]
    text = table(("ID", "CREATED AT", "LABELS"), rows, SPACED_TABLE, trailing_tab=True)
    assert text == ("ID CREATED AT           LABELS \nL1 2026-11-28T01:13:04Z a=b    \n")


def test_tabwrite_blocks_and_cells() -> None:
    # a line with fewer cells ends the column block: the next block is aligned on its own
    text = "a\tbbbbbbbbbb\tc\nxxxxxx\ty\n\nlong-line-alone\nq\tw\n"
    assert tabwrite(text, SPACED_TABLE) == (
        "a      bbbbbbbbbb c\nxxxxxx y\n\nlong-line-alone\nq w\n"
    )
    assert tabwrite("", CTR_TABLE) == ""
    assert tabwrite("no tabs\n", CTR_TABLE) == "no tabs\n"
    # padding with tabs rounds each column to the tab width
    assert tabwrite("1234567\tx\n12345678\ty\n", CTR_TABLE) == "1234567\t\tx\n12345678\ty\n"
    assert tabwrite("ab\tc\t\n", PLUGINS_TABLE) == "ab    c    \n"


def test_labels_text_sorts_and_marks_empty() -> None:
    assert labels_text({"b": "2", "a": "1"}) == "a=1,b=2"
    assert labels_text({}) == "-"
    assert labels_text(None) == "-"
    assert labels_text({}, empty="") == ""


def test_label_arguments_are_ctrs() -> None:
    assert parse_label_args(["a=1", "b=", "c", "d=x=y"]) == {
        "a": "1",
        "b": "",
        "c": "true",
        "d": "x=y",
    }


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("0", 0.0), ("30s", 30.0), ("1h30m", 5400.0), ("1.5h", 5400.0), ("250ms", 0.25)],
)
def test_go_durations(text: str, seconds: float) -> None:
    assert parse_go_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "10", "1x", "h", "1h 2m"])
def test_bad_go_durations(text: str) -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        parse_go_duration(text)


def test_times() -> None:
    t = datetime(2024, 5, 1, 12, 0, 0, 120000, tzinfo=UTC)
    assert format_time(t) == "2024-05-01T12:00:00.12Z"
    assert format_time(t.replace(microsecond=0)) == "2024-05-01T12:00:00Z"
    assert format_time(datetime(1, 1, 1, tzinfo=UTC)) == "0001-01-01T00:00:00Z"
    assert parse_time("2024-05-01T14:00:00.12+02:00") == t
    assert format_local_time(t).startswith("2024-05-01T")


times = st.datetimes(
    min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31), timezones=st.just(UTC)
)
labels = st.dictionaries(st.text(min_size=1, max_size=20), st.text(max_size=20), max_size=5)


@given(
    digest=st.just(DIGEST),
    size=st.integers(min_value=0, max_value=2**62),
    created=times,
    updated=times,
    labels=labels,
)
def test_info_json_round_trips(
    digest: str, size: int, created: datetime, updated: datetime, labels: dict[str, str]
) -> None:
    info = Info(digest=digest, size=size, created_at=created, updated_at=updated, labels=labels)
    line = json_line(info_to_json(info))
    assert line.endswith("\n") and "\n" not in line[:-1]
    assert info_from_json(json.loads(line)) == info


def test_age_uses_whole_seconds() -> None:
    assert human_duration(timedelta(minutes=2).total_seconds()) == "2 minutes"


cells = st.text(alphabet=st.characters(blacklist_characters="\t\n"), max_size=30)


@given(
    width=st.integers(min_value=1, max_value=5),
    data=st.data(),
    style=st.sampled_from([CTR_TABLE, SPACED_TABLE, PLUGINS_TABLE]),
    trailing_tab=st.booleans(),
)
def test_table_is_tabwrite(
    width: int, data: st.DataObject, style: TableStyle, trailing_tab: bool
) -> None:
    header = data.draw(st.lists(cells, min_size=width, max_size=width))
    rows = data.draw(st.lists(st.lists(cells, min_size=width, max_size=width), max_size=6))
    end = "\t\n" if trailing_tab else "\n"
    text = "".join("\t".join(row) + end for row in (header, *rows))
    assert table(header, rows, style, trailing_tab=trailing_tab) == tabwrite(text, style)


@given(
    seconds=st.integers(min_value=-62135596800 - 5, max_value=253402300799 + 5),
    nanos=st.integers(min_value=0, max_value=999_999_999),
    present=st.booleans(),
)
def test_timestamp_text_is_format_time_of_the_proxys_datetime(
    seconds: int, nanos: int, present: bool
) -> None:
    from google.protobuf.timestamp_pb2 import Timestamp

    from contentd.api._pb.containerd.services.content.v1 import content_pb2 as pb
    from contentd.api.convert import time_field

    msg = pb.Info()
    if present:
        msg.created_at.CopyFrom(Timestamp(seconds=seconds, nanos=nanos))
    expected = format_time(time_field(msg, "created_at"))
    assert TimestampText()(seconds, nanos, present) == expected
