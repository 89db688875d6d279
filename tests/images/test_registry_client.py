"""The registry client against a registry that answers with hostile headers.

A real docker-registry (htpasswd basic auth) behind :class:`RegistryProxy`, driven through
:class:`RegistryClient` directly: what the client sends where, and what it refuses.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from contentd.content import digest as digests
from contentd.images.errors import Unauthorized
from contentd.images.registry import Credentials, RegistryClient
from tests.peers.registry import RegistryPeer
from tests.peers.regproxy import RegistryProxy

_USER, _PASSWORD = "alice", "s3cret-pw"


@pytest.fixture(scope="module")
def auth_registry() -> Iterator[RegistryPeer]:
    with RegistryPeer(htpasswd={_USER: _PASSWORD}) as registry:
        yield registry


@pytest.fixture
def auth_proxy(auth_registry: RegistryPeer) -> Iterator[RegistryProxy]:
    with RegistryProxy(auth_registry.host) as p:
        yield p


def _client(proxy: RegistryProxy) -> RegistryClient:
    return RegistryClient(
        proxy.host, plain_http=True, credentials=Credentials(_USER, _PASSWORD), retries=0
    )


def test_an_upload_location_on_another_host_gets_no_credentials(
    auth_proxy: RegistryProxy,
) -> None:
    # the proxy answers for both names; the client must treat localhost:<port> as a
    # different host from 127.0.0.1:<port> and send it neither the password nor a token
    port = auth_proxy.host.rsplit(":", 1)[1]
    other = f"localhost:{port}"
    data = b"not for the other host"
    with _client(auth_proxy) as client:
        location = client.start_upload("hostile/location")
        assert location is not None
        auth_proxy.location_host = other
        location = client.start_upload("hostile/location")
        assert location is not None and location.startswith(f"http://{other}/")
        with pytest.raises(Unauthorized):
            client.finish_upload("hostile/location", location, digests.digest_of(data), data)
    to_other = [(path, auth) for host, path, auth in auth_proxy.seen if host == other]
    assert to_other, "the upload went to the other host"
    assert not any(auth for _, auth in to_other), to_other
    # the registry itself still got them (after its 401)
    assert any(auth for host, _, auth in auth_proxy.seen if host == auth_proxy.host)


def test_a_huge_answer_to_a_small_request_is_not_read_whole(auth_proxy: RegistryProxy) -> None:
    # an upload's POST answered with 1 GiB of body: the client takes the headers it needs
    # and drops the connection instead of reading (or holding) the rest
    auth_proxy.pad["POST"] = 1 << 30
    with _client(auth_proxy) as client:
        location = client.start_upload("hostile/huge")
        assert location is not None
        auth_proxy.pad.clear()
        data = b"still works on a fresh connection"
        location = client.start_upload("hostile/huge")
        client.finish_upload("hostile/huge", location, digests.digest_of(data), data)
        assert client.has_blob("hostile/huge", digests.digest_of(data))
    assert auth_proxy.padded < 64 << 20, auth_proxy.padded


def test_a_manifest_head_with_a_bogus_length_falls_back_to_get(
    auth_proxy: RegistryProxy, auth_registry: RegistryPeer
) -> None:
    from contentd.images.reference import parse_reference
    from tests.peers.images import build_image, push_image

    pushed = push_image(build_image(seed=5), auth_registry, creds=f"{_USER}:{_PASSWORD}")
    ref = parse_reference(f"{auth_proxy.host}/{pushed.repository}:{pushed.tag}")
    # "²" passes str.isdigit() but is no number: the HEAD says too little, so GET it
    auth_proxy.headers[("HEAD", "content-length")] = "\u00b2"
    with _client(auth_proxy) as client:
        desc = client.resolve(ref)
    assert desc.digest == pushed.image.index.digest
    assert ("GET", f"/v2/{ref.repository}/manifests/{ref.object}") in [
        (m, p) for m, p, _ in auth_proxy.requests
    ]


def test_a_401_after_a_redirect_elsewhere_gets_no_credentials(
    auth_proxy: RegistryProxy, auth_registry: RegistryPeer
) -> None:
    # blob storage on another host answers 401 with a token realm of its own choosing:
    # the client must not send it (or its realm) the registry's credentials
    from contentd.content.types import Descriptor
    from tests.peers.images import build_image, push_image

    pushed = push_image(build_image(seed=6), auth_registry, creds=f"{_USER}:{_PASSWORD}")
    layer = pushed.image.platform("linux/amd64").layers[0]
    port = auth_proxy.host.rsplit(":", 1)[1]
    other = f"localhost:{port}"
    auth_proxy.location_host = other
    auth_proxy.redirect_blobs = True
    auth_proxy.other_headers["www-authenticate"] = f'Bearer realm="http://{other}/token"'
    desc = Descriptor(media_type=layer.media_type, digest=layer.digest, size=layer.size)
    with _client(auth_proxy) as client:
        assert client.has_blob(pushed.repository, layer.digest)  # basic auth from now on
        with pytest.raises(Unauthorized):
            client.open_blob(pushed.repository, desc)
    to_other = [(path, auth) for host, path, auth in auth_proxy.seen if host == other]
    assert to_other, "the blob GET was redirected to the other host"
    assert not any(auth for _, auth in to_other), to_other


def test_a_token_that_is_no_header_value_is_refused(auth_proxy: RegistryProxy) -> None:
    # a token service answering with a "token" that would split the Authorization header
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from contentd.images.errors import RegistryError

    class Tokens(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = json.dumps({"token": "abc\r\nX-Injected: 1"}).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Tokens)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        realm = f"http://127.0.0.1:{server.server_address[1]}/token"
        auth_proxy.headers[("HEAD", "www-authenticate")] = f'Bearer realm="{realm}"'
        with _client(auth_proxy) as client, pytest.raises(RegistryError, match="no token"):
            client.has_blob("hostile/token", "sha256:" + "0" * 64)
    finally:
        server.shutdown()
        server.server_close()


def test_docker_io_is_served_from_registry_1_docker_io() -> None:
    """As containerd's resolver does: docker.io/library/alpine is fetched from Docker Hub's
    API host; any other host is used as written."""
    with RegistryClient("docker.io") as hub:
        assert hub.url("/v2/") == "https://registry-1.docker.io/v2/"
    with RegistryClient("127.0.0.1:5000", plain_http=True) as local:
        assert local.url("/v2/") == "http://127.0.0.1:5000/v2/"
