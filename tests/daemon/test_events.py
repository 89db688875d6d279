"""The Events service on the daemon's exchange: Subscribe filters, Publish, Forward, events."""

from __future__ import annotations

import hashlib
import io
import queue
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import grpc
import pytest
from google.protobuf import any_pb2, timestamp_pb2

from contentd import Descriptor, NotFound, write_blob
from contentd.api._pb.containerd.events import content_pb2 as content_events
from contentd.api._pb.containerd.services.events.v1 import events_pb2 as epb
from contentd.api._pb.containerd.services.events.v1 import events_pb2_grpc as epb_grpc
from contentd.api._pb.containerd.services.namespaces.v1 import namespace_pb2 as npb
from contentd.api._pb.containerd.services.namespaces.v1 import namespace_pb2_grpc as npb_grpc
from contentd.api.event_types import (
    TYPE_CONTENT_CREATE,
    AnyEvent,
    NamespaceCreate,
    decode_fields,
    to_any,
)
from contentd.api.events import EventsService
from contentd.daemon.server import Daemon
from contentd.metadata import ContentCreate, ContentDelete, Exchange
from contentd.proxy import ProxyStore
from contentd.wire.server import Server
from tests.daemon.harness import md

Code = grpc.StatusCode


MARKER = "/test/marker"


class Subscriber:
    """The envelopes of one Subscribe call (markers skipped)."""

    def __init__(self, received: queue.Queue[epb.Envelope]) -> None:
        self._received = received

    def get(self, timeout: float) -> epb.Envelope:
        """The next envelope; queue.Empty if none comes within ``timeout`` seconds."""
        end = time.monotonic() + timeout
        while True:
            envelope = self._received.get(timeout=max(0.0, end - time.monotonic()))
            if envelope.topic != MARKER:
                return envelope


@contextmanager
def subscribed(channel: grpc.Channel, *filters: str) -> Iterator[Subscriber]:
    """A live subscription: markers are published until one comes back through it."""
    stub = epb_grpc.EventsStub(channel)
    request = epb.SubscribeRequest(filters=[*filters, f'topic=="{MARKER}"'])
    call = stub.Subscribe(request, timeout=60)
    received: queue.Queue[epb.Envelope] = queue.Queue()
    live = threading.Event()

    def pump() -> None:
        try:
            for envelope in call:
                if envelope.topic == MARKER:
                    live.set()
                received.put(envelope)
        except grpc.RpcError:
            pass

    thread = threading.Thread(target=pump, daemon=True)
    thread.start()
    marker = epb.PublishRequest(topic=MARKER, event=any_pb2.Any(type_url="x.Marker"))
    deadline = time.monotonic() + 10
    while not live.is_set() and time.monotonic() < deadline:
        stub.Publish(marker, metadata=md("markers"))
        live.wait(0.1)
    assert live.is_set(), "the subscription never became live"
    try:
        yield Subscriber(received)
    finally:
        call.cancel()
        thread.join(10)


def _blob(data: bytes) -> tuple[bytes, str]:
    return data, "sha256:" + hashlib.sha256(data).hexdigest()


def test_content_delete_is_published_in_the_callers_namespace(
    daemon: Daemon, channel: grpc.Channel
) -> None:
    store = ProxyStore(daemon.address, namespace="ev1")
    data, digest = _blob(b"to be deleted")
    try:
        with subscribed(channel, "namespace==ev1") as events:
            write_blob(store, "r", io.BytesIO(data), Descriptor(digest=digest, size=len(data)))
            created = events.get(timeout=10)
            assert created.topic == "/content/create"
            # containerd 2.x's own type, which its clients decode (digest = 1, size = 2)
            assert created.event.type_url == "containerd.events.ContentCreate"
            assert decode_fields(created.event) == {"digest": digest, "size": len(data)}
            store.delete(digest)
            deleted = events.get(timeout=10)
            assert deleted.topic == "/content/delete"
            assert deleted.namespace == "ev1"
            assert deleted.timestamp.seconds > 0
            assert deleted.event.type_url == "containerd.events.ContentDelete"
            payload = content_events.ContentDelete()
            payload.ParseFromString(deleted.event.value)
            assert payload.digest == digest
            # a failed delete publishes nothing
            with pytest.raises(NotFound):
                store.delete(digest)
            with pytest.raises(queue.Empty):
                events.get(timeout=0.3)
    finally:
        store.close()


def test_subscribe_filters_on_topic_namespace_and_event_fields(channel: grpc.Channel) -> None:
    stub = epb_grpc.EventsStub(channel)
    wanted = content_events.ContentDelete(digest="sha256:" + "1" * 64)
    other = content_events.ContentDelete(digest="sha256:" + "2" * 64)

    def publish(ns: str, topic: str, msg: content_events.ContentDelete) -> None:
        event = any_pb2.Any(
            type_url="containerd.events.ContentDelete", value=msg.SerializeToString()
        )
        stub.Publish(epb.PublishRequest(topic=topic, event=event), metadata=md(ns))

    with subscribed(
        channel,
        f'topic=="/x/delete",event.digest=="{wanted.digest}"',
        "namespace==evf2",
    ) as events:
        publish("evf1", "/x/delete", other)  # no filter matches
        publish("evf1", "/x/other", wanted)  # wrong topic
        publish("evf1", "/x/delete", wanted)  # first filter
        publish("evf2", "/y", other)  # second filter
        first = events.get(timeout=10)
        second = events.get(timeout=10)
        assert (first.namespace, first.topic) == ("evf1", "/x/delete")
        assert first.event.value == wanted.SerializeToString()
        assert (second.namespace, second.topic) == ("evf2", "/y")
        with pytest.raises(queue.Empty):
            events.get(timeout=0.3)


