"""HTTP/2 details a grpcio client does not exercise, by hand; GOAWAY and stop."""

from __future__ import annotations

import socket
import sys
import threading
import time
from collections.abc import Iterator

import grpc
import pytest

from contentd.wire import frames as fr
from contentd.wire.limits import Limits
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


def _closed_by_server(sock: socket.socket) -> bool:
    """Read until the server closes ``sock`` (what it sent first is skipped)."""
    sock.settimeout(30)
    try:
        while sock.recv(1 << 16):
            pass
    except ConnectionResetError:
        pass
    return True


def test_a_connection_that_never_sends_its_preface_is_closed() -> None:
    with serve(handshake_timeout=0.3) as (_, address):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(address.removeprefix("unix:"))
        sock.sendall(fr.PREFACE[:10])  # and then nothing (slowloris)
        assert _closed_by_server(sock)
        sock.close()


def test_connections_beyond_the_cap_are_closed_at_accept() -> None:
    with serve(max_connections=2) as (_, address):
        held = [RawClient(address) for _ in range(2)]
        for client in held:
            assert client.frame().type == fr.SETTINGS
        extra = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        extra.connect(address.removeprefix("unix:"))
        assert _closed_by_server(extra)
        extra.close()
        held[0].close()  # a slot frees up
        deadline = time.monotonic() + 10
        while True:
            late = None
            try:
                late = RawClient(address)
                if late.frame().type == fr.SETTINGS:
                    break
            except (EOFError, OSError):
                assert time.monotonic() < deadline
            finally:
                if late is not None:
                    late.close()
        held[1].close()


def test_idle_streams_do_not_starve_unary_calls() -> None:
    """More open client streams than stream workers: a unary call is still answered."""
    probe = Probe()
    with serve(probe) as (_, address):
        client = RawClient(address)
        for i in range(40):  # the test server has 16 stream workers
            client.send(fr.headers(1 + 2 * i, client.request_block(f"/{SERVICE}/Hold")))
        with grpc.insecure_channel(address) as ch:
            assert ch.unary_unary(UNARY)(b"still here", timeout=20) == b"still here"
        client.close()


def test_an_idle_connection_is_closed() -> None:
    """A connection with no call that sends nothing for ``idle_timeout`` is closed."""
    with serve(idle_timeout=0.3, handshake_timeout=0.3) as (_, address):
        client = RawClient(address)
        assert client.until(fr.SETTINGS).type == fr.SETTINGS
        assert _closed_by_server(client.sock)
        client.close()


def test_silent_connections_make_room_for_clients_that_speak() -> None:
    """Connections that never send their preface cannot keep a client out: when as many
    wait as the cap allows, the one silent the longest is closed."""
    with serve(max_connections=3) as (_, address):
        silent = []
        for _ in range(3):
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.connect(address.removeprefix("unix:"))
            silent.append(sock)
        client = RawClient(address)
        assert client.frame().type == fr.SETTINGS
        assert _closed_by_server(silent[0])
        client.close()
        for sock in silent:
            sock.close()


def test_a_started_server_shortens_the_gil_switch_interval() -> None:
    # a reader blocked in a syscall waits up to the switch interval for the GIL each time
    # it comes back: a busy connection's reader must not hold it for 5 ms slices
    before = sys.getswitchinterval()
    try:
        sys.setswitchinterval(0.005)
        with serve(switch_interval=0.001):
            assert sys.getswitchinterval() == pytest.approx(0.001)
        sys.setswitchinterval(0.0001)
        with serve(switch_interval=0.001):
            assert sys.getswitchinterval() == pytest.approx(0.0001)  # never raised
    finally:
        sys.setswitchinterval(before)


def test_calls_reset_in_the_batch_that_opened_them_start_no_handler(
    raw: tuple[RawClient, Probe, object],
) -> None:
    # rapid reset: the reader parses the whole batch before it acts, so a stream opened
    # and reset in one write costs its header block and nothing on the pools
    client, probe, _ = raw
    block = client.request_block(f"/{SERVICE}/Stream")
    frames = [
        fr.headers(sid, block)
        + fr.data(sid, message(b"1"), end_stream=True)
        + fr.rst_stream(sid, fr.ErrorCode.CANCEL)
        for sid in range(1, 101, 2)
    ]
    client.send(*frames)
    client.send(
        fr.headers(101, client.request_block(UNARY)),
        fr.data(101, message(b"after"), end_stream=True),
    )
    assert client.until(fr.DATA, 101).payload == message(b"after")
    assert not probe.started.is_set()
    assert "stream" not in probe.callbacks


def test_a_connection_error_is_logged_as_a_warning(
    raw: tuple[RawClient, Probe, object], caplog: pytest.LogCaptureFixture
) -> None:
    """Every call on the connection ends with it: the log says which peer and why."""
    client, _, _ = raw
    with caplog.at_level("WARNING", logger="contentd.wire"):
        client.send(fr.encode(fr.PING, 0, 1, b"\x00" * 8))  # PING on a stream
        goaway = client.until(fr.GOAWAY)
        assert int.from_bytes(goaway.payload[4:8]) == fr.ErrorCode.PROTOCOL_ERROR
        deadline = time.monotonic() + 10
        while not caplog.records and time.monotonic() < deadline:
            time.sleep(0.01)
    [record] = [r for r in caplog.records if "closing connection" in r.getMessage()]
    assert record.levelname == "WARNING" and "PING on a stream" in record.getMessage()


def test_a_connection_over_its_decode_budget_waits_while_others_are_served() -> None:
    # a budget that the first request for an unknown method overdraws for hours (400
    # header fields: about 8 ms of decoding against a 1 ms burst): that connection's
    # reader pauses (what it sent next waits unread), another client is answered, and
    # stopping the server wakes the paused reader. The burst is not 0: the other
    # client's first block, though it opens a call, is charged what it costs beyond
    # 200 us, which a loaded machine running pure Python can exceed
    limits = Limits(header_decode_rate=1e-6, header_decode_burst=0.001)
    padding = [(f"x-pad-{i}", f"v{i:04d}") for i in range(400)]
    with serve(limits=limits) as (server, address):
        greedy = RawClient(address)
        other = RawClient(address)
        try:
            greedy.send(fr.headers(1, greedy.request_block(f"/{SERVICE}/Nope", padding), True))
            assert _status(greedy, 1)["grpc-status"] == str(grpc.StatusCode.UNIMPLEMENTED.value[0])
            greedy.send(
                fr.headers(3, greedy.request_block(UNARY)),
                fr.data(3, message(b"later"), end_stream=True),
            )
            other.send(
                fr.headers(1, other.request_block(UNARY)),
                fr.data(1, message(b"now"), end_stream=True),
            )
            assert other.until(fr.DATA, 1).payload == message(b"now")
            greedy.sock.settimeout(0.5)
            with pytest.raises(TimeoutError):
                greedy.until(fr.DATA, 3)
            assert server.stop(None).wait(30)
            # the paused reader let go (the stop would otherwise give up waiting for it)
            assert not [t for t in threading.enumerate() if "-conn-" in t.name and t.is_alive()]
        finally:
            greedy.close()
            other.close()
