"""The plugin types contentd registers (containerd's ``plugin.Type`` values)."""

from __future__ import annotations

from typing import Final

__all__ = [
    "CONTENT",
    "CONTENTD_CONTENT",
    "CONTENTD_METADATA",
    "EVENT",
    "GC",
    "GRPC",
    "METADATA",
    "SERVICE",
]

#: A content store (the local store, or a proxy to another Content service).
CONTENT: Final = "io.containerd.content.v1"
#: contentd's own content stores (``io.contentd.content.v1.s3``); a configured one is the backend.
CONTENTD_CONTENT: Final = "io.contentd.content.v1"
#: contentd's metadata engines (``io.contentd.metadata.v1.postgres``); a configured one holds
#: the metadata layer's records.
CONTENTD_METADATA: Final = "io.contentd.metadata.v1"
#: The metadata layer (namespaces, leases, GC) over a content store.
METADATA: Final = "io.containerd.metadata.v1"
#: Garbage-collection scheduling.
GC: Final = "io.containerd.gc.v1"
#: The event exchange.
EVENT: Final = "io.containerd.event.v1"
#: Internal services (not registered by contentd itself; for third-party plugins).
SERVICE: Final = "io.containerd.service.v1"
#: A gRPC service served on the daemon's socket (the instance has ``register(server)``).
GRPC: Final = "io.containerd.grpc.v1"
