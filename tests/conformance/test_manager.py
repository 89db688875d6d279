"""Info, Update, Walk, Delete, Status, ListStatuses, Abort (checklist 17–22, 25)."""

from __future__ import annotations

import io

import pytest

from contentd import (
    FailedPrecondition,
    Info,
    InvalidArgument,
    NotFound,
    read_blob,
    write_blob,
)
from contentd.content.types import Descriptor, utcnow
from tests.conformance.harness import Harness, create_content


def _put(h: Harness, size: int = 256, labels: dict[str, str] | None = None) -> tuple[bytes, str]:
    data, dgst = create_content(size)
    write_blob(h.store, f"put-{dgst[7:19]}", io.BytesIO(data), Descriptor(digest=dgst), labels)
    return data, dgst


def test_info_missing_is_not_found(harness: Harness) -> None:
    with pytest.raises(NotFound):
        harness.store.info("sha256:" + "0" * 64)


def test_reader_at_missing_is_not_found(harness: Harness) -> None:
    with pytest.raises(NotFound):
        harness.store.reader_at("sha256:" + "1" * 64)


def test_labels_replace_and_per_key(harness: Harness) -> None:
    data, dgst = create_content(256)
    labels = {"k1": "v1", "k2": "v2", "containerd.io/gc.root": "2026-11-28T00:00:00Z"}
    with harness.store.writer("c1-checklabels", total=256, expected=dgst) as w:
        w.write(data)
        w.commit(0, "", labels)
    if not harness.labels:
        with pytest.raises(FailedPrecondition):
            harness.store.update(Info(digest=dgst, labels={"a": "b"}))
        return
    assert harness.store.info(dgst).labels == labels

    replaced = {
        "k1": "newvalue",
        "k3": "v3",
        "containerd.io/gc.root": labels["containerd.io/gc.root"],
    }
    pre = utcnow()
    out = harness.store.update(Info(digest=dgst, labels=replaced))
    post = utcnow()
    assert dict(out.labels or {}) == replaced
    info = harness.store.info(dgst)
    assert dict(info.labels or {}) == replaced
    assert pre <= info.updated_at <= post
    assert info.created_at < pre

    keep = {"k1": "v1", "containerd.io/gc.root": labels["containerd.io/gc.root"]}
    out = harness.store.update(Info(digest=dgst, labels=keep), "labels.k3", "labels.k1")
    assert dict(out.labels or {}) == keep
    assert dict(harness.store.info(dgst).labels or {}) == keep


def test_label_keys_with_dots_and_slashes(harness: Harness) -> None:
    if not harness.labels:
        pytest.skip("store keeps no labels")
    _, dgst = _put(harness)
    key = "containerd.io/gc.ref.content.l.0"
    harness.store.update(Info(digest=dgst, labels={key: "sha256:" + "a" * 64}), f"labels.{key}")
    assert harness.store.info(dgst).labels == {key: "sha256:" + "a" * 64}
    harness.store.update(Info(digest=dgst, labels={}), f"labels.{key}")
    assert not harness.store.info(dgst).labels


def test_empty_label_value_never_stored(harness: Harness) -> None:
    if not harness.labels:
        pytest.skip("store keeps no labels")
    _, dgst = _put(harness, labels={"a": "1"})
    harness.store.update(Info(digest=dgst, labels={"a": "", "b": "2"}))
    assert harness.store.info(dgst).labels == {"b": "2"}


def test_label_size_limit_counts_bytes_not_characters(harness: Harness) -> None:
    if not harness.labels:
        pytest.skip("store keeps no labels")
    if harness.missing_ok:
        pytest.skip("containerd's local store does not check label sizes (its metadata layer does)")
    _, dgst = _put(harness)
    fits = "\u00e9" * 2047  # 2047 characters, 4094 bytes: with the key, 4095 bytes
    out = harness.store.update(Info(digest=dgst, labels={"k": fits}), "labels.k")
    assert dict(out.labels or {}) == {"k": fits}
    over = "\u00e9" * 2048  # 2049 characters with the key, far under 4096, but 4097 bytes
    with pytest.raises(InvalidArgument, match="maximum size"):
        harness.store.update(Info(digest=dgst, labels={"k": over}), "labels.k")
    assert harness.store.info(dgst).labels == {"k": fits}
    data, big = create_content(64)
    with pytest.raises(InvalidArgument, match="maximum size"):
        write_blob(
            harness.store, "big-label", io.BytesIO(data), Descriptor(digest=big), {"k": over}
        )


