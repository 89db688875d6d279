"""Unary and server-stream RPCs on the wire (spec §5.2, checklist 2, 47, 48, 56).

Parametrized over contentd and the real containerd, like the Write tests.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest

from contentd.api._pb.containerd.services.content.v1 import content_pb2 as pb
from contentd.api.convert import ZERO_SECONDS
from tests.api.conftest import Stream, Wire, blob, status_of

Code = grpc.StatusCode
MiB = 1 << 20


def _fails(fn: object, *args: object, **kwargs: object) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as info:
        result = fn(*args, **kwargs)  # type: ignore[operator]
        if not isinstance(result, pb.InfoResponse | pb.UpdateResponse) and hasattr(
            result, "__iter__"
        ):
            list(result)
    return status_of(info.value)


# -- digest validation comes first, even without a namespace -------------------

BAD_DIGESTS = {
    "": "invalid checksum digest format",
    "bad": "invalid checksum digest format",
    "sha256:": "invalid checksum digest format",
    "sha256:abc": "invalid checksum digest length",
    "md5:" + "a" * 32: "unsupported digest algorithm",
    "sha256:" + "A" * 64: "invalid checksum digest format",
    'sha256:"x\n': "invalid checksum digest length",
}


@pytest.mark.parametrize("digest", sorted(BAD_DIGESTS))
def test_bad_digest_is_invalid_argument_without_namespace(wire: Wire, digest: str) -> None:
    reason = BAD_DIGESTS[digest]
    quoted = '"' + digest.replace('"', '\\"').replace("\n", "\\n") + '"'
    assert _fails(wire.stub.Info, pb.InfoRequest(digest=digest)) == (
        Code.INVALID_ARGUMENT,
        f"{quoted} failed validation",
    )
    assert _fails(wire.stub.Update, pb.UpdateRequest(info=pb.Info(digest=digest))) == (
        Code.INVALID_ARGUMENT,
        f"{quoted} failed validation",
    )
    assert _fails(wire.stub.Delete, pb.DeleteContentRequest(digest=digest)) == (
        Code.INVALID_ARGUMENT,
        reason,
    )
    assert _fails(wire.stub.Read, pb.ReadContentRequest(digest=digest)) == (
        Code.INVALID_ARGUMENT,
        f"{digest}: {reason}",
    )


def test_missing_blob_is_not_found(wire: Wire) -> None:
    digest = "sha256:" + "0" * 64
    code, message = _fails(wire.stub.Info, pb.InfoRequest(digest=digest), metadata=wire.md)
    assert code == Code.NOT_FOUND
    assert message.startswith("content ") and message.endswith(f"{digest}: not found")
    code, _ = _fails(wire.stub.Read, pb.ReadContentRequest(digest=digest), metadata=wire.md)
    assert code == Code.NOT_FOUND


# -- Read -------------------------------------------------------------------------


def _read(wire: Wire, digest: str, offset: int = 0, size: int = 0) -> list[pb.ReadContentResponse]:
    request = pb.ReadContentRequest(digest=digest, offset=offset, size=size)
    return list(wire.stub.Read(request, metadata=wire.md))


def test_read_chunks_are_at_most_one_mib(wire: Wire) -> None:
    data, digest = blob(2 * MiB + MiB // 2)
    wire.put(data)
    chunks = _read(wire, digest)
    assert [len(c.data) for c in chunks] == [MiB, MiB, MiB // 2]
    assert [c.offset for c in chunks] == [0, MiB, 2 * MiB]
    assert b"".join(c.data for c in chunks) == data


def test_read_response_offset_counts_from_zero(wire: Wire) -> None:
    data, digest = blob(MiB + 100)
    wire.put(data)
    chunks = _read(wire, digest, offset=50)
    assert [c.offset for c in chunks] == [0, MiB]  # not 50, MiB + 50
    assert b"".join(c.data for c in chunks) == data[50:]


@pytest.mark.parametrize(
    ("offset", "size", "start", "end"),
    [
        (0, 0, 0, 1000),
        (0, -5, 0, 1000),  # size <= 0: to the end
        (10, 20, 10, 30),
        (990, 20, 990, 1000),  # past the end: to the end
        (-7, 0, 0, 1000),  # a negative offset is 0
        (-7, 3, 0, 3),
    ],
)
def test_read_ranges(wire: Wire, offset: int, size: int, start: int, end: int) -> None:
    data, digest = blob(1000)
    wire.put(data)
    assert b"".join(c.data for c in _read(wire, digest, offset, size)) == data[start:end]


def test_read_at_the_end_sends_nothing(wire: Wire) -> None:
    data, digest = blob(100)
    wire.put(data)
    assert _read(wire, digest, offset=100) == []
    assert _read(wire, digest, offset=100, size=5) == []


def test_read_past_the_end_is_out_of_range(wire: Wire) -> None:
    data, digest = blob(100)
    wire.put(data)
    code, message = _fails(_read, wire, digest, 101)
    assert (code, message) == (Code.OUT_OF_RANGE, "read past object length 100 bytes")


def test_read_empty_blob(wire: Wire) -> None:
    digest = wire.put(b"")
    assert _read(wire, digest) == []


# -- List ---------------------------------------------------------------------------


def test_list_nothing_sends_no_message(wire: Wire) -> None:
    assert list(wire.stub.List(pb.ListContentRequest(), metadata=wire.md)) == []


def test_list_batches_of_one_hundred(wire: Wire) -> None:
    blobs = [blob(10)[0] for _ in range(250)]
    with ThreadPoolExecutor(16) as pool:  # commits are fsync-bound: overlap them
        digests = set(
            pool.map(lambda i: wire.put(blobs[i], ref=f"list-{i}", idx=str(i)), range(250))
        )
    batches = list(wire.stub.List(pb.ListContentRequest(), metadata=wire.md))
    assert [len(b.info) for b in batches] == [100, 100, 50]
    infos = [i for b in batches for i in b.info]
    assert {i.digest for i in infos} == digests
    for info in infos:
        assert info.size == 10
        assert info.created_at.seconds > 0
        assert info.HasField("updated_at") and info.updated_at.seconds == ZERO_SECONDS
        assert info.updated_at.nanos == 0
        assert set(info.labels) == {"idx"}


def test_list_times_agree_with_info(wire: Wire) -> None:
    digest = wire.put(blob(10)[0])
    [batch] = list(wire.stub.List(pb.ListContentRequest(), metadata=wire.md))
    [listed] = batch.info
    info = wire.stub.Info(pb.InfoRequest(digest=digest), metadata=wire.md).info
    assert listed.created_at.seconds == info.created_at.seconds
    assert listed.created_at.nanos // 1000 == info.created_at.nanos // 1000
    assert info.updated_at.seconds > 0


def test_list_filters_are_ored(wire: Wire) -> None:
    for i in range(4):
        wire.put(blob(10)[0], ref=f"f-{i}", idx=str(i))
    request = pb.ListContentRequest(filters=["labels.idx==1", 'labels."idx"==3'])
    got = [i.labels["idx"] for b in wire.stub.List(request, metadata=wire.md) for i in b.info]
    assert sorted(got) == ["1", "3"]


def test_list_bad_filter_is_invalid_argument(wire: Wire) -> None:
    wire.put(blob(10)[0])
    request = pb.ListContentRequest(filters=["labels.a===b"])
    code, message = _fails(wire.stub.List, request, metadata=wire.md)
    assert code == Code.INVALID_ARGUMENT
    assert "unsupported operator" in message


# -- Info, Update, Delete ------------------------------------------------------------


def test_info_and_update(wire: Wire) -> None:
    data, digest = blob(30)
    wire.put(data, a="1", b="2")
    info = wire.stub.Info(pb.InfoRequest(digest=digest), metadata=wire.md).info
    assert (info.digest, info.size, dict(info.labels)) == (digest, 30, {"a": "1", "b": "2"})
    assert info.updated_at.seconds > 0

    # per-key paths: set c, delete a (absent from the request), keep b
    request = pb.UpdateRequest(info=pb.Info(digest=digest, labels={"c": "3"}))
    request.update_mask.paths.extend(["labels.c", "labels.a"])
    updated = wire.stub.Update(request, metadata=wire.md).info
    assert dict(updated.labels) == {"b": "2", "c": "3"}
    assert updated.size == 30

    # no mask: replace everything
    request = pb.UpdateRequest(info=pb.Info(digest=digest, labels={"z": "9"}))
    assert dict(wire.stub.Update(request, metadata=wire.md).info.labels) == {"z": "9"}

    # the path "labels": replace too
    request = pb.UpdateRequest(info=pb.Info(digest=digest))
    request.update_mask.paths.append("labels")
    assert dict(wire.stub.Update(request, metadata=wire.md).info.labels) == {}


def test_update_other_field_is_invalid_argument(wire: Wire) -> None:
    data, digest = blob(30)
    wire.put(data)
    request = pb.UpdateRequest(info=pb.Info(digest=digest, size=1))
    request.update_mask.paths.append("size")
    code, message = _fails(wire.stub.Update, request, metadata=wire.md)
    assert code == Code.INVALID_ARGUMENT
    assert message == f'cannot update "size" field on content info "{digest}": invalid argument'


def test_delete(wire: Wire) -> None:
    data, digest = blob(30)
    wire.put(data)
    wire.stub.Delete(pb.DeleteContentRequest(digest=digest), metadata=wire.md)
    code, _ = _fails(wire.stub.Info, pb.InfoRequest(digest=digest), metadata=wire.md)
    assert code == Code.NOT_FOUND
    again = pb.DeleteContentRequest(digest=digest)
    if wire.kind == "containerd":  # the metadata layer: a missing blob is NotFound
        assert _fails(wire.stub.Delete, again, metadata=wire.md)[0] == Code.NOT_FOUND
    else:  # a local store: deleting a missing blob succeeds
        wire.stub.Delete(again, metadata=wire.md)


# -- Status, ListStatuses, Abort -------------------------------------------------------


def test_status_of_unknown_ref(wire: Wire) -> None:
    code, message = _fails(wire.stub.Status, pb.StatusRequest(ref="nope"), metadata=wire.md)
    assert code == Code.NOT_FOUND
    assert message.startswith('could not get status for ref "nope": ')
    assert message.endswith(": not found")


@pytest.mark.parametrize("wire", ["contentd"], indirect=True)
def test_a_status_naming_a_huge_ref_keeps_its_code(wire: Wire) -> None:
    """The message is cut to fit the client's header limit (grpcio's is 16 KiB): sent
    whole, the client would report RESOURCE_EXHAUSTED instead of NOT_FOUND."""
    ref = "r%\u00e9" * 20_000
    code, message = _fails(wire.stub.Status, pb.StatusRequest(ref=ref), metadata=wire.md)
    assert code == Code.NOT_FOUND
    assert message.startswith('could not get status for ref "r%\u00e9r%')
    assert message.endswith("...(cut)") and len(message.encode()) <= 4096


def test_status_list_statuses_and_abort(wire: Wire) -> None:
    s1, s2 = Stream(wire), Stream(wire)
    try:
        s1.send(action=pb.WRITE, ref="xa", data=b"1234")
        s2.send(action=pb.STAT, ref="yb", total=99)
        status = wire.stub.Status(pb.StatusRequest(ref="xa"), metadata=wire.md).status
        assert (status.ref, status.offset) == ("xa", 4)
        assert status.started_at.seconds > 0
        listed = wire.stub.ListStatuses(pb.ListStatusesRequest(), metadata=wire.md).statuses
        assert sorted((s.ref, s.offset, s.total) for s in listed) == [
            ("xa", 4, 0),
            ("yb", 0, 99),
        ]
        only = wire.stub.ListStatuses(
            pb.ListStatusesRequest(filters=["ref~=^x"]), metadata=wire.md
        ).statuses
        assert [s.ref for s in only] == ["xa"]
    finally:
        s1.close()
        s2.close()
    wire.stub.Abort(pb.AbortRequest(ref="xa"), metadata=wire.md)
    code, _ = _fails(wire.stub.Status, pb.StatusRequest(ref="xa"), metadata=wire.md)
    assert code == Code.NOT_FOUND
