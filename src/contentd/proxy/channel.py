"""Client channels to a Content service, with containerd's limits."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final, Protocol, cast

import grpc

from contentd.config.model import DEFAULT_MAX_MESSAGE_SIZE as MAX_MESSAGE_SIZE
from contentd.wire.address import unix_path

__all__ = ["CHANNEL_OPTIONS", "cancel_call", "dial", "target_of"]

#: containerd's client settings: 16 MiB messages both ways, reconnect back-off at most 3 s.
CHANNEL_OPTIONS: Final[tuple[tuple[str, Any], ...]] = (
    ("grpc.max_send_message_length", MAX_MESSAGE_SIZE),
    ("grpc.max_receive_message_length", MAX_MESSAGE_SIZE),
    ("grpc.max_reconnect_backoff_ms", 3000),
)


def target_of(address: str) -> str:
    """The gRPC target for ``address``: a unix socket (``unix:...`` or a path) or ``host:port``."""
    path = unix_path(address)
    return address if path is None else f"unix:{path}"


def dial(address: str, options: Sequence[tuple[str, Any]] = ()) -> grpc.Channel:
    """An insecure channel to ``address``; connects lazily, like containerd's proxy plugins."""
    merged = dict(CHANNEL_OPTIONS)
    merged.update(options)
    return grpc.insecure_channel(target_of(address), options=list(merged.items()))


class _Cancellable(Protocol):
    def cancel(self) -> object: ...


def cancel_call(call: grpc.RpcContext) -> None:
    """Cancel an RPC (a no-op once it has ended)."""
    cast(_Cancellable, call).cancel()
