"""contentd daemons for tests: ``contentd serve`` as a child process, or a Daemon in-process.

Sockets live in short ``/tmp/cds-*`` directories (a unix socket path may not
exceed 107 bytes; pytest's ``tmp_path`` can be longer).
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Self

import grpc

from contentd.api.metadata_keys import LEASE_KEY, NAMESPACE_KEY
from contentd.daemon.server import Daemon
from contentd.daemon.setup import Overrides, prepare
from contentd.plugins.registry import Registration
from tests.peers.process import clean_env

__all__ = [
    "BUILTIN_PLUGINS",
    "QUIET_GC",
    "SKIPPED_PLUGINS",
    "ServeProcess",
    "md",
    "short_tmpdir",
    "start_daemon",
]

BOOTED = "successfully booted"

#: A GC scheduler that collects only when asked (leases Delete with ``sync``): no start-up
#: collection, thresholds never reached, and after a forced collection an interval of about
#: 10^5 times its duration. Content written without a lease or root (plain ``ctr content
#: ingest``) is deleted at the next collection, as in containerd; tests that look at such
#: content use this.
QUIET_GC = """
version = 2
[plugins."io.containerd.gc.v1.scheduler"]
  startup_delay = "0s"
  pause_threshold = 0.00001
  deletion_threshold = 1000000000
  mutation_threshold = 1000000000
"""


def md(namespace: str | None = None, lease: str | None = None) -> tuple[tuple[str, str], ...]:
    """Call metadata with containerd's namespace and lease headers (those that are set)."""
    out: list[tuple[str, str]] = []
    if namespace is not None:
        out.append((NAMESPACE_KEY, namespace))
    if lease is not None:
        out.append((LEASE_KEY, lease))
    return tuple(out)


def short_tmpdir(prefix: str = "cds-") -> Path:
    return Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))


def _connectable(path: str) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        try:
            s.connect(path)
        except OSError:
            return False
        return True


class ServeProcess:
    """``python -m contentd serve`` on its own root, state and socket.

    The child is started with ``setpriv --pdeathsig TERM`` when available, so it
    dies with the test run even if no teardown runs. Its stderr goes to ``log``.
    """

    def __init__(
        self,
        base: Path | None = None,
        *,
        args: Sequence[str] = (),
        config: str | None = None,
        root: Path | None = None,
        socket_path: Path | None = None,
        name: str = "contentd",
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.env = dict(env or {})
        self.owns_base = base is None
        self.base = base if base is not None else short_tmpdir()
        self.root = root if root is not None else self.base / "root"
        self.state = self.base / f"{name}-state"
        self.socket = socket_path if socket_path is not None else self.base / f"{name}.sock"
        self.log = self.base / f"{name}.log"
        self.config_path: Path | None = None
        if config is not None:
            self.config_path = self.base / f"{name}.toml"
            self.config_path.write_text(config)
        self.args = list(args)
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"unix:{self.socket}"

    def argv(self) -> list[str]:
        argv = [
            sys.executable,
            "-m",
            "contentd",
            "serve",
            "--root",
            str(self.root),
            "--state",
            str(self.state),
            "--address",
            str(self.socket),
        ]
        if self.config_path is not None:
            argv += ["--config", str(self.config_path)]
        argv += self.args
        setpriv = shutil.which("setpriv")
        return [setpriv, "--pdeathsig", "TERM", *argv] if setpriv else argv

    def spawn(self) -> subprocess.Popen[bytes]:
        log = open(self.log, "ab")  # noqa: SIM115 - handed to the child
        try:
            self.proc = subprocess.Popen(
                self.argv(),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=log,
                env=clean_env(self.env),
            )
        finally:
            log.close()
        return self.proc

    def start(self, timeout: float = 30.0) -> Self:
        self.spawn()
        self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout: float = 30.0) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"contentd exited with {self.proc.returncode}:\n{self.log_text()}"
                )
            if BOOTED in self.log_text() and _connectable(str(self.socket)):
                return
            time.sleep(0.02)
        raise TimeoutError(f"contentd did not come up in {timeout}s:\n{self.log_text()}")

    def wait_exit(self, timeout: float = 30.0) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout)

    def signal(self, signum: int = signal.SIGTERM) -> None:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signum)

    def stop(self, timeout: float = 30.0) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode

    def log_text(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def boot_line(self) -> str:
        return next((line for line in self.log_text().splitlines() if BOOTED in line), "")

    def channel(self) -> grpc.Channel:
        return grpc.insecure_channel(self.address)

    def close(self) -> None:
        self.stop()
        if self.owns_base:
            shutil.rmtree(self.base, ignore_errors=True)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def start_daemon(
    base: Path,
    config: str | None = None,
    *,
    extra: Iterable[Registration] = (),
    policy: str | None = None,
    grace: float = 0.5,
) -> Daemon:
    """A started in-process Daemon under ``base`` (root, state, socket); no entry points."""
    base.mkdir(parents=True, exist_ok=True)
    path = None
    if config is not None:
        path = str(base / "config.toml")
        Path(path).write_text(config)
    effective = prepare(
        path,
        Overrides(
            root=str(base / "root"),
            state=str(base / "state"),
            address=str(base / "d.sock"),
            content_sharing_policy=policy,
        ),
        use_default_path=False,
        entry_points=False,
        extra=extra,
    )
    daemon = Daemon(effective.config, effective.registry, effective.plugin_configs, grace=grace)
    daemon.start()
    return daemon


#: the built-in plugins in the order they load (other plugins may come between them)
BUILTIN_PLUGINS = [
    "io.containerd.content.v1.content",
    "io.contentd.metadata.v1.postgres",  # skipped: no dsn
    "io.contentd.content.v1.s3",  # skipped: no bucket
    "io.containerd.metadata.v1.sqlite",
    "io.containerd.gc.v1.scheduler",
    "io.containerd.event.v1.exchange",
    "io.containerd.grpc.v1.content",
    "io.containerd.grpc.v1.images",
    "io.containerd.grpc.v1.leases",
    "io.containerd.grpc.v1.namespaces",
    "io.containerd.grpc.v1.introspection",
    "io.containerd.grpc.v1.version",
    "io.containerd.grpc.v1.healthcheck",
    "io.containerd.grpc.v1.events",
    "io.containerd.grpc.v1.registry",
    "io.containerd.grpc.v1.gc",
    "io.containerd.grpc.v1.fsck",
]
#: the ones that skip themselves in a default configuration
SKIPPED_PLUGINS = ["io.contentd.metadata.v1.postgres", "io.contentd.content.v1.s3"]
