"""Content service on the native engine under concurrency: Writes, Reads, cancels at once."""

from __future__ import annotations

import hashlib
import random
import shutil
import tempfile
import threading
from pathlib import Path

import grpc

from contentd.api._pb.containerd.services.content.v1 import content_pb2 as pb
from contentd.api._pb.containerd.services.content.v1 import content_pb2_grpc as pb_grpc
from contentd.api.content import ContentService, SingleStoreResolver
from contentd.daemon.engines import build_server
from tests.api.servers import local_store

_OPTS = [("grpc.max_receive_message_length", 64 << 20), ("grpc.max_send_message_length", 64 << 20)]
_SMALL_WINDOW = [("grpc.http2.lookahead_bytes", 1024), ("grpc.http2.bdp_probe", 0)]


def _client(address: str, seed: int, errors: list[object]) -> None:
    try:
        _calls(address, seed, errors)
    except Exception as err:  # a failed call fails the test, not just the thread
        errors.append(("raised", seed, repr(err)))


def _calls(address: str, seed: int, errors: list[object]) -> None:
    rnd = random.Random(seed)
    options = _OPTS + (_SMALL_WINDOW if seed % 2 else [])
    with grpc.insecure_channel(address, options=options) as ch:
        stub = pb_grpc.ContentStub(ch)
        for j in range(4):
            data = rnd.randbytes(rnd.choice([10, 40000, 1 << 20, (2 << 20) + 3]))
            digest = "sha256:" + hashlib.sha256(data).hexdigest()
            ref = f"c{seed}-{j}"
            requests = [
                pb.WriteContentRequest(
                    action=pb.WRITE, ref=ref, offset=off, data=data[off : off + (1 << 20)]
                )
                for off in range(0, len(data), 1 << 20)
            ]
            requests.append(
                pb.WriteContentRequest(
                    action=pb.COMMIT, ref=ref, offset=len(data), total=len(data), expected=digest
                )
            )
            if j == 0:  # a Write cancelled after its first response
                call = stub.Write(iter(requests))
                next(call)
                call.cancel()
                continue
            list(stub.Write(iter(requests)))
            whole = b"".join(r.data for r in stub.Read(pb.ReadContentRequest(digest=digest)))
            if whole != data:
                errors.append(("read", seed, j))
            for _ in range(10):
                off = rnd.randrange(len(data))
                size = rnd.choice([1, 32 << 10, 1 << 20])
                req = pb.ReadContentRequest(digest=digest, offset=off, size=size)
                if b"".join(r.data for r in stub.Read(req)) != data[off : off + size]:
                    errors.append(("read_at", seed, j, off, size))
            call = stub.Read(pb.ReadContentRequest(digest=digest))
            next(call)
            call.cancel()
            if stub.Info(pb.InfoRequest(digest=digest)).info.size != len(data):
                errors.append(("info", seed, j))


def test_concurrent_writes_reads_and_cancels() -> None:
    base = Path(tempfile.mkdtemp(prefix="cdw-", dir="/tmp"))
    service = ContentService(SingleStoreResolver(local_store(base / "content")))
    server = build_server(f"unix:{base}/s.sock", [service], max_workers=32, engine="contentd")
    server.start()
    errors: list[object] = []
    try:
        threads = [
            threading.Thread(target=_client, args=(f"unix:{base}/s.sock", seed, errors))
            for seed in range(8)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert not any(t.is_alive() for t in threads)
        assert errors == []
    finally:
        assert server.stop(1).wait(30)
        shutil.rmtree(base, ignore_errors=True)
