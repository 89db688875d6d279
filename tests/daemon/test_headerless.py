"""Header-less callers (containerd's proxy plugin) and proxy content plugins (spec §6, item 62)."""

from __future__ import annotations

import hashlib
import io
import logging
from pathlib import Path

import grpc
import pytest

from contentd import Descriptor, FailedPrecondition, NotFound, write_blob
from contentd.api._pb.containerd.services.introspection.v1 import introspection_pb2 as ipb
from contentd.api._pb.containerd.services.introspection.v1 import (
    introspection_pb2_grpc as ipb_grpc,
)
from contentd.daemon.server import Daemon
from contentd.metadata import LABEL_GC_MANAGED_EXTERNALLY, MetadataDB
from contentd.proxy import ProxyStore
from tests.daemon.harness import QUIET_GC, start_daemon

PINNED = "containerd-proxy"


def _blob(data: bytes) -> tuple[bytes, str, Descriptor]:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    return data, digest, Descriptor(digest=digest, size=len(data))


def _metadata(daemon: Daemon) -> MetadataDB:
    db = daemon.plugins.get("io.containerd.metadata.v1")
    assert isinstance(db, MetadataDB)
    return db


def test_headerless_calls_land_in_the_pinned_namespace(base: Path) -> None:
    daemon = start_daemon(base)
    db = _metadata(daemon)
    db.leases("tenant").create("keep")
    headerless = ProxyStore(daemon.address, namespace=None)
    tenant = ProxyStore(daemon.address, namespace="tenant", lease="keep")
    unleased = ProxyStore(daemon.address, namespace="tenant")
    try:
        # created at start-up, labelled so that contentd's GC leaves it to its owner
        assert db.namespaces.get(PINNED) == {LABEL_GC_MANAGED_EXTERNALLY: "true"}

        shared, shared_digest, shared_desc = _blob(b"in both" * 100)
        private, private_digest, private_desc = _blob(b"only the tenant's")
        mine, mine_digest, mine_desc = _blob(b"only containerd's")
        write_blob(tenant, "t1", io.BytesIO(shared), shared_desc)  # leased: kept
        write_blob(unleased, "t2", io.BytesIO(private), private_desc)  # GC may take it
        # containerd's backend refs look like <ns>/1/<ref>
        write_blob(headerless, "default/1/c1", io.BytesIO(shared), shared_desc)
        write_blob(headerless, "default/1/c2", io.BytesIO(mine), mine_desc)

        # containerd's GC walks and deletes: it sees only the pinned namespace
        assert sorted(i.digest for i in headerless.walk()) == sorted([shared_digest, mine_digest])
        with pytest.raises(NotFound):
            headerless.info(private_digest)
        with pytest.raises(NotFound):
            headerless.delete(private_digest)
        headerless.delete(shared_digest)
        assert tenant.info(shared_digest).size == len(shared)
        with tenant.reader_at(shared_digest) as ra:
            assert ra.read_at(0, len(shared)) == shared

        # an open ingest: containerd's ListStatuses sees it, the tenant does not
        writer = headerless.writer("default/1/open", 10, None)
        writer.write(b"12345")
        writer.close()
        assert [s.ref for s in headerless.list_statuses()] == ["default/1/open"]
        assert tenant.list_statuses() == []

        # contentd's own GC keeps everything in the pinned namespace (no lease, no root),
        # while the tenant's unrooted blobs go
        db.garbage_collect()
        assert headerless.info(mine_digest).size == len(mine)
        assert headerless.status("default/1/open").offset == 5
        with pytest.raises(NotFound):
            tenant.info(private_digest)
        headerless.abort("default/1/open")
    finally:
        headerless.close()
        tenant.close()
        unleased.close()
        daemon.stop()


def test_pinned_label_is_restored(base: Path) -> None:
    daemon = start_daemon(base)
    headerless = ProxyStore(daemon.address, namespace=None)
    try:
        db = _metadata(daemon)
        db.namespaces.set_label(PINNED, LABEL_GC_MANAGED_EXTERNALLY, "")
        assert list(headerless.walk()) == []
        assert db.namespaces.get(PINNED) == {LABEL_GC_MANAGED_EXTERNALLY: "true"}
    finally:
        headerless.close()
        daemon.stop()


