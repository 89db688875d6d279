"""The on-disk content store, on containerd's layout."""

from contentd.local.labels import MemoryLabelStore
from contentd.local.store import LocalStore
from contentd.local.writer import LocalWriter

__all__ = ["LocalStore", "LocalWriter", "MemoryLabelStore"]
