"""The boto3 client the S3 store uses, and the checks made before serving.

Credentials come from boto3's standard chain (``AWS_ACCESS_KEY_ID`` /
``AWS_SECRET_ACCESS_KEY`` / ``AWS_SESSION_TOKEN``, ``AWS_PROFILE``, the shared
credentials and config files): contentd never reads, stores or logs them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from contentd.s3.errors import translate

if TYPE_CHECKING:
    import boto3.session
    from mypy_boto3_s3 import S3Client

__all__ = ["S3Location", "check_bucket", "make_client"]


@dataclass(frozen=True)
class S3Location:
    """Where the blobs live: ``endpoint`` (empty: AWS), ``bucket``, ``region``, key ``prefix``."""

    bucket: str
    endpoint: str = ""
    region: str = "us-east-1"
    prefix: str = ""

    def describe(self) -> str:
        where = self.endpoint or f"AWS {self.region}"
        return f"s3://{self.bucket}/{self.prefix} at {where}"


def make_client(
    location: S3Location,
    *,
    connect_timeout: float = 5.0,
    read_timeout: float = 60.0,
    attempts: int = 3,
    pool: int = 32,
    session: boto3.session.Session | None = None,
) -> S3Client:
    """A thread-safe boto3 S3 client for ``location`` (path-style addressing).

    ``session`` defaults to a new boto3 session: credentials from the standard chain.
    """
    import boto3
    from botocore.config import Config

    config = Config(
        region_name=location.region or None,
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
        retries={"mode": "standard", "max_attempts": attempts},
        max_pool_connections=pool,
        s3={"addressing_style": "path"},
        # bodies are verified by sha256 here; the default CRC32 on every part
        # and GET costs a pass over the bytes for nothing more
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
    )
    if session is None:
        session = boto3.session.Session()
    client: S3Client = session.client("s3", endpoint_url=location.endpoint or None, config=config)
    return client


def check_bucket(client: S3Client, location: S3Location) -> None:
    """Fail fast unless the bucket answers a real read with these credentials."""
    try:
        client.list_objects_v2(Bucket=location.bucket, Prefix=location.prefix, MaxKeys=1)
    except Exception as err:
        raise translate(err, f"S3 bucket {location.describe()}") from None
