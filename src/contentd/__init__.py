"""contentd: containerd's content store, rebuilt in Python.

The public surface is what ``__all__`` lists; modules whose names start with an
underscore, and everything not re-exported here or in a layer's package, are
implementation details.
"""

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
    "NotFound",
    "NotImplemented",
    "OutOfRange",
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
