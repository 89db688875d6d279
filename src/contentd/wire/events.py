"""What :meth:`contentd.wire.protocol.H2Connection.receive` reports."""

from __future__ import annotations

from contentd.wire.streams import Stream

__all__ = [
    "CallStarted",
    "ConnectionEnded",
    "Event",
    "InputChanged",
    "RequestReady",
    "StreamEnded",
]


class Event:
    __slots__ = ("stream",)

    def __init__(self, stream: Stream) -> None:
        self.stream = stream

    def __repr__(self) -> str:
        return f"{type(self).__name__}(stream {self.stream.id})"


class CallStarted(Event):
    """Server: a routed request; a client-streaming call can run now."""


class RequestReady(Event):
    """Server: a unary request's one message arrived and the client half-closed."""

    __slots__ = ("message",)

    def __init__(self, stream: Stream, message: bytes | bytearray) -> None:
        super().__init__(stream)
        self.message = message


class InputChanged(Event):
    """Messages were queued on a stream, or its input ended (headers too, for a client)."""


class StreamEnded(Event):
    """The stream ended without its handler: peer reset, bad input, flow-control error;
    for a client, the response ended."""


class ConnectionEnded(Event):
    """GOAWAY: sent by us for a connection error, or received; ``last_stream_id`` is the
    last stream the sender of the GOAWAY processes."""

    __slots__ = ("code", "last_stream_id", "message", "sent")

    def __init__(self, code: int, message: str, last_stream_id: int, sent: bool) -> None:
        self.code = code
        self.message = message
        self.last_stream_id = last_stream_id
        self.sent = sent

    def __repr__(self) -> str:
        return f"ConnectionEnded(code {self.code}, {self.message!r}, sent={self.sent})"
