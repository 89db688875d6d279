"""gRPC metadata keys containerd clients send, and reading them on the server (spec §1.4)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

__all__ = [
    "LEASE_KEY",
    "NAMESPACE_KEY",
    "NAMESPACE_KEY_TTRPC",
    "call_metadata",
    "namespace_and_lease",
]

#: The namespace header of gRPC calls.
NAMESPACE_KEY: Final = "containerd-namespace"
#: The namespace header of ttrpc calls (not used by gRPC).
NAMESPACE_KEY_TTRPC: Final = "containerd-namespace-ttrpc"
#: The lease header.
LEASE_KEY: Final = "containerd-lease"


def namespace_and_lease(
    metadata: Iterable[tuple[str, str | bytes]] | None,
) -> tuple[str | None, str | None]:
    """The first ``containerd-namespace`` and ``containerd-lease`` values (None if absent)."""
    namespace: str | None = None
    lease: str | None = None
    if not metadata:
        return None, None
    for key, value in metadata:
        if key == NAMESPACE_KEY:
            if namespace is None:
                namespace = value if isinstance(value, str) else value.decode("utf-8", "replace")
        elif key == LEASE_KEY and lease is None:
            lease = value if isinstance(value, str) else value.decode("utf-8", "replace")
    return namespace, lease


def call_metadata(namespace: str | None, lease: str | None) -> tuple[tuple[str, str], ...]:
    """The metadata a client sends: the headers that are set, in a reusable tuple."""
    md: list[tuple[str, str]] = []
    if namespace is not None:
        md.append((NAMESPACE_KEY, namespace))
    if lease is not None:
        md.append((LEASE_KEY, lease))
    return tuple(md)
