"""botocore's exceptions as contentd's error kinds: one table, one function.

What an S3 call raises reaches callers as a :class:`ContentError` whose kind
says what to do about it: a missing object or upload is NotFound; refused
credentials or a missing bucket are FailedPrecondition (nothing will change by
retrying); a server that cannot be reached, times out or answers 5xx is
Unavailable. Messages name the bucket and key, never a credential.
"""

from __future__ import annotations

from typing import Final

from contentd.content.errors import (
    AlreadyExists,
    ContentError,
    FailedPrecondition,
    NotFound,
    OutOfRange,
    Unavailable,
    Unknown,
)

__all__ = ["CREDENTIAL_CODES", "translate"]

#: S3 error codes that mean the credentials were refused
CREDENTIAL_CODES: Final = frozenset(
    {
        "AccessDenied",
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "InvalidToken",
        "ExpiredToken",
        "403",
    }
)

_BY_CODE: Final[dict[str, type[ContentError]]] = {
    "NoSuchKey": NotFound,
    "NoSuchUpload": NotFound,
    "404": NotFound,
    "NotFound": NotFound,
    "NoSuchBucket": FailedPrecondition,
    "PreconditionFailed": AlreadyExists,
    "412": AlreadyExists,
    "InvalidRange": OutOfRange,
    "416": OutOfRange,
    "SlowDown": Unavailable,
    "ServiceUnavailable": Unavailable,
    "InternalError": Unavailable,
    "RequestTimeout": Unavailable,
}


def translate(err: BaseException, context: str) -> ContentError:
    """The ContentError for ``err`` raised by an S3 call about ``context``."""
    import botocore.exceptions as bx

    if isinstance(err, ContentError):
        return err
    if isinstance(err, bx.NoCredentialsError | bx.PartialCredentialsError):
        return FailedPrecondition(
            f"{context}: no S3 credentials (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
            "or AWS_PROFILE / AWS_SHARED_CREDENTIALS_FILE)"
        )
    if isinstance(err, bx.ClientError):
        error = err.response.get("Error", {})
        code = str(error.get("Code", ""))
        status = int(err.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        if code in CREDENTIAL_CODES or status == 403:
            return FailedPrecondition(
                f"{context}: S3 refused the credentials ({code or status}); check "
                "AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY or the AWS credentials file"
            )
        kind = _BY_CODE.get(code)
        if kind is None:
            kind = Unavailable if status >= 500 else Unknown
        message = str(error.get("Message", "")) or code
        if code == "NoSuchBucket":
            message = "bucket does not exist"
        return kind(f"{context}: {message}")
    if isinstance(
        err,
        bx.EndpointConnectionError
        | bx.ConnectionClosedError
        | bx.ConnectTimeoutError
        | bx.ReadTimeoutError
        | bx.ResponseStreamingError
        | bx.HTTPClientError,
    ):
        return Unavailable(f"{context}: S3 endpoint unreachable: {err}")
    if isinstance(err, ConnectionError | TimeoutError):
        return Unavailable(f"{context}: S3 endpoint unreachable: {err}")
    return Unknown(f"{context}: {type(err).__name__}: {err}")
