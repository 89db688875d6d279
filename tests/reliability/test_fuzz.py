"""Hostile input against a live ``contentd serve`` (isolated policy): hypothesis-driven.

Digests, refs (``..``, absolute, NUL, 64 KiB), filters, labels, Write action/offset/
total sequences and raw bytes as gRPC request messages. Every call must end with a
code from the set that input may earn (never UNKNOWN/INTERNAL for a well-formed
message), the daemon must stay up, no file may appear outside its root and state, and
a blob of one namespace must stay invisible from every other one.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from contentd.api._pb.containerd.services.content.v1 import content_pb2 as pb
from contentd.api._pb.containerd.services.content.v1 import content_pb2_grpc as pb_grpc
from contentd.api._pb.grpc.health.v1 import health_pb2 as hpb
from contentd.api._pb.grpc.health.v1 import health_pb2_grpc as hpb_grpc
from tests.daemon.harness import ServeProcess, md
from tests.peers.contentd_fixtures import start_contentd
from tests.reliability.figures import count
from tests.reliability.profile import PROFILE

Code = grpc.StatusCode
SECRET = b"namespace a's secret bytes"
SECRET_DIGEST = "sha256:" + hashlib.sha256(SECRET).hexdigest()
FUZZ = settings(
    max_examples=PROFILE.fuzz_examples,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
#: what a malformed but well-framed request may earn
INPUT_CODES = {
    Code.OK,
    Code.INVALID_ARGUMENT,
    Code.NOT_FOUND,
    Code.ALREADY_EXISTS,
    Code.FAILED_PRECONDITION,
    Code.OUT_OF_RANGE,
    Code.UNAVAILABLE,  # a ref held by another stream
    Code.RESOURCE_EXHAUSTED,  # a 64 KiB ref: the status naming it outgrows the header limit
    Code.UNKNOWN,  # containerd's Write EOF before a first message ("EOF")
}


class Fuzzed:
    def __init__(self, daemon: ServeProcess) -> None:
        self.daemon = daemon
        self.channel = grpc.insecure_channel(daemon.address)
        self.stub = pb_grpc.ContentStub(self.channel)
        self.outside_before = _outside(daemon)

    def code(self, fn: object, *args: object, **kwargs: object) -> grpc.StatusCode:
        count("fuzz: inputs")
        try:
            result = fn(*args, **kwargs)  # type: ignore[operator]
            if isinstance(result, Iterator):
                list(result)
        except grpc.RpcError as err:
            code: grpc.StatusCode = err.code()  # type: ignore[attr-defined]
            return code
        return Code.OK

    def alive(self) -> None:
        health = hpb_grpc.HealthStub(self.channel)
        assert health.Check(hpb.HealthCheckRequest(), timeout=10).status == 1
        assert self.daemon.proc is not None and self.daemon.proc.poll() is None


def _outside(daemon: ServeProcess) -> set[str]:
    """Every path under the daemon's base directory outside its root and state."""
    keep = (str(daemon.root), str(daemon.state))
    out: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(daemon.base):
        dirnames[:] = [d for d in dirnames if os.path.join(dirpath, d) not in keep]
        out.update(os.path.join(dirpath, f) for f in filenames)
    return out


@pytest.fixture(scope="module")
def fuzzed() -> Iterator[Fuzzed]:
    daemon = start_contentd(
        'version = 2\n[plugins."io.containerd.grpc.v1.fsck"]\n  scrub_interval = "0"\n',
        policy="isolated",
        name="contentd-fuzz",
    )
    try:
        f = Fuzzed(daemon)
        request = pb.WriteContentRequest(
            action=pb.COMMIT,
            ref="secret",
            data=SECRET,
            labels={"containerd.io/gc.root": "x"},
        )
        list(f.stub.Write(iter([request]), metadata=md("a")))
        yield f
        f.alive()
        assert _outside(daemon) <= f.outside_before | {str(daemon.log)}
        f.channel.close()
    finally:
        daemon.close()


namespaces = st.one_of(
    st.sampled_from(["b", "default", "a-b", "x" * 76]),
    st.from_regex(r"[a-z][a-z0-9.-]{0,20}", fullmatch=True),
)
refs = st.one_of(
    st.sampled_from(["..", "../../etc/passwd", "/etc/passwd", "a\x00b", "r" * 65536, ""]),
    st.text(max_size=80),
)
digests = st.one_of(
    st.sampled_from(
        [
            SECRET_DIGEST,
            "sha256:../../../etc/passwd",
            "sha256:" + "A" * 64,
            "sha512:" + "a" * 128,
            "md5:abc",
            "",
            "sha256:" + "0" * 63 + "\x00",
        ]
    ),
    st.text(max_size=100),
    st.builds(lambda h: "sha256:" + h, st.text("0123456789abcdef", min_size=60, max_size=68)),
)
labels = st.dictionaries(st.text(max_size=30), st.text(max_size=5000), max_size=4)
filters = st.lists(
    st.one_of(
        st.text(max_size=60),
        st.sampled_from(['labels."a"==b', "digest~=[", 'labels."x', "size>", "==", ",,"]),
    ),
    max_size=3,
)


