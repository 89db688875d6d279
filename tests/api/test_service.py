"""ContentService behaviour of its own: resolver, headers, delete hook (checklist 57, 59)."""

from __future__ import annotations

import io
import threading
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from contentd import FailedPrecondition, NotFound, write_blob
from contentd.api._pb.containerd.services.content.v1 import content_pb2 as pb
from contentd.api._pb.containerd.services.content.v1 import content_pb2_grpc as pb_grpc
from contentd.api.content import ContentService, SingleStoreResolver
from contentd.api.metadata_keys import LEASE_KEY, NAMESPACE_KEY
from contentd.content.store import Store
from contentd.local import LocalStore
from contentd.metadata import MetadataDB
from contentd.metadata import content as metadata_content
from tests.api.conftest import blob, status_of
from tests.api.servers import ContentdServer, local_store

Code = grpc.StatusCode


class RecordingResolver:
    """Records every (namespace, lease) and serves one store; requires a namespace if asked."""

    def __init__(self, store: Store, require_namespace: bool = False) -> None:
        self.store = store
        self.require_namespace = require_namespace
        self.calls: list[tuple[str | None, str | None]] = []
        self._lock = threading.Lock()

    def resolve(self, namespace: str | None, lease: str | None) -> Store:
        with self._lock:
            self.calls.append((namespace, lease))
        if self.require_namespace and not namespace:
            raise FailedPrecondition("namespace is required")
        return self.store


@pytest.fixture
def store(tmp_path: Path) -> LocalStore:
    return local_store(tmp_path / "content")


def _serve(
    resolver: RecordingResolver, on_delete: object = None
) -> tuple[ContentdServer, pb_grpc.ContentStub, grpc.Channel]:
    server = ContentdServer(resolver=resolver, on_delete=on_delete)  # type: ignore[arg-type]
    channel = server.channel()
    return server, pb_grpc.ContentStub(channel), channel


@pytest.fixture
def served(store: LocalStore) -> Iterator[tuple[RecordingResolver, pb_grpc.ContentStub]]:
    resolver = RecordingResolver(store)
    server, stub, channel = _serve(resolver)
    yield resolver, stub
    channel.close()
    server.close()


def test_resolver_gets_first_namespace_and_lease(
    served: tuple[RecordingResolver, pb_grpc.ContentStub],
) -> None:
    resolver, stub = served
    md = ((NAMESPACE_KEY, "ns1"), (NAMESPACE_KEY, "ns2"), (LEASE_KEY, "l1"), (LEASE_KEY, "l2"))
    stub.ListStatuses(pb.ListStatusesRequest(), metadata=md)
    stub.ListStatuses(pb.ListStatusesRequest())
    stub.ListStatuses(pb.ListStatusesRequest(), metadata=((NAMESPACE_KEY, ""),))
    assert resolver.calls == [("ns1", "l1"), (None, None), ("", None)]


def test_every_rpc_resolves_with_the_headers(
    served: tuple[RecordingResolver, pb_grpc.ContentStub], store: LocalStore
) -> None:
    resolver, stub = served
    data, digest = blob(10)
    write_blob(store, "x", io.BytesIO(data))
    md = ((NAMESPACE_KEY, "ns"), (LEASE_KEY, "lease"))
    stub.Info(pb.InfoRequest(digest=digest), metadata=md)
    stub.Update(pb.UpdateRequest(info=pb.Info(digest=digest)), metadata=md)
    list(stub.List(pb.ListContentRequest(), metadata=md))
    list(stub.Read(pb.ReadContentRequest(digest=digest), metadata=md))
    list(stub.Write(iter([pb.WriteContentRequest(ref="w", action=pb.STAT)]), metadata=md))
    with pytest.raises(grpc.RpcError):
        stub.Status(pb.StatusRequest(ref="nope"), metadata=md)
    stub.Abort(pb.AbortRequest(ref="w"), metadata=md)
    stub.Delete(pb.DeleteContentRequest(digest=digest), metadata=md)
    assert resolver.calls == [("ns", "lease")] * 8


