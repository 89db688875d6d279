"""Events: /content/create and /content/delete from the content store, and the exchange."""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass
from datetime import UTC

import pytest

from contentd import AlreadyExists, Info, InvalidArgument, NotFound, filters
from contentd.content.digest import digest_of
from contentd.content.errors import ResourceExhausted
from contentd.content.types import utcnow
from contentd.metadata import (
    TOPIC_CONTENT_CREATE,
    TOPIC_CONTENT_DELETE,
    ContentCreate,
    ContentDelete,
    Envelope,
    Exchange,
    MetadataDB,
    validate_topic,
)
from tests.metadata.conftest import put


def _drain(sub: object) -> list[Envelope]:
    out = []
    while (env := sub.get(timeout=0)) is not None:  # type: ignore[attr-defined]
        out.append(env)
    return out


def test_commit_publishes_create_and_delete_publishes_delete(db: MetadataDB) -> None:
    sub = db.events.subscribe()
    cs = db.content_store("ns")
    before = utcnow()
    dgst = put(cs, b"event payload")
    cs.update(Info(digest=dgst, labels={"a": "b"}))
    w = cs.writer("aborted")
    w.write(b"x")
    w.close()
    cs.abort("aborted")
    cs.delete(dgst)
    after = utcnow()
    envelopes = _drain(sub)
    assert [(e.namespace, e.topic, e.event) for e in envelopes] == [
        ("ns", TOPIC_CONTENT_CREATE, ContentCreate(dgst, len(b"event payload"))),
        ("ns", TOPIC_CONTENT_DELETE, ContentDelete(dgst)),
    ]
    for env in envelopes:
        assert env.timestamp.tzinfo == UTC
        assert before <= env.timestamp <= after


def test_failed_operations_publish_nothing(db: MetadataDB) -> None:
    cs = db.content_store("ns")
    dgst = put(cs, b"exists")
    sub = db.events.subscribe()
    with pytest.raises(NotFound):
        cs.delete(digest_of(b"missing"))
    w = cs.writer("dup")
    w.write(b"exists")
    with pytest.raises(AlreadyExists):
        w.commit(0, "")
    with pytest.raises(AlreadyExists):
        cs.writer("dup2", expected=dgst)
    assert _drain(sub) == []


def test_subscription_filters(db: MetadataDB) -> None:
    deletes = db.events.subscribe(f'topic=="{TOPIC_CONTENT_DELETE}"')
    in_b = db.events.subscribe("namespace==b")
    one = db.events.subscribe(f"event.digest=={digest_of(b'one')}", "topic~=create$")
    a, b = db.content_store("a"), db.content_store("b")
    d1 = put(a, b"one")
    d2 = put(b, b"two")
    a.delete(d1)
    assert [(e.topic, e.namespace) for e in _drain(deletes)] == [(TOPIC_CONTENT_DELETE, "a")]
    assert [e.event for e in _drain(in_b)] == [ContentCreate(d2, 3)]
    assert [e.event for e in _drain(one)] == [
        ContentCreate(d1, 3),
        ContentCreate(d2, 3),
        ContentDelete(d1),
    ]
    with pytest.raises(InvalidArgument):
        db.events.subscribe("topic===x")


def test_close_ends_iteration_and_stops_delivery() -> None:
    exchange = Exchange()
    sub = exchange.subscribe()
    got: list[Envelope] = []
    t = threading.Thread(target=lambda: got.extend(sub))
    t.start()
    exchange.publish("ns", "/a/b", ContentDelete("sha256:x"))
    sub.close()
    t.join(10)
    assert not t.is_alive()
    assert [e.topic for e in got] == ["/a/b"]
    exchange.publish("ns", "/a/b", ContentDelete("sha256:y"))
    assert sub.get(timeout=0) is None
    assert sub.closed


def test_a_subscribers_filters_run_on_its_own_thread_not_the_publishers() -> None:
    # A subscriber's filters may be costly (8 regexps over 4 KiB label values): the
    # publisher (a Create, a commit) must not pay for them, per subscriber.
    exchange = Exchange()
    sub = exchange.subscribe("event.digest~=y$")
    matched_on: list[int] = []
    real = sub._matcher
    assert real is not None

    class Recording:
        def match(self, adaptor: filters.Adaptor, /) -> bool:
            matched_on.append(threading.get_ident())
            return real.match(adaptor)

    sub._matcher = Recording()
    exchange.publish("ns", "/a/b", ContentDelete("sha256:x"))
    exchange.publish("ns", "/a/b", ContentDelete("sha256:y"))
    assert matched_on == []  # nothing evaluated while publishing
    got: list[Envelope | None] = []
    t = threading.Thread(target=lambda: got.append(sub.get(timeout=10)))
    t.start()
    t.join(10)
    assert [e.event for e in got if e is not None] == [ContentDelete("sha256:y")]
    assert matched_on == [t.ident, t.ident]
    assert sub.get(timeout=0) is None  # the first one did not match: skipped, not kept


