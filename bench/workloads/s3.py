"""contentd on S3 (a private SeaweedFS, read cache on local disk) against contentd on
its local store: writes, and reads with a cold and a warm read cache. The rows that
measure what a plain row measures are that row on other targets."""

from __future__ import annotations

from bench.env import BenchEnv, Scale
from bench.model import Goal, Sample
from bench.peers import Target
from bench.workloads.base import Workload
from bench.workloads.transfer import INGEST_NAMESPACE, CtrGet, ReadStream, WriteStream, _need

__all__ = ["S3_PAIR", "S3GetCold", "S3GetWarm", "S3ReadWarm", "S3Write"]

#: contentd on its local store first (the baseline), then contentd on S3.
S3_PAIR = ("contentd", "contentd-s3")


class S3Write(WriteStream):
    """One Write stream of N MiB (1 MiB messages, expected digest): on S3 the commit
    completes the multipart upload at the blob's key."""

    name = "s3-write"
    targets = S3_PAIR
    goal = None
    limits: tuple[str, ...] = ()

    def title(self, scale: Scale) -> str:
        return f"S3: raw Write stream {scale.mib} MiB vs local store"


class S3GetCold(Workload):
    """``ctr content get`` of an N MiB blob not in this node's read cache (written untimed
    just before, then its copy the node kept as it wrote it removed from the cache): on
    S3 the read cache fills from one GET first."""

    name = "s3-get-cold"
    unit = "MiB/s"
    targets = S3_PAIR

    def __init__(self) -> None:
        self._digest: dict[str, str] = {}

    def title(self, scale: Scale) -> str:
        return f"S3: ctr content get {scale.mib} MiB, cold read cache, vs local store"

    def sample(self, env: BenchEnv, target: Target | None, rep: int) -> Sample:
        t = _need(target)
        blob = env.data.big(env.scale.mib, f"s3cold-{t.name}-{rep}")
        digest = t.client.write_blob(
            f"bench-s3cold-{rep}",
            blob.chunks(),
            total=blob.size,
            expected=blob.digest,
            namespace=INGEST_NAMESPACE,
        )
        self._digest[t.address] = digest
        env.drop_s3_cached(t, digest)
        r = t.ctr(
            "content", "get", digest,
            namespace=INGEST_NAMESPACE, capture=False, timeout=self.timeout(env.scale),
        )  # fmt: skip
        return Sample(rep, env.scale.mib / r.seconds, r.seconds)

    def cleanup(self, env: BenchEnv, target: Target | None, rep: int) -> None:
        t = _need(target)
        digest = self._digest.pop(t.address, None)
        if digest:
            env.discard(t, INGEST_NAMESPACE, [digest])


class S3GetWarm(CtrGet):
    """``ctr content get`` of an N MiB blob already read on this node (32 KiB Read RPCs):
    on S3 every read is served by the local read cache."""

    name = "s3-get-warm"
    targets = S3_PAIR
    goal: Goal | None = Goal("≥ 0.8×", min_ratio=0.8)
    limits: tuple[str, ...] = ()

    def title(self, scale: Scale) -> str:
        return f"S3: ctr content get {scale.mib} MiB, warm read cache, vs local store"


class S3ReadWarm(ReadStream):
    """One Read stream of a whole N MiB blob already read on this node."""

    name = "s3-read-warm"
    targets = S3_PAIR
    goal = None
    limits: tuple[str, ...] = ()

    def title(self, scale: Scale) -> str:
        return f"S3: raw Read stream {scale.mib} MiB, warm read cache, vs local store"
