"""The native engine's server: a drop-in for the part of ``grpc.Server`` contentd uses.

Services register through their generated ``add_XServicer_to_server``
(``add_generic_rpc_handlers`` / ``add_registered_method_handlers``); calls are
dispatched by ``:path``. ``add_insecure_port`` binds at once (a unix socket
file exists right after it; a stale one at the path is replaced, as grpcio
does); ``start`` starts accepting; ``stop(grace)`` refuses new calls (GOAWAY),
gives in-flight ones ``grace`` seconds, then cancels the rest, and returns an
event set when every connection has closed.

``inline`` maps a method path to a policy: given the deserialized request,
the largest response size (bytes) for which the call is cheap enough to run
on the connection's reader thread, or None to run it on a worker pool.
``start_at_input`` names request-streaming methods whose handler reads before it
sends anything (Content/Write): a call of one gets its worker when its first
request message (or its half-close) arrives, not at its headers, so a worker
woken for it has that message in hand instead of sleeping again until it comes
(a client such as grpcio sends the two in separate writes).

Calls that stream (the client can keep them open, waiting for input or for
window) run on ``executor`` (``max_workers`` threads); unary calls on a pool
of their own (``unary_workers``), so however many streams clients hold open,
short calls are answered. ``limits`` bound each connection (the grpcio options
``grpc.max_receive_message_length``, ``grpc.max_send_message_length`` and
``grpc.max_concurrent_streams`` override theirs) (see
:class:`~contentd.wire.limits.Limits`); the server serves at most
``max_connections`` at once (more are closed at accept) and waits for the
preface of as many more (then the one silent the longest is closed); out of file
descriptors it closes each new connection through a spare one
(:mod:`contentd.wire.reserve`) rather than leave it waiting; a connection must
finish its preface within ``handshake_timeout`` seconds, and one with no call
that sends nothing for ``idle_timeout`` seconds is closed.

Fair share under the GIL: every connection's reader is a Python thread, and a
thread that blocks in ``recv``/``send``/``pread`` gives up the GIL and then waits
for it behind any thread running Python code, up to the interpreter's switch
interval (5 ms by default) each time. A connection that keeps its reader busy
(thousands of streams opened or reset) thus made another client's 32 KiB Read,
which takes the GIL back 5-7 times, wait 25-70 ms. ``start`` lowers the interval
to ``switch_interval`` (0.5 ms; never raises it): a busy reader is preempted
sooner and the others' waits shrink in proportion.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import selectors
import socket
import stat
import sys
import threading
import time
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from concurrent import futures
from typing import Any, Final, NamedTuple

import grpc

from contentd.wire.connection import Connection
from contentd.wire.deadlines import Deadlines
from contentd.wire.frames import PREFACE
from contentd.wire.limits import Limits
from contentd.wire.reserve import NO_DESCRIPTORS, DescriptorReserve
from contentd.wire.threads import block_signals, start_thread

__all__ = [
    "DEFAULT_MAX_CONNECTIONS",
    "DEFAULT_MAX_WORKERS",
    "DEFAULT_SWITCH_INTERVAL",
    "DEFAULT_UNARY_WORKERS",
    "InlinePolicy",
    "Server",
]

log = logging.getLogger("contentd.wire")

DEFAULT_MAX_WORKERS: Final = 128
DEFAULT_UNARY_WORKERS: Final = 32
#: connections served at once
DEFAULT_MAX_CONNECTIONS: Final = 1024
DEFAULT_HANDSHAKE_TIMEOUT: Final = 20.0
DEFAULT_IDLE_TIMEOUT: Final = 600.0
#: the interpreter's GIL switch interval while a server runs (seconds)
DEFAULT_SWITCH_INTERVAL: Final = 0.0005
_DEFAULT_MAX_MESSAGE: Final = 4 << 20
_HARD_STOP_WAIT: Final = 5.0

#: request -> largest response size to run inline, or None for the pool
InlinePolicy = Callable[[Any], "int | None"]


class _Pending:
    """An accepted connection whose preface has not all arrived."""

    __slots__ = ("addr", "data", "deadline", "sock")

    def __init__(self, sock: socket.socket, addr: Any, deadline: float) -> None:
        self.sock = sock
        self.addr = addr
        self.deadline = deadline
        self.data = b""


class _CallDetails(NamedTuple):
    method: str
    invocation_metadata: Sequence[tuple[str, str | bytes]]


class Server(grpc.Server):
    def __init__(
        self,
        executor: futures.Executor | None = None,
        *,
        options: Sequence[tuple[str, Any]] = (),
        max_workers: int = DEFAULT_MAX_WORKERS,
        inline: Mapping[str, InlinePolicy] | None = None,
        start_at_input: Collection[str] = (),
        name: str = "contentd-h2",
        limits: Limits | None = None,
        unary_workers: int = DEFAULT_UNARY_WORKERS,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        handshake_timeout: float = DEFAULT_HANDSHAKE_TIMEOUT,
        idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
        switch_interval: float = DEFAULT_SWITCH_INTERVAL,
    ) -> None:
        self.executor = executor or futures.ThreadPoolExecutor(
            max_workers=max_workers, thread_name_prefix=name, initializer=block_signals
        )
        self.unary_executor = futures.ThreadPoolExecutor(
            max_workers=unary_workers, thread_name_prefix=f"{name}-unary", initializer=block_signals
        )
        opts = dict(options)
        limits = limits or Limits()
        self.limits = limits.replace(
            max_receive_message=_limit(opts.get("grpc.max_receive_message_length")),
            max_send_message=_limit(opts.get("grpc.max_send_message_length"), -1),
            max_concurrent_streams=int(
                opts.get("grpc.max_concurrent_streams", limits.max_concurrent_streams)
            ),
        )
        self.max_connections = max_connections
        self.handshake_timeout = handshake_timeout
        self.idle_timeout = idle_timeout
        self.switch_interval = switch_interval
        self.inline: dict[str, InlinePolicy] = dict(inline or {})
        self.start_at_input = frozenset(start_at_input)
        self.deadlines = Deadlines(f"{name}-deadlines")
        self._name = name
        self._methods: dict[str, grpc.RpcMethodHandler[Any, Any]] = {}
        self._services: set[str] = set()
        self._generic: list[grpc.GenericRpcHandler[Any, Any]] = []
        self._listeners: list[socket.socket] = []
        self._lock = threading.Condition()
        self._conns: set[Connection] = set()
        self._seq = itertools.count(1)
        self._started = False
        self._stopping = False
        self._stopped = threading.Event()
        self._accept_thread: threading.Thread | None = None
        self._wake_r, self._wake_w = socket.socketpair()

    # -- registration --------------------------------------------------------

    def add_generic_rpc_handlers(
        self, generic_rpc_handlers: Iterable[grpc.GenericRpcHandler[Any, Any]]
    ) -> None:
        for handler in generic_rpc_handlers:
            methods = getattr(handler, "_method_handlers", None)
            if isinstance(methods, dict):
                for path, method in methods.items():
                    self._add(path, method)
            else:
                self._generic.append(handler)

    def add_registered_method_handlers(
        self, service_name: str, method_handlers: Mapping[str, grpc.RpcMethodHandler[Any, Any]]
    ) -> None:
        for method, handler in method_handlers.items():
            self._add(f"/{service_name}/{method}", handler)

    def _add(self, path: str, handler: grpc.RpcMethodHandler[Any, Any]) -> None:
        self._methods.setdefault(path, handler)
        self._services.add(path[1:].rpartition("/")[0])

    def lookup(
        self, path: str, metadata: Sequence[tuple[str, str | bytes]]
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = self._methods.get(path)
        if handler is None and self._generic:
            details = _CallDetails(path, metadata)
            for generic in self._generic:
                handler = generic.service(details)  # type: ignore[arg-type]
                if handler is not None:
                    break
        return handler

    def route(self, request: Any) -> grpc.RpcMethodHandler[Any, Any] | str:
        """The handler of a request's ``:path``, or grpc-go's UNIMPLEMENTED message."""
        handler = self.lookup(request.path, request.metadata)
        return handler if handler is not None else self.unknown(request.path)

    def executor_for(self, handler: grpc.RpcMethodHandler[Any, Any]) -> futures.Executor:
        """The pool a call runs on: streams (which clients can hold open) apart from unary calls."""
        if handler.request_streaming or handler.response_streaming:
            return self.executor
        return self.unary_executor

    def unknown(self, path: str) -> str:
        """grpc-go's UNIMPLEMENTED message for an unknown ``:path``."""
        service, _, method = path[1:].rpartition("/")
        if not service or service not in self._services:
            return f"unknown service {service or path}"
        return f"unknown method {method} for service {service}"

    # -- listening -----------------------------------------------------------

    def add_insecure_port(self, address: str) -> int:
        """Bind ``address`` (``unix:path``, ``unix:///path``, ``host:port``).

        Returns the TCP port, or 1 for a unix socket (grpcio's convention: 0 is failure).
        """
        if address.startswith("unix:"):
            path = address[len("unix://") :] if address.startswith("unix://") else address[5:]
            self._listeners.append(_bind_unix(path))
            return 1
        host, _, port_text = address.rpartition(":")
        host = host.strip("[]") or "0.0.0.0"
        try:
            port = int(port_text)
        except ValueError:
            raise OSError(f"cannot listen on {address}: bad port") from None
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        bound = 0
        for family, kind, proto, _, sockaddr in infos:
            sock = socket.socket(family, kind, proto)
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if family == socket.AF_INET6:
                    with contextlib.suppress(OSError):
                        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
                sock.bind((sockaddr[0], bound or port, *sockaddr[2:]))
                sock.listen(128)
            except OSError:
                sock.close()
                if not bound:
                    raise
                continue  # e.g. ::1 unavailable once 127.0.0.1 has the port
            bound = bound or sock.getsockname()[1]
            self._listeners.append(sock)
            if family == socket.AF_INET6 and host in ("::", "0.0.0.0"):
                break  # dual stack
        if not bound:
            raise OSError(f"cannot listen on {address}")
        return bound

    def add_secure_port(self, address: str, server_credentials: grpc.ServerCredentials) -> int:
        raise NotImplementedError("the native engine serves cleartext HTTP/2 only")

    def start(self) -> None:
        with self._lock:
            if self._started:
                return
            self._started = True
        if sys.getswitchinterval() > self.switch_interval:
            sys.setswitchinterval(self.switch_interval)
        self._accept_thread = start_thread(self._accept, f"{self._name}-accept")

    def _accept(self) -> None:
        """Accept connections and wait, on this one thread, for each one's preface: a
        connection gets its own reader thread only once the client has spoken HTTP/2
        (connections that never do cost a socket, not a thread, until the handshake
        timeout closes them)."""
        selector = selectors.DefaultSelector()
        for sock in self._listeners:
            sock.setblocking(False)
            selector.register(sock, selectors.EVENT_READ)
        selector.register(self._wake_r, selectors.EVENT_READ)
        pending: dict[socket.socket, _Pending] = {}
        reserve = DescriptorReserve()
        try:
            while True:
                timeout = None
                if pending:
                    timeout = max(0.0, min(p.deadline for p in pending.values()) - time.monotonic())
                for key, _ in selector.select(timeout):
                    if key.fileobj is self._wake_r:
                        return
                    if isinstance(key.data, _Pending):
                        self._handshake(selector, pending, key.data)
                        continue
                    listener: socket.socket = key.fileobj  # type: ignore[assignment]
                    try:
                        sock, addr = listener.accept()
                    except (BlockingIOError, InterruptedError):
                        continue
                    except OSError as err:
                        if err.errno in NO_DESCRIPTORS:
                            if not reserve.refuse(listener):
                                time.sleep(0.05)  # no spare either: the backlog waits
                            continue
                        log.warning("accept failed: %s", err)
                        time.sleep(0.05)
                        continue
                    with self._lock:
                        full = len(self._conns) >= self.max_connections
                    if full or self._stopping:
                        if not self._stopping:
                            log.warning("refusing a connection: %d open", self.max_connections)
                        sock.close()
                        continue
                    if len(pending) >= self.max_connections:
                        # slowloris: the connection silent the longest makes room (a real
                        # client sends its preface at once and is never the oldest for long)
                        oldest = min(pending.values(), key=lambda p: p.deadline)
                        self._drop(selector, pending, oldest)
                    sock.setblocking(False)
                    waiting = _Pending(sock, addr, time.monotonic() + self.handshake_timeout)
                    pending[sock] = waiting
                    selector.register(sock, selectors.EVENT_READ, waiting)
                now = time.monotonic()
                for waiting in [p for p in pending.values() if p.deadline <= now]:
                    log.debug("closing a connection that sent no preface")
                    self._drop(selector, pending, waiting)
        finally:
            for waiting in list(pending.values()):
                self._drop(selector, pending, waiting)
            reserve.close()
            selector.close()
            for sock in self._listeners:
                sock.close()
            self._wake_r.close()

    def _handshake(
        self,
        selector: selectors.BaseSelector,
        pending: dict[socket.socket, _Pending],
        waiting: _Pending,
    ) -> None:
        try:
            chunk = waiting.sock.recv(1 << 16)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            chunk = b""
        waiting.data += chunk
        n = len(PREFACE)
        if not chunk or waiting.data[:n] != PREFACE[: len(waiting.data)]:
            self._drop(selector, pending, waiting)  # gone, or not HTTP/2 with prior knowledge
        elif len(waiting.data) >= n:
            selector.unregister(waiting.sock)
            del pending[waiting.sock]
            self._serve(waiting.sock, waiting.addr, waiting.data)

    @staticmethod
    def _drop(
        selector: selectors.BaseSelector,
        pending: dict[socket.socket, _Pending],
        waiting: _Pending,
    ) -> None:
        selector.unregister(waiting.sock)
        del pending[waiting.sock]
        waiting.sock.close()

    def _serve(self, sock: socket.socket, addr: Any, first: bytes) -> None:
        sock.setblocking(True)
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            peer = f"ipv{4 if sock.family == socket.AF_INET else 6}:{addr[0]}:{addr[1]}"
        else:
            peer = "unix:"
        conn = Connection(self, sock, peer, first)
        with self._lock:
            if self._stopping:
                sock.close()
                return
            self._conns.add(conn)
        start_thread(conn.run, f"{self._name}-conn-{next(self._seq)}")

    def connection_closed(self, conn: Connection) -> None:
        with self._lock:
            self._conns.discard(conn)
            self._lock.notify_all()

    # -- stopping --------------------------------------------------------------

    def stop(self, grace: float | None = None) -> threading.Event:
        with self._lock:
            if self._stopping:
                return self._stopped
            self._stopping = True
            conns = list(self._conns)
        if self._accept_thread is not None:
            self._wake_w.send(b"x")
        else:
            for sock in self._listeners:
                sock.close()
            self._wake_r.close()
        for conn in conns:
            conn.goaway()
        start_thread(self._finish_stop, f"{self._name}-stop", grace)
        return self._stopped

    def _finish_stop(self, grace: float | None) -> None:
        deadline = time.monotonic() + (grace or 0.0)
        with self._lock:
            while self._conns and any(not c.idle for c in self._conns):
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._lock.wait(min(left, 0.05))
            conns = list(self._conns)
        for conn in conns:
            conn.cancel_all()
        end = time.monotonic() + _HARD_STOP_WAIT
        with self._lock:
            while self._conns and time.monotonic() < end:
                self._lock.wait(0.05)
        self.deadlines.stop()
        self.unary_executor.shutdown(wait=False)
        self._wake_w.close()
        self._stopped.set()

    def wait_for_termination(self, timeout: float | None = None) -> bool:
        return self._stopped.wait(timeout)


def _limit(value: Any, default: int = _DEFAULT_MAX_MESSAGE) -> int:
    """A grpcio message-size option: -1 is unlimited, None the default."""
    if value is None:
        return default
    return int(value)


def _bind_unix(path: str) -> socket.socket:
    with contextlib.suppress(FileNotFoundError):
        if stat.S_ISSOCK(os.lstat(path).st_mode):
            os.unlink(path)  # a stale socket (the daemon refuses a live one before this)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(path)
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    return sock
