"""An in-process event exchange, as containerd's ``events/exchange``.

Publishers hand a topic, a namespace and a small event dataclass to
:meth:`Exchange.publish`; every :class:`Subscription` whose filters match
receives an :class:`Envelope`. Filters use containerd's filter syntax over
the envelope fields ``namespace``, ``topic`` and ``event.<field>`` (the
event's own fields, e.g. ``event.digest``); several filters are ORed.
Queues are unbounded, as go-events' are: a slow subscriber never blocks a
publisher. A subscription's filters run when it takes an envelope, on the
subscriber's thread, so that costly filters never slow a publisher either.

The payloads are plain dataclasses so that the gRPC layer can turn them into
protobuf ``Any`` values (``containerd.events.ContentDelete`` and so on).
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Final, Self

from contentd import filters as filtering
from contentd.content.errors import ContentError, InvalidArgument
from contentd.content.types import utcnow
from contentd.metadata import identifiers

__all__ = [
    "TOPIC_CONTENT_CORRUPT",
    "TOPIC_CONTENT_CREATE",
    "TOPIC_CONTENT_DELETE",
    "ContentCorrupt",
    "ContentCreate",
    "ContentDelete",
    "Envelope",
    "Exchange",
    "Subscription",
    "validate_topic",
]

TOPIC_CONTENT_CREATE: Final = "/content/create"
TOPIC_CONTENT_DELETE: Final = "/content/delete"
TOPIC_CONTENT_CORRUPT: Final = "/content/corrupt"


@dataclass(frozen=True, slots=True)
class ContentCreate:
    """A blob record was created by a commit (contentd's addition)."""

    digest: str
    size: int

    def field(self, fieldpath: Sequence[str]) -> tuple[str, bool]:
        if len(fieldpath) == 1 and fieldpath[0] == "digest":
            return self.digest, bool(self.digest)
        if len(fieldpath) == 1 and fieldpath[0] == "size":
            return str(self.size), True
        return "", False


@dataclass(frozen=True, slots=True)
class ContentDelete:
    """A blob record was deleted (``containerd.events.ContentDelete``)."""

    digest: str

    def field(self, fieldpath: Sequence[str]) -> tuple[str, bool]:
        if len(fieldpath) == 1 and fieldpath[0] == "digest":
            return self.digest, bool(self.digest)
        return "", False


@dataclass(frozen=True, slots=True)
class ContentCorrupt:
    """A recorded blob was found corrupt and quarantined (contentd's addition)."""

    digest: str
    reason: str

    def field(self, fieldpath: Sequence[str]) -> tuple[str, bool]:
        if len(fieldpath) == 1 and fieldpath[0] in ("digest", "reason"):
            value = self.digest if fieldpath[0] == "digest" else self.reason
            return value, bool(value)
        return "", False


@dataclass(frozen=True, slots=True)
class Envelope:
    timestamp: datetime
    namespace: str
    topic: str
    event: object

    def field(self, fieldpath: Sequence[str]) -> tuple[str, bool]:
        """The filter adaptor: ``namespace``, ``topic`` and ``event.<...>``."""
        if not fieldpath:
            return "", False
        head = fieldpath[0]
        if head == "namespace":
            return self.namespace, bool(self.namespace)
        if head == "topic":
            return self.topic, bool(self.topic)
        if head == "event":
            field = getattr(self.event, "field", None)
            if field is None:
                return "", False
            value, present = field(list(fieldpath[1:]))
            return str(value), bool(present)
        return "", False


def validate_topic(topic: str) -> None:
    """A topic starts with ``/`` and every component is an identifier."""
    if not topic:
        raise InvalidArgument("must not be empty").wrap(f"envelope topic {topic!r}")
    if topic[0] != "/":
        raise InvalidArgument("must start with '/'").wrap(f"envelope topic {topic!r}")
    if len(topic) == 1:
        raise InvalidArgument("must have at least one component").wrap(f"envelope topic {topic!r}")
    for component in topic[1:].split("/"):
        try:
            identifiers.validate(component)
        except InvalidArgument as err:
            raise err.wrap(f"failed validation on component {component!r}").wrap(
                f"envelope topic {topic!r}"
            ) from None


_CLOSED = object()


class Subscription:
    """Envelopes matching the subscription's filters, in publish order.

    Iterating blocks until the next envelope and ends when the subscription
    is closed. :meth:`get` waits at most ``timeout`` seconds.
    """

    def __init__(self, exchange: Exchange, matcher: filtering.Filter | None) -> None:
        self._exchange = exchange
        self._matcher = matcher
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._closed = False

    def _offer(self, envelope: Envelope) -> None:
        # No filtering here: this runs on the publisher's thread (a Create, a commit),
        # which must not pay for every subscriber's filters; get() applies them.
        self._queue.put(envelope)

    def get(self, timeout: float | None = None) -> Envelope | None:
        """The next matching envelope; None when ``timeout`` passes first or when closed."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            if self._closed and self._queue.empty():
                return None
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                item = self._queue.get(timeout=left)
            except queue.Empty:
                return None
            if item is _CLOSED:
                self._queue.put(_CLOSED)  # keep later callers from blocking
                return None
            assert isinstance(item, Envelope)
            if self._matcher is None or self._matcher.match(item):
                return item

    def __iter__(self) -> Iterator[Envelope]:
        while True:
            envelope = self.get()
            if envelope is None:
                return
            yield envelope

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._exchange._remove(self)
        self._queue.put(_CLOSED)

    @property
    def closed(self) -> bool:
        return self._closed

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class Exchange:
    """Broadcasts envelopes to every live subscription."""

    def __init__(self) -> None:
        self._subscribers: list[Subscription] = []
        self._lock = threading.Lock()

    def publish(self, namespace: str, topic: str, event: object) -> Envelope:
        """Stamp (UTC now), validate and broadcast; returns the envelope sent."""
        try:
            identifiers.require_namespace(namespace)
        except ContentError as err:
            raise err.wrap("failed publishing event") from None
        validate_topic(topic)
        envelope = Envelope(utcnow(), namespace, topic, event)
        self._broadcast(envelope)
        return envelope

    def forward(self, envelope: Envelope) -> None:
        """Broadcast an envelope stamped elsewhere (e.g. relayed from a peer)."""
        try:
            identifiers.validate(envelope.namespace)
        except InvalidArgument as err:
            raise err.wrap("event envelope has invalid namespace") from None
        validate_topic(envelope.topic)
        if envelope.timestamp.tzinfo is None or envelope.timestamp <= datetime.min.replace(
            tzinfo=UTC
        ):
            raise InvalidArgument("timestamp must be set on forwarded event")
        self._broadcast(envelope)

    def subscribe(self, *filters: str) -> Subscription:
        """A new subscription; filters are ORed; a bad filter is InvalidArgument."""
        matcher = filtering.parse_all(filters) if filters else None
        subscription = Subscription(self, matcher)
        with self._lock:
            self._subscribers.append(subscription)
        return subscription

    def _broadcast(self, envelope: Envelope) -> None:
        with self._lock:
            subscribers = list(self._subscribers)
        for subscription in subscribers:
            subscription._offer(envelope)

    def _remove(self, subscription: Subscription) -> None:
        with self._lock:
            if subscription in self._subscribers:
                self._subscribers.remove(subscription)
