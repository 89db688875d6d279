"""contentd's built-in plugins, in registration order.

=====================================  ==============================================
``io.containerd.content.v1.content``   the local store at its plugin root
``io.containerd.content.v1.<name>``    one per ``[proxy_plugins.<name>]`` (ProxyStore)
``io.contentd.metadata.v1.postgres``   PostgreSQL settings, when a dsn is configured (else
                                       skipped): the metadata layer and S3 ingests live there
``io.contentd.content.v1.s3``          S3Store, when a bucket is configured (else skipped)
``io.containerd.metadata.v1.sqlite``   MetadataDB over the chosen content plugin
``io.containerd.gc.v1.scheduler``      the GC scheduler (started at init)
``io.containerd.event.v1.exchange``    the event exchange (the metadata layer's)
``io.containerd.grpc.v1.content``      Content service (header-less calls pinned)
``io.containerd.grpc.v1.leases``       Leases service
``io.containerd.grpc.v1.namespaces``   Namespaces service
``io.containerd.grpc.v1.introspection`` Introspection service
``io.containerd.grpc.v1.version``      Version service
``io.containerd.grpc.v1.healthcheck``  grpc.health.v1 Health service
``io.containerd.grpc.v1.events``       Events service
``io.containerd.grpc.v1.gc``           contentd's GC service (``contentd gc``)
``io.containerd.grpc.v1.fsck``         contentd's fsck service and online scrubber
=====================================  ==============================================
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from contentd.plugins.builtin.configs import FsckConfig, GCSchedulerConfig, MetadataConfig
from contentd.plugins.builtin.fsck_service import fsck_service_registration
from contentd.plugins.builtin.gc_service import gc_service_registration
from contentd.plugins.builtin.postgres import POSTGRES_URI, PostgresConfig, postgres_registration
from contentd.plugins.builtin.s3 import S3_URI, S3Config, s3_registration
from contentd.plugins.builtin.services import service_registrations
from contentd.plugins.builtin.storage import (
    LOCAL_CONTENT_ID,
    METADATA_ID,
    choose_backend,
    proxy_registrations,
    storage_registrations,
)
from contentd.plugins.registry import Registration

if TYPE_CHECKING:
    from contentd.config import Config

__all__ = [
    "LOCAL_CONTENT_ID",
    "METADATA_ID",
    "POSTGRES_URI",
    "S3_URI",
    "FsckConfig",
    "GCSchedulerConfig",
    "MetadataConfig",
    "PostgresConfig",
    "S3Config",
    "builtin_registrations",
    "choose_backend",
    "proxy_registrations",
]


def builtin_registrations(config: Config | None = None) -> list[Registration]:
    """The built-in plugins, plus one content plugin per proxy in ``config``."""
    storage = storage_registrations()
    proxies = proxy_registrations(config) if config is not None else []
    # proxies right after the local content store, before anything that needs content
    return [
        storage[0],
        *proxies,
        postgres_registration(),
        s3_registration(),
        *storage[1:],
        *service_registrations(),
        gc_service_registration(),
        fsck_service_registration(),
    ]