def test_resolver_errors_reach_the_caller_after_digest_checks(store: LocalStore) -> None:
    resolver = RecordingResolver(store, require_namespace=True)
    server, stub, channel = _serve(resolver)
    try:
        digest = "sha256:" + "0" * 64
        with pytest.raises(grpc.RpcError) as info:
            stub.Info(pb.InfoRequest(digest=digest))
        assert status_of(info.value) == (
            Code.FAILED_PRECONDITION,
            "namespace is required: failed precondition",
        )
        with pytest.raises(grpc.RpcError) as info:
            stub.Info(pb.InfoRequest(digest="bad"))
        assert status_of(info.value)[0] == Code.INVALID_ARGUMENT  # checked first
        with pytest.raises(grpc.RpcError) as info:
            stub.Status(pb.StatusRequest(ref="r"))
        assert status_of(info.value) == (
            Code.FAILED_PRECONDITION,
            'could not get status for ref "r": namespace is required: failed precondition',
        )
        with pytest.raises(grpc.RpcError) as info:
            list(stub.Write(iter([pb.WriteContentRequest(action=pb.STAT)])))
        assert status_of(info.value)[0] == Code.INVALID_ARGUMENT  # the ref is checked first
        with pytest.raises(grpc.RpcError) as info:
            list(stub.Write(iter([pb.WriteContentRequest(action=pb.STAT, ref="r")])))
        assert status_of(info.value)[0] == Code.FAILED_PRECONDITION
    finally:
        channel.close()
        server.close()


def test_delete_calls_the_hook_with_the_namespace(store: LocalStore) -> None:
    events: list[tuple[str | None, str]] = []
    resolver = RecordingResolver(store)
    server, stub, channel = _serve(resolver, lambda ns, d: events.append((ns, d)))
    try:
        data, digest = blob(10)
        write_blob(store, "x", io.BytesIO(data))
        stub.Delete(pb.DeleteContentRequest(digest=digest), metadata=((NAMESPACE_KEY, "ns1"),))
        assert events == [("ns1", digest)]
        with pytest.raises(grpc.RpcError):
            stub.Delete(pb.DeleteContentRequest(digest="sha256:bad"))
        assert events == [("ns1", digest)]  # a failed delete publishes nothing
    finally:
        channel.close()
        server.close()


class _NoDelete:
    def delete(self, digest: str) -> None:
        raise NotFound(f"content digest {digest}")


def test_failed_store_delete_calls_no_hook() -> None:
    events: list[tuple[str | None, str]] = []
    resolver = RecordingResolver(_NoDelete())  # type: ignore[arg-type]
    server, stub, channel = _serve(resolver, lambda ns, d: events.append((ns, d)))
    try:
        digest = "sha256:" + "1" * 64
        with pytest.raises(grpc.RpcError) as info:
            stub.Delete(pb.DeleteContentRequest(digest=digest), metadata=((NAMESPACE_KEY, "n"),))
        assert status_of(info.value) == (Code.NOT_FOUND, f"content digest {digest}: not found")
        assert events == []
    finally:
        channel.close()
        server.close()


def test_hook_error_is_returned_after_the_delete(store: LocalStore) -> None:
    def fail(namespace: str | None, digest: str) -> None:
        raise FailedPrecondition("publish failed")

    server, stub, channel = _serve(RecordingResolver(store), fail)
    try:
        data, digest = blob(10)
        write_blob(store, "x", io.BytesIO(data))
        with pytest.raises(grpc.RpcError) as info:
            stub.Delete(pb.DeleteContentRequest(digest=digest))
        assert status_of(info.value) == (
            Code.FAILED_PRECONDITION,
            "publish failed: failed precondition",
        )
        with pytest.raises(NotFound):
            store.info(digest)
    finally:
        channel.close()
        server.close()


class _Broken:
    def info(self, digest: str) -> object:
        raise OSError(5, "Input/output error")


def test_unexpected_errors_are_unknown_with_their_text() -> None:
    server, stub, channel = _serve(RecordingResolver(_Broken()))  # type: ignore[arg-type]
    try:
        with pytest.raises(grpc.RpcError) as info:
            stub.Info(pb.InfoRequest(digest="sha256:" + "2" * 64))
        assert status_of(info.value) == (Code.UNKNOWN, "[Errno 5] Input/output error")
    finally:
        channel.close()
        server.close()


def test_read_streams_the_blob_through_reader_at(
    served: tuple[RecordingResolver, pb_grpc.ContentStub], store: LocalStore
) -> None:
    _, stub = served
    data, digest = blob(3 * (1 << 20) + 7)
    write_blob(store, "big", io.BytesIO(data))
    chunks = list(stub.Read(pb.ReadContentRequest(digest=digest)))
    # the response message is reused between sends: each chunk must still be its own
    assert b"".join(c.data for c in chunks) == data
    assert len({bytes(c.data[:16]) for c in chunks}) == len(chunks)


