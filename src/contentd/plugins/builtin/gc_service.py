"""The ``io.containerd.grpc.v1.gc`` plugin: contentd's own GC service (``contentd gc``).

It serves ``contentd.services.gc.v1.GC`` on the daemon's main socket over the
metadata plugin, and runs real collections through the GC scheduler plugin
when that one initialised (a dry run, or no scheduler, collects directly).
"""

from __future__ import annotations

from typing import Final

from contentd.content.errors import FailedPrecondition
from contentd.plugins import types
from contentd.plugins.context import InitContext
from contentd.plugins.registry import Registration

__all__ = ["GC_SERVICE_ID", "gc_service_registration"]

GC_SERVICE_ID: Final = "gc"


def _init_gc_service(ic: InitContext) -> object:
    from contentd.api.gc import GCService
    from contentd.metadata import MetadataDB, Scheduler

    db = ic.get(types.METADATA)
    if not isinstance(db, MetadataDB):
        raise FailedPrecondition(f"{types.METADATA} plugin is not a MetadataDB")
    try:
        scheduler = ic.get(types.GC)
    except Exception:  # no usable scheduler: collect on the calling thread
        scheduler = None
    return GCService(db, scheduler if isinstance(scheduler, Scheduler) else None)


def gc_service_registration() -> Registration:
    return Registration(types.GRPC, GC_SERVICE_ID, _init_gc_service, requires=(types.METADATA,))
