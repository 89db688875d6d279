"""Building the gRPC server contentd's services run in.

:func:`build_server` makes a synchronous grpcio server (a thread pool; every
RPC, streams included, holds one worker while it runs) with containerd's
16 MiB message limits, and binds it to a unix socket or a TCP address. The
caller registers nothing by hand: each service passed in registers itself.

On glibc, start-up also raises malloc's mmap and trim thresholds
(:func:`tune_malloc`): 1 MiB message buffers then come from the heap instead
of a fresh ``mmap``/``munmap`` pair each, which measured about four times
faster for 1 MiB Write/Read messages on the development machine.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import threading
from collections.abc import Iterable, Sequence
from concurrent import futures
from typing import Any, Final, Protocol

import grpc

__all__ = [
    "DEFAULT_MAX_WORKERS",
    "MAX_MESSAGE_SIZE",
    "SOCKET_MODE",
    "Service",
    "build_server",
    "listen",
    "server_options",
    "tune_malloc",
    "unix_path",
]

log = logging.getLogger(__name__)

#: containerd's gRPC message limit, both ways.
MAX_MESSAGE_SIZE: Final = 16 << 20
#: Worker threads: an open Write stream holds one for as long as the client keeps it open.
DEFAULT_MAX_WORKERS: Final = 128
#: Mode of a unix socket after bind (containerd: 0660, group-accessible).
SOCKET_MODE: Final = 0o660

_M_TRIM_THRESHOLD: Final = -1
_M_MMAP_THRESHOLD: Final = -3
_MMAP_THRESHOLD: Final = 64 << 20
_TRIM_THRESHOLD: Final = 128 << 20


class Service(Protocol):
    """A gRPC service that adds itself to a server (like containerd's ``Register``)."""

    def register(self, server: grpc.Server) -> None: ...


def server_options(options: Sequence[tuple[str, Any]] = ()) -> list[tuple[str, Any]]:
    """containerd's limits, with ``options`` added (or overriding them)."""
    merged: dict[str, Any] = {
        "grpc.max_send_message_length": MAX_MESSAGE_SIZE,
        "grpc.max_receive_message_length": MAX_MESSAGE_SIZE,
        # one process per TCP port: a second server on the same port must fail to bind
        "grpc.so_reuseport": 0,
    }
    merged.update(options)
    return list(merged.items())


def build_server(
    address: str,
    services: Iterable[Service],
    *,
    max_workers: int = DEFAULT_MAX_WORKERS,
    options: Sequence[tuple[str, Any]] = (),
) -> grpc.Server:
    """A server with ``services`` registered and bound to ``address`` (not started).

    ``address`` is ``unix:<path>``, ``unix://<abs path>``, a bare path
    starting with ``/``, or ``host:port`` for TCP (listen on 127.0.0.1 in
    tests). A TCP port 0 picks a free port: bind with :func:`listen` instead
    to learn it.
    """
    tune_malloc()
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="contentd-grpc"),
        options=server_options(options),
    )
    for service in services:
        service.register(server)
    listen(server, address)
    return server


def listen(server: grpc.Server, address: str) -> int:
    """Bind ``server`` to ``address`` (see :func:`build_server`); returns the TCP port (0 for unix).

    A unix socket is created at once and its mode set to :data:`SOCKET_MODE`;
    a stale socket file at the path is replaced.
    """
    path = unix_path(address)
    if path is None:
        port = server.add_insecure_port(address)
        if port == 0:
            raise OSError(f"cannot listen on {address}")
        return port
    directory = os.path.dirname(path)
    if directory:
        os.makedirs(directory, 0o711, exist_ok=True)
    if server.add_insecure_port(f"unix:{path}") == 0:
        raise OSError(f"cannot listen on unix socket {path}")
    try:
        os.chmod(path, SOCKET_MODE)
    except FileNotFoundError:  # not created until start() on some gRPC versions
        log.debug("socket %s not created at bind; mode is set by the caller", path)
    return 0


def unix_path(address: str) -> str | None:
    """The socket path of a unix address, or None for a TCP address."""
    if address.startswith("unix://"):
        return address[len("unix://") :]
    if address.startswith("unix:"):
        return address[len("unix:") :]
    if address.startswith("/"):
        return address
    return None


_tuned = False
_tune_lock = threading.Lock()


def tune_malloc(
    mmap_threshold: int = _MMAP_THRESHOLD, trim_threshold: int = _TRIM_THRESHOLD
) -> bool:
    """Raise glibc's ``M_MMAP_THRESHOLD`` and ``M_TRIM_THRESHOLD`` once per process.

    Best effort: returns False (and changes nothing) where libc is not glibc
    or ``mallopt`` refuses.
    """
    global _tuned
    with _tune_lock:
        if _tuned:
            return True
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
            mallopt = libc.mallopt
        except (OSError, AttributeError):
            return False
        mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
        mallopt.restype = ctypes.c_int
        ok = bool(mallopt(_M_MMAP_THRESHOLD, mmap_threshold)) and bool(
            mallopt(_M_TRIM_THRESHOLD, trim_threshold)
        )
        _tuned = ok
        return ok
