"""The ``containerd.services.events.v1.Events`` gRPC service over an event exchange.

* **Publish** stamps the event with the caller's namespace (the
  ``containerd-namespace`` header; FailedPrecondition without one) and the
  current UTC time, and broadcasts it; the ``Any`` is passed on unchanged.
* **Forward** broadcasts an envelope stamped elsewhere (timestamp, namespace
  and topic are validated).
* **Subscribe** streams every envelope that matches any of the request's
  filters (containerd's syntax over ``topic``, ``namespace`` and
  ``event.<field>``), from the moment of the call until the client goes away
  or the service is closed. A subscriber that falls too far behind (see
  :mod:`contentd.metadata.events`) is dropped: its stream ends with
  RESOURCE_EXHAUSTED.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from typing import Final, NoReturn

import grpc
from google.protobuf import empty_pb2

from contentd.api._pb.containerd.services.events.v1 import events_pb2 as pb
from contentd.api._pb.containerd.services.events.v1 import events_pb2_grpc as pb_grpc
from contentd.api.calls import fail, headers
from contentd.api.convert import fill_timestamp, time_field
from contentd.api.event_types import AnyEvent, to_any
from contentd.content.errors import ResourceExhausted
from contentd.metadata.events import Envelope, Exchange, Subscription

__all__ = ["SERVICE_NAME", "EventsService"]

log = logging.getLogger(__name__)

SERVICE_NAME: Final = "containerd.services.events.v1.Events"
_EMPTY: Final = empty_pb2.Empty()


def envelope_to_pb(envelope: Envelope) -> pb.Envelope:
    msg = pb.Envelope(namespace=envelope.namespace, topic=envelope.topic)
    fill_timestamp(msg.timestamp, envelope.timestamp)
    msg.event.CopyFrom(to_any(envelope.event))
    return msg


class EventsService(pb_grpc.EventsServicer):
    """containerd's Events service on ``exchange``."""

    SERVICE_NAME = SERVICE_NAME

    def __init__(self, exchange: Exchange) -> None:
        self.exchange = exchange
        self._subscriptions: set[Subscription] = set()
        self._lock = threading.Lock()
        self._closed = False

    def register(self, server: grpc.Server) -> None:
        pb_grpc.add_EventsServicer_to_server(self, server)

    def close(self) -> None:
        """End every open Subscribe stream (daemon shutdown)."""
        with self._lock:
            self._closed = True
            subscriptions = list(self._subscriptions)
        for subscription in subscriptions:
            subscription.close()

    def Publish(self, request: pb.PublishRequest, context: grpc.ServicerContext) -> empty_pb2.Empty:
        namespace, _ = headers(context)
        try:
            self.exchange.publish(namespace or "", request.topic, AnyEvent(request.event))
        except Exception as err:
            _fail(context, err, "Publish")
        return _EMPTY

    def Forward(self, request: pb.ForwardRequest, context: grpc.ServicerContext) -> empty_pb2.Empty:
        env = request.envelope
        try:
            self.exchange.forward(
                Envelope(
                    timestamp=time_field(env, "timestamp"),  # absent: Go's zero time
                    namespace=env.namespace,
                    topic=env.topic,
                    event=AnyEvent(env.event),
                )
            )
        except Exception as err:
            _fail(context, err, "Forward")
        return _EMPTY

    def Subscribe(
        self, request: pb.SubscribeRequest, context: grpc.ServicerContext
    ) -> Iterator[pb.Envelope]:
        try:
            subscription = self.exchange.subscribe(*request.filters)
        except Exception as err:
            _fail(context, err, "Subscribe")
        with self._lock:
            if self._closed:
                subscription.close()
                return
            self._subscriptions.add(subscription)
        context.add_callback(subscription.close)  # the client went away: stop waiting
        try:
            for envelope in subscription:
                yield envelope_to_pb(envelope)
        except ResourceExhausted as err:  # dropped: it fell too far behind
            _fail(context, err, "Subscribe")
        finally:
            subscription.close()
            with self._lock:
                self._subscriptions.discard(subscription)


def _fail(context: grpc.ServicerContext, err: Exception, method: str) -> NoReturn:
    fail(context, err, f"Events/{method}", log)
