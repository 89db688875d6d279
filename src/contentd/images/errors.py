"""What talking to a registry can go wrong with, as content error kinds.

* :class:`RegistryUnavailable` (``Unavailable``): connection errors and 5xx answers that
  outlived the retries;
* :class:`Unauthorized` (``Unauthenticated``): the registry (or its token service) wants
  credentials it was not given, or refused the ones it was given (HTTP 401);
* :class:`Forbidden` (``PermissionDenied``): it took the credentials, but they do not allow
  the operation (HTTP 403);
* :class:`RegistryError` (``Unknown``): any other answer the protocol does not allow;
* missing manifests and blobs are ``NotFound``, malformed ones
  :class:`~contentd.images.media.ManifestError`, wrong bytes ``DigestMismatch`` /
  ``SizeMismatch`` (``FailedPrecondition``), each naming the blob.
"""

from __future__ import annotations

from contentd.content.errors import PermissionDenied, Unauthenticated, Unavailable, Unknown

__all__ = ["Forbidden", "RegistryError", "RegistryUnavailable", "Unauthorized"]


class RegistryError(Unknown):
    """The registry answered something the distribution protocol does not allow."""


class RegistryUnavailable(Unavailable):
    """The registry could not be reached, or kept failing (5xx) through the retries."""


class Unauthorized(Unauthenticated):
    """The registry requires credentials that were not given, or refused them."""


class Forbidden(PermissionDenied):
    """The registry denies the operation to the credentials given (or to anonymous)."""
