"""Resuming ingests (spec §2/§3.3, checklist 9–10)."""

from __future__ import annotations

import io
from collections.abc import Callable

import pytest

from contentd import Writer, copy, read_blob
from contentd.content.digest import digest_of
from contentd.content.types import utcnow
from tests.conformance.harness import Harness, create_content


def test_close_and_reopen_keeps_state(harness: Harness) -> None:
    data, dgst = create_content(256)
    first, second = data[:128], data[128:]
    pre = utcnow()
    w1 = harness.store.writer("cb", total=256, expected=dgst)
    post = utcnow()
    w1.write(first)
    post_update = utcnow()
    st1 = w1.status()
    w1.close()

    w2 = harness.store.writer("cb", total=256, expected=dgst)
    st2 = w2.status()
    assert st2.ref == "cb"
    assert st2.offset == 128
    assert st2.total == 256
    assert w2.digest() == digest_of(first)
    assert pre <= st2.started_at <= post
    assert pre <= st2.updated_at <= post_update
    assert st2.started_at == st1.started_at

    w2.write(second)
    assert w2.digest() == dgst
    pre_commit = utcnow()
    w2.commit(0, "")
    post_commit = utcnow()
    w2.close()
    info = harness.store.info(dgst)
    assert info.size == 256
    assert pre_commit <= info.created_at <= post_commit


def test_resume_in_a_new_store_instance(harness: Harness) -> None:
    if harness.reopen is None:
        pytest.skip("no second instance on the same data")
    data, dgst = create_content(10_000)
    w = harness.store.writer("restart", total=len(data))
    w.write(data[:4321])
    w.close()
    other = harness.reopen()
    with other.writer("restart", total=len(data)) as w2:
        assert w2.status().offset == 4321
        assert w2.digest() == digest_of(data[:4321])
        w2.write(data[4321:])
        w2.commit(len(data), dgst)
    assert read_blob(harness.store, dgst) == data


def _truncate(w: Writer, b: bytes, written: int, size: int, dgst: str) -> None:
    w.truncate(0)
    for i in range(0, len(b), 1024):
        w.write(b[i : i + 1024])
    w.commit(size, dgst)


def _discard(w: Writer, b: bytes, written: int, size: int, dgst: str) -> None:
    rest = b[written:]
    for i in range(0, len(rest), 1024):
        w.write(rest[i : i + 1024])
    w.commit(size, dgst)


class _PlainReader(io.RawIOBase):
    """Readable, not seekable, no positional reads."""

    def __init__(self, data: bytes) -> None:
        self._inner = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def readinto(self, b: bytearray) -> int:  # type: ignore[override]
        return self._inner.readinto(b)


class _PositionalOnly:
    def __init__(self, data: bytes) -> None:
        self._data = data

    def read_at(self, offset: int, n: int) -> bytes:
        return self._data[offset : offset + n]


def _copy_plain(w: Writer, b: bytes, written: int, size: int, dgst: str) -> None:
    copy(w, io.BufferedReader(_PlainReader(b)), size, dgst)


def _copy_seeker(w: Writer, b: bytes, written: int, size: int, dgst: str) -> None:
    copy(w, io.BytesIO(b), size, dgst)


def _copy_reader_at(w: Writer, b: bytes, written: int, size: int, dgst: str) -> None:
    copy(w, _PositionalOnly(b), size, dgst)


RESUMERS: dict[str, Callable[[Writer, bytes, int, int, str], None]] = {
    "truncate": _truncate,
    "discard": _discard,
    "copy": _copy_plain,
    "copy-seeker": _copy_seeker,
    "copy-reader-at": _copy_reader_at,
}


@pytest.mark.parametrize("how", sorted(RESUMERS))
def test_resume(harness: Harness, how: str) -> None:
    resume = RESUMERS[how]
    for i, size in enumerate([500, 5000, 50000]):
        for j, fraction in enumerate([0.0, 0.1, 0.5, 0.9, 1.0]):
            data, dgst = create_content(size)
            limit = int(size * fraction)
            ref = f"ref-{i}-{j}"
            w = harness.store.writer(ref, total=size, expected=dgst)
            w.write(data[:limit])
            w.close()
            w = harness.store.writer(ref, total=size, expected=dgst)
            assert w.status().offset == limit
            pre = utcnow()
            resume(w, data, limit, size, dgst)
            post = utcnow()
            w.close()
            info = harness.store.info(dgst)
            assert info.size == size
            assert pre <= info.created_at <= post
            assert read_blob(harness.store, dgst) == data
