"""A native-engine server with a bytes-only test service, and a raw HTTP/2 client."""

from __future__ import annotations

import contextlib
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import grpc
import hpack

from contentd.wire import frames as fr
from contentd.wire.server import Server

__all__ = [
    "Probe",
    "RawClient",
    "held_call",
    "message",
    "probe_service",
    "request_headers",
    "serve",
]

SERVICE = "test.Probe"


@dataclass
class Probe:
    """What the test service's handlers saw."""

    metadata: list[tuple[tuple[str, str | bytes], ...]] = field(default_factory=list)
    callbacks: list[str] = field(default_factory=list)
    ended: threading.Event = field(default_factory=threading.Event)
    inactive: threading.Event = field(default_factory=threading.Event)
    started: threading.Event = field(default_factory=threading.Event)
    remaining: list[float | None] = field(default_factory=list)
    received: list[int] = field(default_factory=list)
    _noted: threading.Condition = field(default_factory=threading.Condition)

    def note(self, callback: str) -> None:
        """Record that ``callback`` ran, waking :meth:`wait_callback`."""
        with self._noted:
            self.callbacks.append(callback)
            self._noted.notify_all()

    def wait_callback(self, callback: str, timeout: float = 10) -> bool:
        """Wait until ``callback`` ran: a call's callbacks run after its handler ends,
        so ``ended`` being set says nothing about them."""
        with self._noted:
            return self._noted.wait_for(lambda: callback in self.callbacks, timeout)


def probe_service(probe: Probe) -> grpc.GenericRpcHandler[Any, Any]:
    """``/test.Probe/<method>`` with raw bytes in and out.

    * Unary: echoes the request; request ``b"abort"`` aborts NOT_FOUND, ``b"raise"`` raises,
      ``b"big:N"`` answers N bytes, ``b"sleep:S"`` sleeps S seconds (while active).
    * Stream: answers ``int(request)`` messages of 1 MiB (``i`` repeated).
    * Collect: client stream; answers the total size received.
    * Echo: bidi; echoes each message.
    * Hold: bidi; waits for requests until cancelled, recording callbacks.
    """

    def unary(request: bytes, context: grpc.ServicerContext) -> bytes:
        probe.metadata.append(tuple(context.invocation_metadata()))  # type: ignore[arg-type]
        probe.remaining.append(context.time_remaining())
        context.add_callback(lambda: probe.note("unary"))
        if request == b"abort":
            context.abort(grpc.StatusCode.NOT_FOUND, "no such thing: 100% ☃")
        if request == b"raise":
            raise ValueError("boom")
        if request == b"code":
            context.set_code(grpc.StatusCode.ALREADY_EXISTS)
            context.set_details("exists")
            return b""
        if request.startswith(b"big:"):
            return b"b" * int(request[4:])
        if request.startswith(b"sleep:"):
            probe.started.set()
            end = time.monotonic() + float(request[6:])
            while time.monotonic() < end and context.is_active():
                time.sleep(0.01)
            if not context.is_active():
                probe.inactive.set()
            return b"slept"
        return request

    def stream(request: bytes, context: grpc.ServicerContext) -> Iterator[bytes]:
        context.add_callback(lambda: probe.note("stream"))
        probe.started.set()
        try:
            for i in range(int(request)):
                yield bytes([i % 256]) * (1 << 20)
        finally:
            if not context.is_active():
                probe.inactive.set()
            probe.ended.set()

    def collect(requests: Iterator[bytes], context: grpc.ServicerContext) -> bytes:
        total = 0
        for request in requests:
            total += len(request)
            probe.received.append(len(request))
        return str(total).encode()

    def echo(requests: Iterator[bytes], context: grpc.ServicerContext) -> Iterator[bytes]:
        yield from requests

    def hold(requests: Iterator[bytes], context: grpc.ServicerContext) -> Iterator[bytes]:
        context.add_callback(lambda: probe.note("hold"))
        try:
            for request in requests:
                probe.started.set()
                yield request
        except grpc.RpcError:
            probe.note("request iterator raised")
            raise
        finally:
            if not context.is_active():
                probe.inactive.set()
            probe.ended.set()

    return grpc.method_handlers_generic_handler(
        SERVICE,
        {
            "Unary": grpc.unary_unary_rpc_method_handler(unary),
            "Stream": grpc.unary_stream_rpc_method_handler(stream),
            "Collect": grpc.stream_unary_rpc_method_handler(collect),
            "Echo": grpc.stream_stream_rpc_method_handler(echo),
            "Hold": grpc.stream_stream_rpc_method_handler(hold),
        },
    )


