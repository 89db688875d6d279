"""Error kinds <-> ``grpc.StatusCode``: the grpcio face of :mod:`contentd.content.codes`,
which holds the one kind/code table.

Server side, :func:`to_grpc` turns any exception into ``(code, message)``:

* a :class:`StatusError` (a status the service emits directly, such as
  OUT_OF_RANGE ``read past object length ...``) or a ``grpc.RpcError`` that
  carries a status passes through unchanged;
* a :class:`~contentd.content.errors.ContentError` gets the code of its kind
  and its full message;
* an ``OSError`` for running out of file descriptors (EMFILE, ENFILE) is
  RESOURCE_EXHAUSTED: the daemon is at its limit, and a retry once other calls
  have finished succeeds (see :func:`expected`);
* anything else is UNKNOWN with ``str(err)``.

Client side, :func:`from_grpc` turns a status back into a ContentError of the
matching kind (see :func:`contentd.content.codes.error_of` for how the message is
rebuilt, and for the two deliberate differences from containerd).
"""

from __future__ import annotations

import errno
from typing import Final, NoReturn

import grpc

from contentd.content import codes
from contentd.content.errors import ContentError, ResourceExhausted

__all__ = [
    "CODE_OF_KIND",
    "KIND_OF_CODE",
    "StatusError",
    "abort_with",
    "code_of",
    "expected",
    "from_grpc",
    "from_status",
    "to_grpc",
]

StatusCode = grpc.StatusCode
_BY_NUMBER: Final[dict[int, grpc.StatusCode]] = {c.value[0]: c for c in StatusCode}

#: Kind -> code, most specific first (subclasses map through their base kind).
CODE_OF_KIND: Final[tuple[tuple[type[ContentError], grpc.StatusCode], ...]] = tuple(
    (kind, _BY_NUMBER[number]) for kind, number in codes.KIND_CODES
)

#: Code -> kind; every code not listed comes back as Unknown.
KIND_OF_CODE: Final[dict[grpc.StatusCode, type[ContentError]]] = {
    code: kind for kind, code in CODE_OF_KIND
}


class StatusError(Exception):
    """A gRPC status raised as-is by the service (it is not an error kind).

    ``to_grpc`` passes it through unchanged, e.g. OUT_OF_RANGE
    ``write @5 must occur at current offset 3`` or DATA_LOSS.
    """

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def __str__(self) -> str:
        return self.message


#: errnos of a process out of file descriptors (its own limit, or the system's)
_NO_DESCRIPTORS: Final = frozenset({errno.EMFILE, errno.ENFILE})


def expected(err: BaseException) -> BaseException:
    """``err`` as the error kind it stands for, when it is a known condition rather
    than a bug: running out of file descriptors becomes ResourceExhausted (a load
    condition that clears when calls finish, so it is not logged as a failure)."""
    if isinstance(err, OSError) and err.errno in _NO_DESCRIPTORS:
        new = ResourceExhausted(f"too many open files in the daemon ({err.strerror}); retry later")
        new.__cause__ = err
        return new
    return err


def code_of(err: BaseException) -> grpc.StatusCode:
    """The status code ``err`` goes out with."""
    return to_grpc(err)[0]


def to_grpc(err: BaseException) -> tuple[grpc.StatusCode, str]:
    """``(code, message)`` for an error leaving the server (containerd's ToGRPC)."""
    err = expected(err)
    if isinstance(err, StatusError):
        return err.code, err.message
    if isinstance(err, ContentError):
        for kind, code in CODE_OF_KIND:
            if isinstance(err, kind):
                return code, err.message
        return StatusCode.UNKNOWN, err.message
    if isinstance(err, grpc.RpcError):
        status, details = _status_of(err)
        if status is not None:  # already a gRPC status: unchanged
            return status, details if details is not None else str(err)
    return StatusCode.UNKNOWN, str(err)


def _status_of(err: grpc.RpcError) -> tuple[grpc.StatusCode | None, str | None]:
    """The code and details of a failed call (a ``grpc.Call``), if it has them."""
    code_fn = getattr(err, "code", None)
    details_fn = getattr(err, "details", None)
    code = code_fn() if callable(code_fn) else None
    details = details_fn() if callable(details_fn) else None
    return (
        code if isinstance(code, grpc.StatusCode) else None,
        details if isinstance(details, str) else None,
    )


def abort_with(context: grpc.ServicerContext, err: BaseException) -> NoReturn:
    """End the RPC with the status ``err`` maps to."""
    code, message = to_grpc(err)
    context.abort(code, message)
    raise AssertionError("unreachable: ServicerContext.abort returned")  # pragma: no cover


def from_status(code: grpc.StatusCode, message: str) -> ContentError:
    """The ContentError for a received status (containerd's FromGRPC)."""
    return codes.error_of(code.value[0], message)


def from_grpc(err: grpc.RpcError) -> ContentError:
    """The ContentError for an RPC that failed (anything without a status is Unknown)."""
    code, message = _status_of(err)
    new = from_status(
        code if code is not None else StatusCode.UNKNOWN,
        message if message is not None else str(err),
    )
    new.__cause__ = err
    return new
