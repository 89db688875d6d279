"""contentd: containerd's content store, rebuilt in Python.

The public surface is what ``__all__`` lists; modules whose names start with an
underscore, and everything not re-exported here or in a layer's package, are
implementation details.

The error kinds load with the package; every other name loads its layer on
first use, so ``import contentd`` (and the ``contentd`` command) stays cheap.
"""

from typing import TYPE_CHECKING

# first: decides whether the compiled (mypyc) modules or their .py files load
from contentd import _compiled  # noqa: F401
from contentd._lazy import lazy_exports
from contentd.content.errors import (
    AlreadyExists,
    Canceled,
    ContentError,
    DataLoss,
    DeadlineExceeded,
    DigestMismatch,
    FailedPrecondition,
    InvalidArgument,
    InvalidDigest,
    NotFound,
    NotImplemented,
    OutOfRange,
    PermissionDenied,
    ResourceExhausted,
    SizeMismatch,
    Unauthenticated,
    Unavailable,
    Unknown,
)

if TYPE_CHECKING:
    from contentd.content.helpers import copy, open_writer, read_blob, write_blob
    from contentd.content.store import ReaderAt, Store, Writer
    from contentd.content.types import Descriptor, Info, Status
    from contentd.local import LocalStore, MemoryLabelStore
    from contentd.metadata import MetadataDB
    from contentd.proxy import ProxyStore

# Each layer (the local store, SQLite, gRPC) loads on first use.
_LAZY = {
    "copy": "contentd.content.helpers",
    "open_writer": "contentd.content.helpers",
    "read_blob": "contentd.content.helpers",
    "write_blob": "contentd.content.helpers",
    "ReaderAt": "contentd.content.store",
    "Store": "contentd.content.store",
    "Writer": "contentd.content.store",
    "Descriptor": "contentd.content.types",
    "Info": "contentd.content.types",
    "Status": "contentd.content.types",
    "LocalStore": "contentd.local",
    "MemoryLabelStore": "contentd.local",
    "MetadataDB": "contentd.metadata",
    "ProxyStore": "contentd.proxy",
}


__getattr__, __dir__ = lazy_exports("contentd", globals(), _LAZY)

__version__ = "0.1.0"

__all__ = [
    "AlreadyExists",
    "Canceled",
    "ContentError",
    "DataLoss",
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
    "PermissionDenied",
    "ProxyStore",
    "ReaderAt",
    "ResourceExhausted",
    "SizeMismatch",
    "Status",
    "Store",
    "Unauthenticated",
    "Unavailable",
    "Unknown",
    "Writer",
    "__version__",
    "copy",
    "open_writer",
    "read_blob",
    "write_blob",
]
