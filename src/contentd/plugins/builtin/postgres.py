"""The PostgreSQL metadata plugin, ``io.contentd.metadata.v1.postgres``.

Configured by ``[plugins."io.contentd.metadata.v1.postgres"]``; with ``dsn`` set
the metadata plugin (``io.containerd.metadata.v1.sqlite``, whose URI stays
containerd's) keeps its records in that PostgreSQL database instead of
``meta.db``, the S3 content plugin keeps its ingest state there too, and
every node configured with the same ``dsn`` (and bucket) is one store.
``contentd serve`` then requires both plugins: a database that cannot be
reached at start stops the daemon with the reason. Without ``dsn`` the plugin
skips itself.

The plugin's instance is its validated :class:`PostgresConfig`. A password
belongs in ``PGPASSWORD`` or a ``.pgpass`` file (libpq reads both); one
written into ``dsn`` is shown as ``***`` by ``contentd config dump``, in the
plugin's exports and in every log line and error.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Final

from contentd.content.errors import InvalidArgument
from contentd.plugins import types
from contentd.plugins.builtin.configs import Durations
from contentd.plugins.context import InitContext
from contentd.plugins.registry import Registration, SkipPlugin

if TYPE_CHECKING:
    from contentd.config import Config

__all__ = [
    "POSTGRES_ID",
    "POSTGRES_URI",
    "PostgresConfig",
    "postgres_registration",
    "postgres_settings",
    "require_postgres",
]

POSTGRES_ID: Final = "postgres"
POSTGRES_URI: Final = f"{types.CONTENTD_METADATA}.{POSTGRES_ID}"


@dataclass(frozen=True)
class PostgresConfig(Durations):
    """``[plugins."io.contentd.metadata.v1.postgres"]``.

    ``dsn``: a libpq connection string (``host=/run/postgresql dbname=contentd
    user=contentd``) or URL; set it to use the plugin. ``node_name``: this
    node's name in ref locks, pins and errors (empty: the host name).
    ``ref_lock_lease``: how long a writer's hold on a ref outlives its node
    (renewed every third of it while the node lives). ``gc_grace``: backend
    objects younger than this are never collected (other nodes may be
    committing them). ``pool_size``: this node's connections at most.
    """

    dsn: str = ""
    node_name: str = ""
    ref_lock_lease: str | float = "30s"
    gc_grace: str | float = "10m"
    pool_size: int = 16

    @property
    def configured(self) -> bool:
        return bool(self.dsn)

    DURATIONS: ClassVar[tuple[str, ...]] = ("ref_lock_lease", "gc_grace")

    def validate(self) -> None:
        self.check_durations()
        if self.seconds("ref_lock_lease") <= 0:
            raise InvalidArgument("ref_lock_lease must be positive")
        if self.pool_size < 1:
            raise InvalidArgument("pool_size must be at least 1")
        if self.dsn:
            from psycopg.conninfo import conninfo_to_dict

            try:
                conninfo_to_dict(self.dsn)
            except Exception:
                # the message would quote the string, password and all
                raise InvalidArgument("dsn: not a libpq connection string or URL") from None

    def redacted(self) -> PostgresConfig:
        """This config with the password in ``dsn`` masked (what dumps and logs show)."""
        if not self.dsn:
            return self
        from contentd.metadata.postgres import redact_dsn

        return dataclasses.replace(self, dsn=redact_dsn(self.dsn))


def _init_postgres(ic: InitContext) -> object:
    config = ic.config if isinstance(ic.config, PostgresConfig) else PostgresConfig()
    if not config.configured:
        raise SkipPlugin(f'no dsn set in [plugins."{POSTGRES_URI}"]')
    import psycopg

    from contentd.metadata.postgres import redact_dsn

    try:  # fail fast, with the reason (never the password)
        psycopg.connect(config.dsn, connect_timeout=10).close()
    except psycopg.Error as err:
        from contentd.content.errors import Unavailable

        raise Unavailable(
            f"cannot connect to the metadata database ({redact_dsn(config.dsn)}):"
            f" {str(err).strip()}"
        ) from None
    ic.exports["dsn"] = redact_dsn(config.dsn)
    ic.exports["ref_lock_lease"] = f"{config.seconds('ref_lock_lease'):g}s"
    ic.exports["gc_grace"] = f"{config.seconds('gc_grace'):g}s"
    return config


def postgres_registration() -> Registration:
    return Registration(
        types.CONTENTD_METADATA, POSTGRES_ID, _init_postgres, config=PostgresConfig()
    )


def postgres_settings(ic: InitContext) -> PostgresConfig | None:
    """The configured PostgreSQL plugin's settings, for the plugins that store in it;
    None when it is not configured (or disabled). Its failure is theirs."""
    from contentd.content.errors import NotFound

    try:
        plugins = ic.get_by_type(types.CONTENTD_METADATA)
    except NotFound:
        return None
    for plugin in plugins.values():
        if plugin.ok:
            settings = plugin.instance
            return settings if isinstance(settings, PostgresConfig) else None
        if not isinstance(plugin.error, SkipPlugin):
            plugin.result()
    return None


def require_postgres(config: Config, plugin_configs: Mapping[str, object]) -> Config:
    """``config`` with the PostgreSQL and metadata plugins required when ``dsn`` is set:
    ``contentd serve`` then stops at start when the database cannot be used."""
    from contentd.plugins.builtin.storage import METADATA_ID

    pg = plugin_configs.get(POSTGRES_URI)
    if not isinstance(pg, PostgresConfig) or not pg.configured:
        return config
    wanted = [POSTGRES_URI, f"{types.METADATA}.{METADATA_ID}"]
    missing = [uri for uri in wanted if uri not in config.required_plugins]
    if not missing:
        return config
    return dataclasses.replace(config, required_plugins=[*config.required_plugins, *missing])
