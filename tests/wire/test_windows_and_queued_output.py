"""Flow-control windows, queued output and call ends on a live socket (a raw HTTP/2 client)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import grpc
import pytest

from contentd.wire import frames as fr
from contentd.wire.metadata import timeout_seconds
from contentd.wire.server import Server
from tests.wire.helpers import Probe, RawClient, message, serve


class Tracker:
    """Reads every frame the server sends (in the background) and keeps the windows
    the server grants this client."""

    def __init__(self, client: RawClient) -> None:
        self.client = client
        self.frames: list[fr.Frame] = []
        self.conn_window = 65535
        self.initial = 65535
        self.stream_windows: dict[int, int] = {}
        self.lock = threading.Lock()
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        try:
            while True:
                f = self.client.frame()
                with self.lock:
                    self.frames.append(f)
                    if f.type == fr.WINDOW_UPDATE:
                        increment = int.from_bytes(f.payload, "big")
                        if f.stream_id == 0:
                            self.conn_window += increment
                        else:
                            sid = f.stream_id
                            self.stream_windows[sid] = (
                                self.stream_windows.get(sid, self.initial) + increment
                            )
                    elif f.type == fr.SETTINGS and not f.flags & fr.ACK:
                        for key, value in fr.parse_settings(f.payload):
                            if key == fr.Setting.INITIAL_WINDOW_SIZE:
                                self.initial = value
        except (OSError, EOFError):
            return

    def sent(self, sid: int, n: int) -> None:
        with self.lock:
            self.conn_window -= n
            self.stream_windows[sid] = self.stream_windows.get(sid, self.initial) - n

    def available(self, sid: int) -> int:
        with self.lock:
            return min(self.conn_window, self.stream_windows.get(sid, self.initial))


def _connection(server: Server) -> Any:
    [conn] = list(server._conns)  # type: ignore[attr-defined]
    return conn


def test_cancelled_uploads_do_not_eat_the_connection_window() -> None:
    """A stream whose handler stops taking messages has its own window held back, never
    the connection's: cancelling such uploads used to leak ~4 MiB of it each time."""
    with serve(Probe()) as (_, addr):
        client = RawClient(addr)
        tracker = Tracker(client)
        time.sleep(0.2)
        chunk = message(b"x" * (64 << 10))
        for round_ in range(6):
            sid = 1 + 2 * round_
            client.send(fr.headers(sid, client.request_block("/test.Probe/Hold")))
            idle_since = time.monotonic()
            while time.monotonic() - idle_since < 0.3:  # until the window stays shut
                if tracker.available(sid) >= len(chunk):
                    client.send(fr.data(sid, chunk))
                    tracker.sent(sid, len(chunk))
                    idle_since = time.monotonic()
                else:
                    time.sleep(0.02)
            client.send(fr.rst_stream(sid, fr.ErrorCode.CANCEL))
        time.sleep(0.3)
        assert tracker.conn_window >= 8 << 20
        client.close()


def _stream_with_output_queued(server: Server, probe: Probe, client: RawClient) -> Any:
    """Stream/1 answers 1 MiB, of which the client lets ~900 KiB through: the handler
    ends with the rest of the data and the trailers still queued."""
    client.send(
        fr.headers(1, client.request_block("/test.Probe/Stream")),
        fr.data(1, message(b"1"), end_stream=True),
        fr.window_update(1, (900 << 10) - 65535),
        fr.window_update(0, (900 << 10) - 65535),
    )
    assert probe.ended.wait(5)
    conn = _connection(server)
    deadline = time.monotonic() + 5
    while conn.h2.streams and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not conn.h2.streams and conn.h2.output_streams == [1]
    return conn


def test_reset_of_an_ended_call_drops_its_queued_output() -> None:
    probe = Probe()
    with serve(probe) as (server, addr):
        client = RawClient(addr)
        Tracker(client)
        conn = _stream_with_output_queued(server, probe, client)
        client.send(fr.rst_stream(1, fr.ErrorCode.CANCEL))
        deadline = time.monotonic() + 5
        while conn.h2.output_streams and time.monotonic() < deadline:
            time.sleep(0.01)
        assert not conn.h2.output_streams and conn.h2.pending_out == 0
        client.close()


