"""Raw-stub access to a Content service: contentd's, or the real containerd's.

The ``wire`` fixture is parametrized over both, so a test written against it
checks that contentd answers on the wire exactly as containerd does.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import queue
import random
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest

from contentd.api._pb.containerd.services.content.v1 import content_pb2 as pb
from contentd.api._pb.containerd.services.content.v1 import content_pb2_grpc as pb_grpc
from contentd.api.metadata_keys import LEASE_KEY, NAMESPACE_KEY
from contentd.proxy.channel import cancel_call
from tests.api.servers import ContentdServer, create_lease, delete_lease, local_store

_seed = itertools.count(1000)


def blob(size: int) -> tuple[bytes, str]:
    data = random.Random(next(_seed)).randbytes(size)
    return data, "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass
class Wire:
    """A Content stub, the metadata every call should carry, and which server it is."""

    kind: str  # "contentd" or "containerd"
    stub: pb_grpc.ContentStub
    md: tuple[tuple[str, str], ...]
    namespace: str

    def write(self, *requests: pb.WriteContentRequest) -> list[pb.WriteContentResponse]:
        """One Write stream with ``requests``, then half-close; all responses."""
        return list(self.stub.Write(iter(requests), metadata=self.md))

    def put(self, data: bytes, ref: str | None = None, **labels: str) -> str:
        """Commit ``data`` with one COMMIT message; returns its digest."""
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        self.write(
            pb.WriteContentRequest(
                action=pb.COMMIT, ref=ref or f"put-{digest[7:23]}", data=data, labels=labels
            )
        )
        return digest


@pytest.fixture
def store_dir(tmp_path: Path) -> Iterator[Path]:
    """A directory for a local store: on tmpfs where there is one (fsync costs nothing
    there, and the wire tests are about the protocol, not the disk)."""
    if not os.path.isdir("/dev/shm"):
        yield tmp_path
        return
    path = Path(tempfile.mkdtemp(prefix="contentd-test-", dir="/dev/shm"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(params=["contentd", pytest.param("containerd", marks=pytest.mark.containerd)])
def wire(request: pytest.FixtureRequest, store_dir: Path) -> Iterator[Wire]:
    if request.param == "contentd":
        with ContentdServer(local_store(store_dir / "content")) as server, server.channel() as ch:
            yield Wire(
                "contentd",
                pb_grpc.ContentStub(ch),
                ((NAMESPACE_KEY, "default"),),
                "default",
            )
        return
    peer = request.getfixturevalue("containerd_peer")
    namespace: str = request.getfixturevalue("ctr_namespace")
    lease = f"api-{namespace}"  # keeps containerd's GC off this test's content
    with grpc.insecure_channel("unix:" + peer.address) as ch:
        create_lease(ch, namespace, lease)
        try:
            yield Wire(
                "containerd",
                pb_grpc.ContentStub(ch),
                ((NAMESPACE_KEY, namespace), (LEASE_KEY, lease)),
                namespace,
            )
        finally:
            delete_lease(ch, namespace, lease)


class Stream:
    """One Write stream driven a message at a time."""

    def __init__(self, wire: Wire) -> None:
        self._queue: queue.SimpleQueue[pb.WriteContentRequest | None] = queue.SimpleQueue()
        self.call = wire.stub.Write(iter(self._queue.get, None), metadata=wire.md)
        self._responses = iter(self.call)

    def send(self, **fields: Any) -> pb.WriteContentResponse:
        self._queue.put(pb.WriteContentRequest(**fields))
        return next(self._responses)

    def fails(self, **fields: Any) -> tuple[grpc.StatusCode, str]:
        """Send, expecting the stream to end with an error: its code and message."""
        with pytest.raises(grpc.RpcError) as info:
            self.send(**fields)
        return status_of(info.value)

    def close(self) -> list[pb.WriteContentResponse]:
        """Half-close; the responses that follow."""
        self._queue.put(None)
        return list(self.call)

    def cancel(self) -> None:
        self._queue.put(None)
        cancel_call(self.call)


def status_of(err: BaseException) -> tuple[grpc.StatusCode, str]:
    assert isinstance(err, grpc.RpcError)
    code, details = err.code(), err.details()
    assert isinstance(code, grpc.StatusCode) and isinstance(details, str)
    return code, details


@pytest.fixture
def stream(wire: Wire) -> Iterator[Callable[[], Stream]]:
    """A factory of Write streams on ``wire``; every one is ended at teardown."""
    streams: list[Stream] = []

    def new() -> Stream:
        s = Stream(wire)
        streams.append(s)
        return s

    yield new
    for s in streams:
        s.cancel()
