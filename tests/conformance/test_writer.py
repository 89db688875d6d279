"""Writer behaviour every store shares (spec §2, checklist 5–16)."""

from __future__ import annotations

import io
import threading
import time
from datetime import datetime

import pytest

from contentd import (
    AlreadyExists,
    ContentError,
    FailedPrecondition,
    InvalidArgument,
    Unavailable,
    read_blob,
    write_blob,
)
from contentd.content.digest import EMPTY_DIGEST, digest_of
from contentd.content.types import Descriptor, utcnow
from tests.conformance.harness import Harness, create_content

LABELS = {"name": "value", "containerd.io/gc.root": "2026-01-01T00:00:00Z"}


def between(t: datetime, lo: datetime, hi: datetime) -> bool:
    return lo <= t <= hi


def check_info(
    h: Harness,
    digest: str,
    size: int,
    labels: dict[str, str] | None,
    c1: datetime,
    c2: datetime,
    u1: datetime,
    u2: datetime,
) -> None:
    info = h.store.info(digest)
    assert info.digest == digest
    assert info.size == size
    assert between(info.created_at, c1, c2), (info.created_at, c1, c2)
    assert between(info.updated_at, u1, u2), (info.updated_at, u1, u2)
    if h.labels:
        assert dict(info.labels or {}) == (labels or {})
    else:
        assert not info.labels


def test_writer_requires_ref(harness: Harness) -> None:
    with pytest.raises(InvalidArgument):
        harness.store.writer("")


def test_writer_variants_commit_with_labels(harness: Harness) -> None:
    """containerd's Writer test: four writers, with/without size and digest."""
    store = harness.store
    cases = []
    for ref, with_size, with_digest in [
        ("c1", False, False),
        ("c2", True, False),
        ("c3", False, True),
        ("c4", True, True),
    ]:
        data, dgst = create_content(256)
        w = store.writer(
            ref, total=len(data) if with_size else 0, expected=dgst if with_digest else None
        )
        cases.append((w, data, dgst))
    for w, data, dgst in cases:
        with w:
            for i in range(0, len(data), 32):
                assert w.write(data[i : i + 32]) == len(data[i : i + 32])
            pre = utcnow()
            w.commit(0, "", LABELS)
            post = utcnow()
            assert w.digest() == dgst
        check_info(harness, dgst, len(data), LABELS, pre, post, pre, post)


def test_new_writer_status(harness: Harness) -> None:
    _data, dgst = create_content(256)
    pre = utcnow()
    with harness.store.writer("c1", total=256, expected=dgst) as w:
        post = utcnow()
        st = w.status()
        assert st.ref == "c1"
        assert st.offset == 0
        assert st.total == 256
        assert w.digest() == EMPTY_DIGEST
        assert between(st.started_at, pre, post)
        assert between(st.updated_at, pre, post)


def test_update_status_offsets_and_digests(harness: Harness) -> None:
    data, dgst = create_content(256)
    pre_start = utcnow()
    with harness.store.writer("c1", total=256, expected=dgst) as w:
        post_start = utcnow()
        for end in (64, 192, 256):
            start = w.status().offset
            pre = utcnow()
            w.write(data[start:end])
            post = utcnow()
            st = w.status()
            assert st.offset == end
            assert st.total == 256
            assert w.digest() == digest_of(data[:end])
            assert between(st.started_at, pre_start, post_start)
            assert between(st.updated_at, pre, post)
        pre = utcnow()
        w.commit(0, "", LABELS)
        post = utcnow()
    check_info(harness, dgst, 256, LABELS, pre, post, pre, post)


def test_second_open_is_unavailable_then_reopens_after_close(harness: Harness) -> None:
    w = harness.store.writer("held")
    try:
        started = time.monotonic()
        with pytest.raises(Unavailable):
            harness.store.writer("held")
        assert time.monotonic() - started < 5
    finally:
        w.close()
    w.close()  # idempotent
    harness.store.writer("held").close()


def test_commit_exists(harness: Harness) -> None:
    data, dgst = create_content(256)
    write_blob(harness.store, "c1", io.BytesIO(data), Descriptor(digest=dgst))
    for i, expected in enumerate([dgst, None]):
        w = harness.store.writer(f"c1-commitexists-{i}")
        w.write(data)
        with pytest.raises(AlreadyExists):
            w.commit(len(data), expected)
        w.close()
        # the ingest is gone: a reopen starts from nothing
        with harness.store.writer(f"c1-commitexists-{i}") as w2:
            assert w2.status().offset == 0


def test_open_with_existing_digest_is_already_exists(harness: Harness) -> None:
    data, dgst = create_content(100)
    write_blob(harness.store, "x", io.BytesIO(data), Descriptor(digest=dgst))
    with pytest.raises(AlreadyExists):
        harness.store.writer("y", expected=dgst)
    with pytest.raises(ContentError):  # no ingest record was made
        harness.store.status("y")