def test_graceful_stop_waits_for_queued_output() -> None:
    probe = Probe()
    with serve(probe) as (server, addr):
        client = RawClient(addr)
        tracker = Tracker(client)
        _stream_with_output_queued(server, probe, client)
        server.stop(5)
        time.sleep(0.3)
        client.send(fr.window_update(1, 1 << 20), fr.window_update(0, 1 << 20))
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            with tracker.lock:
                if any(
                    f.type == fr.HEADERS and f.flags & fr.END_STREAM and f.stream_id == 1
                    for f in tracker.frames
                ):
                    break
            time.sleep(0.02)
        else:
            pytest.fail("the trailers never came: stop closed the connection with output queued")


def test_cancelled_stream_hands_no_more_queued_messages() -> None:
    """After the client's RST_STREAM the request iterator raises; it used to hand the
    handler every message still queued first (each with is_active() False).

    The handler holds its first message until the reset has ended the call, so the
    other 19 are queued when it asks for the next one, however slowly the pool starts
    the handler or the reader gets to the reset."""
    taken: list[bytes] = []
    seen: list[str] = []
    first = threading.Event()
    ended = threading.Event()
    done = threading.Event()

    def slow(requests: Iterator[bytes], context: grpc.ServicerContext) -> bytes:
        context.add_callback(ended.set)
        try:
            for request in requests:
                taken.append(request)
                first.set()
                assert ended.wait(10)
        except grpc.RpcError:
            seen.append("raised")
            raise
        finally:
            done.set()
        return b"ok"

    handler = grpc.method_handlers_generic_handler(
        "t.S", {"Slow": grpc.stream_unary_rpc_method_handler(slow)}
    )
    with serve() as (server, addr):
        server.add_generic_rpc_handlers([handler])
        client = RawClient(addr)
        client.send(
            fr.headers(1, client.request_block("/t.S/Slow")),
            *[fr.data(1, message(b"m%d" % i)) for i in range(20)],
        )
        assert first.wait(10)
        client.send(fr.rst_stream(1, fr.ErrorCode.CANCEL))
        assert done.wait(10)
        assert taken == [b"m0"]
        assert seen == ["raised"]
        client.close()


def test_stream_reset_before_its_worker_starts_runs_no_handler(monkeypatch: Any) -> None:
    """A client-streaming call reset before the pool gets to it ends there: its handler
    never runs, and the connection is left with no call and serves the next one."""
    import contentd.wire.connection as connection

    run = connection.run
    submitted = threading.Event()
    reset = threading.Event()
    skipped: list[bool] = []

    def late(call: Any, *args: Any, **kwargs: Any) -> None:
        if call.path == "/t.S/Slow":  # the pool starts this call only after the reset
            submitted.set()
            assert reset.wait(10)
            skipped.append(not call.active)
        run(call, *args, **kwargs)

    monkeypatch.setattr(connection, "run", late)
    calls: list[str] = []

    def slow(requests: Iterator[bytes], context: grpc.ServicerContext) -> bytes:
        calls.append("Slow")
        for _ in requests:
            pass
        return b"ok"

    handler = grpc.method_handlers_generic_handler(
        "t.S", {"Slow": grpc.stream_unary_rpc_method_handler(slow)}
    )
    with serve(Probe()) as (server, addr):
        server.add_generic_rpc_handlers([handler])
        client = RawClient(addr)
        client.send(
            fr.headers(1, client.request_block("/t.S/Slow")),
            fr.data(1, message(b"m0")),
        )
        assert submitted.wait(10)
        client.send(fr.rst_stream(1, fr.ErrorCode.CANCEL))
        deadline = time.monotonic() + 10
        while not server._conns and time.monotonic() < deadline:  # type: ignore[attr-defined]
            time.sleep(0.01)
        conn = _connection(server)
        while conn.h2.last_stream_id != 1 or not conn.idle:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        # the core ended the call on the reset, before any worker ran
        reset.set()
        deadline = time.monotonic() + 10
        while not skipped and time.monotonic() < deadline:
            time.sleep(0.01)
        assert skipped == [True] and calls == []
        client.send(
            fr.headers(3, client.request_block("/test.Probe/Unary")),
            fr.data(3, message(b"next"), end_stream=True),
        )
        assert client.until(fr.DATA, 3).payload == message(b"next")
        client.close()


