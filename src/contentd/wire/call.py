"""One RPC as its handler sees it: the narrow interface between handlers and a connection.

A :class:`Call` pairs the protocol core's :class:`~contentd.wire.protocol.Stream`
with what the handler side needs (the handler, its deadline, its status,
termination callbacks, where a worker waits). Handlers, :mod:`.rpc` and
:class:`~contentd.wire.context.Context` use only the methods here; the
connection behind them is a :class:`Host` (no import of the connection
module, no shared lock in sight).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final, Protocol

from contentd.wire.errors import CallCancelled
from contentd.wire.protocol import RESET, TRAILERS
from contentd.wire.streams import Stream, as_bytes

if TYPE_CHECKING:
    import grpc

__all__ = ["Call", "Host", "RequestIterator"]

_CANCELLED: Final = 1
_INTERNAL: Final = 13
_DEADLINE_EXCEEDED: Final = 4


class Host(Protocol):
    """What a call needs of its connection (implemented by the server shell)."""

    peer: str

    @property
    def gone(self) -> bool:
        """The connection is lost or broken: nothing more reaches the peer."""
        ...

    def next_message(self, call: Call) -> bytes | bytearray | None: ...

    def wait_for_room(self, call: Call) -> bool: ...

    def send(self, call: Call, payload: bytes, *, flush: bool) -> bool: ...

    def finish(self, call: Call, code: int, details: str, *, flush: bool) -> None: ...

    def reply(self, call: Call, payloads: list[Any], code: int, details: str) -> None: ...

    def abandon(self, call: Call, code: int, details: str, how: int) -> None: ...

    def add_callback(self, call: Call, callback: Callable[[], None]) -> bool: ...


class Call:
    """One RPC: a stream of the core, its handler and its status."""

    __slots__ = (
        "__weakref__",
        "_host",
        "aborted",
        "callbacks",
        "code",
        "cond",
        "deadline",
        "details",
        "handler",
        "last_size",
        "metadata",
        "path",
        "reserved",
        "stream",
        "waits_for_input",
    )

    def __init__(
        self,
        host: Host,
        stream: Stream,
        handler: grpc.RpcMethodHandler[Any, Any],
        deadline: float | None,
    ) -> None:
        self._host = host
        self.stream = stream
        request = stream.request
        assert request is not None
        self.path = request.path
        self.metadata = request.metadata
        self.handler = handler
        #: ``time.monotonic()`` by which the call must end, or None
        self.deadline = deadline
        # the status the handler set (grpc.StatusCode), and whether it aborted
        self.code: grpc.StatusCode | None = None
        self.details: str | None = None
        self.aborted = False
        self.callbacks: list[Callable[[], None]] | None = []
        #: where a worker waits for input or the end (None for inline calls)
        self.cond: threading.Condition | None = None
        #: output room reserved for the next message, and the last message's size
        self.reserved = 0
        self.last_size = 0
        #: a start_at_input call not submitted yet: its first input gives it a worker
        self.waits_for_input = False

    @property
    def active(self) -> bool:
        """The call has not ended (the handler's output still goes somewhere)."""
        return self.stream.active

    @property
    def peer(self) -> str:
        return self._host.peer

    @property
    def gone(self) -> bool:
        """Its connection is lost or broken (whether or not the call has ended yet)."""
        return self._host.gone

    def next_message(self) -> bytes | bytearray | None:
        """The next request message (a large one as the bytearray it was received into);
        None at the client's half-close. Raises
        :class:`~contentd.wire.errors.CallCancelled` when the call ended under the handler."""
        return self._host.next_message(self)

    def wait_for_room(self) -> bool:
        """Wait until the connection has room for another message (before making it);
        False when the call has ended."""
        return self._host.wait_for_room(self)

    def send(self, payload: bytes, *, flush: bool = True) -> bool:
        """Queue one response message; False when the call has ended (stop producing)."""
        return self._host.send(self, payload, flush=flush)

    def finish(self, code: int, details: str, *, flush: bool = True) -> None:
        """End the call with its status (the handler is done)."""
        self._host.finish(self, code, details, flush=flush)

    def reply(self, payloads: list[Any], code: int, details: str) -> None:
        """Queue ``payloads`` and end the call with its status, all at once (an inline
        call's whole output; the reader writes it). Raises
        :class:`~contentd.wire.errors.MessageTooLarge` as :meth:`send` does."""
        self._host.reply(self, payloads, code, details)

    def fail(self, code: int, details: str) -> None:
        """End the call with an error while its handler may still run."""
        self._host.abandon(self, code, details, TRAILERS)

    def cancel(self) -> None:
        self._host.abandon(self, _CANCELLED, "Cancelled", RESET)

    def expire(self) -> None:
        """The deadline passed."""
        self._host.abandon(self, _DEADLINE_EXCEEDED, "Deadline Exceeded", TRAILERS)

    def add_callback(self, callback: Callable[[], None]) -> bool:
        """Run ``callback`` when the call ends, however it ends; False if it already has."""
        return self._host.add_callback(self, callback)


class RequestIterator:
    """The request messages of a client-streaming call, deserialized as the handler takes them."""

    __slots__ = ("_call", "_deserialize")

    def __init__(self, call: Call, deserialize: Callable[[bytes | bytearray], Any] | None) -> None:
        self._call = call
        self._deserialize = deserialize

    def __iter__(self) -> RequestIterator:
        return self

    def __next__(self) -> Any:
        call = self._call
        raw = call.next_message()
        if raw is None:
            raise StopIteration
        if self._deserialize is None:  # raw, as grpcio gives it: bytes
            return as_bytes(raw)
        try:
            return self._deserialize(raw)
        except Exception:
            call.fail(_INTERNAL, "Exception deserializing request!")
            raise CallCancelled() from None
