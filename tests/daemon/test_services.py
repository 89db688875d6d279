"""Leases, Namespaces, Introspection, Version and Health services of a running daemon."""

from __future__ import annotations

import hashlib
import io
import threading
import uuid
from pathlib import Path

import grpc
import pytest
from google.protobuf import empty_pb2, field_mask_pb2

import contentd
from contentd import Descriptor, write_blob
from contentd.api._pb.containerd.services.introspection.v1 import (
    introspection_pb2 as ipb,
)
from contentd.api._pb.containerd.services.introspection.v1 import (
    introspection_pb2_grpc as ipb_grpc,
)
from contentd.api._pb.containerd.services.leases.v1 import leases_pb2 as lpb
from contentd.api._pb.containerd.services.leases.v1 import leases_pb2_grpc as lpb_grpc
from contentd.api._pb.containerd.services.namespaces.v1 import namespace_pb2 as npb
from contentd.api._pb.containerd.services.namespaces.v1 import namespace_pb2_grpc as npb_grpc
from contentd.api._pb.containerd.services.version.v1 import version_pb2_grpc
from contentd.api._pb.grpc.health.v1 import health_pb2 as hpb
from contentd.api._pb.grpc.health.v1 import health_pb2_grpc as hpb_grpc
from contentd.content.errors import InvalidArgument
from contentd.daemon.server import Daemon
from contentd.metadata import MetadataDB
from contentd.plugins import InitContext, Registration
from contentd.proxy import ProxyStore
from tests.daemon.harness import BUILTIN_PLUGINS, SKIPPED_PLUGINS, md, start_daemon

Code = grpc.StatusCode


def _code(call: object) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as info:
        call()  # type: ignore[operator]
    err = info.value
    return err.code(), err.details()  # type: ignore[attr-defined]


def _blob(data: bytes) -> tuple[bytes, str]:
    return data, "sha256:" + hashlib.sha256(data).hexdigest()


def _metadata(daemon: Daemon) -> MetadataDB:
    db = daemon.plugins.get("io.containerd.metadata.v1")
    assert isinstance(db, MetadataDB)
    return db


# -- leases ---------------------------------------------------------------------------


def test_leases_create_list_delete(channel: grpc.Channel) -> None:
    stub = lpb_grpc.LeasesStub(channel)
    ns = md("leases1")
    generated = stub.Create(lpb.CreateRequest(), metadata=ns).lease
    assert generated.id  # ctr relies on the server making one up
    named = stub.Create(lpb.CreateRequest(id="mine", labels={"k": "v"}), metadata=ns).lease
    assert named.id == "mine" and dict(named.labels) == {"k": "v"}
    assert named.created_at.seconds > 0
    code, details = _code(lambda: stub.Create(lpb.CreateRequest(id="mine"), metadata=ns))
    assert code == Code.ALREADY_EXISTS and "mine" in details
    ids = [lease.id for lease in stub.List(lpb.ListRequest(), metadata=ns).leases]
    assert sorted(ids) == sorted([generated.id, "mine"])
    only = stub.List(lpb.ListRequest(filters=['labels."k"==v']), metadata=ns).leases
    assert [lease.id for lease in only] == ["mine"]
    # leases are per namespace
    assert list(stub.List(lpb.ListRequest(), metadata=md("leases2")).leases) == []
    stub.Delete(lpb.DeleteRequest(id="mine"), metadata=ns)
    code, _ = _code(lambda: stub.Delete(lpb.DeleteRequest(id="mine"), metadata=ns))
    assert code == Code.NOT_FOUND


def test_leases_need_a_namespace(channel: grpc.Channel) -> None:
    stub = lpb_grpc.LeasesStub(channel)
    code, details = _code(lambda: stub.List(lpb.ListRequest()))
    assert code == Code.FAILED_PRECONDITION
    assert details == "namespace is required: failed precondition"