def test_pipelined_big_unary_calls_queue_bounded_output() -> None:
    """A client that pipelines many 1 MiB unary calls and reads nothing: inline calls stop
    when the queued output would exceed the window, workers wait for window."""
    inline = {"/test.Probe/Unary": lambda request: (1 << 20) + 1024}
    probe = Probe()
    with serve(probe, inline=inline) as (server, addr):
        client = RawClient(addr)
        client.send(
            fr.settings({fr.Setting.INITIAL_WINDOW_SIZE: 4 << 20}),
            fr.window_update(0, (16 << 20) - 65535),
        )
        time.sleep(0.2)
        frames = []
        for i in range(120):
            sid = 1 + 2 * i
            frames.append(fr.headers(sid, client.request_block("/test.Probe/Unary")))
            frames.append(fr.data(sid, message(b"big:1048576"), end_stream=True))
        client.send(*frames)
        conn = _connection(server)
        executor = server.unary_executor  # the unary calls' pool (16 in the test server)

        def settled() -> bool:
            """Every call was read and either answered or queued, and each of the 16
            workers is stopped: waiting for window, or the one blocked writing."""
            with conn.lock:
                waiting = conn._waiting  # workers waiting for output room
                return (
                    conn.h2.last_stream_id == 239
                    and len(probe.metadata) + executor._work_queue.qsize() == 120
                    and waiting + conn._wlock.locked() >= 16
                )

        deadline = time.monotonic() + 30
        while not settled() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert settled()
        # the connection window (16 MiB) plus one reply per worker (16 in the test server)
        assert conn.h2.pending_out <= (16 + 16 + 2) << 20
        client.close()


def test_abandoned_call_with_unwritten_headers_ends_trailers_only() -> None:
    with serve(Probe()) as (server, addr):
        client = RawClient(addr)
        client.send(fr.headers(1, client.request_block("/test.Probe/Hold")))
        time.sleep(0.3)
        conn = _connection(server)
        with conn._wlock:  # another thread is writing: the response headers stay queued
            client.send(fr.data(1, message(b"x")))
            [stream] = list(conn.h2.streams.values())
            deadline = time.monotonic() + 5
            while not stream.out and time.monotonic() < deadline:
                time.sleep(0.01)
            assert stream.out
            stream.app.expire()
        conn._flush()
        f = client.until(fr.HEADERS, 1)
        headers = client.headers(f)
        assert f.flags & fr.END_STREAM
        assert headers[":status"] == "200"
        assert headers["content-type"] == "application/grpc"
        assert headers["grpc-status"] == str(grpc.StatusCode.DEADLINE_EXCEEDED.value[0])
        client.close()


@pytest.mark.parametrize("value", ["\xb2S", "１S", "12", "S", "123456789S"])
def test_malformed_timeouts_are_ignored(value: str) -> None:
    assert timeout_seconds(value) is None


def test_well_formed_timeout() -> None:
    assert timeout_seconds("250m") == pytest.approx(0.25)


def test_a_larger_initial_window_counts_once_for_a_call_with_output_queued() -> None:
    """SETTINGS_INITIAL_WINDOW_SIZE grows every open stream's window by the difference,
    once: a call with output queued used to get it twice, and grpc-go then failed the
    stream ("received N-bytes data exceeding the limit")."""
    probe = Probe()
    with serve(probe) as (_, addr):
        client = RawClient(addr)
        tracker = Tracker(client)
        client.send(
            fr.window_update(0, (16 << 20) - 65535),
            fr.headers(1, client.request_block("/test.Probe/Stream")),
            fr.data(1, message(b"1"), end_stream=True),
        )

        def data_bytes() -> int:
            with tracker.lock:
                return sum(
                    len(f.payload) for f in tracker.frames if f.type == fr.DATA and f.stream_id == 1
                )

        deadline = time.monotonic() + 5
        while data_bytes() < 65535 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert data_bytes() == 65535  # the default stream window, no more
        client.send(fr.settings({fr.Setting.INITIAL_WINDOW_SIZE: 200_000}))
        deadline = time.monotonic() + 5
        while data_bytes() < 200_000 and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.2)  # anything beyond the new window would have come by now
        assert data_bytes() == 200_000
        client.close()


