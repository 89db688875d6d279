"""The sans-IO protocol core (contentd.wire.protocol), bytes in and bytes out.

No socket, thread or sleep: each test feeds frames to an ``H2Connection`` and
reads the frames and events it answers with. Each hardening case names the
behaviour it checks; the reference for which error a case gets is RFC 9113 and
grpc-go's server.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from typing import Any

import hpack
import pytest

from contentd.content import codes
from contentd.wire import frames as fr
from contentd.wire.events import (
    CallStarted,
    ConnectionEnded,
    InputChanged,
    RequestReady,
    StreamEnded,
)
from contentd.wire.limits import Limits
from contentd.wire.metadata import hpack_literal
from contentd.wire.protocol import CALL_DECODE, H2Connection
from contentd.wire.streams import ConnectionState, StreamState
from tests.wire.helpers import message, request_headers

E = fr.ErrorCode
UNARY = "/t.S/Unary"
STREAM = "/t.S/Write"


class _Handler:
    def __init__(self, streaming: bool) -> None:
        self.request_streaming = streaming


_ROUTES = {UNARY: _Handler(False), STREAM: _Handler(True)}


def _route(request: Any) -> Any:
    return _ROUTES.get(request.path) or f"unknown method {request.path}"


class Peer:
    """A server core and a client writing frames by hand."""

    def __init__(
        self, limits: Limits | None = None, cpu_clock: Callable[[], float] | None = None
    ) -> None:
        limits = limits or Limits(max_receive_message=1 << 20)
        self.h2 = H2Connection(limits, route=_route, cpu_clock=cpu_clock)
        self.h2.initiate()
        self.encoder = hpack.Encoder()
        self.decoder = hpack.Decoder()
        self.opening = self.out()
        self.events = self.send(fr.PREFACE + fr.settings({}))
        self.ack = self.out()

    def block(self, path: str = UNARY, extra: Iterable[tuple[str, str]] = ()) -> bytes:
        return bytes(self.encoder.encode(request_headers(path, extra)))

    def send(self, *frames: bytes) -> list[Any]:
        return self.h2.receive(b"".join(frames))

    def out(self) -> list[fr.Frame]:
        bufs, _ = self.h2.data_to_send()
        frames, _ = fr.parse_frames(b"".join(bytes(b) for b in bufs))
        return frames

    def headers(self, frame: fr.Frame) -> dict[str, str]:
        return dict(self.decoder.decode(frame.payload))

    def goaway(self, *frames: bytes) -> int:
        """Send ``frames``: the GOAWAY code they get (the connection is closed)."""
        events = self.send(*frames)
        assert self.h2.state is ConnectionState.CLOSED, events
        [goaway] = [f for f in self.out() if f.type == fr.GOAWAY]
        assert isinstance(events[-1], ConnectionEnded) and events[-1].sent
        return int.from_bytes(goaway.payload[4:8])

    def reset(self, *frames: bytes) -> tuple[int, int]:
        """Send ``frames``: the stream and code of the RST_STREAM they get."""
        self.send(*frames)
        assert self.h2.state is not ConnectionState.CLOSED
        [rst] = [f for f in self.out() if f.type == fr.RST_STREAM]
        return rst.stream_id, int.from_bytes(rst.payload)

    def status(self, sid: int) -> dict[str, str]:
        """The headers of the frame ending stream ``sid``."""
        for f in self.out():
            if f.type == fr.HEADERS and f.stream_id == sid and f.flags & fr.END_STREAM:
                return self.headers(f)
        raise AssertionError(f"stream {sid} did not end")


def test_the_opening_settings_advertise_the_limits() -> None:
    peer = Peer(Limits(max_concurrent_streams=7, max_header_list_size=5000))
    first = peer.opening[0]
    assert first.type == fr.SETTINGS
    settings = dict(fr.parse_settings(first.payload))
    assert settings[fr.Setting.MAX_CONCURRENT_STREAMS] == 7
    assert settings[fr.Setting.MAX_HEADER_LIST_SIZE] == 5000
    assert settings[fr.Setting.MAX_FRAME_SIZE] == 1 << 20
    assert settings[fr.Setting.INITIAL_WINDOW_SIZE] == 4 << 20
    assert peer.opening[1].type == fr.WINDOW_UPDATE
    assert peer.h2.state is ConnectionState.OPEN
    assert [f.flags for f in peer.ack] == [fr.ACK]  # the client's SETTINGS acknowledged


def test_a_unary_request_is_ready_when_the_client_half_closes() -> None:
    peer = Peer()
    events = peer.send(fr.headers(1, peer.block()), fr.data(1, message(b"ping")))
    assert [type(e) for e in events] == [CallStarted]
    events = peer.send(fr.data(1, b"", end_stream=True))
    [ready] = events
    assert isinstance(ready, RequestReady) and ready.message == b"ping"
    stream = ready.stream
    assert stream.state is StreamState.HALF_CLOSED_REMOTE
    peer.h2.send_message(stream, b"pong")
    peer.h2.finish(stream, 0, "")
    frames = peer.out()
    assert [f.type for f in frames] == [fr.HEADERS, fr.DATA, fr.HEADERS]
    assert frames[1].payload == message(b"pong")
    assert peer.headers(frames[2]) == {"grpc-status": "0"}
    assert stream.state is StreamState.FINISHED and peer.h2.idle


def test_client_and_server_cores_talk() -> None:
    server = H2Connection(Limits(), route=_route)
    client = H2Connection(client_side=True)
    server.initiate()
    client.initiate()

    def shuttle() -> None:
        for _ in range(4):
            for a, b in ((client, server), (server, client)):
                bufs, _ = a.data_to_send()
                for event in b.receive(b"".join(bytes(x) for x in bufs)):
                    if isinstance(event, RequestReady):
                        server.send_message(event.stream, event.message[::-1])
                        server.finish(event.stream, 0, "")

    stream = client.start_request(Peer().block(), b"abc")
    shuttle()
    assert client.take(stream) == b"cba"
    assert stream.state is StreamState.FINISHED
    assert stream.response is not None and stream.response.status == 0


def test_max_concurrent_streams_is_enforced() -> None:
    peer = Peer(Limits(max_concurrent_streams=2))
    peer.send(fr.headers(1, peer.block(STREAM)), fr.headers(3, peer.block(STREAM)))
    assert peer.reset(fr.headers(5, peer.block(STREAM))) == (5, E.REFUSED_STREAM)
    assert sorted(peer.h2.streams) == [1, 3]


def test_streams_refused_past_the_limit_count_against_the_connection() -> None:
    peer = Peer(Limits(max_concurrent_streams=2, max_excess_resets=10))
    peer.send(fr.headers(1, peer.block(STREAM)), fr.headers(3, peer.block(STREAM)))
    refused = [fr.headers(5 + 2 * i, peer.block(STREAM)) for i in range(10)]
    peer.send(*refused)
    assert peer.h2.state is ConnectionState.OPEN
    assert peer.goaway(fr.headers(25, peer.block(STREAM))) == E.ENHANCE_YOUR_CALM


def test_a_continuation_flood_is_cut_before_end_headers() -> None:
    peer = Peer(Limits(max_header_list_size=4096))
    frames = [fr.encode(fr.HEADERS, 0, 1, peer.block())]
    frames += [fr.encode(fr.CONTINUATION, 0, 1, b"\x00" * 1000)] * 5
    assert peer.goaway(*frames) == E.PROTOCOL_ERROR


def test_a_header_block_over_the_limit_is_refused() -> None:
    peer = Peer(Limits(max_header_list_size=4096))
    assert peer.goaway(fr.headers(1, peer.block(extra=[("x-big", "v" * 5000)]))) in (
        E.PROTOCOL_ERROR,
        E.COMPRESSION_ERROR,
    )


def test_an_hpack_bomb_is_refused() -> None:
    """A big field indexed once and referenced many times decodes past the list limit."""
    peer = Peer(Limits(max_header_list_size=8192))
    first = peer.block(extra=[("x-bomb", "b" * 3000)])
    peer.send(fr.headers(1, first), fr.data(1, message(b"x"), end_stream=True))
    peer.out()
    bomb = peer.block(extra=[("x-bomb", "b" * 3000)] * 20)  # each a one-byte index
    assert len(bomb) < 200
    assert peer.goaway(fr.headers(3, bomb)) == E.COMPRESSION_ERROR


def test_a_dynamic_table_size_update_above_the_setting_is_refused() -> None:
    peer = Peer()
    block = b"\x3f\xe1\xff\x03" + peer.block()  # size update to 65536 > 4096
    assert peer.goaway(fr.headers(1, block)) == E.COMPRESSION_ERROR


def test_the_header_block_cache_is_bounded() -> None:
    peer = Peer()
    for i in range(200):
        sid = 1 + 2 * i
        literal = b"".join(  # literals without indexing: cacheable blocks, each different
            b"\x00" + bytes([len(k)]) + k.encode() + bytes([len(v)]) + v.encode()
            for k, v in [
                (":method", "POST"),
                (":path", UNARY),
                ("content-type", "application/grpc"),
                ("x-n", str(i)),
            ]
        )
        peer.send(fr.headers(sid, literal), fr.data(sid, message(b"x"), end_stream=True))
    assert len(peer.h2._blocks) <= 64
    big = b"".join(
        b"\x00" + bytes([len(k)]) + k.encode() + b"\x7f" + bytes([len(v) - 127]) + v.encode()
        for k, v in [("x-a", "v" * 200), ("x-b", "v" * 200), ("x-c", "v" * 200)]
    )
    peer.send(fr.headers(1001, big + literal))
    assert all(len(b) <= 1024 for b in peer.h2._blocks)


def test_a_stream_queue_holds_back_only_the_stream_credit() -> None:
    lim = Limits(stream_queue=64 << 10, connection_queue=1 << 30, max_receive_message=1 << 20)
    peer = Peer(lim)
    peer.send(fr.headers(1, peer.block(STREAM)))
    chunk = message(b"d" * (32 << 10))
    for _ in range(80):  # 2.5 MiB: more than the half window a stream's credit waits for
        peer.send(fr.data(1, chunk))
    updates = [f for f in peer.out() if f.type == fr.WINDOW_UPDATE]
    stream_credit = sum(int.from_bytes(f.payload) for f in updates if f.stream_id == 1)
    assert stream_credit <= 3 * len(chunk) + (2 << 20)  # stopped once 64 KiB queued
    # the connection's credit came back (announced in batches of a quarter window)
    connection_credit = sum(int.from_bytes(f.payload) for f in updates if not f.stream_id)
    assert connection_credit + peer.h2.windows.credit >= 80 * len(chunk)
    assert not peer.h2.windows.deferred
    stream = peer.h2.streams[1]
    while peer.h2.take(stream) is not None:
        pass
    assert any(f.stream_id == 1 for f in peer.out() if f.type == fr.WINDOW_UPDATE)


def test_a_lock_step_writer_gets_stream_credit_every_half_window() -> None:
    """1 MiB messages in 16 KiB frames (grpc-go's), each taken before the next is sent:
    the stream's credit comes back in halves of its 4 MiB window, so every other message
    is answered with a WINDOW_UPDATE, and the writer never has less than half a window."""
    peer = Peer(Limits(max_receive_message=4 << 20))
    assert peer.h2.limits.stream_window == 4 << 20
    [started] = peer.send(fr.headers(1, peer.block(STREAM)))
    peer.out()
    msg = message(b"w" * (1 << 20))
    frames = [fr.data(1, msg[i : i + 16384]) for i in range(0, len(msg), 16384)]
    window = 4 << 20  # the writer's view of the stream's window
    updates = []
    for _ in range(8):
        assert window >= len(msg)
        peer.send(*frames)
        window -= len(msg)
        assert peer.h2.take(started.stream) == msg[5:]
        increments = [
            int.from_bytes(f.payload)
            for f in peer.out()
            if f.type == fr.WINDOW_UPDATE and f.stream_id == 1
        ]
        window += sum(increments)
        updates.append(sum(increments))
        assert window >= 2 << 20
    assert [bool(n) for n in updates] == [False, True] * 4
    assert all(n >= 2 << 20 for n in updates if n)


def test_the_connection_queue_bounds_memory_whatever_the_number_of_streams() -> None:
    lim = Limits(stream_queue=1 << 20, connection_queue=256 << 10, stream_window=1 << 20)
    peer = Peer(lim)
    chunk = message(b"d" * (60 << 10))
    for sid in range(1, 400, 2):
        peer.send(fr.headers(sid, peer.block(STREAM)), fr.data(sid, chunk))
    granted = sum(
        int.from_bytes(f.payload)
        for f in peer.out()
        if f.type == fr.WINDOW_UPDATE and not f.stream_id
    )
    assert granted <= 256 << 10 + (4 << 20)
    assert peer.h2.windows.deferred > 0  # credit waits for the handlers
    for stream in list(peer.h2.streams.values()):
        peer.h2.take(stream)
    assert peer.h2.windows.deferred == 0


def test_a_unary_call_with_a_second_message_fails_at_once() -> None:
    peer = Peer()
    events = peer.send(
        fr.headers(1, peer.block()), fr.data(1, message(b"one")), fr.data(1, message(b"two")[:6])
    )
    assert isinstance(events[-1], StreamEnded)
    status = peer.status(1)
    assert status["grpc-status"] == str(codes.INTERNAL)


def test_a_length_prefix_over_the_limit_is_refused_before_the_bytes_come() -> None:
    peer = Peer(Limits(max_receive_message=1000))
    events = peer.send(fr.headers(1, peer.block(STREAM)), fr.data(1, b"\x00\xff\xff\xff\xff"))
    assert isinstance(events[-1], StreamEnded)
    status = peer.status(1)
    assert status["grpc-status"] == str(codes.RESOURCE_EXHAUSTED)
    assert "4294967295 vs. 1000" in status["grpc-message"]


def test_a_compressed_flag_without_grpc_encoding_is_internal() -> None:
    peer = Peer()
    peer.send(fr.headers(1, peer.block()), fr.data(1, message(b"zz", compressed=True), True))
    assert peer.status(1)["grpc-status"] == str(codes.INTERNAL)


@pytest.mark.parametrize(
    ("extra", "http", "code"),
    [
        ([("content-type", "text/plain")], "415", codes.INVALID_ARGUMENT),
        ([("content-type", "application/grpcx")], "415", codes.INVALID_ARGUMENT),
        ([], "415", codes.INVALID_ARGUMENT),
    ],
)
def test_a_request_that_is_not_grpc_gets_http_415(
    extra: list[tuple[str, str]], http: str, code: int
) -> None:
    peer = Peer()
    headers = [
        (":method", "POST"),
        (":scheme", "http"),
        (":path", UNARY),
        (":authority", "x"),
        *extra,
    ]
    peer.send(fr.headers(1, bytes(peer.encoder.encode(headers)), end_stream=True))
    status = peer.status(1)
    assert status[":status"] == http
    assert status["grpc-status"] == str(code)
    assert "invalid gRPC request content-type" in status["grpc-message"]


def test_a_get_gets_http_405() -> None:
    peer = Peer()
    headers = [(":method", "GET"), (":scheme", "http"), (":path", UNARY), (":authority", "x")]
    peer.send(fr.headers(1, bytes(peer.encoder.encode(headers)), end_stream=True))
    assert peer.status(1)[":status"] == "405"


def test_an_unknown_method_is_unimplemented() -> None:
    peer = Peer()
    peer.send(fr.headers(1, peer.block("/t.S/Nope"), end_stream=True))
    assert peer.status(1)["grpc-status"] == str(codes.UNIMPLEMENTED)


@pytest.mark.parametrize("name", [b"", b"X-Upper", b"bad name", b":bogus"])
def test_malformed_header_names_reset_the_stream(name: bytes) -> None:
    peer = Peer()
    field = b"\x00" + bytes([len(name)]) + name + b"\x01v"
    block = peer.block() + field
    assert peer.reset(fr.headers(1, block, end_stream=True)) == (1, E.PROTOCOL_ERROR)
    assert not peer.h2.streams


@pytest.mark.parametrize(
    "value", [b"a\x00b", b"a\rb", b"a\nb", b" lead", b"trail\t", b"\t", b"x" * 3000 + b"\n"]
)
def test_malformed_header_values_reset_the_stream(value: bytes) -> None:
    peer = Peer()
    field = hpack_literal(b"x-v", value)
    assert peer.reset(fr.headers(1, peer.block() + field, end_stream=True)) == (1, E.PROTOCOL_ERROR)


@pytest.mark.parametrize("value", [b"", b"a b", b"x" * 3000])
def test_header_values_inner_spaces_and_empty_are_accepted(value: bytes) -> None:
    peer = Peer()
    [started, *_] = peer.send(fr.headers(1, peer.block(extra=[]) + hpack_literal(b"x-v", value)))
    assert isinstance(started, CallStarted)


def test_rapid_reset_gets_enhance_your_calm() -> None:
    peer = Peer(Limits(max_excess_resets=50))
    frames = []
    for i in range(60):
        sid = 1 + 2 * i
        frames += [fr.headers(sid, peer.block(STREAM)), fr.rst_stream(sid, E.CANCEL)]
    assert peer.goaway(*frames) == E.ENHANCE_YOUR_CALM


def test_completed_calls_refill_the_reset_budget() -> None:
    peer = Peer(Limits(max_excess_resets=5))
    for i in range(40):
        sid = 1 + 2 * i
        if i % 2:
            peer.send(fr.headers(sid, peer.block(STREAM)), fr.rst_stream(sid, E.CANCEL))
        else:
            [started] = peer.send(fr.headers(sid, peer.block(STREAM)))
            peer.h2.finish(started.stream, 0, "")
    assert peer.h2.state is ConnectionState.OPEN


def test_resets_after_the_answer_are_not_rapid_resets() -> None:
    # containerd's proxy ReaderAt cancels each Read once it holds the bytes, often
    # before the trailers went out: thousands of such calls on one connection
    peer = Peer(Limits(max_excess_resets=5))
    for i in range(40):
        sid = 1 + 2 * i
        [started] = peer.send(fr.headers(sid, peer.block(STREAM)))
        assert peer.h2.send_message(started.stream, b"x" * 100)
        peer.out()  # the answer is written
        peer.send(fr.rst_stream(sid, E.CANCEL))
    assert peer.h2.state is ConnectionState.OPEN


def test_resets_before_the_answer_was_written_still_count() -> None:
    peer = Peer(Limits(max_excess_resets=5))
    resets = 0
    for i in range(10):
        sid = 1 + 2 * i
        [started] = peer.send(fr.headers(sid, peer.block(STREAM)))
        assert peer.h2.send_message(started.stream, b"x" * 100)  # queued, not written
        peer.send(fr.rst_stream(sid, E.CANCEL))
        resets += 1
        if peer.h2.state is ConnectionState.CLOSED:
            break
    assert peer.h2.state is ConnectionState.CLOSED
    assert resets == 6


@pytest.mark.parametrize(
    "flood",
    [
        fr.ping(b"12345678"),
        fr.settings({}),
        fr.data(1, b""),
        fr.encode(fr.CONTINUATION, 0, 1, b""),
    ],
    ids=["ping", "settings", "empty-data", "empty-continuation"],
)
def test_floods_get_enhance_your_calm(flood: bytes) -> None:
    peer = Peer()
    first = [fr.headers(1, peer.block(STREAM))]
    if flood[3] == fr.CONTINUATION:
        first = [fr.encode(fr.HEADERS, 0, 1, peer.block(STREAM))]
    assert peer.goaway(*first, flood * 2000) == E.ENHANCE_YOUR_CALM


def test_pings_while_the_server_sends_are_not_a_flood() -> None:
    """A client reading one long response pings for its window estimate (grpc-go's BDP
    probes): more than the limit in all, never more than the limit without output between."""
    peer = Peer()
    request = fr.data(1, message(b"x"), end_stream=True)
    [started, *_] = peer.send(fr.headers(1, peer.block()), request)
    stream = started.stream
    for _ in range(3):
        peer.send(fr.ping(b"12345678") * 600)
        peer.h2.send_message(stream, b"chunk")
        assert any(f.type == fr.DATA for f in peer.out())
    assert peer.h2.state is ConnectionState.OPEN


def test_a_flood_of_frames_answered_by_resets_is_bounded() -> None:
    """Requests each answered with RST_STREAM (a malformed header), never read (CVE-2019-9514)."""
    peer = Peer()
    bad = peer.block() + b"\x00\x01X\x01v"
    frames = [fr.headers(1 + 2 * i, bad, end_stream=True) for i in range(12_000)]
    assert peer.goaway(*frames) == E.ENHANCE_YOUR_CALM


class _Work:
    """A CPU clock for the header-decode budget: each decode costs ``cost`` seconds."""

    def __init__(self, cost: float) -> None:
        self.cost = cost
        self.now = 0.0
        self.calls = 0

    def __call__(self) -> float:
        self.calls += 1
        if not self.calls % 2:  # the end of a measurement
            self.now += self.cost
        return self.now


# binary fractions, so that the sums are exact: a burst of 5 ms-ish units, refilled at 128 a second
_MS = 2.0**-10
_BUDGET = Limits(header_decode_rate=128 * _MS, header_decode_burst=5 * _MS)


def _unknown_calls(peer: Peer, first: int, n: int) -> list[bytes]:
    """``n`` requests for an unknown method, each a header block not seen before."""
    return [
        fr.headers(sid, peer.block("/t.S/Nope", [("x-n", str(sid))]), end_stream=True)
        for sid in range(first, first + 2 * n, 2)
    ]


def test_header_blocks_that_open_no_call_use_up_the_decode_budget() -> None:
    """Distinct blocks for an unknown method, 1 unit each against a burst of 5: the core
    stops after the block that overdraws, keeps the rest, and says how long to wait."""
    work = _Work(_MS)
    peer = Peer(_BUDGET, work)
    assert peer.h2.pace(100.0) == 0
    peer.send(*_unknown_calls(peer, 1, 10))
    answered = [f.stream_id for f in peer.out() if f.type == fr.HEADERS]
    assert answered == [1, 3, 5, 7, 9, 11]  # 6 units spent: the 6th overdrew
    assert peer.h2.throttled
    assert peer.h2.pace(100.0) == 1 / 128  # 1 unit owed, 128 a second
    assert peer.h2.pace(100.0 + 1 / 256) == 1 / 256
    assert peer.h2.pace(100.0 + 1 / 128) == 0 and not peer.h2.throttled
    peer.send()  # on with the kept frames: one more block, and it overdraws again
    assert [f.stream_id for f in peer.out() if f.type == fr.HEADERS] == [13]
    assert peer.h2.throttled and peer.h2.pace(100.0 + 2 / 128) == 0
    peer.send()
    assert [f.stream_id for f in peer.out() if f.type == fr.HEADERS] == [15]


def test_frames_held_by_the_decode_budget_and_a_frame_cut_by_the_read_are_kept() -> None:
    work = _Work(_MS)
    peer = Peer(_BUDGET, work)
    peer.h2.pace(0.0)
    frames = _unknown_calls(peer, 1, 10)
    last = fr.headers(21, peer.block("/t.S/Nope", [("x-n", "last")]), end_stream=True)
    peer.send(*frames, last[:7])  # ten requests and the start of an eleventh
    answered = [f.stream_id for f in peer.out() if f.type == fr.HEADERS]
    now = 0.0
    while peer.h2.throttled:
        now += peer.h2.pace(now)
        assert peer.h2.pace(now) == 0
        peer.send()
        answered += [f.stream_id for f in peer.out() if f.type == fr.HEADERS]
    assert answered == list(range(1, 21, 2))
    peer.send(last[7:])
    assert [f.stream_id for f in peer.out() if f.type == fr.HEADERS] == [21]


def test_the_decode_budget_refills_up_to_the_burst() -> None:
    work = _Work(_MS)
    peer = Peer(_BUDGET, work)
    peer.h2.pace(0.0)
    peer.send(*_unknown_calls(peer, 1, 6))
    assert peer.h2.throttled
    assert peer.h2.pace(3600.0) == 0  # an hour later: the burst again, no more
    peer.out()
    peer.send(*_unknown_calls(peer, 13, 10))
    assert len([f for f in peer.out() if f.type == fr.HEADERS]) == 6


def test_calls_cost_no_decode_budget_up_to_their_allowance() -> None:
    """A client whose every block is new (grpc-go with a deadline indexes grpc-timeout)
    opens call after call without a pause; a block that costs more than a call's
    allowance pays the difference."""
    work = _Work(CALL_DECODE)
    peer = Peer(_BUDGET, work)
    peer.h2.pace(0.0)
    for i in range(200):
        sid = 1 + 2 * i
        block = peer.block(extra=[("grpc-timeout", f"{1000 + i}m")])
        [started] = peer.send(fr.headers(sid, block))
        assert isinstance(started, CallStarted)
        peer.h2.finish(started.stream, 0, "")
        peer.out()
    assert not peer.h2.throttled
    work.cost = CALL_DECODE + 3 * _MS
    [started] = peer.send(fr.headers(401, peer.block(extra=[("x-big", "1")])))
    assert not peer.h2.throttled  # 3 units of the 5
    peer.send(fr.headers(403, peer.block(extra=[("x-big", "2")])))
    assert peer.h2.throttled


def test_trailers_that_change_the_hpack_table_invalidate_cached_request_blocks() -> None:
    # a block of only indexed fields changes no table and is cached by its bytes; the
    # entries it names may go with any later block, the client's trailers included
    peer = Peer()
    peer.send(fr.headers(1, peer.block(STREAM)))  # adds its fields to the table
    repeat = peer.block(STREAM)  # the same fields, now all indexed
    [first] = peer.send(fr.headers(3, repeat))
    assert isinstance(first, CallStarted)
    # trailers that only empty the table (a size update to 0): repeat now names entries
    # that are gone, so decoding it again is a COMPRESSION_ERROR, not the cached call
    peer.send(fr.headers(3, b"\x20", end_stream=True))
    assert peer.goaway(fr.headers(5, repeat)) == E.COMPRESSION_ERROR


def test_cached_header_blocks_cost_no_decode_budget() -> None:
    work = _Work(_MS)
    peer = Peer(_BUDGET, work)
    peer.h2.pace(0.0)
    fields = request_headers("/t.S/Nope", [])  # literals without indexing: cached
    block = b"".join(hpack_literal(name.encode(), value.encode()) for name, value in fields)
    frames = [fr.headers(sid, block, end_stream=True) for sid in range(1, 2001, 2)]
    peer.send(*frames)
    assert len([f for f in peer.out() if f.type == fr.HEADERS]) == 1000
    assert work.calls == 2  # the first block measured, the others from the cache
    assert not peer.h2.throttled


def test_refused_streams_use_up_the_decode_budget() -> None:
    work = _Work(CALL_DECODE / 2)
    peer = Peer(_BUDGET.replace(max_concurrent_streams=1), work)
    peer.h2.pace(0.0)
    peer.send(fr.headers(1, peer.block(STREAM)))  # a call: within its allowance
    work.cost = _MS
    frames = [fr.headers(sid, peer.block(STREAM, [("x-n", str(sid))])) for sid in range(3, 23, 2)]
    peer.send(*frames)
    refused = [f.stream_id for f in peer.out() if f.type == fr.RST_STREAM]
    assert refused == [3, 5, 7, 9, 11, 13] and peer.h2.throttled


def test_without_a_cpu_clock_nothing_is_counted() -> None:
    peer = Peer(_BUDGET)
    peer.send(*_unknown_calls(peer, 1, 100))
    assert len([f for f in peer.out() if f.type == fr.HEADERS]) == 100
    assert not peer.h2.throttled


def test_keepalive_pings_are_answered() -> None:
    peer = Peer()
    peer.send(fr.ping(b"keepaliv"))
    [pong] = peer.out()
    assert pong.type == fr.PING and pong.flags & fr.ACK and pong.payload == b"keepaliv"


def _stream_1(peer: Peer) -> bytes:
    return fr.headers(1, peer.block(STREAM))


# (what the client sends after opening stream 1 for a client-streaming call, the error)
CONNECTION_ERRORS = {
    "window-update-overflow": (lambda p: fr.window_update(0, (1 << 31) - 1), E.FLOW_CONTROL_ERROR),
    "window-update-zero": (lambda p: fr.window_update(0, 0), E.PROTOCOL_ERROR),
    "initial-window-too-big": (
        lambda p: fr.settings({fr.Setting.INITIAL_WINDOW_SIZE: 1 << 31}),
        E.FLOW_CONTROL_ERROR,
    ),
    "max-frame-size-too-small": (
        lambda p: fr.settings({fr.Setting.MAX_FRAME_SIZE: 100}),
        E.PROTOCOL_ERROR,
    ),
    "data-on-stream-0": (lambda p: fr.data(0, b"x"), E.PROTOCOL_ERROR),
    "headers-on-stream-0": (lambda p: fr.headers(0, p.block()), E.PROTOCOL_ERROR),
    "rst-on-stream-0": (lambda p: fr.rst_stream(0, 0), E.PROTOCOL_ERROR),
    "priority-on-stream-0": (lambda p: fr.encode(fr.PRIORITY, 0, 0, b"\x00" * 5), E.PROTOCOL_ERROR),
    "ping-on-a-stream": (lambda p: fr.encode(fr.PING, 0, 1, b"\x00" * 8), E.PROTOCOL_ERROR),
    "settings-on-a-stream": (lambda p: fr.encode(fr.SETTINGS, 0, 1, b""), E.PROTOCOL_ERROR),
    "data-on-idle-stream": (lambda p: fr.data(9, b"x"), E.PROTOCOL_ERROR),
    "rst-on-idle-stream": (lambda p: fr.rst_stream(9, 8), E.PROTOCOL_ERROR),
    "window-update-on-idle-stream": (lambda p: fr.window_update(9, 1), E.PROTOCOL_ERROR),
    "even-stream-id": (lambda p: fr.headers(2, p.block()), E.PROTOCOL_ERROR),
    "decreasing-stream-id": (
        lambda p: fr.headers(7, p.block()) + fr.headers(5, p.block()),
        E.PROTOCOL_ERROR,
    ),
    "bad-padding": (
        lambda p: fr.encode(fr.DATA, fr.PADDED, 1, b"\x09abc"),
        E.PROTOCOL_ERROR,
    ),
    "frame-over-max-size": (
        lambda p: fr.HEADER.pack(((1 << 20) + 1) << 8 | fr.DATA, 0, 1),
        E.FRAME_SIZE_ERROR,
    ),
    "ping-wrong-length": (lambda p: fr.encode(fr.PING, 0, 0, b"1234"), E.FRAME_SIZE_ERROR),
    "settings-wrong-length": (lambda p: fr.encode(fr.SETTINGS, 0, 0, b"12345"), E.FRAME_SIZE_ERROR),
    "settings-ack-with-payload": (
        lambda p: fr.encode(fr.SETTINGS, fr.ACK, 0, b"\x00" * 6),
        E.FRAME_SIZE_ERROR,
    ),
    "rst-wrong-length": (lambda p: fr.encode(fr.RST_STREAM, 0, 1, b"123"), E.FRAME_SIZE_ERROR),
    "window-update-wrong-length": (
        lambda p: fr.encode(fr.WINDOW_UPDATE, 0, 0, b"123"),
        E.FRAME_SIZE_ERROR,
    ),
    "goaway-too-short": (lambda p: fr.encode(fr.GOAWAY, 0, 0, b"1234"), E.FRAME_SIZE_ERROR),
    "push-promise": (lambda p: fr.encode(fr.PUSH_PROMISE, 0, 1, b"\x00" * 4), E.PROTOCOL_ERROR),
    "continuation-without-headers": (
        lambda p: fr.encode(fr.CONTINUATION, fr.END_HEADERS, 1, b""),
        E.PROTOCOL_ERROR,
    ),
    "headers-interrupted": (
        lambda p: fr.encode(fr.HEADERS, 0, 3, p.block()) + fr.ping(b"12345678"),
        E.PROTOCOL_ERROR,
    ),
}


@pytest.mark.parametrize("case", sorted(CONNECTION_ERRORS))
def test_rfc9113_connection_errors(case: str) -> None:
    frames, code = CONNECTION_ERRORS[case]
    peer = Peer()
    peer.send(_stream_1(peer))
    assert peer.goaway(frames(peer)) == code


STREAM_ERRORS = {
    "window-update-overflow": (lambda p: fr.window_update(1, (1 << 31) - 1), E.FLOW_CONTROL_ERROR),
    "window-update-zero": (lambda p: fr.window_update(1, 0), E.PROTOCOL_ERROR),
    "data-after-end-stream": (
        lambda p: fr.data(1, b"", end_stream=True) + fr.data(1, b"x"),
        E.STREAM_CLOSED,
    ),
    "priority-wrong-length": (lambda p: fr.encode(fr.PRIORITY, 0, 1, b"123"), E.FRAME_SIZE_ERROR),
}


@pytest.mark.parametrize("case", sorted(STREAM_ERRORS))
def test_rfc9113_stream_errors(case: str) -> None:
    frames, code = STREAM_ERRORS[case]
    peer = Peer(Limits(stream_queue=1 << 30, max_receive_message=64 << 20))
    peer.send(_stream_1(peer))
    assert peer.reset(frames(peer)) == (1, code)


def test_data_beyond_the_connection_window_is_a_connection_error() -> None:
    peer = Peer(Limits(connection_window=65535, stream_window=1 << 20))
    peer.send(_stream_1(peer))
    assert peer.goaway(fr.data(1, message(b"x" * 70000))) == E.FLOW_CONTROL_ERROR


def test_data_beyond_a_stream_window_resets_the_stream() -> None:
    peer = Peer(Limits(stream_window=65535))
    peer.send(_stream_1(peer))
    assert peer.reset(fr.data(1, message(b"x" * 70000))) == (1, E.FLOW_CONTROL_ERROR)


def test_unknown_frame_types_are_ignored() -> None:
    peer = Peer()
    events = peer.send(fr.encode(0xAB, 0xFF, 0, b"whatever"), fr.encode(0x77, 0, 5, b"x" * 100))
    assert events == [] and peer.h2.state is ConnectionState.OPEN
    assert peer.out() == []


def test_a_bad_preface_and_a_missing_settings_frame_are_connection_errors() -> None:
    h2 = H2Connection(route=_route)
    h2.initiate()
    h2.data_to_send()
    [ended] = h2.receive(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert isinstance(ended, ConnectionEnded) and ended.code == E.PROTOCOL_ERROR
    h2 = H2Connection(route=_route)
    [ended] = h2.receive(fr.PREFACE + fr.ping(b"12345678"))
    assert isinstance(ended, ConnectionEnded) and ended.code == E.PROTOCOL_ERROR


def test_the_preface_may_arrive_in_pieces() -> None:
    h2 = H2Connection(route=_route)
    wire = fr.PREFACE + fr.settings({})
    for i in range(len(wire)):
        assert h2.receive(wire[i : i + 1]) == []
    assert h2.state is ConnectionState.OPEN


@pytest.mark.parametrize("read", [9, 10, 4099, 16393, 65536, 212992])
def test_frames_split_anywhere_across_reads_give_the_same_messages(read: int) -> None:
    """Frames cut at any point by the reads (inside a header, inside a payload, a frame
    larger than a read - grpcio sends 1 MiB messages as ~650 KiB frames - or many
    16 KiB frames per read, as grpc-go sends them) give the messages whole and in
    order, with a PING in between answered."""
    peer = Peer(Limits(max_receive_message=4 << 20))
    [started] = peer.send(fr.headers(1, peer.block(STREAM)))
    peer.out()
    big = bytes(range(256)) * 2600  # 650 KiB
    messages = [b"a", big, b"b" * 40000, big[:70000]]
    wire = fr.data(1, message(messages[0]))
    wire += fr.data(1, message(messages[1]))  # one frame larger than a read
    m = message(messages[2])
    wire += b"".join(fr.data(1, m[i : i + 16384]) for i in range(0, len(m), 16384))
    wire += fr.ping(b"12345678")
    wire += fr.data(1, message(messages[3]), end_stream=True)
    for i in range(0, len(wire), read):
        peer.h2.receive(wire[i : i + read])
    got = []
    while (msg := peer.h2.take(started.stream)) is not None:
        got.append(msg)
    assert got == messages
    assert started.stream.state is StreamState.HALF_CLOSED_REMOTE
    assert [f.payload for f in peer.out() if f.type == fr.PING] == [b"12345678"]


def test_a_data_frame_is_charged_at_its_header_and_its_payload_taken_as_it_comes() -> None:
    """A DATA frame larger than a read: the windows are charged for all of it when its
    header is in, its bytes go to the message as they come (nothing is allocated for the
    size a prefix merely declares), and a large message is queued as the one buffer it
    was received into, a small one as bytes."""
    peer = Peer(Limits(max_receive_message=4 << 20))
    [started] = peer.send(fr.headers(1, peer.block(STREAM)))
    stream = started.stream
    peer.out()
    big = bytes(range(256)) * 1024  # 256 KiB
    wire = fr.data(1, message(big) + message(b"small" * 10))
    recv, window = peer.h2.windows.recv, stream.recv_window
    assert peer.h2.receive(wire[:9]) == []
    assert peer.h2.windows.recv == recv - (len(wire) - 9)
    assert stream.recv_window == window - (len(wire) - 9)
    assert peer.h2.receive(wire[9:30]) == []  # the prefix and 16 bytes of the message
    assert len(stream.rbody) == 16 and sys.getsizeof(stream.rbody) < 1024
    events = peer.h2.receive(wire[30:-20])
    assert [type(e) for e in events] == [InputChanged]  # not at the frame's end only
    peer.h2.receive(wire[-20:])
    first, second = peer.h2.take(stream), peer.h2.take(stream)
    assert type(first) is bytearray and first == big
    assert type(second) is bytes and second == b"small" * 10
    assert stream.rbody == b"" and not stream.inside_message


def test_a_declared_length_past_the_window_is_refused_before_its_payload() -> None:
    peer = Peer(Limits(connection_window=65535, stream_window=1 << 20))
    peer.send(_stream_1(peer))
    assert peer.goaway(fr.HEADER.pack(70000 << 8 | fr.DATA, 0, 1)) == E.FLOW_CONTROL_ERROR


def test_a_prefix_cut_by_a_read_inside_a_frame_is_judged_before_the_bytes_come() -> None:
    peer = Peer(Limits(max_receive_message=1000))
    peer.send(fr.headers(1, peer.block(STREAM)))
    wire = fr.data(1, b"\x00\x00\x10\x00\x00" + b"x" * 3000)
    assert peer.h2.receive(wire[:12]) == []  # the header and 3 bytes of the prefix
    events = peer.h2.receive(wire[12:20])
    assert isinstance(events[-1], StreamEnded)
    assert peer.status(1)["grpc-status"] == str(codes.RESOURCE_EXHAUSTED)
    assert peer.h2.receive(wire[20:]) == []  # the rest of the frame is dropped
    windows = peer.h2.windows
    assert windows.recv + windows.credit == peer.h2.limits.connection_window
    assert peer.h2.state is ConnectionState.OPEN


def test_a_call_ended_while_a_frame_is_coming_drops_the_rest_and_returns_its_credit() -> None:
    peer = Peer(Limits(max_receive_message=4 << 20))
    [started] = peer.send(fr.headers(1, peer.block(STREAM)))
    stream = started.stream
    wire = fr.data(1, message(b"m" * (300 << 10)))
    peer.h2.receive(wire[: 100 << 10])
    assert stream.inside_message
    peer.h2.cancel(stream, codes.CANCELLED, "gone", 2)
    assert peer.h2.receive(wire[100 << 10 :]) == []
    assert stream.rbody == b"" and peer.h2.take(stream) is None
    windows = peer.h2.windows
    assert windows.recv + windows.credit == peer.h2.limits.connection_window
    # the next frame on the connection is read from its header as before
    assert [type(e) for e in peer.send(fr.headers(3, peer.block(STREAM)))] == [CallStarted]


@pytest.mark.parametrize("read", [1, 7, 9, 100, 16393, 65536, 262144])
def test_the_core_keeps_nothing_of_a_read_buffer_it_is_given(read: int) -> None:
    """The shell reads into one buffer again and again: whatever a read brought (a frame
    or message begun, header blocks, CONTINUATION, SETTINGS, PING, bytes the decode
    budget held back) is the same after the buffer is overwritten, and no view of the
    buffer is left (it could not be resized then)."""
    work = _Work(_MS)
    peer = Peer(Limits(max_receive_message=4 << 20), work)
    peer.h2.pace(0.0)
    block = peer.block(STREAM, [("x-big", "v" * 3000)])
    big = bytes(range(256)) * 1200
    wire = fr.encode(fr.HEADERS, 0, 1, block[:1000]) + fr.encode(
        fr.CONTINUATION, fr.END_HEADERS, 1, block[1000:]
    )
    wire += fr.settings({fr.Setting.MAX_FRAME_SIZE: 1 << 20}) + fr.ping(b"pingpong")
    wire += fr.data(1, message(b"a") + message(big)) + fr.data(1, message(big[:50000]))
    wire += b"".join(_unknown_calls(peer, 3, 8))  # past the decode budget: bytes held back
    wire += fr.data(1, message(b"z" * 70000), end_stream=True)
    buf = bytearray(read)
    events: list[Any] = []
    now = 0.0
    paused = 0
    for i in range(0, len(wire), read):
        piece = wire[i : i + read]
        buf[: len(piece)] = piece
        events += peer.h2.receive(memoryview(buf)[: len(piece)])
        buf[:] = b"\xee" * read
        buf.append(0)  # BufferError if a view of it were kept
        del buf[-1]
        while peer.h2.throttled:
            paused += 1
            now += peer.h2.pace(now)
            events += peer.h2.receive(b"")
    assert paused
    started = [e for e in events if isinstance(e, CallStarted)]
    assert [e.stream.id for e in started] == [1]
    assert started[0].stream.request.metadata[-1] == ("x-big", "v" * 3000)
    got = []
    while (msg := peer.h2.take(started[0].stream)) is not None:
        got.append(bytes(msg))
    assert got == [b"a", big, big[:50000], b"z" * 70000]
    out = peer.out()
    assert [f.payload for f in out if f.type == fr.PING] == [b"pingpong"]
    assert sorted(f.stream_id for f in out if f.type == fr.HEADERS) == list(range(3, 19, 2))
    assert peer.h2.state is ConnectionState.OPEN


def test_a_frame_too_large_is_refused_from_its_header_split_across_reads() -> None:
    peer = Peer()
    header = fr.HEADER.pack(((1 << 20) + 1) << 8 | fr.DATA, 0, 1)
    assert peer.h2.receive(header[:4]) == []
    assert peer.goaway(header[4:]) == E.FRAME_SIZE_ERROR


def test_streaming_input_is_signalled_and_taken_in_order() -> None:
    peer = Peer()
    [started] = peer.send(fr.headers(1, peer.block(STREAM)))
    stream = started.stream
    events = peer.send(fr.data(1, message(b"a") + message(b"bb")[:3]))
    assert [type(e) for e in events] == [InputChanged]
    peer.send(fr.data(1, message(b"bb")[3:], end_stream=True))
    assert peer.h2.take(stream) == b"a"
    assert peer.h2.take(stream) == b"bb"
    assert peer.h2.take(stream) is None
    assert stream.state is StreamState.HALF_CLOSED_REMOTE
