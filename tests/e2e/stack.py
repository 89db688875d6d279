"""containerd 1.6.20 running on contentd: a ``contentd serve`` and a private containerd whose
only content plugin is a proxy plugin pointed at it.

containerd's proxy content plugin calls contentd without a namespace header; a plain
``contentd serve`` serves those calls from its pinned namespace (``containerd-proxy``),
which its own GC leaves to containerd. :class:`Stack` gives a test both ends: containerd
through ``ctr``, and contentd through ProxyStores (header-less = what containerd sees, or
with a namespace = another tenant), its blobs on disk, and forced GC runs on either side.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from contentd.api._pb.containerd.services.leases.v1 import leases_pb2, leases_pb2_grpc
from contentd.api.metadata_keys import NAMESPACE_KEY
from contentd.proxy import ProxyStore
from tests.daemon.harness import ServeProcess
from tests.peers.containerd import ContainerdPeer

__all__ = [
    "CONTENT_PLUGIN_DIR",
    "PINNED",
    "PROXY_PLUGIN",
    "Stack",
    "blob",
    "proxy_config",
]

#: contentd's namespace for header-less calls when nothing is configured.
PINNED = "containerd-proxy"
#: the proxy plugin's name in containerd's config (its URI: io.containerd.content.v1.<name>)
PROXY_PLUGIN = "contentd"
#: contentd's local content plugin (its root holds blobs/ and ingest/)
CONTENT_PLUGIN_DIR = "io.containerd.content.v1.content"
#: contentd namespace whose lease is created and deleted to force a GC
_GC_NAMESPACE = "e2e-gc-trigger"


def proxy_config(socket: Path | str) -> str:
    """containerd config: the built-in content store off, contentd as the proxy content plugin."""
    return f"""
version = 2
disabled_plugins = ["io.containerd.content.v1.content"]
[proxy_plugins.{PROXY_PLUGIN}]
  type = "content"
  address = "{socket}"
"""


def blob(seed: bytes, size: int) -> tuple[bytes, str]:
    """Reproducible bytes of ``size`` and their digest."""
    block = hashlib.sha512(seed).digest()
    data = (block * (size // len(block) + 1))[:size]
    return data, "sha256:" + hashlib.sha256(data).hexdigest()


def _md(namespace: str) -> tuple[tuple[str, str], ...]:
    return ((NAMESPACE_KEY, namespace),)


@dataclass
class Stack:
    contentd: ServeProcess
    containerd: ContainerdPeer
    _stores: list[ProxyStore] = field(default_factory=list)
    _channel: grpc.Channel | None = None

    # -- contentd's side -----------------------------------------------------------------

    def pinned(self) -> ProxyStore:
        """contentd as containerd sees it: header-less calls (the pinned namespace)."""
        return self._store(None, None)

    def tenant(self, namespace: str, lease: str | None = None) -> ProxyStore:
        """contentd as another tenant sees it: calls with a namespace (and lease) header."""
        return self._store(namespace, lease)

    def _store(self, namespace: str | None, lease: str | None) -> ProxyStore:
        store = ProxyStore(self.contentd.address, namespace=namespace, lease=lease)
        self._stores.append(store)
        return store

    @property
    def channel(self) -> grpc.Channel:
        if self._channel is None:
            self._channel = grpc.insecure_channel(self.contentd.address)
        return self._channel

    @property
    def blobs_dir(self) -> Path:
        return self.contentd.root / CONTENT_PLUGIN_DIR / "blobs" / "sha256"

    def blob_file(self, digest: str) -> Path:
        algorithm, _, encoded = digest.partition(":")
        assert algorithm == "sha256", digest
        return self.blobs_dir / encoded

    def blob_files(self) -> set[str]:
        """Digests of every blob in contentd's backend, whichever namespaces hold them."""
        if not self.blobs_dir.exists():
            return set()
        return {"sha256:" + p.name for p in self.blobs_dir.iterdir()}

    def pinned_digests(self) -> set[str]:
        return {info.digest for info in self.pinned().walk()}

    def create_lease(self, namespace: str, lease_id: str) -> None:
        """A lease in contentd (through its Leases service)."""
        stub = leases_pb2_grpc.LeasesStub(self.channel)
        stub.Create(leases_pb2.CreateRequest(id=lease_id), metadata=_md(namespace), timeout=30)

    def delete_lease(self, namespace: str, lease_id: str, *, sync: bool = False) -> None:
        stub = leases_pb2_grpc.LeasesStub(self.channel)
        stub.Delete(
            leases_pb2.DeleteRequest(id=lease_id, sync=sync), metadata=_md(namespace), timeout=60
        )

    def contentd_gc(self) -> None:
        """Force a collection in contentd and wait for it (a lease delete with ``sync``)."""
        lease_id = "gc-" + uuid.uuid4().hex[:8]
        self.create_lease(_GC_NAMESPACE, lease_id)
        self.delete_lease(_GC_NAMESPACE, lease_id, sync=True)

    # -- containerd's side ---------------------------------------------------------------

    def ctr_lines(self, *args: str, namespace: str = "default") -> list[str]:
        return self.containerd.ctr(*args, namespace=namespace).stdout.decode().split()

    def containerd_digests(self, namespace: str = "default") -> set[str]:
        return set(self.ctr_lines("content", "ls", "-q", namespace=namespace))

    def containerd_gc(self, namespace: str = "default") -> None:
        """Force a collection in containerd and wait for it (``ctr leases rm --sync``).

        Unlike ``ctr content prune references`` this leaves image layer labels alone.
        """
        lease_id = self.containerd.ctr("leases", "create", namespace=namespace).stdout
        self.containerd.ctr(
            "leases", "rm", "--sync", lease_id.decode().strip(), namespace=namespace
        )

    def close(self) -> None:
        for store in self._stores:
            store.close()
        self._stores.clear()
        if self._channel is not None:
            self._channel.close()
            self._channel = None