def test_commit_error_state(harness: Harness) -> None:
    """containerd's CommitErrorState, step by step."""
    store = harness.store
    c1, d1 = create_content(256)
    _, d2 = create_content(256)
    write_blob(store, "c1", io.BytesIO(c1), Descriptor(digest=d1))
    ref = "c1-commiterror-state"

    w = store.writer(ref)
    w.write(c1)
    with pytest.raises(Unavailable):
        store.writer(ref)
    with pytest.raises(AlreadyExists):
        w.commit(len(c1), d1)

    w = store.writer(ref)
    with pytest.raises(Unavailable):
        store.writer(ref)
    w.write(c1)
    with pytest.raises(AlreadyExists):
        w.commit(len(c1), "")
    w.close()

    w = store.writer(ref)
    w.write(c1 + b"more")
    with pytest.raises(FailedPrecondition):
        w.commit(len(c1) + 4, d2)  # wrong digest keeps the data
    w.close()

    w = store.writer(ref)
    assert w.status().offset == len(c1) + 4
    with pytest.raises(FailedPrecondition):
        w.commit(len(c1), "")  # wrong size keeps the data
    w.close()

    w = store.writer(ref)
    assert w.status().offset == len(c1) + 4
    w.commit(len(c1) + 4, "")
    w.close()
    assert read_blob(store, digest_of(c1 + b"more")) == c1 + b"more"

    w = store.writer(ref)
    w.write(c1)
    with pytest.raises(Unavailable):
        store.writer(ref)
    with pytest.raises(AlreadyExists):
        w.commit(len(c1), d1)
    w.close()

    w = store.writer(ref)
    w.close()
    store.writer(ref).close()


def test_commit_releases_lock_on_every_outcome(harness: Harness) -> None:
    data, _dgst = create_content(64)
    w = harness.store.writer("r")
    w.write(data)
    with pytest.raises(FailedPrecondition):
        w.commit(1, "")
    w = harness.store.writer("r")  # released after a failed commit
    w.commit(0, "")
    w = harness.store.writer("r")  # released after a successful commit
    w.write(data)
    with pytest.raises(AlreadyExists):
        w.commit(0, "")
    harness.store.writer("r").close()  # released after AlreadyExists


def test_commit_on_closed_writer(harness: Harness) -> None:
    w = harness.store.writer("closed")
    w.write(b"abc")
    w.close()
    with pytest.raises(FailedPrecondition):
        w.commit(0, "")


def test_commit_without_expectations(harness: Harness) -> None:
    data, dgst = create_content(1000)
    with harness.store.writer("plain") as w:
        w.write(data)
        w.commit(0, "")
        assert w.digest() == dgst
    assert read_blob(harness.store, dgst) == data


def test_commit_empty_blob(harness: Harness) -> None:
    with harness.store.writer("empty") as w:
        w.commit(0, EMPTY_DIGEST)
    assert harness.store.info(EMPTY_DIGEST).size == 0
    assert read_blob(harness.store, EMPTY_DIGEST) == b""


def test_commit_with_other_algorithm_fails(harness: Harness) -> None:
    with harness.store.writer("sha512") as w:
        w.write(b"abc")
        with pytest.raises(FailedPrecondition):
            w.commit(0, "sha512:" + "0" * 128)


def test_truncate_zero_then_rewrite(harness: Harness) -> None:
    data, dgst = create_content(300)
    with harness.store.writer("t") as w:
        w.write(b"garbage" * 10)
        w.truncate(0)
        if not harness.truncate_deferred:
            assert w.status().offset == 0
            assert w.digest() == EMPTY_DIGEST
        w.write(data)
        assert w.status().offset == len(data)
        assert w.digest() == dgst
        w.commit(300, dgst)
    assert read_blob(harness.store, dgst) == data


def test_truncate_nonzero_on_local(harness: Harness) -> None:
    if not harness.truncate_zero_only:
        pytest.skip("this store defers truncate(n) to the server")
    with harness.store.writer("t") as w:
        w.write(b"abcdef")
        with pytest.raises(ContentError):
            w.truncate(3)


def test_small_blob_read_through_larger_section(harness: Harness) -> None:
    blob = b"foobar"
    dgst = digest_of(blob)
    with harness.store.writer("small", total=6, expected=dgst) as w:
        w.write(blob)
        w.commit(6, dgst)
    with harness.store.reader_at(Descriptor(digest=dgst)) as ra:
        assert ra.size == 6
        assert ra.read_at(0, 7) == blob
        assert ra.read_at(6, 10) == b""
        assert ra.read_at(100, 10) == b""
        assert ra.read_at(2, 2) == b"ob"


def test_concurrent_commits_of_same_digest(harness: Harness) -> None:
    """Exactly one of many writers committing the same bytes wins."""
    data, dgst = create_content(4096)
    n = 8
    barrier = threading.Barrier(n)
    outcomes: list[str] = []
    lock = threading.Lock()

    def run(i: int) -> None:
        w = harness.store.writer(f"race-{i}")
        w.write(data)
        barrier.wait()
        try:
            w.commit(len(data), dgst)
            result = "ok"
        except AlreadyExists:
            result = "exists"
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(outcomes) == ["exists"] * (n - 1) + ["ok"]
    assert read_blob(harness.store, dgst) == data


def test_many_threads_many_blobs(harness: Harness) -> None:
    from concurrent.futures import ThreadPoolExecutor

    blobs = [create_content(1000 + i) for i in range(40)]

    def put(i: int) -> None:
        data, dgst = blobs[i]
        write_blob(
            harness.store, f"pool-{i}", io.BytesIO(data), Descriptor(digest=dgst, size=len(data))
        )

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(put, range(len(blobs))))
    for data, dgst in blobs:
        assert read_blob(harness.store, dgst) == data
