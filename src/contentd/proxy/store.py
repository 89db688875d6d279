"""ProxyStore: the Store contract over containerd's Content gRPC service (spec §6).

It mirrors containerd's ``content/proxy``: every method is one RPC (walk is a
List stream, a writer is one Write stream, each ``read_at`` one Read stream),
and the server's statuses come back as error kinds (:func:`from_grpc`).

Every call carries ``containerd-namespace: <namespace>`` unless
``namespace`` is None (header-less, as containerd sends to a proxy plugin),
and ``containerd-lease: <lease>`` when a lease is given.
"""

from __future__ import annotations

from collections.abc import Generator
from types import TracebackType
from typing import Self

import grpc
from google.protobuf.field_mask_pb2 import FieldMask

from contentd.api._pb.containerd.services.content.v1 import content_pb2 as pb
from contentd.api._pb.containerd.services.content.v1 import content_pb2_grpc as pb_grpc
from contentd.api.convert import info_from_pb, info_to_pb, status_from_pb
from contentd.api.errors import from_grpc
from contentd.api.metadata_keys import call_metadata
from contentd.content.store import digest_of_target
from contentd.content.types import Descriptor, Info, Status
from contentd.proxy.channel import cancel_call, dial
from contentd.proxy.reader import ProxyReaderAt
from contentd.proxy.writer import ProxyWriter

__all__ = ["ProxyStore"]


class ProxyStore:
    """A Store whose content lives behind a Content gRPC service.

    ``address_or_channel`` is an address (``unix:<path>``, a socket path, or
    ``host:port``; the store then owns the channel and :meth:`close` closes
    it) or a ``grpc.Channel`` the caller owns.
    """

    def __init__(
        self,
        address_or_channel: str | grpc.Channel,
        namespace: str | None = "default",
        lease: str | None = None,
    ) -> None:
        if isinstance(address_or_channel, str):
            self._channel = dial(address_or_channel)
            self._owns_channel = True
        else:
            self._channel = address_or_channel
            self._owns_channel = False
        self.namespace = namespace
        self.lease = lease
        self._stub = pb_grpc.ContentStub(self._channel)
        self._metadata = call_metadata(namespace, lease)

    @property
    def channel(self) -> grpc.Channel:
        return self._channel

    def with_namespace(self, namespace: str | None, lease: str | None = None) -> ProxyStore:
        """A store on the same channel (owned by this one) with other headers."""
        return ProxyStore(self._channel, namespace, lease)

    # -- Provider --------------------------------------------------------

    def reader_at(self, target: str | Descriptor) -> ProxyReaderAt:
        digest = digest_of_target(target)
        info = self.info(digest)
        return ProxyReaderAt(self._stub, digest, info.size, self._metadata)

    # -- Manager ---------------------------------------------------------

    def info(self, digest: str) -> Info:
        try:
            response = self._stub.Info(pb.InfoRequest(digest=digest), metadata=self._metadata)
        except grpc.RpcError as err:
            raise from_grpc(err) from None
        return info_from_pb(response.info)

    def update(self, info: Info, *fieldpaths: str) -> Info:
        request = pb.UpdateRequest(update_mask=FieldMask(paths=fieldpaths))
        info_to_pb(info, request.info)
        try:
            response = self._stub.Update(request, metadata=self._metadata)
        except grpc.RpcError as err:
            raise from_grpc(err) from None
        return info_from_pb(response.info)

    def walk(self, *filters: str) -> Generator[Info, None, None]:
        """Each Info of the List stream; stopping early cancels the stream."""
        call = self._stub.List(pb.ListContentRequest(filters=filters), metadata=self._metadata)
        try:
            for response in call:
                for info in response.info:
                    yield info_from_pb(info)
        except grpc.RpcError as err:
            raise from_grpc(err) from None
        finally:
            cancel_call(call)

    def delete(self, digest: str) -> None:
        try:
            self._stub.Delete(pb.DeleteContentRequest(digest=digest), metadata=self._metadata)
        except grpc.RpcError as err:
            raise from_grpc(err) from None

    # -- IngestManager ---------------------------------------------------

    def status(self, ref: str) -> Status:
        try:
            response = self._stub.Status(pb.StatusRequest(ref=ref), metadata=self._metadata)
        except grpc.RpcError as err:
            raise from_grpc(err) from None
        return status_from_pb(response.status)

    def list_statuses(self, *filters: str) -> list[Status]:
        try:
            response = self._stub.ListStatuses(
                pb.ListStatusesRequest(filters=filters), metadata=self._metadata
            )
        except grpc.RpcError as err:
            raise from_grpc(err) from None
        return [status_from_pb(s) for s in response.statuses]

    def abort(self, ref: str) -> None:
        try:
            self._stub.Abort(pb.AbortRequest(ref=ref), metadata=self._metadata)
        except grpc.RpcError as err:
            raise from_grpc(err) from None

    # -- Ingester --------------------------------------------------------

    def writer(self, ref: str, total: int = 0, expected: str | None = None) -> ProxyWriter:
        """Open a Write stream for ``ref``; the server's refusal (InvalidArgument for an
        empty ref, Unavailable for a held ref, AlreadyExists, ...) is raised here."""
        return ProxyWriter.open(self._stub.Write, self._metadata, ref, total, expected or "")

    # -- life cycle ------------------------------------------------------

    def close(self) -> None:
        """Close the channel if this store made it (open streams are cancelled)."""
        if self._owns_channel:
            self._channel.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"ProxyStore(namespace={self.namespace!r}, lease={self.lease!r})"