def test_pinning_can_be_configured_or_turned_off(base: Path) -> None:
    daemon = start_daemon(base / "a", 'version = 2\n[grpc]\nheaderless_namespace = "k8s-node"\n')
    store = ProxyStore(daemon.address, namespace=None)
    try:
        data, digest, desc = _blob(b"x")
        write_blob(store, "r", io.BytesIO(data), desc)
        assert [i.digest for i in _metadata(daemon).content_store("k8s-node").walk()] == [digest]
    finally:
        store.close()
        daemon.stop()
    daemon = start_daemon(base / "b", 'version = 2\n[grpc]\nheaderless_namespace = ""\n')
    store = ProxyStore(daemon.address, namespace=None)
    try:
        with pytest.raises(FailedPrecondition, match="namespace is required"):
            list(store.walk())
        assert PINNED not in _metadata(daemon).namespaces.list()
    finally:
        store.close()
        daemon.stop()


def _plugins(daemon: Daemon) -> dict[str, ipb.Plugin]:
    with grpc.insecure_channel(daemon.address) as channel:
        stub = ipb_grpc.IntrospectionStub(channel)
        return {f"{p.type}.{p.id}": p for p in stub.Plugins(ipb.PluginsRequest()).plugins}


def test_proxy_plugin_is_the_backend(base: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Item 62: local content disabled, a proxy configured: blobs land in the proxy's backend
    under their digest, written with <ns>/1/<ref> refs and no namespace header."""
    backend = start_daemon(base / "backend")
    caplog.set_level(logging.INFO)
    # a quiet GC: the front's unleased record must outlive the checks below
    front = start_daemon(
        base / "front",
        f"""
disabled_plugins = ["io.containerd.content.v1.content"]
{QUIET_GC}
[proxy_plugins.remote]
  type = "content"
  address = "{backend.socket}"
""",
    )
    store = ProxyStore(front.address, namespace="default")
    try:
        plugins = _plugins(front)
        assert "io.containerd.content.v1.content" not in plugins
        assert plugins["io.containerd.content.v1.remote"].exports["address"] == backend.socket
        meta = plugins["io.containerd.metadata.v1.sqlite"]
        assert meta.exports["content"] == "io.containerd.content.v1.remote"
        assert "content backend: io.containerd.content.v1.remote" in caplog.text

        data, digest, desc = _blob(b"through the proxy" * 1000)
        writer = store.writer("my-ref", desc.size, digest)
        writer.write(data[:100])
        pinned = _metadata(backend).content_store(PINNED)
        assert [s.ref for s in pinned.list_statuses()] == ["default/1/my-ref"]
        writer.write(data[100:])
        writer.commit(desc.size, digest)
        assert [i.digest for i in pinned.walk()] == [digest]
        with pinned.reader_at(digest) as ra:
            assert ra.read_at(0, desc.size) == data
        # the local store was never created
        assert not (Path(front.config.root) / "io.containerd.content.v1.content").exists()
    finally:
        store.close()
        front.stop()
        backend.stop()


def test_a_proxy_wins_over_the_local_store(base: Path) -> None:
    backend = start_daemon(base / "backend")
    front = start_daemon(
        base / "front",
        f'version = 2\n[proxy_plugins.remote]\ntype = "io.containerd.content.v1"\n'
        f'address = "unix://{backend.socket}"\n',
    )
    try:
        plugins = _plugins(front)
        assert "io.containerd.content.v1.content" in plugins
        exports = plugins["io.containerd.metadata.v1.sqlite"].exports
        assert exports["content"] == "io.containerd.content.v1.remote"
    finally:
        front.stop()
        backend.stop()


def test_one_listener_per_containerd(base: Path) -> None:
    """Two containerds on their own sockets: neither sees nor deletes the other's records."""
    daemon = start_daemon(
        base,
        f"""
version = 2
[headerless_listeners.node-a]
  address = "{base}/a.sock"
[headerless_listeners.node-b]
  address = "{base}/b.sock"
  namespace = "bee"
""",
    )
    a = ProxyStore(f"unix:{base}/a.sock", namespace=None)
    b = ProxyStore(f"unix:{base}/b.sock", namespace=None)
    sneaky = ProxyStore(f"unix:{base}/a.sock", namespace="bee")
    try:
        db = _metadata(daemon)
        for ns in ("node-a", "bee"):
            assert db.namespaces.get(ns) == {LABEL_GC_MANAGED_EXTERNALLY: "true"}
        data, digest, desc = _blob(b"both nodes pulled this")
        only_b, only_b_digest, only_b_desc = _blob(b"node b only")
        write_blob(a, "default/1/x", io.BytesIO(data), desc)
        write_blob(b, "default/1/x", io.BytesIO(data), desc)
        write_blob(b, "default/1/y", io.BytesIO(only_b), only_b_desc)
        assert [i.digest for i in a.walk()] == [digest]
        with pytest.raises(NotFound):
            a.delete(only_b_digest)
        a.delete(digest)  # node a's GC removes its record ...
        assert b.info(digest).size == len(data)  # ... node b keeps its own
        # a header naming another namespace does not get past the listener
        with pytest.raises(FailedPrecondition, match="serves only namespace 'node-a'"):
            list(sneaky.walk())
        # the main socket still pins to the default namespace
        with ProxyStore(daemon.address, namespace=None) as main:
            assert list(main.walk()) == []
    finally:
        for store in (a, b, sneaky):
            store.close()
        daemon.stop()
    assert not (base / "a.sock").exists() and not (base / "b.sock").exists()


def test_pinned_label_is_read_again_only_after_a_namespace_change(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from contentd.daemon.resolver import NamespaceResolver
    from contentd.local import LocalStore

    db = MetadataDB(tmp_path / "meta.db", LocalStore(tmp_path / "root"))
    try:
        resolver = NamespaceResolver(db, PINNED)
        reads: list[str] = []
        labels = db.namespaces.labels
        monkeypatch.setattr(
            db.namespaces, "labels", lambda name: reads.append(name) or labels(name)
        )
        for _ in range(5):
            resolver.resolve(None, None)
        assert len(reads) <= 2  # the first check, and one after its own label write
        assert db.namespaces.get(PINNED) == {LABEL_GC_MANAGED_EXTERNALLY: "true"}
        reads.clear()
        for _ in range(5):
            resolver.resolve(None, None)
        assert reads == []
        db.namespaces.set_label("other", "k", "v")  # any change: read again, once
        db.namespaces.set_label(PINNED, LABEL_GC_MANAGED_EXTERNALLY, "")
        resolver.resolve(None, None)
        assert db.namespaces.get(PINNED) == {LABEL_GC_MANAGED_EXTERNALLY: "true"}
    finally:
        db.close()


def test_resolved_stores_are_kept_and_checks_still_run_per_call(tmp_path: Path) -> None:
    """A (namespace, lease) resolves to the same store each time (no per-call set-up);
    the exclusive check and the namespace check still answer every call."""
    from contentd.content.errors import InvalidArgument
    from contentd.daemon.resolver import NamespaceResolver
    from contentd.local import LocalStore

    db = MetadataDB(tmp_path / "meta.db", LocalStore(tmp_path / "root"))
    try:
        resolver = NamespaceResolver(db, PINNED)
        pinned = resolver.resolve(None, None)
        assert resolver.resolve(None, None) is pinned
        assert pinned.namespace == PINNED and pinned.link_shared
        leased = resolver.resolve(None, "l1")
        assert leased is not pinned and leased.lease == "l1"
        named = resolver.resolve("ns1", None)
        assert named is resolver.resolve("ns1", None) and not named.link_shared
        bad = resolver.resolve("-bad-", None)
        for _ in range(2):  # an invalid namespace fails every call, not only the first
            with pytest.raises(InvalidArgument):
                bad.info("sha256:" + "0" * 64)
        exclusive = NamespaceResolver(db, PINNED, exclusive=True)
        exclusive.resolve(None, None)
        for _ in range(2):
            with pytest.raises(FailedPrecondition):
                exclusive.resolve("other", None)
    finally:
        db.close()
