"""Thread pools kept for the life of the process, made on first use.

Several places hand work to a few long-lived threads (the local store's pwrite
helpers, the daemon's fetch downloads): making a pool per call waited for its
threads to start. A forked child has none of its parent's threads, so it drops
the parent's pool and makes its own on first use.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

__all__ = ["SharedPool"]


class SharedPool:
    """A :class:`ThreadPoolExecutor` of ``workers`` threads named ``name``-N, made on
    first :meth:`get` and kept; a forked child starts without it."""

    def __init__(self, workers: int, name: str) -> None:
        self._workers = workers
        self._name = name
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        os.register_at_fork(after_in_child=self._forget)

    def get(self) -> ThreadPoolExecutor:
        pool = self._pool
        if pool is None:
            with self._lock:
                pool = self._pool
                if pool is None:
                    pool = self._pool = ThreadPoolExecutor(
                        self._workers, thread_name_prefix=self._name
                    )
        return pool

    def _forget(self) -> None:
        self._pool = None
        self._lock = threading.Lock()  # the parent's may have been held at the fork
