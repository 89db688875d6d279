"""``contentd serve`` as a child process: socket, root lock, signals, exit statuses."""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import socket
import stat
import subprocess
import sys
from pathlib import Path

import grpc
import pytest
from google.protobuf import empty_pb2

from contentd.api._pb.containerd.services.version.v1 import version_pb2_grpc
from contentd.proxy import ProxyStore
from tests.daemon.harness import ServeProcess
from tests.peers.process import clean_env


def _version(address: str) -> str:
    with grpc.insecure_channel(address) as channel:
        stub = version_pb2_grpc.VersionStub(channel)
        return stub.Version(empty_pb2.Empty(), timeout=10).version


def test_boot_socket_mode_and_shutdown(base: Path) -> None:
    daemon = ServeProcess(base).start()
    try:
        mode = os.stat(daemon.socket).st_mode
        assert stat.S_ISSOCK(mode)
        assert stat.S_IMODE(mode) == 0o660
        assert _version(daemon.address) == "0.1.0"
        line = daemon.boot_line()
        assert "boot_s=" in line
        print(f"\n{line}")  # the measured start-up time (not asserted)
        assert "content backend: io.containerd.content.v1.content" in daemon.log_text()
    finally:
        daemon.signal(signal.SIGTERM)
        assert daemon.wait_exit() == 0
    assert not daemon.socket.exists()
    assert "contentd stopped" in daemon.log_text()


def test_sigint_stops_too(base: Path) -> None:
    daemon = ServeProcess(base).start()
    daemon.signal(signal.SIGINT)
    assert daemon.wait_exit() == 0
    assert "received SIGINT" in daemon.log_text()


def test_second_daemon_on_the_same_root_is_refused(base: Path) -> None:
    first = ServeProcess(base, name="first").start()
    try:
        second = ServeProcess(base, name="second", root=first.root)
        second.spawn()
        assert second.wait_exit() == 1
        text = second.log_text()
        assert "another contentd" in text
        assert f"pid {first.proc.pid if first.proc else ''}" in text
        assert str(first.root) in text
        # the first one is unharmed, its socket included
        assert _version(first.address) == "0.1.0"
        assert first.socket.exists()
    finally:
        first.stop()


def test_live_socket_is_refused_and_stale_socket_replaced(base: Path) -> None:
    sock_path = base / "shared.sock"
    first = ServeProcess(base, name="first", root=base / "r1", socket_path=sock_path).start()
    try:
        second = ServeProcess(base, name="second", root=base / "r2", socket_path=sock_path)
        second.spawn()
        assert second.wait_exit() == 1
        assert "already listening" in second.log_text()
        assert _version(first.address) == "0.1.0"
    finally:
        first.stop()
    # a socket file nobody listens on (a crashed server's) is replaced
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(sock_path))
    stale.close()
    assert sock_path.exists()
    with ServeProcess(base, name="third", root=base / "r3", socket_path=sock_path) as third:
        assert _version(third.address) == "0.1.0"


def test_bad_config_names_the_key_and_exits_2(base: Path) -> None:
    daemon = ServeProcess(
        base, config='version = 2\n[proxy_plugins.remote]\ntype = "blobs"\naddress = "/x"\n'
    )
    daemon.spawn()
    assert daemon.wait_exit() == 2
    text = daemon.log_text()
    assert "proxy_plugins.remote.type" in text
    assert "blobs" in text


@pytest.mark.parametrize("engine", ["contentd", "grpcio"])
def test_a_socket_that_cannot_be_made_is_named(base: Path, engine: str) -> None:
    # /proc takes no new files: bind(2) fails with ENOENT, an error that names no path
    daemon = ServeProcess(
        base,
        config=f'version = 2\n[grpc]\nengine = "{engine}"\n',
        socket_path=Path("/proc/contentd.sock"),
    )
    daemon.spawn()
    assert daemon.wait_exit() == 1
    # not '[Errno 2] No such file or directory', nor grpcio's RuntimeError as 'unknown'
    assert "cannot listen on unix socket /proc/contentd.sock" in daemon.log_text()


@pytest.mark.parametrize("engine", ["contentd", "grpcio"])
def test_sigterm_keeps_an_open_ingest_resumable(base: Path, engine: str) -> None:
    data = os.urandom(3 << 20)
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    half = len(data) // 2
    config = f'version = 2\n[grpc]\nengine = "{engine}"\n'
    daemon = ServeProcess(base, config=config).start()
    store = ProxyStore(daemon.address, namespace="ns1")
    try:
        writer = store.writer("resume-me", len(data), digest)
        writer.write(data[:half])
        assert store.status("resume-me").offset == half
        # the Write stream is still open when the daemon is told to stop
        daemon.signal(signal.SIGTERM)
        assert daemon.wait_exit() == 0
        with contextlib.suppress(Exception):
            writer.close()  # the stream was cancelled by the shutdown
    finally:
        store.close()
        daemon.stop()

    with ServeProcess(base) as again:
        store = ProxyStore(again.address, namespace="ns1")
        try:
            assert store.status("resume-me").offset == half
            writer = store.writer("resume-me", len(data), digest)
            assert writer.status().offset == half
            writer.write(data[half:])
            # a root: an unreferenced blob may go in the scheduler's next collection
            writer.commit(len(data), digest, {"containerd.io/gc.root": "test"})
            with store.reader_at(digest) as ra:
                assert ra.read_at(0, len(data)) == data
        finally:
            store.close()


def test_python_dash_m_and_help_are_quick_to_answer() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "contentd", "--help"],
        capture_output=True,
        timeout=60,
        env=clean_env(),
        check=True,
    )
    assert b"serve" in out.stdout and b"config" in out.stdout
    out = subprocess.run(
        [sys.executable, "-m", "contentd", "serve", "--help"],
        capture_output=True,
        timeout=60,
        env=clean_env(),
        check=True,
    )
    for flag in (b"--config", b"--root", b"--state", b"--address", b"--log-level"):
        assert flag in out.stdout
    assert b"--content-sharing-policy" in out.stdout


@pytest.mark.skipif(os.geteuid() != 0, reason="changing a socket's group needs root")
def test_socket_group_from_config(base: Path) -> None:
    with ServeProcess(base, config="version = 2\n[grpc]\ngid = 4242\n") as daemon:
        st = os.stat(daemon.socket)
        assert st.st_gid == 4242
        assert st.st_uid == os.geteuid()  # uid 0 in config: left as it is
        assert stat.S_IMODE(st.st_mode) == 0o660
