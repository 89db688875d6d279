"""Method handlers with a shortcut for the native engine's inline calls.

A service's method table holds ``grpc.RpcMethodHandler`` objects, which any
engine runs the same way. :func:`inline_unary_handler` makes one that also
carries an ``inline_unary`` function: when the native engine answers a call of
that method on the connection's reader thread (the server's inline policy
admitted it), it first asks the shortcut for the whole answer, with no
servicer context, response iterator or list of messages in between::

    inline_unary(request, metadata) -> bytes | None

``request`` is the deserialized request, ``metadata`` the call's invocation
metadata. Bytes are the call's one response message, serialized: the call ends
with it and status OK. None declines: the engine then runs the handler as it
always does, which answers with its own messages and status (errors, edge
cases, anything the shortcut does not take on). So a shortcut must decline
rather than fail, must leave nothing behind that the handler's run would then
do twice, and must not raise (the engine logs what it raises and runs the
handler). The service decides what its shortcut covers; the engine knows
nothing of what the method does. grpcio, and a call that does not run inline,
use the handler alone.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import grpc

__all__ = ["InlineUnary", "InlineUnaryHandler", "inline_unary_handler"]

#: ``(request, metadata) -> the one response message, or None to decline``
InlineUnary = Callable[[Any, Sequence[tuple[str, str | bytes]]], "bytes | None"]

if TYPE_CHECKING:
    _Base = grpc.RpcMethodHandler[Any, Any]
else:
    _Base = grpc.RpcMethodHandler


class InlineUnaryHandler(_Base):
    """A ``grpc.RpcMethodHandler`` with an ``inline_unary`` shortcut (see the module doc)."""

    __slots__ = (
        "inline_unary",
        "request_deserializer",
        "request_streaming",
        "response_serializer",
        "response_streaming",
        "stream_stream",
        "stream_unary",
        "unary_stream",
        "unary_unary",
    )

    def __init__(self, handler: grpc.RpcMethodHandler[Any, Any], inline_unary: InlineUnary) -> None:
        if handler.request_streaming:
            raise ValueError("an inline_unary shortcut needs a unary-request method")
        self.request_streaming = False
        self.response_streaming = handler.response_streaming
        self.request_deserializer = handler.request_deserializer
        self.response_serializer = handler.response_serializer
        self.unary_unary = handler.unary_unary
        self.unary_stream = handler.unary_stream
        self.stream_unary = handler.stream_unary
        self.stream_stream = handler.stream_stream
        self.inline_unary = inline_unary

    def __repr__(self) -> str:
        behavior = self.unary_stream if self.response_streaming else self.unary_unary
        return f"InlineUnaryHandler({behavior!r}, inline_unary={self.inline_unary!r})"


def inline_unary_handler(
    handler: grpc.RpcMethodHandler[Any, Any], inline_unary: InlineUnary
) -> grpc.RpcMethodHandler[Any, Any]:
    """``handler`` (unary request; unary or streaming response) with ``inline_unary``."""
    return InlineUnaryHandler(handler, inline_unary)
