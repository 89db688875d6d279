"""A bearer-token service for docker-registry's ``token`` auth (the flow Docker Hub uses).

:class:`TokenServer` holds an RSA key and a self-signed certificate (the registry's
``rootcertbundle``) and answers ``GET /token?service=...&scope=...`` with a JWT signed RS256
whose ``x5c`` header carries that certificate, granting the actions the scopes ask for.
With ``users`` set, it requires basic auth from one of them (401 otherwise). It also
answers docker's OAuth2 form, ``POST /token`` with ``grant_type=refresh_token``, for the
identity tokens in ``refresh_tokens`` (token -> user; 401 for any other), with an
``access_token``. It runs on a thread of the test process and counts the tokens it issued.
"""

from __future__ import annotations

import base64
import datetime
import json
import threading
import time
import urllib.parse
import uuid
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Final

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

__all__ = ["ISSUER", "SERVICE", "TokenServer"]

ISSUER: Final = "contentd-test-issuer"
SERVICE: Final = "contentd-test-registry"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class TokenServer:
    def __init__(
        self,
        directory: Path,
        users: Mapping[str, str] | None = None,
        refresh_tokens: Mapping[str, str] | None = None,
    ) -> None:
        self.users = dict(users or {})
        self.refresh_tokens = dict(refresh_tokens or {})
        self.issued: list[str] = []  # the scopes of each token issued
        self.posted: list[dict[str, list[str]]] = []  # each POST's form
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "contentd test token issuer")])
        now = datetime.datetime.now(datetime.UTC)
        self._cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self._key, hashes.SHA256())
        )
        self.bundle = directory / "token-root.pem"
        self.bundle.write_bytes(self._cert.public_bytes(serialization.Encoding.PEM))
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                server._answer(self)

            def do_POST(self) -> None:
                server._answer_post(self)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    @property
    def realm(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/token"

    def registry_auth(self) -> dict[str, Any]:
        """The ``auth`` section of a registry config that trusts this service."""
        return {
            "token": {
                "realm": self.realm,
                "service": SERVICE,
                "issuer": ISSUER,
                "rootcertbundle": str(self.bundle),
            }
        }

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _authorised(self, h: BaseHTTPRequestHandler) -> str | None:
        """The user name ("" for anonymous when no users are set); None if refused."""
        if not self.users:
            return ""
        value = h.headers.get("Authorization", "")
        if not value.startswith("Basic "):
            return None
        try:
            user, _, password = base64.b64decode(value[6:]).decode().partition(":")
        except ValueError:
            return None
        return user if self.users.get(user) == password else None

    @staticmethod
    def _refuse(h: BaseHTTPRequestHandler) -> None:
        h.send_response(401)
        h.send_header("Content-Length", "0")
        h.end_headers()

    def _answer(self, h: BaseHTTPRequestHandler) -> None:
        url = urllib.parse.urlsplit(h.path)
        query = urllib.parse.parse_qs(url.query)
        user = self._authorised(h)
        if url.path != "/token" or user is None:
            self._refuse(h)
            return
        self._issue(h, user, query, "token")

    def _answer_post(self, h: BaseHTTPRequestHandler) -> None:
        length = int(h.headers.get("Content-Length") or 0)
        form = urllib.parse.parse_qs(h.rfile.read(min(length, 1 << 16)).decode())
        self.posted.append(form)
        user = self.refresh_tokens.get(form.get("refresh_token", [""])[0])
        if (
            urllib.parse.urlsplit(h.path).path != "/token"
            or form.get("grant_type") != ["refresh_token"]
            or user is None
        ):
            self._refuse(h)
            return
        self._issue(h, user, form, "access_token")

    def _issue(
        self, h: BaseHTTPRequestHandler, user: str, query: dict[str, list[str]], key: str
    ) -> None:
        access = []
        for scope in query.get("scope", []):
            for one in scope.split(" "):
                kind, _, rest = one.partition(":")
                name, _, actions = rest.rpartition(":")
                if kind == "repository" and name:
                    access.append({"type": kind, "name": name, "actions": actions.split(",")})
        now = int(time.time())
        claims = {
            "iss": ISSUER,
            "sub": user,
            "aud": query.get("service", [""])[0],
            "exp": now + 300,
            "nbf": now - 10,
            "iat": now,
            "jti": uuid.uuid4().hex,
            "access": access,
        }
        der = self._cert.public_bytes(serialization.Encoding.DER)
        header = {"typ": "JWT", "alg": "RS256", "x5c": [base64.b64encode(der).decode()]}
        signing_input = (
            f"{_b64url(json.dumps(header).encode())}.{_b64url(json.dumps(claims).encode())}"
        )
        signature = self._key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        token = f"{signing_input}.{_b64url(signature)}"
        self.issued.append(" ".join(query.get("scope", [])))
        body = json.dumps({key: token, "expires_in": 300}).encode()
        h.send_response(200)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)
