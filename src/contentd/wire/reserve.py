"""A spare file descriptor, so a server out of descriptors can still say no.

When a process reaches its descriptor limit, ``accept()`` fails with EMFILE
(or ENFILE, the system's limit) and the connection stays queued in the
listener's backlog: the listener stays readable, so a loop that retries spins
(or, with a sleep, floods its log), and the client waits for a handshake that
never comes until its deadline passes. The remedy: keep one descriptor open on
``/dev/null`` and, when accept runs out, close it, accept the waiting
connection, close that at once (the client sees the connection end: gRPC's
UNAVAILABLE, retried by its own policy) and open the spare again.
"""

from __future__ import annotations

import errno
import logging
import os
import socket
import time
from typing import Final

__all__ = ["NO_DESCRIPTORS", "DescriptorReserve"]

log = logging.getLogger(__name__)

#: errnos of a process out of file descriptors (its own limit, or the system's)
NO_DESCRIPTORS: Final = frozenset({errno.EMFILE, errno.ENFILE})

#: at most one warning per this many seconds while descriptors stay short
_LOG_EVERY: Final = 10.0


class DescriptorReserve:
    """One spare descriptor and the refusals made with it (use from one thread)."""

    def __init__(self) -> None:
        self._fd: int | None = None
        self._refused = 0
        self._logged_at: float | None = None
        self._take()

    def _take(self) -> None:
        if self._fd is None:
            try:
                self._fd = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
            except OSError:
                self._fd = None

    def refuse(self, listener: socket.socket) -> bool:
        """Out of descriptors: accept and close the next connection waiting on
        ``listener``, using the spare. False when there was none to spend (the
        caller should back off before it tries ``listener`` again)."""
        self._take()
        if self._fd is None:
            self._note()
            return False
        os.close(self._fd)
        self._fd = None
        try:
            sock, _ = listener.accept()
        except OSError:
            refused = False
        else:
            sock.close()
            refused = True
            self._refused += 1
        self._take()
        self._note()
        return refused

    def _note(self) -> None:
        now = time.monotonic()
        if self._logged_at is None or now - self._logged_at >= _LOG_EVERY:
            self._logged_at = now
            log.warning(
                "out of file descriptors: refusing new connections (%d refused so far)",
                self._refused,
            )

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