@contextlib.contextmanager
def serve(
    probe: Probe | None = None,
    *,
    options: list[tuple[str, Any]] | None = None,
    inline: dict[str, Callable[[Any], int | None]] | None = None,
    **server_args: Any,
) -> Iterator[tuple[Server, str]]:
    """A started native server with the probe service on a unix socket; stopped after.
    ``server_args`` go to :class:`Server`."""
    directory = tempfile.mkdtemp(prefix="cdw-", dir="/tmp")
    server_args.setdefault("unary_workers", 16)
    server_args.setdefault("max_workers", 16)
    server = Server(options=options or [], inline=inline, **server_args)
    server.add_generic_rpc_handlers([probe_service(probe or Probe())])
    path = f"{directory}/s.sock"
    server.add_insecure_port(f"unix:{path}")
    server.start()
    try:
        yield server, f"unix:{path}"
    finally:
        server.stop(None).wait(10)
        shutil.rmtree(directory, ignore_errors=True)


def held_call(channel: grpc.Channel) -> tuple[Any, threading.Event]:
    """A ``Hold`` call that has echoed its first message, and a gate: the client sends
    nothing more (and does not half-close) until the gate is set."""
    gate = threading.Event()

    def requests() -> Iterator[bytes]:
        yield b"first"
        gate.wait(30)

    call = channel.stream_stream(f"/{SERVICE}/Hold")(requests())
    assert next(call) == b"first"
    return call, gate


class RawClient:
    """HTTP/2 by hand, for what a grpcio client will not send."""

    def __init__(self, address: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(10)
        self.sock.connect(address.removeprefix("unix:"))
        self.encoder = hpack.Encoder()
        self.decoder = hpack.Decoder()
        self.buf = b""
        self.sock.sendall(fr.PREFACE + fr.settings({}))

    def request_block(self, path: str, extra: list[tuple[str, str]] | None = None) -> bytes:
        return bytes(self.encoder.encode(request_headers(path, extra or [])))

    def send(self, *frames: bytes) -> None:
        self.sock.sendall(b"".join(frames))

    def frame(self) -> fr.Frame:
        while True:
            frames, _ = fr.parse_frames(self.buf)
            if frames:
                first = frames[0]
                self.buf = self.buf[9 + len(first.payload) :]
                return first
            chunk = self.sock.recv(1 << 16)
            if not chunk:
                raise EOFError("connection closed")
            self.buf += chunk

    def until(self, ftype: int, stream_id: int | None = None) -> fr.Frame:
        while True:
            f = self.frame()
            if f.type == ftype and (stream_id is None or f.stream_id == stream_id):
                return f

    def headers(self, f: fr.Frame) -> dict[str, str]:
        return {k: v for k, v in self.decoder.decode(f.payload)}

    def close(self) -> None:
        self.sock.close()


def request_headers(path: str, extra: Iterable[tuple[str, str]] = ()) -> list[tuple[str, str]]:
    """A gRPC request's header fields for ``path``, then ``extra``."""
    return [
        (":method", "POST"),
        (":scheme", "http"),
        (":path", path),
        (":authority", "x"),
        ("content-type", "application/grpc"),
        ("te", "trailers"),
        *extra,
    ]


def message(payload: bytes, compressed: bool = False) -> bytes:
    return bytes([1 if compressed else 0]) + len(payload).to_bytes(4, "big") + payload
