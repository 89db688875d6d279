"""Ctrl-C for the ``contentd`` process: the first interrupt stops the command, a second one
ends the process at once.

The first SIGINT raises KeyboardInterrupt in the main thread, as Python's own
handler does, and is also remembered (:func:`interrupted`): gRPC runs Python code
in finalizers, where an exception is printed and dropped, so a command that must
not go on after Ctrl-C (an ingest must not commit) checks the flag too. Any later
SIGINT (a second Ctrl-C, or ``timeout -s INT``, which signals the process and its
group) writes one line and ``os._exit(130)``: no unwinding, no finalizers that can
block (grpc's channel finalizer can wait forever on a lock an interrupt left held).
Without a second one, a command still winding down :data:`UNWIND_LIMIT` seconds after
the first ends the same way.

:func:`read_interruptibly` reads a pipe or terminal so that Ctrl-C stops the read at
once, whichever thread the kernel delivered the signal to (with gRPC's threads
about, often not the main one, whose ``read`` then goes on waiting).
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import stat
import sys
import threading
from collections.abc import Iterator
from types import FrameType
from typing import BinaryIO

from contentd.cli.errors import EXIT_INTERRUPTED

__all__ = [
    "exit_now",
    "install",
    "interrupted",
    "raise_if_interrupted",
    "read_interruptibly",
]

_count = 0
_installed = False


#: seconds the command may take to wind down after the first Ctrl-C before the process
#: ends anyway: the exception can land inside grpcio's Python code with one of its locks
#: held, and the cancel that follows then waits for that lock for ever (seen under load:
#: ``content ingest`` still running 20 s after SIGINT). Nothing is lost by ending then:
#: nothing commits after an interrupt, and the daemon keeps the ingest for a re-run.
UNWIND_LIMIT = 10.0


def _handler(signum: int, frame: FrameType | None) -> None:
    global _count
    _count += 1
    if _count > 1:
        with contextlib.suppress(OSError):
            os.write(2, b"contentd: interrupted again; exiting\n")
        os._exit(EXIT_INTERRUPTED)
    timer = threading.Timer(UNWIND_LIMIT, _unwind_took_too_long)
    timer.daemon = True  # a command that ends in time is not held up by it
    timer.start()
    raise KeyboardInterrupt


def _unwind_took_too_long() -> None:
    note = f"contentd: interrupted; still winding down after {UNWIND_LIMIT:g}s, exiting\n"
    with contextlib.suppress(OSError):
        os.write(2, note.encode())
    exit_now(EXIT_INTERRUPTED)


def install() -> None:
    """Use this module's SIGINT handler (the ``contentd`` process only: in a host
    process, such as a test run in-process, the host's handler stays)."""
    global _installed
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signal.signal(signal.SIGINT, _handler)
        _installed = True


def interrupted() -> bool:
    """Whether an interrupt arrived (the exception may have been swallowed)."""
    return _count > 0


def raise_if_interrupted() -> None:
    if _count:
        raise KeyboardInterrupt


@contextlib.contextmanager
def _wakeup_pipe() -> Iterator[int | None]:
    """A pipe Python's C-level signal handler writes to from any thread (None when this
    is not the main thread, or a wakeup fd is already in use)."""
    try:
        r, w = os.pipe()
    except OSError:
        yield None
        return
    try:
        os.set_blocking(w, False)
        try:
            old = signal.set_wakeup_fd(w, warn_on_full_buffer=False)
        except ValueError:  # not the main thread
            yield None
            return
        if old != -1:  # somebody else's (an event loop): leave it
            signal.set_wakeup_fd(old)
            yield None
            return
        try:
            yield r
        finally:
            signal.set_wakeup_fd(-1)
    finally:
        os.close(r)
        os.close(w)


def read_interruptibly(source: BinaryIO, size: int) -> Iterator[bytes]:
    """The chunks of ``source`` (``size`` bytes each, the last one shorter) until its end.

    For a pipe or terminal in the ``contentd`` process each read waits in
    ``select`` on the input and a signal wakeup pipe, so Ctrl-C ends the wait at once
    and raises KeyboardInterrupt; elsewhere this is a plain read loop.
    """
    try:
        fd = source.fileno()
        regular = stat.S_ISREG(os.fstat(fd).st_mode)
    except (AttributeError, ValueError, OSError):
        fd, regular = -1, True
    if regular or not _installed:
        while chunk := source.read(size):
            raise_if_interrupted()
            yield chunk
        raise_if_interrupted()
        return
    buf = bytearray()  # a pipe gives at most its buffer (64 KiB) a read: fill up to size
    with _wakeup_pipe() as wake:
        while True:
            raise_if_interrupted()
            if wake is not None:
                ready, _, _ = select.select([fd, wake], [], [])
                if wake in ready:
                    with contextlib.suppress(OSError):
                        os.read(wake, 64)
                    raise_if_interrupted()
                    continue  # another signal: wait again
            chunk = os.read(fd, size - len(buf))
            if chunk:
                buf += chunk
                if len(buf) < size:
                    continue
            if buf:
                yield bytes(buf)
                buf.clear()
            if not chunk:
                break
    raise_if_interrupted()


def exit_now(status: int) -> None:
    """Flush stdout and stderr and end the process without running finalizers
    (gRPC's can block once an interrupt has broken one of its calls)."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(status)
