"""One HTTP/2 connection of the native gRPC engine: its reader thread, streams and output.

Threading (the reason this engine exists): the connection's single reader
thread parses frames and, for calls the server marks *inline* (cheap bounded
unary calls: Content/Info, small Content/Read), runs the handler right there
and writes the response itself, with no hand-off to another thread. Every
other call runs on the server's worker pool; a streaming call holds its worker
for as long as it lasts.

Output goes through per-call queues. Whoever queues something flushes what
the peer's flow-control windows allow, under a non-blocking write lock: if
another thread is writing, it sends the new frames too before it lets go, so
the reader thread never waits for a writer, and a worker whose call has more
than :data:`SEND_BUFFER` bytes queued waits for window (never the reader).
Frames of one flush go to the socket in one ``sendall``/``sendmsg``.

Input flow control: the client gets generous windows (:data:`STREAM_WINDOW`,
:data:`CONNECTION_WINDOW`), and received bytes are given back as they arrive,
unless a streaming call already has :data:`QUEUE_LIMIT` bytes of messages its
handler has not taken; then they are given back as the handler takes them,
so a slow handler bounds the memory its stream can use.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import struct
import threading
import time
import weakref
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any, Final

import grpc
import hpack
from hpack.exceptions import HPACKError

from contentd.wire import frames as fr
from contentd.wire.call import (
    DATA_ITEM,
    HEADERS_ITEM,
    RST_ITEM,
    Call,
    CallCancelled,
    MessageTooLarge,
)
from contentd.wire.metadata import (
    RESPONSE_HEADERS,
    Request,
    parse_request,
    status_block,
    trailers_only,
)
from contentd.wire.rpc import run

if TYPE_CHECKING:
    from contentd.wire.server import Server

__all__ = [
    "CONNECTION_WINDOW",
    "QUEUE_LIMIT",
    "SEND_BUFFER",
    "STREAM_WINDOW",
    "Connection",
    "MessageTooLarge",
]

log = logging.getLogger("contentd.wire")

#: Receive window of each stream (SETTINGS_INITIAL_WINDOW_SIZE we announce).
STREAM_WINDOW: Final = 4 << 20
#: Receive window of the whole connection.
CONNECTION_WINDOW: Final = 16 << 20
#: Request bytes a streaming call may have queued before its window stops being replenished.
QUEUE_LIMIT: Final = 4 << 20
#: Response bytes a worker may have queued (waiting for window) before it waits.
SEND_BUFFER: Final = 256 << 10
#: Largest frame we accept (SETTINGS_MAX_FRAME_SIZE we announce).
MAX_FRAME: Final = 1 << 20
_DEFAULT_WINDOW: Final = 65535
_DEFAULT_FRAME: Final = 16384
_RECV_SIZE: Final = 256 << 10
_JOIN_LIMIT: Final = 64 << 10
_IOV_MAX: Final = 512
_HEADER = fr.HEADER
_U32: Final = struct.Struct(">I")
_DATA = fr.DATA
_OK: Final = grpc.StatusCode.OK
_SMALL_MESSAGE: Final = 64 << 10
_BLOCK_CACHE: Final = 64

# how an abandoned call is ended toward the client
_SILENT: Final = 0  # the client reset it or is gone
_TRAILERS: Final = 1  # a status (deadline, too large, ...)
_RESET: Final = 2  # RST_STREAM(CANCEL): shutdown


class ProtocolError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


def _code(code: grpc.StatusCode) -> int:
    value: int = code.value[0]
    return value


class Connection:
    """Serves the calls of one accepted socket until the peer goes or the server stops."""

    def __init__(self, server: Server, sock: socket.socket, peer: str) -> None:
        self.server = server
        self.sock = sock
        self.peer = peer
        #: guards every Call's fields and this connection's stream and output state
        self.lock = threading.Lock()
        self._wlock = threading.Lock()
        self._calls: dict[int, Call] = {}
        self._last_id = 0
        self._decoder = hpack.Decoder()
        self._decoder.max_header_list_size = 1 << 20
        # output
        self._ctrl: list[bytes] = []
        self._ready: dict[int, Call] = {}
        self._dirty = False
        self._send_window = _DEFAULT_WINDOW
        self._peer_window = _DEFAULT_WINDOW
        self._peer_frame = _DEFAULT_FRAME
        self._table_update = False
        self._credit = 0
        #: response bytes queued on all calls and not written yet
        self._pending_out = 0
        # life
        self._closing = False
        self._broken = False
        self._closed = threading.Event()
        self._continued: tuple[int, int, bytearray] | None = None
        #: header block -> (decoder table generation, request); see _request
        self._blocks: dict[bytes, tuple[int, Request]] = {}
        self._generation = 0

    # -- the reader thread ---------------------------------------------------

    def run(self) -> None:
        """The reader thread: until the peer closes, the socket fails or the server stops."""
        try:
            self._start()
            self._read()
        except ProtocolError as err:
            log.debug("closing connection from %s: %s", self.peer, err)
            with self.lock:
                self._ctrl.append(fr.goaway(self._last_id, err.code, str(err).encode()[:256]))
                self._dirty = True
            self._flush()
        except OSError as err:
            log.debug("connection from %s lost: %s", self.peer, err)
        except Exception:
            log.exception("connection from %s failed", self.peer)
        finally:
            self._lost()

    def _start(self) -> None:
        with self.lock:
            self._ctrl.append(
                fr.settings(
                    {
                        fr.Setting.INITIAL_WINDOW_SIZE: STREAM_WINDOW,
                        fr.Setting.MAX_FRAME_SIZE: MAX_FRAME,
                    }
                )
            )
            self._ctrl.append(fr.window_update(0, CONNECTION_WINDOW - _DEFAULT_WINDOW))
            self._dirty = True
        self._flush()

    def _read(self) -> None:
        recv = self.sock.recv
        data = b""
        while len(data) < len(fr.PREFACE):
            chunk = recv(_RECV_SIZE)
            if not chunk:
                return
            data += chunk
        if not data.startswith(fr.PREFACE):
            raise ProtocolError(fr.ErrorCode.PROTOCOL_ERROR, "bad connection preface")
        rest = data[len(fr.PREFACE) :]
        while True:
            if rest:
                used = self._frames(rest)
                rest = rest[used:]
            if self._dirty:  # what the batch queued (replies, acks, window) in one write
                self._flush()
            chunk = recv(_RECV_SIZE)
            if not chunk:
                return
            rest = rest + chunk if rest else chunk

    def _frames(self, data: bytes) -> int:
        """Handle the complete frames at the start of ``data``; how many bytes they took."""
        unpack = _HEADER.unpack_from
        view = memoryview(data)
        end = len(data)
        off = 0
        while end - off >= 9:
            word, flags, sid = unpack(data, off)
            length = word >> 8
            if length > MAX_FRAME:
                raise ProtocolError(fr.ErrorCode.FRAME_SIZE_ERROR, f"frame of {length} bytes")
            start = off + 9
            if end - start < length:
                break
            off = start + length
            ftype = word & 0xFF
            sid &= 0x7FFFFFFF
            if self._continued is not None and ftype != fr.CONTINUATION:
                raise ProtocolError(fr.ErrorCode.PROTOCOL_ERROR, "expected CONTINUATION")
            if ftype == _DATA:
                payload = view[start:off]
                if flags & fr.PADDED:
                    payload = payload[1 : length - payload[0]] if length else payload
                self._on_data(sid, flags, payload, length)
            elif ftype == fr.HEADERS:
                self._on_headers_frame(sid, flags, view[start:off])
            elif ftype == fr.WINDOW_UPDATE:
                if length != 4:
                    raise ProtocolError(fr.ErrorCode.FRAME_SIZE_ERROR, "WINDOW_UPDATE size")
                self._on_window_update(sid, _U32.unpack_from(data, start)[0] & 0x7FFFFFFF)
            elif ftype == fr.CONTINUATION:
                self._on_continuation(sid, flags, view[start:off])
            elif ftype == fr.PING:
                if not flags & fr.ACK:
                    with self.lock:
                        self._ctrl.append(fr.ping(bytes(view[start:off]), ack=True))
                        self._dirty = True
            elif ftype == fr.SETTINGS:
                if not flags & fr.ACK:
                    self._on_settings(bytes(view[start:off]))
            elif ftype == fr.RST_STREAM:
                self._on_reset(sid)
            elif ftype == fr.GOAWAY:
                log.debug("client %s sent GOAWAY", self.peer)
            elif ftype == fr.PUSH_PROMISE:
                raise ProtocolError(fr.ErrorCode.PROTOCOL_ERROR, "PUSH_PROMISE from a client")
            # PRIORITY and unknown frame types are ignored
        return off

    def _on_settings(self, payload: bytes) -> None:
        try:
            values = fr.parse_settings(payload)
        except ValueError as err:
            raise ProtocolError(fr.ErrorCode.FRAME_SIZE_ERROR, str(err)) from None
        with self.lock:
            for key, value in values:
                if key == fr.Setting.INITIAL_WINDOW_SIZE:
                    delta = value - self._peer_window
                    self._peer_window = value
                    # a call with output queued is in both maps: adjust each call once
                    calls = {id(c): c for c in (*self._calls.values(), *self._ready.values())}
                    for call in calls.values():
                        call.send_window += delta
                    if delta > 0 and self._ready:
                        self._dirty = True
                elif key == fr.Setting.MAX_FRAME_SIZE:
                    self._peer_frame = max(_DEFAULT_FRAME, min(value, (1 << 24) - 1))
                elif key == fr.Setting.HEADER_TABLE_SIZE and value < 4096:
                    self._table_update = True  # we index nothing, but must say our table shrank
            self._ctrl.append(fr.settings(ack=True))
            self._dirty = True

    def _on_window_update(self, sid: int, increment: int) -> None:
        with self.lock:
            if sid == 0:
                self._send_window += increment
            else:
                call = self._calls.get(sid) or self._ready.get(sid)
                if call is None:
                    return
                call.send_window += increment
            if self._ready:
                self._dirty = True  # flushed after the batch

    def _on_reset(self, sid: int) -> None:
        call = self._calls.get(sid)
        if call is not None:
            self._abandon(call, grpc.StatusCode.CANCELLED, "Cancelled", _SILENT)
            return
        with self.lock:  # ended here, its last output still waiting for window: drop it
            call = self._ready.pop(sid, None)
            if call is not None:
                self._pending_out -= call.out_bytes
                call.out.clear()
                call.out_bytes = 0
                if call.cond is not None:
                    call.cond.notify_all()

    def _on_headers_frame(self, sid: int, flags: int, payload: memoryview) -> None:
        if flags & fr.PADDED:
            payload = payload[1 : len(payload) - payload[0]]
        if flags & fr.PRIORITY_FLAG:
            payload = payload[5:]
        if flags & fr.END_HEADERS:
            self._on_headers(sid, flags & fr.END_STREAM, bytes(payload))
        else:
            self._continued = (sid, flags, bytearray(payload))

    def _on_continuation(self, sid: int, flags: int, payload: memoryview) -> None:
        if self._continued is None or self._continued[0] != sid:
            raise ProtocolError(fr.ErrorCode.PROTOCOL_ERROR, "unexpected CONTINUATION")
        self._continued[2].extend(payload)
        if flags & fr.END_HEADERS:
            _, first, block = self._continued
            self._continued = None
            self._on_headers(sid, first & fr.END_STREAM, bytes(block))

    def _request(self, block: bytes) -> Request:
        """Decode a request's header block, from the cache when that gives the same result.

        A block that adds nothing to the decoder's dynamic table (indexed fields and
        literals without indexing) leaves it as it was, so while no other block
        changed the table, the same bytes decode to the same request: a client
        repeating a call sends the same few bytes.
        """
        cached = self._blocks.get(block)
        if cached is not None and cached[0] == self._generation:
            return cached[1]
        try:
            fields: Any = self._decoder.decode(block, raw=True)
        except HPACKError as err:
            raise ProtocolError(fr.ErrorCode.COMPRESSION_ERROR, str(err)) from None
        request = parse_request(fields)
        if _stateless(block):
            if len(self._blocks) >= _BLOCK_CACHE:
                self._blocks.clear()
            self._blocks[block] = (self._generation, request)
        else:
            self._generation += 1
        return request

    def _on_headers(self, sid: int, end_stream: int, block: bytes) -> None:
        request = self._request(block)
        call = self._calls.get(sid)
        if call is not None:  # the client's trailers
            if end_stream:
                self._remote_end(call)
            return
        if sid <= self._last_id or not sid & 1:
            return  # a stream that already ended on our side
        self._last_id = sid
        if self._closing:
            self._control(fr.rst_stream(sid, fr.ErrorCode.REFUSED_STREAM))
            return
        server = self.server
        handler = server.lookup(request.path, request.metadata)
        if handler is None:
            unknown = server.unknown(request.path)
            self._reject(sid, end_stream, grpc.StatusCode.UNIMPLEMENTED, unknown)
            return
        if request.encoding and request.encoding != "identity":
            self._reject(
                sid,
                end_stream,
                grpc.StatusCode.UNIMPLEMENTED,
                f'grpc: Decompressor is not installed for grpc-encoding "{request.encoding}"',
            )
            return
        deadline = None
        if request.timeout is not None:
            deadline = time.monotonic() + request.timeout
        with self.lock:
            call = Call(
                self, sid, request.path, handler, request.metadata, deadline, self._peer_window
            )
            self._calls[sid] = call
        if deadline is not None:  # weak: an ended call's entry keeps nothing alive
            server.deadlines.add(deadline, partial(_expire, weakref.ref(self), weakref.ref(call)))
        if handler.request_streaming:
            call.cond = threading.Condition(self.lock)
            if end_stream:
                call.remote_closed = True
            self._submit(call, None, False)
        elif end_stream:
            self._remote_end(call)

    def _on_data(self, sid: int, flags: int, payload: memoryview, length: int) -> None:
        call = self._calls.get(sid)
        if call is None or call.remote_closed:
            if length:
                with self.lock:
                    self._give_back(None, length)
            return
        if not length:  # grpc-go half-closes with an empty DATA frame
            if flags & fr.END_STREAM:
                self._remote_end(call)
            return
        rbuf = call.rbuf
        got: list[bytes] = []
        size = len(payload)
        if not rbuf and size >= 5 and size == 5 + int.from_bytes(payload[1:5]) and not payload[0]:
            got.append(bytes(payload[5:]))  # the common case: one whole message in one frame
        elif size:
            rbuf += payload
            while len(rbuf) >= 5:
                if rbuf[0]:
                    self._fail_input(
                        call,
                        length,
                        grpc.StatusCode.INTERNAL,
                        "grpc: compressed flag set with identity or empty encoding",
                    )
                    return
                n = int.from_bytes(rbuf[1:5])
                limit = self.server.max_receive
                if limit >= 0 and n > limit:
                    self._fail_input(
                        call,
                        length,
                        grpc.StatusCode.RESOURCE_EXHAUSTED,
                        f"grpc: received message larger than max ({n} vs. {limit})",
                    )
                    return
                if len(rbuf) < 5 + n:
                    break
                got.append(bytes(rbuf[5 : 5 + n]))
                del rbuf[: 5 + n]
        if got and got[0] and len(got[0]) > self.server.max_receive >= 0:
            n = len(got[0])
            self._fail_input(
                call,
                length,
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"grpc: received message larger than max ({n} vs. {self.server.max_receive})",
            )
            return
        with self.lock:
            if got:
                call.messages.extend(got)
                for m in got:
                    call.queued += len(m)
                if call.cond is not None:
                    call.cond.notify_all()
            if call.queued > QUEUE_LIMIT and call.handler.request_streaming:
                # only the stream's credit waits for the handler: held-back connection
                # credit would let a few slow streams (or ones that end before their
                # handler takes what was queued) stall every other stream for good
                call.deferred += length
                self._give_back(None, length)
            else:
                self._give_back(call, length)
        if flags & fr.END_STREAM:
            self._remote_end(call)

    def _fail_input(self, call: Call, length: int, code: grpc.StatusCode, message: str) -> None:
        with self.lock:
            self._give_back(None, length)
        self._abandon(call, code, message, _TRAILERS)

    def _remote_end(self, call: Call) -> None:
        """The client half-closed ``call``: end its input, or run it if it is unary."""
        with self.lock:
            call.remote_closed = True
            if call.handler.request_streaming:
                if call.cond is not None:
                    call.cond.notify_all()
                return
            if call.ended:
                return
            if len(call.messages) != 1 or call.rbuf:
                count = len(call.messages)
                raw = None
            else:
                raw = call.messages.popleft()
                call.queued = 0
        if raw is None:
            self._abandon(
                call,
                grpc.StatusCode.INTERNAL if count else grpc.StatusCode.UNIMPLEMENTED,
                f"grpc: unary call with {count} request messages",
                _TRAILERS,
            )
            return
        policy = self.server.inline.get(call.path)
        if policy is None:
            self._submit(call, raw, True)
            return
        deserialize = call.handler.request_deserializer
        try:
            request = deserialize(raw) if deserialize is not None else raw
        except Exception:
            self._abandon(
                call, grpc.StatusCode.INTERNAL, "Exception deserializing request!", _TRAILERS
            )
            return
        bound = policy(request)
        # the windows count only what was written: output still queued takes from them too
        if bound is not None and bound <= min(
            self._send_window - self._pending_out, call.send_window
        ):
            run(call, request, deserialize=False, inline=True)
        else:
            self._submit(call, request, False)

    def _submit(self, call: Call, argument: Any, deserialize: bool) -> None:
        if call.cond is None:
            call.cond = threading.Condition(self.lock)
        try:
            self.server.executor.submit(run, call, argument, deserialize=deserialize, inline=False)
        except RuntimeError:  # the pool is shut down
            self._abandon(call, grpc.StatusCode.UNAVAILABLE, "server is stopping", _TRAILERS)

    def _reject(self, sid: int, end_stream: int, code: grpc.StatusCode, message: str) -> None:
        block = trailers_only(_code(code), message)
        with self.lock:
            if self._table_update:
                self._table_update = False
                block = b"\x20" + block
            self._header_frames(self._ctrl, sid, block, True)
            if not end_stream:
                self._ctrl.append(fr.rst_stream(sid, fr.ErrorCode.NO_ERROR))
            self._dirty = True  # flushed after the batch

    def _control(self, frame: bytes) -> None:
        with self.lock:
            self._ctrl.append(frame)
            self._dirty = True

    def _give_back(self, call: Call | None, n: int, *, connection: bool = True) -> None:
        """Return ``n`` received bytes to the client's windows (lock held): the
        connection's (unless ``connection`` is False) and ``call``'s stream's."""
        if not n:
            return
        if connection:
            self._credit += n
            if self._credit >= CONNECTION_WINDOW // 4:
                self._ctrl.append(fr.window_update(0, self._credit))
                self._credit = 0
                self._dirty = True
        if call is not None and not call.remote_closed:
            call.credit += n
            if call.credit >= STREAM_WINDOW // 4:
                self._ctrl.append(fr.window_update(call.id, call.credit))
                call.credit = 0
                self._dirty = True

    # -- what handlers (rpc.run, RequestIterator, Context) call ---------------

    def next_message(self, call: Call) -> bytes | None:
        """The next request message of a streaming call; None at the client's half-close.

        Raises CallCancelled when the call ended under the handler.
        """
        cond = call.cond
        assert cond is not None
        with self.lock:
            while True:
                if call.cancelled:  # even with messages queued: none is handled after a cancel
                    raise CallCancelled()
                if call.messages:
                    break
                if call.ended or call.remote_closed:
                    return None
                cond.wait()
            raw = call.messages.popleft()
            call.queued -= len(raw)
            if call.deferred and call.queued <= QUEUE_LIMIT:
                deferred, call.deferred = call.deferred, 0
                self._give_back(call, deferred, connection=False)
        self._flush_if_dirty()
        return raw

    def send(self, call: Call, payload: bytes, *, flush: bool = True) -> bool:
        """Queue one response message; False when the call has ended (stop producing).

        With ``flush``, write what the windows allow now and wait while more
        than :data:`SEND_BUFFER` bytes of this call stay queued.
        """
        n = len(payload)
        limit = self.server.max_send
        if 0 <= limit < n:
            raise MessageTooLarge(n, limit)
        prefix = b"\x00" + n.to_bytes(4, "big")
        with self.lock:
            if call.ended:
                return False
            out = call.out
            if not call.headers_sent:
                call.headers_sent = True
                out.append((HEADERS_ITEM, (RESPONSE_HEADERS, False)))
            if n < _SMALL_MESSAGE:
                out.append((DATA_ITEM, prefix + payload))
            else:  # no copy of the body: a first frame's worth, then the rest as a view
                k = min(self._peer_frame, _DEFAULT_FRAME) - 5
                out.append((DATA_ITEM, prefix + payload[:k]))
                out.append((DATA_ITEM, memoryview(payload)[k:]))
            call.out_bytes += n + 5
            self._pending_out += n + 5
            self._ready[call.id] = call
            self._dirty = True
        if not flush:
            return True
        self._flush()
        cond = call.cond
        if cond is not None and call.out_bytes > SEND_BUFFER:
            with self.lock:
                while call.out_bytes > SEND_BUFFER and not call.ended:
                    cond.wait()
                return not call.ended
        return True

    def finish(
        self, call: Call, code: grpc.StatusCode, details: str, *, flush: bool = True
    ) -> None:
        """End ``call`` with its status (the handler is done).

        Without ``flush`` (inline calls, on the reader thread) the reader writes
        it with the rest of its batch.
        """
        with self.lock:
            if call.ended:
                return
            self._end(call, code, details, _TRAILERS)
            callbacks = self._take_callbacks(call)
        if flush:
            self._flush()
        _run_callbacks(callbacks)

    def fail(self, call: Call, code: grpc.StatusCode, details: str) -> None:
        """End ``call`` with an error while its handler may still run (it sees is_active False)."""
        self._abandon(call, code, details, _TRAILERS)

    def cancel(self, call: Call, code: grpc.StatusCode, details: str) -> None:
        self._abandon(call, code, details, _RESET)

    def expire(self, call: Call) -> None:
        """The call's deadline passed."""
        self._abandon(call, grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded", _TRAILERS)

    def _abandon(self, call: Call, code: grpc.StatusCode, details: str, how: int) -> None:
        with self.lock:
            if call.ended:
                return
            call.cancelled = True
            q = call.out
            if q and q[0][0] == HEADERS_ITEM and not q[0][1][1]:
                call.headers_sent = False  # queued, never written: the end is trailers-only
            q.clear()  # queued output is dropped
            self._pending_out -= call.out_bytes
            call.out_bytes = 0
            self._end(call, code, details, how)
            callbacks = self._take_callbacks(call)
        self._flush()
        _run_callbacks(callbacks)

    def _end(self, call: Call, code: grpc.StatusCode, details: str, how: int) -> None:
        """Queue the end of ``call`` (lock held)."""
        call.ended = True
        self._calls.pop(call.id, None)
        if how == _TRAILERS:
            if call.headers_sent:
                block = status_block(_code(code), details)
            else:
                block = trailers_only(_code(code), details)
            call.out.append((HEADERS_ITEM, (block, True)))
            if not call.remote_closed:
                call.out.append((RST_ITEM, fr.ErrorCode.NO_ERROR))
        elif how == _RESET:
            call.out.append((RST_ITEM, fr.ErrorCode.CANCEL))
        if call.out:
            self._ready[call.id] = call
            self._dirty = True
        else:
            self._ready.pop(call.id, None)
        if call.cond is not None:
            call.cond.notify_all()

    @staticmethod
    def _take_callbacks(call: Call) -> list[Callable[[], None]]:
        callbacks = call.callbacks or []
        call.callbacks = None
        return callbacks

    # -- output ------------------------------------------------------------------

    def _flush_if_dirty(self) -> None:
        if self._dirty:
            self._flush()

    def _flush(self) -> None:
        """Write what is queued and the windows allow, unless another thread is writing."""
        while True:
            if not self._wlock.acquire(blocking=False):
                return  # the writer re-checks after it lets go
            try:
                while True:
                    with self.lock:
                        if not self._dirty or self._broken:
                            break
                        bufs, total = self._collect()
                    if bufs:
                        self._write(bufs, total)
            except OSError as err:
                log.debug("writing to %s failed: %s", self.peer, err)
                self._break()
            finally:
                self._wlock.release()
            with self.lock:
                if not self._dirty or self._broken:
                    close = self._closing and not self._calls and not self._ready
                    break
        if close:
            self.close()

    def _collect(self) -> tuple[list[Any], int]:
        """Frames to write now and their size (lock held): control frames, then calls' output."""
        self._dirty = False
        out: list[Any] = self._ctrl
        self._ctrl = []
        total = 0
        for frame in out:
            total += len(frame)
        if not self._ready:
            return out, total
        maxf = self._peer_frame
        pack = _HEADER.pack
        append = out.append
        for sid, call in list(self._ready.items()):
            q = call.out
            while q:
                kind, item = q[0]
                if kind == DATA_ITEM:
                    window = self._send_window
                    if call.send_window < window:
                        window = call.send_window
                    n = len(item)
                    if n <= window and n <= maxf:  # the usual case: one frame
                        append(pack(n << 8 | _DATA, 0, sid))
                        append(item)
                        q.popleft()
                    elif window <= 0:
                        break
                    else:  # frames of at most maxf, as far as the window goes
                        if n > window:
                            n = window
                        view = item if isinstance(item, memoryview) else memoryview(item)
                        pos = 0
                        while pos < n:
                            m = n - pos
                            if m > maxf:
                                m = maxf
                            append(pack(m << 8 | _DATA, 0, sid))
                            append(view[pos : pos + m])
                            pos += m
                        if n < len(view):
                            q[0] = (kind, view[n:])
                        else:
                            q.popleft()
                        total += 9 * (n // maxf)
                    total += n + 9
                    self._send_window -= n
                    call.send_window -= n
                    call.out_bytes -= n
                    self._pending_out -= n
                elif kind == HEADERS_ITEM:
                    block, end_stream = item
                    if self._table_update:
                        self._table_update = False
                        block = b"\x20" + block
                    if len(block) <= maxf:
                        flags = fr.END_HEADERS | fr.END_STREAM if end_stream else fr.END_HEADERS
                        append(pack(len(block) << 8 | fr.HEADERS, flags, sid))
                        append(block)
                    else:
                        self._header_frames(out, sid, block, end_stream)
                    total += len(block) + 9 * (1 + len(block) // maxf)
                    q.popleft()
                else:
                    append(fr.rst_stream(sid, item))
                    total += 13
                    q.popleft()
            if not q:
                del self._ready[sid]
            if call.cond is not None and call.out_bytes <= SEND_BUFFER:
                call.cond.notify_all()
        return out, total

    def _header_frames(self, out: list[Any], sid: int, block: bytes, end_stream: bool) -> None:
        maxf = self._peer_frame
        flags = fr.END_STREAM if end_stream else 0
        if len(block) <= maxf:
            out.append(_HEADER.pack(len(block) << 8 | fr.HEADERS, flags | fr.END_HEADERS, sid))
            out.append(block)
            return
        chunks = [block[i : i + maxf] for i in range(0, len(block), maxf)]
        for i, chunk in enumerate(chunks):
            ftype = fr.HEADERS if i == 0 else fr.CONTINUATION
            last = fr.END_HEADERS if i == len(chunks) - 1 else 0
            out.append(_HEADER.pack(len(chunk) << 8 | ftype, (flags if i == 0 else 0) | last, sid))
            out.append(chunk)

    def _write(self, bufs: list[Any], total: int) -> None:
        """Send ``bufs`` (``total`` is about their size: it picks join or scatter-gather)."""
        sock = self.sock
        if total <= _JOIN_LIMIT or len(bufs) == 1:
            sock.sendall(b"".join(bufs) if len(bufs) > 1 else bufs[0])
            return
        views = [memoryview(b) for b in bufs if len(b)]
        i = 0
        while i < len(views):
            sent = sock.sendmsg(views[i : i + _IOV_MAX])
            while sent and i < len(views):
                size = len(views[i])
                if sent >= size:
                    sent -= size
                    i += 1
                else:
                    views[i] = views[i][sent:]
                    sent = 0

    # -- ending the connection ----------------------------------------------------

    def goaway(self) -> None:
        """Graceful stop: no new calls; the connection closes when its calls have ended."""
        with self.lock:
            if self._closing:
                return
            self._closing = True
            self._ctrl.append(fr.goaway(self._last_id, fr.ErrorCode.NO_ERROR))
            self._dirty = True
        self._flush()

    def cancel_all(self) -> None:
        """Cancel every call (the grace period is over); the connection then closes."""
        with self.lock:
            calls = list(self._calls.values())
        for call in calls:
            self._abandon(call, grpc.StatusCode.UNAVAILABLE, "server is stopping", _RESET)
        self.close()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)

    @property
    def idle(self) -> bool:
        """No call running and no output of an ended call still waiting for window."""
        return not self._calls and not self._ready

    def wait_closed(self, timeout: float | None) -> bool:
        return self._closed.wait(timeout)

    def _break(self) -> None:
        with self.lock:
            self._broken = True
            self._ctrl.clear()
            self._ready.clear()
            self._pending_out = 0
        self.close()

    def _lost(self) -> None:
        """The reader is done: cancel what is left, close the socket."""
        with self.lock:
            self._closing = True
            calls = list(self._calls.values())
        for call in calls:
            self._abandon(call, grpc.StatusCode.CANCELLED, "connection closed", _SILENT)
        self.close()  # a worker stuck writing to a peer that stopped reading gets an error
        with self._wlock:  # a worker may still be writing the last frames
            self._broken = True
            with contextlib.suppress(OSError):
                self.sock.close()
        self._closed.set()
        self.server.connection_closed(self)


def _integer_end(block: bytes, i: int, prefix_mask: int) -> tuple[int, int]:
    """The value of the HPACK integer at ``i`` (RFC 7541 §5.1) and where it ends."""
    value = block[i] & prefix_mask
    i += 1
    if value < prefix_mask:
        return value, i
    shift = 0
    n = len(block)
    while i < n:
        b = block[i]
        i += 1
        value += (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            break
    return value, i


def _stateless(block: bytes) -> bool:
    """True if decoding the HPACK block leaves the dynamic table unchanged.

    That is a block of indexed fields and literals without indexing / never
    indexed (RFC 7541 §6.1, §6.2.2, §6.2.3): no incremental indexing, no table
    size update.
    """
    i = 0
    n = len(block)
    try:
        while i < n:
            b = block[i]
            if b & 0x80:
                _, i = _integer_end(block, i, 0x7F)
            elif b & 0x60:  # 01xxxxxx: incremental indexing; 001xxxxx: size update
                return False
            else:
                index, i = _integer_end(block, i, 0x0F)
                if index == 0:  # a literal name
                    length, i = _integer_end(block, i, 0x7F)
                    i += length
                length, i = _integer_end(block, i, 0x7F)
                i += length
    except IndexError:
        return False
    return i == n


def _expire(conn: weakref.ref[Connection], call: weakref.ref[Call]) -> None:
    c, k = conn(), call()
    if c is not None and k is not None:
        c.expire(k)


def _run_callbacks(callbacks: list[Callable[[], None]]) -> None:
    for callback in callbacks:
        try:
            callback()
        except Exception:
            log.exception("RPC termination callback failed")
