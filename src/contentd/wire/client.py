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
import time
from collections.abc import Iterator, Sequence
from typing import Final

from contentd.content import codes
from contentd.wire import frames as fr
from contentd.wire.address import unix_path
from contentd.wire.errors import CallError, MessageTooLarge, ProtocolError
from contentd.wire.events import ConnectionEnded
from contentd.wire.limits import Limits
from contentd.wire.metadata import hpack_literal
from contentd.wire.protocol import H2Connection
from contentd.wire.streams import Stream, StreamState, as_bytes

__all__ = ["CallError", "Connection"]

#: Stream and connection receive window we advertise.
_WINDOW: Final = 16 << 20
_MAX_MESSAGE: Final = 16 << 20
_HTTP_TO_GRPC: Final = {400: 13, 401: 16, 403: 7, 404: 12, 429: 14, 502: 14, 503: 14, 504: 14}
_LIMITS: Final = Limits(
    max_header_list_size=1 << 20,
    max_frame_size=1 << 20,
    stream_window=_WINDOW,
    connection_window=_WINDOW,
    stream_queue=_WINDOW,
    connection_queue=4 * _WINDOW,
    max_receive_message=_MAX_MESSAGE,
)


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


class Connection:
    """One HTTP/2 connection to a gRPC server at ``address`` (a unix socket path,
    ``unix:<path>``, or ``host:port``). ``timeout`` bounds each call (seconds)."""

    def __init__(self, address: str, *, timeout: float | None = None) -> None:
        self.address = address
        self.timeout = timeout
        self._authority = "localhost"
        self._sock = self._connect(address)
        self._h2 = H2Connection(_LIMITS, client_side=True)
        self._closed = False
        self._heard = False  # anything received yet
        self._h2.initiate()
        self._flush()

    def _connect(self, address: str) -> socket.socket:
        path = unix_path(address)
        if path is None and ":" not in address:
            path = address  # a relative socket path
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

    def unary(self, path: str, request: bytes, metadata: Sequence[tuple[str, str]] = ()) -> bytes:
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
        stream = self._start(path, request, metadata)
        h2 = self._h2
        deadline = None if self.timeout is None else time.monotonic() + self.timeout
        try:
            while True:
                message = h2.take(stream)
                if message is not None:
                    self._flush()  # the window that taking it gave back
                    # a large message comes as the bytearray it was received into
                    yield as_bytes(message)
                    continue
                if not stream.active:
                    break
                if deadline is not None and time.monotonic() > deadline:
                    raise CallError(codes.DEADLINE_EXCEEDED, "Deadline Exceeded")
                self._receive()
            self._finish(stream)
        finally:
            if stream.active and not self._closed:
                h2.reset(stream)
                with contextlib.suppress(CallError):
                    self._flush()

    # -- the protocol ------------------------------------------------------------

    def _start(self, path: str, request: bytes, metadata: Sequence[tuple[str, str]]) -> Stream:
        if self._closed:
            raise CallError(codes.UNAVAILABLE, "connection closed")
        block = bytearray(_PSEUDO)
        block += _literal(4, path) + _literal(1, self._authority) + _FIXED
        if self.timeout is not None:
            block += _literal("grpc-timeout", f"{max(1, int(self.timeout * 1000))}m")
        for key, value in metadata:
            block += _literal(key.lower(), value)
        try:
            # requests are small: one that does not fit the peer's windows is refused
            # rather than waited for
            stream = self._h2.start_request(bytes(block), request)
        except MessageTooLarge:
            raise CallError(
                codes.RESOURCE_EXHAUSTED, "request larger than the send window"
            ) from None
        except ProtocolError:
            raise CallError(codes.UNAVAILABLE, "the server is going away") from None
        self._flush()
        return stream

    def _flush(self) -> None:
        h2 = self._h2
        if not h2.wants_write:
            return
        bufs, _ = h2.data_to_send()
        h2.drained.clear()
        self._send(b"".join(bufs))

    def _send(self, data: bytes) -> None:
        try:
            self._sock.sendall(data)
        except TimeoutError:
            raise CallError(codes.DEADLINE_EXCEEDED, "Deadline Exceeded") from None
        except OSError as err:
            raise CallError(codes.UNAVAILABLE, f"connection error: {err}") from None

    def _receive(self) -> None:
        """Read once and hand the bytes to the core; a connection error raises UNAVAILABLE."""
        try:
            chunk = self._sock.recv(1 << 18)
        except TimeoutError:
            raise CallError(codes.DEADLINE_EXCEEDED, "Deadline Exceeded") from None
        except OSError as err:
            raise CallError(codes.UNAVAILABLE, f"connection error: {err}") from None
        if not chunk:
            self._closed = True
            raise CallError(codes.UNAVAILABLE, "connection error: socket closed")
        if not self._heard:
            self._heard = True
            if chunk.startswith(b"HTTP/"):  # docker's socket, say: its answer is no HTTP/2 frame
                self._closed = True
                answer = chunk.split(b"\r\n", 1)[0][:80].decode("latin-1")
                raise CallError(
                    codes.UNAVAILABLE,
                    f"connection error: {self.address} answered {answer!r}, HTTP/1 and not "
                    "gRPC: it is not a containerd or contentd socket",
                )
        events = self._h2.receive(chunk)
        self._flush()
        for event in events:
            if isinstance(event, ConnectionEnded) and event.sent:
                self._closed = True
                raise CallError(codes.UNAVAILABLE, f"connection error: {event.message}")

    def _finish(self, stream: Stream) -> None:
        response = stream.response
        assert response is not None
        if stream.state is StreamState.CANCELLED:
            goaway = self._h2.goaway_received
            if goaway is not None and stream.id > goaway:
                raise CallError(codes.UNAVAILABLE, "the server is going away")
            code = response.reset_code
            if code is None and response.status is not None:  # refused here (too large, ...)
                raise CallError(response.status, response.message)
            status = codes.CANCELLED if code == fr.ErrorCode.CANCEL else codes.INTERNAL
            raise CallError(status, f"stream reset by the server (HTTP/2 error {code})")
        if response.status is None:
            if response.http_status != 200:
                code = _HTTP_TO_GRPC.get(response.http_status, codes.UNKNOWN)
                raise CallError(code, f"unexpected HTTP status code {response.http_status}")
            raise CallError(codes.INTERNAL, "server closed the stream without sending trailers")
        if response.status != codes.OK:
            raise CallError(response.status, response.message)
        if stream.inside_message:
            raise CallError(codes.INTERNAL, "stream ended inside a message")