@FUZZ
@given(ns=namespaces, digest=digests)
def test_digests_and_namespaces(fuzzed: Fuzzed, ns: str, digest: str) -> None:
    for call in (
        lambda: fuzzed.stub.Info(pb.InfoRequest(digest=digest), metadata=md(ns)),
        lambda: fuzzed.stub.Read(pb.ReadContentRequest(digest=digest), metadata=md(ns)),
        lambda: fuzzed.stub.Delete(pb.DeleteContentRequest(digest=digest), metadata=md(ns)),
    ):
        code = fuzzed.code(call)
        assert code in INPUT_CODES - {Code.UNKNOWN}, (code, ns, digest)
        if digest == SECRET_DIGEST and ns != "a":
            assert code != Code.OK or call is None, "a blob leaked across namespaces"
    count("fuzz: cross-namespace probes of a's blob") if digest == SECRET_DIGEST else None


@FUZZ
@given(ns=namespaces, fs=filters, ls=labels, digest=digests)
def test_filters_and_labels(
    fuzzed: Fuzzed, ns: str, fs: list[str], ls: dict[str, str], digest: str
) -> None:
    code = fuzzed.code(fuzzed.stub.List, pb.ListContentRequest(filters=fs), metadata=md(ns))
    assert code in INPUT_CODES - {Code.UNKNOWN}, (code, fs)
    code = fuzzed.code(
        fuzzed.stub.ListStatuses, pb.ListStatusesRequest(filters=fs), metadata=md(ns)
    )
    assert code in INPUT_CODES - {Code.UNKNOWN}, (code, fs)
    request = pb.UpdateRequest(info=pb.Info(digest=digest, labels=ls))
    request.update_mask.paths.extend(f"labels.{k}" for k in ls)
    code = fuzzed.code(fuzzed.stub.Update, request, metadata=md(ns))
    assert code in INPUT_CODES - {Code.UNKNOWN}, (code, digest, ls)


write_requests = st.lists(
    st.builds(
        pb.WriteContentRequest,
        action=st.integers(-3, 5),
        ref=refs,
        total=st.integers(-(1 << 62), 1 << 40),
        expected=digests,
        offset=st.integers(-(1 << 62), 1 << 40),
        data=st.binary(max_size=5000),
        labels=labels,
    ),
    max_size=4,
)


@FUZZ
@given(ns=namespaces, requests=write_requests)
def test_write_sequences(fuzzed: Fuzzed, ns: str, requests: list[pb.WriteContentRequest]) -> None:
    code = fuzzed.code(fuzzed.stub.Write, iter(requests), metadata=md(ns))
    assert code in INPUT_CODES, (code, requests)
    if requests and requests[0].ref:
        fuzzed.code(fuzzed.stub.Abort, pb.AbortRequest(ref=requests[0].ref), metadata=md(ns))


METHODS = ("Info", "Update", "List", "Delete", "Read", "Status", "ListStatuses", "Abort")


@FUZZ
@given(method=st.sampled_from(METHODS), raw=st.binary(max_size=2000))
def test_raw_bytes_as_request_messages(fuzzed: Fuzzed, method: str, raw: bytes) -> None:
    path = f"/containerd.services.content.v1.Content/{method}"
    if method in ("Read", "List"):
        call = fuzzed.channel.unary_stream(path)
    else:
        call = fuzzed.channel.unary_unary(path)
    code = fuzzed.code(call, raw, metadata=md("fuzz"))
    # bytes that are no protobuf of the request type are INTERNAL, as grpcio says
    assert code in INPUT_CODES | {Code.INTERNAL}, (code, method, raw)


def test_oversized_messages_and_the_daemon_survives(fuzzed: Fuzzed) -> None:
    big = pb.WriteContentRequest(action=pb.WRITE, ref="big", data=b"x" * (17 << 20))
    code = fuzzed.code(fuzzed.stub.Write, iter([big]), metadata=md("fuzz"))
    assert code == Code.RESOURCE_EXHAUSTED
    code = fuzzed.code(
        fuzzed.stub.Info, pb.InfoRequest(digest="sha256:" + "a" * (8 << 20)), metadata=md("fuzz")
    )
    assert code in (Code.RESOURCE_EXHAUSTED, Code.INVALID_ARGUMENT)
    fuzzed.alive()
    assert Path(fuzzed.daemon.root).is_dir()
