"""One timer thread per server for call deadlines (``grpc-timeout``).

A heap of ``(when, action)``; entries of calls that ended in time stay until
their time comes and then do nothing (the action checks), which keeps adding a
deadline to one ``heappush``.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable

from contentd.wire.threads import start_thread

__all__ = ["Deadlines"]

log = logging.getLogger("contentd.wire")


class Deadlines:
    def __init__(self, name: str = "contentd-deadlines") -> None:
        self._name = name
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._stopped = False

    def add(self, when: float, action: Callable[[], None]) -> None:
        """Run ``action`` at ``time.monotonic()`` ``when`` (on the timer thread)."""
        with self._cond:
            if self._stopped:
                return
            seq = next(self._seq)
            heapq.heappush(self._heap, (when, seq, action))
            if self._thread is None:
                self._thread = start_thread(self._run, self._name)
            elif self._heap[0][1] == seq:  # the timer sleeps until a later deadline
                self._cond.notify()

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._heap.clear()
            self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                while True:
                    if self._stopped:
                        return
                    now = time.monotonic()
                    if self._heap and self._heap[0][0] <= now:
                        _, _, action = heapq.heappop(self._heap)
                        break
                    self._cond.wait(self._heap[0][0] - now if self._heap else None)
            try:
                action()
            except Exception:
                log.exception("deadline action failed")
