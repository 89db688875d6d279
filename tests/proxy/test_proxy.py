"""ProxyStore specifics (spec §6, checklist 60–61): streams, headers, leaks, errors.

The Store contract itself is checked by the conformance suite (factories
``proxy-local`` and ``proxy-containerd``).
"""

from __future__ import annotations

import gc
import io
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import grpc
import pytest

from contentd import (
    FailedPrecondition,
    Info,
    InvalidArgument,
    NotFound,
    OutOfRange,
    Unavailable,
    read_blob,
    write_blob,
)
from contentd.content.digest import EMPTY_DIGEST, digest_of
from contentd.content.store import Store
from contentd.content.types import Descriptor, Status
from contentd.local import LocalStore
from contentd.proxy import ProxyStore
from tests.api.servers import ContentdServer, local_store


class TrackingWriter:
    def __init__(self, inner: Any, owner: Tracking) -> None:
        self._inner = inner
        self._owner = owner
        self.ref = inner.status().ref

    def write(self, data: bytes) -> int:
        return int(self._inner.write(data))

    def digest(self) -> str:
        return str(self._inner.digest())

    def status(self) -> Status:
        return self._inner.status()  # type: ignore[no-any-return]

    def truncate(self, size: int) -> None:
        self._inner.truncate(size)

    def commit(
        self, size: int = 0, expected: str | None = None, labels: Mapping[str, str] | None = None
    ) -> None:
        self._inner.commit(size, expected, labels)

    def close(self) -> None:
        self._inner.close()
        with self._owner.cond:
            self._owner.open_writers.discard(self.ref)
            self._owner.cond.notify_all()


class TrackingReader:
    def __init__(self, inner: Any, owner: Tracking) -> None:
        self._inner = inner
        self._owner = owner
        self.size = inner.size

    def read_at(self, offset: int, n: int) -> bytes:
        return bytes(self._inner.read_at(offset, n))

    def close(self) -> None:
        self._inner.close()
        with self._owner.cond:
            self._owner.open_readers -= 1
            self._owner.cond.notify_all()

    def __enter__(self) -> TrackingReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Tracking:
    """A store wrapper that knows which writers, readers and walks the server holds."""

    def __init__(self, inner: LocalStore) -> None:
        self.inner = inner
        self.cond = threading.Condition()
        self.open_writers: set[str] = set()
        self.open_readers = 0
        self.open_walks = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def writer(self, ref: str, total: int = 0, expected: str | None = None) -> TrackingWriter:
        w = TrackingWriter(self.inner.writer(ref, total, expected), self)
        with self.cond:
            self.open_writers.add(ref)
        return w

    def reader_at(self, target: str | Descriptor) -> TrackingReader:
        r = TrackingReader(self.inner.reader_at(target), self)
        with self.cond:
            self.open_readers += 1
        return r

    def walk(self, *filters: str) -> Iterator[Info]:
        with self.cond:
            self.open_walks += 1
        try:
            yield from self.inner.walk(*filters)
        finally:
            with self.cond:
                self.open_walks -= 1
                self.cond.notify_all()

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
        with self.cond:
            return self.cond.wait_for(predicate, timeout)


@pytest.fixture
def tracking(tmp_path: Path) -> Tracking:
    return Tracking(local_store(tmp_path / "content"))


@pytest.fixture
def proxy(tracking: Tracking) -> Iterator[ProxyStore]:
    with ContentdServer(tracking) as server, ProxyStore(server.address) as store:  # type: ignore[arg-type]
        yield store


def _sender_threads() -> int:
    """gRPC's per-stream request sender threads that are alive."""
    return sum("consume_request_iterator" in t.name for t in threading.enumerate())


