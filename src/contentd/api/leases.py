"""The ``containerd.services.leases.v1.Leases`` gRPC service over a metadata database.

Every call works in the caller's namespace (``containerd-namespace``; without
one, FailedPrecondition ``namespace is required``). As containerd's service:
Create with an empty id makes a random one (what ``ctr leases create`` relies
on); Delete with ``sync`` returns only after a garbage collection, backend
cleanup included, has run.
"""

from __future__ import annotations

import logging
from typing import Final, NoReturn

import grpc
from google.protobuf import empty_pb2

from contentd.api._pb.containerd.services.leases.v1 import leases_pb2 as pb
from contentd.api._pb.containerd.services.leases.v1 import leases_pb2_grpc as pb_grpc
from contentd.api.calls import fail, headers
from contentd.api.convert import fill_timestamp
from contentd.metadata import Lease, LeaseManager, MetadataDB, Resource

__all__ = ["SERVICE_NAME", "LeasesService"]

log = logging.getLogger(__name__)

SERVICE_NAME: Final = "containerd.services.leases.v1.Leases"
_EMPTY: Final = empty_pb2.Empty()


def lease_to_pb(lease: Lease, out: pb.Lease) -> None:
    out.id = lease.id
    fill_timestamp(out.created_at, lease.created_at)
    out.labels.update(lease.labels)


class LeasesService(pb_grpc.LeasesServicer):
    SERVICE_NAME = SERVICE_NAME

    def __init__(self, db: MetadataDB) -> None:
        self.db = db

    def register(self, server: grpc.Server) -> None:
        pb_grpc.add_LeasesServicer_to_server(self, server)

    def _manager(self, context: grpc.ServicerContext) -> LeaseManager:
        namespace, _ = headers(context)
        return self.db.leases(namespace)

    def Create(self, request: pb.CreateRequest, context: grpc.ServicerContext) -> pb.CreateResponse:
        try:
            lease = self._manager(context).create(request.id or None, dict(request.labels))
        except Exception as err:
            _fail(context, err, "Create")
        response = pb.CreateResponse()
        lease_to_pb(lease, response.lease)
        return response

    def Delete(self, request: pb.DeleteRequest, context: grpc.ServicerContext) -> empty_pb2.Empty:
        try:
            self._manager(context).delete(request.id, sync=request.sync)
        except Exception as err:
            _fail(context, err, "Delete")
        return _EMPTY

    def List(self, request: pb.ListRequest, context: grpc.ServicerContext) -> pb.ListResponse:
        try:
            leases = self._manager(context).list(*request.filters)
        except Exception as err:
            _fail(context, err, "List")
        response = pb.ListResponse()
        for lease in leases:
            lease_to_pb(lease, response.leases.add())
        return response

    def AddResource(
        self, request: pb.AddResourceRequest, context: grpc.ServicerContext
    ) -> empty_pb2.Empty:
        try:
            self._manager(context).add_resource(
                request.id, Resource(id=request.resource.id, type=request.resource.type)
            )
        except Exception as err:
            _fail(context, err, "AddResource")
        return _EMPTY

    def DeleteResource(
        self, request: pb.DeleteResourceRequest, context: grpc.ServicerContext
    ) -> empty_pb2.Empty:
        try:
            self._manager(context).delete_resource(
                request.id, Resource(id=request.resource.id, type=request.resource.type)
            )
        except Exception as err:
            _fail(context, err, "DeleteResource")
        return _EMPTY

    def ListResources(
        self, request: pb.ListResourcesRequest, context: grpc.ServicerContext
    ) -> pb.ListResourcesResponse:
        try:
            resources = self._manager(context).list_resources(request.id)
        except Exception as err:
            _fail(context, err, "ListResources")
        response = pb.ListResourcesResponse()
        for resource in resources:
            response.resources.add(id=resource.id, type=resource.type)
        return response


def _fail(context: grpc.ServicerContext, err: Exception, method: str) -> NoReturn:
    fail(context, err, f"Leases/{method}", log)
