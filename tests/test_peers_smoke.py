"""Smoke tests of the real-peer harness: containerd + ctr, docker-registry, skopeo."""

from __future__ import annotations

import hashlib
import json
import os
import random
import subprocess
import tarfile
import tomllib
from pathlib import Path

import pytest

from tests.peers import (
    CommandError,
    ContainerdPeer,
    PeerError,
    PushedImage,
    RegistryPeer,
    build_image,
    requires,
    sha256_digest,
)
from tests.peers.fixtures import ContainerdFactory
from tests.peers.images import MT_INDEX, MT_LAYER, MT_LAYER_GZIP, MT_MANIFEST
from tests.peers.tomlwrite import dumps, merge

# -- harness pieces that need no peer ----------------------------------------------------


def test_requires_skips_locally_and_fails_in_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    missing = "contentd-no-such-binary-7f3a"
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception):
        requires(missing)
    for value in ("true", "1", "yes", "TRUE", "on"):
        monkeypatch.setenv("CI", value)
        with pytest.raises(pytest.fail.Exception):
            requires("sh", missing)
    for value in ("", "0", "false", "no"):
        monkeypatch.setenv("CI", value)
        with pytest.raises(pytest.skip.Exception):
            requires(missing)
    assert os.path.isabs(requires("sh"))


def test_toml_merge_unions_plugin_lists_and_round_trips() -> None:
    base = {"version": 2, "disabled_plugins": ["a"], "grpc": {"address": "/x.sock"}}
    extra = tomllib.loads(
        'disabled_plugins = ["b", "a"]\n'
        "[proxy_plugins.contentd]\n"
        'type = "content"\n'
        'address = "/tmp/c d.sock"\n'
        '[plugins."io.containerd.gc.v1.scheduler"]\n'
        "pause_threshold = 0.5\n"
    )
    merged = merge(base, extra)
    assert merged["disabled_plugins"] == ["a", "b"]
    assert merged["grpc"] == {"address": "/x.sock"}
    assert merged["proxy_plugins"]["contentd"]["address"] == "/tmp/c d.sock"
    assert tomllib.loads(dumps(merged)) == merged


def test_image_is_deterministic_multi_platform_and_self_consistent() -> None:
    image = build_image()
    assert build_image().blobs == image.blobs
    assert build_image(seed=1).index.digest != image.index.digest
    index = json.loads(image.index.data)
    assert index["mediaType"] == MT_INDEX
    assert [m["platform"]["architecture"] for m in index["manifests"]] == ["amd64", "arm64"]
    for p in image.platforms:
        manifest = json.loads(p.manifest.data)
        assert manifest["mediaType"] == MT_MANIFEST
        assert manifest["config"]["digest"] == p.config.digest
        assert [layer["digest"] for layer in manifest["layers"]] == [b.digest for b in p.layers]
        config = json.loads(p.config.data)
        assert config["rootfs"]["diff_ids"] == list(p.diff_ids)
        assert len(p.layers) == 3
    media = {b.media_type for p in image.platforms for b in p.layers}
    assert media == {MT_LAYER, MT_LAYER_GZIP}
    assert max(len(d) for d in image.blobs.values()) > 512 * 1024  # incompressible layer
    for digest, data in image.blobs.items():
        assert digest == "sha256:" + hashlib.sha256(data).hexdigest()


# -- containerd ------------------------------------------------------------------------------


@pytest.mark.containerd
def test_containerd_answers_version(containerd_peer: ContainerdPeer) -> None:
    out = containerd_peer.ctr("version").stdout.decode()
    server = out.split("Server:", 1)[1]
    assert "1.6.20" in server
    assert Path(containerd_peer.address).is_socket()
    assert containerd_peer.content_root == containerd_peer.root / "io.containerd.content.v1.content"


@pytest.mark.containerd
def test_containerd_loads_every_plugin_it_keeps(containerd_peer: ContainerdPeer) -> None:
    plugins = containerd_peer.plugins()
    assert {k: v for k, v in plugins.items() if v != "ok"} == {}
    for needed in (
        "io.containerd.content.v1.content",
        "io.containerd.metadata.v1.bolt",
        "io.containerd.snapshotter.v1.overlayfs",
        "io.containerd.grpc.v1.content",
        "io.containerd.grpc.v1.leases",
        "io.containerd.grpc.v1.namespaces",
        "io.containerd.grpc.v1.introspection",
        "io.containerd.grpc.v1.events",
        "io.containerd.gc.v1.scheduler",
    ):
        assert plugins.get(needed) == "ok", needed
    assert "io.containerd.grpc.v1.cri" not in plugins


@pytest.mark.containerd
def test_ctr_content_ingest_ls_get_round_trip(
    containerd_peer: ContainerdPeer, ctr_namespace: str
) -> None:
    data = random.Random(7).randbytes(300_000) + b"contentd"
    digest = sha256_digest(data)
    containerd_peer.ctr(
        "content",
        "ingest",
        "--expected-size",
        str(len(data)),
        "--expected-digest",
        digest,
        "smoke-ingest-" + ctr_namespace,
        namespace=ctr_namespace,
        input=data,
    )
    listed = containerd_peer.ctr("content", "ls", "-q", namespace=ctr_namespace).stdout.split()
    assert digest.encode() in listed
    got = containerd_peer.ctr("content", "get", digest, namespace=ctr_namespace).stdout
    assert got == data
    on_disk = containerd_peer.content_root / "blobs" / "sha256" / digest.removeprefix("sha256:")
    assert on_disk.read_bytes() == data
    # Another namespace does not see it.
    other = containerd_peer.ctr("content", "ls", "-q", namespace=ctr_namespace + "-x").stdout
    assert digest.encode() not in other.split()


