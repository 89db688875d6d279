"""The ``grpc.ServicerContext`` a handler gets from the native engine.

It implements what contentd's services use (``abort``, ``set_code``,
``set_details``, ``invocation_metadata``, ``add_callback``, ``is_active``,
``time_remaining``, ``peer``) with grpcio's semantics; the rest (auth,
compression, custom initial metadata) raises NotImplementedError.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

import grpc

from contentd.wire.call import Call

__all__ = ["AbortError", "Context"]


class AbortError(Exception):
    """Raised by :meth:`Context.abort`: ends the handler; the call ends with the set status."""


class Context(grpc.ServicerContext):
    __slots__ = ("_call",)

    def __init__(self, call: Call) -> None:
        self._call = call

    # -- what contentd uses

    def invocation_metadata(self) -> Sequence[tuple[str, str | bytes]]:  # type: ignore[override]
        return self._call.metadata

    # the status fields are the handler's own: only its thread writes them, and the call
    # reads them when the handler has returned

    def abort(self, code: grpc.StatusCode, details: str) -> NoReturn:
        call = self._call
        call.code = code
        call.details = details
        call.aborted = True
        raise AbortError(details)

    def set_code(self, code: grpc.StatusCode) -> None:
        self._call.code = code

    def set_details(self, details: str) -> None:
        self._call.details = details

    def code(self) -> grpc.StatusCode | None:
        return self._call.code

    def details(self) -> str | None:
        return self._call.details

    def add_callback(self, callback: Callable[[], None]) -> bool:
        """Run ``callback`` when the call ends, however it ends; False if it already has."""
        return self._call.add_callback(callback)

    def is_active(self) -> bool:
        return self._call.active

    def time_remaining(self) -> float | None:  # type: ignore[override]
        deadline = self._call.deadline
        return None if deadline is None else max(0.0, deadline - time.monotonic())

    def cancel(self) -> None:
        self._call.cancel()

    def peer(self) -> str:
        return self._call.peer

    # -- not supported by the native engine

    def peer_identities(self) -> Any:
        raise NotImplementedError("peer_identities")

    def peer_identity_key(self) -> Any:
        raise NotImplementedError("peer_identity_key")

    def auth_context(self) -> Any:
        raise NotImplementedError("auth_context")

    def set_compression(self, compression: Any) -> None:
        raise NotImplementedError("set_compression")

    def send_initial_metadata(self, initial_metadata: Any) -> None:
        raise NotImplementedError("send_initial_metadata")

    def set_trailing_metadata(self, trailing_metadata: Any) -> None:
        raise NotImplementedError("set_trailing_metadata")

    def trailing_metadata(self) -> Any:
        raise NotImplementedError("trailing_metadata")

    def abort_with_status(self, status: Any) -> NoReturn:
        raise NotImplementedError("abort_with_status")

    def disable_next_message_compression(self) -> None:
        raise NotImplementedError("disable_next_message_compression")
