"""A private OCI distribution registry for tests: Debian's ``docker-registry``.

Debian's package ``docker-registry`` (distribution 2.8.2) installs the server as
``/usr/bin/docker-registry``; it is run as ``docker-registry serve <config.yml>`` with a
generated config: plain HTTP on ``127.0.0.1:<free port>``, filesystem storage in a temp
dir, deletes enabled, no auth (or htpasswd basic auth with ``htpasswd={user: password}``, or
any other ``auth`` section, e.g. :class:`tests.peers.tokenauth.TokenServer`'s bearer tokens),
no storage health checks; ``extra`` adds top-level sections (e.g. ``validation``, which
must allow URLs for a manifest with foreign layers to be accepted). Readiness is a ``GET /v2/``
answering 200. It starts in well under a second here.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Self

from tests.peers.process import ChildProcess, PeerError, free_port, tail

_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class RegistryResponse:
    """Status, headers and body of one HTTP exchange with the registry."""

    def __init__(self, status: int, headers: Mapping[str, str], body: bytes) -> None:
        self.status = status
        self.headers = {k.lower(): v for k, v in headers.items()}
        self.body = body

    def json(self) -> object:
        return json.loads(self.body)


def _bcrypt(password: str) -> str:
    """A bcrypt hash, the one htpasswd scheme docker-registry accepts (libcrypt's)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import crypt

        # the lowest cost: the registry checks the hash on every request
        return crypt.crypt(password, crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=16))


class RegistryPeer(ChildProcess):
    """A ``docker-registry`` child process on 127.0.0.1 with storage in a temp dir."""

    def __init__(
        self,
        *,
        base_dir: str | Path | None = None,
        binary: str = "docker-registry",
        start_timeout: float = 20.0,
        stop_timeout: float = 10.0,
        htpasswd: Mapping[str, str] | None = None,
        auth: Mapping[str, object] | None = None,
        extra: Mapping[str, object] | None = None,
    ) -> None:
        self._base = Path(tempfile.mkdtemp(prefix="registry-", dir=base_dir))
        self._htpasswd = dict(htpasswd or {})
        self._auth = dict(auth or {})
        self._extra = dict(extra or {})
        self._binary = binary
        self._start_timeout = start_timeout
        self._stop_timeout = stop_timeout
        self._proc: subprocess.Popen[bytes] | None = None
        self._port: int | None = None
        self._closed = False

    @property
    def base(self) -> Path:
        return self._base

    @property
    def storage(self) -> Path:
        """The filesystem driver's root directory."""
        return self._base / "storage"

    @property
    def config_path(self) -> Path:
        return self._base / "config.yml"

    @property
    def log_path(self) -> Path:
        return self._base / "registry.log"

    @property
    def port(self) -> int:
        if self._port is None:
            raise PeerError("registry not started")
        return self._port

    @property
    def host(self) -> str:
        """``127.0.0.1:PORT``, as used in image references."""
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def _config(self, port: int) -> str:
        # JSON is valid YAML, so no YAML writer is needed.
        doc = {
            "version": 0.1,
            "log": {"level": "info", "accesslog": {"disabled": True}},
            "storage": {
                "filesystem": {"rootdirectory": str(self.storage)},
                "delete": {"enabled": True},
                "maintenance": {"uploadpurging": {"enabled": False}},
            },
            "http": {"addr": f"127.0.0.1:{port}", "secret": "contentd-tests"},
        }
        if self._htpasswd:
            path = self._base / "htpasswd"
            path.write_text("".join(f"{u}:{_bcrypt(p)}\n" for u, p in self._htpasswd.items()))
            doc["auth"] = {"htpasswd": {"realm": "contentd-tests", "path": str(path)}}
        elif self._auth:
            doc["auth"] = self._auth
        doc.update(self._extra)
        return json.dumps(doc, indent=2) + "\n"

    def start(self) -> Self:
        """Start the registry on a free port and wait for ``/v2/`` to answer 200."""
        if self._closed:
            raise PeerError("RegistryPeer was closed")
        if self.running:
            return self
        self.storage.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + self._start_timeout
        errors: list[str] = []
        for _ in range(3):  # a port can be taken between probing and binding
            port = free_port()
            self.config_path.write_text(self._config(port))
            proc = self._spawn([self._binary, "serve", str(self.config_path)])
            self._port = port
            try:
                if self._wait_ready(deadline):
                    return self
            except BaseException:
                self.stop()
                raise
            errors.append(f"port {port}: exited {proc.returncode}")
            self.stop()
            if "address already in use" not in tail(self.log_path, 5):
                break
        raise PeerError(
            f"docker-registry did not start ({'; '.join(errors)}); "
            f"log tail ({self.log_path}):\n{tail(self.log_path)}"
        )

    def _wait_ready(self, deadline: float) -> bool:
        """True once /v2/ answers; False if the process exited; raises on timeout."""
        assert self._proc is not None
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                return False
            try:
                wanted = 401 if self._htpasswd or self._auth else 200
                if self.get("/v2/", timeout=1.0).status == wanted:
                    return True
            except OSError:
                pass
            time.sleep(0.02)
        raise PeerError(
            f"docker-registry did not answer on {self.url}/v2/ within {self._start_timeout}s; "
            f"log tail ({self.log_path}):\n{tail(self.log_path)}"
        )

    def request(
        self,
        method: str,
        path: str,
        *,
        headers: Mapping[str, str] | None = None,
        body: bytes | None = None,
        timeout: float = 10.0,
    ) -> RegistryResponse:
        """One HTTP request to the registry (no proxy); HTTP errors are returned, not raised."""
        req = urllib.request.Request(
            self.url + path, data=body, method=method, headers=dict(headers or {})
        )
        try:
            with _NO_PROXY.open(req, timeout=timeout) as resp:
                return RegistryResponse(resp.status, dict(resp.headers), resp.read())
        except urllib.error.HTTPError as e:
            with e:
                return RegistryResponse(e.code, dict(e.headers), e.read())

    def get(self, path: str, *, timeout: float = 10.0) -> RegistryResponse:
        return self.request("GET", path, timeout=timeout)

    def close(self) -> None:
        if self._closed:
            return
        self.stop()
        self._closed = True
        shutil.rmtree(self._base, ignore_errors=True)

    def __repr__(self) -> str:
        where = self.host if self._port is not None else "unstarted"
        return f"<RegistryPeer {where} {'running' if self.running else 'stopped'}>"
