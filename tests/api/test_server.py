"""build_server: sockets, limits, malloc tuning."""

from __future__ import annotations

import contextlib
import os
import socket
import stat
from pathlib import Path

import grpc
import pytest

from contentd.api._pb.containerd.services.content.v1 import content_pb2 as pb
from contentd.api._pb.containerd.services.content.v1 import content_pb2_grpc as pb_grpc
from contentd.api.content import ContentService, SingleStoreResolver
from contentd.content.digest import digest_of
from contentd.daemon.engines import (
    MAX_MESSAGE_SIZE,
    SOCKET_MODE,
    build_server,
    listen,
    server_options,
    tune_malloc,
)
from contentd.wire.address import unix_path
from tests.api.conftest import status_of
from tests.api.servers import ContentdServer, local_store


def test_unix_socket_mode(tmp_path: Path) -> None:
    with ContentdServer(local_store(tmp_path / "c")) as server:
        mode = os.stat(server.socket).st_mode
        assert stat.S_ISSOCK(mode)
        assert stat.S_IMODE(mode) == SOCKET_MODE == 0o660


def test_stale_socket_file_is_replaced(tmp_path: Path) -> None:
    path = f"/tmp/cd-stale-{os.getpid()}.sock"
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(path)
    stale.close()  # the file stays behind, as after a crash
    service = ContentService(SingleStoreResolver(local_store(tmp_path / "d")))
    server = build_server("unix:" + path, [service])
    server.start()
    try:
        with grpc.insecure_channel("unix:" + path) as ch:
            pb_grpc.ContentStub(ch).ListStatuses(pb.ListStatusesRequest())
    finally:
        server.stop(None).wait()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


def test_tcp_listen_on_loopback(tmp_path: Path) -> None:
    service = ContentService(SingleStoreResolver(local_store(tmp_path / "c")))
    server = grpc.server(__import__("concurrent.futures").futures.ThreadPoolExecutor(2))
    service.register(server)
    port = listen(server, "127.0.0.1:0")
    assert port > 0
    server.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
            assert pb_grpc.ContentStub(ch).ListStatuses(pb.ListStatusesRequest()).statuses == []
    finally:
        server.stop(None).wait()


def test_addresses() -> None:
    assert unix_path("unix:/a/b.sock") == "/a/b.sock"
    assert unix_path("unix:///a/b.sock") == "/a/b.sock"
    assert unix_path("/a/b.sock") == "/a/b.sock"
    assert unix_path("127.0.0.1:1234") is None
    options = dict(server_options([("grpc.max_receive_message_length", 5)]))
    assert options["grpc.max_receive_message_length"] == 5
    assert options["grpc.max_send_message_length"] == MAX_MESSAGE_SIZE == 16 << 20


def test_messages_up_to_sixteen_mib(tmp_path: Path) -> None:
    limits = [
        ("grpc.max_send_message_length", 64 << 20),
        ("grpc.max_receive_message_length", 64 << 20),
    ]
    with (
        ContentdServer(local_store(tmp_path / "c")) as server,
        grpc.insecure_channel(server.address, options=limits) as ch,
    ):
        stub = pb_grpc.ContentStub(ch)
        fits = b"x" * ((16 << 20) - 100)
        r = list(stub.Write(iter([pb.WriteContentRequest(action=pb.COMMIT, ref="a", data=fits)])))
        assert r[0].digest == digest_of(fits)
        too_big = b"y" * (16 << 20)
        with pytest.raises(grpc.RpcError) as info:
            list(
                stub.Write(iter([pb.WriteContentRequest(action=pb.COMMIT, ref="b", data=too_big)]))
            )
        assert status_of(info.value)[0] == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_tune_malloc_is_idempotent() -> None:
    first = tune_malloc()
    assert tune_malloc() == first
    if os.path.exists("/lib/x86_64-linux-gnu/libc.so.6") or os.path.exists("/lib64/libc.so.6"):
        assert first
