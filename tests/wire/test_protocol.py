"""HTTP/2 details a grpcio client does not exercise, by hand; GOAWAY and stop."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest

from contentd.wire import frames as fr
from tests.wire.helpers import SERVICE, Probe, RawClient, held_call, message, serve

UNARY = f"/{SERVICE}/Unary"


@pytest.fixture
def raw() -> Iterator[tuple[RawClient, Probe, object]]:
    probe = Probe()
    with serve(probe) as (server, address):
        client = RawClient(address)
        try:
            yield client, probe, server
        finally:
            client.close()


def _status(client: RawClient, sid: int) -> dict[str, str]:
    """The headers of the frame that ends stream ``sid`` (trailers or trailers-only)."""
    while True:
        f = client.until(fr.HEADERS, sid)
        headers = client.headers(f)
        if f.flags & fr.END_STREAM:
            return headers


def test_settings_and_ping(raw: tuple[RawClient, Probe, object]) -> None:
    client, _, _ = raw
    first = client.frame()
    assert first.type == fr.SETTINGS and not first.flags & fr.ACK
    settings = dict(fr.parse_settings(first.payload))
    assert settings[fr.Setting.INITIAL_WINDOW_SIZE] >= 1 << 20
    update = client.until(fr.WINDOW_UPDATE, 0)
    assert int.from_bytes(update.payload) >= 1 << 20
    assert client.until(fr.SETTINGS).flags & fr.ACK  # ours, acknowledged
    client.send(fr.ping(b"pingpong"))
    pong = client.until(fr.PING)
    assert pong.flags & fr.ACK and pong.payload == b"pingpong"


def test_continuation_priority_and_padding(raw: tuple[RawClient, Probe, object]) -> None:
    client, probe, _ = raw
    block = client.request_block(UNARY, [("x-long", "v" * 3000)])
    half = len(block) // 2
    padded_headers = bytes([3]) + b"\x00\x00\x00\x00\x10" + block[:half] + b"\x00" * 3
    data = message(b"ping")
    client.send(
        fr.encode(fr.PRIORITY, 0, 1, b"\x00\x00\x00\x00\x10"),
        fr.encode(fr.HEADERS, fr.PADDED | fr.PRIORITY_FLAG, 1, padded_headers),
        fr.encode(fr.CONTINUATION, fr.END_HEADERS, 1, block[half:]),
        fr.encode(fr.DATA, fr.PADDED | fr.END_STREAM, 1, bytes([4]) + data + b"\x00" * 4),
    )
    response = client.until(fr.HEADERS, 1)
    assert client.headers(response)[":status"] == "200"
    body = client.until(fr.DATA, 1)
    assert body.payload == message(b"ping")
    assert _status(client, 1)["grpc-status"] == "0"
    assert dict(probe.metadata[0])["x-long"] == "v" * 3000


def test_compressed_message_without_encoding(raw: tuple[RawClient, Probe, object]) -> None:
    client, _, _ = raw
    client.send(
        fr.headers(1, client.request_block(UNARY)),
        fr.data(1, message(b"zz", compressed=True), end_stream=True),
    )
    status = _status(client, 1)
    assert status["grpc-status"] == str(grpc.StatusCode.INTERNAL.value[0])
    assert "compressed flag" in status["grpc-message"]


def test_unsupported_encoding(raw: tuple[RawClient, Probe, object]) -> None:
    client, _, _ = raw
    client.send(
        fr.headers(1, client.request_block(UNARY, [("grpc-encoding", "snappy")])),
        fr.data(1, message(b"zz", compressed=True), end_stream=True),
    )
    status = _status(client, 1)
    assert status["grpc-status"] == str(grpc.StatusCode.UNIMPLEMENTED.value[0])


def test_goaway_lets_the_open_stream_finish(raw: tuple[RawClient, Probe, object]) -> None:
    client, _, server = raw
    client.send(fr.headers(1, client.request_block(f"/{SERVICE}/Hold")), fr.data(1, message(b"a")))
    assert client.until(fr.DATA, 1).payload == message(b"a")
    stopped = server.stop(30)  # type: ignore[attr-defined]
    goaway = client.until(fr.GOAWAY)
    assert int.from_bytes(goaway.payload[:4]) == 1  # the last stream it will serve
    assert int.from_bytes(goaway.payload[4:8]) == fr.ErrorCode.NO_ERROR
    client.send(fr.headers(3, client.request_block(UNARY)), fr.data(3, message(b"late"), True))
    refused = client.until(fr.RST_STREAM, 3)
    assert int.from_bytes(refused.payload) == fr.ErrorCode.REFUSED_STREAM
    client.send(fr.data(1, message(b"b"), end_stream=True))  # the open call goes on
    assert client.until(fr.DATA, 1).payload == message(b"b")
    assert _status(client, 1)["grpc-status"] == "0"
    assert stopped.wait(10)
    with pytest.raises((EOFError, OSError)):
        while True:
            client.frame()


def test_stop_cancels_after_grace() -> None:
    probe = Probe()
    with serve(probe) as (server, address), grpc.insecure_channel(address) as ch:
        call, gate = held_call(ch)
        stopped = server.stop(2.0)
        assert not probe.ended.is_set()  # in grace: the call goes on
        assert stopped.wait(10)
        assert probe.ended.wait(10)
        gate.set()
        assert probe.inactive.is_set()
        assert probe.wait_callback("hold")
        with pytest.raises(grpc.RpcError):
            next(call)