def test_lease_resources(channel: grpc.Channel) -> None:
    stub = lpb_grpc.LeasesStub(channel)
    ns = md("leases3")
    stub.Create(lpb.CreateRequest(id="l"), metadata=ns)
    digest = "sha256:" + "a" * 64
    stub.AddResource(
        lpb.AddResourceRequest(id="l", resource=lpb.Resource(id=digest, type="content")),
        metadata=ns,
    )
    stub.AddResource(
        lpb.AddResourceRequest(id="l", resource=lpb.Resource(id="ref1", type="ingests")),
        metadata=ns,
    )
    listed = stub.ListResources(lpb.ListResourcesRequest(id="l"), metadata=ns).resources
    assert [(r.type, r.id) for r in listed] == [("content", digest), ("ingests", "ref1")]
    stub.DeleteResource(
        lpb.DeleteResourceRequest(id="l", resource=lpb.Resource(id="ref1", type="ingests")),
        metadata=ns,
    )
    listed = stub.ListResources(lpb.ListResourcesRequest(id="l"), metadata=ns).resources
    assert [r.id for r in listed] == [digest]
    code, _ = _code(
        lambda: stub.AddResource(
            lpb.AddResourceRequest(id="l", resource=lpb.Resource(id="nope", type="content")),
            metadata=ns,
        )
    )
    assert code == Code.INVALID_ARGUMENT
    code, _ = _code(
        lambda: stub.AddResource(
            lpb.AddResourceRequest(id="l", resource=lpb.Resource(id="x", type="images")),
            metadata=ns,
        )
    )
    assert code == Code.UNIMPLEMENTED
    code, _ = _code(lambda: stub.ListResources(lpb.ListResourcesRequest(id="zz"), metadata=ns))
    assert code == Code.NOT_FOUND


def test_lease_delete_sync_waits_for_gc(daemon: Daemon, channel: grpc.Channel) -> None:
    stub = lpb_grpc.LeasesStub(channel)
    store = ProxyStore(daemon.address, namespace="leases4", lease="keep")
    unleased = ProxyStore(daemon.address, namespace="leases4")
    try:
        stub.Create(lpb.CreateRequest(id="keep"), metadata=md("leases4"))
        stub.Create(lpb.CreateRequest(id="drop"), metadata=md("leases4"))
        kept, kept_digest = _blob(b"kept by a lease")
        gone, gone_digest = _blob(b"held by nothing")
        write_blob(store, "r1", io.BytesIO(kept), Descriptor(digest=kept_digest, size=len(kept)))
        write_blob(unleased, "r2", io.BytesIO(gone), Descriptor(digest=gone_digest, size=len(gone)))
        stub.Delete(lpb.DeleteRequest(id="drop", sync=True), metadata=md("leases4"))
        # the collection ran before Delete returned
        assert unleased.info(kept_digest).size == len(kept)
        with pytest.raises(contentd.NotFound):
            unleased.info(gone_digest)
    finally:
        store.close()
        unleased.close()


# -- namespaces -----------------------------------------------------------------------


def test_namespaces_create_get_list_delete(channel: grpc.Channel) -> None:
    stub = npb_grpc.NamespacesStub(channel)
    created = stub.Create(
        npb.CreateNamespaceRequest(namespace=npb.Namespace(name="nsa", labels={"a": "b"}))
    ).namespace
    assert created.name == "nsa" and dict(created.labels) == {"a": "b"}
    code, _ = _code(
        lambda: stub.Create(npb.CreateNamespaceRequest(namespace=npb.Namespace(name="nsa")))
    )
    assert code == Code.ALREADY_EXISTS
    got = stub.Get(npb.GetNamespaceRequest(name="nsa")).namespace
    assert dict(got.labels) == {"a": "b"}
    # containerd answers Get for any name: a missing namespace has no labels
    missing = stub.Get(npb.GetNamespaceRequest(name="no-such-ns")).namespace
    assert missing.name == "no-such-ns" and dict(missing.labels) == {}
    names = {n.name: dict(n.labels) for n in stub.List(npb.ListNamespacesRequest()).namespaces}
    assert names["nsa"] == {"a": "b"}
    code, _ = _code(
        lambda: stub.Create(npb.CreateNamespaceRequest(namespace=npb.Namespace(name="bad/ns")))
    )
    assert code == Code.INVALID_ARGUMENT
    stub.Delete(npb.DeleteNamespaceRequest(name="nsa"))
    code, _ = _code(lambda: stub.Delete(npb.DeleteNamespaceRequest(name="nsa")))
    assert code == Code.NOT_FOUND


