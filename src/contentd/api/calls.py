"""Helpers shared by the non-content services: the caller's headers, ending a call with an error."""

from __future__ import annotations

import logging
from typing import NoReturn

import grpc

from contentd.api.errors import StatusError, abort_with, expected
from contentd.api.metadata_keys import namespace_and_lease

__all__ = ["fail", "headers"]


def headers(context: grpc.ServicerContext) -> tuple[str | None, str | None]:
    """The call's ``containerd-namespace`` and ``containerd-lease`` (None when absent)."""
    return namespace_and_lease(context.invocation_metadata())


def fail(
    context: grpc.ServicerContext, err: BaseException, what: str, log: logging.Logger
) -> NoReturn:
    """End the call with the status ``err`` maps to (api/errors.py); log the unexpected."""
    from contentd.content.errors import ContentError

    err = expected(err)
    if isinstance(err, ContentError | StatusError):
        log.debug("%s failed: %s", what, err)
    else:
        log.error("%s failed unexpectedly: %r", what, err, exc_info=err)
    abort_with(context, err)
