"""The hand codec of Write and Read requests and Read responses agrees with the protobuf runtime.

Bytes in, fields out: every request is compared field by field with what the
generated message parses from the same bytes, including encodings the fast path
hands to the runtime (labels, unknown fields, odd wire types) and input the
runtime refuses (which must be refused here too).
"""

from __future__ import annotations

import random

import pytest
from google.protobuf.message import DecodeError

from contentd.api._pb.containerd.services.content.v1 import content_pb2 as pb
from contentd.api.content_codec import (
    ReadRequest,
    WriteRequest,
    decode_read_request,
    decode_write_request,
    encode_read_response,
    varint,
)


def _fields(req: WriteRequest | pb.WriteContentRequest) -> tuple[object, ...]:
    return (
        int(req.action), req.ref, req.total, req.expected, req.offset,
        bytes(req.data), dict(req.labels),
    )  # fmt: skip


def _same(raw: bytes) -> WriteRequest:
    got = decode_write_request(raw)
    assert _fields(got) == _fields(pb.WriteContentRequest.FromString(raw))
    return got


def test_a_write_message_decodes_with_data_a_view_of_the_buffer() -> None:
    data = bytes(range(256)) * 4096
    raw = pb.WriteContentRequest(
        action=pb.WRITE, ref="default/1/layer-sha256:ab", offset=1 << 40, data=data
    ).SerializeToString()
    req = _same(raw)
    assert isinstance(req.data, memoryview)
    assert req.data.obj is raw  # no copy of the 1 MiB


@pytest.mark.parametrize(
    "msg",
    [
        pb.WriteContentRequest(),
        pb.WriteContentRequest(action=pb.STAT, ref="r"),
        pb.WriteContentRequest(action=pb.COMMIT, ref="r", total=3, expected="sha256:" + "a" * 64),
        pb.WriteContentRequest(action=pb.COMMIT, ref="r", labels={"k": "v", "a.b/c": ""}),
        pb.WriteContentRequest(action=pb.WRITE, ref="ünïcødé ref", data=b"x", offset=-1),
        pb.WriteContentRequest(total=-(1 << 63), offset=(1 << 63) - 1),
        pb.WriteContentRequest(action=7),  # an unknown action value (open enum)
        pb.WriteContentRequest(action=-1),  # a negative one: 10 bytes on the wire
    ],
)
def test_messages_from_the_generated_encoder(msg: pb.WriteContentRequest) -> None:
    _same(msg.SerializeToString())


def _key(field: int, wire: int) -> bytes:
    return varint(field << 3 | wire)


def _len(field: int, payload: bytes) -> bytes:
    return _key(field, 2) + varint(len(payload)) + payload


def test_hand_made_encodings() -> None:
    cases = [
        _key(1, 0) + varint(1) + _key(1, 0) + varint(2),  # repeated scalar: the last one wins
        _len(6, b"first") + _len(6, b"second"),
        _len(2, b"ref") + _key(99, 0) + varint(5),  # an unknown varint field
        _key(5, 0) + b"\x80\x80\x00",  # a non-minimal varint
        _len(2, b"r") + _key(3, 5) + b"\x01\x00\x00\x00",  # total sent as fixed32: unknown
        _len(100, b"unknown") + _len(6, b"d"),
        _key(3, 0) + varint(1 << 63),  # int64 wrap-around
        _len(7, _len(1, b"k") + _len(2, b"v")) + _len(7, _len(1, b"k") + _len(2, b"w")),
    ]
    for raw in cases:
        _same(raw)


@pytest.mark.parametrize(
    "raw",
    [
        _len(2, b"\xff\xfe"),  # a ref that is not UTF-8
        _key(6, 2) + varint(10) + b"short",  # a length past the end
        _key(5, 0) + b"\xff" * 11,  # a varint of 11 bytes
        _key(5, 0) + b"\x80",  # a truncated varint
        b"\x00",  # field number 0
        _key(2, 3),  # a group start with no end
    ],
)
def test_input_the_runtime_refuses_is_refused(raw: bytes) -> None:
    with pytest.raises(DecodeError):
        pb.WriteContentRequest.FromString(raw)
    with pytest.raises(DecodeError):
        decode_write_request(raw)


