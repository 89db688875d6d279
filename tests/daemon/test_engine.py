"""The daemon's gRPC engine: inline calls over a local backend (and S3's cached reads);
both engines serve."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest

from contentd.api._pb.containerd.services.content.v1 import content_pb2 as pb
from contentd.api._pb.containerd.services.content.v1 import content_pb2_grpc as pb_grpc
from contentd.content.digest import digest_of
from contentd.daemon.engines import INLINE_CALLS, reads_inline_when
from contentd.wire import Server
from contentd.wire import frames as fr
from tests.api.servers import ContentdServer
from tests.daemon.harness import QUIET_GC, md, start_daemon
from tests.wire.helpers import RawClient


def _inline(daemon: object) -> object:
    server = daemon._listeners[0].server  # type: ignore[attr-defined]
    assert isinstance(server, Server)
    return server.inline


def test_local_backend_runs_reads_inline(base: Path) -> None:
    daemon = start_daemon(base, QUIET_GC)
    try:
        assert _inline(daemon) == INLINE_CALLS
    finally:
        daemon.stop()


def test_remote_backend_keeps_every_call_on_the_pool(base: Path) -> None:
    with ContentdServer() as remote:
        config = (
            QUIET_GC + f'\n[proxy_plugins.remote]\ntype = "content"\naddress = "{remote.socket}"\n'
        )
        daemon = start_daemon(base, config)
        try:
            assert _inline(daemon) == {}
            with grpc.insecure_channel(daemon.address) as ch:
                stub = pb_grpc.ContentStub(ch)
                data = b"through the proxy backend"
                digest = digest_of(data)
                req = pb.WriteContentRequest(
                    action=pb.COMMIT, ref="r", total=len(data), expected=digest, data=data
                )
                list(stub.Write(iter([req]), metadata=md("ns", None)))
                # blobs without a lease or root are fine here: the GC is quiet
                info = stub.Info(pb.InfoRequest(digest=digest), metadata=md("ns"))
                assert info.info.size == len(data)
                read = pb.ReadContentRequest(digest=digest, offset=3, size=4)
                assert b"".join(r.data for r in stub.Read(read, metadata=md("ns"))) == data[3:7]
        finally:
            daemon.stop()


def test_a_partly_remote_backend_runs_only_the_reads_it_holds_inline() -> None:
    # S3 with its read cache: a Read of bytes on local disk inline, anything else on the pool
    on_disk = {"sha256:cached"}
    table = reads_inline_when(lambda request: request.digest in on_disk)
    (path,) = table
    assert path == "/containerd.services.content.v1.Content/Read"
    policy = table[path]
    assert policy(pb.ReadContentRequest(digest="sha256:cached", offset=0, size=32768))
    assert policy(pb.ReadContentRequest(digest="sha256:other", size=32768)) is None
    # a whole-blob Read (size 0) or one past the inline limit stays on the pool
    assert policy(pb.ReadContentRequest(digest="sha256:cached", size=0)) is None
    assert policy(pb.ReadContentRequest(digest="sha256:cached", size=64 << 20)) is None


@pytest.mark.parametrize("engine", ["contentd", "grpcio"])
def test_headerless_listener_served_by_either_engine(base: Path, engine: str) -> None:
    config = (
        QUIET_GC
        + f'\n[grpc]\nengine = "{engine}"\n'
        + f'\n[headerless_listeners.n1]\naddress = "{base}/n1.sock"\n'
    )
    daemon = start_daemon(base, config)
    try:
        with grpc.insecure_channel(f"unix:{base}/n1.sock") as ch:
            stub = pb_grpc.ContentStub(ch)
            assert list(stub.ListStatuses(pb.ListStatusesRequest()).statuses) == []
    finally:
        daemon.stop()


@pytest.mark.parametrize("engine", ["contentd", "grpcio"])
def test_max_concurrent_streams_is_advertised(base: Path, engine: str) -> None:
    """``[grpc] max_concurrent_streams`` reaches clients in SETTINGS, on either engine."""
    config = QUIET_GC + f'\n[grpc]\nengine = "{engine}"\nmax_concurrent_streams = 7\n'
    daemon = start_daemon(base, config)
    try:
        client = RawClient(f"unix:{daemon.socket}")
        try:
            first = client.until(fr.SETTINGS)
            assert dict(fr.parse_settings(first.payload))[fr.Setting.MAX_CONCURRENT_STREAMS] == 7
        finally:
            client.close()
    finally:
        daemon.stop()
