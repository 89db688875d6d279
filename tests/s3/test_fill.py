"""The read cache filled ahead: a cold read is served while the blob arrives, a prefetch
fills it before any read, a fill that stops leaves its readers to ranged GETs, and an
object that fails verification is never served whole nor cached."""

from __future__ import annotations

import os
import threading
import time
from typing import Any

import pytest

from contentd import Unknown, read_blob
from contentd.content.digest import digest_of
from contentd.s3 import S3Store
from tests.s3.conftest import StoreFactory, forget_written

MIB = 1 << 20


class HeldBody:
    """A GetObject body that sends ``first`` bytes, then waits for ``gate`` (or, with
    ``fail``, breaks as a dropped connection would)."""

    def __init__(self, body: Any, gate: threading.Event, first: int, fail: bool) -> None:
        self._body = body
        self._gate = gate
        self._first = first
        self._fail = fail
        self._sent = 0

    def read(self, n: int = -1) -> bytes:
        if self._sent >= self._first:
            if self._fail:
                raise ConnectionResetError("connection dropped mid-body")
            assert self._gate.wait(60)
        if self._sent < self._first:
            n = self._first - self._sent if n < 0 else min(n, self._first - self._sent)
        data: bytes = self._body.read(n)
        self._sent += len(data)
        return data

    def close(self) -> None:
        self._body.close()


def hold_whole_gets(store: S3Store, first: int, *, fail: bool = False) -> threading.Event:
    """Hold every whole-object GET of ``store`` after ``first`` bytes until the event is set."""
    gate = threading.Event()

    def after(parsed: dict[str, Any], model: Any, **kwargs: Any) -> None:
        if "Body" in parsed and "ContentRange" not in parsed:
            parsed["Body"] = HeldBody(parsed["Body"], gate, first, fail)

    store.client.meta.events.register("after-call.s3.GetObject", after)
    return gate


def commit(store: S3Store, data: bytes) -> str:
    dgst = digest_of(data)
    with store.writer("c") as w:
        w.write(data)
        w.commit(len(data), dgst)
    forget_written(store, dgst)  # cold, as on a node that did not write it
    return dgst


def test_a_cold_read_is_served_while_the_blob_arrives(make_store: StoreFactory) -> None:
    store = make_store()
    data = os.urandom(3 * MIB)
    dgst = commit(store, data)
    assert store.cache is not None
    gate = hold_whole_gets(store, MIB)
    with store.reader_at(dgst) as ra:
        # the GET is held after its first MiB: those bytes are readable already
        assert ra.read_at(4096, 32768) == data[4096 : 4096 + 32768]
        assert not store.cache.has(dgst)
        gate.set()
        # the last bytes come once the whole blob is verified and cached
        assert ra.read_at(len(data) - 100, 100) == data[-100:]
        assert store.cache.has(dgst)
    gets = store.stats.gets
    assert read_blob(store, dgst) == data
    assert store.stats.gets == gets  # a cache hit
    assert store.stats.ranged_gets == 0


def test_a_prefetch_fills_the_cache_before_any_read(make_store: StoreFactory) -> None:
    store = make_store()
    data = os.urandom(2 * MIB + 5)
    dgst = commit(store, data)
    assert store.cache is not None and not store.cache.has(dgst)
    store.prefetch(dgst, len(data))
    deadline = time.monotonic() + 60
    while not store.cache.has(dgst) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert store.cache.has(dgst)
    gets = store.stats.gets
    assert read_blob(store, dgst) == data
    assert store.stats.gets == gets


def test_a_fill_that_stops_leaves_its_readers_to_ranged_gets(make_store: StoreFactory) -> None:
    store = make_store()
    data = os.urandom(3 * MIB)
    dgst = commit(store, data)
    assert store.cache is not None
    hold_whole_gets(store, MIB, fail=True)
    with store.reader_at(dgst) as ra:
        assert ra.read_at(0, 1000) == data[:1000]
        assert ra.read_at(2 * MIB, 1000) == data[2 * MIB : 2 * MIB + 1000]
        assert ra.read_at(len(data) - 10, 10) == data[-10:]
    assert store.stats.ranged_gets >= 1
    assert not store.cache.has(dgst)


def test_an_object_that_fails_verification_is_never_served_whole(
    make_store: StoreFactory,
) -> None:
    store = make_store()
    data = os.urandom(2 * MIB)
    dgst = commit(store, data)
    assert store.cache is not None
    bad = bytearray(data)
    bad[MIB + 7] ^= 0xFF
    store.client.put_object(
        Bucket=store.location.bucket, Key=store._blob_key(dgst), Body=bytes(bad)
    )
    with store.reader_at(dgst) as ra, pytest.raises(Unknown, match="fails verification"):
        ra.read_at(len(data) - 10, 10)
    assert not store.cache.has(dgst)
    assert store.cache.total_bytes == 0


def test_holds_says_which_reads_are_on_local_disk(make_store: StoreFactory) -> None:
    # the daemon answers these on the connection's reader thread: never one that waits
    store = make_store()
    data = os.urandom(3 * MIB)
    dgst = commit(store, data)
    assert not store.holds(dgst, 0, 32768)  # cold: it takes a GET
    gate = hold_whole_gets(store, MIB)
    with store.reader_at(dgst) as ra:
        assert ra.read_at(4096, 32768) == data[4096 : 4096 + 32768]
        assert store.holds(dgst, 4096, 32768)  # arrived
        assert not store.holds(dgst, 2 * MIB, 32768)  # still to come
        assert not store.holds(dgst, len(data) - 100, 100)  # and the digest to check
        gate.set()
        assert ra.read_at(len(data) - 100, 100) == data[-100:]
    assert store.holds(dgst, len(data) - 100, 100)  # cached and verified
    store.delete(dgst)
    assert not store.holds(dgst, 0, 32768)
