"""The server's shell around one connection: reader thread, writer election, call dispatch.

The protocol is :class:`contentd.wire.protocol.H2Connection`'s; this module
moves bytes between it and the socket and runs handlers. Threading (the reason
this engine exists): the connection's single reader thread feeds the core and,
for calls the server marks *inline* (cheap bounded unary calls: Content/Info,
small Content/Read), runs the handler right there and writes the response
itself, with no hand-off. Other calls run on the server's pools: calls that
stream (and so can be held open by the client) on one, unary calls on another,
so idle streams cannot starve short calls.

Output: whoever queues something writes what the windows allow under a
non-blocking write lock; if another thread is writing, that one sends the new
frames too before it lets go, so the reader never waits for a writer, and a
worker whose call has more than :data:`~contentd.wire.protocol.SEND_BUFFER`
bytes queued waits for window (never the reader). Frames of one flush go to
the socket in one ``sendall``/``sendmsg``.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from concurrent import futures
from functools import partial
from typing import Any, Final, Protocol

import grpc

from contentd.wire.call import Call
from contentd.wire.deadlines import Deadlines
from contentd.wire.errors import CallCancelled
from contentd.wire.events import (
    CallStarted,
    ConnectionEnded,
    Event,
    InputChanged,
    RequestReady,
    StreamEnded,
)
from contentd.wire.limits import Limits
from contentd.wire.protocol import RESET, SEND_BUFFER, SILENT, TRAILERS, H2Connection
from contentd.wire.rpc import run, run_inline
from contentd.wire.streams import ConnectionState, StreamState

__all__ = ["Connection", "ServerHooks"]

log = logging.getLogger("contentd.wire")

_RECV_SIZE: Final = 256 << 10
#: room reserved for a call's first message (then its last message's size): Read's 1 MiB
_FIRST_MESSAGE: Final = 1 << 20
#: output up to this size is joined before it is written (above it: scatter-gather)
_JOIN_LIMIT: Final = 8 << 10
_IOV_MAX: Final = 512
_INTERNAL: Final = 13
_UNAVAILABLE: Final = 14
_CANCELLED: Final = 1
_OPEN: Final = ConnectionState.OPEN
_CLOSED: Final = ConnectionState.CLOSED
_RESET: Final = StreamState.CANCELLED
_NO_CALLBACKS: Final[tuple[Callable[[], None], ...]] = ()


class ServerHooks(Protocol):
    """What a connection needs of its server."""

    @property
    def limits(self) -> Limits: ...

    @property
    def inline(self) -> Mapping[str, Callable[[Any], int | None]]: ...

    @property
    def start_at_input(self) -> frozenset[str]:
        """Request-streaming methods whose worker starts at the call's first input."""

    @property
    def deadlines(self) -> Deadlines: ...

    @property
    def handshake_timeout(self) -> float:
        """Seconds for a new connection to send its preface and SETTINGS."""

    @property
    def idle_timeout(self) -> float:
        """Seconds a connection with no call may stay silent."""

    def route(self, request: Any) -> Any: ...

    def executor_for(self, handler: grpc.RpcMethodHandler[Any, Any]) -> futures.Executor: ...

    def connection_closed(self, conn: Connection) -> None: ...


