"""The storage plugins: content stores, the metadata layer, GC scheduling, the event exchange.

Heavy modules are imported inside the init functions, so building the
registrations costs nothing at start-up.
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING, Final, cast

from contentd.content.errors import FailedPrecondition, InvalidArgument, NotFound
from contentd.plugins import types
from contentd.plugins.builtin.configs import GCSchedulerConfig, MetadataConfig
from contentd.plugins.builtin.postgres import postgres_settings
from contentd.plugins.context import InitContext, Plugin
from contentd.plugins.registry import InitFn, Registration, SkipPlugin

if TYPE_CHECKING:
    from contentd.config import Config
    from contentd.content.store import Store
    from contentd.metadata import Exchange, MetadataDB, Scheduler

__all__ = [
    "EXCHANGE_ID",
    "GC_ID",
    "LOCAL_CONTENT_ID",
    "METADATA_DB_FILE",
    "METADATA_ID",
    "choose_backend",
    "proxy_registrations",
    "storage_registrations",
]

log = logging.getLogger("contentd.plugins")

LOCAL_CONTENT_ID: Final = "content"
METADATA_ID: Final = "sqlite"
METADATA_DB_FILE: Final = "meta.db"
GC_ID: Final = "scheduler"
EXCHANGE_ID: Final = "exchange"


def _init_local_content(ic: InitContext) -> object:
    from contentd.local import LocalStore

    os.makedirs(ic.root, 0o711, exist_ok=True)
    store = LocalStore(ic.root)
    ic.exports["root"] = ic.root
    return store


def _proxy_init(name: str, address: str) -> InitFn:
    def init(ic: InitContext) -> object:
        from contentd.proxy import ProxyStore

        ic.exports["address"] = address
        # header-less, as containerd's proxy plugins are: the remote sees no namespace
        return ProxyStore(address, namespace=None)

    init.__qualname__ = f"proxy_plugins.{name}"
    return init


def proxy_registrations(config: Config) -> list[Registration]:
    """One ``io.containerd.content.v1.<name>`` per ``[proxy_plugins.<name>]`` (validated config)."""
    out: list[Registration] = []
    for name, proxy in config.proxy_plugins.items():
        out.append(
            Registration(
                type=types.CONTENT,
                id=name,
                init=_proxy_init(name, proxy.address),
                origin=f"proxy_plugins.{name}",
            )
        )
    return out


def choose_backend(ic: InitContext) -> Plugin:
    """The content plugin the metadata layer stores bytes in.

    Deterministic, unlike containerd (which takes whichever its map yields):
    a configured contentd content plugin (``io.contentd.content.v1.s3`` with a
    bucket) wins, and its failure is this plugin's (never a silent fall-back
    to local disk); else the first configured proxy content plugin that
    initialised; else the local store; else any other content plugin that
    initialised. With none, the first failed one's error (or NotFound when
    there are none) is raised.
    """
    try:
        ours = ic.get_by_type(types.CONTENTD_CONTENT)
    except NotFound:  # disabled
        ours = {}
    for plugin in ours.values():
        if plugin.ok:
            return plugin
        if not isinstance(plugin.error, SkipPlugin):
            plugin.result()
    candidates = ic.get_by_type(types.CONTENT)
    ok = [p for p in candidates.values() if p.ok]
    proxies = [p for p in ok if p.registration.origin.startswith("proxy_plugins.")]
    if proxies:
        return proxies[0]
    local = candidates.get(LOCAL_CONTENT_ID)
    if local is not None and local.ok:
        return local
    if ok:
        return ok[0]
    first = next(iter(candidates.values()))
    first.result()
    raise NotFound(f"no content plugin initialised for {types.CONTENT}")  # pragma: no cover


def _init_metadata(ic: InitContext) -> object:
    from contentd.metadata import POLICIES, MetadataDB

    config = ic.config if isinstance(ic.config, MetadataConfig) else MetadataConfig()
    policy = config.content_sharing_policy
    if policy not in POLICIES:
        raise InvalidArgument(f"unknown policy: {policy}")
    backend = choose_backend(ic)
    others = [
        p.uri for p in ic.get_by_type(types.CONTENT).values() if p.ok and p.uri != backend.uri
    ]
    log.info(
        "content backend: %s%s",
        backend.uri,
        f" (also initialised, unused: {', '.join(others)})" if others else "",
        extra={"fields": {"backend": backend.uri, **backend.meta.exports}},
    )
    pg = postgres_settings(ic)
    if pg is None:
        os.makedirs(ic.root, 0o711, exist_ok=True)
        path = os.path.join(ic.root, METADATA_DB_FILE)
        db = MetadataDB(path, cast("Store", backend.instance), content_sharing_policy=policy)
    else:
        db = MetadataDB(
            None,
            cast("Store", backend.instance),
            content_sharing_policy=policy,
            dsn=pg.dsn,
            node=pg.node_name or None,
            ref_lock_lease=pg.seconds("ref_lock_lease"),
            backend_grace=pg.seconds("gc_grace"),
            pool_size=pg.pool_size,
        )
        path = db.path  # the DSN, password masked
        ic.exports["engine"] = "postgres"
    try:
        # a node refuses to start while another live node pins one of its namespaces
        for namespace in _pinned_namespaces(ic):
            db.pin_namespace(namespace)
    except BaseException:
        db.close()
        raise
    ic.exports["policy"] = policy
    ic.exports["path"] = path
    ic.exports["content"] = backend.uri
    return db


def _pinned_namespaces(ic: InitContext) -> list[str]:
    """The namespaces this daemon serves header-less calls from."""
    config = ic.server_config
    if config is None:
        return []
    names = [config.grpc.headerless_namespace] if config.grpc.headerless_namespace else []
    names += [config.listener_namespace(name) for name in config.headerless_listeners]
    return sorted(set(names))


def _metadata(ic: InitContext) -> MetadataDB:
    from contentd.metadata import MetadataDB

    db = ic.get(types.METADATA)
    if not isinstance(db, MetadataDB):
        raise FailedPrecondition(f"{types.METADATA} plugin is not a MetadataDB")
    return db


def _init_gc(ic: InitContext) -> object:
    from contentd.metadata import SchedulerConfig

    config = ic.config if isinstance(ic.config, GCSchedulerConfig) else GCSchedulerConfig()
    db = _metadata(ic)
    scheduler: Scheduler = db.gc_scheduler(
        SchedulerConfig(
            pause_threshold=config.pause_threshold,
            deletion_threshold=config.deletion_threshold,
            mutation_threshold=config.mutation_threshold,
            schedule_delay=config.seconds("schedule_delay"),
            startup_delay=config.seconds("startup_delay"),
        )
    )
    scheduler.start()
    return scheduler


def _init_exchange(ic: InitContext) -> object:
    # The metadata layer publishes content events on its own exchange, so that
    # exchange is the daemon's; without a metadata plugin a fresh one serves
    # Publish/Subscribe alone.
    from contentd.metadata import Exchange

    try:
        exchange: Exchange = _metadata(ic).events
    except Exception:  # no usable metadata plugin: its failure is reported on its own
        exchange = Exchange()
    return exchange


def storage_registrations() -> list[Registration]:
    return [
        Registration(types.CONTENT, LOCAL_CONTENT_ID, _init_local_content),
        Registration(
            types.METADATA,
            METADATA_ID,
            _init_metadata,
            requires=(types.CONTENT, types.CONTENTD_CONTENT, types.CONTENTD_METADATA),
            config=MetadataConfig(),
        ),
        Registration(
            types.GC,
            GC_ID,
            _init_gc,
            requires=(types.METADATA,),
            config=GCSchedulerConfig(),
        ),
        Registration(types.EVENT, EXCHANGE_ID, _init_exchange, requires=(types.METADATA,)),
    ]
