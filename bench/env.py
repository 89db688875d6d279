"""Everything one run shares: scale, temp dir, blob maker, and the daemons (started on first use).

Target names:

* ``containerd`` / ``contentd`` -- the pair most rows compare;
* ``containerd+contentd`` -- a containerd whose content store is a second contentd
  (proxy plugin), compared with plain ``containerd``;
* ``contentd-s3`` -- a contentd whose blobs are in a private SeaweedFS (the S3 plugin,
  read cache on local disk), compared with ``contentd`` on its local store;
* ``cluster-a`` / ``cluster-b`` -- two containerds, each with its own ``contentd serve``
  node as its content store, the nodes one cluster (a private PostgreSQL, one bucket of
  the run's SeaweedFS; :class:`tests.cluster.nodes.Cluster`);

:meth:`close` stops every daemon and removes the temp dir; it is safe to call twice.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.bigimage import BigImage, push_big_image
from bench.client import GC_ROOT_LABEL
from bench.data import MIB, BlobMaker
from bench.peers import ContentdDaemon, Target, bench_containerd
from tests.cluster.nodes import Cluster
from tests.daemon.harness import ServeProcess
from tests.peers import PushedImage, RegistryPeer, build_image, push_image
from tests.peers.counting_proxy import CountingProxy
from tests.peers.postgres import PostgresPeer
from tests.peers.seaweedfs import SeaweedPeer

#: The S3 content plugin and the bucket the ``contentd-s3`` target keeps its blobs in.
S3_URI = "io.contentd.content.v1.s3"
S3_BUCKET = "bench"
#: The bucket of the cluster targets' nodes (keys under ``bench/``).
CLUSTER_BUCKET = "bench-cluster"
#: Each cluster node's read cache bound: the large-layer image's layer fits.
CLUSTER_CACHE = "2GiB"

__all__ = ["KEEP_NAMESPACE", "BenchEnv", "Scale"]

#: Namespace of the blobs kept for the whole run (read workloads), labelled as GC roots.
KEEP_NAMESPACE = "bench-keep"
#: Longest run dir: containerd's ttrpc socket ``<base>/ctrd-XXXXXXXX/state/containerd.sock.ttrpc``
#: (44 more bytes) must stay within the 104-byte limit of a unix socket path.
MAX_BASE_LENGTH = 104 - 45
#: Seed of the first pushed test image; image ``i`` is built from ``IMAGE_SEED + i``.
IMAGE_SEED = 20230420


@dataclass(frozen=True)
class Scale:
    """Sizes of one run: ``mib`` for the big transfers, ``blobs`` for the small-blob rows."""

    name: str
    mib: int
    blobs: int
    proxy_mib: int = 64
    #: the layer of the large-layer pull row
    pull_mib: int = 512
    small_size: int = 1024

    @property
    def quarter_mib(self) -> int:
        return max(1, self.mib // 4)


class BenchEnv:
    """Shared state of a run. Use as a context manager."""

    def __init__(
        self,
        scale: Scale,
        *,
        base_dir: str | os.PathLike[str] | None = None,
        log_level: str = "warn",
        log: Callable[[str], None] = lambda _msg: None,
    ) -> None:
        self.scale = scale
        self.log = log
        self.log_level = log_level
        self.base = Path(tempfile.mkdtemp(prefix="bench-", dir=base_dir))
        if len(str(self.base)) > MAX_BASE_LENGTH:
            shutil.rmtree(self.base, ignore_errors=True)
            raise ValueError(
                f"work dir {self.base} is too long: the daemons' unix sockets below it must "
                f"fit in 104 bytes (use a work dir of at most {MAX_BASE_LENGTH - 14} characters)"
            )
        self.data = BlobMaker()
        self._closers: list[Callable[[], None]] = []
        self._targets: dict[str, Target] = {}
        self._registry: RegistryPeer | None = None
        self._seaweedfs: SeaweedPeer | None = None
        self._images: list[PushedImage] = []
        self._big_images: dict[tuple[int, str], BigImage] = {}
        self._cluster: Cluster | None = None
        self._counting: CountingProxy | None = None
        self._kept: dict[tuple[str, int], str] = {}
        self._no_gc: set[str] = set()
        self._s3_caches: dict[str, Path] = {}  # contentd-s3 daemon address -> its cache_dir
        self.extra: dict[str, Any] = {}

    # -- life cycle --------------------------------------------------------------------

    def close(self) -> None:
        while self._closers:
            closer = self._closers.pop()
            with contextlib.suppress(Exception):
                closer()
        self._targets.clear()
        shutil.rmtree(self.base, ignore_errors=True)

    def __enter__(self) -> BenchEnv:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def on_close(self, fn: Callable[[], None]) -> None:
        """Call ``fn`` when the run ends (before the daemons stop)."""
        self._closers.append(fn)

    def path(self, name: str) -> str:
        return str(self.base / name)

    # -- daemons ------------------------------------------------------------------------

    def seaweedfs(self) -> SeaweedPeer:
        """The run's private SeaweedFS S3 server with bucket :data:`S3_BUCKET` (on first use)."""
        if self._seaweedfs is None:
            peer = SeaweedPeer(base_dir=self.base)
            self._closers.append(peer.close)
            self.log("starting SeaweedFS")
            peer.start()
            peer.create_bucket(S3_BUCKET)
            self._seaweedfs = peer
        return self._seaweedfs

    def _start_contentd(self, name: str, *, s3: bool = False) -> ContentdDaemon:
        plugins: dict[str, Any] = {}
        env: dict[str, str] = {}
        cache_dir = self.base / f"{name}-s3-cache"
        if s3:
            peer = self.seaweedfs()
            plugins[S3_URI] = {
                "endpoint": peer.endpoint,
                "bucket": S3_BUCKET,
                "prefix": name + "/",
                "cache_dir": str(cache_dir),
            }
            env = peer.env()
        daemon = ContentdDaemon(
            self.base, name=name, log_level=self.log_level, plugins=plugins, env=env
        )
        self._closers.append(daemon.close)
        self.log(f"starting {name}")
        daemon.start()
        if s3:
            self._s3_caches[daemon.address] = cache_dir
        return daemon

    def drop_s3_cached(self, target: Target, digest: str) -> None:
        """Remove ``digest``'s copy from a ``contentd-s3`` target's read cache (the node
        keeps what it writes): its next read fetches the blob from S3, as a first read
        on a node that did not write it does."""
        cache_dir = self._s3_caches.get(target.address)
        if cache_dir is not None:
            algorithm, encoded = digest.split(":", 1)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(cache_dir / algorithm / encoded)

    def _start_containerd(self, name: str, proxy_address: str | None = None) -> Any:
        peer = bench_containerd(self.base, proxy_address=proxy_address, log_level=self.log_level)
        self._closers.append(peer.close)
        self.log(f"starting {name}")
        return peer.start()

    def _make_target(self, name: str, key: str) -> Target:
        if name == "containerd":
            peer = self._start_containerd(key)
            target = Target(
                name,
                peer.address,
                lambda: peer.pid,
                restart_fn=_restarter(peer),
                health_fn=_containerd_health(peer),
            )
        elif name in ("contentd", "contentd-s3"):
            daemon = self._start_contentd(key, s3=name == "contentd-s3")
            target = Target(
                name,
                daemon.address,
                lambda: daemon.pid,
                restart_fn=_restarter(daemon),
                health_fn=daemon.health,
            )
        elif name.startswith("cluster-"):
            node_name = name.removeprefix("cluster-")
            self.log(f"starting cluster node {node_name}")
            node = self.cluster().start(node_name)
            inner = Target(
                f"contentd-node-{node_name}",
                str(node.socket),
                lambda: node.proc.pid if node.proc else None,
                health_fn=_node_health(node),
            )
            # node_config's default header-less namespace
            target = self._on_proxy(name, key, inner, pinned_namespace=f"node-{node_name}")
        elif name == "containerd+contentd":
            backend = self._start_contentd(key + "-backend")
            inner = Target(
                "contentd-backend", backend.address, lambda: backend.pid, health_fn=backend.health
            )
            target = self._on_proxy(name, key, inner)
        else:
            raise KeyError(name)
        self._closers.append(target.close)
        return target

    def _on_proxy(self, name: str, key: str, backend: Target, **kw: Any) -> Target:
        """A containerd whose content store is ``backend`` (its proxy content plugin)."""
        self._closers.append(backend.close)
        peer = self._start_containerd(key, proxy_address=backend.address)
        return Target(
            name,
            peer.address,
            lambda: peer.pid,
            backend=backend,
            health_fn=_containerd_health(peer),
            **kw,
        )

    def target(self, name: str) -> Target:
        """The long-lived target called ``name`` (started on first use)."""
        target = self._targets.get(name)
        if target is None:
            target = self._targets[name] = self._make_target(name, name)
        return target

    def cluster(self) -> Cluster:
        """The cluster the ``cluster-*`` targets' nodes join (PostgreSQL started on first use)."""
        if self._cluster is None:
            seaweed = self.seaweedfs()
            seaweed.create_bucket(CLUSTER_BUCKET)
            self.log("starting PostgreSQL")
            postgres = PostgresPeer()
            self._closers.append(postgres.close)
            postgres.start()
            cluster = Cluster(
                postgres,
                seaweed,
                "bench/",
                bucket=CLUSTER_BUCKET,
                node_defaults={"cache_size": CLUSTER_CACHE, "ref_lock_lease": "30s"},
            )
            self._closers.append(cluster.close)
            self._cluster = cluster
        return self._cluster

    # -- registry and images ------------------------------------------------------------

    def registry(self) -> RegistryPeer:
        """The run's private docker-registry (started on first use)."""
        if self._registry is None:
            self._registry = RegistryPeer(base_dir=self.base)
            self._closers.append(self._registry.close)
            self.log("starting docker-registry")
            self._registry.start()
        return self._registry

    def images(self, count: int) -> list[PushedImage]:
        """``count`` distinct multi-platform test images in a private registry."""
        registry = self.registry()
        while len(self._images) < count:
            i = len(self._images)
            self.log(f"pushing test image {i + 1}/{count}")
            image = build_image(seed=IMAGE_SEED + i)
            self._images.append(push_image(image, registry, repository=f"bench/image{i}", tag="v1"))
        return self._images[:count]

    def counting_registry(self) -> CountingProxy:
        """A proxy in front of the registry that counts the bytes of the blobs it serves."""
        if self._counting is None:
            proxy = CountingProxy(self.registry().host).start()
            self._closers.append(proxy.close)
            self._counting = proxy
        return self._counting

    def big_image(self, mib: int, variant: str = "") -> BigImage:
        """A one-layer image with a ``mib`` MiB uncompressed layer in the registry (images
        of other ``variant`` strings have other layers)."""
        image = self._big_images.get((mib, variant))
        if image is None:
            registry = self.registry()
            self.log(f"pushing a one-layer {mib} MiB image {variant}".rstrip())
            suffix = f"-{variant}" if variant else ""
            image = push_big_image(
                registry,
                self.data,
                mib,
                work_dir=str(self.base),
                repository=f"bench/big{mib}{suffix}",
                variant=variant,
            )
            self._big_images[(mib, variant)] = image
        return image

    # -- blobs ---------------------------------------------------------------------------

    def kept_blob(self, target: Target, mib: int) -> str:
        """Digest of a ``mib`` MiB blob in :data:`KEEP_NAMESPACE` on ``target`` (a GC root)."""
        key = (target.name + "@" + target.address, mib)
        digest = self._kept.get(key)
        if digest is None:
            blob = self.data.big(mib, f"keep-{mib}")
            digest = target.client.write_blob(
                f"keep-{mib}",
                blob.chunks(),
                total=blob.size,
                expected=blob.digest,
                namespace=KEEP_NAMESPACE,
                labels={GC_ROOT_LABEL: "bench"},
            )
            got = target.client.read(digest, namespace=KEEP_NAMESPACE)
            if got != mib * MIB:
                raise RuntimeError(f"{target.name}: read {got} of {mib * MIB} bytes back")
            self._kept[key] = digest
        return digest

    def discard(self, target: Target, namespace: str, digests: list[str]) -> None:
        """Delete ``digests`` from ``namespace`` and collect garbage (best effort, untimed)."""
        for digest in digests:
            with contextlib.suppress(Exception):
                target.client.delete(digest, namespace=namespace)
        self.collect(target, namespace)

    def collect(self, target: Target, namespace: str) -> None:
        """Ask ``target`` for a synchronous GC (skipped once it has failed)."""
        if target.address in self._no_gc:
            return
        try:
            target.client.collect_garbage(namespace=namespace)
        except Exception as err:
            self._no_gc.add(target.address)
            self.log(f"{target.name}: no synchronous GC ({type(err).__name__}); blobs stay")


def _restarter(peer: Any) -> Callable[[], None]:
    def restart() -> None:
        peer.stop()
        peer.start()

    return restart


def _node_health(node: ServeProcess) -> Callable[[], str]:
    def health() -> str:
        code = node.proc.poll() if node.proc is not None else None
        if node.proc is None:
            return "not started"
        if code is None:
            return "running"
        return f"exited with {code}; log tail ({node.log}):\n{node.log_text()[-3000:]}"

    return health


def _containerd_health(peer: Any) -> Callable[[], str]:
    def health() -> str:
        proc = getattr(peer, "_proc", None)
        if proc is None:
            return "not started"
        code = proc.poll()
        if code is None:
            return "running"
        return f"exited with {code}; log tail ({peer.log_path}):\n{peer.log_tail(30)}"

    return health
