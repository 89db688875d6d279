"""The daemon's gRPC servers: engine choice, the inline table, building and binding.

:func:`build_server` makes a server with containerd's 16 MiB message limits
and binds it to a unix socket or a TCP address. The caller registers nothing
by hand: each service passed in registers itself. Two engines
(:func:`new_server`, ``[grpc] engine``):

* ``contentd`` (default): the native HTTP/2 engine (:mod:`contentd.wire`).
  The calls in :data:`INLINE_CALLS` (Content/Info, Content/Status,
  Content/Read of at most 1 MiB: ``ctr content get`` and containerd's proxy
  plugin read 32 KiB per call) run on the connection's reader thread when
  blobs are on local disk; everything else on a pool;
* ``grpcio``: grpcio's synchronous server (every RPC on a pool thread, behind
  its poller; about 1 ms of overhead per call).

Either way every RPC that does not run inline, streams included, holds one
worker while it runs.

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
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent import futures
from typing import Any, Final, Protocol

import grpc

from contentd.config.model import DEFAULT_GRPC_ENGINE, DEFAULT_MAX_MESSAGE_SIZE, GRPC_ENGINES
from contentd.wire.address import unix_path

__all__ = [
    "DEFAULT_ENGINE",
    "DEFAULT_MAX_WORKERS",
    "ENGINES",
    "INLINE_CALLS",
    "MAX_MESSAGE_SIZE",
    "SOCKET_MODE",
    "START_AT_INPUT",
    "Service",
    "build_server",
    "listen",
    "new_server",
    "reads_inline_when",
    "server_options",
    "tune_malloc",
]

log = logging.getLogger(__name__)

#: containerd's gRPC message limit, both ways.
MAX_MESSAGE_SIZE: Final = DEFAULT_MAX_MESSAGE_SIZE
#: Worker threads: an open Write stream holds one for as long as the client keeps it open.
DEFAULT_MAX_WORKERS: Final = 128
#: Mode of a unix socket after bind (containerd: 0660, group-accessible).
SOCKET_MODE: Final = 0o660
#: gRPC server engines (``[grpc] engine``): the native HTTP/2 engine, grpcio's synchronous server.
ENGINES: Final = GRPC_ENGINES
DEFAULT_ENGINE: Final = DEFAULT_GRPC_ENGINE
#: A Read of at most this many bytes may run inline (on the native engine's reader thread).
INLINE_READ_LIMIT: Final = 1 << 20
_CONTENT: Final = "/containerd.services.content.v1.Content/"
_HEADROOM: Final = 1 << 10


def _read_inline(request: Any) -> int | None:
    size = int(request.size)
    return size + _HEADROOM if 0 < size <= INLINE_READ_LIMIT else None


def _small_inline(request: Any) -> int | None:
    return 4 << 10  # an Info with labels, a Status (containerd bounds both); fits any window


#: Calls cheap and bounded enough to answer on the connection's reader thread (one metadata
#: lookup, at most one 1 MiB read from local disk): method path -> the largest response they
#: may send given the request (None: not this one, use the pool).
INLINE_CALLS: Final[dict[str, Callable[[Any], int | None]]] = {
    _CONTENT + "Info": _small_inline,
    _CONTENT + "Read": _read_inline,
    _CONTENT + "Status": _small_inline,
}


#: Request-streaming calls whose handler reads first: their worker starts at their first
#: message (a Write's STAT comes in a write of its own after the headers).
START_AT_INPUT: Final = frozenset({_CONTENT + "Write"})


def reads_inline_when(local: Callable[[Any], bool]) -> dict[str, Callable[[Any], int | None]]:
    """The inline table for a store whose blobs are not all on local disk (S3 with its
    read cache): only Reads, and only those ``local(request)`` finds on local disk while
    record lookups need no server round trip (a record not yet remembered costs one lookup
    on the reader); the others wait on the pool as before."""

    def read(request: Any) -> int | None:
        bound = _read_inline(request)
        return bound if bound is not None and local(request) else None

    return {_CONTENT + "Read": read}


_M_TRIM_THRESHOLD: Final = -1
_M_MMAP_THRESHOLD: Final = -3
_M_ARENA_MAX: Final = -8
#: malloc arenas: glibc makes up to 8 per core, one per busy thread, and keeps each one's
#: free memory; two hold the soak's RSS near its start with no measurable cost (the GIL
#: serialises most allocation anyway). ``MALLOC_ARENA_MAX`` in the environment wins.
_ARENA_MAX: Final = 2
#: how often the daemon hands free heap pages back to the kernel (``malloc_trim``)
TRIM_INTERVAL: Final = 5.0
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


def new_server(
    engine: str | None = None,
    *,
    executor: futures.ThreadPoolExecutor | None = None,
    max_workers: int = DEFAULT_MAX_WORKERS,
    options: Sequence[tuple[str, Any]] = (),
    name: str = "contentd-grpc",
    inline: Mapping[str, Callable[[Any], int | None]] | None = None,
) -> grpc.Server:
    """An unbound server of ``engine`` (default :data:`DEFAULT_ENGINE`) on ``executor``.

    Without an executor, one of ``max_workers`` threads is made. ``options``
    are grpcio's (see :func:`server_options`); the native engine reads the
    message limits from them and runs the ``inline`` calls (default
    :data:`INLINE_CALLS`; ``{}``: none) on its reader threads.
    """
    engine = engine or DEFAULT_ENGINE
    if engine not in ENGINES:
        raise ValueError(f"unknown gRPC engine {engine!r} (want {' or '.join(ENGINES)})")
    if executor is None:
        from contentd.wire.threads import block_signals

        executor = futures.ThreadPoolExecutor(
            max_workers=max_workers, thread_name_prefix=name, initializer=block_signals
        )
    if engine == "grpcio":
        return grpc.server(executor, options=server_options(options))
    from contentd.wire import Server

    return Server(
        executor,
        options=server_options(options),
        inline=INLINE_CALLS if inline is None else inline,
        start_at_input=START_AT_INPUT,
        name=name,
    )


def build_server(
    address: str,
    services: Iterable[Service],
    *,
    max_workers: int = DEFAULT_MAX_WORKERS,
    options: Sequence[tuple[str, Any]] = (),
    engine: str | None = None,
) -> grpc.Server:
    """A server with ``services`` registered and bound to ``address`` (not started).

    ``address`` is ``unix:<path>``, ``unix://<abs path>``, a bare path
    starting with ``/``, or ``host:port`` for TCP (listen on 127.0.0.1 in
    tests). A TCP port 0 picks a free port: bind with :func:`listen` instead
    to learn it. ``engine``: see :func:`new_server`.
    """
    tune_malloc()
    server = new_server(engine, max_workers=max_workers, options=options)
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
    try:
        port = server.add_insecure_port(f"unix:{path}")
    except RuntimeError as err:  # grpcio's 'Failed to bind to address ...'
        raise OSError(f"cannot listen on unix socket {path}: bind failed") from err
    if port == 0:
        raise OSError(f"cannot listen on unix socket {path}")
    try:
        os.chmod(path, SOCKET_MODE)
    except FileNotFoundError:  # not created until start() on some gRPC versions
        log.debug("socket %s not created at bind; mode is set by the caller", path)
    return 0


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
        if ok and "MALLOC_ARENA_MAX" not in os.environ:
            mallopt(_M_ARENA_MAX, _ARENA_MAX)
        _tuned = ok
        return ok


def start_malloc_trim(interval: float = TRIM_INTERVAL) -> threading.Event | None:
    """Every ``interval`` seconds, give free heap memory back to the kernel
    (glibc's ``malloc_trim(0)``: the high trim threshold that keeps 1 MiB buffers on
    the heap would otherwise keep a burst's peak resident for good). Returns the
    event that stops the thread; None where libc is not glibc."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        malloc_trim = libc.malloc_trim
    except (OSError, AttributeError):
        return None
    malloc_trim.argtypes = [ctypes.c_size_t]
    malloc_trim.restype = ctypes.c_int
    stop = threading.Event()

    def run() -> None:
        while not stop.wait(interval):
            malloc_trim(0)

    threading.Thread(target=run, name="contentd-malloc-trim", daemon=True).start()
    return stop
