"""containerd-compatible gRPC services over a Store (generated stubs live in contentd.api._pb).

Building, binding and choosing the server they run in is the daemon's
(:mod:`contentd.daemon.engines`).

Names load on first use: a client that only needs the generated stubs
(``contentd.api._pb``) does not pay for the server side.
"""

from typing import TYPE_CHECKING

from contentd._lazy import lazy_exports

if TYPE_CHECKING:
    from contentd.api.content import (
        ContentService,
        DeleteHook,
        SingleStoreResolver,
        StoreResolver,
    )
    from contentd.api.errors import StatusError, abort_with, from_grpc, to_grpc

_LAZY = {
    "ContentService": "contentd.api.content",
    "DeleteHook": "contentd.api.content",
    "SingleStoreResolver": "contentd.api.content",
    "StoreResolver": "contentd.api.content",
    "StatusError": "contentd.api.errors",
    "abort_with": "contentd.api.errors",
    "from_grpc": "contentd.api.errors",
    "to_grpc": "contentd.api.errors",
}

__getattr__, __dir__ = lazy_exports("contentd.api", globals(), _LAZY)

__all__ = [
    "ContentService",
    "DeleteHook",
    "SingleStoreResolver",
    "StatusError",
    "StoreResolver",
    "abort_with",
    "from_grpc",
    "to_grpc",
]
