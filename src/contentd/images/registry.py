"""An OCI distribution client on urllib3: resolve, manifests, blobs (with ranges), uploads.

One :class:`RegistryClient` serves one registry host for one fetch or push: its
connection pool and the bearer tokens it obtained live as long as it does and are never
written anywhere. Every request goes through :meth:`RegistryClient.request`, which

* authenticates on demand: a 401 with ``WWW-Authenticate: Bearer realm=...,service=...,
  scope=...`` gets a token from the realm (with the credentials, if any, as basic auth)
  and the request is sent again once; ``Basic`` challenges get the credentials directly.
  An identity token (user name ``<token>``) is POSTed to the realm as an OAuth2 refresh
  token (``grant_type=refresh_token``), as docker does; it is never sent as a password;
* retries connection errors and 5xx answers with exponential backoff (``retries`` times);
* follows redirects (blob storage), at most five, hop by hop;
* sends credentials and tokens only to the registry's own scheme, host and port: a
  redirect or ``Location`` elsewhere (blob storage, an upload handed on) gets a bare
  request, and a 401 from there is :class:`Unauthorized`, never a reason to send it (or
  a token realm it names) the credentials.

Credentials are never logged: :class:`Credentials` hides the secret from ``repr``.
"""

from __future__ import annotations

import base64
import errno
import json
import logging
import re
import ssl
import threading
import time
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

import urllib3
from urllib3.exceptions import HTTPError

from contentd.content import digest as digests
from contentd.content.errors import DigestMismatch, NotFound, SizeMismatch
from contentd.content.types import Descriptor
from contentd.images.errors import Forbidden, RegistryError, RegistryUnavailable, Unauthorized
from contentd.images.media import MAX_MANIFEST_SIZE, MEDIA_TYPES_INDEX, MEDIA_TYPES_MANIFEST
from contentd.images.reference import Reference

__all__ = [
    "IDENTITY_TOKEN_USER",
    "MANIFEST_ACCEPT",
    "Credentials",
    "RegistryClient",
    "describe",
    "discard",
    "pull_scope",
    "push_scope",
]

log = logging.getLogger(__name__)

#: What a resolve accepts, OCI first (containerd sends the same four plus ``*/*``).
MANIFEST_ACCEPT: Final = ", ".join((*MEDIA_TYPES_MANIFEST, *MEDIA_TYPES_INDEX, "*/*"))
_CHALLENGE: Final = re.compile(r'(\w+)="([^"]*)"')
_TOKEN_LIMIT: Final = 1 << 20
_TOKEN: Final = re.compile(r"[\x21-\x7e]+")
#: redirects followed for one request
_MAX_REDIRECTS: Final = 5
#: the most of an unwanted body read to keep its connection
_DRAIN_LIMIT: Final = 64 << 10


#: the user name that marks a secret as an identity token (docker's credential helpers' form)
IDENTITY_TOKEN_USER: Final = "<token>"


@dataclass(frozen=True)
class Credentials:
    """A user name and a password, or (user name ``<token>``) an identity token: an OAuth2
    refresh token a registry's token service trades for access tokens. ``repr`` never
    shows the secret."""

    username: str
    secret: str = field(repr=False)

    @property
    def identity_token(self) -> bool:
        return self.username == IDENTITY_TOKEN_USER

    def basic(self) -> str:
        raw = f"{self.username}:{self.secret}".encode()
        return "Basic " + base64.b64encode(raw).decode()


def _sleep_backoff(attempt: int, base: float) -> None:
    time.sleep(min(base * (2**attempt), 5.0))


