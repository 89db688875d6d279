"""In-process ref locks: one open writer per ref.

Like containerd's, the table is invisible to other processes. Unlike
containerd's (one table per process), there is one table per store root, held
by the root's :class:`~contentd.local.roots.RootState`: every store of the
process on that root shares it, and stores on different roots do not block
each other.
"""

from __future__ import annotations

import random
import threading
import time
from datetime import datetime

from contentd.content.errors import Unavailable
from contentd.content.types import utcnow

__all__ = ["TRIES", "RefLocks", "format_duration"]

TRIES = 10


def format_duration(seconds: float) -> str:
    """A duration the way Go prints one (``1.5s``, ``12.3ms``, ``2m3s``)."""
    if seconds < 1e-6:
        return f"{seconds * 1e9:.0f}ns"
    if seconds < 1e-3:
        return f"{seconds * 1e6:g}µs"
    if seconds < 1:
        return f"{round(seconds * 1e3, 6):g}ms"
    minutes, secs = divmod(seconds, 60)
    hours, minutes = divmod(int(minutes), 60)
    text = f"{round(secs, 9):g}s"
    if hours:
        return f"{hours}h{minutes}m{text}"
    if minutes:
        return f"{minutes}m{text}"
    return text


class RefLocks:
    """The ref locks of one store root: ref -> when it was taken."""

    __slots__ = ("_held", "_mutex")

    def __init__(self) -> None:
        self._held: dict[str, tuple[float, datetime]] = {}
        self._mutex = threading.Lock()

    def try_lock(self, ref: str) -> None:
        with self._mutex:
            held = self._held.get(ref)
            if held is None:
                self._held[ref] = (time.monotonic(), utcnow())
                return
        since_mono, since = held
        raise Unavailable(
            f"ref {ref} locked for {format_duration(time.monotonic() - since_mono)} "
            f"(since {since.isoformat()})"
        )

    def lock(self, ref: str) -> None:
        """Take the lock, retrying briefly (about a second at most) before Unavailable."""
        for attempt in range(TRIES):
            try:
                self.try_lock(ref)
                return
            except Unavailable:
                if attempt == TRIES - 1:
                    raise
            time.sleep(random.uniform(0, 2**attempt) / 1000)

    def unlock(self, ref: str) -> None:
        with self._mutex:
            self._held.pop(ref, None)

    def is_locked(self, ref: str) -> bool:
        with self._mutex:
            return ref in self._held