def test_namespace_update_with_and_without_mask(channel: grpc.Channel) -> None:
    stub = npb_grpc.NamespacesStub(channel)
    stub.Create(
        npb.CreateNamespaceRequest(
            namespace=npb.Namespace(name="nsu", labels={"a": "1", "b": "2", "c": "3"})
        )
    )

    def update(labels: dict[str, str], *paths: str) -> None:
        stub.Update(
            npb.UpdateNamespaceRequest(
                namespace=npb.Namespace(name="nsu", labels=labels),
                update_mask=field_mask_pb2.FieldMask(paths=list(paths)),
            )
        )

    def labels() -> dict[str, str]:
        return dict(stub.Get(npb.GetNamespaceRequest(name="nsu")).namespace.labels)

    update({"a": "10", "z": "ignored"}, "labels.a", "labels.b")  # b absent -> removed
    assert labels() == {"a": "10", "c": "3"}
    update({"x": "y"})  # no mask: replace all
    assert labels() == {"x": "y"}
    code, details = _code(lambda: update({"x": "q"}, "labels.x", "name"))
    assert code == Code.INVALID_ARGUMENT and details == 'cannot update "name" field'
    assert labels() == {"x": "y"}  # nothing applied


def test_namespace_with_content_cannot_be_deleted(daemon: Daemon, channel: grpc.Channel) -> None:
    stub = npb_grpc.NamespacesStub(channel)
    store = ProxyStore(daemon.address, namespace="nsfull")
    try:
        data, digest = _blob(b"something")
        write_blob(store, "r", io.BytesIO(data), Descriptor(digest=digest, size=len(data)))
        code, details = _code(lambda: stub.Delete(npb.DeleteNamespaceRequest(name="nsfull")))
        assert code == Code.FAILED_PRECONDITION
        assert "must be empty" in details
        store.delete(digest)
        stub.Delete(npb.DeleteNamespaceRequest(name="nsfull"))
    finally:
        store.close()


# -- introspection, version, health ------------------------------------------------------


def _in_order(expected: list[str], got: list[str]) -> bool:
    """Whether ``expected`` is a subsequence of ``got``."""
    rest = iter(got)
    return all(name in rest for name in expected)


def test_introspection_lists_plugins(daemon: Daemon, channel: grpc.Channel) -> None:
    stub = ipb_grpc.IntrospectionStub(channel)
    plugins = stub.Plugins(ipb.PluginsRequest()).plugins
    names = [f"{p.type}.{p.id}" for p in plugins]
    assert _in_order(BUILTIN_PLUGINS, names), names  # a plugin added later may sit anywhere
    skipped = [f"{p.type}.{p.id}" for p in plugins if p.HasField("init_err")]
    assert [name for name in skipped if name in BUILTIN_PLUGINS] == SKIPPED_PLUGINS
    assert all(not p.platforms for p in plugins)
    by_id = {(p.type, p.id): p for p in plugins}
    meta = by_id[("io.containerd.metadata.v1", "sqlite")]
    assert list(meta.requires) == [
        "io.containerd.content.v1",
        "io.contentd.content.v1",
        "io.contentd.metadata.v1",
    ]
    assert meta.exports["policy"] == "shared"
    assert meta.exports["path"] == f"{daemon.config.root}/io.containerd.metadata.v1.sqlite/meta.db"
    assert meta.exports["content"] == "io.containerd.content.v1.content"
    local = by_id[("io.containerd.content.v1", "content")]
    assert local.exports["root"] == f"{daemon.config.root}/io.containerd.content.v1.content"
    grpc_only = stub.Plugins(ipb.PluginsRequest(filters=["type==io.containerd.grpc.v1"])).plugins
    assert {p.type for p in grpc_only} == {"io.containerd.grpc.v1"}
    grpc_builtin = {n for n in BUILTIN_PLUGINS if n.startswith("io.containerd.grpc.v1.")}
    assert grpc_builtin <= {f"{p.type}.{p.id}" for p in grpc_only}
    either = stub.Plugins(ipb.PluginsRequest(filters=["id==content", "exports.policy"])).plugins
    assert {f"{p.type}.{p.id}" for p in either} == {
        "io.containerd.content.v1.content",
        "io.containerd.grpc.v1.content",
        "io.containerd.metadata.v1.sqlite",
    }
    code, _ = _code(lambda: stub.Plugins(ipb.PluginsRequest(filters=["id=="])))
    assert code == Code.INVALID_ARGUMENT