class RegistryClient:
    """Requests to one registry (``host[:port]``), HTTPS unless ``plain_http``."""

    def __init__(
        self,
        host: str,
        *,
        plain_http: bool = False,
        credentials: Credentials | None = None,
        retries: int = 4,
        backoff: float = 0.2,
        timeout: float = 60.0,
        maxsize: int = 8,
    ) -> None:
        # docker.io names Docker Hub; its registry API is served from registry-1.docker.io
        # (containerd's resolver maps the host the same way)
        self.host = "registry-1.docker.io" if host == "docker.io" else host
        self.scheme = "http" if plain_http else "https"
        self._credentials = credentials
        self._retries = retries
        self._backoff = backoff
        self._pool = urllib3.PoolManager(
            maxsize=maxsize,
            block=True,
            timeout=urllib3.Timeout(connect=min(timeout, 15.0), read=timeout),
            retries=urllib3.Retry(total=None, connect=0, read=0, status=0, other=0, redirect=5),
        )
        self._tokens: dict[str, str] = {}
        self._basic = False
        self._lock = threading.Lock()

    def close(self) -> None:
        self._pool.clear()
        self._tokens.clear()

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def url(self, path: str) -> str:
        if path.startswith(("http://", "https://")):
            return path
        return f"{self.scheme}://{self.host}{path}"

    # -- the one request path ----------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        *,
        scope: str,
        headers: Mapping[str, str] | None = None,
        body: bytes | None = None,
        retry: bool = True,
    ) -> urllib3.BaseHTTPResponse:
        """Send, authenticating and retrying as the module says; the caller checks the
        status and must release the response (its body is never read here)."""
        attempts = self._retries + 1 if retry else 1
        start = (method, self.url(path), body)
        method, url, body = start
        authenticated = False
        attempt = 0
        hops = 0
        while True:
            # credentials and tokens go to the registry itself, never to another host
            # (a redirect's target, an upload Location): that gets a bare request, and
            # a 401 from it is final
            own = self._is_own(url)
            sent = dict(headers or {})
            auth = self._auth_header(scope) if own else None
            if auth:
                sent["Authorization"] = auth
            try:
                resp = self._pool.request(
                    method,
                    url,
                    headers=sent,
                    body=body,
                    preload_content=False,  # a body is read only as far as it is needed
                    redirect=False,  # followed here, hop by hop
                )
            except HTTPError as err:
                reason, transient = describe(err)
                attempt += 1
                if not transient or attempt >= attempts:
                    where = f"registry {self.host}" if own else urllib.parse.urlsplit(url).netloc
                    raise RegistryUnavailable(f"{where}: {reason}") from None
                _sleep_backoff(attempt, self._backoff)
                method, url, body = start  # the registry may send another redirect
                hops = 0
                continue
            location = resp.get_redirect_location()
            if location:
                _release(resp)
                hops += 1
                url = urllib.parse.urljoin(url, location)
                if hops > _MAX_REDIRECTS or not url.startswith(("http://", "https://")):
                    raise RegistryError(f"{method} {path}: too many or bad redirects")
                if resp.status == 303:
                    method, body = "GET", None
                continue
            if resp.status == 401 and own and not authenticated:
                challenge = resp.headers.get("WWW-Authenticate", "")
                _release(resp)
                self._authenticate(challenge, scope)
                authenticated = True
                continue
            if resp.status >= 500 and attempt + 1 < attempts:
                _release(resp)
                attempt += 1
                _sleep_backoff(attempt, self._backoff)
                method, url, body = start  # the registry may send another redirect
                hops = 0
                continue
            if resp.status == 401:
                _release(resp)
                who = "the given credentials" if self._credentials else "anonymous access"
                where = self.host if own else f"{urllib.parse.urlsplit(url).netloc} (another host)"
                raise Unauthorized(f"{where}: {scope} refused for {who}")
            if resp.status == 403 and own:
                _release(resp)
                raise Forbidden(f"{self.host}: {method} {path}: {scope} denied to {self._who()}")
            return resp

    def _who(self) -> str:
        """Whom the registry took us for: a user name, never a secret."""
        creds = self._credentials
        if creds is None:
            return "anonymous access"
        return "the identity token" if creds.identity_token else f"user {creds.username!r}"

    def _is_own(self, url: str) -> bool:
        """Whether ``url`` is on this registry (scheme, host and port as configured)."""
        parts = urllib.parse.urlsplit(url)
        return parts.scheme == self.scheme and parts.netloc.lower() == self.host.lower()

    def _auth_header(self, scope: str) -> str | None:
        with self._lock:
            token = self._tokens.get(scope)
        if token:
            return f"Bearer {token}"
        if self._basic and self._credentials is not None:
            return self._credentials.basic()
        return None

    def _authenticate(self, challenge: str, scope: str) -> None:
        kind, _, params_text = challenge.partition(" ")
        params = dict(_CHALLENGE.findall(params_text))
        if kind.lower() == "basic":
            if self._credentials is None:
                raise Unauthorized(f"{self.host}: basic authentication required, no credentials")
            if self._credentials.identity_token:
                raise Unauthorized(
                    f"{self.host}: basic authentication required, and an identity token "
                    "works only with a token service"
                )
            self._basic = True
            return
        if kind.lower() != "bearer" or "realm" not in params:
            raise Unauthorized(f"{self.host}: unsupported authentication challenge {kind!r}")
        # the challenge's scope is what this request needs (a mount also wants pull on
        # the source repository); several scopes travel as several scope parameters
        wanted = (params.get("scope") or scope).split(" ")
        query = [("service", params.get("service", ""))] + [("scope", s) for s in wanted if s]
        realm = params["realm"]
        if not realm.startswith(("https://", "http://")):
            raise Unauthorized(f"{self.host}: token realm {realm!r} is not a URL")
        creds = self._credentials
        headers = {}
        body = None
        if creds is not None and creds.identity_token:
            # docker's OAuth2 form: the refresh token is POSTed, never sent as a password
            method, url = "POST", realm
            form = [
                ("grant_type", "refresh_token"),
                ("refresh_token", creds.secret),
                ("client_id", "contentd"),
                ("service", params.get("service", "")),
                ("scope", " ".join(s for s in wanted if s)),
            ]
            body = urllib.parse.urlencode(form).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        else:
            method = "GET"
            url = realm + ("&" if "?" in realm else "?") + urllib.parse.urlencode(query)
            if creds is not None:
                headers["Authorization"] = creds.basic()
        try:
            resp = self._pool.request(
                method, url, headers=headers, body=body, preload_content=False
            )
        except HTTPError as err:
            raise RegistryUnavailable(f"token service {realm}: {describe(err)[0]}") from None
        try:
            data = resp.read(_TOKEN_LIMIT + 1)
        finally:
            _release(resp)
        if resp.status == 401:
            who = "the credentials" if creds is not None else "anonymous access"
            raise Unauthorized(f"{self.host}: token service refused {who}")
        if resp.status == 403:
            raise Forbidden(
                f"{self.host}: token service denied {' '.join(wanted)} to {self._who()}"
            )
        if resp.status != 200 or len(data) > _TOKEN_LIMIT:
            raise RegistryError(f"token from {realm}: HTTP {resp.status}")
        try:
            doc = json.loads(data)
            token = doc.get("token") or doc.get("access_token")
        except (ValueError, AttributeError):
            token = None
        if not isinstance(token, str) or not _TOKEN.fullmatch(token):
            # a token goes into a header: anything but visible ASCII would break it
            raise RegistryError(f"token from {realm}: no token in the answer")
        with self._lock:
            self._tokens[scope] = token

    # -- manifests -----------------------------------------------------------------

    def resolve(self, ref: Reference) -> Descriptor:
        """The descriptor ``ref`` names: HEAD the manifest, GET when HEAD says too little."""
        scope = pull_scope(ref.repository)
        path = f"/v2/{ref.repository}/manifests/{ref.object}"
        headers = {"Accept": MANIFEST_ACCEPT}
        resp = self.request("HEAD", path, scope=scope, headers=headers)
        _release(resp)
        if resp.status == 404:
            raise NotFound(f"{ref}")
        media_type = _media_type(resp.headers.get("Content-Type", ""))
        digest = resp.headers.get("Docker-Content-Digest", "") or ref.digest
        length = resp.headers.get("Content-Length", "")
        # isascii: str.isdigit() also takes "²", which int() refuses
        if resp.status == 200 and digest and length.isascii() and length.isdigit() and media_type:
            if ref.digest and digest != ref.digest:
                raise DigestMismatch(ref.digest, digest, f"{ref}: registry answers for {digest}")
            digests.validate(digest)
            return Descriptor(media_type=media_type, digest=digest, size=int(length))
        # no usable HEAD: GET it and take the digest of the bytes (or the one asked for)
        data, media_type = self._get_manifest(path, scope, ref.digest or None, str(ref))
        digest = ref.digest or digests.digest_of(data)
        return Descriptor(media_type=media_type, digest=digest, size=len(data))

    def manifest(self, repository: str, desc: Descriptor) -> bytes:
        """The bytes of manifest or index ``desc``, verified against its digest and size."""
        path = f"/v2/{repository}/manifests/{desc.digest}"
        data, _ = self._get_manifest(path, pull_scope(repository), desc.digest, desc.digest)
        if len(data) != desc.size:
            raise SizeMismatch(
                desc.size,
                len(data),
                f"manifest {desc.digest}: size {len(data)}, descriptor says {desc.size}",
            )
        return data

    def _get_manifest(
        self, path: str, scope: str, digest: str | None, what: str
    ) -> tuple[bytes, str]:
        resp = self.request("GET", path, scope=scope, headers={"Accept": MANIFEST_ACCEPT})
        try:
            if resp.status == 404:
                raise NotFound(what)
            if resp.status != 200:
                raise RegistryError(f"GET {path}: HTTP {resp.status}")
            data = resp.read(MAX_MANIFEST_SIZE + 1)
        except HTTPError as err:
            raise RegistryUnavailable(
                f"registry {self.host}: GET {path}: {describe(err)[0]}"
            ) from None
        finally:
            _release(resp)
        if len(data) > MAX_MANIFEST_SIZE:
            raise RegistryError(f"{what}: manifest larger than {MAX_MANIFEST_SIZE} bytes")
        if digest is not None:
            got = digests.digest_of(data)
            if got != digest:
                raise DigestMismatch(digest, got, f"manifest {digest}: registry sent {got}")
        media_type = _media_type(resp.headers.get("Content-Type", ""))
        return data, media_type

    # -- blobs -----------------------------------------------------------------------

    def open_blob(
        self, repository: str, desc: Descriptor, offset: int = 0
    ) -> tuple[urllib3.BaseHTTPResponse, int]:
        """A streaming response for blob ``desc`` and the offset it starts at: ``offset``
        when the server honoured the Range request, 0 when it sent the whole blob.

        As containerd's fetcher does, the descriptor's ``urls`` (http and https only; a
        foreign layer's home) are tried first, in order, a 404 passing on to the next,
        then the registry. Such a URL on another host gets no credentials.

        Not retried here (the caller retries the whole download and resumes it from what
        it has): connection errors and 5xx are RegistryUnavailable."""
        scope = pull_scope(repository)
        for url in desc.urls:
            if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
                continue
            found = self._open_range(url, scope, desc, offset)
            if found is not None:
                return found
        path = f"/v2/{repository}/blobs/{desc.digest}"
        found = self._open_range(path, scope, desc, offset)
        if found is None:
            raise NotFound(f"blob {desc.digest} in {self.host}/{repository}")
        return found

    def _open_range(
        self, path: str, scope: str, desc: Descriptor, offset: int
    ) -> tuple[urllib3.BaseHTTPResponse, int] | None:
        """GET ``path`` from ``offset``; None for a 404."""
        headers = {"Range": f"bytes={offset}-"} if offset else {}
        resp = self.request("GET", path, scope=scope, headers=headers, retry=False)
        if resp.status == 206 and offset:
            if _content_range_start(resp.headers.get("Content-Range", "")) == offset:
                return resp, offset
            discard(resp)
            resp = self.request("GET", path, scope=scope, retry=False)
        if resp.status == 200:
            return resp, 0
        _release(resp)
        if resp.status == 404:
            return None
        if resp.status >= 500:
            raise RegistryUnavailable(f"blob {desc.digest}: HTTP {resp.status}")
        raise RegistryError(f"GET blob {desc.digest}: HTTP {resp.status}")

    # -- pushing -------------------------------------------------------------------------

    def has_blob(self, repository: str, digest: str) -> bool:
        resp = self.request(
            "HEAD", f"/v2/{repository}/blobs/{digest}", scope=push_scope(repository)
        )
        _release(resp)
        if resp.status in (200, 404):
            return resp.status == 200
        raise RegistryError(f"HEAD blob {digest}: HTTP {resp.status}")

    def start_upload(self, repository: str, mount: tuple[str, str] | None = None) -> str | None:
        """A new upload's location; None when ``mount`` (digest, from-repository) mounted
        the blob instead (the registry then holds it)."""
        path = f"/v2/{repository}/blobs/uploads/"
        if mount is not None:
            query = urllib.parse.urlencode({"mount": mount[0], "from": mount[1]})
            path += "?" + query
        resp = self.request("POST", path, scope=push_scope(repository), body=b"")
        _release(resp)
        if resp.status == 201 and mount is not None:
            return None
        if resp.status != 202:
            raise RegistryError(f"POST {path}: HTTP {resp.status}")
        return self._location(path, resp)

    def _location(self, path: str, resp: urllib3.BaseHTTPResponse) -> str:
        location = resp.headers.get("Location", "")
        if not location:
            raise RegistryError(f"{path}: upload answer without a Location")
        return urllib.parse.urljoin(self.url(path), location)

    def upload_chunk(self, repository: str, location: str, data: bytes, start: int) -> str:
        """PATCH one chunk at ``start``; the location for the next one."""
        headers = {
            "Content-Type": "application/octet-stream",
            "Content-Range": f"{start}-{start + len(data) - 1}",
        }
        resp = self.request(
            "PATCH",
            location,
            scope=push_scope(repository),
            headers=headers,
            body=data,
            retry=False,
        )
        _release(resp)
        if resp.status != 202:
            raise _upload_error("PATCH", resp.status)
        return self._location(location, resp)

    def finish_upload(self, repository: str, location: str, digest: str, data: bytes = b"") -> None:
        """PUT the upload's end (with the whole blob when ``data`` is the monolithic body)."""
        sep = "&" if urllib.parse.urlsplit(location).query else "?"
        url = location + sep + urllib.parse.urlencode({"digest": digest})
        headers = {"Content-Type": "application/octet-stream"}
        resp = self.request(
            "PUT", url, scope=push_scope(repository), headers=headers, body=data, retry=False
        )
        _release(resp)
        if resp.status not in (201, 204):
            raise _upload_error("PUT", resp.status)

    def put_manifest(self, repository: str, reference: str, desc: Descriptor, data: bytes) -> None:
        path = f"/v2/{repository}/manifests/{reference}"
        resp = self.request(
            "PUT",
            path,
            scope=push_scope(repository),
            headers={"Content-Type": desc.media_type},
            body=data,
        )
        _release(resp)
        if resp.status not in (200, 201):
            raise RegistryError(f"PUT manifest {desc.digest} as {reference}: HTTP {resp.status}")


