"""The states of a connection and of its streams, and :class:`Stream`, one call's
protocol state (what the core keeps; the shell's handler side is a
:class:`~contentd.wire.call.Call`)."""

from __future__ import annotations

import enum
from collections import deque
from typing import Any, Final

from contentd.wire.metadata import Request, Response

__all__ = ["NO_BODY", "ConnectionState", "Stream", "StreamState", "as_bytes"]


class ConnectionState(enum.Enum):
    PREFACE = "waiting for the client's preface"
    OPEN = "open"
    CLOSING = "closing: GOAWAY sent or received, no new streams"
    CLOSED = "closed: a connection error was sent or the peer went away"


class StreamState(enum.Enum):
    """RFC 9113 §5.1 as the engine sees a stream; both ends are closed states."""

    OPEN = "open"
    HALF_CLOSED_REMOTE = "half-closed (remote): the peer's input ended"
    FINISHED = "closed: ended by its handler with a status"
    CANCELLED = "closed: reset, failed, expired or abandoned before its handler finished"


_OPEN: Final = StreamState.OPEN
_HALF_CLOSED: Final = StreamState.HALF_CLOSED_REMOTE
_CANCELLED: Final = StreamState.CANCELLED
#: ``rbody`` while no message is begun: never written (a message begun gets a buffer of its
#: own), so a stream costs no buffer until a message comes in pieces
NO_BODY: Final = bytearray()


def as_bytes(message: bytes | bytearray) -> bytes:
    """A received message as grpcio hands a raw one out: ``bytes`` (the engine queues a
    large message as the ``bytearray`` it was received into)."""
    return message if type(message) is bytes else bytes(message)


class Stream:
    """One HTTP/2 stream: one call."""

    __slots__ = (
        "app",
        "credit",
        "deferred",
        "handler",
        "headers_sent",
        "id",
        "messages",
        "out",
        "out_bytes",
        "queued",
        "rbody",
        "recv_window",
        "request",
        "response",
        "rhead",
        "rneed",
        "send_window",
        "state",
        "streaming",
    )

    def __init__(self, stream_id: int, send_window: int, recv_window: int) -> None:
        self.id = stream_id
        self.state = _OPEN
        #: the routed handler (server) and what the shell keeps with the stream
        self.handler: Any = None
        self.app: Any = None
        self.request: Request | None = None
        self.response: Response | None = None
        #: requests are a stream (client-streaming call); False: exactly one message
        self.streaming = True
        # -- receiving
        #: the message being received: its 5-byte prefix while incomplete, then its
        #: bytes so far (``rneed`` more to come); a complete one is queued as this very
        #: buffer and the next starts a new one (the handler may hold views of it)
        self.rhead = b""
        self.rbody = NO_BODY
        self.rneed = 0
        #: complete messages not taken yet, and their size
        self.messages: deque[bytes | bytearray] = deque()
        self.queued = 0
        #: received bytes whose stream credit waits for the messages to be taken
        self.deferred = 0
        #: credit given back and not announced yet
        self.credit = 0
        self.recv_window = recv_window
        # -- sending
        self.send_window = send_window
        self.out: deque[tuple[int, Any]] = deque()
        self.out_bytes = 0
        self.headers_sent = False

    @property
    def active(self) -> bool:
        """Neither end has closed it (its handler may still produce)."""
        return self.state is _OPEN or self.state is _HALF_CLOSED

    @property
    def inside_message(self) -> bool:
        """Part of a message was received, not all of it."""
        return bool(self.rhead) or self.rneed > 0

    @property
    def cancelled(self) -> bool:
        return self.state is _CANCELLED