def _failing(ic: InitContext) -> object:
    raise InvalidArgument("no thanks")


def test_introspection_reports_init_errors_and_keeps_the_uuid(base: Path) -> None:
    extra = [Registration("io.example.v1", "failing", _failing)]
    daemon = start_daemon(base, extra=extra, policy="isolated")
    try:
        with grpc.insecure_channel(daemon.address) as channel:
            stub = ipb_grpc.IntrospectionStub(channel)
            plugins = {f"{p.type}.{p.id}": p for p in stub.Plugins(ipb.PluginsRequest()).plugins}
            failing = plugins["io.example.v1.failing"]
            assert failing.init_err.code == Code.INVALID_ARGUMENT.value[0]
            assert failing.init_err.message == "no thanks: invalid argument"
            assert plugins["io.containerd.metadata.v1.sqlite"].exports["policy"] == "isolated"
            first = stub.Server(empty_pb2.Empty()).uuid
            assert str(uuid.UUID(first)) == first
            assert stub.Server(empty_pb2.Empty()).uuid == first
    finally:
        daemon.stop()
    daemon = start_daemon(base)
    try:
        with grpc.insecure_channel(daemon.address) as channel:
            assert ipb_grpc.IntrospectionStub(channel).Server(empty_pb2.Empty()).uuid == first
    finally:
        daemon.stop()


def test_unknown_policy_fails_metadata_init_only(base: Path) -> None:
    daemon = start_daemon(
        base,
        'version = 2\n[plugins."io.containerd.metadata.v1.sqlite"]\n'
        'content_sharing_policy = "sometimes"\n',
    )
    try:
        with grpc.insecure_channel(daemon.address) as channel:
            stub = ipb_grpc.IntrospectionStub(channel)
            plugins = {f"{p.type}.{p.id}": p for p in stub.Plugins(ipb.PluginsRequest()).plugins}
            meta = plugins["io.containerd.metadata.v1.sqlite"]
            assert meta.init_err.code == Code.INVALID_ARGUMENT.value[0]
            assert "unknown policy" in meta.init_err.message
            assert plugins["io.containerd.grpc.v1.content"].HasField("init_err")
            assert not plugins["io.containerd.grpc.v1.version"].HasField("init_err")
            assert version_pb2_grpc.VersionStub(channel).Version(empty_pb2.Empty()).version
    finally:
        daemon.stop()


def test_version(channel: grpc.Channel) -> None:
    response = version_pb2_grpc.VersionStub(channel).Version(empty_pb2.Empty())
    assert response.version == contentd.__version__
    assert response.revision == "" or len(response.revision) in (40, 64)


def test_health_check(channel: grpc.Channel) -> None:
    stub = hpb_grpc.HealthStub(channel)
    serving = hpb.HealthCheckResponse.SERVING
    assert stub.Check(hpb.HealthCheckRequest()).status == serving
    for name in (
        "containerd.services.content.v1.Content",
        "containerd.services.leases.v1.Leases",
        "containerd.services.events.v1.Events",
    ):
        assert stub.Check(hpb.HealthCheckRequest(service=name)).status == serving
    code, _ = _code(lambda: stub.Check(hpb.HealthCheckRequest(service="nope")))
    assert code == Code.NOT_FOUND


def test_health_watch_sees_shutdown(base: Path) -> None:
    daemon = start_daemon(base)
    seen: list[int] = []
    got_first = threading.Event()
    with grpc.insecure_channel(daemon.address) as channel:
        stub = hpb_grpc.HealthStub(channel)

        def watch() -> None:
            try:
                for response in stub.Watch(hpb.HealthCheckRequest(), timeout=30):
                    seen.append(response.status)
                    got_first.set()
            except grpc.RpcError:
                pass

        thread = threading.Thread(target=watch)
        thread.start()
        assert got_first.wait(10)
        unknown = stub.Watch(hpb.HealthCheckRequest(service="nope"), timeout=10)
        assert next(unknown).status == hpb.HealthCheckResponse.SERVICE_UNKNOWN
        unknown.cancel()
        daemon.stop()
        thread.join(10)
    assert seen[0] == hpb.HealthCheckResponse.SERVING
    assert seen[-1] == hpb.HealthCheckResponse.NOT_SERVING
