"""A small blocking gRPC client without grpcio: unary and server-streaming calls.

For short-lived processes such as ``contentd content ls``: importing grpcio
costs about 0.1 s (it pulls in asyncio), more than the whole call it would
make. This client speaks gRPC over HTTP/2 cleartext (prior knowledge) on one
socket, one call at a time, with nothing but the standard library and the
``hpack`` package (servers send Huffman-coded headers and use the dynamic
table; our requests are plain literals, so the encoder keeps no state).

Requests and responses are bytes; the caller serializes. A failed call raises
:class:`CallError` with the status code number and message; a transport
failure (refused, reset, GOAWAY, EOF) is UNAVAILABLE and a timeout
DEADLINE_EXCEEDED, as grpcio reports them.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import time
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Final

from contentd.api import codes
from contentd.wire import frames as fr
from contentd.wire.metadata import hpack_literal

__all__ = ["CallError", "Connection"]

#: Stream and connection receive window we advertise (flow control is replenished per MiB).
_WINDOW: Final = 16 << 20
_REPLENISH: Final = 1 << 20
_DEFAULT_WINDOW: Final = 65535
_MAX_MESSAGE: Final = 16 << 20
_MESSAGE_HEADER: Final = struct.Struct(">BI")
_U32: Final = struct.Struct(">I")
_HTTP_TO_GRPC: Final = {400: 13, 401: 16, 403: 7, 404: 12, 429: 14, 502: 14, 503: 14, 504: 14}


class CallError(Exception):
    """A call that ended with a status other than OK."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def error(self) -> Exception:
        """The ContentError of this status's kind (see :mod:`contentd.api.codes`)."""
        return codes.error_of(self.code, self.message)


def _literal(name: str | int, value: str) -> bytes:
    return hpack_literal(name if isinstance(name, int) else name.encode(), value.encode())


# :method POST (3) and :scheme http (6) are fully indexed; :path (4), :authority (1) and
# content-type (31) are indexed names with literal values. Pseudo-headers come first.
_PSEUDO: Final = b"\x83\x86"
_FIXED: Final = (
    _literal(31, "application/grpc")
    + _literal("te", "trailers")
    + _literal("user-agent", "contentd-wire-client")
)


def _percent_decode(text: str) -> str:
    if "%" not in text:
        return text
    from urllib.parse import unquote_to_bytes

    return unquote_to_bytes(text).decode("utf-8", "replace")


class _Call:
    """What one stream has received so far."""

    def __init__(self, stream_id: int) -> None:
        self.id = stream_id
        self.status: int | None = None
        self.message = ""
        self.http_status = 200
        self.buffer = bytearray()
        self.ended = False
        self.unacked = 0