def test_publish_and_forward_errors(channel: grpc.Channel) -> None:
    stub = epb_grpc.EventsStub(channel)
    event = any_pb2.Any(type_url="x.Y")
    with pytest.raises(grpc.RpcError) as info:
        stub.Publish(epb.PublishRequest(topic="/t", event=event))
    assert info.value.code() == Code.FAILED_PRECONDITION
    with pytest.raises(grpc.RpcError) as info:
        stub.Publish(epb.PublishRequest(topic="no-slash", event=event), metadata=md("ns"))
    assert info.value.code() == Code.INVALID_ARGUMENT
    with pytest.raises(grpc.RpcError) as info:
        stub.Forward(epb.ForwardRequest(envelope=epb.Envelope(namespace="ns", topic="/t")))
    assert info.value.code() == Code.INVALID_ARGUMENT  # no timestamp
    with pytest.raises(grpc.RpcError) as info:
        list(stub.Subscribe(epb.SubscribeRequest(filters=["topic=="]), timeout=5))
    assert info.value.code() == Code.INVALID_ARGUMENT


def test_forward_keeps_the_envelope(channel: grpc.Channel) -> None:
    stub = epb_grpc.EventsStub(channel)
    stamp = timestamp_pb2.Timestamp(seconds=1_600_000_000, nanos=5000)
    envelope = epb.Envelope(
        timestamp=stamp, namespace="fwd", topic="/forwarded", event=any_pb2.Any(type_url="a.B")
    )
    with subscribed(channel, 'topic=="/forwarded"') as events:
        stub.Forward(epb.ForwardRequest(envelope=envelope))
        got = events.get(timeout=10)
    assert got.timestamp == stamp
    assert (got.namespace, got.topic, got.event.type_url) == ("fwd", "/forwarded", "a.B")


def test_namespace_events(channel: grpc.Channel) -> None:
    stub = npb_grpc.NamespacesStub(channel)
    with subscribed(channel, "topic~=^/namespaces/") as events:
        stub.Create(
            npb.CreateNamespaceRequest(namespace=npb.Namespace(name="evns", labels={"a": "b"})),
            metadata=md("caller"),
        )
        stub.Delete(npb.DeleteNamespaceRequest(name="evns"), metadata=md("caller"))
        created = events.get(timeout=10)
        deleted = events.get(timeout=10)
    assert (created.topic, created.namespace) == ("/namespaces/create", "caller")
    assert created.event.type_url == "containerd.events.NamespaceCreate"
    assert decode_fields(created.event) == {"name": "evns", "labels": {"a": "b"}}
    assert (deleted.topic, deleted.namespace) == ("/namespaces/delete", "evns")
    assert decode_fields(deleted.event) == {"name": "evns"}


def test_event_payload_encodings_round_trip() -> None:
    created = to_any(ContentCreate("sha256:" + "3" * 64, 1 << 40))
    assert decode_fields(created) == {"digest": "sha256:" + "3" * 64, "size": 1 << 40}
    deleted = to_any(ContentDelete("sha256:" + "4" * 64))
    assert AnyEvent(deleted).field(["digest"]) == ("sha256:" + "4" * 64, True)
    ns = to_any(NamespaceCreate("n", {"k.x": "v"}))
    assert AnyEvent(ns).field(["labels", "k", "x"]) == ("v", True)
    assert AnyEvent(ns).field(["labels", "nope"]) == ("", False)
    assert AnyEvent(any_pb2.Any(type_url="unknown.T", value=b"\x01")).field(["x"]) == ("", False)
    assert decode_fields(any_pb2.Any(type_url=TYPE_CONTENT_CREATE, value=b"\xff")) is None


def test_a_subscriber_that_stops_reading_is_dropped_with_resource_exhausted() -> None:
    # the subscription's queue is bounded: a client that subscribes and reads nothing
    # ends with RESOURCE_EXHAUSTED once its stream's buffers and the queue are full,
    # instead of holding every later event in the daemon's memory
    exchange = Exchange(max_queued=8)
    server = Server(options=[], max_workers=4)
    EventsService(exchange).register(server)
    directory = tempfile.mkdtemp(prefix="cde-", dir="/tmp")
    server.add_insecure_port(f"unix:{directory}/s.sock")
    server.start()
    try:
        with grpc.insecure_channel(f"unix:{directory}/s.sock") as channel:
            call = epb_grpc.EventsStub(channel).Subscribe(epb.SubscribeRequest(), timeout=60)
            deadline = time.monotonic() + 10
            while not exchange.subscribed and time.monotonic() < deadline:
                time.sleep(0.01)
            assert exchange.subscribed, "the subscription never reached the exchange"
            big = AnyEvent(any_pb2.Any(type_url="x.Big", value=b"x" * (64 << 10)))
            published = 0
            while exchange.subscribed and published < 5000:  # 5000 x 64 KiB: never held
                exchange.publish("ns", "/a/b", big)
                published += 1
            assert not exchange.subscribed
            with pytest.raises(grpc.RpcError) as info:
                list(call)
            assert info.value.code() == Code.RESOURCE_EXHAUSTED
            assert "too slow" in (info.value.details() or "")
    finally:
        server.stop(None).wait(10)
        shutil.rmtree(directory, ignore_errors=True)
