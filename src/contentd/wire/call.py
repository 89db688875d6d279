"""One RPC's state on a connection: what came in, what waits to go out, how it ended.

Every field is guarded by the owning connection's lock (``conn.lock``); a
:class:`Call` has no lock of its own. Handlers see it through
:class:`contentd.wire.context.Context`.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

import grpc

if TYPE_CHECKING:
    from contentd.wire.connection import Connection

__all__ = [
    "DATA_ITEM",
    "HEADERS_ITEM",
    "RST_ITEM",
    "Call",
    "CallCancelled",
    "MessageTooLarge",
    "RequestIterator",
]

#: kinds of queued output: flow-controlled message bytes, a header block, a reset
DATA_ITEM: Final = 0
HEADERS_ITEM: Final = 1
RST_ITEM: Final = 2


class CallCancelled(grpc.RpcError):
    """The call ended under the handler (client cancel, deadline, shutdown, lost connection).

    Raised by the request iterator, as grpcio's is; Content/Write treats any
    ``grpc.RpcError`` there as the stream going away.
    """


class MessageTooLarge(Exception):
    """A response message over the send limit."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"grpc: trying to send message larger than max ({size} vs. {limit})")


class Call:
    """One HTTP/2 stream carrying one RPC."""

    __slots__ = (
        "__weakref__",
        "aborted",
        "callbacks",
        "cancelled",
        "code",
        "cond",
        "conn",
        "credit",
        "deadline",
        "deferred",
        "details",
        "ended",
        "handler",
        "headers_sent",
        "id",
        "messages",
        "metadata",
        "out",
        "out_bytes",
        "path",
        "queued",
        "rbuf",
        "remote_closed",
        "send_window",
    )

    def __init__(
        self,
        conn: Connection,
        stream_id: int,
        path: str,
        handler: grpc.RpcMethodHandler[Any, Any],
        metadata: tuple[tuple[str, str | bytes], ...],
        deadline: float | None,
        send_window: int,
    ) -> None:
        self.conn = conn
        self.id = stream_id
        self.path = path
        self.handler = handler
        self.metadata = metadata
        #: ``time.monotonic()`` by which the call must end, or None
        self.deadline = deadline
        # -- receiving
        self.rbuf = bytearray()
        #: complete request messages the handler has not taken yet
        self.messages: deque[bytes] = deque()
        self.queued = 0
        #: bytes received and not yet given back to the client's window (handler too slow)
        self.deferred = 0
        #: bytes given back to the stream window but not yet announced
        self.credit = 0
        self.remote_closed = False
        # -- sending
        self.send_window = send_window
        self.out: deque[tuple[int, Any]] = deque()
        self.out_bytes = 0
        self.headers_sent = False
        # -- status
        self.code: grpc.StatusCode | None = None
        self.details: str | None = None
        self.aborted = False
        #: trailers (or a reset) queued: nothing more is sent, the handler's output is dropped
        self.ended = False
        #: ended by anything but the handler finishing (the handler sees is_active() False)
        self.cancelled = False
        self.callbacks: list[Callable[[], None]] | None = []
        #: where a worker waits for input, window or cancellation (None for inline calls)
        self.cond: threading.Condition | None = None

    @property
    def active(self) -> bool:
        return not self.ended


class RequestIterator:
    """The request messages of a client-streaming call, deserialized as the handler takes them."""

    __slots__ = ("_call", "_deserialize")

    def __init__(self, call: Call, deserialize: Callable[[bytes], Any] | None) -> None:
        self._call = call
        self._deserialize = deserialize

    def __iter__(self) -> RequestIterator:
        return self

    def __next__(self) -> Any:
        call = self._call
        raw = call.conn.next_message(call)
        if raw is None:
            raise StopIteration
        if self._deserialize is None:
            return raw
        try:
            return self._deserialize(raw)
        except Exception:
            call.conn.fail(call, grpc.StatusCode.INTERNAL, "Exception deserializing request!")
            raise CallCancelled() from None
