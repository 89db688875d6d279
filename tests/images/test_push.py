"""``contentd push`` to a real docker-registry, checked with skopeo, through a counting proxy."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli.conftest import Cli
from tests.peers.images import PushedImage, build_random_image, write_oci_layout
from tests.peers.process import run
from tests.peers.registry import RegistryPeer
from tests.peers.regproxy import RegistryProxy
from tests.peers.requires import requires

pytestmark = pytest.mark.containerd


def _skopeo(*args: str) -> bytes:
    return run([requires("skopeo"), "--insecure-policy", *args], timeout=120).stdout


def _blob_requests(proxy: RegistryProxy) -> list[tuple[str, str]]:
    return [(m, p) for m, p, _ in proxy.requests if "/blobs/" in p]


def test_push_mounts_across_repositories_and_skopeo_reads_it(
    cli: Cli, proxy: RegistryProxy, test_image: PushedImage, tmp_path: Path
) -> None:
    cli("fetch", "--plain-http", "--all-platforms", test_image.ref).ok()
    # the proxy is the same registry on another port: same host name, so the blobs'
    # distribution.source label (127.0.0.1 = contentd/test-image) allows mounts
    target = f"{proxy.host}/contentd/pushed:v2"
    result = cli("push", "--plain-http", target, test_image.ref).ok()
    assert result.lines == [f"{target} {test_image.digest}"]
    blob_calls = _blob_requests(proxy)
    leaves = {d for d in test_image.blobs if d != test_image.digest}
    leaves -= set(test_image.image.manifest_digests)
    mounts = [p for m, p in blob_calls if m == "POST" and "mount=" in p]
    assert len(mounts) == len(leaves)
    assert not [m for m, _ in blob_calls if m in ("PATCH", "PUT")]  # no bytes sent
    # manifests bottom-up: both platform manifests (by digest) before the tagged index
    manifest_puts = [p for m, p, _ in proxy.requests if m == "PUT" and "/manifests/" in p]
    assert manifest_puts[-1].endswith("/manifests/v2")
    assert {p.rsplit("/", 1)[1] for p in manifest_puts[:-1]} == set(
        test_image.image.manifest_digests
    )

    registry_ref = f"docker://{test_image.host}/contentd/pushed:v2"
    inspected = json.loads(_skopeo("inspect", "--tls-verify=false", registry_ref))
    assert inspected["Digest"] == test_image.digest
    copy = tmp_path / "copy"
    _skopeo(
        "copy",
        "--all",
        "--preserve-digests",
        "--src-tls-verify=false",
        registry_ref,
        f"oci:{copy}:v2",
    )
    for digest, data in test_image.blobs.items():
        assert (copy / "blobs" / "sha256" / digest[7:]).read_bytes() == data

    # again: the registry has everything, so only HEADs for the blobs
    proxy.requests.clear()
    cli("push", "--plain-http", target, test_image.ref).ok()
    assert {m for m, _ in _blob_requests(proxy)} == {"HEAD"}


def test_push_uploads_monolithic_and_chunked(cli: Cli, tmp_path: Path) -> None:
    requires("docker-registry", "skopeo")
    big = 20 << 20  # above the 16 MiB single-PUT limit: two PATCH chunks
    image = build_random_image((big, 4096), seed=23)
    layout = write_oci_layout(image, tmp_path / "layout", "v1")
    cli("import", "--base-name", "example.com/random", str(layout)).ok()
    with RegistryPeer() as registry, RegistryProxy("") as proxy:
        registry.start()
        proxy.upstream = registry.host
        target = f"{proxy.host}/contentd/random:v1"
        cli("push", "--plain-http", target, "example.com/random:v1").ok()
        layers = image.platforms[0].layers
        big_path = f"/blobs/{layers[0].digest}"
        calls = _blob_requests(proxy)
        patches = [p for m, p in calls if m == "PATCH"]
        assert len(patches) == 2
        puts = [p for m, p in calls if m == "PUT"]
        assert len(puts) == 3  # config, small layer (monolithic), big layer (closing PUT)
        assert all("digest=" in p for p in puts)
        assert not any(p.endswith(big_path) for m, p in calls if m == "GET")
        copy = tmp_path / "copy"
        _skopeo(
            "copy",
            "--preserve-digests",
            "--src-tls-verify=false",
            f"docker://{registry.host}/contentd/random:v1",
            f"oci:{copy}:v1",
        )
    for layer in layers:
        assert (copy / "blobs" / "sha256" / layer.digest[7:]).read_bytes() == layer.data


def test_push_refuses_an_image_the_store_holds_only_part_of(
    cli: Cli, test_image: PushedImage, registry_peer: RegistryPeer
) -> None:
    cli("fetch", "--plain-http", "--platform", "linux/arm64", test_image.ref).ok()
    target = f"{registry_peer.host}/contentd/partial:v1"
    result = cli("push", "--plain-http", target, test_image.ref)
    assert result.code == 1
    assert "failed precondition" in result.err and "not in the store" in result.err
    assert registry_peer.get("/v2/contentd/partial/tags/list").status == 404


def test_push_mounts_from_a_registry_named_by_an_ipv6_address(
    cli: Cli, registry_peer: RegistryPeer, test_image: PushedImage
) -> None:
    # fetch labels blobs with the host name alone ("::1", as containerd does); push must
    # look the same key up for "[::1]:<port>" to mount instead of uploading
    with (
        RegistryProxy(registry_peer.host, ipv6=True) as source,
        RegistryProxy(registry_peer.host, ipv6=True) as target_proxy,
    ):
        fetched = f"{source.host}/{test_image.repository}:{test_image.tag}"
        cli("fetch", "--plain-http", "--all-platforms", fetched).ok()
        target = f"{target_proxy.host}/contentd/pushed-v6:v1"
        cli("push", "--plain-http", target, fetched).ok()
        blob_calls = [
            (m, p) for m, p, _ in target_proxy.requests if "/blobs/" in p.split("?", 1)[0]
        ]
    assert [p for m, p in blob_calls if m == "POST" and "mount=" in p]
    assert not [m for m, _ in blob_calls if m in ("PATCH", "PUT")]  # no bytes sent


def test_a_registry_that_denies_the_push_is_permission_denied(
    cli: Cli, proxy: RegistryProxy, test_image: PushedImage
) -> None:
    cli("fetch", "--plain-http", "--all-platforms", test_image.ref).ok()
    proxy.forbid = {"POST", "PUT", "PATCH"}  # may pull, may not push
    target = f"{proxy.host}/contentd/denied:v1"
    result = cli("push", "--plain-http", target, test_image.ref)
    assert result.code == 1
    assert result.err.startswith("contentd: permission denied: "), result.err
    assert "denied to anonymous access" in result.err
    assert "anonymous access may not push this; give credentials: --user" in result.err
    with_user = cli("push", "--plain-http", "--user", "carol:s3cr3t", target, test_image.ref)
    assert "denied to user 'carol'" in with_user.err and "s3cr3t" not in with_user.err
    assert "the credentials from --user may not push this" in with_user.err
