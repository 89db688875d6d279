"""Conformance factories: ProxyStore against a live ``contentd serve`` (issue 4).

* ``daemon-shared``: the session's ``contentd serve --content-sharing-policy shared``;
* ``daemon-isolated``: the same with ``isolated``;
* ``daemon-grpcio``: ``shared`` served by grpcio's server instead of the native HTTP/2
  engine (``[grpc] engine = "grpcio"``), so the suite covers both engines.

Each test works in a fresh namespace, under a lease created through the daemon's Leases
service so that contentd's own GC (running on its defaults, in the background) leaves the
test's content alone; the lease is deleted afterwards. Calls go through contentd's
metadata layer, so missing blobs and refs are NotFound; the proxy defers ``truncate(n)``
to the server (§6). Needs the ``tests.peers.contentd_fixtures`` plugin.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from contentd.proxy import ProxyStore
from tests.api.servers import create_lease, delete_lease
from tests.conformance.harness import Harness, register
from tests.daemon.harness import ServeProcess
from tests.peers.contentd_fixtures import ContentdPool, start_contentd

#: the session's grpcio-engine daemon (the pool keys daemons by policy only)
_GRPCIO: dict[str, ServeProcess] = {}
_GRPCIO_CONFIG = 'version = 2\n[grpc]\nengine = "grpcio"\n'


def _grpcio_daemon(request: pytest.FixtureRequest) -> ServeProcess:
    daemon = _GRPCIO.get("shared")
    if daemon is None or daemon.proc is None or daemon.proc.poll() is not None:
        if daemon is not None:
            daemon.close()
        daemon = start_contentd(_GRPCIO_CONFIG, policy="shared", name="contentd-grpcio")
        _GRPCIO["shared"] = daemon
        request.config.add_cleanup(daemon.close)
    return daemon


def _daemon(request: pytest.FixtureRequest, policy: str, engine: str | None = None) -> Harness:
    if engine == "grpcio":
        daemon = _grpcio_daemon(request)
    else:
        pool: ContentdPool = request.getfixturevalue("contentd_peers")
        daemon = pool.get(policy)
    namespace: str = request.getfixturevalue("ctr_namespace")
    lease = f"conformance-{namespace}"
    store = ProxyStore(daemon.address, namespace=namespace, lease=lease)
    create_lease(store.channel, namespace, lease)
    others: list[ProxyStore] = []

    def reopen() -> ProxyStore:
        other = ProxyStore(daemon.address, namespace=namespace, lease=lease)
        others.append(other)
        return other

    def finish() -> None:
        try:
            delete_lease(store.channel, namespace, lease)
        finally:
            for s in (store, *others):
                s.close()

    request.addfinalizer(finish)
    return Harness(
        store=store,
        labels=True,
        missing_ok=False,
        truncate_zero_only=False,
        truncate_deferred=True,
        reopen=reopen,
        extra={"daemon": daemon, "namespace": namespace, "policy": policy},
    )


@register("daemon-shared")
def _daemon_shared(tmp_path: Path, request: pytest.FixtureRequest) -> Harness:
    return _daemon(request, "shared")


@register("daemon-isolated")
def _daemon_isolated(tmp_path: Path, request: pytest.FixtureRequest) -> Harness:
    return _daemon(request, "isolated")


@register("daemon-grpcio")
def _daemon_grpcio(tmp_path: Path, request: pytest.FixtureRequest) -> Harness:
    return _daemon(request, "shared", engine="grpcio")
