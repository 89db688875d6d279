"""In-process contentd servers and containerd leases for tests."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from types import TracebackType
from typing import Self

import grpc

from contentd import LocalStore, MemoryLabelStore
from contentd.api._pb.containerd.services.leases.v1 import leases_pb2, leases_pb2_grpc
from contentd.api.content import ContentService, DeleteHook, SingleStoreResolver, StoreResolver
from contentd.api.metadata_keys import NAMESPACE_KEY
from contentd.content.store import Store
from contentd.daemon.engines import build_server

__all__ = ["ContentdServer", "create_lease", "delete_lease", "local_store"]


def local_store(root: Path, labels: bool = True) -> LocalStore:
    return LocalStore(root, label_store=MemoryLabelStore() if labels else None)


class ContentdServer:
    """A contentd Content service on a unix socket in a short temp directory.

    (pytest's ``tmp_path`` can be longer than a socket path may be.)
    """

    def __init__(
        self,
        store: Store | None = None,
        *,
        resolver: StoreResolver | None = None,
        on_delete: DeleteHook | None = None,
        max_workers: int = 32,
    ) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="cd-", dir="/tmp"))
        self.socket = str(self.dir / "contentd.sock")
        self.address = "unix:" + self.socket
        if resolver is None:
            if store is None:
                store = local_store(self.dir / "content")
            resolver = SingleStoreResolver(store)
        self.store = store
        self.service = ContentService(resolver, on_delete=on_delete)
        self.server = build_server(self.address, [self.service], max_workers=max_workers)
        self.server.start()

    def channel(self) -> grpc.Channel:
        return grpc.insecure_channel(self.address)

    def close(self) -> None:
        self.server.stop(None).wait()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def create_lease(target: str | grpc.Channel, namespace: str, lease_id: str) -> None:
    """Create a lease in containerd (content under it is safe from its GC).

    ``target`` is containerd's socket path or a channel to it.
    """
    _leases(target, "Create", leases_pb2.CreateRequest(id=lease_id), namespace)


def delete_lease(target: str | grpc.Channel, namespace: str, lease_id: str) -> None:
    _leases(target, "Delete", leases_pb2.DeleteRequest(id=lease_id), namespace)


def _leases(target: str | grpc.Channel, method: str, request: object, namespace: str) -> None:
    md = ((NAMESPACE_KEY, namespace),)
    if isinstance(target, grpc.Channel):
        getattr(leases_pb2_grpc.LeasesStub(target), method)(request, metadata=md)
        return
    with grpc.insecure_channel("unix:" + target) as channel:
        getattr(leases_pb2_grpc.LeasesStub(channel), method)(request, metadata=md)
