"""Error kinds <-> gRPC status codes, as numbers: the one table (containerd's errdefs).

It sits with the error kinds, below the gRPC services, because it needs no
grpcio: a client that speaks gRPC without grpcio (the CLI's quick calls,
:mod:`contentd.wire.client`) maps statuses exactly as
:mod:`contentd.api.errors` does; that module adapts the same table to
``grpc.StatusCode`` for servicers and grpcio clients.

Rebuilding a message follows containerd's errdefs: one trailing
``": <kind text>"`` is stripped and the kind text appended again, so
``content x: not found`` round-trips unchanged and a bare kind text stays bare.
OUT_OF_RANGE, RESOURCE_EXHAUSTED and DATA_LOSS map to our OutOfRange,
ResourceExhausted and DataLoss kinds (containerd 1.6 turns all three into Unknown);
UNAUTHENTICATED and PERMISSION_DENIED to Unauthenticated and PermissionDenied, as
containerd's later errdefs do (1.6 turns them into Unknown too); every code not
listed comes back as Unknown.
"""

from __future__ import annotations

from typing import Final

from contentd.content.errors import (
    AlreadyExists,
    Canceled,
    ContentError,
    DataLoss,
    DeadlineExceeded,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    NotImplemented,
    OutOfRange,
    PermissionDenied,
    ResourceExhausted,
    Unauthenticated,
    Unavailable,
    Unknown,
)

__all__ = [
    "CANCELLED",
    "DATA_LOSS",
    "DEADLINE_EXCEEDED",
    "INTERNAL",
    "KIND_CODES",
    "OK",
    "UNAVAILABLE",
    "UNIMPLEMENTED",
    "UNKNOWN",
    "code_number_of",
    "error_of",
]

OK: Final = 0
CANCELLED: Final = 1
UNKNOWN: Final = 2
INVALID_ARGUMENT: Final = 3
DEADLINE_EXCEEDED: Final = 4
NOT_FOUND: Final = 5
ALREADY_EXISTS: Final = 6
PERMISSION_DENIED: Final = 7
RESOURCE_EXHAUSTED: Final = 8
FAILED_PRECONDITION: Final = 9
OUT_OF_RANGE: Final = 11
UNIMPLEMENTED: Final = 12
INTERNAL: Final = 13
UNAVAILABLE: Final = 14
DATA_LOSS: Final = 15
UNAUTHENTICATED: Final = 16

#: Kind -> code number, most specific first (subclasses map through their base kind).
KIND_CODES: Final[tuple[tuple[type[ContentError], int], ...]] = (
    (InvalidArgument, INVALID_ARGUMENT),
    (NotFound, NOT_FOUND),
    (AlreadyExists, ALREADY_EXISTS),
    (FailedPrecondition, FAILED_PRECONDITION),
    (Unavailable, UNAVAILABLE),
    (NotImplemented, UNIMPLEMENTED),
    (Canceled, CANCELLED),
    (DeadlineExceeded, DEADLINE_EXCEEDED),
    (OutOfRange, OUT_OF_RANGE),
    (ResourceExhausted, RESOURCE_EXHAUSTED),
    (DataLoss, DATA_LOSS),
    (Unauthenticated, UNAUTHENTICATED),
    (PermissionDenied, PERMISSION_DENIED),
)

_KIND_OF_CODE: Final[dict[int, type[ContentError]]] = {code: kind for kind, code in KIND_CODES}


def code_number_of(err: ContentError) -> int:
    """The code a ContentError goes out with (UNKNOWN for kinds not in the table)."""
    for kind, code in KIND_CODES:
        if isinstance(err, kind):
            return code
    return UNKNOWN


def error_of(code: int, message: str) -> ContentError:
    """The ContentError for a received status (containerd's FromGRPC)."""
    kind = _KIND_OF_CODE.get(code, Unknown)
    text = kind.kind_text
    if message == text:
        return kind()
    suffix = ": " + text
    if message.endswith(suffix):
        message = message[: -len(suffix)]
    return kind(message)
