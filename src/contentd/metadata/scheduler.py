"""The GC scheduler (spec §4.9, containerd's ``io.containerd.gc.v1.scheduler``).

It counts metadata mutations and deletions and runs the collector:

- once at ``startup_delay`` (never, when that is 0);
- then every ``interval`` seconds, where ``interval = avg/pause - avg`` for
  the average collection time ``avg`` (1 s before the first collection), so
  collections take at most ``pause_threshold`` of wall time - but a
  scheduled collection is skipped unless it was triggered, a deletion
  happened, or ``mutation_threshold`` mutations happened since the last;
- ``schedule_delay`` after a trigger, after ``deletion_threshold``
  deletions, or (when nothing is scheduled) after any deletion or
  ``mutation_threshold`` mutations.

:meth:`Scheduler.trigger` with ``wait=True`` returns the result of a
collection that started after the call (lease delete with ``sync``).
"""

from __future__ import annotations

import logging
import queue
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Final

from contentd.content.errors import ContentError, FailedPrecondition, InvalidArgument, Unknown
from contentd.metadata.gc import GCResult

__all__ = ["Scheduler", "SchedulerConfig", "parse_duration"]

log = logging.getLogger(__name__)

_UNITS: Final = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,  # U+00B5
    "μs": 1e-6,  # U+03BC
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
_TERM = re.compile(r"(\d*)(?:\.(\d*))?([a-zµμ]+)")


def parse_duration(value: str | float | int) -> float:
    """Seconds from a number of seconds or a Go duration string (``"100ms"``, ``"1h2m"``)."""
    if isinstance(value, bool):
        raise InvalidArgument(f"invalid duration {value!r}")
    if isinstance(value, int | float):
        return float(value)
    text = value.strip()
    original = text
    sign = 1.0
    if text[:1] in "+-" and text:
        sign = -1.0 if text[0] == "-" else 1.0
        text = text[1:]
    if text == "0":
        return 0.0
    if not text:
        raise InvalidArgument(f'time: invalid duration "{original}"')
    total = 0.0
    pos = 0
    while pos < len(text):
        m = _TERM.match(text, pos)
        if m is None or not (m.group(1) or m.group(2)):
            raise InvalidArgument(f'time: invalid duration "{original}"')
        unit = _UNITS.get(m.group(3))
        if unit is None:
            raise InvalidArgument(f'time: unknown unit "{m.group(3)}" in duration "{original}"')
        number = float(f"{m.group(1) or 0}.{m.group(2) or 0}")
        total += number * unit
        pos = m.end()
    return sign * total


