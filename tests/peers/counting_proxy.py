"""A counting HTTP reverse proxy for tests: forwards every request to one upstream
(a private registry) and counts the response body bytes per kind of path.

``blob_bytes`` counts ``/v2/<name>/blobs/<digest>`` bodies (layers and configs),
``manifest_bytes`` ``/v2/<name>/manifests/<ref>`` bodies, ``connections`` the client
connections accepted (keep-alive: one carries many requests). With ``gather_blobs = N``
a blob GET is answered only once N blob GETs wait together (or after
``gather_timeout`` seconds); ``peak_blob_gets`` is the most that ever waited at once,
which is the client's concurrency exactly: a request is counted on arrival and
uncounted before its answer starts, and a client sends its next request only after
that answer. Loopback only, plain HTTP.
"""

from __future__ import annotations

import http.client
import http.server
import re
import threading
from typing import Self
from urllib.parse import urlsplit

__all__ = ["CountingProxy"]

_BLOB = re.compile(r"^/v2/.+/blobs/[^/]+$")
_MANIFEST = re.compile(r"^/v2/.+/manifests/[^/]+$")
_CHUNK = 1 << 20
_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade"}


class CountingProxy:
    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream if "://" in upstream else f"http://{upstream}")
        self._host = parts.hostname or "127.0.0.1"
        self._port = parts.port or 80
        self._lock = threading.Lock()
        self.blob_bytes = 0
        self.manifest_bytes = 0
        self.blob_requests: list[str] = []
        self.connections = 0
        self.gather_blobs = 0
        self.gather_timeout = 2.0
        self.peak_blob_gets = 0
        self._waiting = 0
        self._gathered = threading.Condition(self._lock)
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass

            def setup(self) -> None:
                super().setup()
                with proxy._lock:
                    proxy.connections += 1

            def _forward(self) -> None:
                if self.command == "GET" and _BLOB.match(self.path.split("?", 1)[0]):
                    proxy._gather()
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                conn = http.client.HTTPConnection(proxy._host, proxy._port, timeout=60)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP}
                conn.request(self.command, self.path, body=body, headers=headers)
                resp = conn.getresponse()
                path = self.path.split("?", 1)[0]
                counter = None
                if self.command == "GET":
                    if _BLOB.match(path):
                        counter = "blob"
                        with proxy._lock:
                            proxy.blob_requests.append(path)
                    elif _MANIFEST.match(path):
                        counter = "manifest"
                length_text = resp.getheader("Content-Length")
                head = self.command == "HEAD"  # keeps the upstream's Content-Length
                # a body of known length is relayed as it arrives (memory flat in its size);
                # any other is read whole first, to send it with its length
                whole = not head and length_text is None
                data = resp.read() if whole else b""
                self.send_response(resp.status, resp.reason)
                for key, value in resp.getheaders():
                    if key.lower() not in _HOP and (head or key.lower() != "content-length"):
                        self.send_header(key, value)
                if not head:
                    size = len(data) if whole else int(length_text or 0)
                    self.send_header("Content-Length", str(size))
                self.end_headers()
                try:
                    if whole:
                        self.wfile.write(data)
                    if not head:
                        sent = len(data) if whole else self._relay(resp)
                        if counter is not None:
                            proxy._count(counter, sent)
                finally:
                    conn.close()

            def _relay(self, resp: http.client.HTTPResponse) -> int:
                sent = 0
                while chunk := resp.read(_CHUNK):
                    self.wfile.write(chunk)
                    sent += len(chunk)
                return sent

            do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = _forward

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self._server.server_address[1]}"

    def _count(self, kind: str, size: int) -> None:
        with self._lock:
            if kind == "blob":
                self.blob_bytes += size
            else:
                self.manifest_bytes += size

    def _gather(self) -> None:
        with self._gathered:
            self._waiting += 1
            self.peak_blob_gets = max(self.peak_blob_gets, self._waiting)
            if self.gather_blobs and self._waiting >= self.gather_blobs:
                self._gathered.notify_all()
            elif self.gather_blobs:
                self._gathered.wait(self.gather_timeout)
            self._waiting -= 1

    def reset(self) -> None:
        with self._lock:
            self.blob_bytes = 0
            self.manifest_bytes = 0
            self.blob_requests = []
            self.connections = 0
            self.peak_blob_gets = 0

    def start(self) -> Self:
        self._thread.start()
        return self

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
