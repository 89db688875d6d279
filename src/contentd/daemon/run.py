"""Running the daemon in the foreground until SIGTERM or SIGINT."""

from __future__ import annotations

import logging
import os
import signal
import threading
from types import FrameType

from contentd.daemon.server import Daemon

__all__ = ["run_until_signalled"]

log = logging.getLogger("contentd")


def run_until_signalled(daemon: Daemon) -> int:
    """Start ``daemon``, serve until SIGTERM/SIGINT, stop gracefully; returns the exit status.

    A second signal during shutdown exits at once (status 130 for SIGINT, 143 for SIGTERM).
    """
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if stop.is_set():
            log.warning("second %s during shutdown: exiting now", name)
            os._exit(128 + signum)
        log.info("received %s, shutting down", name, extra={"fields": {"signal": name}})
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        daemon.start()
        try:
            while not stop.wait(3600):
                pass
        finally:
            daemon.stop()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0
