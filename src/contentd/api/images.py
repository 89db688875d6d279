"""The ``containerd.services.images.v1.Images`` gRPC service over a metadata database.

Every call works in the caller's namespace. As containerd's service: Create
and Update need ``image.name`` (InvalidArgument ``Image.Name required``);
Update's ``update_mask`` names the fields to change (``labels``,
``labels.<key>``, ``target``, ``annotations``, ``annotations.<key>``), all of
them when empty; Delete with ``sync`` returns after a garbage collection.
Create, Update and Delete publish ``/images/create``, ``/images/update`` and
``/images/delete`` in the caller's namespace once the change is made.
"""

from __future__ import annotations

import logging
from typing import Final, NoReturn

import grpc
from google.protobuf import empty_pb2

from contentd.api._pb.containerd.services.images.v1 import images_pb2 as pb
from contentd.api._pb.containerd.services.images.v1 import images_pb2_grpc as pb_grpc
from contentd.api._pb.containerd.types import descriptor_pb2
from contentd.api.calls import fail, headers
from contentd.api.convert import fill_timestamp, time_field
from contentd.api.errors import StatusError
from contentd.api.event_types import ImageCreate, ImageDelete, ImageUpdate
from contentd.content.types import Descriptor
from contentd.metadata import Exchange, Image, ImageStore, MetadataDB

__all__ = [
    "SERVICE_NAME",
    "TOPIC_IMAGE_CREATE",
    "TOPIC_IMAGE_DELETE",
    "TOPIC_IMAGE_UPDATE",
    "ImagesService",
    "descriptor_from_pb",
    "descriptor_to_pb",
    "image_from_pb",
    "image_to_pb",
]

log = logging.getLogger(__name__)

SERVICE_NAME: Final = "containerd.services.images.v1.Images"
TOPIC_IMAGE_CREATE: Final = "/images/create"
TOPIC_IMAGE_UPDATE: Final = "/images/update"
TOPIC_IMAGE_DELETE: Final = "/images/delete"
_EMPTY: Final = empty_pb2.Empty()


def descriptor_to_pb(desc: Descriptor, out: descriptor_pb2.Descriptor) -> None:
    out.media_type = desc.media_type
    out.digest = desc.digest
    out.size = desc.size
    out.annotations.update(desc.annotations)


def descriptor_from_pb(msg: descriptor_pb2.Descriptor) -> Descriptor:
    return Descriptor(
        media_type=msg.media_type,
        digest=msg.digest,
        size=msg.size,
        annotations=dict(msg.annotations),
    )


def image_to_pb(image: Image, out: pb.Image) -> None:
    out.name = image.name
    out.labels.update(image.labels)
    descriptor_to_pb(image.target, out.target)
    fill_timestamp(out.created_at, image.created_at)
    fill_timestamp(out.updated_at, image.updated_at)


def image_from_pb(msg: pb.Image) -> Image:
    return Image(
        name=msg.name,
        target=descriptor_from_pb(msg.target),
        labels=dict(msg.labels),
        created_at=time_field(msg, "created_at"),
        updated_at=time_field(msg, "updated_at"),
    )


def _require_name(msg: pb.Image) -> None:
    if not msg.name:
        raise StatusError(grpc.StatusCode.INVALID_ARGUMENT, "Image.Name required")


class ImagesService(pb_grpc.ImagesServicer):
    SERVICE_NAME = SERVICE_NAME

    def __init__(self, db: MetadataDB, exchange: Exchange) -> None:
        self.db = db
        self.exchange = exchange

    def register(self, server: grpc.Server) -> None:
        pb_grpc.add_ImagesServicer_to_server(self, server)

    def _store(self, context: grpc.ServicerContext) -> tuple[ImageStore, str | None]:
        namespace, _ = headers(context)
        return self.db.images(namespace), namespace

    def Get(
        self, request: pb.GetImageRequest, context: grpc.ServicerContext
    ) -> pb.GetImageResponse:
        try:
            image = self._store(context)[0].get(request.name)
        except Exception as err:
            _fail(context, err, "Get")
        response = pb.GetImageResponse()
        image_to_pb(image, response.image)
        return response

    def List(
        self, request: pb.ListImagesRequest, context: grpc.ServicerContext
    ) -> pb.ListImagesResponse:
        try:
            found = self._store(context)[0].list(*request.filters)
        except Exception as err:
            _fail(context, err, "List")
        response = pb.ListImagesResponse()
        for image in found:
            image_to_pb(image, response.images.add())
        return response

    def Create(
        self, request: pb.CreateImageRequest, context: grpc.ServicerContext
    ) -> pb.CreateImageResponse:
        try:
            _require_name(request.image)
            store, namespace = self._store(context)
            created = store.create(image_from_pb(request.image))
            self.exchange.publish(
                namespace or "", TOPIC_IMAGE_CREATE, ImageCreate(created.name, created.labels)
            )
        except Exception as err:
            _fail(context, err, "Create")
        response = pb.CreateImageResponse()
        image_to_pb(created, response.image)
        return response

    def Update(
        self, request: pb.UpdateImageRequest, context: grpc.ServicerContext
    ) -> pb.UpdateImageResponse:
        try:
            _require_name(request.image)
            store, namespace = self._store(context)
            paths = list(request.update_mask.paths) if request.HasField("update_mask") else []
            updated = store.update(image_from_pb(request.image), *paths)
            self.exchange.publish(
                namespace or "", TOPIC_IMAGE_UPDATE, ImageUpdate(updated.name, updated.labels)
            )
        except Exception as err:
            _fail(context, err, "Update")
        response = pb.UpdateImageResponse()
        image_to_pb(updated, response.image)
        return response

    def Delete(
        self, request: pb.DeleteImageRequest, context: grpc.ServicerContext
    ) -> empty_pb2.Empty:
        try:
            store, namespace = self._store(context)
            # the record goes first; the event, then (with sync) the collection follow
            store.delete(request.name)
            self.exchange.publish(namespace or "", TOPIC_IMAGE_DELETE, ImageDelete(request.name))
            if request.sync:
                self.db.collect_and_wait()
        except Exception as err:
            _fail(context, err, "Delete")
        return _EMPTY


def _fail(context: grpc.ServicerContext, err: Exception, method: str) -> NoReturn:
    fail(context, err, f"Images/{method}", log)
