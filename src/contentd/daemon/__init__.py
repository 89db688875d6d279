"""``contentd serve``: the daemon, its resolver for header-less callers, lock, socket and logs.

Submodules are imported on first use, so ``contentd config ...`` does not
pay for gRPC.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from contentd.daemon.lock import RootLock, RootLocked
    from contentd.daemon.resolver import NamespaceResolver
    from contentd.daemon.server import DEFAULT_GRACE, Daemon

__all__ = ["DEFAULT_GRACE", "Daemon", "NamespaceResolver", "RootLock", "RootLocked"]

_WHERE = {
    "DEFAULT_GRACE": "contentd.daemon.server",
    "Daemon": "contentd.daemon.server",
    "NamespaceResolver": "contentd.daemon.resolver",
    "RootLock": "contentd.daemon.lock",
    "RootLocked": "contentd.daemon.lock",
}


def __getattr__(name: str) -> object:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'contentd.daemon' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
