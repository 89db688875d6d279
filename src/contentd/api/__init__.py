"""containerd-compatible gRPC API (generated stubs live in contentd.api._pb)."""

from contentd.api.content import ContentService, DeleteHook, SingleStoreResolver, StoreResolver
from contentd.api.errors import StatusError, abort_with, from_grpc, to_grpc
from contentd.api.server import build_server, listen, tune_malloc

__all__ = [
    "ContentService",
    "DeleteHook",
    "SingleStoreResolver",
    "StatusError",
    "StoreResolver",
    "abort_with",
    "build_server",
    "from_grpc",
    "listen",
    "to_grpc",
    "tune_malloc",
]
