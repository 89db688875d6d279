"""The end-to-end case: two containerd 1.6.20, each with its node's ``contentd serve``
as its proxy content plugin, the nodes one store (PostgreSQL + SeaweedFS). The second
containerd pulls the image the first pulled and downloads no blob bytes from the
registry (counted by a proxy in front of it): contentd links the blobs the other node
stored into its own pinned namespace when containerd opens a writer for them."""

from __future__ import annotations

import pytest

from tests.cluster.nodes import Cluster
from tests.e2e.stack import proxy_config
from tests.peers.counting_proxy import CountingProxy
from tests.peers.fixtures import ContainerdFactory
from tests.peers.images import PushedImage

pytestmark = [pytest.mark.containerd, pytest.mark.registry]


def test_second_node_pulls_without_downloading_a_blob(
    cluster: Cluster, containerd_peer_factory: ContainerdFactory, test_image: PushedImage
) -> None:
    nodes = {name: cluster.start(name) for name in ("a", "b")}
    containerds = {
        name: containerd_peer_factory(proxy_config(node.socket)) for name, node in nodes.items()
    }
    blobs = test_image.blobs
    with CountingProxy(test_image.host) as proxy:
        ref = f"{proxy.host}/{test_image.repository}:{test_image.tag}"
        pull = ("images", "pull", "--plain-http", "--all-platforms", ref)

        containerds["a"].ctr(*pull, timeout=180)
        # every layer and config came from /blobs/ (manifests from /manifests/)
        fetched = {*test_image.image.layer_digests, *test_image.image.config_digests}
        assert {path.rsplit("/", 1)[1] for path in proxy.blob_requests} == fetched
        assert proxy.blob_bytes > 0

        proxy.reset()
        containerds["b"].ctr(*pull, timeout=180)
        assert proxy.blob_bytes == 0, proxy.blob_requests
        assert proxy.blob_requests == []

    for name, containerd in containerds.items():
        listed = set(containerd.ctr("content", "ls", "-q").stdout.decode().split())
        assert listed == set(blobs), name
        check = containerd.ctr("images", "check").stdout.decode()
        assert "complete" in check and "incomplete" not in check, (name, check)
        for digest, data in blobs.items():
            assert containerd.ctr("content", "get", digest).stdout == data, (name, digest)
    # each containerd's blobs are recorded in its own node's pinned namespace
    for name in nodes:
        pinned = {info.digest for info in cluster.store(name, None).walk()}
        assert pinned == set(blobs), name
