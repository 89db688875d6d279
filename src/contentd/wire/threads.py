"""Threads of the native engine, with the process's termination signals blocked.

A process-directed SIGTERM/SIGINT may be delivered to any thread that does not
block it; Python runs its handler on the main thread only when that thread
wakes, and a main thread asleep in ``Event.wait`` is woken only by a signal
delivered to itself (``contentd serve`` then never shut down). The engine's
own threads therefore block them, as grpcio's C threads do.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from typing import Any, Final

__all__ = ["BLOCKED", "block_signals", "start_thread"]

BLOCKED: Final = frozenset({signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT})


def block_signals() -> None:
    """Block :data:`BLOCKED` in the calling thread (a thread pool's ``initializer``)."""
    signal.pthread_sigmask(signal.SIG_BLOCK, BLOCKED)


def _blocked(target: Callable[..., Any], args: tuple[Any, ...]) -> None:
    block_signals()
    target(*args)


def start_thread(target: Callable[..., Any], name: str, *args: Any) -> threading.Thread:
    """Start a daemon thread running ``target(*args)`` with :data:`BLOCKED` blocked."""
    thread = threading.Thread(target=_blocked, args=(target, args), name=name, daemon=True)
    thread.start()
    return thread