class Connection:
    """Serves the calls of one accepted socket until the peer goes or the server stops."""

    def __init__(
        self, server: ServerHooks, sock: socket.socket, peer: str, first: bytes = b""
    ) -> None:
        self.server = server
        self.sock = sock
        self.peer = peer
        #: what the client sent before the connection got its thread (the preface)
        self._first = first
        limits = server.limits
        cpu = time.thread_time if limits.header_decode_rate > 0 else None
        self.h2 = H2Connection(limits, route=server.route, cpu_clock=cpu)
        #: guards the core and every Call's stream
        self.lock = threading.Lock()
        self._wlock = threading.Lock()
        self._broken = False
        self._closed = threading.Event()
        #: set when the connection is closed: a reader pausing for its fair share wakes
        self._stopping = threading.Event()
        self._paused = False
        #: input batches read; the idle check compares it between its rounds
        self._batches = 0
        # output: producers wait here for the connection's queue to drain; each one let
        # through reserves room for the message it is about to make
        self._room = threading.Condition(self.lock)
        self._waiting = 0
        self._reserved = 0

    # -- the reader thread ---------------------------------------------------

    def run(self) -> None:
        """The reader thread: until the peer closes, the socket fails or the server stops."""
        try:
            with self.lock:
                self.h2.initiate()
                self.h2.pace(time.monotonic())
            self._flush()
            self._watch(self.server.handshake_timeout, -1)
            self._read()
        except OSError as err:
            log.debug("connection from %s lost: %s", self.peer, err)
        except Exception:
            log.exception("connection from %s failed", self.peer)
        finally:
            self._lost()

    def _read(self) -> None:
        # one buffer for all reads: the core copies what it keeps (H2Connection.receive),
        # and a fresh 256 KiB bytes per read cost an allocation and its page faults
        buf = bytearray(_RECV_SIZE)
        view = memoryview(buf)
        recv_into = self.sock.recv_into
        h2 = self.h2
        lock = self.lock
        chunk: bytes | memoryview
        chunk, self._first = self._first, b""
        resume = False
        while True:
            if not chunk and not resume:
                n = recv_into(buf)
                if not n:
                    return
                chunk = view[:n]
            self._batches += 1
            with lock:
                events = h2.receive(chunk)
            if events:
                self._handle(events)
            if h2.wants_write:  # what the batch queued (replies, acks, window) in one write
                self._flush()
            if h2.state is _CLOSED:
                return
            chunk = b""
            resume = h2.throttled
            # then on with the bytes the core kept, before reading more
            if resume and not self._pause():
                return

    def _pause(self) -> bool:
        """Wait until the connection's header-decode budget allows more (the socket is
        not read meanwhile: its peer stops at its send buffer, and the GIL goes to the
        other connections' threads); False if the connection was closed meanwhile."""
        h2 = self.h2
        while not self._stopping.is_set():
            with self.lock:
                delay = h2.pace(time.monotonic())
            if delay <= 0:
                return True
            if not self._paused:  # once per connection: the operator sees who, not how often
                self._paused = True
                log.warning(
                    "connection from %s: header blocks that open no call cost more than its"
                    " share of the CPU; its input waits",
                    self.peer,
                )
            self._stopping.wait(delay)
        return False

    def _watch(self, delay: float, seen: int) -> None:
        """Check in ``delay`` seconds that the connection is not stuck in its handshake
        or idle (no call, nothing read since the last check)."""
        if delay > 0:
            ref = weakref.ref(self)
            self.server.deadlines.add(time.monotonic() + delay, partial(_check, ref, seen))

    def check(self, seen: int) -> None:
        """The timer's round: close a connection that is silent and has no call."""
        h2 = self.h2
        if self._closed.is_set():
            return
        if h2.state is ConnectionState.PREFACE or (
            seen == self._batches and h2.idle and h2.state is _OPEN
        ):
            # closed without a GOAWAY: the timer thread must not wait for a peer to read
            log.debug("closing silent connection from %s", self.peer)
            self.close()
            return
        self._watch(self.server.idle_timeout, self._batches)

    def _handle(self, events: list[Event]) -> None:
        for event in events:
            kind = type(event)
            if (kind is RequestReady or kind is CallStarted) and (event.stream.state is _RESET):
                continue  # reset later in the same batch (rapid reset): no call, no worker
            if kind is RequestReady:
                self._unary(event.stream.app, event.message)  # type: ignore[attr-defined]
            elif kind is CallStarted:
                self._started(event.stream)
            elif kind is InputChanged:
                call = event.stream.app
                if call is None:
                    continue
                if call.cond is not None:
                    with self.lock:
                        call.cond.notify_all()
                elif call.waits_for_input:  # its first message or half-close: a worker now
                    call.waits_for_input = False
                    self._submit(call, None, False)
            elif kind is StreamEnded:
                call = event.stream.app
                if call is not None:
                    self._ended(call)
            elif kind is ConnectionEnded and event.sent:  # type: ignore[attr-defined]
                # a connection error of ours ends every call on it: the operator sees why
                # (a client that broke the protocol or hit a flood bound, or a bug of ours)
                level = logging.WARNING if event.code else logging.DEBUG  # type: ignore[attr-defined]
                log.log(level, "closing connection from %s: %s", self.peer, event)

    def _started(self, stream: Any) -> None:
        request = stream.request
        deadline = None
        if request.timeout is not None:
            deadline = time.monotonic() + request.timeout
        call = Call(self, stream, stream.handler, deadline)
        stream.app = call
        if deadline is not None:  # weak: an ended call's entry keeps nothing alive
            self.server.deadlines.add(deadline, partial(_expire, weakref.ref(call)))
        if stream.streaming:
            if (
                not stream.messages
                and stream.state is StreamState.OPEN
                and call.path in self.server.start_at_input
            ):
                call.waits_for_input = True  # its InputChanged submits it
                return
            self._submit(call, None, False)

    def _unary(self, call: Call, raw: bytes | bytearray) -> None:
        policy = self.server.inline.get(call.path)
        if policy is None:
            self._submit(call, raw, True)
            return
        deserialize = call.handler.request_deserializer
        try:
            if deserialize is not None:
                request = deserialize(raw)
            else:  # raw, as grpcio gives it: bytes
                request = raw if type(raw) is bytes else bytes(raw)
        except Exception:
            self.abandon(call, _INTERNAL, "Exception deserializing request!", TRAILERS)
            return
        bound = policy(request)
        # the windows count only what was written: output still queued takes from them too
        if bound is not None and bound <= self.h2.send_room(call.stream):
            run_inline(call, request)
        else:
            self._submit(call, request, False)

    def _submit(self, call: Call, argument: Any, deserialize: bool) -> None:
        if call.cond is None:
            call.cond = threading.Condition(self.lock)
        try:
            executor = self.server.executor_for(call.handler)
            executor.submit(run, call, argument, deserialize=deserialize)
        except RuntimeError:  # the pool is shut down
            self.abandon(call, _UNAVAILABLE, "server is stopping", TRAILERS)

    def _ended(self, call: Call) -> None:
        """The core ended ``call`` (peer reset, bad input): wake its worker, run callbacks."""
        with self.lock:
            callbacks = self._settle(call)
        if callbacks:
            _run_callbacks(callbacks)

    # -- what calls use (the Host interface of contentd.wire.call) ----------------

    def next_message(self, call: Call) -> bytes | bytearray | None:
        cond = call.cond
        assert cond is not None
        stream = call.stream
        h2 = self.h2
        flushed = False
        while True:
            with self.lock:
                while True:
                    if stream.cancelled:  # even with messages queued: none is handled now
                        raise CallCancelled()
                    if stream.messages:
                        raw = h2.take(stream)
                        break
                    if stream.state is not StreamState.OPEN:  # ended, or the client half-closed
                        return None
                    if not flushed and h2.wants_write and not self._broken:
                        raw = None  # output queued without a flush (send's flush=False) goes
                        break  # out before this worker waits: its peer may wait for it
                    cond.wait()
            if raw is not None:
                break
            flushed = True
            self._flush()
        if h2.wants_write:
            self._flush()
        return raw

    def wait_for_room(self, call: Call) -> bool:
        stream = call.stream
        if call.cond is None:  # inline: bounded by its admission, never waits
            return stream.active
        h2 = self.h2
        limit = h2.limits.connection_send_buffer
        flushed = False
        while True:
            with self.lock:
                while stream.active and not self._broken:
                    queued = h2.pending_out + self._reserved
                    if stream.out_bytes <= SEND_BUFFER and (queued <= limit or not queued):
                        need = call.last_size or _FIRST_MESSAGE
                        call.reserved += need
                        self._reserved += need
                        return True
                    if not flushed and h2.wants_write:
                        break  # what was queued without a flush makes the room waited for
                    self._wait_room()
                else:
                    return False
            flushed = True
            self._flush()

    def _wait_room(self) -> None:
        self._waiting += 1
        try:
            self._room.wait()
        finally:
            self._waiting -= 1

    def _settle(self, call: Call) -> Sequence[Callable[[], None]]:
        """``call`` has ended (lock held): wake its worker, give back its room; the
        callbacks to run once the lock is released."""
        callbacks = call.callbacks
        call.callbacks = None
        if call.cond is not None:
            call.cond.notify_all()
        if call.reserved or self._waiting:
            self._release(call)
        return callbacks or _NO_CALLBACKS

    def _release(self, call: Call) -> None:
        """Give back the room ``call`` reserved (lock held)."""
        if call.reserved:
            self._reserved -= call.reserved
            call.reserved = 0
        if self._waiting:
            self._room.notify_all()

    def send(self, call: Call, payload: bytes, *, flush: bool) -> bool:
        stream = call.stream
        with self.lock:
            if call.reserved:
                self._reserved -= call.reserved
                call.reserved = 0
            call.last_size = len(payload)
            if self._broken or not self.h2.send_message(stream, payload):
                return False
        if not flush:
            return True
        self._flush()
        if call.cond is not None and stream.out_bytes > SEND_BUFFER:
            with self.lock:
                while stream.out_bytes > SEND_BUFFER and stream.active and not self._broken:
                    self._wait_room()
                return stream.active
        return True

    def finish(self, call: Call, code: int, details: str, *, flush: bool) -> None:
        with self.lock:
            if not self.h2.finish(call.stream, code, details):
                return
            callbacks = self._settle(call)
        if flush:
            self._flush()
        if callbacks:
            _run_callbacks(callbacks)

    def reply(self, call: Call, payloads: list[Any], code: int, details: str) -> None:
        """An inline call's output and status, queued under one hold of the lock (the
        reader writes them after its batch)."""
        stream = call.stream
        h2 = self.h2
        with self.lock:
            if not self._broken:
                for payload in payloads:
                    if not h2.send_message(stream, payload):
                        break
            if not h2.finish(stream, code, details):
                return
            callbacks = self._settle(call)
        if callbacks:
            _run_callbacks(callbacks)

    def abandon(self, call: Call, code: int, details: str, how: int) -> None:
        with self.lock:
            if not self.h2.cancel(call.stream, code, details, how):
                return
            callbacks = self._settle(call)
        self._flush()
        if callbacks:
            _run_callbacks(callbacks)

    def add_callback(self, call: Call, callback: Callable[[], None]) -> bool:
        with self.lock:
            if call.callbacks is None:
                return False
            call.callbacks.append(callback)
            return True

    # -- output ------------------------------------------------------------------

    def _flush(self) -> None:
        """Write what is queued and the windows allow, unless another thread is writing."""
        h2 = self.h2
        while True:
            if not self._wlock.acquire(blocking=False):
                return  # the writer re-checks after it lets go
            try:
                while True:
                    with self.lock:
                        if not h2.wants_write or self._broken:
                            break
                        bufs, total = h2.data_to_send()
                        if h2.drained:
                            h2.drained.clear()
                            if self._waiting:
                                self._room.notify_all()
                    if bufs:
                        self._write(bufs, total)
                    if not h2.wants_write:
                        # read without the lock: whatever is queued from now on is seen by
                        # the check after the write lock is let go (one lock round trip less)
                        break
            except OSError as err:
                log.debug("writing to %s failed: %s", self.peer, err)
                self._break()
            finally:
                self._wlock.release()
            with self.lock:
                if not h2.wants_write or self._broken:
                    state = h2.state
                    close = state is _CLOSED or (state is ConnectionState.CLOSING and h2.idle)
                    break
        if close:
            self.close()

    def _write(self, bufs: Sequence[Any], total: int) -> None:
        """Send ``bufs`` (``total`` is their size or more: it picks join or scatter-gather).

        Small output is joined; bigger output (a Read's 32 KiB chunk) goes out as it is,
        in ``sendmsg`` calls of at most :data:`_IOV_MAX` buffers (joining it cost a copy
        of every byte sent).
        """
        sock = self.sock
        if total <= _JOIN_LIMIT or len(bufs) == 1:
            sock.sendall(b"".join(bufs) if len(bufs) > 1 else bufs[0])
            return
        views: list[Any] = list(bufs)
        i = 0
        while True:
            sent = sock.sendmsg(
                views if not i and len(views) <= _IOV_MAX else views[i : i + _IOV_MAX]
            )
            total -= sent
            if total <= 0:
                return  # the rule: a blocking socket takes all of it at once
            # past what was sent (and empty buffers): the rest of a buffer sent in part
            while i < len(views):
                size = len(views[i])
                if sent < size:
                    if sent:
                        views[i] = memoryview(views[i])[sent:]
                    break
                sent -= size
                i += 1
            if i == len(views):
                return

    # -- ending the connection ----------------------------------------------------

    def goaway(self) -> None:
        """Graceful stop: no new calls; the connection closes when its calls have ended."""
        with self.lock:
            if not self.h2.goaway():
                return
        self._flush()

    def cancel_all(self) -> None:
        """Cancel every call (the grace period is over); the connection then closes."""
        with self.lock:
            calls = [s.app for s in self.h2.streams.values() if s.app is not None]
        for call in calls:
            self.abandon(call, _UNAVAILABLE, "server is stopping", RESET)
        self.close()

    def close(self) -> None:
        self._stopping.set()
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)

    @property
    def gone(self) -> bool:
        return self._broken

    @property
    def idle(self) -> bool:
        """No call running and no output of an ended call still waiting for window."""
        return self.h2.idle

    def wait_closed(self, timeout: float | None) -> bool:
        return self._closed.wait(timeout)

    def _break(self) -> None:
        with self.lock:
            self._broken = True
            self._room.notify_all()
        self.close()

    def _lost(self) -> None:
        """The reader is done: cancel what is left, close the socket."""
        with self.lock:
            if self.h2.state is not _CLOSED:
                self.h2.state = ConnectionState.CLOSING
            # no worker makes another message for a peer that is gone: as each call below
            # is cancelled its queued output is dropped, and that room would otherwise let
            # the next worker waiting for room make one (100 streams: 100 MB at once)
            self._broken = True
            if self._waiting:
                self._room.notify_all()
            calls = [s.app for s in self.h2.streams.values() if s.app is not None]
        for call in calls:
            self.abandon(call, _CANCELLED, "connection closed", SILENT)
        self.close()  # a worker stuck writing to a peer that stopped reading gets an error
        with self._wlock:  # a worker may still be writing the last frames
            self._broken = True
            with contextlib.suppress(OSError):
                self.sock.close()
        self._closed.set()
        self.server.connection_closed(self)


def _check(conn: weakref.ref[Connection], seen: int) -> None:
    c = conn()
    if c is not None:
        c.check(seen)


def _expire(call: weakref.ref[Call]) -> None:
    c = call()
    if c is not None:
        c.expire()


def _run_callbacks(callbacks: Sequence[Callable[[], None]]) -> None:
    for callback in callbacks:
        try:
            callback()
        except Exception:
            log.exception("RPC termination callback failed")
