"""containerd identifiers: namespace names and topic components."""

from __future__ import annotations

import re
from typing import Final

from contentd.content.errors import FailedPrecondition, InvalidArgument

__all__ = ["IDENTIFIER_PATTERN", "MAX_IDENTIFIER_LENGTH", "require_namespace", "validate"]

MAX_IDENTIFIER_LENGTH: Final = 76
IDENTIFIER_PATTERN: Final = r"^[A-Za-z0-9]+(?:[._-](?:[A-Za-z0-9]+))*$"
_IDENTIFIER = re.compile(r"[A-Za-z0-9]+(?:[._-][A-Za-z0-9]+)*")


def validate(name: str) -> None:
    """InvalidArgument unless ``name`` is a valid containerd identifier."""
    if not name:
        raise InvalidArgument("identifier must not be empty")
    if len(name) > MAX_IDENTIFIER_LENGTH:
        raise InvalidArgument(
            f"identifier {name!r} greater than maximum length ({MAX_IDENTIFIER_LENGTH} characters)"
        )
    if not _IDENTIFIER.fullmatch(name):
        raise InvalidArgument(f'identifier "{name}" must match {IDENTIFIER_PATTERN}')


def require_namespace(namespace: str | None) -> str:
    """The namespace of a call: FailedPrecondition if absent, InvalidArgument if invalid."""
    if not namespace:
        raise FailedPrecondition("namespace is required")
    try:
        validate(namespace)
    except InvalidArgument as err:
        raise err.wrap("namespace validation") from None
    return namespace
