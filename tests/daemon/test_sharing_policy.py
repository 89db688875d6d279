"""``content_sharing_policy`` as a client sees it over gRPC, on ``contentd serve`` processes.

Under ``shared`` a blob committed in one namespace is shared with another that opens a
Write expecting its digest: the first STAT already reports every byte, and a COMMIT with
no data records it. Under ``isolated`` the second namespace must upload the bytes again.
Either way a shared ingest is committed only under the digest it was opened for.
"""

from __future__ import annotations

import hashlib
import os

import grpc
import pytest

from contentd.api._pb.containerd.services.content.v1 import content_pb2 as pb
from contentd.api._pb.containerd.services.content.v1 import content_pb2_grpc as pb_grpc
from contentd.content.labels import LABEL_GC_ROOT
from tests.daemon.harness import md
from tests.peers.contentd_fixtures import ContentdPool

Code = grpc.StatusCode
ROOT = {LABEL_GC_ROOT: "2026-01-01T00:00:00Z"}  # the session daemons run GC


def _upload(stub: pb_grpc.ContentStub, namespace: str, data: bytes, ref: str) -> str:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    request = pb.WriteContentRequest(
        action=pb.COMMIT, ref=ref, data=data, total=len(data), expected=digest, labels=ROOT
    )
    list(stub.Write(iter([request]), metadata=md(namespace)))
    return digest


def _first_stat(
    stub: pb_grpc.ContentStub, namespace: str, ref: str, size: int, digest: str
) -> pb.WriteContentResponse:
    request = pb.WriteContentRequest(action=pb.STAT, ref=ref, total=size, expected=digest)
    return next(iter(stub.Write(iter([request]), metadata=md(namespace))))


@pytest.mark.parametrize("policy", ["shared", "isolated"])
def test_a_second_namespace_uploads_again_only_when_isolated(
    contentd_peers: ContentdPool, ctr_namespace: str, policy: str
) -> None:
    daemon = contentd_peers.get(policy)
    first, second = f"{ctr_namespace}-a", f"{ctr_namespace}-b"
    data = os.urandom(70_000)
    with grpc.insecure_channel(daemon.address) as channel:
        stub = pb_grpc.ContentStub(channel)
        digest = _upload(stub, first, data, "one")
        with pytest.raises(grpc.RpcError) as info:
            stub.Info(pb.InfoRequest(digest=digest), metadata=md(second))
        assert info.value.code() == Code.NOT_FOUND  # type: ignore[attr-defined]

        stat = _first_stat(stub, second, "two", len(data), digest)
        commit = pb.WriteContentRequest(
            action=pb.COMMIT, ref="two", total=len(data), expected=digest, labels=ROOT
        )
        if policy == "shared":
            assert (stat.offset, stat.digest) == (len(data), digest)
            commit.offset = len(data)  # at the current offset (0 would restart the ingest)
            list(stub.Write(iter([commit]), metadata=md(second)))  # no bytes sent
        else:
            assert stat.offset == 0
            with pytest.raises(grpc.RpcError) as info:  # nothing uploaded: size mismatch
                list(stub.Write(iter([commit]), metadata=md(second)))
            assert info.value.code() == Code.FAILED_PRECONDITION  # type: ignore[attr-defined]
            with pytest.raises(grpc.RpcError) as info:
                stub.Info(pb.InfoRequest(digest=digest), metadata=md(second))
            assert info.value.code() == Code.NOT_FOUND  # type: ignore[attr-defined]
            commit.data = data
            list(stub.Write(iter([commit]), metadata=md(second)))
        info_b = stub.Info(pb.InfoRequest(digest=digest), metadata=md(second)).info
        assert (info_b.digest, info_b.size) == (digest, len(data))
        got = b"".join(
            r.data for r in stub.Read(pb.ReadContentRequest(digest=digest), metadata=md(second))
        )
        assert got == data
        for namespace in (first, second):
            stub.Delete(pb.DeleteContentRequest(digest=digest), metadata=md(namespace))


def test_a_shared_ingest_commits_only_its_expected_digest(
    contentd_peers: ContentdPool, ctr_namespace: str
) -> None:
    daemon = contentd_peers.get("shared")
    first, second = f"{ctr_namespace}-a", f"{ctr_namespace}-b"
    data = os.urandom(5000)
    other = "sha256:" + hashlib.sha256(data + b"!").hexdigest()
    with grpc.insecure_channel(daemon.address) as channel:
        stub = pb_grpc.ContentStub(channel)
        digest = _upload(stub, first, data, "one")
        requests = [
            pb.WriteContentRequest(action=pb.STAT, ref="two", total=len(data), expected=digest),
            pb.WriteContentRequest(
                action=pb.COMMIT, offset=len(data), total=len(data), expected=other
            ),
        ]
        with pytest.raises(grpc.RpcError) as info:
            list(stub.Write(iter(requests), metadata=md(second)))
        assert info.value.code() == Code.FAILED_PRECONDITION  # type: ignore[attr-defined]
        assert "unexpected digest" in info.value.details()  # type: ignore[attr-defined]
        for digest_ in (digest, other):
            with pytest.raises(grpc.RpcError) as info:
                stub.Info(pb.InfoRequest(digest=digest_), metadata=md(second))
            assert info.value.code() == Code.NOT_FOUND  # type: ignore[attr-defined]
        stub.Abort(pb.AbortRequest(ref="two"), metadata=md(second))
        stub.Delete(pb.DeleteContentRequest(digest=digest), metadata=md(first))
