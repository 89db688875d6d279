"""The error kinds of the content store.

Every error contentd raises on purpose is a :class:`ContentError`. The class is
the *kind* (containerd's errdefs), and the message reads like containerd's:
``"<context>: <kind text>"``, e.g. ``content sha256:ab..: not found``.

Hierarchy::

    ContentError                      (base; never raised bare)
    ├── InvalidArgument               "invalid argument"
    │   └── InvalidDigest             a digest failed validation
    ├── NotFound                      "not found"
    ├── AlreadyExists                 "already exists"
    ├── FailedPrecondition            "failed precondition"
    │   ├── SizeMismatch(expected, actual)
    │   └── DigestMismatch(expected, actual)
    ├── Unavailable                   "unavailable"     (e.g. a locked ref)
    ├── OutOfRange                    "out of range"
    ├── ResourceExhausted             "resource exhausted"
    ├── NotImplemented                "not implemented"
    ├── DataLoss                      "data loss"       (stored bytes are corrupt or gone)
    ├── Unauthenticated               "unauthenticated" (no or bad credentials: HTTP 401)
    ├── PermissionDenied              "permission denied" (not allowed: HTTP 403)
    ├── Canceled                      "context canceled"
    ├── DeadlineExceeded              "context deadline exceeded"
    └── Unknown                       "unknown"         (anything unmapped)

Kind checks "see through wrapping": :meth:`ContentError.wrap` adds context in
front of the message and keeps the class, so ``isinstance(e, NotFound)`` still
holds after any number of wraps. Mapping kinds to gRPC status codes lives in one
place, :mod:`contentd.content.codes`.
"""

from __future__ import annotations

from typing import Self

__all__ = [
    "AlreadyExists",
    "Canceled",
    "ContentError",
    "DataLoss",
    "DeadlineExceeded",
    "DigestMismatch",
    "FailedPrecondition",
    "InvalidArgument",
    "InvalidDigest",
    "NotFound",
    "NotImplemented",
    "OutOfRange",
    "PermissionDenied",
    "ResourceExhausted",
    "SizeMismatch",
    "Unauthenticated",
    "Unavailable",
    "Unknown",
]


class ContentError(Exception):
    """Base of every content-store error; the subclass is the kind.

    ``context`` is the text before the kind text; an empty context gives the
    bare kind text, as containerd's errdefs do.
    """

    kind_text = "unknown"

    def __init__(self, context: str = "") -> None:
        self.context = context
        super().__init__(self.message)

    @property
    def message(self) -> str:
        if not self.context:
            return self.kind_text
        return f"{self.context}: {self.kind_text}"

    def __str__(self) -> str:
        return self.message

    def wrap(self, context: str) -> Self:
        """Return a copy of this error with ``context`` in front of its message."""
        new = self._clone(f"{context}: {self.context}" if self.context else context)
        new.__cause__ = self
        return new

    def _clone(self, context: str) -> Self:
        new = self.__class__.__new__(self.__class__)
        new.__dict__.update(self.__dict__)
        new.context = context
        Exception.__init__(new, new.message)
        return new


class InvalidArgument(ContentError):
    kind_text = "invalid argument"


class InvalidDigest(InvalidArgument):
    """A digest string that is not ``<alg>:<hex>`` of a supported algorithm."""


class NotFound(ContentError):
    kind_text = "not found"


class AlreadyExists(ContentError):
    kind_text = "already exists"


class FailedPrecondition(ContentError):
    kind_text = "failed precondition"


class SizeMismatch(FailedPrecondition):
    """A commit whose size differs from what was written."""

    def __init__(self, expected: int, actual: int, context: str = "") -> None:
        self.expected = expected
        self.actual = actual
        super().__init__(context or f"unexpected commit size {actual}, expected {expected}")


class DigestMismatch(FailedPrecondition):
    """A commit whose digest differs from what was written."""

    def __init__(self, expected: str, actual: str, context: str = "") -> None:
        self.expected = expected
        self.actual = actual
        super().__init__(context or f"unexpected commit digest {actual}, expected {expected}")


class Unavailable(ContentError):
    kind_text = "unavailable"


class OutOfRange(ContentError):
    kind_text = "out of range"


class ResourceExhausted(ContentError):
    kind_text = "resource exhausted"


class NotImplemented(ContentError):
    kind_text = "not implemented"


class DataLoss(ContentError):
    """Stored bytes that do not hash to their digest, or a recorded blob whose bytes are
    gone: the blob is quarantined and reads fail instead of serving wrong bytes.

    containerd's errdefs has no such kind (its ``DataLoss`` status only ever comes from a
    short write); a new ingest of the same digest repairs the blob.
    """

    kind_text = "data loss"


class Unauthenticated(ContentError):
    """Credentials were wanted and not given, or not accepted (containerd's later errdefs
    have the same kind and text; 1.6's map the code to Unknown)."""

    kind_text = "unauthenticated"


class PermissionDenied(ContentError):
    """The credentials were accepted but do not allow the operation."""

    kind_text = "permission denied"


class Canceled(ContentError):
    kind_text = "context canceled"


class DeadlineExceeded(ContentError):
    kind_text = "context deadline exceeded"


class Unknown(ContentError):
    kind_text = "unknown"
