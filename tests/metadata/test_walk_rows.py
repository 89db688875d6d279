"""walk_rows: the row form of walk that List uses (times in nanoseconds, no datetimes)."""

from __future__ import annotations

import pytest

from contentd.content.gotime import from_ns
from contentd.metadata import MetadataDB
from contentd.metadata import content as content_module
from contentd.metadata.content import WALK_CHUNK
from tests.metadata.conftest import put


def _as_info_tuple(row: tuple[object, ...]) -> tuple[object, ...]:
    digest, size, created_ns, updated_ns, labels = row
    assert isinstance(created_ns, int) and isinstance(updated_ns, int)
    return (digest, size, from_ns(created_ns), from_ns(updated_ns), dict(labels or {}))


@pytest.mark.parametrize(
    "filters",
    [(), ("labels.kind==odd",), ("labels.kind==even", "size==7"), ("labels.nope",)],
)
def test_rows_match_walk_across_chunks(db: MetadataDB, filters: tuple[str, ...]) -> None:
    store = db.content_store("ns")
    count = WALK_CHUNK + 7  # more than one chunk
    for i in range(count):
        labels = {"kind": "odd" if i % 2 else "even"} if i % 3 else None
        put(store, f"row {i}".encode(), labels=labels)
    walked = [
        (i.digest, i.size, i.created_at, i.updated_at, dict(i.labels or {}))
        for i in store.walk(*filters)
    ]
    rows = [_as_info_tuple(tuple(r)) for r in store.walk_rows(*filters)]
    assert rows == walked
    if not filters:
        assert len(rows) == count
        assert [r[0] for r in rows] == sorted(r[0] for r in rows)


def test_rows_keep_nanoseconds_and_namespaces_apart(make_db: object) -> None:
    db = make_db()  # type: ignore[operator]
    a, b = db.content_store("a"), db.content_store("b")
    digest = put(a, b"only in a")
    [row] = list(a.walk_rows())
    assert row.digest == digest
    info = a.info(digest)
    assert from_ns(row.created_ns) == info.created_at
    assert list(b.walk_rows()) == []


class _Gone:
    """``cancelled`` for a walk: true from the ``after``-th question on; counts them."""

    def __init__(self, after: int) -> None:
        self.after = after
        self.asked = 0

    def __call__(self) -> bool:
        self.asked += 1
        return self.asked >= self.after


def test_a_walk_whose_caller_is_gone_stops_between_chunks(
    db: MetadataDB, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(content_module, "WALK_CHUNK", 2)
    store = db.content_store("ns")
    for i in range(7):
        put(store, f"row {i}".encode())
    everything = _Gone(after=1000)
    assert list(store.walk_rows("labels.nope", cancelled=everything)) == []
    assert everything.asked == 4  # chunks of 2, 2, 2 and 1 records: the whole walk
    gone = _Gone(after=2)  # the client went away while the first chunk was filtered
    assert list(store.walk_rows("labels.nope", cancelled=gone)) == []
    assert gone.asked == 2
    gone = _Gone(after=3)  # unfiltered: what came before is walked, nothing after
    assert len(list(store.walk_rows(cancelled=gone))) == 4
