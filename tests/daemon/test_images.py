"""The Images service on a daemon: containerd's RPCs, codes, events, and images as GC roots."""

from __future__ import annotations

import hashlib
import io

import grpc
import pytest
from google.protobuf import field_mask_pb2

from contentd import Descriptor, write_blob
from contentd.api._pb.containerd.services.images.v1 import images_pb2 as ipb
from contentd.api._pb.containerd.services.images.v1 import images_pb2_grpc as ipb_grpc
from contentd.api._pb.containerd.types import descriptor_pb2
from contentd.api.event_types import decode_fields
from contentd.daemon.server import Daemon
from contentd.proxy import ProxyStore
from tests.daemon.harness import md
from tests.daemon.test_events import subscribed

Code = grpc.StatusCode
MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _image(name: str, digest: str, size: int = 10, **labels: str) -> ipb.Image:
    target = descriptor_pb2.Descriptor(media_type=MANIFEST, digest=digest, size=size)
    return ipb.Image(name=name, target=target, labels=labels)


def _code(call: object, *args: object, **kwargs: object) -> tuple[Code, str]:
    with pytest.raises(grpc.RpcError) as info:
        call(*args, **kwargs)  # type: ignore[operator]
    err = info.value
    return err.code(), err.details()  # type: ignore[attr-defined]


def test_rpcs_and_codes(channel: grpc.Channel) -> None:
    stub = ipb_grpc.ImagesStub(channel)
    ns = md("img1")
    d = _digest(b"x")
    created = stub.Create(ipb.CreateImageRequest(image=_image("a", d, k="v")), metadata=ns).image
    assert created.name == "a" and created.target.digest == d and dict(created.labels) == {"k": "v"}
    assert created.created_at.seconds > 0 and created.created_at == created.updated_at
    got = stub.Get(ipb.GetImageRequest(name="a"), metadata=ns).image
    assert got == created
    stub.Create(ipb.CreateImageRequest(image=_image("b", d)), metadata=ns)
    listed = stub.List(ipb.ListImagesRequest(), metadata=ns).images
    assert [i.name for i in listed] == ["a", "b"]
    only = stub.List(ipb.ListImagesRequest(filters=["labels.k==v"]), metadata=ns).images
    assert [i.name for i in only] == ["a"]
    assert list(stub.List(ipb.ListImagesRequest(), metadata=md("img-other")).images) == []

    update = ipb.UpdateImageRequest(
        image=ipb.Image(name="a", labels={"n": "1"}),
        update_mask=field_mask_pb2.FieldMask(paths=["labels.n"]),
    )
    updated = stub.Update(update, metadata=ns).image
    assert dict(updated.labels) == {"k": "v", "n": "1"}
    assert updated.target == created.target and updated.created_at == created.created_at

    create = stub.Create
    assert _code(create, ipb.CreateImageRequest(image=_image("a", d)), metadata=ns)[0] == (
        Code.ALREADY_EXISTS
    )
    assert _code(create, ipb.CreateImageRequest(image=_image("", d)), metadata=ns) == (
        Code.INVALID_ARGUMENT,
        "Image.Name required",
    )
    bad = _code(create, ipb.CreateImageRequest(image=_image("c", "sha256:zz")), metadata=ns)
    assert bad[0] == Code.INVALID_ARGUMENT and "Target.Digest" in bad[1]
    assert _code(create, ipb.CreateImageRequest(image=_image("c", d)))[0] == (
        Code.FAILED_PRECONDITION  # no namespace
    )
    bad_mask = ipb.UpdateImageRequest(
        image=ipb.Image(name="a"), update_mask=field_mask_pb2.FieldMask(paths=["name"])
    )
    assert _code(stub.Update, bad_mask, metadata=ns)[0] == Code.INVALID_ARGUMENT
    assert _code(stub.Get, ipb.GetImageRequest(name="zz"), metadata=ns) == (
        Code.NOT_FOUND,
        'image "zz": not found',
    )
    assert _code(stub.List, ipb.ListImagesRequest(filters=["name==="]), metadata=ns)[0] == (
        Code.INVALID_ARGUMENT
    )
    stub.Delete(ipb.DeleteImageRequest(name="a"), metadata=ns)
    stub.Delete(ipb.DeleteImageRequest(name="b"), metadata=ns)
    assert _code(stub.Delete, ipb.DeleteImageRequest(name="a"), metadata=ns)[0] == Code.NOT_FOUND


def test_events(channel: grpc.Channel) -> None:
    stub = ipb_grpc.ImagesStub(channel)
    ns = md("img-ev")
    d = _digest(b"y")
    with subscribed(channel, "topic~=^/images/") as events:
        stub.Create(ipb.CreateImageRequest(image=_image("e", d, a="1")), metadata=ns)
        stub.Update(ipb.UpdateImageRequest(image=_image("e", d, a="2")), metadata=ns)
        stub.Delete(ipb.DeleteImageRequest(name="e"), metadata=ns)
        got = [events.get(timeout=10) for _ in range(3)]
    assert [(e.topic, e.namespace) for e in got] == [
        ("/images/create", "img-ev"),
        ("/images/update", "img-ev"),
        ("/images/delete", "img-ev"),
    ]
    assert [e.event.type_url for e in got] == [
        "containerd.services.images.v1.ImageCreate",
        "containerd.services.images.v1.ImageUpdate",
        "containerd.services.images.v1.ImageDelete",
    ]
    assert decode_fields(got[0].event) == {"name": "e", "labels": {"a": "1"}}
    assert decode_fields(got[1].event) == {"name": "e", "labels": {"a": "2"}}
    assert decode_fields(got[2].event) == {"name": "e"}


def test_image_holds_its_content_until_deleted_with_sync(
    daemon: Daemon, channel: grpc.Channel
) -> None:
    stub = ipb_grpc.ImagesStub(channel)
    store = ProxyStore(daemon.address, namespace="img-gc")
    try:
        layer = b"a layer"
        write_blob(store, "l", io.BytesIO(layer), Descriptor(digest=_digest(layer), size=7))
        manifest = b"a manifest"
        md_digest = _digest(manifest)
        write_blob(
            store,
            "m",
            io.BytesIO(manifest),
            Descriptor(digest=md_digest, size=len(manifest)),
            {"containerd.io/gc.ref.content.l.0": _digest(layer)},
        )
        image = _image("gc", md_digest, len(manifest))
        stub.Create(ipb.CreateImageRequest(image=image), metadata=md("img-gc"))
        # a delete elsewhere with sync forces a collection: the image keeps both blobs
        stub.Create(ipb.CreateImageRequest(image=image), metadata=md("img-gc2"))
        stub.Delete(ipb.DeleteImageRequest(name="gc", sync=True), metadata=md("img-gc2"))
        assert {i.digest for i in store.walk()} == {md_digest, _digest(layer)}
        stub.Delete(ipb.DeleteImageRequest(name="gc", sync=True), metadata=md("img-gc"))
        assert list(store.walk()) == []
    finally:
        store.close()
