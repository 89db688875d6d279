"""Every row of the benchmark, in the order a run measures them."""

from __future__ import annotations

from bench.workloads.base import PAIR, PROXY_PAIR, SINGLE, Workload
from bench.workloads.cluster import ClusterPull, ClusterPullFirst
from bench.workloads.fetch import FetchBig, FetchBigCtr, FetchSmall, FetchSmallCtr
from bench.workloads.library import LocalIngest, LocalRead, MetaInfo, MetaWalk
from bench.workloads.limits import DdFsync, DurableSmallFiles, PageCacheRead, Sha256
from bench.workloads.memory import RssIngest, RssRead
from bench.workloads.proxy import ProxyBigPull, ProxyGet, ProxyPull
from bench.workloads.s3 import S3GetCold, S3GetWarm, S3ReadWarm, S3Write
from bench.workloads.small import CtrLs, CtrLsRegexp, SmallIngests
from bench.workloads.transfer import CtrGet, CtrIngest, ReadStream, WriteStream

__all__ = ["PAIR", "PROXY_PAIR", "SINGLE", "Workload", "all_workloads"]


def all_workloads() -> list[Workload]:
    """Fresh instances of every workload: limits first, then the daemons, then the library."""
    return [
        DdFsync(),
        Sha256(),
        PageCacheRead(),
        DurableSmallFiles(),
        CtrIngest(),
        WriteStream(),
        CtrGet(),
        ReadStream(),
        SmallIngests(),
        CtrLs(),
        CtrLsRegexp(),
        ProxyPull(),
        ProxyGet(),
        ProxyBigPull(),
        FetchBig(),
        FetchBigCtr(),
        FetchSmall(),
        FetchSmallCtr(),
        S3Write(),
        S3GetCold(),
        S3GetWarm(),
        S3ReadWarm(),
        ClusterPullFirst(),
        ClusterPull(),
        RssIngest(),
        RssRead(),
        LocalIngest(),
        LocalRead(),
        MetaInfo(),
        MetaWalk(),
    ]
