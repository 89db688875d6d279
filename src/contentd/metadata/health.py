"""Blob health: when each blob's bytes last hashed to its digest, and quarantine.

A blob found corrupt (its bytes hash to something else, or are gone) is
*quarantined*: the ``blob_health`` row says when and why, the backend moves the
bytes aside if it can (:class:`Quarantining`; the local store keeps them under
``<root>/quarantine/``, never deletes them), and every namespace's reads and
Info of the digest fail with :class:`~contentd.content.errors.DataLoss` instead
of serving wrong bytes. The records stay (labels, leases and references keep
working), and a writer expecting the digest is not told it exists: the next
fetch or ingest of the same digest stores good bytes and lifts the quarantine
(:func:`lift` runs in that commit's transaction).

The set of quarantined digests is kept in memory (:attr:`Core.quarantined`,
loaded at open) so that the hot read path pays a dict lookup, not a query.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final, Protocol, runtime_checkable

from contentd.content import digest as digests
from contentd.content.errors import ContentError, DataLoss, NotFound, Unavailable
from contentd.content.store import Store
from contentd.metadata.core import Core
from contentd.metadata.events import TOPIC_CONTENT_CORRUPT, ContentCorrupt
from contentd.metadata.sql import Conn

__all__ = [
    "CHUNK",
    "Quarantined",
    "Quarantining",
    "RateLimiter",
    "Verdict",
    "data_loss",
    "lift",
    "load_quarantined",
    "mark_verified",
    "quarantine",
    "quarantined",
    "verify_blob",
]

log = logging.getLogger(__name__)

#: bytes read per call when hashing a blob
CHUNK: Final = 1 << 20


@runtime_checkable
class Quarantining(Protocol):
    """A backend that can move a blob's bytes aside (never deleting them)."""

    def quarantine(self, digest: str) -> str | None:
        """Move ``digest``'s bytes out of the store; where they went (None: no bytes)."""
        ...


@dataclass(frozen=True, slots=True)
class Quarantined:
    digest: str
    at_ns: int
    reason: str


@dataclass(frozen=True, slots=True)
class Verdict:
    """What hashing one blob found: ``ok``, else ``problem`` says what is wrong."""

    digest: str
    size: int
    ok: bool
    problem: str = ""


class RateLimiter:
    """A token bucket shared by threads: :meth:`take` blocks to keep to ``rate`` bytes/s.

    ``rate`` <= 0 means no limit. The bucket holds at most one second of budget.
    """

    def __init__(self, rate: int, *, stop: threading.Event | None = None) -> None:
        self.rate = rate
        self._stop = stop or threading.Event()
        self._lock = threading.Lock()
        self._tokens = float(max(rate, 0))
        self._last = time.monotonic()

    def take(self, n: int) -> bool:
        """Spend ``n`` bytes of budget, waiting for it; False if stopped meanwhile."""
        if self.rate <= 0:
            return not self._stop.is_set()
        with self._lock:
            now = time.monotonic()
            self._tokens = min(float(self.rate), self._tokens + (now - self._last) * self.rate)
            self._last = now
            self._tokens -= n
            wait = -self._tokens / self.rate if self._tokens < 0 else 0.0
        if wait > 0:
            return not self._stop.wait(wait)
        return not self._stop.is_set()


def verify_blob(
    backend: Store, digest: str, size: int | None = None, limiter: RateLimiter | None = None
) -> Verdict | None:
    """Hash ``digest``'s bytes in ``backend`` and compare (and with ``size``, the size).

    None when the blob is not in the backend, or the limiter was stopped; Unavailable
    (raised) when the backend cannot be read now.
    """
    parsed = digests.parse(digest)
    h = hashlib.new(parsed.algorithm)
    try:
        reader = backend.reader_at(digest)
    except NotFound:
        return None
    got = 0
    try:
        total = reader.size
        offset = 0
        while offset < total:
            n = min(CHUNK, total - offset)
            if limiter is not None and not limiter.take(n):
                return None
            chunk = reader.read_at(offset, n)
            if not chunk:
                break
            h.update(chunk)
            offset += len(chunk)
        got = offset
    except Unavailable:
        raise  # an outage (S3 unreachable) says nothing about the bytes
    except (OSError, ContentError) as err:
        return Verdict(digest, got, False, f"read failed at byte {got}: {err}")
    finally:
        reader.close()
    actual = f"{parsed.algorithm}:{h.hexdigest()}"
    if got != total:
        return Verdict(digest, got, False, f"short read: {got} of {total} bytes")
    if actual != digest:
        return Verdict(digest, got, False, f"bytes hash to {actual}")
    if size is not None and size != total:
        return Verdict(digest, total, False, f"size {total} on disk, {size} recorded")
    return Verdict(digest, total, True)