def _upload_error(method: str, status: int) -> RegistryError | RegistryUnavailable:
    if status >= 500:
        return RegistryUnavailable(f"{method} upload: HTTP {status}")
    return RegistryError(f"{method} upload: HTTP {status}")


def describe(err: BaseException) -> tuple[str, bool]:
    """A short reason for a transport failure, and whether retrying may help. Socket
    errors are named by errno (``ECONNREFUSED``), never by their prose."""
    seen: list[BaseException] = []
    cur: BaseException | None = err
    while cur is not None and cur not in seen:
        seen.append(cur)
        # urllib's URLError.reason is the wrapped exception, ssl.SSLError's is a str
        reason = getattr(cur, "reason", None)
        cur = reason if isinstance(reason, BaseException) else cur.__cause__ or cur.__context__
    for e in seen:
        if isinstance(e, ssl.SSLError) or type(e).__name__ == "SSLError":
            text = getattr(e, "reason", None) or str(e)
            return f"TLS failed ({text}); for a plain-HTTP registry use --plain-http", False
    for e in seen:
        if isinstance(e, OSError) and e.errno:
            return f"unreachable ({errno.errorcode.get(e.errno, str(e.errno))})", True
    for e in seen:
        if isinstance(e, TimeoutError) or "timeout" in type(e).__name__.lower():
            return "timed out", True
    return type(seen[-1]).__name__, True


def pull_scope(repository: str) -> str:
    return f"repository:{repository}:pull"


def push_scope(repository: str) -> str:
    return f"repository:{repository}:pull,push"


def _media_type(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip()


def _content_range_start(value: str) -> int | None:
    m = re.fullmatch(r"bytes (\d+)-\d+/(?:\d+|\*)", value.strip())
    return int(m.group(1)) if m else None


def _release(resp: urllib3.BaseHTTPResponse) -> None:
    """Finish with a response whose body is not wanted: read what is left so the
    connection is reused, up to :data:`_DRAIN_LIMIT` bytes; a longer body (a registry
    answering with far more than it should) closes the connection instead."""
    try:
        rest = resp.read(_DRAIN_LIMIT + 1, decode_content=False)
    except (HTTPError, OSError):
        rest = None
    if rest is None or len(rest) > _DRAIN_LIMIT:
        resp.close()
    resp.release_conn()


def discard(resp: urllib3.BaseHTTPResponse) -> None:
    """Finish with a body that may be large and unread: close its connection."""
    resp.close()
    resp.release_conn()
