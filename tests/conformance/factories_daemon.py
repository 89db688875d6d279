"""Conformance factories: ProxyStore against a live ``contentd serve`` (issue 4).

* ``daemon-shared``: the session's ``contentd serve --content-sharing-policy shared``;
* ``daemon-isolated``: the same with ``isolated``.

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
from tests.peers.contentd_fixtures import ContentdPool


def _daemon(request: pytest.FixtureRequest, policy: str) -> Harness:
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