# -- the blob_health table -----------------------------------------------------


def load_quarantined(conn: Conn) -> dict[str, str]:
    """digest -> reason of every quarantined blob."""
    return dict(
        conn.execute(
            "SELECT digest, reason FROM blob_health WHERE quarantined_at IS NOT NULL"
        ).fetchall()
    )


def quarantined(core: Core) -> list[Quarantined]:
    with core.view() as conn:
        rows = conn.execute(
            "SELECT digest, quarantined_at, reason FROM blob_health"
            " WHERE quarantined_at IS NOT NULL ORDER BY digest"
        ).fetchall()
    return [Quarantined(d, at, reason or "") for d, at, reason in rows]


def mark_verified(core: Core, verified: Iterable[str], at_ns: int | None = None) -> None:
    """Record that these digests' bytes hashed to them just now."""
    rows = [(d, at_ns if at_ns is not None else core.now_ns()) for d in verified]
    if not rows:
        return
    with core.sql.write() as conn:
        conn.executemany(
            "INSERT INTO blob_health (digest, verified_at) VALUES (?, ?)"
            " ON CONFLICT(digest) DO UPDATE SET verified_at = excluded.verified_at",
            rows,
        )


def data_loss(digest: str, reason: str) -> DataLoss:
    return DataLoss(f"content {digest} is quarantined ({reason}); ingest it again to repair")


def quarantine(core: Core, digest: str, reason: str) -> str | None:
    """Quarantine ``digest``: mark it (reads fail from now on), then move its bytes aside.

    Returns where the backend moved the bytes (None: it has none, or cannot move
    them). Publishes ``/content/corrupt`` in every namespace that records it.
    Idempotent: a digest already quarantined keeps its first reason.
    """
    now = core.now_ns()
    with core.sql.write() as conn:
        conn.execute(
            "INSERT INTO blob_health (digest, quarantined_at, reason) VALUES (?, ?, ?)"
            " ON CONFLICT(digest) DO UPDATE SET"
            " quarantined_at = COALESCE(blob_health.quarantined_at, excluded.quarantined_at),"
            " reason = COALESCE(blob_health.reason, excluded.reason)",
            (digest, now, reason),
        )
        namespaces = [
            r[0] for r in conn.execute("SELECT namespace FROM blobs WHERE digest = ?", (digest,))
        ]
        (reason,) = conn.execute(
            "SELECT reason FROM blob_health WHERE digest = ?", (digest,)
        ).fetchone()
    core.quarantined[digest] = reason
    moved: str | None = None
    backend = core.backend
    if isinstance(backend, Quarantining):
        try:
            moved = backend.quarantine(digest)
        except (OSError, ContentError) as err:
            log.error("could not move %s aside: %s", digest, err)
    log.error(
        "blob %s quarantined: %s",
        digest,
        reason,
        extra={"fields": {"digest": digest, "reason": reason, "moved_to": moved or ""}},
    )
    for ns in namespaces:
        core.publish(ns, TOPIC_CONTENT_CORRUPT, ContentCorrupt(digest, reason))
    return moved


def lift(core: Core, conn: Conn, digest: str) -> bool:
    """In a commit's transaction: good bytes for ``digest`` were just stored. True if it
    was quarantined (the caller drops it from :attr:`Core.quarantined` after commit)."""
    if digest not in core.quarantined:
        return False
    conn.execute(
        "UPDATE blob_health SET quarantined_at = NULL, reason = NULL, verified_at = ?"
        " WHERE digest = ?",
        (core.now_ns(), digest),
    )
    return True
