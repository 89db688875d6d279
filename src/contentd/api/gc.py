"""contentd's ``contentd.services.gc.v1.GC`` gRPC service: run a garbage collection on demand.

containerd has no such RPC (a lease Delete with ``sync`` forces a collection
but reports nothing); ``contentd gc`` uses this one. **Collect** runs one
collection over every namespace and answers with what went: the records per
namespace, the backend's blobs and ingests, and the bytes freed. With
``dry_run`` nothing is removed and the answer is what would go.

A real collection goes through the running GC scheduler, so it never
overlaps the scheduler's own; without a running scheduler (and for every dry
run) it runs on the calling thread.
"""

from __future__ import annotations

import logging
from typing import Final, NoReturn

import grpc

from contentd.api._pb.contentd.services.gc.v1 import gc_pb2 as pb
from contentd.api._pb.contentd.services.gc.v1 import gc_pb2_grpc as pb_grpc
from contentd.api.calls import fail
from contentd.content.errors import Unknown
from contentd.metadata import GCResult, MetadataDB, Scheduler

__all__ = ["SERVICE_NAME", "GCService", "result_to_pb"]

log = logging.getLogger(__name__)

SERVICE_NAME: Final = "contentd.services.gc.v1.GC"


def result_to_pb(result: GCResult) -> pb.CollectResponse:
    """The wire form of one collection's result."""
    response = pb.CollectResponse(
        dry_run=result.dry_run,
        backend_blobs=list(result.backend_blobs),
        backend_ingests=list(result.backend_ingests),
        bytes_freed=result.bytes_freed,
        backend_cleaned=result.backend_cleaned,
        backend_error=result.backend_error or "",
    )
    namespaces = sorted(set(result.content) | set(result.ingests) | set(result.leases))
    for namespace in namespaces:
        response.removed.add(
            namespace=namespace,
            content=list(result.content.get(namespace, ())),
            ingests=list(result.ingests.get(namespace, ())),
            leases=list(result.leases.get(namespace, ())),
        )
    response.duration.FromNanoseconds(int(result.duration * 1e9))
    return response


class GCService(pb_grpc.GCServicer):
    """Collect on demand over ``db``, through ``scheduler`` when it runs."""

    SERVICE_NAME = SERVICE_NAME

    def __init__(self, db: MetadataDB, scheduler: Scheduler | None = None) -> None:
        self.db = db
        self.scheduler = scheduler

    def register(self, server: grpc.Server) -> None:
        pb_grpc.add_GCServicer_to_server(self, server)

    def collect(self, *, dry_run: bool = False) -> GCResult:
        """One collection (or a dry run) now."""
        scheduler = self.scheduler
        if dry_run or scheduler is None or not scheduler.running:
            return self.db.garbage_collect(dry_run=dry_run)
        result = scheduler.trigger(wait=True)
        if result is None:  # pragma: no cover - trigger(wait=True) always returns one
            raise Unknown("gc scheduler returned no result")
        return result

    def Collect(
        self, request: pb.CollectRequest, context: grpc.ServicerContext
    ) -> pb.CollectResponse:
        try:
            result = self.collect(dry_run=request.dry_run)
        except Exception as err:
            _fail(context, err, "Collect")
        return result_to_pb(result)


def _fail(context: grpc.ServicerContext, err: Exception, method: str) -> NoReturn:
    fail(context, err, f"GC/{method}", log)
