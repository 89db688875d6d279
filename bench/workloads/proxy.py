"""containerd with contentd as its content proxy plugin, against plain containerd."""

from __future__ import annotations

import contextlib

from bench.bigimage import BigImage
from bench.env import KEEP_NAMESPACE, BenchEnv, Scale
from bench.model import Goal, Sample
from bench.peers import Target
from bench.workloads.base import PROXY_PAIR, Workload
from bench.workloads.transfer import _need

__all__ = ["ProxyBigPull", "ProxyGet", "ProxyPull"]


class ProxyPull(Workload):
    """``ctr images pull --plain-http`` of the multi-layer test image (this machine's
    platform) from a local docker-registry. Each repetition pulls a different image
    (the noise layer is seeded per repetition) into a fresh namespace; afterwards the
    image is removed with a synchronous GC, so no blob is ever already there."""

    name = "proxy-pull"
    unit = "s"
    higher_is_better = False
    targets = PROXY_PAIR
    goal: Goal | None = Goal("pull ≤ 1.25× plain's time", min_ratio=0.8)

    #: each repetition pulls into namespace ``<prefix>-<rep>``
    namespace_prefix = "bench-pull"

    def __init__(self) -> None:
        self._ref: dict[str, str] = {}

    def namespace(self, rep: int) -> str:
        return f"{self.namespace_prefix}-{rep}"

    def title(self, scale: Scale) -> str:
        return "ctr images pull (test image) via contentd proxy"

    def timeout(self, scale: Scale) -> float:
        return 300.0

    def sample(self, env: BenchEnv, target: Target | None, rep: int) -> Sample:
        t = _need(target)
        image = env.images(rep + 1)[rep]
        namespace = self.namespace(rep)
        self._ref[t.address] = image.ref
        # --debug: without it ctr draws a progress display that ticks every 100 ms and
        # returns only on a tick after the fetch is done, so every pull would be rounded
        # up to the next tick (a 20 ms difference came out as 0 or 100 ms)
        r = t.ctr(
            "--debug", "images", "pull", "--plain-http", image.ref,
            namespace=namespace, timeout=self.timeout(env.scale),
        )  # fmt: skip
        blobs = t.client.count(namespace=namespace)
        return Sample(rep, r.seconds, r.seconds, {"blobs": blobs})

    def cleanup(self, env: BenchEnv, target: Target | None, rep: int) -> None:
        t = _need(target)
        ref = self._ref.pop(t.address, None)
        if ref is None:
            return
        with contextlib.suppress(Exception):
            t.ctr(
                "images", "rm", "--sync", ref,
                namespace=self.namespace(rep), timeout=self.timeout(env.scale),
            )  # fmt: skip
        if t.backend is not None:
            env.collect(t.backend, t.pinned_namespace)


class ProxyBigPull(ProxyPull):
    """``ctr images pull --snapshotter native`` of an image with one big uncompressed layer
    (:mod:`bench.bigimage`, ``scale.pull_mib`` MiB) from a local docker-registry: the
    fetch writes the layer into the content store, the unpack reads it back (through
    the proxy, one Read RPC per 32 KiB containerd reads) into a native snapshot. Every
    repetition pulls into a fresh namespace; afterwards the image is removed with a
    synchronous GC (content and snapshot), so the layer is never already there."""

    name = "proxy-big-pull"
    goal: Goal | None = Goal("pull ≤ 1.5× plain's time", min_ratio=1 / 1.5)
    namespace_prefix = "bench-bigpull"

    def title(self, scale: Scale) -> str:
        return f"ctr images pull, one {scale.pull_mib} MiB layer, native snapshotter, via proxy"

    def timeout(self, scale: Scale) -> float:
        return 120.0 + 0.5 * scale.pull_mib

    def setup(self, env: BenchEnv, target: Target | None) -> None:
        env.big_image(env.scale.pull_mib)

    def image(self, env: BenchEnv, rep: int) -> tuple[BigImage, str]:
        """The image repetition ``rep`` pulls, and the reference it pulls it by."""
        image = env.big_image(env.scale.pull_mib)
        return image, image.ref

    def sample(self, env: BenchEnv, target: Target | None, rep: int) -> Sample:
        t = _need(target)
        image, ref = self.image(env, rep)
        namespace = self.namespace(rep)
        self._ref[t.address] = ref
        r = t.ctr(
            "--debug", "images", "pull", "--plain-http", "--snapshotter", "native", ref,
            namespace=namespace, timeout=self.timeout(env.scale),
        )  # fmt: skip
        size = t.client.info_size(image.layer, namespace=namespace)
        if size != image.layer_size:
            raise RuntimeError(f"{t.name}: layer of {size} bytes, expected {image.layer_size}")
        return Sample(rep, r.seconds, r.seconds)


class ProxyGet(Workload):
    """``ctr content get`` of a 64 MiB blob through containerd; with the proxy, every
    32 KiB Read RPC containerd gets becomes a Read RPC to contentd."""

    name = "proxy-get"
    unit = "MiB/s"
    targets = PROXY_PAIR
    limits: tuple[str, ...] = ("page-cache-read",)

    def title(self, scale: Scale) -> str:
        return f"ctr content get {scale.proxy_mib} MiB via contentd proxy"

    def setup(self, env: BenchEnv, target: Target | None) -> None:
        env.kept_blob(_need(target), env.scale.proxy_mib)

    def sample(self, env: BenchEnv, target: Target | None, rep: int) -> Sample:
        t = _need(target)
        mib = env.scale.proxy_mib
        digest = env.kept_blob(t, mib)
        r = t.ctr(
            "content", "get", digest,
            namespace=KEEP_NAMESPACE, capture=False, timeout=self.timeout(env.scale),
        )  # fmt: skip
        return Sample(rep, mib / r.seconds, r.seconds)