@dataclass(frozen=True)
class SchedulerConfig:
    """containerd's scheduler config; durations in seconds."""

    pause_threshold: float = 0.02
    deletion_threshold: int = 0
    mutation_threshold: int = 100
    schedule_delay: float = 0.0
    startup_delay: float = 0.1

    @classmethod
    def from_mapping(cls, config: Mapping[str, object]) -> SchedulerConfig:
        """From TOML-style keys; durations may be seconds or Go strings (``"100ms"``)."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(config) - known)
        if unknown:
            raise InvalidArgument(f"unknown gc scheduler options: {', '.join(unknown)}")
        values: dict[str, float | int] = {}
        for key, value in config.items():
            try:
                if key in ("schedule_delay", "startup_delay"):
                    values[key] = parse_duration(value)  # type: ignore[arg-type]
                elif key == "pause_threshold":
                    values[key] = float(value)  # type: ignore[arg-type]
                else:
                    if isinstance(value, bool) or not isinstance(value, int):
                        raise ValueError(value)
                    values[key] = value
            except (TypeError, ValueError):
                raise InvalidArgument(f"gc scheduler option {key}: bad value {value!r}") from None
        return cls(**values)  # type: ignore[arg-type]


class _Waiter:
    def __init__(self) -> None:
        self.done = threading.Event()
        self.result: GCResult | None = None
        self.error: BaseException | None = None


_STOP = object()
#: counts changed in a way that may bring the next collection forward
_WAKE = object()


class Scheduler:
    """Runs ``collect`` on its own thread when the policy says so."""

    def __init__(
        self,
        collect: Callable[[], GCResult],
        config: SchedulerConfig | None = None,
        *,
        register: Callable[[Callable[[bool], None]], None] | None = None,
        unregister: Callable[[Callable[[bool], None]], None] | None = None,
    ) -> None:
        config = config or SchedulerConfig()
        self._collect = collect
        self._register = register
        self._unregister = unregister
        self.pause_threshold = min(max(config.pause_threshold, 0.0), 0.5)
        self.deletion_threshold = config.deletion_threshold
        self.mutation_threshold = max(config.mutation_threshold, 0)
        self.schedule_delay = max(config.schedule_delay, 0.0)
        self.startup_delay = max(config.startup_delay, 0.0)
        self._events: queue.SimpleQueue[object] = queue.SimpleQueue()
        # Mutations are counted here, not queued: most change nothing about the schedule
        # (a collection is already due, or the counts are below the thresholds), and a
        # queue entry per committed blob and thread wake-up was ~9% of a small ingest.
        self._count_lock = threading.Lock()
        self._mutations = 0
        self._deletions = 0
        self._scheduled = self.startup_delay > 0
        self._wake_pending = False
        self._waiters: list[_Waiter] = []
        # held while a collection runs, so a waiter always waits for a collection
        # that starts after it registered
        self._waiter_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._state_lock = threading.Lock()
        # collections so far, the last result, and the current interval (seconds)
        self.collections = 0
        self.last_result: GCResult | None = None
        self.interval = 1.0

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        with self._state_lock:
            if self._thread is not None:
                raise FailedPrecondition("gc scheduler already started")
            if self._register is not None:
                self._register(self._on_mutation)
            self._thread = threading.Thread(target=self._run, name="contentd-gc", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        with self._state_lock:
            thread = self._thread
            if thread is None:
                return
            if self._unregister is not None:
                self._unregister(self._on_mutation)
            self._events.put(_STOP)
            thread.join()
            self._thread = None
        with self._waiter_lock:
            waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            waiter.error = FailedPrecondition("gc scheduler stopped")
            waiter.done.set()

    def trigger(self, wait: bool = False, timeout: float | None = None) -> GCResult | None:
        """Ask for a collection now (after ``schedule_delay``).

        With ``wait``, block until a collection that started after this call
        finishes and return its result; a failed collection raises.
        """
        if not self.running:
            raise FailedPrecondition("gc scheduler is not running")
        waiter = _Waiter() if wait else None
        if waiter is not None:
            with self._waiter_lock:
                self._waiters.append(waiter)
        self._events.put((time.monotonic(), False, False))
        if waiter is None:
            return None
        if not waiter.done.wait(timeout):
            raise Unknown("timed out waiting for garbage collection")
        if waiter.error is not None:
            if isinstance(waiter.error, ContentError):
                raise waiter.error
            raise Unknown(f"gc failed: {waiter.error}") from waiter.error
        return waiter.result

    def _on_mutation(self, dirty: bool) -> None:
        with self._count_lock:
            self._mutations += 1
            if dirty:
                self._deletions += 1
            wake = not self._wake_pending and self._due(
                self._deletions, self._mutations, scheduled=self._scheduled
            )
            if wake:
                self._wake_pending = True
        if wake:
            self._events.put(_WAKE)

    def _counts(self, *, reset: bool = False) -> tuple[int, int]:
        """``(deletions, mutations)`` since the last collection (zeroed with ``reset``)."""
        with self._count_lock:
            counts = self._deletions, self._mutations
            if reset:
                self._deletions = self._mutations = 0
            return counts

    def _set_scheduled(self, scheduled: bool) -> None:
        with self._count_lock:
            self._scheduled = scheduled
            self._wake_pending = False

    # -- the loop --------------------------------------------------------

    def _due(self, deletions: int, mutations: int, *, scheduled: bool) -> bool:
        """Whether the counts call for a collection ``schedule_delay`` from now."""
        if self.deletion_threshold > 0 and deletions >= self.deletion_threshold:
            return True
        if scheduled:
            return False
        if self.deletion_threshold == 0 and deletions > 0:
            return True
        return self.mutation_threshold > 0 and mutations >= self.mutation_threshold

    def _run(self) -> None:
        gc_time = 0.0
        collections = 0
        triggered = False
        last: float | None = None
        next_at: float | None = None
        if self.startup_delay > 0:
            next_at = time.monotonic() + self.startup_delay
        while True:
            self._set_scheduled(next_at is not None)
            timeout = None if next_at is None else max(0.0, next_at - time.monotonic())
            try:
                event = self._events.get(timeout=timeout)
            except queue.Empty:
                event = None
            if event is _STOP:
                return
            if event is not None:
                if event is not _WAKE:
                    assert isinstance(event, tuple)
                    ts = event[0]
                    if last is not None and last > ts:
                        continue  # already covered by the collection that just ran
                    triggered = True
                deletions, mutations = self._counts()
                if triggered or self._due(deletions, mutations, scheduled=next_at is not None):
                    soon = time.monotonic() + self.schedule_delay
                    if next_at is None or next_at > soon:
                        next_at = soon
                continue
            # the timer fired
            deletions, mutations = self._counts()
            if (
                not triggered
                and last is not None
                and deletions == 0
                and (self.mutation_threshold == 0 or mutations < self.mutation_threshold)
            ):
                next_at = time.monotonic() + self.interval
                continue
            reason = "request" if triggered else "startup" if last is None else "changes"
            with self._waiter_lock:
                try:
                    result = self._collect()
                except Exception as err:
                    log.error("garbage collection failed: %s", err)
                    last = time.monotonic()
                    next_at = last + self.interval + 1.0
                    waiters, self._waiters = self._waiters, []
                    for waiter in waiters:
                        waiter.error = err
                        waiter.done.set()
                    continue
                _log_collection(result, reason, deletions, mutations)
                gc_time += result.elapsed
                collections += 1
                self.collections = collections
                self.last_result = result
                triggered = False
                # what changed before the collection ended is covered by it
                self._counts(reset=True)
                if self.pause_threshold > 0:
                    avg = gc_time / collections
                    self.interval = avg / self.pause_threshold - avg
                last = time.monotonic()
                next_at = last + self.interval
                waiters, self._waiters = self._waiters, []
                for waiter in waiters:
                    waiter.result = result
                    waiter.done.set()


def _log_collection(result: GCResult, reason: str, deletions: int, mutations: int) -> None:
    """One info line per collection: what triggered it, what it removed, how long it took."""
    records = sum(len(v) for v in result.content.values())
    log.info(
        "garbage collected",
        extra={
            "fields": {
                "trigger": reason,
                "deletions": deletions,
                "mutations": mutations,
                "records": records,
                "blobs": len(result.backend_blobs),
                "bytes": result.bytes_freed,
                "duration": f"{result.duration:.3f}s",
            }
        },
    )
