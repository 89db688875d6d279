"""An in-process event exchange, as containerd's ``events/exchange``.

Publishers hand a topic, a namespace and a small event dataclass to
:meth:`Exchange.publish`; every :class:`Subscription` whose filters match
receives an :class:`Envelope`. Filters use containerd's filter syntax over
the envelope fields ``namespace``, ``topic`` and ``event.<field>`` (the
event's own fields, e.g. ``event.digest``); several filters are ORed.
A slow subscriber never blocks a publisher, but neither does it hold memory
without bound (go-events' queues, and so containerd's, are unbounded): a
subscription with more than :data:`MAX_QUEUED` envelopes or
:data:`MAX_QUEUED_BYTES` of them not yet taken is dropped, and taking from it
raises :class:`~contentd.content.errors.ResourceExhausted` (the subscriber may
subscribe again). A subscription's filters run when it takes an envelope, on
the subscriber's thread, so that costly filters never slow a publisher either.
An event may say its size in bytes with an ``nbytes`` attribute.

The payloads are plain dataclasses so that the gRPC layer can turn them into
protobuf ``Any`` values (``containerd.events.ContentDelete`` and so on).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Final, Self

from contentd import filters as filtering
from contentd.content.errors import ContentError, InvalidArgument, ResourceExhausted
from contentd.content.types import utcnow
from contentd.metadata import identifiers

__all__ = [
    "MAX_QUEUED",
    "MAX_QUEUED_BYTES",
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
#: envelopes a subscription may hold that its subscriber has not taken, and their bytes
MAX_QUEUED: Final = 100_000
MAX_QUEUED_BYTES: Final = 64 << 20
#: what an envelope counts besides its event's ``nbytes`` (the objects that carry it)
_ENVELOPE_BYTES: Final = 256

log = logging.getLogger(__name__)


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


class Subscription:
    """Envelopes matching the subscription's filters, in publish order.

    Iterating blocks until the next envelope and ends when the subscription
    is closed. :meth:`get` waits at most ``timeout`` seconds. A subscription
    dropped for falling behind raises ResourceExhausted instead.
    """

    def __init__(
        self,
        exchange: Exchange,
        matcher: filtering.Filter | None,
        max_queued: int = MAX_QUEUED,
        max_queued_bytes: int = MAX_QUEUED_BYTES,
    ) -> None:
        self._exchange = exchange
        self._matcher = matcher
        self._cond = threading.Condition(threading.Lock())
        self._items: deque[tuple[Envelope, int]] = deque()
        self._bytes = 0
        self._max = max_queued
        self._max_bytes = max_queued_bytes
        self._closed = False
        self._dropped: ResourceExhausted | None = None

    def _offer(self, envelope: Envelope) -> None:
        # No filtering here: this runs on the publisher's thread (a Create, a commit),
        # which must not pay for every subscriber's filters; get() applies them.
        size = _ENVELOPE_BYTES + getattr(envelope.event, "nbytes", 0)
        with self._cond:
            if self._closed:
                return
            items = self._items
            if len(items) < self._max and self._bytes + size <= self._max_bytes:
                items.append((envelope, size))
                self._bytes += size
                self._cond.notify()
                return
            message = (
                f"event subscriber too slow: {len(items)} events ({self._bytes} bytes)"
                " not taken; subscribe again"
            )
            self._dropped = ResourceExhausted(message)
            self._closed = True
            items.clear()  # the memory goes now, not when the subscriber comes back
            self._bytes = 0
            self._cond.notify_all()
        log.warning("dropping an %s", message)
        self._exchange._remove(self)

    def get(self, timeout: float | None = None) -> Envelope | None:
        """The next matching envelope; None when ``timeout`` passes first or when closed.

        Raises ResourceExhausted if the subscription was dropped for falling behind."""
        deadline = None if timeout is None else time.monotonic() + timeout
        matcher = self._matcher
        while True:
            with self._cond:
                while not self._items:
                    if self._dropped is not None:
                        raise self._dropped
                    if self._closed:
                        return None
                    if deadline is None:
                        self._cond.wait()
                        continue
                    left = deadline - time.monotonic()
                    if left <= 0:
                        return None
                    self._cond.wait(left)
                envelope, size = self._items.popleft()
                self._bytes -= size
            # the filters outside the lock: a publisher offering meanwhile does not wait
            if matcher is None or matcher.match(envelope):
                return envelope

    def __iter__(self) -> Iterator[Envelope]:
        while True:
            envelope = self.get()
            if envelope is None:
                return
            yield envelope

    def close(self) -> None:
        with self._cond:
            if self._closed:
                return
            self._closed = True
            self._cond.notify_all()
        self._exchange._remove(self)

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

    def __init__(
        self, *, max_queued: int = MAX_QUEUED, max_queued_bytes: int = MAX_QUEUED_BYTES
    ) -> None:
        self._subscribers: list[Subscription] = []
        self._lock = threading.Lock()
        #: what each subscription may hold untaken before it is dropped
        self.max_queued = max_queued
        self.max_queued_bytes = max_queued_bytes

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
        subscription = Subscription(self, matcher, self.max_queued, self.max_queued_bytes)
        with self._lock:
            self._subscribers.append(subscription)
        return subscription

    @property
    def subscribed(self) -> int:
        """How many subscriptions are live."""
        with self._lock:
            return len(self._subscribers)

    def _broadcast(self, envelope: Envelope) -> None:
        with self._lock:
            subscribers = list(self._subscribers)
        for subscription in subscribers:
            subscription._offer(envelope)

    def _remove(self, subscription: Subscription) -> None:
        with self._lock:
            if subscription in self._subscribers:
                self._subscribers.remove(subscription)