def test_update_bad_path_and_missing(harness: Harness) -> None:
    if not harness.labels:
        pytest.skip("store keeps no labels")
    _, dgst = _put(harness)
    with pytest.raises(InvalidArgument):
        harness.store.update(Info(digest=dgst, size=3), "size")
    with pytest.raises(NotFound):
        harness.store.update(Info(digest="sha256:" + "2" * 64, labels={"a": "b"}))


def test_update_keeps_size_and_created(harness: Harness) -> None:
    if not harness.labels:
        pytest.skip("store keeps no labels")
    _, dgst = _put(harness, 300)
    before = harness.store.info(dgst)
    after = harness.store.update(Info(digest=dgst, size=1, labels={"x": "y"}))
    assert after.size == 300
    assert after.created_at == before.created_at


def test_walk_visits_each_once_and_filters(harness: Harness) -> None:
    digests = set()
    for i in range(5):
        _, d = _put(harness, 100 + i, labels={"idx": str(i), "containerd.io/gc.root": "x"})
        digests.add(d)
    seen = [info.digest for info in harness.store.walk()]
    assert sorted(seen) == sorted(digests)
    if harness.labels:
        only = [info.digest for info in harness.store.walk('labels."idx"==3')]
        assert len(only) == 1
        ored = {i.digest for i in harness.store.walk("labels.idx==1", "labels.idx==2")}
        assert len(ored) == 2
        rooted = {i.digest for i in harness.store.walk('labels."containerd.io/gc.root"')}
        assert rooted == digests
    one = next(iter(digests))
    assert [i.digest for i in harness.store.walk(f"digest=={one}")] == [one]
    assert list(harness.store.walk("size==100")) == []


def test_walk_bad_filter_is_invalid_argument(harness: Harness) -> None:
    _put(harness)
    with pytest.raises(InvalidArgument):
        list(harness.store.walk("labels.a===b"))


def test_walk_stops_on_callback_error(harness: Harness) -> None:
    for _ in range(3):
        _put(harness)

    class Stop(Exception):
        pass

    visited = 0
    with pytest.raises(Stop):
        for _info in harness.store.walk():
            visited += 1
            raise Stop
    assert visited == 1


def test_walk_empty_store(harness: Harness) -> None:
    assert list(harness.store.walk()) == []


def test_delete(harness: Harness) -> None:
    data, dgst = _put(harness)
    assert read_blob(harness.store, dgst) == data
    harness.store.delete(dgst)
    with pytest.raises(NotFound):
        harness.store.info(dgst)
    with pytest.raises(NotFound):
        harness.store.reader_at(dgst)
    if harness.missing_ok:
        harness.store.delete(dgst)
    else:
        with pytest.raises(NotFound):
            harness.store.delete(dgst)


def test_list_statuses_and_filters(harness: Harness) -> None:
    writers = []
    for ref, n in [("xa", 10), ("xb", 20), ("yc", 30)]:
        w = harness.store.writer(ref)
        w.write(b"z" * n)
        writers.append(w)
    try:
        statuses = {s.ref: s.offset for s in harness.store.list_statuses()}
        assert statuses == {"xa": 10, "xb": 20, "yc": 30}
        assert [s.ref for s in harness.store.list_statuses("ref==xb")] == ["xb"]
        assert sorted(s.ref for s in harness.store.list_statuses("ref~=^x")) == ["xa", "xb"]
        assert sorted(s.ref for s in harness.store.list_statuses("ref==xa", "ref==yc")) == [
            "xa",
            "yc",
        ]
        st = harness.store.status("yc")
        assert st.ref == "yc" and st.offset == 30
        with pytest.raises(InvalidArgument):
            harness.store.list_statuses("ref==")
    finally:
        for w in writers:
            w.close()
    # closed ingests are still listed (they can be resumed)
    assert {s.ref for s in harness.store.list_statuses()} == {"xa", "xb", "yc"}


def test_status_missing_is_not_found(harness: Harness) -> None:
    with pytest.raises(NotFound):
        harness.store.status("nope")


def test_abort(harness: Harness) -> None:
    w = harness.store.writer("ab")
    w.write(b"12345")
    w.close()
    harness.store.abort("ab")
    with pytest.raises(NotFound):
        harness.store.status("ab")
    if harness.missing_ok:
        harness.store.abort("ab")
    else:
        with pytest.raises(NotFound):
            harness.store.abort("ab")
    with harness.store.writer("ab") as w:
        assert w.status().offset == 0


def test_status_after_commit_is_gone(harness: Harness) -> None:
    data, dgst = create_content(10)
    with harness.store.writer("gone") as w:
        w.write(data)
        w.commit(0, dgst)
    with pytest.raises(NotFound):
        harness.store.status("gone")
    assert "gone" not in {s.ref for s in harness.store.list_statuses()}