def test_streams_waiting_for_room_make_nothing_once_the_connection_is_lost() -> None:
    """Many streaming calls on a connection whose peer grants no window: the first few
    queue a message each, the rest wait for room. When the peer goes away none of the
    waiting handlers may make another message: each used to be resumed once as its call
    was cancelled, all at the same moment (a 1 MiB read each: +123 MB in the attack
    battery's "data dribble" case)."""
    made: list[int] = []
    lock = threading.Lock()

    def chunks(request: bytes, context: grpc.ServicerContext) -> Iterator[bytes]:
        for _ in range(4):
            with lock:
                made.append(1)
            yield b"x" * (1 << 20)

    handler = grpc.method_handlers_generic_handler(
        "t.S", {"Chunks": grpc.unary_stream_rpc_method_handler(chunks)}
    )
    with serve(max_workers=40) as (server, addr):
        server.add_generic_rpc_handlers([handler])
        client = RawClient(addr)
        client.send(fr.settings({fr.Setting.INITIAL_WINDOW_SIZE: 1}))
        block = client.request_block("/t.S/Chunks")
        client.send(
            *[
                fr.headers(1 + 2 * i, block) + fr.data(1 + 2 * i, message(b""), end_stream=True)
                for i in range(30)
            ]
        )
        deadline = time.monotonic() + 30
        while not server._conns and time.monotonic() < deadline:  # type: ignore[attr-defined]
            time.sleep(0.01)
        conn = _connection(server)

        def settled() -> bool:
            with conn.lock:
                return conn._waiting >= 30

        while not settled() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert settled()
        with lock:
            before = len(made)
        assert before < 30  # the connection's send buffer (8 MiB) holds a few
        client.close()
        deadline = time.monotonic() + 10
        while not conn.wait_closed(0.05) and time.monotonic() < deadline:
            pass
        time.sleep(0.3)  # give any resumed handler time to show
        with lock:
            assert len(made) == before


class _Trickle:
    """A socket whose ``sendmsg`` takes at most ``step`` bytes a call (a signal, a full
    buffer): what it was handed, in order, is what it got."""

    def __init__(self, step: int) -> None:
        self.step = step
        self.got = bytearray()
        self.calls = 0

    def sendmsg(self, bufs: Any) -> int:
        self.calls += 1
        assert len(bufs) <= 512
        left = self.step
        for b in bufs:
            part = memoryview(b)[:left]
            self.got += part
            left -= len(part)
            if not left:
                break
        return self.step - left

    def sendall(self, data: Any) -> None:
        self.got += bytes(data)


@pytest.mark.parametrize("step", [1 << 30, 16384, 4099, 5])
@pytest.mark.parametrize("count", [3, 60, 700])
def test_scatter_gather_writes_go_on_after_a_partial_send(step: int, count: int) -> None:
    """Output over the join limit is written with sendmsg as it is (no joined copy); a
    send that took part of it goes on where it stopped, empty buffers and all, in calls
    of at most IOV_MAX buffers."""
    from types import SimpleNamespace

    from contentd.wire.connection import Connection
    from contentd.wire.limits import Limits

    hooks = SimpleNamespace(limits=Limits(), route=lambda request: None)
    sock = _Trickle(step)
    conn = Connection(hooks, sock, "peer")  # type: ignore[arg-type]
    if step == 5:
        count = min(count, 60)  # ~70 KiB five bytes at a time
    bufs: list[Any] = []
    for i in range(count):
        bufs += [bytes([i % 256]) * 9, b"", memoryview(bytes([i % 7]) * (100 + i * 37))]
    want = b"".join(bytes(b) for b in bufs)
    conn._write(bufs, len(want) + 27)  # the core's total may count more than is sent
    assert bytes(sock.got) == want
    if len(want) > 8 << 10 and step >= len(want) and len(bufs) <= 512:
        assert sock.calls == 1  # all at once, as it is
