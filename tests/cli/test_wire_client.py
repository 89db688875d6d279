"""The grpcio-free client (contentd.wire.client) against contentd serve and containerd 1.6.20.

containerd's Go server Huffman-codes its headers and uses the HPACK dynamic table,
so running the same calls against both servers covers both ways of sending headers.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from collections.abc import Iterator

import pytest

from contentd.api._pb.containerd.services.content.v1 import content_pb2 as pb
from contentd.content import codes
from contentd.content.errors import InvalidArgument, NotFound
from contentd.proxy import ProxyStore
from contentd.wire.client import CallError, Connection
from tests.daemon.harness import ServeProcess
from tests.peers import ContainerdPeer
from tests.peers.process import clean_env

LIST = "/containerd.services.content.v1.Content/List"
INFO = "/containerd.services.content.v1.Content/Info"
ROOT = {"containerd.io/gc.root": "wire-client"}


def _put(address: str, namespace: str, data: bytes) -> str:
    from contentd.content.helpers import write_blob
    from contentd.content.types import Descriptor

    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    import io

    with ProxyStore(address, namespace) as store:
        descriptor = Descriptor(digest=digest, size=len(data))
        write_blob(store, f"wire-{digest[7:19]}", io.BytesIO(data), descriptor, ROOT)
    return digest


@pytest.fixture(params=["contentd", "containerd"])
def server(
    request: pytest.FixtureRequest, cli_daemon: ServeProcess, ctr_namespace: str
) -> Iterator[tuple[str, str]]:
    """``(socket path, namespace)`` of a server holding nothing in the namespace yet."""
    if request.param == "contentd":
        yield cli_daemon.address.removeprefix("unix:"), ctr_namespace
    else:
        peer: ContainerdPeer = request.getfixturevalue("containerd_peer")
        yield peer.address.removeprefix("unix:"), ctr_namespace


def _md(namespace: str) -> tuple[tuple[str, str], ...]:
    return (("containerd-namespace", namespace),)


def test_unary_and_stream_round_trip(server: tuple[str, str]) -> None:
    address, namespace = server
    digests = sorted(_put(address, namespace, os.urandom(64 + i)) for i in range(150))
    with Connection(address, timeout=30) as conn:
        for _ in range(3):  # several calls on one connection: the dynamic table carries over
            listed = [
                info.digest
                for raw in conn.server_stream(LIST, b"", _md(namespace))
                for info in pb.ListContentResponse.FromString(raw).info
            ]
            assert listed == digests
            raw = conn.unary(
                INFO, pb.InfoRequest(digest=digests[7]).SerializeToString(), _md(namespace)
            )
            info = pb.InfoResponse.FromString(raw).info
            assert (info.digest, info.size, dict(info.labels)) == (digests[7], info.size, ROOT)


def test_statuses_come_back_as_kinds(server: tuple[str, str]) -> None:
    address, namespace = server
    missing = "sha256:" + "0" * 64
    with Connection(address, timeout=30) as conn:
        with pytest.raises(CallError) as info:
            conn.unary(INFO, pb.InfoRequest(digest=missing).SerializeToString(), _md(namespace))
        assert info.value.code == codes.NOT_FOUND
        assert isinstance(info.value.error(), NotFound)
        assert missing in info.value.message
        bad = pb.ListContentRequest(filters=["bad filter =="]).SerializeToString()
        with pytest.raises(CallError) as info:
            list(conn.server_stream(LIST, bad, _md(namespace)))
        assert isinstance(info.value.error(), InvalidArgument)
        # the connection is still good after failed calls
        assert list(conn.server_stream(LIST, b"", _md(namespace))) == []


def test_leaving_a_stream_early_cancels_only_that_call(server: tuple[str, str]) -> None:
    address, namespace = server
    for i in range(250):  # three List messages
        _put(address, namespace, f"early {i}".encode())
    with Connection(address, timeout=30) as conn:
        stream = conn.server_stream(LIST, b"", _md(namespace))
        first = pb.ListContentResponse.FromString(next(stream))
        assert len(first.info) == 100
        stream.close()  # resets the stream
        total = sum(
            len(pb.ListContentResponse.FromString(raw).info)
            for raw in conn.server_stream(LIST, b"", _md(namespace))
        )
        assert total == 250


def test_nothing_listening_is_unavailable(tmp_path: object) -> None:
    with pytest.raises(CallError) as info:
        Connection(f"{tmp_path}/none.sock")
    assert info.value.code == codes.UNAVAILABLE
    assert "no such file or directory" in info.value.message


def test_content_ls_does_not_load_grpcio(cli_daemon: ServeProcess, ctr_namespace: str) -> None:
    digest = _put(cli_daemon.address, ctr_namespace, b"ls without grpcio")
    program = (
        "import sys\n"
        "from contentd.cli import main\n"
        f"argv = ['-a', {cli_daemon.address!r}, '-n', {ctr_namespace!r}, 'content', 'ls', '-q']\n"
        "code = main(argv)\n"
        "print('grpc' in sys.modules, code)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", program],
        capture_output=True,
        env=clean_env(),
        timeout=60,
        check=True,
    ).stdout.decode()
    assert out.splitlines() == [digest, "False 0"]