class Connection:
    """One HTTP/2 connection to a gRPC server at ``address`` (a unix socket path,
    ``unix:<path>``, or ``host:port``). ``timeout`` bounds each call (seconds)."""

    def __init__(self, address: str, *, timeout: float | None = None) -> None:
        self.address = address
        self.timeout = timeout
        self._authority = "localhost"
        self._sock = self._connect(address)
        import hpack

        self._decoder = hpack.Decoder()
        self._inbuf = bytearray()
        self._next_id = 1
        self._conn_send_window = _DEFAULT_WINDOW
        self._peer_initial_window = _DEFAULT_WINDOW
        self._peer_max_frame = 16384
        self._conn_unacked = 0
        self._block = bytearray()
        self._block_ends_stream = False
        self._closed = False
        self._sock.sendall(
            fr.PREFACE
            + fr.settings({fr.Setting.ENABLE_PUSH: 0, fr.Setting.INITIAL_WINDOW_SIZE: _WINDOW})
            + fr.window_update(0, _WINDOW - _DEFAULT_WINDOW)
        )

    def _connect(self, address: str) -> socket.socket:
        path: str | None
        if address.startswith("unix://"):
            path = address[len("unix://") :]
        elif address.startswith("unix:"):
            path = address[len("unix:") :]
        elif address.startswith("/") or ":" not in address:
            path = address
        else:
            path = None
        try:
            if path is not None:
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sock.settimeout(self.timeout)
                sock.connect(path)
            else:
                host, _, port = address.rpartition(":")
                self._authority = address
                sock = socket.create_connection((host.strip("[]"), int(port)), self.timeout)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError as err:
            reason = (err.strerror or str(err)).lower()
            raise CallError(codes.UNAVAILABLE, f"connection error: {reason}") from None
        return sock

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            with contextlib.suppress(OSError):
                self._sock.sendall(fr.goaway(0, fr.ErrorCode.NO_ERROR))
            self._sock.close()

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- calls -------------------------------------------------------------------

    def unary(
        self, path: str, request: bytes, metadata: Sequence[tuple[str, str]] = ()
    ) -> bytes:
        """One unary call: the response message's bytes."""
        responses = list(self.server_stream(path, request, metadata))
        if len(responses) != 1:
            raise CallError(codes.INTERNAL, f"unary call got {len(responses)} responses")
        return responses[0]

    def server_stream(
        self, path: str, request: bytes, metadata: Sequence[tuple[str, str]] = ()
    ) -> Iterator[bytes]:
        """Send ``request`` and yield each response message as it arrives; leaving the
        loop early resets the stream (the server sees the call cancelled)."""
        call = self._start(path, request, metadata)
        try:
            while True:
                messages = self._pump(call)
                yield from messages
                if call.ended:
                    break
            self._finish(call)
        finally:
            if not call.ended and not self._closed:
                with contextlib.suppress(OSError):
                    self._sock.sendall(fr.rst_stream(call.id, fr.ErrorCode.CANCEL))

    # -- the protocol ------------------------------------------------------------

    def _start(self, path: str, request: bytes, metadata: Sequence[tuple[str, str]]) -> _Call:
        if self._closed:
            raise CallError(codes.UNAVAILABLE, "connection closed")
        call = _Call(self._next_id)
        self._next_id += 2
        block = bytearray(_PSEUDO)
        block += _literal(4, path) + _literal(1, self._authority) + _FIXED
        if self.timeout is not None:
            block += _literal("grpc-timeout", f"{max(1, int(self.timeout * 1000))}m")
        for key, value in metadata:
            block += _literal(key.lower(), value)
        if len(block) > self._peer_max_frame:
            raise CallError(codes.INTERNAL, "request headers too large")
        body = _MESSAGE_HEADER.pack(0, len(request)) + request
        out = [fr.headers(call.id, bytes(block))]
        # requests are small: one that does not fit the peer's windows is refused rather
        # than waited for
        if len(body) > min(self._conn_send_window, self._peer_initial_window):
            raise CallError(codes.RESOURCE_EXHAUSTED, "request larger than the send window")
        step = self._peer_max_frame
        for start in range(0, len(body), step):
            chunk = body[start : start + step]
            out.append(fr.data(call.id, chunk, end_stream=start + step >= len(body)))
        self._conn_send_window -= len(body)
        self._send(b"".join(out))
        return call

    def _send(self, data: bytes) -> None:
        try:
            self._sock.sendall(data)
        except TimeoutError:
            raise CallError(codes.DEADLINE_EXCEEDED, "Deadline Exceeded") from None
        except OSError as err:
            raise CallError(codes.UNAVAILABLE, f"connection error: {err}") from None

    def _recv(self) -> None:
        try:
            chunk = self._sock.recv(1 << 18)
        except TimeoutError:
            raise CallError(codes.DEADLINE_EXCEEDED, "Deadline Exceeded") from None
        except OSError as err:
            raise CallError(codes.UNAVAILABLE, f"connection error: {err}") from None
        if not chunk:
            self._closed = True
            raise CallError(codes.UNAVAILABLE, "connection error: socket closed")
        self._inbuf += chunk

    def _pump(self, call: _Call) -> list[bytes]:
        """Read until at least one frame of ``call`` arrived; the complete messages."""
        messages: list[bytes] = []
        deadline = None if self.timeout is None else time.monotonic() + self.timeout
        while not messages and not call.ended:
            if deadline is not None and time.monotonic() > deadline:
                raise CallError(codes.DEADLINE_EXCEEDED, "Deadline Exceeded")
            buf = self._inbuf
            if len(buf) < 9:
                self._recv()
                continue
            word, flags, sid = fr.HEADER.unpack_from(buf, 0)
            length = word >> 8
            if len(buf) < 9 + length:
                self._recv()
                continue
            payload = bytes(buf[9 : 9 + length])
            del buf[: 9 + length]
            self._frame(call, word & 0xFF, flags, sid & 0x7FFFFFFF, payload, messages)
        return messages

    def _frame(
        self,
        call: _Call,
        ftype: int,
        flags: int,
        sid: int,
        payload: bytes,
        messages: list[bytes],
    ) -> None:
        if ftype == fr.DATA:
            if flags & fr.PADDED:
                payload = payload[1 : len(payload) - payload[0]]
            self._conn_unacked += len(payload)
            if sid == call.id:
                call.unacked += len(payload)
                call.buffer += payload
                self._messages(call, messages)
                if flags & fr.END_STREAM:
                    call.ended = True
            self._replenish(call)
        elif ftype in (fr.HEADERS, fr.CONTINUATION):
            if ftype == fr.HEADERS:
                if flags & fr.PADDED:
                    payload = payload[1 : len(payload) - payload[0]]
                if flags & fr.PRIORITY_FLAG:
                    payload = payload[5:]
                self._block_ends_stream = bool(flags & fr.END_STREAM)
            self._block += payload
            if flags & fr.END_HEADERS:
                # every block is decoded, whatever its stream: HPACK's dynamic table
                # is shared by the whole connection
                fields = self._decoder.decode(bytes(self._block), raw=True)
                self._block.clear()
                if sid == call.id:
                    self._headers(call, fields)
                    if self._block_ends_stream:
                        call.ended = True
        elif ftype == fr.SETTINGS:
            if not flags & fr.ACK:
                for key, value in fr.parse_settings(payload):
                    if key == fr.Setting.INITIAL_WINDOW_SIZE:
                        self._peer_initial_window = value
                    elif key == fr.Setting.MAX_FRAME_SIZE:
                        self._peer_max_frame = value
                self._send(fr.settings(ack=True))
        elif ftype == fr.PING:
            if not flags & fr.ACK:
                self._send(fr.ping(payload, ack=True))
        elif ftype == fr.WINDOW_UPDATE:
            if sid == 0:  # a stream's own window only matters for its one request
                self._conn_send_window += _U32.unpack(payload)[0] & 0x7FFFFFFF
        elif ftype == fr.RST_STREAM:
            if sid == call.id:
                call.ended = True
                code = _U32.unpack(payload)[0]
                if call.status is None:
                    status = codes.CANCELLED if code == fr.ErrorCode.CANCEL else codes.INTERNAL
                    raise CallError(status, f"stream reset by the server (HTTP/2 error {code})")
        elif ftype == fr.GOAWAY:
            last = _U32.unpack_from(payload, 0)[0] & 0x7FFFFFFF
            if call.id > last:
                self._closed = True
                raise CallError(codes.UNAVAILABLE, "the server is going away")

    def _headers(self, call: _Call, fields: Iterable[tuple[Any, Any]]) -> None:
        for name, value in fields:
            if name == b":status":
                call.http_status = int(value)
            elif name == b"grpc-status":
                call.status = int(value)
            elif name == b"grpc-message":
                call.message = _percent_decode(value.decode("utf-8", "replace"))

    def _messages(self, call: _Call, out: list[bytes]) -> None:
        buf = call.buffer
        while len(buf) >= 5:
            compressed, size = _MESSAGE_HEADER.unpack_from(buf, 0)
            if size > _MAX_MESSAGE:
                raise CallError(
                    codes.RESOURCE_EXHAUSTED,
                    f"received message larger than max ({size} vs. {_MAX_MESSAGE})",
                )
            if len(buf) < 5 + size:
                return
            if compressed:
                raise CallError(codes.INTERNAL, "compressed message without grpc-encoding")
            out.append(bytes(buf[5 : 5 + size]))
            del buf[: 5 + size]

    def _replenish(self, call: _Call) -> None:
        updates = b""
        if self._conn_unacked >= _REPLENISH:
            updates += fr.window_update(0, self._conn_unacked)
            self._conn_unacked = 0
        if call.unacked >= _REPLENISH and not call.ended:
            updates += fr.window_update(call.id, call.unacked)
            call.unacked = 0
        if updates:
            self._send(updates)

    def _finish(self, call: _Call) -> None:
        if call.status is None:
            if call.http_status != 200:
                code = _HTTP_TO_GRPC.get(call.http_status, codes.UNKNOWN)
                raise CallError(code, f"unexpected HTTP status code {call.http_status}")
            raise CallError(codes.INTERNAL, "server closed the stream without sending trailers")
        if call.status != codes.OK:
            raise CallError(call.status, call.message)
        if call.buffer:
            raise CallError(codes.INTERNAL, "stream ended inside a message")
