"""Fixtures for fetch/push/layout tests: a ``contentd serve`` (GC only when asked), the
``contentd`` CLI bound to it in a fresh namespace, and a proxy in front of the session
registry."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest

from tests.cli.conftest import Cli
from tests.daemon.harness import QUIET_GC, ServeProcess
from tests.peers.contentd_fixtures import start_contentd
from tests.peers.registry import RegistryPeer
from tests.peers.regproxy import RegistryProxy


@pytest.fixture(scope="module")
def daemon() -> Iterator[ServeProcess]:
    daemon = start_contentd(QUIET_GC, name="contentd-images")
    try:
        yield daemon
    finally:
        if daemon.proc is not None and daemon.proc.poll() is not None:
            sys.stderr.write(daemon.log_text()[-4000:])
        daemon.close()


@pytest.fixture
def cli(daemon: ServeProcess, ctr_namespace: str) -> Cli:
    return Cli(daemon.address, ctr_namespace)


@pytest.fixture
def proxy(registry_peer: RegistryPeer) -> Iterator[RegistryProxy]:
    with RegistryProxy(registry_peer.host) as p:
        yield p
