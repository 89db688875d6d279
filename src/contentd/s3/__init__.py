"""The content store on S3-compatible object storage (plugin ``io.contentd.content.v1.s3``).

* :class:`S3Store` - blobs at ``<prefix>blobs/<alg>/<hex>``, ingests as multipart uploads;
* :class:`IngestStates` - where ingest state is kept: :class:`SqlIngestStates` (a table in
  the metadata layer's database) or :class:`SqliteIngestStates` (an SQLite file of its own);
* :class:`ReadCache` - the node-local, verified, size-bounded read cache;
* :class:`S3Location`, :func:`make_client`, :func:`check_bucket` - the boto3 side.
"""

from __future__ import annotations

from contentd.s3.cache import CacheStats, ReadCache
from contentd.s3.client import S3Location, check_bucket, make_client
from contentd.s3.ingests import (
    IngestState,
    IngestStates,
    Part,
    SqlIngestStates,
    SqliteIngestStates,
)
from contentd.s3.store import MIN_PART_SIZE, S3Stats, S3Store

__all__ = [
    "MIN_PART_SIZE",
    "CacheStats",
    "IngestState",
    "IngestStates",
    "Part",
    "ReadCache",
    "S3Location",
    "S3Stats",
    "S3Store",
    "SqlIngestStates",
    "SqliteIngestStates",
    "check_bucket",
    "make_client",
]
