"""contentd: containerd's content store, rebuilt in Python.

The public surface is what ``__all__`` lists; modules whose names start with an
underscore, and everything not re-exported here or in a layer's package, are
implementation details.
"""

from typing import TYPE_CHECKING, Any

from contentd.content import (
    AlreadyExists,
    ContentError,
    Descriptor,
    DigestMismatch,
    FailedPrecondition,
    Info,
    InvalidArgument,
    InvalidDigest,
    NotFound,
    NotImplemented,
    OutOfRange,
    ReaderAt,
    ResourceExhausted,
    SizeMismatch,
    Status,
    Store,
    Unavailable,
    Unknown,
    Writer,
    copy,
    open_writer,
    read_blob,
    write_blob,
)
from contentd.content.errors import Canceled, DeadlineExceeded
from contentd.local import LocalStore, MemoryLabelStore

if TYPE_CHECKING:
    from contentd.metadata import MetadataDB
    from contentd.proxy import ProxyStore

# Heavier layers (SQLite, gRPC) load on first use, so `import contentd` stays cheap.
_LAZY = {"MetadataDB": "contentd.metadata", "ProxyStore": "contentd.proxy"}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'contentd' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value

__version__ = "0.1.0"

__all__ = [
    "AlreadyExists",
    "Canceled",
    "ContentError",
    "DeadlineExceeded",
    "Descriptor",
    "DigestMismatch",
    "FailedPrecondition",
    "Info",
    "InvalidArgument",
    "InvalidDigest",
    "LocalStore",
    "MemoryLabelStore",
    "MetadataDB",
    "NotFound",
    "NotImplemented",
    "OutOfRange",
    "ProxyStore",
    "ReaderAt",
    "ResourceExhausted",
    "SizeMismatch",
    "Status",
    "Store",
    "Unavailable",
    "Unknown",
    "Writer",
    "__version__",
    "copy",
    "open_writer",
    "read_blob",
    "write_blob",
]
