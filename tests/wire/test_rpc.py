"""The native engine through a real grpcio client: the four RPC shapes, errors, limits."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import grpc
import pytest

from tests.wire.helpers import SERVICE, Probe, held_call, serve

_LIMITS = [
    ("grpc.max_receive_message_length", 64 << 20),
    ("grpc.max_send_message_length", 64 << 20),
]


def _unary(ch: grpc.Channel, method: str = "Unary") -> Any:
    return ch.unary_unary(f"/{SERVICE}/{method}")


def _wait(event: threading.Event, what: str) -> None:
    assert event.wait(10), what


def test_four_shapes() -> None:
    with serve() as (_, address), grpc.insecure_channel(address, options=_LIMITS) as ch:
        assert _unary(ch)(b"hello") == b"hello"
        assert _unary(ch)(b"") == b""
        streamed = list(ch.unary_stream(f"/{SERVICE}/Stream")(b"3"))
        assert [(len(m), m[:1]) for m in streamed] == [(1 << 20, bytes([i])) for i in range(3)]
        chunks = [b"a" * 10, b"b" * (3 << 20), b"", b"c"]
        assert ch.stream_unary(f"/{SERVICE}/Collect")(iter(chunks)) == str(3 * 2**20 + 11).encode()
        echoed = list(ch.stream_stream(f"/{SERVICE}/Echo")(iter(chunks)))
        assert echoed == chunks


def test_metadata_huffman_dynamic_table_and_binary() -> None:
    probe = Probe()
    with serve(probe) as (_, address), grpc.insecure_channel(address) as ch:
        for i in range(3):  # later calls refer to the dynamic table
            md = (
                ("containerd-namespace", f"ns-{i}"),
                ("containerd-lease", "lease with spaces and UPPER"),
                ("trace-bin", bytes(range(256))),
            )
            assert _unary(ch)(b"x", metadata=md) == b"x"
    for i, seen in enumerate(probe.metadata):
        d = dict(seen)
        assert d["containerd-namespace"] == f"ns-{i}"
        assert d["containerd-lease"] == "lease with spaces and UPPER"
        assert d["trace-bin"] == bytes(range(256))
        assert "user-agent" in d
        assert not any(k.startswith(":") or k in ("te", "content-type") for k in d)


def _error(call: Any, *args: Any) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as info:
        result = call(*args)
        if isinstance(result, Iterator):
            list(result)
    return info.value


def test_errors() -> None:
    probe = Probe()
    with serve(probe) as (_, address), grpc.insecure_channel(address, options=_LIMITS) as ch:
        err = _error(_unary(ch), b"abort")
        assert err.code() == grpc.StatusCode.NOT_FOUND  # type: ignore[attr-defined]
        assert err.details() == "no such thing: 100% ☃"  # type: ignore[attr-defined]
        err = _error(_unary(ch), b"raise")
        assert err.code() == grpc.StatusCode.UNKNOWN  # type: ignore[attr-defined]
        assert err.details() == "Exception calling application: boom"  # type: ignore[attr-defined]
        err = _error(_unary(ch), b"code")
        assert err.code() == grpc.StatusCode.ALREADY_EXISTS  # type: ignore[attr-defined]
        assert err.details() == "exists"  # type: ignore[attr-defined]
        err = _error(_unary(ch, "Nope"), b"")
        assert err.code() == grpc.StatusCode.UNIMPLEMENTED  # type: ignore[attr-defined]
        assert err.details() == f"unknown method Nope for service {SERVICE}"  # type: ignore[attr-defined]
        err = _error(ch.unary_unary("/no.Such/Thing"), b"")
        assert err.code() == grpc.StatusCode.UNIMPLEMENTED  # type: ignore[attr-defined]
        assert err.details() == "unknown service no.Such"  # type: ignore[attr-defined]
        err = _error(ch.stream_stream("/no.Such/Stream"), iter([b"a", b"b"]))
        assert err.code() == grpc.StatusCode.UNIMPLEMENTED  # type: ignore[attr-defined]
        # the connection is still good after all that
        assert _unary(ch)(b"ok") == b"ok"
    assert probe.callbacks.count("unary") == 4


def test_message_too_large_both_ways() -> None:
    options = [
        ("grpc.max_receive_message_length", 1 << 20),
        ("grpc.max_send_message_length", 1 << 20),
    ]
    with (
        serve(options=options) as (_, address),
        grpc.insecure_channel(address, options=_LIMITS) as ch,
    ):
        err = _error(_unary(ch), b"x" * ((1 << 20) + 1))
        assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED  # type: ignore[attr-defined]
        assert "received message larger than max" in err.details()  # type: ignore[attr-defined]
        err = _error(ch.stream_unary(f"/{SERVICE}/Collect"), iter([b"a", b"y" * (2 << 20)]))
        assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED  # type: ignore[attr-defined]
        err = _error(_unary(ch), f"big:{(1 << 20) + 1}".encode())
        assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED  # type: ignore[attr-defined]
        assert "trying to send message larger than max" in err.details()  # type: ignore[attr-defined]
        assert len(_unary(ch)(f"big:{1 << 20}".encode())) == 1 << 20


def test_deadline() -> None:
    probe = Probe()
    with serve(probe) as (_, address), grpc.insecure_channel(address) as ch:
        err = _error(lambda r: _unary(ch)(r, timeout=0.3), b"sleep:30")
        assert err.code() == grpc.StatusCode.DEADLINE_EXCEEDED  # type: ignore[attr-defined]
        _wait(probe.inactive, "the handler sees the call inactive after its deadline")
        assert _unary(ch)(b"x", timeout=30) == b"x"
    remaining = [r for r in probe.remaining if r is not None]
    assert remaining and all(0 < r <= 31 for r in remaining)  # grpcio rounds the timeout up
    assert probe.remaining[0] is not None and probe.remaining[0] <= 0.5


def test_client_cancels_unary_and_server_stream() -> None:
    probe = Probe()
    with serve(probe) as (_, address), grpc.insecure_channel(address) as ch:
        future = _unary(ch).future(b"sleep:30")
        _wait(probe.started, "handler started")
        future.cancel()
        _wait(probe.inactive, "unary handler sees the cancel")
        probe.started.clear()
        probe.inactive.clear()
        # a big stream against a client that stops reading, then cancels
        call = ch.unary_stream(f"/{SERVICE}/Stream")(b"1000")
        next(call)
        call.cancel()
        _wait(probe.ended, "the response generator is closed")
        assert probe.inactive.is_set()
        assert probe.wait_callback("stream")


def test_client_cancels_bidi_stream_waiting_for_input() -> None:
    probe = Probe()
    with serve(probe) as (_, address), grpc.insecure_channel(address) as ch:
        call, gate = held_call(ch)
        call.cancel()
        gate.set()
        _wait(probe.ended, "the handler ends")
        assert probe.inactive.is_set()
        assert "request iterator raised" in probe.callbacks
        assert probe.wait_callback("hold")


def test_a_start_at_input_call_gets_its_worker_at_its_first_message() -> None:
    """Its handler runs once a request (or the half-close) is there, and then as any."""
    entered: list[bool] = []

    def first(requests: Iterator[bytes], context: grpc.ServicerContext) -> Iterator[bytes]:
        entered.append(True)
        yield from requests

    service = grpc.method_handlers_generic_handler(
        "test.First", {"Echo": grpc.stream_stream_rpc_method_handler(first)}
    )
    path = "/test.First/Echo"
    gate = threading.Event()

    def requests() -> Iterator[bytes]:
        gate.wait(30)
        yield b"one"
        yield b"two"

    with serve(start_at_input={path}) as (server, address), grpc.insecure_channel(address) as ch:
        server.add_generic_rpc_handlers([service])
        ch.unary_unary(f"/{SERVICE}/Unary")(b"ready")  # the connection is up
        call = ch.stream_stream(path)(requests())
        time.sleep(0.3)  # the call's headers reach the server: no worker for it yet
        assert entered == []
        gate.set()
        assert list(call) == [b"one", b"two"]
        assert entered == [True]
        assert list(ch.stream_stream(path)(iter(()))) == []  # a half-close alone starts it
        assert entered == [True, True]


def test_flow_control_small_client_window() -> None:
    """8 MiB each way through a client that keeps its windows small: no deadlock."""
    small = [
        *_LIMITS,
        ("grpc.http2.lookahead_bytes", 1024),
        ("grpc.http2.bdp_probe", 0),
        ("grpc.http2.max_frame_size", 16384),
    ]
    with serve() as (_, address), grpc.insecure_channel(address, options=small) as ch:
        got = list(ch.unary_stream(f"/{SERVICE}/Stream")(b"8"))
        assert len(got) == 8 and all(len(m) == 1 << 20 for m in got)
        chunks = [bytes([i]) * (1 << 20) for i in range(8)]
        assert list(ch.stream_stream(f"/{SERVICE}/Echo")(iter(chunks))) == chunks
        # several big streams at once on one connection
        results: list[int] = []

        def read() -> None:
            results.append(sum(len(m) for m in ch.unary_stream(f"/{SERVICE}/Stream")(b"4")))

        threads = [threading.Thread(target=read) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert results == [4 << 20] * 4


def test_inline_calls_run_on_the_reader_thread() -> None:
    names: list[str] = []

    def policy(request: Any) -> int | None:
        names.append(threading.current_thread().name)
        return 1 << 10 if request != b"pool" else None

    with (
        serve(inline={f"/{SERVICE}/Unary": policy}) as (_, address),
        grpc.insecure_channel(address) as ch,
    ):
        assert _unary(ch)(b"inline") == b"inline"
        assert _unary(ch)(b"pool") == b"pool"
        err = _error(_unary(ch), b"abort")
        assert err.code() == grpc.StatusCode.NOT_FOUND  # type: ignore[attr-defined]
        # a response bigger than the window the policy allowed for still arrives
        assert len(_unary(ch)(b"big:300000")) == 300000
    assert all("-conn-" in n for n in names)


def test_inline_calls_end_as_pool_calls_do() -> None:
    """An inline call's output and status go out in one piece, with the pool's semantics:
    statuses the handler set, exceptions, termination callbacks, a reply over the send
    limit, and messages streamed before a failure arriving before its status."""

    probe = Probe()
    everything: dict[str, Any] = {
        f"/{SERVICE}/Unary": lambda request: 1 << 20,
        f"/{SERVICE}/Stream": lambda request: 4 << 20,
        "/test.Partial/Stream": lambda request: 1 << 20,
    }

    def partial(request: bytes, context: grpc.ServicerContext) -> Iterator[bytes]:
        yield b"first"
        if request == b"abort":
            context.abort(grpc.StatusCode.DATA_LOSS, "corrupt")
        raise ValueError("half way")

    options = [("grpc.max_send_message_length", 2 << 20)]
    with serve(probe, inline=everything, options=options) as (server, address):
        server.add_generic_rpc_handlers(
            [
                grpc.method_handlers_generic_handler(
                    "test.Partial", {"Stream": grpc.unary_stream_rpc_method_handler(partial)}
                )
            ]
        )
        with grpc.insecure_channel(address, options=_LIMITS) as ch:
            assert _unary(ch)(b"inline") == b"inline"
            assert probe.wait_callback("unary")
            err = _error(_unary(ch), b"raise")
            assert err.code() == grpc.StatusCode.UNKNOWN  # type: ignore[attr-defined]
            assert err.details() == "Exception calling application: boom"  # type: ignore[attr-defined]
            with pytest.raises(grpc.RpcError) as info:
                _unary(ch).with_call(b"code")
            assert info.value.code() == grpc.StatusCode.ALREADY_EXISTS  # type: ignore[attr-defined]
            assert info.value.details() == "exists"  # type: ignore[attr-defined]
            err = _error(_unary(ch), b"big:3000000")  # over the 2 MiB send limit
            assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED  # type: ignore[attr-defined]
            streamed = list(ch.unary_stream(f"/{SERVICE}/Stream")(b"2"))
            assert [m[:1] for m in streamed] == [b"\x00", b"\x01"]
            assert probe.wait_callback("stream")
            for request, code, details in (
                (b"raise", grpc.StatusCode.UNKNOWN, "Exception iterating responses: half way"),
                (b"abort", grpc.StatusCode.DATA_LOSS, "corrupt"),
            ):
                got: list[bytes] = []
                with pytest.raises(grpc.RpcError) as info:
                    for m in ch.unary_stream("/test.Partial/Stream")(request):
                        got.append(m)
                assert got == [b"first"]
                assert info.value.code() == code  # type: ignore[attr-defined]
                assert info.value.details() == details  # type: ignore[attr-defined]


def test_an_inline_unary_shortcut_answers_or_declines_to_the_handler(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A handler's ``inline_unary`` answers the inline calls it takes (status OK, one
    message, no servicer context); what it declines (None) or fails on is the handler's,
    with the handler's status; calls the policy sends to the pool never reach it; and
    grpcio serves the same handler without it."""
    from contentd.wire.handlers import inline_unary_handler

    seen: list[tuple[bytes, dict[str, Any]]] = []

    def handler(request: bytes, context: grpc.ServicerContext) -> Iterator[bytes]:
        if request == b"missing":
            context.abort(grpc.StatusCode.NOT_FOUND, "no such thing")
        yield b"handler:" + request

    def shortcut(request: bytes, metadata: Any) -> bytes | None:
        seen.append((request, dict(metadata)))
        if request == b"boom":
            raise RuntimeError("shortcut bug")
        return None if request in (b"missing", b"decline") else b"shortcut:" + request

    methods = {
        "Read": inline_unary_handler(grpc.unary_stream_rpc_method_handler(handler), shortcut)
    }
    generic = grpc.method_handlers_generic_handler("test.Fast", methods)
    inline = {"/test.Fast/Read": lambda request: None if request == b"pool" else 1 << 10}
    with serve(inline=inline) as (server, address):
        server.add_generic_rpc_handlers([generic])
        with grpc.insecure_channel(address) as ch:
            read = ch.unary_stream("/test.Fast/Read")
            md = (("containerd-namespace", "ns"),)
            assert list(read(b"a", metadata=md)) == [b"shortcut:a"]
            assert list(read(b"decline")) == [b"handler:decline"]
            assert list(read(b"pool")) == [b"handler:pool"]
            err = _error(read, b"missing")
            assert err.code() == grpc.StatusCode.NOT_FOUND  # type: ignore[attr-defined]
            assert err.details() == "no such thing"  # type: ignore[attr-defined]
            with caplog.at_level("ERROR", "contentd.wire"):
                assert list(read(b"boom")) == [b"handler:boom"]
            assert "shortcut failed" in caplog.text
    assert [r for r, _ in seen] == [b"a", b"decline", b"missing", b"boom"]
    assert seen[0][1]["containerd-namespace"] == "ns"

    with pytest.raises(ValueError, match="unary-request"):
        inline_unary_handler(grpc.stream_stream_rpc_method_handler(handler), shortcut)

    # grpcio runs the handler and never the shortcut
    seen.clear()
    from concurrent import futures

    pool = futures.ThreadPoolExecutor(2)
    plain = grpc.server(pool)
    plain.add_generic_rpc_handlers([generic])
    port = plain.add_insecure_port("127.0.0.1:0")
    plain.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
            assert list(ch.unary_stream("/test.Fast/Read")(b"a")) == [b"handler:a"]
    finally:
        plain.stop(None).wait(10)
        pool.shutdown()
    assert seen == []


def test_tcp_loopback() -> None:
    from contentd.wire.server import Server
    from tests.wire.helpers import probe_service

    server = Server(max_workers=4)
    server.add_generic_rpc_handlers([probe_service(Probe())])
    port = server.add_insecure_port("127.0.0.1:0")
    assert port > 0
    server.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
            assert _unary(ch)(b"tcp") == b"tcp"
        with pytest.raises(OSError):
            Server().add_insecure_port(f"127.0.0.1:{port}")  # one server per port
    finally:
        server.stop(None).wait(10)
