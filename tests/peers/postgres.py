"""A private PostgreSQL cluster for tests: Debian's PostgreSQL 15.

Debian's ``postgresql-15`` installs the server binaries under
``/usr/lib/postgresql/15/bin`` (not on PATH). The harness makes a fresh cluster
in a temp dir owned by the ``postgres`` user (``initdb`` refuses to run as
root), runs ``postgres -D`` as that user (``setpriv``) in the foreground as its
child, with the unix socket in the same private dir and TCP on
``127.0.0.1:<free port below 32768>``, ``trust`` authentication for local
connections only, and ``fsync=off`` (a test cluster: a crash of the machine
may lose it, which is fine). Readiness is ``pg_isready``. Each test database
is made with :meth:`PostgresPeer.create_database`.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Self

from tests.peers.process import ChildProcess, PeerError, run, tail

__all__ = ["PG_BIN", "PostgresPeer", "pg_available", "require_postgres"]

PG_BIN = Path("/usr/lib/postgresql/15/bin")
_USER = "postgres"


def pg_available() -> str | None:
    """Why a private cluster cannot be made here (None when it can)."""
    for name in ("initdb", "postgres", "pg_isready"):
        if not (PG_BIN / name).is_file():
            return f"missing {PG_BIN / name} (install Debian's postgresql with scripts/ci-deps.sh)"
    if shutil.which("setpriv") is None:
        return "missing setpriv (util-linux)"
    try:
        import pwd

        pwd.getpwnam(_USER)
    except KeyError:
        return f"no {_USER} user (install Debian's postgresql)"
    if os.geteuid() != 0:
        return "the PostgreSQL fixture runs initdb as the postgres user and needs root for that"
    return None


def require_postgres() -> None:
    """Skip the calling test when no private cluster can be made here; fail it under CI=true."""
    import pytest

    from tests.peers.requires import in_ci

    why = pg_available()
    if why is not None:
        if in_ci():
            pytest.fail(f"CI=true and {why}", pytrace=False)
        pytest.skip(why)


def _free_low_port() -> int:
    """A TCP port below 32768 (outside Linux's ephemeral range) free on 127.0.0.1 now."""
    rng = random.Random()
    for _ in range(200):
        port = rng.randrange(15000, 32768)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise PeerError("no free TCP port below 32768")


class PostgresPeer(ChildProcess):
    """One private PostgreSQL server (its own data dir, socket dir and port)."""

    def __init__(self, *, start_timeout: float = 60.0, stop_timeout: float = 20.0) -> None:
        self._base = Path(tempfile.mkdtemp(prefix="postgres-"))
        os.chmod(self._base, 0o700)
        shutil.chown(self._base, _USER, _USER)
        self._start_timeout = start_timeout
        self._stop_timeout = stop_timeout
        self.port = 0
        self._argv: list[str] = []
        self._dbs = 0
        self._closed = False

    @property
    def base(self) -> Path:
        return self._base

    @property
    def socket_dir(self) -> Path:
        return self._base / "run"

    @property
    def log_path(self) -> Path:
        return self._base / "postgres.log"

    def _as_postgres(self, argv: list[str]) -> list[str]:
        # setpriv execs (no intermediate process): the child *is* postgres
        return ["setpriv", f"--reuid={_USER}", f"--regid={_USER}", "--init-groups", "--", *argv]

    def stop(self) -> int | None:
        """Fast shutdown (SIGINT: disconnect clients, checkpoint), then the base's TERM/KILL."""
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=self._stop_timeout)
        return super().stop()

    def start(self) -> Self:
        data = self._base / "data"
        run(
            self._as_postgres(
                [
                    str(PG_BIN / "initdb"),
                    "-D",
                    str(data),
                    "-U",
                    _USER,
                    "--auth-local=trust",
                    "--auth-host=reject",
                    "-E",
                    "UTF8",
                    "--locale=C",
                    "--no-sync",
                ]
            ),
            timeout=120,
        )
        (self._base / "run").mkdir(mode=0o700)
        shutil.chown(self._base / "run", _USER, _USER)
        self.log_path.touch()
        shutil.chown(self.log_path, _USER, _USER)
        last = ""
        for _ in range(5):  # the port may be taken between the check and the bind
            self.port = _free_low_port()
            self._argv = self._as_postgres(
                [
                    str(PG_BIN / "postgres"),
                    "-D",
                    str(data),
                    "-p",
                    str(self.port),
                    "-k",
                    str(self.socket_dir),
                    "-c",
                    "listen_addresses=",
                    "-c",
                    "fsync=off",
                    "-c",
                    "synchronous_commit=off",
                    "-c",
                    "full_page_writes=off",
                    "-c",
                    "max_connections=300",
                    "-c",
                    "shared_buffers=32MB",
                ]
            )
            self._spawn(self._argv)
            if self._wait_ready():
                return self
            last = self.log_tail()
            self.stop()
        raise PeerError(f"postgres did not start:\n{last}")

    def restart(self) -> None:
        """Start the stopped server again: same data, socket and port (an outage ends)."""
        self._spawn(self._argv)
        if not self._wait_ready():
            raise PeerError(f"postgres did not start again:\n{self.log_tail()}")

    def _wait_ready(self) -> bool:
        deadline = time.monotonic() + self._start_timeout
        while time.monotonic() < deadline:
            if not self.running:
                return False
            proc = subprocess.run(
                [
                    str(PG_BIN / "pg_isready"),
                    "-q",
                    "-h",
                    str(self.socket_dir),
                    "-p",
                    str(self.port),
                ],
                capture_output=True,
                timeout=10,
                check=False,
            )
            if proc.returncode == 0:
                return True
            time.sleep(0.1)
        return False

    def dsn(self, dbname: str = "postgres") -> str:
        return f"host={self.socket_dir} port={self.port} dbname={dbname} user={_USER}"

    def create_database(self, prefix: str = "t") -> str:
        """A new empty database; returns its DSN."""
        import psycopg

        self._dbs += 1
        name = f"{prefix}_{os.getpid()}_{self._dbs}_{random.randrange(1 << 30)}"
        with psycopg.connect(self.dsn(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}" TEMPLATE template0')
        return self.dsn(name)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.stop()
        shutil.rmtree(self._base, ignore_errors=True)

    def log_text(self) -> str:
        return tail(self.log_path, 60)
