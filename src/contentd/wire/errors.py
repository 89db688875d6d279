"""Every exception of the native gRPC engine, in one tree::

    WireError
    ├── ProtocolError      the peer broke HTTP/2 (RFC 9113): a connection error, GOAWAY
    ├── MessageTooLarge    a message over the send limit
    ├── CallError          a call ended with a status other than OK (the client's view)
    └── CallCancelled      the call ended under its handler (also a grpc.RpcError)

The protocol core and the grpcio-free client never import grpcio; only
:class:`CallCancelled` needs it (services catch ``grpc.RpcError`` when their
request stream goes away, as they do on grpcio's engine), so it is made on
first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = [
    "CallCancelled",
    "CallError",
    "MessageTooLarge",
    "ProtocolError",
    "WireError",
]


class WireError(Exception):
    """Base of the engine's exceptions."""


class ProtocolError(WireError):
    """A connection error (RFC 9113 §5.4.1): the connection ends with GOAWAY(``code``)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


class MessageTooLarge(WireError):
    """A message over the send limit."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"grpc: trying to send message larger than max ({size} vs. {limit})")
        self.size = size
        self.limit = limit


class CallError(WireError):
    """A call that ended with a status other than OK: ``code`` is the gRPC code number."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def error(self) -> Exception:
        """The ContentError of this status's kind (see :mod:`contentd.content.codes`)."""
        from contentd.content.codes import error_of

        return error_of(self.code, self.message)


if TYPE_CHECKING:
    import grpc

    class CallCancelled(WireError, grpc.RpcError):
        """The call ended under the handler (client cancel, deadline, shutdown, lost connection)."""

else:
    _made: dict[str, type] = {}

    def __getattr__(name: str) -> Any:
        if name != "CallCancelled":
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        made = _made.get(name)
        if made is None:
            import grpc

            made = _made[name] = type(
                "CallCancelled",
                (WireError, grpc.RpcError),
                {
                    "__doc__": "The call ended under the handler (client cancel, deadline, "
                    "shutdown, lost connection).",
                    "__module__": __name__,
                },
            )
        return made
