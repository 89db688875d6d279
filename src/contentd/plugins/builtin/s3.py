"""The S3 content plugin, ``io.contentd.content.v1.s3``.

Configured by ``[plugins."io.contentd.content.v1.s3"]``; with ``bucket`` set it
replaces the local store as the metadata layer's backend (see
:func:`contentd.plugins.builtin.storage.choose_backend`), and ``contentd serve``
requires it: a bucket that cannot be read at start stops the daemon with the
reason. Without a bucket the plugin skips itself. Credentials come from the
standard AWS environment variables and files; they are not config keys, so
``contentd config dump`` cannot show them.

Local files live in the plugin's root: ``ingests.db`` (ingest state, SQLite;
when ``io.contentd.metadata.v1.postgres`` has a ``dsn`` the metadata layer
hands its database over at init - :meth:`S3Store.keep_ingest_records_in` -
and the records live there, so that any node can go on with an ingest),
``spool/`` (bytes waiting to fill a part, and the node's id) and, unless
``cache_dir`` says otherwise, ``cache/`` (the read cache).
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from contentd.content.errors import InvalidArgument
from contentd.plugins import types
from contentd.plugins.context import InitContext
from contentd.plugins.registry import Registration, SkipPlugin

if TYPE_CHECKING:
    from contentd.config import Config

__all__ = [
    "S3_ID",
    "S3_URI",
    "S3Config",
    "parse_size",
    "require_configured",
    "s3_registration",
]

S3_ID: Final = "s3"
S3_URI: Final = f"{types.CONTENTD_CONTENT}.{S3_ID}"

_UNITS: Final = {
    "": 1,
    "b": 1,
    "k": 1000,
    "kb": 1000,
    "m": 1000**2,
    "mb": 1000**2,
    "g": 1000**3,
    "gb": 1000**3,
    "t": 1000**4,
    "tb": 1000**4,
    "kib": 1 << 10,
    "mib": 1 << 20,
    "gib": 1 << 30,
    "tib": 1 << 40,
}
_SIZE: Final = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*")


def parse_size(value: str | int) -> int:
    """Bytes in ``value``: an integer, or a number with a unit (``20GiB``, ``512MB``)."""
    if isinstance(value, int):
        if value < 0:
            raise InvalidArgument(f"negative size {value}")
        return value
    m = _SIZE.fullmatch(value)
    unit = _UNITS.get(m.group(2).lower()) if m else None
    if m is None or unit is None:
        raise InvalidArgument(f"invalid size {value!r} (e.g. 20GiB, 512MiB, 1000000)")
    return int(float(m.group(1)) * unit)


@dataclass(frozen=True)
class S3Config:
    """``[plugins."io.contentd.content.v1.s3"]``.

    ``endpoint``: the S3 server's URL (empty: AWS itself); ``bucket``: set it to
    use the plugin; ``region``; ``prefix``: put before every key (e.g.
    ``"cluster-a/"``); ``cache_dir`` (empty: ``<plugin root>/cache``) and
    ``cache_size``: the node-local read cache; ``part_size``: bytes per
    multipart part (at least 5 MiB).
    """

    endpoint: str = ""
    bucket: str = ""
    region: str = "us-east-1"
    prefix: str = ""
    cache_dir: str = ""
    cache_size: str | int = "10GiB"
    part_size: str | int = "8MiB"

    @property
    def configured(self) -> bool:
        return bool(self.bucket)

    def validate(self) -> None:
        from contentd.s3 import MIN_PART_SIZE

        for name in ("cache_size", "part_size"):
            try:
                parse_size(getattr(self, name))
            except InvalidArgument as err:
                raise InvalidArgument(f"{name}: {err.context}") from None
        if parse_size(self.part_size) < MIN_PART_SIZE:
            raise InvalidArgument("part_size: S3 parts are at least 5MiB")
        if self.endpoint and not self.bucket:
            raise InvalidArgument("endpoint is set but bucket is not")
        if self.endpoint and not re.match(r"https?://", self.endpoint):
            raise InvalidArgument(f"endpoint: {self.endpoint!r} is not an http(s) URL")
        if self.prefix.startswith("/") or ".." in self.prefix.split("/"):
            raise InvalidArgument(f"prefix: {self.prefix!r} must be relative, without '..'")


def _init_s3(ic: InitContext) -> object:
    config = ic.config if isinstance(ic.config, S3Config) else S3Config()
    if not config.configured:
        raise SkipPlugin(f'no bucket set in [plugins."{S3_URI}"]')
    from contentd.s3 import (
        ReadCache,
        S3Location,
        S3Store,
        SqliteIngestStates,
        check_bucket,
        make_client,
    )

    location = S3Location(
        bucket=config.bucket, endpoint=config.endpoint, region=config.region, prefix=config.prefix
    )
    client = make_client(location)
    check_bucket(client, location)  # fail fast, with the reason
    os.makedirs(ic.root, 0o700, exist_ok=True)
    cache_dir = config.cache_dir or os.path.join(ic.root, "cache")
    cache_size = parse_size(config.cache_size)
    # a PostgreSQL metadata layer replaces this with a table of its own database
    states = SqliteIngestStates(os.path.join(ic.root, "ingests.db"))
    store = S3Store(
        client,
        location,
        states=states,
        spool_dir=os.path.join(ic.root, "spool"),
        cache=ReadCache(cache_dir, cache_size),
        part_size=parse_size(config.part_size),
    )
    ic.exports.update(
        {
            "endpoint": config.endpoint or "aws",
            "bucket": config.bucket,
            "prefix": config.prefix,
            "cache_dir": cache_dir,
            "cache_size": str(cache_size),
        }
    )
    return store


def s3_registration() -> Registration:
    return Registration(
        types.CONTENTD_CONTENT,
        S3_ID,
        _init_s3,
        requires=(types.CONTENTD_METADATA,),
        config=S3Config(),
    )


def require_configured(config: Config, plugin_configs: Mapping[str, object]) -> Config:
    """``config`` with the S3 plugin required when a bucket is configured.

    ``contentd serve`` then stops at start when the bucket cannot be used,
    instead of serving from a local store nobody asked for.
    """
    s3 = plugin_configs.get(S3_URI)
    if not isinstance(s3, S3Config) or not s3.configured or S3_URI in config.required_plugins:
        return config
    return dataclasses.replace(config, required_plugins=[*config.required_plugins, S3_URI])