def _eventually(predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


# -- writers: no leaked streams or threads ----------------------------------------------


def test_close_returns_after_the_server_released_the_writer(
    proxy: ProxyStore, tracking: Tracking
) -> None:
    for i in range(20):
        w = proxy.writer(f"c{i}")
        w.write(b"abc")
        w.close()
        assert tracking.open_writers == set()  # no waiting: already released
    assert _eventually(lambda: _sender_threads() == 0)


def test_commit_ends_the_stream(proxy: ProxyStore, tracking: Tracking) -> None:
    w = proxy.writer("commit")
    w.write(b"data")
    w.commit(4, digest_of(b"data"))
    assert tracking.open_writers == set()
    assert _eventually(lambda: _sender_threads() == 0)
    with pytest.raises(FailedPrecondition):
        w.write(b"more")
    with pytest.raises(FailedPrecondition):
        w.commit(0)
    w.close()  # idempotent


def test_garbage_collected_writer_cancels_its_stream(proxy: ProxyStore, tracking: Tracking) -> None:
    w = proxy.writer("dropped")
    w.write(b"abc")
    assert tracking.open_writers == {"dropped"}
    del w
    gc.collect()
    assert tracking.wait_for(lambda: not tracking.open_writers)
    assert _eventually(lambda: _sender_threads() == 0)
    with proxy.writer("dropped") as again:  # the ref is free and the ingest kept
        assert again.status().offset == 3


def test_failed_request_ends_the_stream(proxy: ProxyStore, tracking: Tracking) -> None:
    w = proxy.writer("oor")
    w.write(b"abc")
    w.truncate(2)  # only local: the server checks it at the next write
    with pytest.raises(OutOfRange) as info:
        w.write(b"x")
    assert str(info.value) == (
        "failed to send write: write @2 must occur at current offset 3: out of range"
    )
    assert tracking.wait_for(lambda: not tracking.open_writers)
    assert _eventually(lambda: _sender_threads() == 0)
    with pytest.raises(FailedPrecondition):
        w.write(b"y")
    assert proxy.status("oor").offset == 3


def test_refused_open_leaves_nothing_behind(proxy: ProxyStore) -> None:
    held = proxy.writer("held")
    try:
        with pytest.raises(Unavailable) as info:
            proxy.writer("held")
        assert "ref held locked" in str(info.value)
    finally:
        held.close()
    with pytest.raises(InvalidArgument) as err:
        proxy.writer("")
    assert str(err.value) == "first message must have a reference: invalid argument"
    assert _eventually(lambda: _sender_threads() == 0)


# -- truncate is deferred to the next request (§6) ----------------------------------------


def test_truncate_zero_then_write_resets_the_server_ingest(proxy: ProxyStore) -> None:
    w = proxy.writer("t0")
    w.write(b"garbage")
    w.truncate(0)
    assert w.status().offset == 7  # nothing sent yet
    w.write(b"good")
    assert w.status().offset == 4
    assert w.digest() == digest_of(b"good")
    w.commit(4, digest_of(b"good"))
    assert read_blob(proxy, digest_of(b"good")) == b"good"


def test_truncate_zero_then_commit_commits_nothing(proxy: ProxyStore) -> None:
    w = proxy.writer("t-empty")
    w.write(b"garbage")
    w.truncate(0)
    w.commit(0, EMPTY_DIGEST)
    assert proxy.info(EMPTY_DIGEST).size == 0


def test_truncate_to_current_offset_is_accepted(proxy: ProxyStore) -> None:
    w = proxy.writer("t-same")
    w.write(b"abc")
    w.truncate(3)
    w.write(b"def")
    assert w.status().offset == 6
    w.close()


# -- digest() ----------------------------------------------------------------------------


def test_digest_is_known_from_the_open(proxy: ProxyStore) -> None:
    with proxy.writer("d") as w:
        assert w.digest() == EMPTY_DIGEST
        w.write(b"hello")
    with proxy.writer("d") as w:  # resumed: the server reports the kept bytes' digest
        assert w.digest() == digest_of(b"hello")


# -- readers -------------------------------------------------------------------------------


def test_reader_at(proxy: ProxyStore, tracking: Tracking) -> None:
    data = bytes(range(256)) * 9000  # > 2 MiB: several Read chunks per read_at
    digest = digest_of(data)
    write_blob(proxy, "r", io.BytesIO(data))
    with proxy.reader_at(digest) as ra:
        assert ra.size == len(data)
        assert ra.read_at(0, len(data)) == data
        assert ra.read_at(5, 10) == data[5:15]
        assert ra.read_at(len(data) - 3, 10) == data[-3:]
        assert ra.read_at(len(data), 10) == b""
        assert ra.read_at(len(data) + 5, 10) == b""
        assert ra.read_at(0, 0) == b""
        with pytest.raises(InvalidArgument):
            ra.read_at(-1, 10)
        for i in range(50):
            assert ra.read_at(i * 1000, 100) == data[i * 1000 : i * 1000 + 100]
    assert tracking.wait_for(lambda: tracking.open_readers == 0)


def test_reader_at_missing_is_not_found_from_info(proxy: ProxyStore) -> None:
    digest = "sha256:" + "3" * 64
    with pytest.raises(NotFound) as info:
        proxy.reader_at(digest)
    assert str(info.value) == f"content {digest}: not found"


def test_read_at_after_delete_is_not_found(proxy: ProxyStore) -> None:
    write_blob(proxy, "gone", io.BytesIO(b"bytes"))
    ra = proxy.reader_at(digest_of(b"bytes"))
    proxy.delete(digest_of(b"bytes"))
    with pytest.raises(NotFound):
        ra.read_at(0, 5)


# -- walk ------------------------------------------------------------------------------------


def test_walk_stopped_early_cancels_the_list_stream(proxy: ProxyStore, tracking: Tracking) -> None:
    for i in range(101):  # more than one List batch
        write_blob(tracking.inner, f"w{i}", io.BytesIO(b"blob %d" % i))
    walk = proxy.walk()
    next(walk)
    walk.close()
    assert tracking.wait_for(lambda: tracking.open_walks == 0)
    assert len(list(proxy.walk())) == 101


# -- headers and channels ------------------------------------------------------------------


class Recorder:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.calls: list[tuple[str | None, str | None]] = []

    def resolve(self, namespace: str | None, lease: str | None) -> Store:
        self.calls.append((namespace, lease))
        return self.store


@pytest.mark.parametrize(
    ("namespace", "lease"), [("default", None), (None, None), ("ns", "lease-1"), (None, "l")]
)
def test_headers(tmp_path: Path, namespace: str | None, lease: str | None) -> None:
    recorder = Recorder(local_store(tmp_path / "c"))
    with (
        ContentdServer(resolver=recorder) as server,
        ProxyStore(server.address, namespace=namespace, lease=lease) as store,
    ):
        write_blob(store, "r", io.BytesIO(b"x"))
        store.list_statuses()
        list(store.walk())
    assert recorder.calls
    assert set(recorder.calls) == {(namespace, lease)}


def test_close_closes_only_an_owned_channel(tmp_path: Path) -> None:
    with ContentdServer(local_store(tmp_path / "c")) as server:
        owned = ProxyStore(server.address)
        owned.list_statuses()
        owned.close()
        with pytest.raises(ValueError):  # grpc: "Cannot invoke RPC on closed channel!"
            owned.list_statuses()
        channel = grpc.insecure_channel(server.address)
        borrowed = ProxyStore(channel)
        borrowed.close()
        ProxyStore(channel).list_statuses()  # still usable
        other = borrowed.with_namespace("other")
        assert other.namespace == "other" and other.channel is channel
        channel.close()


def test_addresses_forms(tmp_path: Path) -> None:
    with ContentdServer(local_store(tmp_path / "c")) as server:
        for address in (server.address, server.socket, "unix://" + server.socket):
            with ProxyStore(address) as store:
                assert store.list_statuses() == []


# -- without a label store (checklist 60) ----------------------------------------------------


def test_update_without_label_store_is_failed_precondition(tmp_path: Path) -> None:
    with (
        ContentdServer(local_store(tmp_path / "c", labels=False)) as server,
        ProxyStore(server.address) as store,
    ):
        write_blob(store, "r", io.BytesIO(b"x"), labels={"a": "b"})
        assert store.info(digest_of(b"x")).labels is None
        with pytest.raises(FailedPrecondition) as info:
            store.update(Info(digest=digest_of(b"x"), labels={"a": "b"}))
        assert (
            str(info.value)
            == "update not supported on immutable content store: failed precondition"
        )
