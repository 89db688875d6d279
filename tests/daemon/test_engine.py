"""The daemon's gRPC engine: inline calls only over a local backend; both engines serve."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest

from contentd.api._pb.containerd.services.content.v1 import content_pb2 as pb
from contentd.api._pb.containerd.services.content.v1 import content_pb2_grpc as pb_grpc
from contentd.content.digest import digest_of
from contentd.daemon.engines import INLINE_CALLS
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
