"""The HTTP/2 + gRPC protocol core of the native engine: bytes in, events and bytes out.

No socket, lock, thread or grpcio here (the model is hyper-h2's
``H2Connection``): :meth:`H2Connection.receive` takes bytes read from the peer
and returns :class:`Event` objects; the caller queues output through the
stream methods (:meth:`~H2Connection.send_message`, :meth:`~H2Connection.finish`,
:meth:`~H2Connection.cancel`, ...) and writes what
:meth:`~H2Connection.data_to_send` returns. The server shell
(:mod:`contentd.wire.connection`) and the grpcio-free client
(:mod:`contentd.wire.client`) drive this same class; they hold their own lock
around every call into it.

State is explicit (:mod:`contentd.wire.streams`: ``ConnectionState``,
``StreamState``, ``Stream``). One window manager (:class:`Windows`) keeps both
directions' flow-control credit for the connection; each stream keeps its own.
gRPC's 5-byte message framing is read here, with its limits
(:mod:`contentd.wire.limits`); what a request's header fields must be is
checked by :mod:`contentd.wire.metadata`.

Everything received is hostile. The limits (:class:`Limits`) are advertised
where HTTP/2 can say them (SETTINGS_MAX_CONCURRENT_STREAMS,
SETTINGS_MAX_HEADER_LIST_SIZE, SETTINGS_MAX_FRAME_SIZE) and enforced either
way; what RFC 9113 calls a connection error ends the connection with GOAWAY
and the error code it prescribes, a stream error resets the stream; floods of
frames that cost us work or output (pings, settings, empty frames, resets of
running calls, queued control frames) end the connection with
``ENHANCE_YOUR_CALM``, as grpc-go and nghttp2 do.

Speed matters on the inline Read path (one RPC per 32 KiB): one
``unpack_from`` per frame, memoryviews instead of copies, a request whose
header block repeats an earlier one's bytes (and leaves the HPACK table alone)
comes from a small cache, and output frames are built in one pass over the
queues (:meth:`~H2Connection.data_to_send`).
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any, Final, Protocol

import hpack
from hpack.exceptions import HPACKError

from contentd.content import codes
from contentd.wire import frames as fr
from contentd.wire.errors import MessageTooLarge, ProtocolError
from contentd.wire.events import (
    CallStarted,
    ConnectionEnded,
    Event,
    InputChanged,
    RequestReady,
    StreamEnded,
)
from contentd.wire.limits import Limits
from contentd.wire.metadata import (
    REQUEST_PSEUDO,
    RESPONSE_HEADERS,
    RESPONSE_PSEUDO,
    Request,
    Response,
    check_fields,
    check_request,
    early_abort,
    parse_request,
    parse_response,
    stateless,
    status_block,
    trailers_only,
)
from contentd.wire.streams import NO_BODY, ConnectionState, Stream, StreamState

__all__ = [
    "CALL_DECODE",
    "RESET",
    "SEND_BUFFER",
    "SILENT",
    "TRAILERS",
    "H2Connection",
    "Handler",
    "Router",
    "Windows",
]

#: Response bytes a stream may have queued before its producer should wait for window.
SEND_BUFFER: Final = 256 << 10
_DEFAULT_WINDOW: Final = 65535
_DEFAULT_FRAME: Final = 16384
_MAX_WINDOW: Final = (1 << 31) - 1
_HEADER: Final = fr.HEADER
_U32: Final[struct.Struct] = struct.Struct(">I")
_DATA: Final = fr.DATA
_HEADERS: Final = fr.HEADERS
#: a received message up to this size is queued as ``bytes``, a larger one as the
#: ``bytearray`` it was received into (when it came in pieces)
_AS_BYTES: Final = 64 << 10
#: cached request header blocks per connection, and the largest block cached
_BLOCK_CACHE: Final = 64
_CACHED_BLOCK: Final = 1 << 10
#: CPU seconds of decoding a header block that opens a call costs no budget (a grpc-go
#: request's whole block takes about 30 µs, a 64 KiB block of Huffman literals 12 ms)
CALL_DECODE: Final = 200e-6

# queued output kinds: flow-controlled message bytes, a header block, a reset
_DATA_ITEM: Final = 0
_HEADERS_ITEM: Final = 1
_RST_ITEM: Final = 2

_OPEN: Final = StreamState.OPEN
_OPEN_CONNECTION: Final = ConnectionState.OPEN
_CLOSED_CONNECTION: Final = ConnectionState.CLOSED
_HALF_CLOSED: Final = StreamState.HALF_CLOSED_REMOTE
_FINISHED: Final = StreamState.FINISHED
_CANCELLED: Final = StreamState.CANCELLED

#: how an abandoned call is ended toward the peer
SILENT: Final = 0  # it reset the stream or is gone
TRAILERS: Final = 1  # a status (deadline, too large, ...)
RESET: Final = 2  # RST_STREAM(CANCEL): shutdown, cancel


class Handler(Protocol):
    """What the core needs of a routed method."""

    @property
    def request_streaming(self) -> bool: ...


#: request -> its method's handler, or the UNIMPLEMENTED message for an unknown ``:path``
Router = Callable[[Request], "Handler | str"]


class Windows:
    """The connection's flow-control credit, both ways (RFC 9113 §6.9).

    ``send``: what the peer lets us send. Receiving: ``recv`` is what the peer
    may still send; received bytes come back as ``credit`` and are announced
    in batches of a quarter of the window (a stream's in halves of its own);
    while more than the connection's queue limit waits in streams' message
    queues the credit is ``deferred``.
    """

    __slots__ = ("credit", "deferred", "initial", "recv", "send", "size")

    def __init__(self, size: int) -> None:
        self.size = size
        self.send = _DEFAULT_WINDOW
        self.recv = _DEFAULT_WINDOW
        self.credit = 0
        self.deferred = 0
        #: the peer's SETTINGS_INITIAL_WINDOW_SIZE: each new stream's send window
        self.initial = _DEFAULT_WINDOW

    def grow_send(self, increment: int) -> None:
        window = self.send + increment
        if window > _MAX_WINDOW:
            raise ProtocolError(fr.ErrorCode.FLOW_CONTROL_ERROR, "window above 2^31-1")
        self.send = window

    def give_back(self, n: int) -> int:
        """Return ``n`` bytes of credit; the increment to announce now, or 0."""
        self.credit += n
        if self.credit < self.size >> 2:
            return 0
        n, self.credit = self.credit, 0
        self.recv += n
        return n


class H2Connection:
    """One HTTP/2 connection's protocol state, server or client side."""

    def __init__(
        self,
        limits: Limits | None = None,
        *,
        client_side: bool = False,
        route: Router | None = None,
        cpu_clock: Callable[[], float] | None = None,
    ) -> None:
        self.limits = limits = limits or Limits()
        self.client_side = client_side
        self._route = route
        self.state = ConnectionState.OPEN if client_side else ConnectionState.PREFACE
        #: streams whose call has not ended, by id
        self.streams: dict[int, Stream] = {}
        #: highest stream id the peer opened (server) / we opened (client)
        self.last_stream_id = 0
        self.windows = Windows(limits.connection_window)
        self.peer_max_frame = _DEFAULT_FRAME
        #: response bytes queued on all streams and not handed out yet
        self.pending_out = 0
        #: streams whose queued output fell to SEND_BUFFER or below in the last
        #: :meth:`data_to_send` (their producers may go on)
        self.drained: list[Stream] = []
        #: the peer's GOAWAY: last stream id it processes
        self.goaway_received: int | None = None
        #: the start of a frame whose end is still to come (see :meth:`receive`)
        self._partial = bytearray()
        #: received bytes left unhandled when the header-decode budget ran out
        self._held = b""
        #: a DATA frame whose payload is still coming (see :meth:`_data`): its bytes
        #: still to come, its flags and length, and its stream (None: they are dropped)
        self._dleft = 0
        self._dflags = 0
        self._dlen = 0
        self._dstream: Stream | None = None
        self._events: list[Event] = []
        self._ctrl: list[bytes] = []
        self._ready: dict[int, Stream] = {}
        #: something is queued that :meth:`data_to_send` may hand out
        self.wants_write = False
        self._preface_done = client_side
        self._next_id = 1
        self._queued = 0
        self._table_update = False
        self._decoder = hpack.Decoder()
        self._decoder.max_header_list_size = limits.max_header_list_size
        self._continued: tuple[int, int, bytearray] | None = None
        self._blocks: dict[bytes, tuple[int, Request | None, Any]] = {}
        self._max_streams = limits.max_concurrent_streams
        self._stream_window = limits.stream_window
        self._generation = 0
        # flood accounting
        self._excess_resets = 0
        self._idle_control = 0
        self._empty = 0
        # header-decode accounting (None: none): CPU seconds still allowed, and when
        # :meth:`pace` last refilled them
        self._cpu = cpu_clock
        self._budget = limits.header_decode_burst
        self._budget_at: float | None = None

    # -- start ---------------------------------------------------------------

    def initiate(self) -> None:
        """Queue our side's opening: the preface (client), SETTINGS, the connection window."""
        lim = self.limits
        if self.client_side:
            self._ctrl.append(fr.PREFACE)
            settings = {fr.Setting.ENABLE_PUSH: 0}
        else:
            settings = {
                fr.Setting.MAX_CONCURRENT_STREAMS: lim.max_concurrent_streams,
                fr.Setting.MAX_FRAME_SIZE: lim.max_frame_size,
                fr.Setting.MAX_HEADER_LIST_SIZE: lim.max_header_list_size,
            }
        settings[fr.Setting.INITIAL_WINDOW_SIZE] = lim.stream_window
        self._ctrl.append(fr.settings(settings))
        if lim.connection_window > _DEFAULT_WINDOW:
            self._ctrl.append(fr.window_update(0, lim.connection_window - _DEFAULT_WINDOW))
            self.windows.recv = lim.connection_window
        self.wants_write = True

    @property
    def output_streams(self) -> list[int]:
        """Streams with output queued (ended ones included)."""
        return list(self._ready)

    @property
    def idle(self) -> bool:
        """No call running and no output of an ended call still waiting for window."""
        return not self.streams and not self._ready

    # -- fair share --------------------------------------------------------------

    @property
    def throttled(self) -> bool:
        """The peer's header blocks used up the decode budget: :meth:`receive` stopped
        after the block that did, keeping the bytes after it; wait :meth:`pace` seconds,
        then receive again (``b""`` goes on with them)."""
        return self._budget < 0

    def pace(self, now: float) -> float:
        """Refill the header-decode budget up to ``now`` (monotonic seconds); how long
        to wait before receiving more (0: go on).

        The CPU spent decoding header blocks that open no call, and what a block
        that opens one costs beyond :data:`CALL_DECODE`, comes out of a token bucket
        of :attr:`Limits.header_decode_burst` seconds refilled at
        :attr:`Limits.header_decode_rate` per second. The shell calls this when the
        connection is :attr:`throttled` (and once at its start): the refill is
        measured between those calls, so a connection that stayed idle long gets at
        most twice the burst before its first pause.
        """
        lim = self.limits
        budget = self._budget
        if self._budget_at is not None and now > self._budget_at:
            budget += (now - self._budget_at) * lim.header_decode_rate
            if budget > lim.header_decode_burst:
                budget = lim.header_decode_burst
        self._budget = budget
        self._budget_at = now
        if budget >= 0:
            return 0.0
        return -budget / lim.header_decode_rate

    # -- input -----------------------------------------------------------------

    def receive(self, data: bytes | memoryview) -> list[Event]:
        """Take bytes read from the peer; what happened, in order.

        Nothing keeps a reference to ``data`` after this returns (what is kept is
        copied: a frame or message begun, bytes held back, header blocks), so the
        caller may read into the same buffer again.

        A connection error queues GOAWAY and ends in a :class:`ConnectionEnded`
        event; everything after it is ignored.
        """
        events = self._events = []
        if self.state is ConnectionState.CLOSED:
            return events
        try:
            if not self._preface_done:
                buf = bytes(self._partial) + data
                self._partial = bytearray()
                n = len(fr.PREFACE)
                if buf[:n] != fr.PREFACE[: len(buf)]:
                    raise ProtocolError(fr.ErrorCode.PROTOCOL_ERROR, "bad connection preface")
                if len(buf) < n:
                    self._partial = bytearray(buf)
                    return events
                data = buf[n:]
                self._preface_done = True
            if self._held:  # what the decode budget left unhandled comes first
                data = self._held + data if data else self._held
                self._held = b""
            if self._dleft:
                start = self._more_data(data)
            elif self._partial:
                start = self._complete(data)
            else:
                start = 0
            if start < 0:
                return events
            if self._budget < 0:  # that frame used up the budget: the rest after pace()
                if start < len(data):
                    self._held = bytes(memoryview(data)[start:])
                return events
            used = self._frames(data, start)
            if used < len(data):
                rest = memoryview(data)[used:]
                if self._budget < 0:  # frames not handled yet (at most what one read brought)
                    self._held = bytes(rest)
                else:  # a frame begun: only its bytes are kept
                    self._partial = bytearray(rest)
        except ProtocolError as err:
            self._partial = bytearray()
            self._held = b""
            self._dleft = 0
            self._dstream = None
            self.close(err.code, str(err))
        return events

    def _complete(self, data: bytes | memoryview) -> int:
        """Finish the frame an earlier read began with the start of ``data``: where in
        ``data`` the next frame begins, or -1 when ``data`` did not complete it.

        Only the frame's own bytes are copied (a read that ends inside a frame is the
        rule: with 16 KiB frames, nearly every read), and a frame larger than a read
        grows in one buffer rather than being joined again with every read.
        """
        partial = self._partial
        start = 0
        if len(partial) < 9:  # its header is not complete yet
            start = 9 - len(partial)
            partial += data[:start]
            if len(partial) < 9:
                return -1
        length = int.from_bytes(partial[:3])
        if length > self.limits.max_frame_size:
            raise ProtocolError(fr.ErrorCode.FRAME_SIZE_ERROR, f"frame of {length} bytes")
        stop = start + 9 + length - len(partial)
        if len(partial) == 9 and partial[3] == _DATA and not partial[4] & fr.PADDED:
            # a DATA frame's payload goes to its stream as it comes, not assembled here
            self._partial = bytearray()
            if self.state is _CLOSED_CONNECTION:
                return len(data)
            flags = partial[4]
            self._check_order(_DATA, flags)
            sid = int.from_bytes(partial[5:9]) & 0x7FFFFFFF
            return self._data(sid, flags, length, memoryview(data), start, len(data))
        if stop > len(data):
            partial += memoryview(data)[start:]
            return -1
        partial += memoryview(data)[start:stop]
        # a new buffer for the next partial frame: what handles this one may still hold
        # views of it (a bytearray with views cannot be resized)
        self._partial = bytearray()
        self._frames(partial, 0)
        return stop

    def _frames(self, data: bytes | bytearray | memoryview, off: int) -> int:
        """Handle the complete frames of ``data`` from ``off`` on; where the first
        incomplete one begins (``len(data)`` when none is)."""
        unpack = _HEADER.unpack_from
        view = memoryview(data)
        end = len(data)
        max_frame = self.limits.max_frame_size
        while end - off >= 9:
            if self.state is _CLOSED_CONNECTION:
                return end
            # typed: mypyc then does the shifts, masks and comparisons below on native
            # ints (untyped, each was a generic Python number operation: ~40 a Read call)
            header: tuple[int, int, int] = unpack(data, off)
            word, flags, sid = header
            length = word >> 8
            if length > max_frame:
                raise ProtocolError(fr.ErrorCode.FRAME_SIZE_ERROR, f"frame of {length} bytes")
            start = off + 9
            ftype = word & 0xFF
            if end - start < length and (ftype != _DATA or flags & fr.PADDED):
                break  # (a DATA frame's payload is handled as it comes: see _data)
            off = start + length
            sid &= 0x7FFFFFFF
            if self._continued is not None or self.state is ConnectionState.PREFACE:
                self._check_order(ftype, flags)
            if ftype == _DATA:
                if flags & fr.PADDED:
                    self._on_padded_data(sid, flags, view[start:off], length)
                else:
                    off = self._data(sid, flags, length, view, start, end)
            elif ftype == _HEADERS:
                self._on_headers_frame(sid, flags, view[start:off])
                if self._budget < 0:
                    break  # the rest waits for pace()
            elif ftype == fr.WINDOW_UPDATE:
                if length != 4:
                    raise ProtocolError(fr.ErrorCode.FRAME_SIZE_ERROR, "WINDOW_UPDATE size")
                increment: int = _U32.unpack_from(data, start)[0]
                self._on_window_update(sid, increment & 0x7FFFFFFF)
            elif ftype == fr.CONTINUATION:
                self._on_continuation(sid, flags, view[start:off])
                if self._budget < 0:
                    break
            elif ftype == fr.PING:
                self._on_ping(sid, flags, view[start:off])
            elif ftype == fr.SETTINGS:
                self._on_settings(sid, flags, bytes(view[start:off]))
            elif ftype == fr.RST_STREAM:
                if sid == 0:
                    raise ProtocolError(fr.ErrorCode.PROTOCOL_ERROR, "RST_STREAM on stream 0")
                if length != 4:
                    raise ProtocolError(fr.ErrorCode.FRAME_SIZE_ERROR, "RST_STREAM size")
                self._on_reset(sid, _U32.unpack_from(data, start)[0])
            elif ftype == fr.PRIORITY:
                if sid == 0:
                    raise ProtocolError(fr.ErrorCode.PROTOCOL_ERROR, "PRIORITY on stream 0")
                if length != 5:
                    self._stream_error(sid, fr.ErrorCode.FRAME_SIZE_ERROR)
            elif ftype == fr.GOAWAY:
                if sid != 0:
                    raise ProtocolError(fr.ErrorCode.PROTOCOL_ERROR, "GOAWAY on a stream")
                if length < 8:
                    raise ProtocolError(fr.ErrorCode.FRAME_SIZE_ERROR, "GOAWAY size")
                self._on_goaway(data, start, off)
            elif ftype == fr.PUSH_PROMISE:
                raise ProtocolError(fr.ErrorCode.PROTOCOL_ERROR, "PUSH_PROMISE")
            # unknown frame types are ignored (RFC 9113 §4.1)
        return off

    def _check_order(self, ftype: int, flags: int) -> None:
        """A frame may come now: no header block is being continued, and the preface
        ended with SETTINGS."""
        if self._continued is not None and ftype != fr.CONTINUATION:
            raise ProtocolError(fr.ErrorCode.PROTOCOL_ERROR, "expected CONTINUATION")
        if self.state is ConnectionState.PREFACE:  # the preface ends with a SETTINGS frame
            if ftype != fr.SETTINGS or flags & fr.ACK:
                raise ProtocolError(fr.ErrorCode.PROTOCOL_ERROR, "first frame not SETTINGS")
            self.state = ConnectionState.OPEN

    def _check_control(self) -> None:
        """A PING or SETTINGS arrived: bound the ones in a row, and the acks queued."""
        self._idle_control += 1
        if self._idle_control > self.limits.max_idle_control:
            raise ProtocolError(fr.ErrorCode.ENHANCE_YOUR_CALM, "too_many_pings")
        if len(self._ctrl) >= self.limits.max_control_frames:
            raise ProtocolError(fr.ErrorCode.ENHANCE_YOUR_CALM, "too many queued control frames")

    def _on_ping(self, sid: int, flags: int, payload: memoryview) -> None:
        if sid != 0:
            raise ProtocolError(fr.ErrorCode.PROTOCOL_ERROR, "PING on a stream")
        if len(payload) != 8:
            raise ProtocolError(fr.ErrorCode.FRAME_SIZE_ERROR, "PING size")
        if flags & fr.ACK:
            return
        self._check_control()
        self._ctrl.append(fr.ping(bytes(payload), ack=True))
        self.wants_write = True

    def _on_settings(self, sid: int, flags: int, payload: bytes) -> None:
        if sid != 0:
            raise ProtocolError(fr.ErrorCode.PROTOCOL_ERROR, "SETTINGS on a stream")
        if flags & fr.ACK:
            if payload:
                raise ProtocolError(fr.ErrorCode.FRAME_SIZE_ERROR, "SETTINGS ack with a payload")
            return
        self._check_control()
        try:
            values = fr.parse_settings(payload)
        except ValueError as err:
            raise ProtocolError(fr.ErrorCode.FRAME_SIZE_ERROR, str(err)) from None
        windows = self.windows
        for key, value in values:
            if key == fr.Setting.INITIAL_WINDOW_SIZE:
                if value > _MAX_WINDOW:
                    raise ProtocolError(fr.ErrorCode.FLOW_CONTROL_ERROR, "INITIAL_WINDOW_SIZE")
                delta = value - windows.initial
                windows.initial = value
                # a stream with output queued may have ended: it is in _ready only
                for stream in {**self._ready, **self.streams}.values():
                    stream.send_window += delta
                    if stream.send_window > _MAX_WINDOW:
                        raise ProtocolError(fr.ErrorCode.FLOW_CONTROL_ERROR, "window above 2^31-1")
                if delta > 0 and self._ready:
                    self.wants_write = True
            elif key == fr.Setting.MAX_FRAME_SIZE:
                if not _DEFAULT_FRAME <= value <= (1 << 24) - 1:
                    raise ProtocolError(fr.ErrorCode.PROTOCOL_ERROR, "MAX_FRAME_SIZE")
                self.peer_max_frame = value
            elif key == fr.Setting.ENABLE_PUSH:
                if value > 1 or (self.client_side and value):
                    raise ProtocolError(fr.ErrorCode.PROTOCOL_ERROR, "ENABLE_PUSH")
            elif key == fr.Setting.HEADER_TABLE_SIZE and value < 4096:
                self._table_update = True  # we index nothing, but must say our table shrank
        self._ctrl.append(fr.settings(ack=True))
        self.wants_write = True

    def _on_window_update(self, sid: int, increment: int) -> None:
        if sid == 0:
            if not increment:
                raise ProtocolError(fr.ErrorCode.PROTOCOL_ERROR, "WINDOW_UPDATE of 0")
            self.windows.grow_send(increment)
        else:
            stream = self.streams.get(sid) or self._ready.get(sid)
            if stream is None:
                if sid > self.last_stream_id and not self._own(sid):
                    raise ProtocolError(fr.ErrorCode.PROTOCOL_ERROR, "WINDOW_UPDATE on idle stream")
                return
            if not increment:
                self._stream_error(sid, fr.ErrorCode.PROTOCOL_ERROR)
                return
            window = stream.send_window + increment
            if window > _MAX_WINDOW:
                self._stream_error(sid, fr.ErrorCode.FLOW_CONTROL_ERROR)
                return
            stream.send_window = window
        if self._ready:
            self.wants_write = True

    def _on_goaway(self, data: bytes | bytearray | memoryview, start: int, end: int) -> None:
        last, code = struct.unpack_from(">II", data, start)
        last &= 0x7FFFFFFF
        self.goaway_received = last
        if self.state is ConnectionState.OPEN:
            self.state = ConnectionState.CLOSING
        debug = bytes(data[start + 8 : min(end, start + 8 + 256)]).decode("utf-8", "replace")
        self._events.append(ConnectionEnded(code, debug, last, False))
        if self.client_side:  # calls the server will not process end now
            for stream in list(self.streams.values()):
                if stream.id > last:
                    self._close_stream(stream, _CANCELLED)
                    self._events.append(StreamEnded(stream))

    def _own(self, sid: int) -> bool:
        """``sid`` is of a stream we would open (even on a server, odd on a client)."""
        return (sid & 1) == (1 if self.client_side else 0)

    def _on_reset(self, sid: int, code: int) -> None:
        stream = self.streams.get(sid)
        if stream is None:
            if sid > self.last_stream_id and not self._own(sid):
                raise ProtocolError(fr.ErrorCode.PROTOCOL_ERROR, "RST_STREAM on idle stream")
            stream = self._ready.pop(sid, None)
            if stream is not None:  # ended here, its last output waiting for window: drop it
                self.pending_out -= stream.out_bytes
                stream.out.clear()
                stream.out_bytes = 0
                self.drained.append(stream)
            return
        if not self.client_side:
            if _answered(stream):
                # the peer had its answer (containerd's proxy ReaderAt cancels each Read
                # once it has the bytes, often before the trailers): a completed call
                if self._excess_resets:
                    self._excess_resets -= 1
            else:
                # rapid reset (CVE-2023-44487): a call the peer resets while it runs
                # costs handler work for nothing
                self._excess()
        self._drop_output(stream)
        self._close_stream(stream, _CANCELLED)
        if self.client_side and stream.response is not None and stream.response.status is None:
            stream.response.reset_code = code
        self._events.append(StreamEnded(stream))

    def _excess(self) -> None:
        """A stream that cost work for nothing (reset while running, or refused): beyond
        :attr:`Limits.max_excess_resets` more of them than calls completed, the
        connection ends with ENHANCE_YOUR_CALM."""
        self._excess_resets += 1
        if self._excess_resets > self.limits.max_excess_resets:
            raise ProtocolError(fr.ErrorCode.ENHANCE_YOUR_CALM, "too many streams reset or refused")

    # -- headers

    def _on_headers_frame(self, sid: int, flags: int, payload: memoryview) -> None:
        if sid == 0:
            raise ProtocolError(fr.ErrorCode.PROTOCOL_ERROR, "HEADERS on stream 0")
        if flags & fr.PADDED:
            payload = _unpad(payload)
        if flags & fr.PRIORITY_FLAG:
            if len(payload) < 5:
                raise ProtocolError(fr.ErrorCode.FRAME_SIZE_ERROR, "HEADERS priority size")
            payload = payload[5:]
        if flags & fr.END_HEADERS:
            if len(payload) > self.limits.max_header_list_size:
                raise ProtocolError(fr.ErrorCode.PROTOCOL_ERROR, "header block too large")
            self._on_headers(sid, flags & fr.END_STREAM, bytes(payload))
        else:
            self._continued = (sid, flags, bytearray(payload))
            self._check_block(self._continued[2], len(payload))

    def _on_continuation(self, sid: int, flags: int, payload: memoryview) -> None:
        if sid == 0:
            raise ProtocolError(fr.ErrorCode.PROTOCOL_ERROR, "CONTINUATION on stream 0")
        if self._continued is None or self._continued[0] != sid:
            raise ProtocolError(fr.ErrorCode.PROTOCOL_ERROR, "unexpected CONTINUATION")
        block = self._continued[2]
        block += payload
        self._check_block(block, len(payload))
        if flags & fr.END_HEADERS:
            _, first, _ = self._continued
            self._continued = None
            self._on_headers(sid, first & fr.END_STREAM, bytes(block))

    def _check_block(self, block: bytearray, added: int) -> None:
        """A header block being assembled stays within the limit before END_HEADERS
        (CONTINUATION floods: CVE-2024-27316 and kin)."""
        if len(block) > self.limits.max_header_list_size:
            raise ProtocolError(fr.ErrorCode.PROTOCOL_ERROR, "header block too large")
        if not added:
            self._empty_frame()

    def _empty_frame(self) -> None:
        self._empty += 1
        if self._empty > self.limits.max_empty_frames:
            raise ProtocolError(fr.ErrorCode.ENHANCE_YOUR_CALM, "too many empty frames")

    def _decode(self, block: bytes) -> list[tuple[bytes, bytes]]:
        try:
            fields: Any = self._decoder.decode(block, raw=True)
        except HPACKError as err:
            raise ProtocolError(fr.ErrorCode.COMPRESSION_ERROR, str(err)) from None
        return list(fields)

    def _request(self, block: bytes) -> tuple[Request | None, Any]:
        """A request's header block decoded and judged: ``(request, verdict)``, the verdict
        being its method's handler, a header block that refuses it, or (request None)
        why the block is malformed. From the cache when that gives the same result.

        A block that adds nothing to the decoder's dynamic table (indexed fields and
        literals without indexing) leaves it as it was, so while no other block
        changed the table, the same bytes decode to the same request: a client
        repeating a call sends the same few bytes.
        """
        cached = self._blocks.get(block)
        if cached is not None and cached[0] == self._generation:
            return cached[1], cached[2]
        cpu = self._cpu
        start = cpu() if cpu is not None else 0.0
        fields = self._decode(block)
        bad = check_fields(fields, REQUEST_PSEUDO)
        if bad is not None:
            if not stateless(block):
                self._generation += 1
            if cpu is not None:
                self._budget -= cpu() - start
            return None, bad
        request = parse_request(fields)
        verdict: Any
        problem = check_request(request)
        if problem is not None:
            verdict = early_abort(*problem)
        else:
            assert self._route is not None
            verdict = self._route(request)
            if isinstance(verdict, str):
                verdict = trailers_only(codes.UNIMPLEMENTED, verdict)
        if stateless(block):
            if len(block) <= _CACHED_BLOCK:
                if len(self._blocks) >= _BLOCK_CACHE:
                    self._blocks.clear()
                self._blocks[block] = (self._generation, request, verdict)
        else:
            self._generation += 1
        if cpu is not None:
            cost = cpu() - start
            if type(verdict) is not bytes:  # it opens a call: the call's allowance first
                cost -= CALL_DECODE
            if cost > 0:
                self._budget -= cost
        return request, verdict

    def _keep_table(self, block: bytes) -> None:
        """Decode a header block whose request is not served, for the HPACK table's sake
        (nothing to do when the same bytes decoded earlier left the table alone)."""
        cached = self._blocks.get(block)
        if cached is not None and cached[0] == self._generation:
            return
        cpu = self._cpu
        start = cpu() if cpu is not None else 0.0
        self._decode(block)
        if not stateless(block):
            self._generation += 1
        if cpu is not None:
            self._budget -= cpu() - start

    def _on_headers(self, sid: int, end_stream: int, block: bytes) -> None:
        self._idle_control = 0
        if block:
            self._empty = 0
        if self.client_side:
            self._on_response_headers(sid, end_stream, block)
            return
        stream = self.streams.get(sid)
        if stream is not None:  # the client's trailers: decoded for the table's sake only
            self._keep_table(block)
            if not end_stream:
                raise ProtocolError(fr.ErrorCode.PROTOCOL_ERROR, "trailers without END_STREAM")
            if stream.state is _HALF_CLOSED:
                self._stream_error(sid, fr.ErrorCode.STREAM_CLOSED)
            else:
                self._remote_end(stream)
            return
        refused = self.state is not _OPEN_CONNECTION or len(self.streams) >= self._max_streams
        request: Request | None = None
        verdict: Any = None
        if refused:  # only the HPACK table's state matters: no checks, no route
            self._keep_table(block)
        else:
            request, verdict = self._request(block)
        if not sid & 1 or sid <= self.last_stream_id:
            # a new stream's id must be odd and above every earlier one (grpc-go ends the
            # connection too); a stream we ended and forgot is below last_stream_id
            if sid & 1 and sid in self._ready:
                return
            raise ProtocolError(fr.ErrorCode.PROTOCOL_ERROR, f"bad stream id {sid}")
        self.last_stream_id = sid
        if refused:
            if self.state is _OPEN_CONNECTION:
                # past the advertised SETTINGS_MAX_CONCURRENT_STREAMS: each one cost a
                # header block decoded and a reset queued, for nothing - counted as the
                # resets of running calls are (grpc-go refuses them one by one, forever)
                self._excess()
            self._control(fr.rst_stream(sid, fr.ErrorCode.REFUSED_STREAM))
            return
        if request is None:
            self._stream_error(sid, fr.ErrorCode.PROTOCOL_ERROR)
            return
        if type(verdict) is bytes:
            self._reject(sid, end_stream, verdict)
            return
        handler = verdict
        stream = Stream(sid, self.windows.initial, self._stream_window)
        stream.handler = handler
        stream.request = request
        stream.streaming = handler.request_streaming
        self.streams[sid] = stream
        if stream.streaming:
            if end_stream:
                stream.state = _HALF_CLOSED
            self._events.append(CallStarted(stream))
        elif end_stream:
            self._events.append(CallStarted(stream))
            self._remote_end(stream)
        else:
            self._events.append(CallStarted(stream))

    def _on_response_headers(self, sid: int, end_stream: int, block: bytes) -> None:
        # every block is decoded, whatever its stream: the HPACK table is the connection's
        fields = self._decode(block)
        stream = self.streams.get(sid)
        if stream is None:
            if sid > self.last_stream_id or not sid & 1:
                raise ProtocolError(fr.ErrorCode.PROTOCOL_ERROR, f"HEADERS on stream {sid}")
            return
        if check_fields(fields, RESPONSE_PSEUDO) is not None:
            self._stream_error(sid, fr.ErrorCode.PROTOCOL_ERROR)
            return
        assert stream.response is not None
        parse_response(stream.response, fields)
        self._events.append(InputChanged(stream))
        if end_stream:
            self._close_stream(stream, _FINISHED)
            self._events.append(StreamEnded(stream))

    # -- data

    def _data_begin(self, sid: int, length: int) -> Stream | None:
        """A DATA frame of ``length`` bytes on ``sid`` begins: its flow control is charged
        for all of it at once (RFC 9113 §6.9.1 lets a receiver judge a frame by its
        header); its stream, or None when its bytes are dropped (its credit is back)."""
        if sid == 0:
            raise ProtocolError(fr.ErrorCode.PROTOCOL_ERROR, "DATA on stream 0")
        windows = self.windows
        if length > windows.recv:
            raise ProtocolError(fr.ErrorCode.FLOW_CONTROL_ERROR, "DATA beyond the window")
        windows.recv -= length
        stream = self.streams.get(sid)
        if stream is None or stream.state is not _OPEN:
            if stream is None and sid > self.last_stream_id and not self._own(sid):
                raise ProtocolError(fr.ErrorCode.PROTOCOL_ERROR, "DATA on idle stream")
            self._give_back(None, length)
            if stream is not None:  # its input had ended (RFC 9113 §5.1)
                self._stream_error(sid, fr.ErrorCode.STREAM_CLOSED)
            return None
        if length > stream.recv_window:
            self._give_back(None, length)
            self._stream_error(sid, fr.ErrorCode.FLOW_CONTROL_ERROR)
            return None
        stream.recv_window -= length
        return stream

    def _data(
        self, sid: int, flags: int, length: int, view: memoryview, start: int, end: int
    ) -> int:
        """A DATA frame (not PADDED) whose payload begins at ``view[start]``, all of it or
        what of it came so far (up to ``end``); where in ``view`` it stops.

        Its payload's bytes go to the stream's message as they come, so each byte is
        copied once (a frame larger than a read is not assembled first); the rest of
        it is left to :meth:`_more_data`.
        """
        stream = self._data_begin(sid, length)
        stop = start + length
        incomplete = stop > end
        if incomplete:
            self._dleft = stop - end
            self._dflags = flags
            self._dlen = length
            self._dstream = stream
            stop = end
        if stream is None:
            return stop
        if not length:  # grpc-go half-closes with an empty DATA frame
            self._empty_data(stream, flags)
            return stop
        self._empty = 0
        self._idle_control = 0
        before = len(stream.messages)
        if not self._feed(stream, view[start:stop], length):
            self._dstream = None
        elif incomplete:
            if stream.streaming and len(stream.messages) != before:
                self._events.append(InputChanged(stream))
        else:
            self._data_end(stream, flags, length, before)
        return stop

    def _more_data(self, data: bytes | memoryview) -> int:
        """The next bytes of the DATA frame :meth:`_data` began, from the start of
        ``data``; where in ``data`` that frame ends (``len(data)``: not yet)."""
        left = self._dleft
        take = len(data)
        if take > left:
            take = left
        left -= take
        self._dleft = left
        stream = self._dstream
        if stream is None:
            return take
        length = self._dlen
        if stream.state is not _OPEN:  # it ended meanwhile: the rest is dropped
            self._dstream = None
            self._give_back(None, length)
            return take
        before = len(stream.messages)
        if take and not self._feed(stream, memoryview(data)[:take], length):
            self._dstream = None
        elif left:
            if stream.streaming and len(stream.messages) != before:
                self._events.append(InputChanged(stream))
        else:
            self._dstream = None
            self._data_end(stream, self._dflags, length, before)
        return take

    def _on_padded_data(self, sid: int, flags: int, payload: memoryview, length: int) -> None:
        """A whole PADDED DATA frame."""
        if sid == 0:
            raise ProtocolError(fr.ErrorCode.PROTOCOL_ERROR, "DATA on stream 0")
        payload = _unpad(payload)
        stream = self._data_begin(sid, length)
        if stream is None:
            return
        if not payload:
            self._empty_data(stream, flags, length)
            return
        self._empty = 0
        self._idle_control = 0
        before = len(stream.messages)
        if self._feed(stream, payload, length):
            self._data_end(stream, flags, length, before)

    def _empty_data(self, stream: Stream, flags: int, length: int = 0) -> None:
        self._give_back(stream, length)
        if flags & fr.END_STREAM:
            self._remote_end(stream)
        else:
            self._empty_frame()

    def _data_end(self, stream: Stream, flags: int, length: int, before: int) -> None:
        """A DATA frame's payload is all in: its credit back, the handler told of
        messages that came since ``before`` of them were queued."""
        if stream.queued > self.limits.stream_queue and stream.streaming:
            # only the stream's credit waits for the handler: the connection's comes
            # back unless all streams together hold more than the connection's limit
            stream.deferred += length
            self._give_back(None, length)
        else:
            self._give_back(stream, length)
        if stream.streaming and len(stream.messages) != before:
            self._events.append(InputChanged(stream))
        if flags & fr.END_STREAM:
            self._remote_end(stream)

    def _feed(self, stream: Stream, view: memoryview, length: int) -> bool:
        """Message bytes of ``stream`` in (part of a DATA frame of ``length`` bytes); False
        when they ended the call.

        A message's prefix is judged as soon as its 5 bytes are in (before a byte of
        the message is kept); its bytes are kept only as they come (a prefix is a
        claim: nothing is allocated for the size it declares).
        """
        pos = 0
        size = len(view)
        while pos < size:
            need = stream.rneed
            if need:  # the message begun: as much of it as is here
                take = size - pos
                if take > need:
                    take = need
                body = stream.rbody
                body += view[pos : pos + take]
                pos += take
                self._queued += take
                need -= take
                stream.rneed = need
                if not need:
                    stream.rbody = NO_BODY
                    self._queued -= len(body)
                    # a small message as bytes (cheap, and what every decoder takes); a
                    # large one as its buffer, not copied again
                    self._queue_message(stream, body if len(body) > _AS_BYTES else bytes(body))
                continue
            head = stream.rhead
            if not head and size - pos >= 5:
                compressed = view[pos]
                n = int.from_bytes(view[pos + 1 : pos + 5])
                pos += 5
            else:  # a prefix split between frames or reads
                take = 5 - len(head)
                if take > size - pos:
                    take = size - pos
                head += bytes(view[pos : pos + take])
                pos += take
                self._queued += take
                if len(head) < 5:
                    stream.rhead = head
                    return True
                compressed = head[0]
                n = int.from_bytes(head[1:5])
                stream.rhead = b""
                self._queued -= 5
            if compressed:
                self._fail_input(
                    stream,
                    length,
                    codes.INTERNAL,
                    "grpc: compressed flag set with identity or empty encoding",
                )
                return False
            limit = self.limits.max_receive_message
            if 0 <= limit < n:  # refused before a byte of it is kept
                self._fail_input(
                    stream,
                    length,
                    codes.RESOURCE_EXHAUSTED,
                    f"grpc: received message larger than max ({n} vs. {limit})",
                )
                return False
            if not stream.streaming and stream.messages:
                self._fail_input(
                    stream, length, codes.INTERNAL, "grpc: unary call with 2 request messages"
                )
                return False
            if size - pos >= n:  # all of it here (the common case): one copy
                self._queue_message(stream, bytes(view[pos : pos + n]))
                pos += n
            else:  # a buffer of its own, growing with the bytes that come
                stream.rneed = n
                stream.rbody = bytearray()
        return True

    def _queue_message(self, stream: Stream, message: bytes | bytearray) -> None:
        stream.messages.append(message)
        stream.queued += len(message)
        self._queued += len(message)

    def _fail_input(self, stream: Stream, length: int, code: int, message: str) -> None:
        self._give_back(None, length)
        if self.client_side:  # the call fails here; the server is told to stop
            assert stream.response is not None
            stream.response.status = code
            stream.response.message = message
            self.reset(stream)
        else:
            self.cancel(stream, code, message, TRAILERS)
        self._events.append(StreamEnded(stream))

    def _remote_end(self, stream: Stream) -> None:
        """The peer half-closed ``stream``: end its input, or hand out its one request
        (a client's response ended)."""
        if self.client_side:
            self._close_stream(stream, _FINISHED)
            self._events.append(StreamEnded(stream))
            return
        stream.state = _HALF_CLOSED
        if stream.streaming:
            self._events.append(InputChanged(stream))
            return
        if len(stream.messages) != 1 or stream.inside_message:
            count = len(stream.messages)
            self.cancel(
                stream,
                codes.INTERNAL if count else codes.UNIMPLEMENTED,
                f"grpc: unary call with {count} request messages",
                TRAILERS,
            )
            self._events.append(StreamEnded(stream))
            return
        message = self.take(stream)
        assert message is not None
        self._events.append(RequestReady(stream, message))

    def take(self, stream: Stream) -> bytes | bytearray | None:
        """The next received message of ``stream`` (None if none is queued); its bytes'
        credit goes back to the peer when the queues fall under their limits."""
        if not stream.messages:
            return None
        message = stream.messages.popleft()
        n = len(message)
        stream.queued -= n
        self._queued -= n
        lim = self.limits
        if stream.deferred and stream.queued <= lim.stream_queue:
            deferred, stream.deferred = stream.deferred, 0
            self._give_back(stream, deferred, connection=False)
        windows = self.windows
        if windows.deferred and self._queued <= lim.connection_queue:
            deferred, windows.deferred = windows.deferred, 0
            self._give_back(None, deferred)
        return message

    def _give_back(self, stream: Stream | None, n: int, *, connection: bool = True) -> None:
        """Return ``n`` received bytes to the peer's windows: the connection's (unless
        ``connection`` is False) and ``stream``'s."""
        if not n:
            return
        if connection:
            windows = self.windows
            if self._queued > self.limits.connection_queue:
                windows.deferred += n
            else:
                windows.credit += n
                if windows.credit >= windows.size >> 2:
                    increment = windows.give_back(0)
                    self._ctrl.append(fr.window_update(0, increment))
                    self.wants_write = True
        if stream is not None and stream.state is _OPEN:
            stream.credit += n
            # in halves of the window: a writer that waits for each reply (1 MiB Write
            # messages) gets an update every other message, not with each one (each costs
            # the reader a send just as it hands the message to the handler), and still
            # never has less than half a window to send into
            if stream.credit >= self.limits.stream_window >> 1:
                self._ctrl.append(fr.window_update(stream.id, stream.credit))
                stream.recv_window += stream.credit
                stream.credit = 0
                self.wants_write = True

    # -- errors

    def _stream_error(self, sid: int, code: int) -> None:
        """RST_STREAM(``code``) (RFC 9113 §5.4.2); a running call ends cancelled."""
        stream = self.streams.get(sid)
        if stream is not None:
            self._drop_output(stream)
            self._close_stream(stream, _CANCELLED)
            self._events.append(StreamEnded(stream))
        self._control(fr.rst_stream(sid, code))

    def _control(self, frame: bytes) -> None:
        if len(self._ctrl) >= self.limits.max_control_frames:
            raise ProtocolError(fr.ErrorCode.ENHANCE_YOUR_CALM, "too many queued control frames")
        self._ctrl.append(frame)
        self.wants_write = True

    def _reject(self, sid: int, end_stream: int, block: bytes) -> None:
        """End a stream that never became a call with ``block`` (trailers-only)."""
        if len(self._ctrl) >= self.limits.max_control_frames:
            raise ProtocolError(fr.ErrorCode.ENHANCE_YOUR_CALM, "too many queued control frames")
        self._header_frames(self._ctrl, sid, self._table_prefix(block), True)
        if not end_stream:
            self._ctrl.append(fr.rst_stream(sid, fr.ErrorCode.NO_ERROR))
        self.wants_write = True

    def close(self, code: int, message: str = "") -> None:
        """A connection error: queue GOAWAY(``code``); nothing more is received."""
        if self.state is ConnectionState.CLOSED:
            return
        self.state = ConnectionState.CLOSED
        self._continued = None
        self._ctrl.append(fr.goaway(self.last_stream_id, code, message.encode()[:256]))
        self.wants_write = True
        self._events.append(ConnectionEnded(code, message, self.last_stream_id, True))

    def goaway(self) -> bool:
        """Graceful stop: GOAWAY(NO_ERROR), no new streams; False if already stopping."""
        if self.state is not ConnectionState.OPEN:
            return False
        self.state = ConnectionState.CLOSING
        self._ctrl.append(fr.goaway(self.last_stream_id, fr.ErrorCode.NO_ERROR))
        self.wants_write = True
        return True

    # -- output ------------------------------------------------------------------

    def send_room(self, stream: Stream) -> int:
        """Bytes ``stream`` could send now without waiting, output already queued counted."""
        room = self.windows.send - self.pending_out
        return room if room < stream.send_window else stream.send_window

    def send_message(self, stream: Stream, payload: bytes) -> bool:
        """Queue one message on ``stream``; False when the call has ended (stop producing)."""
        n = len(payload)
        limit = self.limits.max_send_message
        if 0 <= limit < n:
            raise MessageTooLarge(n, limit)
        state = stream.state
        if state is not _OPEN and state is not _HALF_CLOSED:
            return False
        prefix = b"\x00" + n.to_bytes(4, "big")
        out = stream.out
        if not stream.headers_sent:
            stream.headers_sent = True
            out.append((_HEADERS_ITEM, (RESPONSE_HEADERS, False)))
        k = min(self.peer_max_frame, _DEFAULT_FRAME) - 5
        if n <= k:
            out.append((_DATA_ITEM, prefix + payload))
        else:  # a copy of a first frame's worth only (with the prefix), the rest as a view
            view = memoryview(payload)
            out.append((_DATA_ITEM, prefix + view[:k]))
            out.append((_DATA_ITEM, view[k:]))
        stream.out_bytes += n + 5
        self.pending_out += n + 5
        self._ready[stream.id] = stream
        self.wants_write = True
        return True

    def finish(self, stream: Stream, code: int, message: str) -> bool:
        """End ``stream`` with its status (its handler is done); False if it had ended."""
        if not stream.active:
            return False
        self._end(stream, code, message, TRAILERS)
        self._close_stream(stream, _FINISHED)
        if self._excess_resets:
            self._excess_resets -= 1
        return True

    def cancel(self, stream: Stream, code: int, message: str, how: int) -> bool:
        """End ``stream`` before its handler finished (``how``: :data:`SILENT`,
        :data:`TRAILERS` or :data:`RESET`); queued output is dropped. False if it had
        ended."""
        if not stream.active:
            return False
        self._drop_output(stream)
        self._end(stream, code, message, how)
        self._close_stream(stream, _CANCELLED)
        return True

    def _drop_output(self, stream: Stream) -> None:
        q = stream.out
        if q and q[0][0] == _HEADERS_ITEM and not q[0][1][1]:
            stream.headers_sent = False  # queued, never written: the end is trailers-only
        q.clear()
        self.pending_out -= stream.out_bytes
        stream.out_bytes = 0

    def _end(self, stream: Stream, code: int, message: str, how: int) -> None:
        if how == TRAILERS:
            if stream.headers_sent:
                block = status_block(code, message)
            else:
                block = trailers_only(code, message)
            stream.out.append((_HEADERS_ITEM, (block, True)))
            if stream.state is _OPEN:
                stream.out.append((_RST_ITEM, fr.ErrorCode.NO_ERROR))
        elif how == RESET:
            stream.out.append((_RST_ITEM, fr.ErrorCode.CANCEL))

    def _close_stream(self, stream: Stream, state: StreamState) -> None:
        stream.state = state
        self.streams.pop(stream.id, None)
        # a client's finished response keeps its messages for the caller to take
        if (stream.queued or stream.inside_message) and (
            state is _CANCELLED or not self.client_side
        ):
            self._queued -= stream.queued + len(stream.rhead) + len(stream.rbody)
            stream.queued = 0
            stream.messages.clear()
            stream.rhead = b""
            stream.rbody = NO_BODY
            stream.rneed = 0
            windows = self.windows
            if windows.deferred and self._queued <= self.limits.connection_queue:
                deferred, windows.deferred = windows.deferred, 0
                self._give_back(None, deferred)
        if stream.out:
            self._ready[stream.id] = stream
            self.wants_write = True
        else:
            self._ready.pop(stream.id, None)

    def _table_prefix(self, block: bytes) -> bytes:
        if self._table_update:
            self._table_update = False
            return b"\x20" + block
        return block

    def data_to_send(self) -> tuple[list[Any], int]:
        """Frames to write now and about their size: control frames, then streams'
        output as far as the windows go. Streams whose output fell to
        :data:`SEND_BUFFER` or below are left in :attr:`drained`."""
        self.wants_write = False
        out: list[Any] = self._ctrl
        self._ctrl = []
        total = 0
        for frame in out:
            total += len(frame)
        if not self._ready:
            return out, total
        windows = self.windows
        maxf = self.peer_max_frame
        pack = _HEADER.pack
        append = out.append
        drained = self.drained
        controls = len(out)
        for sid, stream in list(self._ready.items()):
            q = stream.out
            while q:
                kind, item = q[0]
                if kind == _DATA_ITEM:
                    window = windows.send
                    if stream.send_window < window:
                        window = stream.send_window
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
                    windows.send -= n
                    stream.send_window -= n
                    stream.out_bytes -= n
                    self.pending_out -= n
                elif kind == _HEADERS_ITEM:
                    block, end_stream = item
                    if self._table_update:
                        block = self._table_prefix(block)
                    if len(block) <= maxf:
                        flags = fr.END_HEADERS | fr.END_STREAM if end_stream else fr.END_HEADERS
                        append(pack(len(block) << 8 | _HEADERS, flags, sid))
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
            if stream.out_bytes <= SEND_BUFFER:
                drained.append(stream)
        if len(out) > controls:
            # the peer's PINGs in a row count against it only while we send nothing: a
            # client reading one long response pings for its window estimate (grpc-go's
            # BDP probes), and grpc-go's server forgives pings once it sent data or headers
            self._idle_control = 0
        return out, total

    def _header_frames(self, out: list[Any], sid: int, block: bytes, end_stream: bool) -> None:
        maxf = self.peer_max_frame
        flags = fr.END_STREAM if end_stream else 0
        if len(block) <= maxf:
            out.append(_HEADER.pack(len(block) << 8 | _HEADERS, flags | fr.END_HEADERS, sid))
            out.append(block)
            return
        chunks = [block[i : i + maxf] for i in range(0, len(block), maxf)]
        for i, chunk in enumerate(chunks):
            ftype = _HEADERS if i == 0 else fr.CONTINUATION
            last = fr.END_HEADERS if i == len(chunks) - 1 else 0
            out.append(_HEADER.pack(len(chunk) << 8 | ftype, (flags if i == 0 else 0) | last, sid))
            out.append(chunk)

    # -- the client side -------------------------------------------------------------

    def start_request(self, block: bytes, body: bytes | None) -> Stream:
        """Client: open a stream with request header ``block`` and, unless None, one
        whole message ``body`` that ends the request (it must fit the windows)."""
        if self.state is not ConnectionState.OPEN:
            raise ProtocolError(fr.ErrorCode.REFUSED_STREAM, "the connection is going away")
        sid = self._next_id
        self._next_id += 2
        self.last_stream_id = sid
        stream = Stream(sid, self.windows.initial, self.limits.stream_window)
        stream.response = Response()
        self.streams[sid] = stream
        self._header_frames(self._ctrl, sid, block, body is None)
        if body is not None:
            framed = b"\x00" + len(body).to_bytes(4, "big") + body
            if len(framed) > min(self.windows.send, stream.send_window):
                raise MessageTooLarge(len(framed), min(self.windows.send, stream.send_window))
            step = self.peer_max_frame
            for pos in range(0, len(framed), step):
                chunk = framed[pos : pos + step]
                last = pos + step >= len(framed)
                self._ctrl.append(fr.data(sid, chunk, end_stream=last))
            self.windows.send -= len(framed)
            stream.send_window -= len(framed)
        self.wants_write = True
        return stream

    def reset(self, stream: Stream, code: int = fr.ErrorCode.CANCEL) -> None:
        """Client: give up ``stream`` (RST_STREAM)."""
        if stream.id in self.streams:
            self._close_stream(stream, _CANCELLED)
            self._control(fr.rst_stream(stream.id, code))


def _unpad(payload: memoryview) -> memoryview:
    """A PADDED frame's content (RFC 9113 §6.1): padding as long as the frame is an error."""
    if not payload or payload[0] >= len(payload):
        raise ProtocolError(fr.ErrorCode.PROTOCOL_ERROR, "bad padding")
    return payload[1 : len(payload) - payload[0]]


def _answered(stream: Stream) -> bool:
    """Whether ``stream``'s response headers (and so its first message) left the queue:
    the peer can have read a response."""
    if not stream.headers_sent:
        return False
    q = stream.out
    return not (q and q[0][0] == _HEADERS_ITEM and not q[0][1][1])