def test_random_messages_and_their_truncations() -> None:
    rng = random.Random(20261207)
    for _ in range(300):
        msg = pb.WriteContentRequest(
            action=rng.choice([0, 1, 2, 5]),
            ref=rng.choice(["", "r", "ns/1/ref-é"]),
            total=rng.choice([0, 1, -5, 1 << 40]),
            expected=rng.choice(["", "sha256:" + "0" * 64]),
            offset=rng.choice([0, 127, 128, 1 << 35]),
            data=rng.randbytes(rng.choice([0, 1, 200, 70000])),
            labels=rng.choice([{}, {"a": "b"}]),
        )
        raw = msg.SerializeToString()
        _same(raw)
        cut = raw[: rng.randrange(len(raw) + 1)]
        try:
            expected = pb.WriteContentRequest.FromString(cut)
        except DecodeError:
            with pytest.raises(DecodeError):
                decode_write_request(cut)
        else:
            assert _fields(decode_write_request(cut)) == _fields(expected)


@pytest.mark.parametrize("offset", [0, 1, 127, 128, 32768, 1 << 40])
@pytest.mark.parametrize("size", [0, 1, 127, 128, 32768, 1 << 20])
def test_read_responses_encode_as_the_generated_code_does(offset: int, size: int) -> None:
    data = bytes(size)
    want = pb.ReadContentResponse(offset=offset, data=data).SerializeToString()
    assert encode_read_response(offset, data) == want


def test_varint_of_a_negative_int64_is_ten_bytes() -> None:
    raw = _key(5, 0) + varint(-2)
    assert len(varint(-2)) == 10
    assert pb.WriteContentRequest.FromString(raw).offset == -2


def _read_fields(req: ReadRequest | pb.ReadContentRequest) -> tuple[object, ...]:
    return req.digest, req.offset, req.size


def _same_read(raw: bytes) -> ReadRequest:
    got = decode_read_request(raw)
    assert _read_fields(got) == _read_fields(pb.ReadContentRequest.FromString(raw))
    return got


@pytest.mark.parametrize(
    "msg",
    [
        pb.ReadContentRequest(),
        pb.ReadContentRequest(digest="sha256:" + "a" * 64, offset=32768, size=32768),
        pb.ReadContentRequest(digest="sha256:" + "a" * 64, offset=1 << 40, size=1 << 20),
        pb.ReadContentRequest(digest="ünïcødé", offset=-1, size=-(1 << 63)),
        pb.ReadContentRequest(offset=(1 << 63) - 1),
    ],
)
def test_read_requests_from_the_generated_encoder(msg: pb.ReadContentRequest) -> None:
    _same_read(msg.SerializeToString())


def test_hand_made_read_request_encodings() -> None:
    cases = [
        _key(3, 0) + varint(1) + _key(3, 0) + varint(2),  # repeated scalar: the last one wins
        _len(1, b"a") + _len(1, b"b"),
        _len(1, b"d") + _key(99, 0) + varint(5),  # an unknown field: the runtime's way
        _key(2, 0) + b"\x80\x80\x00",  # a non-minimal varint
        _key(3, 1) + bytes(8),  # size sent as fixed64: unknown to the schema
        _key(2, 0) + varint(1 << 63),  # int64 wrap-around
    ]
    for raw in cases:
        _same_read(raw)


@pytest.mark.parametrize(
    "raw",
    [
        _len(1, b"\xff\xfe"),  # a digest that is not UTF-8
        _key(1, 2) + varint(10) + b"short",  # a length past the end
        _key(2, 0) + b"\xff" * 11,  # a varint of 11 bytes
        _key(3, 0) + b"\x80",  # a truncated varint
        b"\x00",  # field number 0
    ],
)
def test_read_request_input_the_runtime_refuses_is_refused(raw: bytes) -> None:
    with pytest.raises(DecodeError):
        pb.ReadContentRequest.FromString(raw)
    with pytest.raises(DecodeError):
        decode_read_request(raw)


def test_random_read_requests_and_their_truncations() -> None:
    rng = random.Random(20261208)
    for _ in range(300):
        msg = pb.ReadContentRequest(
            digest=rng.choice(["", "sha256:" + "0" * 64, "é"]),
            offset=rng.choice([0, 127, 128, -1, 1 << 35]),
            size=rng.choice([0, 1, 32768, -5, 1 << 20]),
        )
        raw = msg.SerializeToString()
        _same_read(raw)
        cut = raw[: rng.randrange(len(raw) + 1)]
        try:
            expected = pb.ReadContentRequest.FromString(cut)
        except DecodeError:
            with pytest.raises(DecodeError):
                decode_read_request(cut)
        else:
            assert _read_fields(decode_read_request(cut)) == _read_fields(expected)
