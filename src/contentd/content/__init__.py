"""The content contract: values, digests, labels, filters, errors and the Store protocols.

The error kinds load with the package; every other name loads its module on first
use, so importing one small piece (say ``contentd.content.errors``) stays cheap.
"""

from typing import TYPE_CHECKING

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
    from contentd.content import digest, filters, gotime, labels
    from contentd.content.helpers import copy, open_writer, read_blob, write_blob
    from contentd.content.store import (
        Ingester,
        IngestManager,
        LabelStore,
        Manager,
        Provider,
        ReaderAt,
        Store,
        Writer,
    )
    from contentd.content.types import ZERO_TIME, Descriptor, Info, Status

_SUBMODULES = frozenset({"digest", "filters", "gotime", "labels"})
_LAZY = {
    "copy": "contentd.content.helpers",
    "open_writer": "contentd.content.helpers",
    "read_blob": "contentd.content.helpers",
    "write_blob": "contentd.content.helpers",
    "Ingester": "contentd.content.store",
    "IngestManager": "contentd.content.store",
    "LabelStore": "contentd.content.store",
    "Manager": "contentd.content.store",
    "Provider": "contentd.content.store",
    "ReaderAt": "contentd.content.store",
    "Store": "contentd.content.store",
    "Writer": "contentd.content.store",
    "ZERO_TIME": "contentd.content.types",
    "Descriptor": "contentd.content.types",
    "Info": "contentd.content.types",
    "Status": "contentd.content.types",
}


__getattr__, __dir__ = lazy_exports("contentd.content", globals(), _LAZY, _SUBMODULES)

__all__ = [
    "ZERO_TIME",
    "AlreadyExists",
    "Canceled",
    "ContentError",
    "DataLoss",
    "DeadlineExceeded",
    "Descriptor",
    "DigestMismatch",
    "FailedPrecondition",
    "Info",
    "IngestManager",
    "Ingester",
    "InvalidArgument",
    "InvalidDigest",
    "LabelStore",
    "Manager",
    "NotFound",
    "NotImplemented",
    "OutOfRange",
    "PermissionDenied",
    "Provider",
    "ReaderAt",
    "ResourceExhausted",
    "SizeMismatch",
    "Status",
    "Store",
    "Unauthenticated",
    "Unavailable",
    "Unknown",
    "Writer",
    "copy",
    "digest",
    "filters",
    "gotime",
    "labels",
    "open_writer",
    "read_blob",
    "write_blob",
]
