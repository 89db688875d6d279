"""Non-distributable (foreign) layers, as containerd 1.6.20 treats them, against a real
docker-registry: ``ctr content fetch`` downloads them (from their ``urls`` first, then the
registry) and ``ctr images push`` skips them; ``contentd fetch`` and ``push`` do the same.

A docker foreign layer lives only at its URL (a small HTTP server here; the registry is
told to allow such URLs); an OCI non-distributable layer without URLs lives in the
registry, which then requires it for every repository the manifest goes to.
"""

from __future__ import annotations

import hashlib
import json
import threading
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.cli.conftest import Cli
from tests.daemon.harness import ServeProcess
from tests.peers.images import _gzip, _tar
from tests.peers.process import run
from tests.peers.registry import RegistryPeer
from tests.peers.requires import requires

pytestmark = pytest.mark.containerd

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_FOREIGN = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_NONDIST = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
REPO = "win/base"


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class Served:
    """Blobs over plain HTTP on 127.0.0.1, as a foreign layer's URL names them."""

    def __init__(self, blobs: dict[str, bytes]) -> None:
        self.hits: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                outer.hits.append(self.path)
                data = blobs.get(self.path)
                self.send_response(200 if data is not None else 404)
                self.send_header("Content-Length", str(len(data or b"")))
                self.end_headers()
                self.wfile.write(data or b"")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _put_blob(registry: RegistryPeer, data: bytes) -> None:
    started = registry.request("POST", f"/v2/{REPO}/blobs/uploads/")
    assert started.status == 202, started.body
    where = urllib.parse.urlsplit(started.headers["location"])
    query = (
        (where.query + "&" if where.query else "") + "digest=" + urllib.parse.quote(_digest(data))
    )
    headers = {"Content-Type": "application/octet-stream"}
    put = registry.request("PUT", f"{where.path}?{query}", body=data, headers=headers)
    assert put.status == 201, put.body


def _put_manifest(registry: RegistryPeer, tag: str, doc: dict[str, object]) -> str:
    data = json.dumps(doc).encode()
    headers = {"Content-Type": str(doc["mediaType"])}
    put = registry.request("PUT", f"/v2/{REPO}/manifests/{tag}", body=data, headers=headers)
    assert put.status == 201, put.body
    return _digest(data)


@dataclass
class Images:
    registry: RegistryPeer
    served: Served
    plain: bytes  # an ordinary layer
    foreign: bytes  # a docker foreign layer, only at its URL
    nondist: bytes  # an OCI non-distributable layer, in the registry
    config: bytes
    docker_manifest: str  # the digest of the image with the foreign layer

    def ref(self, tag: str) -> str:
        return f"{self.registry.host}/{REPO}:{tag}"


@pytest.fixture(scope="module")
def images() -> Iterator[Images]:
    requires("docker-registry")
    plain = _gzip(_tar([("plain.txt", b"plain layer", 0o644)]))
    foreign = _gzip(_tar([("foreign.txt", b"a Windows base layer, say", 0o644)]))
    nondist = _gzip(_tar([("nondist.txt", b"not for redistribution", 0o644)]))
    config = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {}}).encode()
    served = Served({"/foreign": foreign})
    urls = {"validation": {"manifests": {"urls": {"allow": ["^http://127\\.0\\.0\\.1"]}}}}
    try:
        with RegistryPeer(extra=urls) as registry:
            registry.start()
            for blob in (plain, nondist, config):
                _put_blob(registry, blob)

            def desc(media_type: str, data: bytes, **extra: object) -> dict[str, object]:
                return {"mediaType": media_type, "digest": _digest(data), "size": len(data)} | extra

            docker_manifest = _put_manifest(
                registry,
                "docker",
                {
                    "schemaVersion": 2,
                    "mediaType": DOCKER_MANIFEST,
                    "config": desc("application/vnd.docker.container.image.v1+json", config),
                    "layers": [
                        desc("application/vnd.docker.image.rootfs.diff.tar.gzip", plain),
                        desc(DOCKER_FOREIGN, foreign, urls=[served.url("/foreign")]),
                    ],
                },
            )
            _put_manifest(
                registry,
                "oci",
                {
                    "schemaVersion": 2,
                    "mediaType": OCI_MANIFEST,
                    "config": desc("application/vnd.oci.image.config.v1+json", config),
                    "layers": [
                        desc("application/vnd.oci.image.layer.v1.tar+gzip", plain),
                        desc(OCI_NONDIST, nondist),
                    ],
                },
            )
            yield Images(registry, served, plain, foreign, nondist, config, docker_manifest)
    finally:
        served.close()


def _labels(cli: Cli, namespace: str | None = None) -> dict[str, dict[str, str]]:
    docs = cli("--output", "jsonl", "content", "ls", namespace=namespace).ok().json_lines()
    return {doc["digest"]: doc["labels"] or {} for doc in docs}


def test_fetch_downloads_them_as_ctr_does(cli: Cli, daemon: ServeProcess, images: Images) -> None:
    images.served.hits.clear()
    cli("fetch", "--plain-http", images.ref("docker")).ok()
    assert images.served.hits == ["/foreign"]  # from its URL: the registry has no copy
    cli("fetch", "--plain-http", images.ref("oci")).ok()
    for blob in (images.plain, images.foreign, images.nondist, images.config):
        assert cli("content", "get", _digest(blob)).ok().out == blob
    # stock ctr fetches (client-side) the same blobs with the same labels
    ctr = requires("ctr")
    other = cli.namespace + "-ctr"
    for tag in ("docker", "oci"):
        argv = [ctr, "-a", str(daemon.socket), "-n", other, "content", "fetch", "--plain-http"]
        run([*argv, images.ref(tag)])
    assert _labels(cli) == _labels(cli, other)


def test_push_skips_them_as_ctr_does(cli: Cli, images: Images) -> None:
    cli("fetch", "--plain-http", images.ref("docker")).ok()
    # a foreign layer need not even be held to push the image
    cli("content", "rm", _digest(images.foreign)).ok()
    target = f"{images.registry.host}/copies/docker:v1"
    pushed = cli("push", "--plain-http", target, images.ref("docker")).ok()
    assert f"{_digest(images.foreign)}: skipped" in pushed.err
    got = images.registry.get(f"/v2/copies/docker/blobs/{_digest(images.foreign)}")
    assert got.status == 404  # never uploaded
    for blob in (images.plain, images.config):
        assert images.registry.get(f"/v2/copies/docker/blobs/{_digest(blob)}").status == 200
    # the manifest went as it was, the layer's URL with it
    assert pushed.lines == [f"{target} {images.docker_manifest}"]
