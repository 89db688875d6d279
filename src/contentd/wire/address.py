"""Addresses of gRPC endpoints: a unix socket or ``host:port``."""

from __future__ import annotations

__all__ = ["unix_path"]


def unix_path(address: str) -> str | None:
    """The socket path of a unix address (``unix:<path>``, ``unix://<abs path>``, a path
    starting with ``/``), or None for a TCP ``host:port``."""
    if address.startswith("unix://"):
        return address[len("unix://") :]
    if address.startswith("unix:"):
        return address[len("unix:") :]
    if address.startswith("/"):
        return address
    return None
