"""The gRPC service plugins (``io.containerd.grpc.v1.*``).

Each instance has ``register(server)``; the daemon registers every one that
initialised on its gRPC server once all plugins are loaded.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from contentd.content.errors import FailedPrecondition
from contentd.plugins import types
from contentd.plugins.context import InitContext
from contentd.plugins.registry import Registration

if TYPE_CHECKING:
    from contentd.metadata import Exchange, MetadataDB

__all__ = ["GRPC_IDS", "service_registrations"]

GRPC_IDS: Final = (
    "content",
    "images",
    "leases",
    "namespaces",
    "introspection",
    "version",
    "healthcheck",
    "events",
    "registry",
)


def _metadata(ic: InitContext) -> MetadataDB:
    from contentd.metadata import MetadataDB

    db = ic.get(types.METADATA)
    if not isinstance(db, MetadataDB):
        raise FailedPrecondition(f"{types.METADATA} plugin is not a MetadataDB")
    return db


def _exchange(ic: InitContext) -> Exchange:
    from contentd.metadata import Exchange

    exchange = ic.get(types.EVENT)
    if not isinstance(exchange, Exchange):
        raise FailedPrecondition(f"{types.EVENT} plugin is not an Exchange")
    return exchange


def _init_content(ic: InitContext) -> object:
    from contentd.api.content import ContentService
    from contentd.config import DEFAULT_HEADERLESS_NAMESPACE
    from contentd.daemon.resolver import NamespaceResolver

    pinned = (
        ic.server_config.grpc.headerless_namespace
        if ic.server_config is not None
        else DEFAULT_HEADERLESS_NAMESPACE
    )
    resolver = NamespaceResolver(_metadata(ic), pinned)
    if pinned:
        resolver.ensure_pinned()
        ic.exports["headerless_namespace"] = pinned
    # the metadata layer publishes /content/delete and /content/create itself
    return ContentService(resolver)


def _init_images(ic: InitContext) -> object:
    from contentd.api.images import ImagesService

    return ImagesService(_metadata(ic), _exchange(ic))


def _init_registry(ic: InitContext) -> object:
    from contentd.api.registry import RegistryService

    return RegistryService(_metadata(ic), _exchange(ic))


def _init_leases(ic: InitContext) -> object:
    from contentd.api.leases import LeasesService

    return LeasesService(_metadata(ic))


def _init_namespaces(ic: InitContext) -> object:
    from contentd.api.namespaces import NamespacesService

    return NamespacesService(_metadata(ic), _exchange(ic))


def _init_introspection(ic: InitContext) -> object:
    from contentd.api.introspection import IntrospectionService

    return IntrospectionService(ic.plugins, ic.root)


def _init_version(ic: InitContext) -> object:
    from contentd.api.version import VersionService

    return VersionService()


def _init_health(ic: InitContext) -> object:
    from contentd.api.health import HealthService

    return HealthService()


def _init_events(ic: InitContext) -> object:
    from contentd.api.events import EventsService

    return EventsService(_exchange(ic))


def service_registrations() -> list[Registration]:
    grpc = types.GRPC
    return [
        Registration(grpc, "content", _init_content, requires=(types.METADATA, types.EVENT)),
        Registration(
            grpc, "images", _init_images, requires=(types.METADATA, types.EVENT, types.GC)
        ),
        Registration(grpc, "leases", _init_leases, requires=(types.METADATA, types.GC)),
        Registration(grpc, "namespaces", _init_namespaces, requires=(types.METADATA, types.EVENT)),
        Registration(grpc, "introspection", _init_introspection),
        Registration(grpc, "version", _init_version),
        Registration(grpc, "healthcheck", _init_health),
        Registration(grpc, "events", _init_events, requires=(types.EVENT,)),
        Registration(
            grpc, "registry", _init_registry, requires=(types.METADATA, types.EVENT, types.GC)
        ),
    ]