class _GoneContext:
    """A server-streaming call's context whose client has gone away."""

    def __init__(self) -> None:
        self.asked = 0

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return ((NAMESPACE_KEY, "ns"),)

    def is_active(self) -> bool:
        self.asked += 1
        return False


def test_list_stops_walking_when_the_client_is_gone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a filter that matches nothing sends nothing until the walk ends: the walk must
    # notice that nobody waits for it any more
    monkeypatch.setattr(metadata_content, "WALK_CHUNK", 2)
    db = MetadataDB(str(tmp_path / "meta.db"), LocalStore(tmp_path / "content"))
    try:
        store = db.content_store("ns")
        for i in range(9):
            write_blob(store, f"blob-{i}", io.BytesIO(f"blob {i}".encode()))
        service = ContentService(SingleStoreResolver(store))
        context = _GoneContext()
        request = pb.ListContentRequest(filters=["labels.nope"])
        assert list(service.List(request, context)) == []  # type: ignore[arg-type]
        assert context.asked == 1  # asked before the first chunk, and stopped there
    finally:
        db.close()


class _Context:
    def __init__(self, metadata: tuple[tuple[str, str], ...]) -> None:
        self.metadata = metadata

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return self.metadata

    def abort(self, code: grpc.StatusCode, details: str) -> None:
        raise grpc.RpcError(code, details)


def test_read_inline_answers_as_read_does_or_declines(tmp_path: Path) -> None:
    """The native engine's Read shortcut: a chunk that is all of what was asked (the tail
    of a blob included) comes out as Read sends it; every other case is declined (None)
    and left to Read - a digest not validated yet, errors, a whole (verified) blob, an
    empty or unbounded read, more than one chunk."""
    from contentd.api import content as content_api
    from contentd.api.content import READ_CHUNK
    from contentd.api.content_codec import ReadRequest
    from contentd.daemon.resolver import NamespaceResolver

    db = MetadataDB(str(tmp_path / "meta.db"), LocalStore(tmp_path / "content"))
    try:
        data, digest = blob(100_000)
        write_blob(db.content_store("ns"), "b", io.BytesIO(data))
        service = ContentService(NamespaceResolver(db, None))
        md = ((NAMESPACE_KEY, "ns"),)

        def inline(offset: int, size: int, d: str = digest, meta: object = md) -> bytes | None:
            return service.read_inline(ReadRequest(d, offset, size), meta)  # type: ignore[arg-type]

        def read(offset: int, size: int) -> list[bytes]:
            request = ReadRequest(digest, offset, size)
            return list(service.Read(request, _Context(md)))  # type: ignore[arg-type]

        content_api._VALID.pop(digest, None)
        assert inline(0, 32768) is None  # not validated yet: Read validates it
        assert read(0, 32768) == [pb.ReadContentResponse(data=data[:32768]).SerializeToString()]
        for offset, size in ((0, 32768), (32768, 32768), (-5, 10), (99_999, 1), (90_000, 32768)):
            got = inline(offset, size)
            assert got is not None
            assert [got] == read(offset, size)
            assert pb.ReadContentResponse.FromString(got).data == data[max(offset, 0) :][:size]
        # declined: whole blob (verified), empty answer, past the end, no size, too big
        for offset, size in ((0, 100_000), (0, 200_000), (100_000, 5), (100_001, 5), (5, 0)):
            assert inline(offset, size) is None, (offset, size)
        assert inline(0, READ_CHUNK + 1) is None
        assert read(100_000, 5) == []
        # errors are Read's to report
        missing = "sha256:" + "3" * 64
        content_api._VALID[missing] = True
        assert inline(0, 10, missing) is None
        with pytest.raises(grpc.RpcError):
            read_missing = service.Read(ReadRequest(missing, 0, 10), _Context(md))  # type: ignore[arg-type]
            list(read_missing)
        assert inline(0, 10, digest, ((NAMESPACE_KEY, "other"),)) is None
        assert inline(0, 10, digest, ()) is None  # no namespace, none pinned
        assert inline(0, 10, digest, [(NAMESPACE_KEY, "ns")]) is not None  # unhashable metadata
    finally:
        db.close()
