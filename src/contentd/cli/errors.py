"""How the command fails: one line on stderr and an exit status.

Every failure is printed as ``contentd: <kind>: <message>`` (``<kind>`` is the
error kind's text: ``not found``, ``invalid argument``, ``unavailable``, ...)
and exits with :data:`EXIT_ERROR`; a command line argparse cannot make sense
of, or a :class:`UsageError`, exits with :data:`EXIT_USAGE`. ``--debug`` adds
the traceback. A daemon that cannot be reached is reported with the address
that was tried and how to start one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final, TextIO

from contentd.content.errors import ContentError, NotImplemented, Unavailable

if TYPE_CHECKING:
    import grpc

__all__ = [
    "EXIT_ERROR",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_USAGE",
    "Unreachable",
    "UsageError",
    "connection_lost",
    "describe",
    "is_connect_failure",
    "report",
    "unimplemented_service",
    "unreachable",
]

EXIT_OK: Final = 0
EXIT_ERROR: Final = 1
EXIT_USAGE: Final = 2
#: 128 + SIGINT, as a shell reports a command stopped with Ctrl-C.
EXIT_INTERRUPTED: Final = 130

_CONNECT_FAILURES: Final = (
    "failed to connect to all addresses",
    "connection refused",
    "connection reset",
    "socket closed",
)


class UsageError(Exception):
    """A command line that is well-formed for argparse but still wrong (exit 2)."""


class Unreachable(Unavailable):
    """No daemon answers at the address."""


def unreachable(address: str, reason: str) -> Unreachable:
    return Unreachable(
        f"cannot connect to {address} ({reason}); is the daemon running? "
        "Start it with `contentd serve`, or point --address (or CONTENTD_ADDRESS) at its socket"
    )


def is_connect_failure(err: ContentError) -> bool:
    """Whether an Unavailable error came from the connection, not from the service
    (a locked ref is Unavailable too)."""
    if not isinstance(err, Unavailable):
        return False
    cause = err.__cause__
    details = ""
    if cause is not None:
        details_fn = getattr(cause, "details", None)
        if callable(details_fn):
            details = str(details_fn() or "")
    text = f"{details} {err.context}".lower()
    return any(marker in text for marker in _CONNECT_FAILURES)


def connection_lost(err: BaseException) -> bool:
    """Whether ``err`` means the daemon cannot be reached (so going on is pointless)."""
    return isinstance(err, Unreachable) or (
        isinstance(err, ContentError) and is_connect_failure(err)
    )


def unimplemented_service(address: str, service: str, hint: str = "") -> NotImplemented:
    more = f"; {hint}" if hint else ""
    return NotImplemented(f"the server at {address} has no {service} service{more}")


def describe(err: BaseException) -> tuple[str, str]:
    """``(kind, message)`` for the one-line report."""
    if isinstance(err, UsageError):
        return "usage", str(err)
    if isinstance(err, ContentError):
        return err.kind_text, err.context
    if isinstance(err, OSError):
        kind = _os_kind(err)
        if err.filename is not None:
            return kind, f"{err.filename}: {err.strerror or err}"
        return kind, err.strerror or str(err)
    grpc_err = _as_rpc_error(err)
    if grpc_err is not None:
        from contentd.api.errors import from_grpc

        converted = from_grpc(grpc_err)
        return converted.kind_text, converted.context
    return "unknown", f"{type(err).__name__}: {err}" if str(err) else type(err).__name__


def _os_kind(err: OSError) -> str:
    """The kind of a local file's error, in the words every other error uses."""
    if isinstance(err, FileNotFoundError):
        return "not found"
    if isinstance(err, PermissionError):
        return "permission denied"
    if isinstance(err, FileExistsError):
        return "already exists"
    if isinstance(err, (IsADirectoryError, NotADirectoryError)):
        return "invalid argument"
    return "os error"


def _as_rpc_error(err: BaseException) -> grpc.RpcError | None:
    import sys

    grpc_module = sys.modules.get("grpc")
    if grpc_module is not None and isinstance(err, grpc_module.RpcError):
        rpc_error: grpc.RpcError = err
        return rpc_error
    return None


def report(err: BaseException, stderr: TextIO, *, debug: bool = False) -> int:
    """Print ``err`` (one line; with ``debug``, the traceback first) and return the exit status."""
    if debug:
        import traceback

        traceback.print_exception(err, file=stderr)
    kind, message = describe(err)
    line = f"contentd: {kind}: {message}" if message else f"contentd: {kind}"
    print(line.replace("\n", " "), file=stderr)
    return EXIT_USAGE if isinstance(err, UsageError) else EXIT_ERROR
