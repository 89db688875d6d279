"""Digests: ``<algorithm>:<encoded>`` strings, validated as containerd does.

Validation follows go-digest's order of checks (spec §1.1), so error texts match
what containerd reports. Writers always hash with sha256.
"""

from __future__ import annotations

import hashlib
import re
from typing import Final, NamedTuple

from contentd.content.errors import InvalidDigest

__all__ = [
    "ALGORITHMS",
    "CANONICAL",
    "CANONICAL_FORM",
    "EMPTY_DIGEST",
    "ParsedDigest",
    "digest_of",
    "is_valid",
    "new_hasher",
    "parse",
    "validate",
]

CANONICAL: Final = "sha256"
# algorithm -> length of the hex encoding
ALGORITHMS: Final[dict[str, int]] = {"sha256": 64, "sha384": 96, "sha512": 128}
EMPTY_DIGEST: Final = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

_ANY_DIGEST = re.compile(r"[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+")
_HEX = re.compile(r"[a-f0-9]+")
#: The form nearly every digest has: one fullmatch instead of parse's split and checks.
CANONICAL_FORM: Final = re.compile(r"sha256:[a-f0-9]{64}")


class ParsedDigest(NamedTuple):
    algorithm: str
    encoded: str

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.encoded}"


def parse(digest: str) -> ParsedDigest:
    """Validate ``digest`` and split it; raises :class:`InvalidDigest`."""
    sep = digest.find(":")
    if sep <= 0 or sep == len(digest) - 1:
        raise InvalidDigest("invalid checksum digest format")
    algorithm, encoded = digest[:sep], digest[sep + 1 :]
    want = ALGORITHMS.get(algorithm)
    if want is None:
        if _ANY_DIGEST.fullmatch(digest):
            raise InvalidDigest("unsupported digest algorithm")
        raise InvalidDigest("invalid checksum digest format")
    if len(encoded) != want:
        raise InvalidDigest("invalid checksum digest length")
    if not _HEX.fullmatch(encoded):
        raise InvalidDigest("invalid checksum digest format")
    return ParsedDigest(algorithm, encoded)


def validate(digest: str) -> str:
    """Return ``digest`` unchanged if valid; raises :class:`InvalidDigest`."""
    parse(digest)
    return digest


def is_valid(digest: str) -> bool:
    if CANONICAL_FORM.fullmatch(digest):
        return True
    try:
        parse(digest)
    except InvalidDigest:
        return False
    return True


def new_hasher() -> hashlib._Hash:
    """The hasher every writer uses (sha256)."""
    return hashlib.sha256()


def digest_of(data: bytes) -> str:
    """The canonical digest of ``data``."""
    return f"{CANONICAL}:{hashlib.sha256(data).hexdigest()}"
