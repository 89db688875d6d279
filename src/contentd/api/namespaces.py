"""The ``containerd.services.namespaces.v1.Namespaces`` gRPC service over a metadata database.

It follows containerd's service:

* Get answers for any name (a namespace that does not exist has no labels).
* Update with an ``update_mask`` sets only the ``labels.<key>`` paths it lists
  (a key missing from the request's labels is removed); any other path is
  INVALID_ARGUMENT ``cannot update "<path>" field``. Without a mask the
  request's labels replace all labels. Setting a label creates the namespace.
* Delete refuses a namespace that still holds content, ingests or leases
  (FailedPrecondition).
* Create, Update and Delete publish ``/namespaces/create``, ``/namespaces/update``
  and ``/namespaces/delete`` on the event exchange: create and update in the
  *caller's* namespace, delete in the deleted one's. As in containerd, a
  failed publish fails the call after the change has been made -- except that
  a caller without a namespace header gets its create/update event published
  in the namespace it named (containerd fails such a call with
  ``failed publishing event: namespace is required`` after making the change).
"""

from __future__ import annotations

import logging
from typing import Final, NoReturn

import grpc
from google.protobuf import empty_pb2

from contentd.api._pb.containerd.services.namespaces.v1 import namespace_pb2 as pb
from contentd.api._pb.containerd.services.namespaces.v1 import namespace_pb2_grpc as pb_grpc
from contentd.api.calls import fail, headers
from contentd.api.errors import StatusError
from contentd.api.event_types import NamespaceCreate, NamespaceDelete, NamespaceUpdate
from contentd.api.goquote import go_quote
from contentd.metadata import Exchange, MetadataDB

__all__ = [
    "SERVICE_NAME",
    "TOPIC_NAMESPACE_CREATE",
    "TOPIC_NAMESPACE_DELETE",
    "TOPIC_NAMESPACE_UPDATE",
    "NamespacesService",
]

log = logging.getLogger(__name__)

SERVICE_NAME: Final = "containerd.services.namespaces.v1.Namespaces"
TOPIC_NAMESPACE_CREATE: Final = "/namespaces/create"
TOPIC_NAMESPACE_UPDATE: Final = "/namespaces/update"
TOPIC_NAMESPACE_DELETE: Final = "/namespaces/delete"
_EMPTY: Final = empty_pb2.Empty()


class NamespacesService(pb_grpc.NamespacesServicer):
    SERVICE_NAME = SERVICE_NAME

    def __init__(self, db: MetadataDB, exchange: Exchange) -> None:
        self.db = db
        self.exchange = exchange

    def register(self, server: grpc.Server) -> None:
        pb_grpc.add_NamespacesServicer_to_server(self, server)

    def Get(
        self, request: pb.GetNamespaceRequest, context: grpc.ServicerContext
    ) -> pb.GetNamespaceResponse:
        try:
            labels = self.db.namespaces.labels(request.name)
        except Exception as err:
            _fail(context, err, "Get")
        return pb.GetNamespaceResponse(namespace=pb.Namespace(name=request.name, labels=labels))

    def List(
        self, request: pb.ListNamespacesRequest, context: grpc.ServicerContext
    ) -> pb.ListNamespacesResponse:
        try:
            store = self.db.namespaces
            found = [(name, store.labels(name)) for name in store.list()]
        except Exception as err:
            _fail(context, err, "List")
        response = pb.ListNamespacesResponse()
        for name, labels in found:
            response.namespaces.add(name=name, labels=labels)
        return response

    def Create(
        self, request: pb.CreateNamespaceRequest, context: grpc.ServicerContext
    ) -> pb.CreateNamespaceResponse:
        name = request.namespace.name
        labels = dict(request.namespace.labels)
        caller, _ = headers(context)
        try:
            self.db.namespaces.create(name, labels)
            self.exchange.publish(
                caller or name, TOPIC_NAMESPACE_CREATE, NamespaceCreate(name, labels)
            )
        except Exception as err:
            _fail(context, err, "Create")
        response = pb.CreateNamespaceResponse()
        response.namespace.CopyFrom(request.namespace)
        return response

    def Update(
        self, request: pb.UpdateNamespaceRequest, context: grpc.ServicerContext
    ) -> pb.UpdateNamespaceResponse:
        name = request.namespace.name
        labels = dict(request.namespace.labels)
        caller, _ = headers(context)
        store = self.db.namespaces
        try:
            paths = list(request.update_mask.paths)
            if paths:
                for path in paths:
                    if not path.startswith("labels."):
                        raise StatusError(
                            grpc.StatusCode.INVALID_ARGUMENT,
                            f"cannot update {go_quote(path)} field",
                        )
                for path in paths:
                    key = path[len("labels.") :]
                    store.set_label(name, key, labels.get(key, ""))
            else:
                for key in store.labels(name):
                    if key not in labels:
                        store.set_label(name, key, "")
                for key, value in labels.items():
                    store.set_label(name, key, value)
            self.exchange.publish(
                caller or name, TOPIC_NAMESPACE_UPDATE, NamespaceUpdate(name, labels)
            )
        except Exception as err:
            _fail(context, err, "Update")
        return pb.UpdateNamespaceResponse()

    def Delete(
        self, request: pb.DeleteNamespaceRequest, context: grpc.ServicerContext
    ) -> empty_pb2.Empty:
        try:
            self.db.namespaces.delete(request.name)
            self.exchange.publish(
                request.name, TOPIC_NAMESPACE_DELETE, NamespaceDelete(request.name)
            )
        except Exception as err:
            _fail(context, err, "Delete")
        return _EMPTY


def _fail(context: grpc.ServicerContext, err: Exception, method: str) -> NoReturn:
    fail(context, err, f"Namespaces/{method}", log)