def test_get_waits_its_timeout_through_envelopes_that_do_not_match() -> None:
    exchange = Exchange()
    sub = exchange.subscribe('topic=="/wanted/one"')
    for _ in range(3):
        exchange.publish("ns", "/other/one", ContentDelete("sha256:x"))
    assert sub.get(timeout=0.05) is None
    exchange.publish("ns", "/wanted/one", ContentDelete("sha256:x"))
    got = sub.get(timeout=5)
    assert got is not None and got.topic == "/wanted/one"


def test_topic_validation() -> None:
    for good in ["/content/delete", "/a", "/a.b/c-d/e_f"]:
        validate_topic(good)
    for bad in ["", "content/delete", "/", "/a//b", "/a/", "/a b", "/-a"]:
        with pytest.raises(InvalidArgument):
            validate_topic(bad)
    exchange = Exchange()
    with pytest.raises(InvalidArgument):
        exchange.publish("ns", "nope", ContentDelete("d"))
    with pytest.raises(InvalidArgument):
        exchange.publish("bad/ns", "/ok", ContentDelete("d"))


def test_forward_keeps_the_envelope() -> None:
    exchange = Exchange()
    sub = exchange.subscribe()
    env = Envelope(utcnow(), "ns", "/x/y", object())
    exchange.forward(env)
    assert sub.get(timeout=0) is env
    with pytest.raises(InvalidArgument):
        exchange.forward(Envelope(utcnow(), "bad/ns", "/x", None))


def test_a_subscriber_that_falls_behind_is_dropped_not_buffered_without_bound() -> None:
    exchange = Exchange(max_queued=5)
    slow = exchange.subscribe()
    keeping_up = exchange.subscribe()
    for i in range(6):
        exchange.publish("ns", "/a/b", ContentDelete(f"sha256:{i}"))
        assert keeping_up.get(timeout=0) is not None
    # the sixth did not fit: what it held is gone at once, and it hears why when it asks
    assert slow._items == deque() and slow.closed
    with pytest.raises(ResourceExhausted, match="too slow: 5 events"):
        slow.get(timeout=0)
    with pytest.raises(ResourceExhausted):
        list(slow)
    exchange.publish("ns", "/a/b", ContentDelete("sha256:after"))
    assert slow._items == deque()  # no longer offered anything
    got = keeping_up.get(timeout=0)
    assert got is not None and got.event == ContentDelete("sha256:after")
    again = exchange.subscribe()  # the subscriber may come back
    exchange.publish("ns", "/a/b", ContentDelete("sha256:again"))
    assert again.get(timeout=0) is not None


def test_queued_event_bytes_are_bounded_too() -> None:
    @dataclass(frozen=True)
    class Big:
        nbytes: int

    exchange = Exchange(max_queued_bytes=3 << 20)
    sub = exchange.subscribe()
    exchange.publish("ns", "/a/b", Big(1 << 20))
    exchange.publish("ns", "/a/b", Big(1 << 20))
    assert sub.get(timeout=0) is not None  # taken: its bytes count no more
    exchange.publish("ns", "/a/b", Big(1 << 20))
    assert not sub.closed
    exchange.publish("ns", "/a/b", Big(1 << 20))  # a third MiB waiting, with the envelopes
    assert sub.closed
    with pytest.raises(ResourceExhausted):
        sub.get(timeout=0)


def test_a_dropped_subscriber_waiting_for_an_event_is_woken() -> None:
    exchange = Exchange(max_queued=0)  # the first envelope overflows it
    sub = exchange.subscribe()
    errors: list[BaseException] = []
    waiting = threading.Event()

    def wait() -> None:
        waiting.set()
        try:
            sub.get(timeout=30)
        except ResourceExhausted as err:
            errors.append(err)

    waiter = threading.Thread(target=wait)
    waiter.start()
    waiting.wait(10)
    exchange.publish("ns", "/a/b", ContentDelete("sha256:1"))
    waiter.join(30)
    assert not waiter.is_alive()
    assert len(errors) == 1
