"""Two containerd nodes on one contentd cluster (PostgreSQL + one SeaweedFS bucket), each
containerd with its node's ``contentd serve`` as its content store, pulling the large-layer
image (:mod:`bench.bigimage`) through a proxy in front of the registry that counts the
blob bytes it serves (:class:`tests.peers.counting_proxy.CountingProxy`).

* ``cluster-pull-first`` -- plain containerd against the first cluster node: what a pull
  that downloads everything costs when the blobs go to S3 and the metadata to PostgreSQL.
* ``cluster-pull`` -- the first node against the second pulling the same image right after
  it: the second node's containerd finds every blob already in the cluster (contentd links
  it into the node's pinned namespace when containerd opens its writer), so it downloads no
  layer bytes and only unpacks, reading the layer from S3 through its node's read cache.

Every repetition pulls a new image (its own layer), so the cluster never holds it already.
"""

from __future__ import annotations

import statistics

from bench.bigimage import BigImage
from bench.env import BenchEnv, Scale
from bench.model import Goal, Row, Sample
from bench.peers import Target
from bench.workloads.proxy import ProxyBigPull
from bench.workloads.transfer import _need

__all__ = ["CLUSTER_PAIR", "ClusterPull", "ClusterPullFirst"]

#: the first cluster node, then the second
CLUSTER_PAIR = ("cluster-a", "cluster-b")
#: the sample's extra holding the blob bytes the registry served during the pull
REGISTRY_BYTES = "registry_blob_bytes"


class ClusterPullFirst(ProxyBigPull):
    """``ctr images pull --snapshotter native`` of a new one-layer image: plain containerd,
    then the first cluster node's containerd; both download the whole image."""

    name = "cluster-pull-first"
    targets = ("containerd", CLUSTER_PAIR[0])
    goal: Goal | None = None
    namespace_prefix = "bench-clusterpull"
    #: the images this row pulls are ``<variant>-<rep>``
    variant = "c1"

    def title(self, scale: Scale) -> str:
        return f"cluster: ctr images pull, one {scale.pull_mib} MiB layer, first node"

    def timeout(self, scale: Scale) -> float:
        return 120.0 + 1.0 * scale.pull_mib

    def setup(self, env: BenchEnv, target: Target | None) -> None:
        env.counting_registry()

    def image(self, env: BenchEnv, rep: int) -> tuple[BigImage, str]:
        image = env.big_image(env.scale.pull_mib, f"{self.variant}-{rep}")
        host = env.registry().host
        return image, image.ref.replace(host, env.counting_registry().host, 1)

    def sample(self, env: BenchEnv, target: Target | None, rep: int) -> Sample:
        self.image(env, rep)  # pushed before the count starts
        proxy = env.counting_registry()
        proxy.reset()
        result = super().sample(env, target, rep)
        result.extra[REGISTRY_BYTES] = proxy.blob_bytes
        return result

    def notes(self, row: Row) -> list[str]:
        parts = []
        for series in (row.baseline, row.subject):
            values = [s.extra[REGISTRY_BYTES] for s in series.samples] if series else []
            if series is not None and values:
                parts.append(f"{series.target} {_mb(statistics.median(values))}")
        return [f"registry blob bytes per pull (median): {', '.join(parts)}"] if parts else []


class ClusterPull(ClusterPullFirst):
    """The first cluster node pulls a new image, then the second node pulls the same one
    (the runner samples the targets in order). Both are removed after the second's pull."""

    name = "cluster-pull"
    targets = CLUSTER_PAIR
    goal: Goal | None = Goal("≤ 0.3× first node's time, 0 layer bytes", min_ratio=1 / 0.3)
    variant = "c2"

    def __init__(self) -> None:
        super().__init__()
        self._pending: list[tuple[Target, int]] = []

    def title(self, scale: Scale) -> str:
        return f"cluster: ctr images pull, one {scale.pull_mib} MiB layer, second node vs first"

    def cleanup(self, env: BenchEnv, target: Target | None, rep: int) -> None:
        # the second node's pull needs the image the first pulled: nothing is removed
        # until the second has pulled too
        self._pending.append((_need(target), rep))
        if _need(target).name == self.targets[-1]:
            self._flush(env)

    def teardown(self, env: BenchEnv, target: Target | None) -> None:
        self._flush(env)

    def _flush(self, env: BenchEnv) -> None:
        pending, self._pending = self._pending, []
        for target, rep in pending:
            super().cleanup(env, target, rep)

    def notes(self, row: Row) -> list[str]:
        out = super().notes(row)
        second = [s.extra[REGISTRY_BYTES] for s in row.subject.samples]
        if second:
            met = "yes" if max(second) == 0 else "**no**"
            out.append(f"second node downloaded 0 layer bytes in every pull: {met}")
        return out


def _mb(size: float) -> str:
    return f"{size / 1e6:.1f} MB"
