"""The online scrubber: re-verify every recorded blob's bytes, oldest-verified first.

One background thread hashes blobs within a bytes/s budget. A blob is due when
it was never verified or last verified more than ``interval`` ago; the most
overdue go first, and each verification is recorded in ``blob_health``
(:mod:`contentd.metadata.health`), so a restart resumes where the last run
stopped. A blob whose bytes do not hash to its digest is quarantined (logged
at ERROR, ``/content/corrupt`` published). When nothing is due the thread
sleeps until the next blob falls due (at most ``interval``, re-checked at least
every :data:`MAX_SLEEP` seconds so new blobs are not left for a whole interval).

Like fsck it takes no lock: writers never wait for it.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Final

from contentd.metadata import health
from contentd.metadata.core import Core

__all__ = ["MAX_SLEEP", "ScrubConfig", "ScrubStatus", "Scrubber"]

log = logging.getLogger(__name__)

#: the longest the scrubber sleeps before looking for due blobs again
MAX_SLEEP: Final = 300.0
_NS: Final = 1_000_000_000


@dataclass(frozen=True)
class ScrubConfig:
    """``interval`` seconds between verifications of one blob (0: no scrubbing);
    ``bytes_per_second`` the hashing budget (0: none); ``startup_delay`` seconds
    before the first blob; ``batch`` blobs picked per query."""

    interval: float = 24 * 3600.0
    bytes_per_second: int = 16 << 20
    startup_delay: float = 60.0
    batch: int = 32


@dataclass(frozen=True)
class ScrubStatus:
    enabled: bool
    interval: float
    bytes_per_second: int
    blobs: int  # distinct recorded digests
    verified: int  # of which verified within the interval
    oldest_verified_ns: int | None  # None: some were never verified (or there are none)
    scrubbed_blobs: int
    scrubbed_bytes: int
    corrupt_found: int


class Scrubber:
    def __init__(self, core: Core, config: ScrubConfig | None = None) -> None:
        self.core = core
        self.config = config or ScrubConfig()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._limiter = health.RateLimiter(self.config.bytes_per_second, stop=self._stop)
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.scrubbed_blobs = 0
        self.scrubbed_bytes = 0
        self.corrupt_found = 0

    @property
    def enabled(self) -> bool:
        return self.config.interval > 0

    def start(self) -> None:
        if not self.enabled or self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="contentd-scrub", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(10)

    close = stop

    def wake(self) -> None:
        """Look for due blobs now (tests, and after a repair)."""
        self._wake.set()

    # -- the loop ----------------------------------------------------------------------

    def _run(self) -> None:
        if self._stop.wait(self.config.startup_delay):
            return
        while not self._stop.is_set():
            try:
                due = self._due()
                for digest in due:
                    if self._stop.is_set():
                        return
                    self.scrub_one(digest)
                if due:
                    continue
                pause = self._until_next_due()
            except Exception as err:  # a closed database at shutdown, a backend error
                if self._stop.is_set():
                    return
                log.warning("scrub: %s", err)
                pause = 10.0
            self._wake.wait(pause)
            self._wake.clear()

    def scrub_one(self, digest: str) -> health.Verdict | None:
        """Verify one blob now (within the budget); quarantine it if it is corrupt."""
        verdict = health.verify_blob(self.core.backend, digest, None, self._limiter)
        if verdict is None:
            if not self._stop.is_set() and self._recorded(digest):
                # recorded, but the backend has no bytes: that is data loss too
                verdict = health.Verdict(digest, 0, False, "no blob in the backend")
            else:
                return None
        with self._lock:
            self.scrubbed_blobs += 1
            self.scrubbed_bytes += verdict.size
        if verdict.ok:
            health.mark_verified(self.core, [digest])
        else:
            with self._lock:
                self.corrupt_found += 1
            health.quarantine(self.core, digest, f"scrub: {verdict.problem}")
        return verdict

    def _recorded(self, digest: str) -> bool:
        with self.core.view() as conn:
            row = conn.execute("SELECT 1 FROM blobs WHERE digest = ? LIMIT 1", (digest,))
            return row.fetchone() is not None

    def _due(self) -> list[str]:
        cutoff = self.core.now_ns() - int(self.config.interval * _NS)
        with self.core.view() as conn:
            rows = conn.execute(
                "SELECT b.digest FROM (SELECT DISTINCT digest FROM blobs) AS b"
                " LEFT JOIN blob_health AS h ON h.digest = b.digest"
                " WHERE h.quarantined_at IS NULL"
                " AND (h.verified_at IS NULL OR h.verified_at < ?)"
                " ORDER BY COALESCE(h.verified_at, 0), b.digest LIMIT ?",
                (cutoff, self.config.batch),
            ).fetchall()
        return [r[0] for r in rows]

    def _until_next_due(self) -> float:
        with self.core.view() as conn:
            (oldest,) = conn.execute(
                "SELECT MIN(h.verified_at) FROM (SELECT DISTINCT digest FROM blobs) AS b"
                " JOIN blob_health AS h ON h.digest = b.digest WHERE h.quarantined_at IS NULL"
            ).fetchone()
        if oldest is None:  # nothing verified yet: look again soon for new blobs
            return float(min(self.config.interval, MAX_SLEEP))
        due_in = (oldest + int(self.config.interval * _NS) - self.core.now_ns()) / _NS
        return float(min(max(due_in, 1.0), self.config.interval, MAX_SLEEP))

    # -- status ------------------------------------------------------------------------

    def status(self) -> ScrubStatus:
        cutoff = self.core.now_ns() - int(self.config.interval * _NS)
        with self.core.view() as conn:
            blobs, verified, never, oldest = conn.execute(
                "SELECT COUNT(*),"
                " COALESCE(SUM(CASE WHEN h.verified_at >= ? THEN 1 ELSE 0 END), 0),"
                " COALESCE(SUM(CASE WHEN h.verified_at IS NULL THEN 1 ELSE 0 END), 0),"
                " MIN(h.verified_at)"
                " FROM (SELECT DISTINCT digest FROM blobs) AS b"
                " LEFT JOIN blob_health AS h ON h.digest = b.digest",
                (cutoff,),
            ).fetchone()
        with self._lock:
            return ScrubStatus(
                enabled=self.enabled,
                interval=self.config.interval,
                bytes_per_second=self.config.bytes_per_second,
                blobs=int(blobs),
                verified=int(verified),
                oldest_verified_ns=None if never or oldest is None else int(oldest),
                scrubbed_blobs=self.scrubbed_blobs,
                scrubbed_bytes=self.scrubbed_bytes,
                corrupt_found=self.corrupt_found,
            )
