"""The hand codec of ``contentd fetch``/``push`` against the protobuf runtime's encoding."""

from __future__ import annotations

import pytest

from contentd.api._pb.contentd.services.registry.v1 import registry_pb2 as pb
from contentd.api.protowire import MalformedVarint, read_varint
from contentd.cli.registry_messages import (
    MalformedMessage,
    decode_progress,
    encode_fetch_request,
    encode_push_request,
)
from tests.cli.conftest import Cli


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({}, pb.FetchRequest(reference="r.example/a:1")),
        (
            {
                "platforms": ["linux/amd64", "linux/arm64/v8"],
                "all_platforms": True,
                "plain_http": True,
                "credentials": ("üser", "s:cret"),
                "concurrency": 300,
                "image_name": "näme",
            },
            pb.FetchRequest(
                reference="r.example/a:1",
                platforms=["linux/amd64", "linux/arm64/v8"],
                all_platforms=True,
                plain_http=True,
                credentials=pb.Credentials(username="üser", secret="s:cret"),
                concurrency=300,
                image_name="näme",
            ),
        ),
        # present but empty credentials are still sent (the daemon then treats them as none)
        (
            {"credentials": ("", "")},
            pb.FetchRequest(reference="r.example/a:1", credentials=pb.Credentials()),
        ),
    ],
)
def test_fetch_request_is_encoded_as_protobuf_encodes_it(
    kwargs: dict[str, object], expected: pb.FetchRequest
) -> None:
    raw = encode_fetch_request("r.example/a:1", **kwargs)  # type: ignore[arg-type]
    assert raw == expected.SerializeToString()
    assert pb.FetchRequest.FromString(raw) == expected


def test_push_request_is_encoded_as_protobuf_encodes_it() -> None:
    raw = encode_push_request(
        "r.example/a:2", source="a:1", plain_http=True, credentials=("u", "p"), concurrency=4
    )
    expected = pb.PushRequest(
        reference="r.example/a:2",
        source="a:1",
        plain_http=True,
        credentials=pb.Credentials(username="u", secret="p"),
        concurrency=4,
    )
    assert raw == expected.SerializeToString()
    assert encode_push_request("x") == pb.PushRequest(reference="x").SerializeToString()


def _progress(**fields: object) -> bytes:
    return pb.Progress(**fields).SerializeToString()  # type: ignore[arg-type]


def test_progress_decodes_every_field() -> None:
    msg = pb.Progress(
        status="downloading",
        ref="layer-sha256:ab",
        offset=(1 << 40) + 5,
        resumed=-3,  # int64: ten bytes of two's complement
        image="r.example/ä:1",
    )
    msg.descriptor.media_type = "application/vnd.oci.image.layer.v1.tar+gzip"
    msg.descriptor.digest = "sha256:" + "ab" * 32
    msg.descriptor.size = 1 << 33
    msg.descriptor.annotations["k"] = "v"
    msg.descriptor.annotations[""] = ""
    got = decode_progress(msg.SerializeToString())
    assert (got.status, got.ref, got.offset, got.resumed, got.image) == (
        "downloading",
        "layer-sha256:ab",
        (1 << 40) + 5,
        -3,
        "r.example/ä:1",
    )
    d = got.descriptor
    assert (d.media_type, d.digest, d.size) == (
        msg.descriptor.media_type,
        msg.descriptor.digest,
        1 << 33,
    )
    assert d.annotations == {"k": "v", "": ""}


def test_progress_defaults_unknown_fields_and_repeats_as_protobuf() -> None:
    empty = decode_progress(b"")
    assert (empty.status, empty.descriptor.digest, empty.offset) == ("", "", 0)
    unknown = (
        b"\x38\x96\x01"  # field 7, varint
        b"\x41" + bytes(8)  # field 8, fixed64
        + b"\x4a\x03abc"  # field 9, bytes
        + b"\x55" + bytes(4)  # field 10, fixed32
        + b"\x08\x07"  # status (1) sent as a varint: not a string, skipped
    )  # fmt: skip
    raw = _progress(status="done", offset=7) + unknown + _progress(status="exists")
    raw += pb.Progress(descriptor={"size": 9}).SerializeToString()
    raw += pb.Progress(descriptor={"digest": "sha256:x"}).SerializeToString()
    parsed = pb.Progress.FromString(raw)
    got = decode_progress(raw)
    # the last scalar wins, the message fields merge, what is unknown is ignored
    assert (got.status, got.offset) == (parsed.status, parsed.offset) == ("exists", 7)
    assert (got.descriptor.size, got.descriptor.digest) == (9, "sha256:x")
    assert (parsed.descriptor.size, parsed.descriptor.digest) == (9, "sha256:x")


@pytest.mark.parametrize(
    "raw",
    [
        b"\x0a",  # a key, no length
        b"\x0a\x05abc",  # a string past the end
        b"\x0a\x02\xff\xfe",  # not UTF-8
        b"\x20",  # a varint cut off
        b"\x20" + b"\xff" * 10 + b"\x01",  # a varint of eleven bytes
        b"\x12\x04\x0a\x09abc",  # the descriptor's string past the descriptor's end
        b"\x41\x00\x00",  # a fixed64 cut off
        b"\x0b",  # a group (wire type 3)
        b"\x0c",  # an end of group (wire type 4)
        b"\x0e",  # wire type 6
        b"\x00\x00",  # field number 0
        b"\x12\x80\x80\x80\x80\x80\x80\x80\x80\x01",  # a length of 2**63
    ],
)
def test_malformed_progress_is_refused(raw: bytes) -> None:
    with pytest.raises(MalformedMessage):
        decode_progress(raw)
    with pytest.raises(Exception):  # noqa: B017 - the runtime refuses them too
        pb.Progress.FromString(raw)


def test_read_varint_bounds() -> None:
    """The one varint decoder the hand-decoded messages share (api/protowire)."""
    assert read_varint(b"\x96\x01", 0, 2) == (150, 2)
    assert read_varint(b"\xff" * 9 + b"\x01", 0, 10) == ((1 << 64) - 1, 10)
    with pytest.raises(MalformedVarint, match="truncated"):
        read_varint(b"\x96\x01", 0, 1)  # the end is the message's, not the buffer's
    with pytest.raises(MalformedVarint, match="ten bytes"):
        read_varint(b"\xff" * 10 + b"\x01", 0, 11)


@pytest.mark.parametrize("concurrency", [-1, 65, 1000])
def test_the_daemon_refuses_a_concurrency_out_of_range(cli: Cli, concurrency: int) -> None:
    """Another client's Fetch or Push with a concurrency the CLI would refuse is
    INVALID_ARGUMENT, not quietly run with 1 or 64 workers (0 is unset: the default)."""
    import grpc

    from contentd.api._pb.contentd.services.registry.v1 import registry_pb2_grpc as pb_grpc

    meta = (("containerd-namespace", cli.namespace),)
    with grpc.insecure_channel(cli.address) as channel:
        stub = pb_grpc.RegistryStub(channel)
        calls = [
            lambda: stub.Fetch(
                pb.FetchRequest(reference="127.0.0.1:9/x:1", concurrency=concurrency),
                metadata=meta,
            ),
            lambda: stub.Push(
                pb.PushRequest(reference="127.0.0.1:9/x:1", concurrency=concurrency),
                metadata=meta,
            ),
        ]
        for call in calls:
            with pytest.raises(grpc.RpcError) as caught:
                list(call())
            assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert f"concurrency {concurrency}: must be from 1 to 64" in str(caught.value.details())