@pytest.mark.containerd
def test_ctr_failure_raises_with_stderr(containerd_peer: ContainerdPeer) -> None:
    missing = "sha256:" + "0" * 64
    with pytest.raises(CommandError) as info:
        containerd_peer.ctr("content", "get", missing)
    assert isinstance(info.value, subprocess.CalledProcessError)
    assert "not found" in str(info.value)
    assert containerd_peer.ctr("content", "get", missing, check=False).returncode != 0


@pytest.mark.containerd
def test_factory_applies_extra_config_and_cleans_up(
    containerd_peer_factory: ContainerdFactory,
) -> None:
    peer = containerd_peer_factory(
        'disabled_plugins = ["io.containerd.snapshotter.v1.native"]\n'
        '[plugins."io.containerd.gc.v1.scheduler"]\n'
        "pause_threshold = 0.05\n"
    )
    plugins = peer.plugins()
    assert "io.containerd.snapshotter.v1.native" not in plugins
    assert plugins["io.containerd.snapshotter.v1.overlayfs"] == "ok"
    assert "io.containerd.grpc.v1.cri" not in plugins  # defaults still disabled
    written = tomllib.loads(peer.config_path.read_text())
    assert written["plugins"]["io.containerd.gc.v1.scheduler"]["pause_threshold"] == 0.05
    base = peer.base
    peer.close()
    assert not peer.running
    assert not base.exists()


@pytest.mark.containerd
def test_containerd_restart_keeps_content(containerd_peer_factory: ContainerdFactory) -> None:
    peer = containerd_peer_factory()
    data = b"kept across restarts\n"
    peer.ctr("content", "ingest", "restart-ref", input=data)
    peer.stop()
    assert not peer.running
    peer.start()
    assert peer.ctr("content", "get", sha256_digest(data)).stdout == data


@pytest.mark.containerd
def test_containerd_bad_config_reports_log_tail() -> None:
    requires("containerd", "ctr")
    peer = ContainerdPeer({"required_plugins": ["io.containerd.nope.v1.missing"]}, start_timeout=10)
    try:
        with pytest.raises(PeerError, match="log tail") as info:
            peer.start()
        assert "exited" in str(info.value)
        assert not peer.running
    finally:
        peer.close()


# -- registry and image round-trip -----------------------------------------------------------


@pytest.mark.registry
def test_registry_answers_v2(registry_peer: RegistryPeer) -> None:
    resp = registry_peer.get("/v2/")
    assert resp.status == 200
    assert resp.headers["docker-distribution-api-version"] == "registry/2.0"
    assert registry_peer.host.startswith("127.0.0.1:")


@pytest.mark.registry
def test_registry_serves_every_pushed_blob(
    registry_peer: RegistryPeer, test_image: PushedImage
) -> None:
    repo = test_image.repository
    image = test_image.image
    for digest, data in test_image.blobs.items():
        if digest == image.index.digest or digest in image.manifest_digests:
            resp = registry_peer.request(
                "GET",
                f"/v2/{repo}/manifests/{digest}",
                headers={"Accept": f"{MT_INDEX}, {MT_MANIFEST}"},
            )
        else:
            resp = registry_peer.get(f"/v2/{repo}/blobs/{digest}")
        assert resp.status == 200, digest
        assert resp.body == data, digest


@pytest.mark.containerd
@pytest.mark.registry
def test_pull_all_platforms_then_export_byte_checks_every_blob(
    containerd_peer: ContainerdPeer,
    test_image: PushedImage,
    ctr_namespace: str,
    tmp_path: Path,
) -> None:
    ns = ctr_namespace
    containerd_peer.ctr(
        "images", "pull", "--plain-http", "--all-platforms", test_image.ref, namespace=ns
    )
    listed = containerd_peer.ctr("images", "ls", namespace=ns).stdout.decode()
    assert test_image.ref in listed
    assert test_image.digest in listed
    stored = set(containerd_peer.ctr("content", "ls", "-q", namespace=ns).stdout.decode().split())
    assert set(test_image.blobs) <= stored
    for digest, data in test_image.blobs.items():
        assert containerd_peer.ctr("content", "get", digest, namespace=ns).stdout == data
        path = containerd_peer.content_root / "blobs" / "sha256" / digest.removeprefix("sha256:")
        assert path.read_bytes() == data

    out = tmp_path / "export.tar"
    containerd_peer.ctr(
        "images", "export", "--all-platforms", str(out), test_image.ref, namespace=ns
    )
    with tarfile.open(out) as tar:
        names = set(tar.getnames())
        assert {"index.json", "oci-layout"} <= names
        for digest, data in test_image.blobs.items():
            member = tar.extractfile("blobs/sha256/" + digest.removeprefix("sha256:"))
            assert member is not None, digest
            assert member.read() == data, digest
        index_file = tar.extractfile("index.json")
        assert index_file is not None
        top = json.loads(index_file.read())
    assert [m["digest"] for m in top["manifests"]] == [test_image.digest]
