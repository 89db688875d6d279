"""Conformance factories for ProxyStore (spec §6, checklist 60).

Load with ``-p tests.conformance.factories_proxy`` (or import it from harness.py).

* ``proxy-local``: ProxyStore -> an in-process contentd Content service over
  ``SingleStoreResolver(LocalStore(label_store=MemoryLabelStore()))``; the
  local store's quirks pass through (deleting a missing blob or aborting a
  missing ref succeeds).
* ``proxy-containerd``: ProxyStore -> the session's real containerd, in a fresh
  namespace per test, under a lease so its garbage collector leaves the test's
  content alone. That goes through containerd's metadata layer: missing blobs
  and refs are NotFound.

Both defer ``truncate(n)`` to the server (§6), so ``truncate_zero_only`` is off.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from contentd.proxy import ProxyStore
from tests.api.servers import ContentdServer, create_lease, delete_lease, local_store
from tests.conformance.harness import Harness, register


@register("proxy-local")
def _proxy_local(tmp_path: Path, request: pytest.FixtureRequest) -> Harness:
    server = ContentdServer(local_store(tmp_path / "content"))
    store = ProxyStore(server.address)
    others: list[ProxyStore] = []

    def reopen() -> ProxyStore:
        other = ProxyStore(server.address)
        others.append(other)
        return other

    def finish() -> None:
        for s in (store, *others):
            s.close()
        server.close()

    request.addfinalizer(finish)
    return Harness(
        store=store,
        missing_ok=True,
        truncate_zero_only=False,
        truncate_deferred=True,
        reopen=reopen,
    )


@register("proxy-containerd")
def _proxy_containerd(tmp_path: Path, request: pytest.FixtureRequest) -> Harness:
    peer = request.getfixturevalue("containerd_peer")
    namespace: str = request.getfixturevalue("ctr_namespace")
    lease = f"conformance-{namespace}"
    store = ProxyStore(peer.address, namespace=namespace, lease=lease)
    create_lease(store.channel, namespace, lease)
    others: list[ProxyStore] = []

    def reopen() -> ProxyStore:
        other = ProxyStore(peer.address, namespace=namespace, lease=lease)
        others.append(other)
        return other

    def finish() -> None:
        delete_lease(store.channel, namespace, lease)
        for s in (store, *others):
            s.close()

    request.addfinalizer(finish)
    return Harness(
        store=store,
        missing_ok=False,
        truncate_zero_only=False,
        truncate_deferred=True,
        reopen=reopen,
    )
