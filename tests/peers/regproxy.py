"""A reverse proxy in front of a real registry, for tests that need to see or spoil traffic.

:class:`RegistryProxy` listens on 127.0.0.1 and forwards every request to ``upstream``
(``host:port``; it may be changed while running, e.g. after the registry restarts on
another port). It counts the blob bytes it served per digest (``served``) and, per digest,
can:

* ``corrupt``: flip one byte in the middle of the blob's body;
* ``cut_after``: send only the first N bytes of the body, then wait until ``release()``
  (so a test can kill the registry while a download is mid-layer) and drop the connection.

``location_host``, when set, rewrites every ``Location`` answer to point at that
``host:port`` instead (an upload or redirect sent to "another host"); ``seen`` records,
per request, the ``Host`` it was sent to and whether it carried ``Authorization``.
With ``redirect_blobs`` too, a blob GET sent to this proxy's own address is answered
``307`` to the same path on ``location_host`` (blob storage elsewhere), and
``other_headers[name] = value`` replaces that header in answers to requests sent to
``location_host``.
``headers[(method, name)] = value`` replaces that header in answers to that method.
``forbid`` holds methods answered ``403 DENIED`` without asking the registry (an account
that may pull but not push). ``pad[method] = N`` appends N bytes to the body of every
answer to that method (a registry that answers with far more than it should); ``padded``
counts the padding actually sent.

It runs on threads in the test process (http.server), streaming bodies in 64 KiB pieces,
on 127.0.0.1 or (``ipv6=True``) on ``[::1]``.
"""

from __future__ import annotations

import http.client
import re
import socket
import threading
import urllib.parse
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Final

__all__ = ["RegistryProxy"]

_BLOB: Final = re.compile(r"^/v2/.+/blobs/(sha256:[0-9a-f]{64})$")
_HOP: Final = frozenset({"connection", "keep-alive", "transfer-encoding", "te", "upgrade"})
_PIECE: Final = 64 << 10


class _IPv6Server(ThreadingHTTPServer):
    address_family = socket.AF_INET6


class RegistryProxy:
    def __init__(self, upstream: str, *, ipv6: bool = False) -> None:
        self.upstream = upstream
        self.ipv6 = ipv6
        self.served: Counter[str] = Counter()
        self.requests: list[tuple[str, str, str]] = []  # method, path, Range
        self.corrupt: set[str] = set()
        self.cut_after: dict[str, int] = {}
        self.location_host: str | None = None
        self.pad: dict[str, int] = {}
        self.headers: dict[tuple[str, str], str] = {}
        self.redirect_blobs = False
        self.forbid: set[str] = set()
        self.other_headers: dict[str, str] = {}
        self.padded = 0
        self.seen: list[tuple[str, str, bool]] = []  # Host, path, had Authorization
        self.cut_reached = threading.Event()
        self._release = threading.Event()
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass

            def _forward(self) -> None:
                proxy._handle(self)

            do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = _forward

        server_class = _IPv6Server if ipv6 else ThreadingHTTPServer
        self._server = server_class(("::1" if ipv6 else "127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def host(self) -> str:
        address = "[::1]" if self.ipv6 else "127.0.0.1"
        return f"{address}:{self._server.server_address[1]}"

    def release(self) -> None:
        """Let a cut connection go (it is dropped)."""
        self._release.set()

    def close(self) -> None:
        self._release.set()
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> RegistryProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        length = int(h.headers.get("Content-Length") or 0)
        body = h.rfile.read(length) if length else None
        headers = {k: v for k, v in h.headers.items() if k.lower() not in _HOP}
        with self._lock:
            self.requests.append((h.command, h.path, h.headers.get("Range", "")))
            self.seen.append((h.headers.get("Host", ""), h.path, "Authorization" in h.headers))
        to_other = h.headers.get("Host", "") == self.location_host
        if h.command in self.forbid:
            denied = b'{"errors":[{"code":"DENIED","message":"requested access is denied"}]}'
            h.send_response(403)
            h.send_header("Content-Type", "application/json")
            h.send_header("Content-Length", str(len(denied)))
            h.end_headers()
            h.wfile.write(denied)
            return
        if self.redirect_blobs and not to_other and h.command == "GET" and _BLOB.match(h.path):
            h.send_response(307)
            h.send_header("Location", f"http://{self.location_host}{h.path}")
            h.send_header("Content-Length", "0")
            h.end_headers()
            return
        conn = http.client.HTTPConnection(self.upstream, timeout=30)
        try:
            conn.request(h.command, h.path, body=body, headers=headers)
            resp = conn.getresponse()
        except OSError:
            h.send_error(502)
            return
        m = _BLOB.match(h.path.split("?", 1)[0])
        digest = m.group(1) if m and h.command == "GET" and resp.status in (200, 206) else None
        pad = self.pad.get(h.command, 0)
        h.send_response(resp.status)
        for k, v in resp.getheaders():
            if k.lower() == "content-length" and pad:
                v = str(int(v) + pad)
            v = self.headers.get((h.command, k.lower()), v)
            if to_other:
                v = self.other_headers.get(k.lower(), v)
            if k.lower() == "location" and self.location_host is not None:
                parts = urllib.parse.urlsplit(v)
                v = urllib.parse.urlunsplit(
                    ("http", self.location_host, parts.path, parts.query, parts.fragment)
                )
            if k.lower() not in _HOP:
                h.send_header(k, v)
        if resp.getheader("Content-Length") is None:
            h.send_header("Content-Length", str(pad))
        h.end_headers()
        if h.command == "HEAD":
            conn.close()
            return
        sent = 0
        total = int(resp.getheader("Content-Length") or 0)
        try:
            while True:
                piece = resp.read(_PIECE)
                if not piece:
                    break
                if digest is not None:
                    if digest in self.corrupt and sent <= total // 2 < sent + len(piece):
                        i = total // 2 - sent
                        piece = piece[:i] + bytes([piece[i] ^ 0xFF]) + piece[i + 1 :]
                    limit = self.cut_after.get(digest)
                    if limit is not None and sent + len(piece) > limit:
                        piece = piece[: max(0, limit - sent)]
                        h.wfile.write(piece)
                        h.wfile.flush()
                        self._count(digest, len(piece))
                        self.cut_reached.set()
                        self._release.wait(60)
                        h.close_connection = True
                        h.connection.shutdown(2)
                        return
                    self._count(digest, len(piece))
                h.wfile.write(piece)
                sent += len(piece)
            while pad > 0:
                piece = bytes(min(pad, _PIECE))
                h.wfile.write(piece)
                pad -= len(piece)
                with self._lock:
                    self.padded += len(piece)
        except OSError:
            h.close_connection = True
        finally:
            conn.close()

    def _count(self, digest: str, n: int) -> None:
        with self._lock:
            self.served[digest] += n
