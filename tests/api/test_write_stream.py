"""The Write bidi state machine, message by message (spec §5.3, checklist 49–55).

Every test runs against contentd and against the real containerd: the same
requests must get the same responses and statuses.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import timedelta

import grpc
import pytest

from contentd.api._pb.containerd.services.content.v1 import content_pb2 as pb
from contentd.api.convert import ZERO_SECONDS, datetime_from_pb
from contentd.content.digest import EMPTY_DIGEST, digest_of
from contentd.content.types import utcnow
from tests.api.conftest import Stream, Wire, blob, status_of

Code = grpc.StatusCode
StreamFactory = Callable[[], Stream]


def _status(wire: Wire, ref: str) -> pb.Status:
    return wire.stub.Status(pb.StatusRequest(ref=ref), metadata=wire.md).status


def _status_code(wire: Wire, ref: str) -> grpc.StatusCode:
    try:
        wire.stub.Status(pb.StatusRequest(ref=ref), metadata=wire.md)
    except grpc.RpcError as err:
        return status_of(err)[0]
    return Code.OK


def test_first_message_without_ref_is_invalid_argument(stream: StreamFactory) -> None:
    code, message = stream().fails(action=pb.STAT, total=10)
    assert code == Code.INVALID_ARGUMENT
    assert message == "first message must have a reference"


def test_half_close_before_any_message_is_unknown_eof(wire: Wire) -> None:
    with pytest.raises(grpc.RpcError) as info:
        wire.write()
    assert status_of(info.value) == (Code.UNKNOWN, "EOF")


def test_first_stat_reports_offset_digest_and_client_total(stream: StreamFactory) -> None:
    before = utcnow() - timedelta(seconds=1)
    s = stream()
    r = s.send(action=pb.STAT, ref="stat-ref", total=1234)
    assert r.action == pb.STAT
    assert r.offset == 0
    assert r.digest == EMPTY_DIGEST
    assert r.total == 1234
    started = datetime_from_pb(r.started_at)
    assert before <= started <= utcnow()
    assert datetime_from_pb(r.updated_at) >= started

    r = s.send(action=pb.WRITE, offset=0, data=b"abc")
    assert (r.action, r.offset, r.digest) == (pb.WRITE, 3, digest_of(b"abc"))
    # fields set by the STAT persist into later responses
    assert r.total == 1234
    assert datetime_from_pb(r.started_at) == started

    r = s.send(action=pb.STAT, total=2000)  # STAT reports the client's latest total
    assert (r.offset, r.total, r.digest) == (3, 2000, digest_of(b"abc"))
    last = r

    final = s.close()  # EOF ends the stream OK, with the last response sent once more
    assert final == [last]


def test_write_response_before_any_stat_has_zero_times(stream: StreamFactory) -> None:
    s = stream()
    r = s.send(action=pb.WRITE, ref="nostat", data=b"hello")
    assert (r.offset, r.total, r.digest) == (5, 0, digest_of(b"hello"))
    # Go's times are non-nullable: the zero time goes on the wire
    assert r.HasField("started_at") and r.started_at.seconds == ZERO_SECONDS
    assert r.HasField("updated_at") and r.updated_at.seconds == ZERO_SECONDS


def test_write_must_occur_at_current_offset(wire: Wire, stream: StreamFactory) -> None:
    s = stream()
    s.send(action=pb.STAT, ref="oor")
    assert s.send(action=pb.WRITE, offset=0, data=b"abc").offset == 3
    assert s.send(action=pb.WRITE, offset=3, data=b"de").offset == 5
    code, message = s.fails(action=pb.WRITE, offset=7, data=b"x")
    assert code == Code.OUT_OF_RANGE
    assert message == "write @7 must occur at current offset 5"
    assert _status(wire, "oor").offset == 5  # the ingest is kept
    # behind the current offset (but not 0, the restart) is refused the same way
    s = stream()
    assert s.send(action=pb.STAT, ref="oor").offset == 5
    code, message = s.fails(action=pb.WRITE, offset=2, data=b"yy")
    assert code == Code.OUT_OF_RANGE
    assert message == "write @2 must occur at current offset 5"
    status = _status(wire, "oor")
    assert status.offset == 5
    s = stream()
    s.send(action=pb.STAT, ref="oor")
    assert s.send(action=pb.STAT).digest == digest_of(b"abcde")  # nothing overwritten


def test_write_at_offset_zero_restarts_the_ingest(wire: Wire, stream: StreamFactory) -> None:
    s = stream()
    s.send(action=pb.STAT, ref="restart")
    s.send(action=pb.WRITE, offset=0, data=b"abcdef")
    r = s.send(action=pb.WRITE, offset=0, data=b"xy")
    assert (r.offset, r.digest) == (2, digest_of(b"xy"))
    r = s.send(action=pb.WRITE, offset=0)  # no data: only the reset
    assert (r.offset, r.digest) == (0, EMPTY_DIGEST)
    r = s.send(action=pb.STAT)
    assert (r.offset, r.digest) == (0, EMPTY_DIGEST)
    s.send(action=pb.WRITE, offset=0, data=b"final")
    assert _status(wire, "restart").offset == 5


def test_negative_offset_appends(stream: StreamFactory) -> None:
    s = stream()
    s.send(action=pb.WRITE, ref="neg", data=b"abc")
    r = s.send(action=pb.WRITE, offset=-1, data=b"de")
    assert (r.offset, r.digest) == (5, digest_of(b"abcde"))


def test_single_commit_with_data(wire: Wire) -> None:
    data, digest = blob(4000)
    responses = wire.write(pb.WriteContentRequest(action=pb.COMMIT, ref="one", data=data))
    assert len(responses) == 2  # the commit response, then the duplicate final one
    assert responses[0] == responses[1]
    assert (responses[0].action, responses[0].offset, responses[0].digest) == (
        pb.COMMIT,
        4000,
        digest,
    )
    info = wire.stub.Info(pb.InfoRequest(digest=digest), metadata=wire.md).info
    assert info.size == 4000


def test_stat_write_commit_then_status_is_gone(wire: Wire, stream: StreamFactory) -> None:
    data, digest = blob(300)
    s = stream()
    assert s.send(action=pb.STAT, ref="swc", total=300, expected=digest).offset == 0
    s.send(action=pb.WRITE, offset=0, data=data[:100])
    s.send(action=pb.WRITE, offset=100, data=data[100:])
    r = s.send(action=pb.COMMIT, offset=300, total=300, expected=digest)
    assert (r.action, r.offset, r.digest, r.total) == (pb.COMMIT, 300, digest, 300)
    assert s.close() == [r]
    assert _status_code(wire, "swc") == Code.NOT_FOUND


def test_commit_labels_come_only_from_the_commit_message(wire: Wire, stream: StreamFactory) -> None:
    data, digest = blob(50)
    s = stream()
    s.send(action=pb.WRITE, ref="labels", data=data, labels={"from": "write"})
    s.send(action=pb.COMMIT, offset=50, labels={"from": "commit", "k": "v"})
    info = wire.stub.Info(pb.InfoRequest(digest=digest), metadata=wire.md).info
    assert dict(info.labels) == {"from": "commit", "k": "v"}


def test_commit_size_mismatch_keeps_the_ingest(wire: Wire, stream: StreamFactory) -> None:
    s = stream()
    s.send(action=pb.WRITE, ref="size-mm", data=b"abc")
    code, _ = s.fails(action=pb.COMMIT, offset=3, total=5)
    assert code == Code.FAILED_PRECONDITION
    assert _status(wire, "size-mm").offset == 3
    # resumable: a new stream starts at the kept offset
    s2 = stream()
    assert s2.send(action=pb.STAT, ref="size-mm").offset == 3


def test_commit_digest_mismatch_keeps_the_ingest(wire: Wire, stream: StreamFactory) -> None:
    s = stream()
    s.send(action=pb.WRITE, ref="dgst-mm", data=b"abc")
    code, _ = s.fails(action=pb.COMMIT, offset=3, expected=digest_of(b"abd"))
    assert code == Code.FAILED_PRECONDITION
    assert _status(wire, "dgst-mm").offset == 3


def test_commit_of_existing_bytes_is_already_exists(wire: Wire, stream: StreamFactory) -> None:
    data, _ = blob(64)
    wire.put(data)
    s = stream()
    s.send(action=pb.WRITE, ref="dup", data=data)
    code, _ = s.fails(action=pb.COMMIT, offset=64)
    assert code == Code.ALREADY_EXISTS
    assert _status_code(wire, "dup") == Code.NOT_FOUND


def test_open_with_existing_expected_digest(wire: Wire, stream: StreamFactory) -> None:
    data, digest = blob(64)
    wire.put(data)
    code, message = stream().fails(action=pb.STAT, ref="exists-open", expected=digest)
    assert code == Code.ALREADY_EXISTS
    assert message == f"content {digest}: already exists"
    assert _status_code(wire, "exists-open") == Code.NOT_FOUND


def test_later_expected_digest_already_present_aborts_the_ingest(
    wire: Wire, stream: StreamFactory
) -> None:
    data, digest = blob(64)
    wire.put(data)
    s = stream()
    s.send(action=pb.STAT, ref="exists-later")
    s.send(action=pb.WRITE, offset=0, data=b"partial")
    assert _status(wire, "exists-later").offset == 7
    code, message = s.fails(action=pb.WRITE, offset=7, data=b"more", expected=digest)
    assert code == Code.ALREADY_EXISTS
    assert message == f"blob with expected digest {digest} exists"
    assert _status_code(wire, "exists-later") == Code.NOT_FOUND


def test_ref_held_by_another_stream_is_unavailable(stream: StreamFactory) -> None:
    first = stream()
    first.send(action=pb.STAT, ref="held")
    code, message = stream().fails(action=pb.STAT, ref="held")
    assert code == Code.UNAVAILABLE
    assert "locked" in message and message.endswith(": unavailable")
    first.close()
    assert stream().send(action=pb.STAT, ref="held").offset == 0


def test_unknown_action_only_reports_the_offset(stream: StreamFactory) -> None:
    s = stream()
    s.send(action=pb.WRITE, ref="odd", data=b"abc")
    r = s.send(action=7, data=b"ignored")
    assert (r.action, r.offset) == (7, 3)
    assert s.send(action=pb.STAT).offset == 3


def test_duplicate_final_response_after_half_close(stream: StreamFactory) -> None:
    s = stream()
    s.send(action=pb.STAT, ref="dupfinal")
    last = s.send(action=pb.WRITE, offset=0, data=b"12345")
    assert s.close() == [last]


def test_resumed_stream_reports_digest_of_kept_bytes(stream: StreamFactory) -> None:
    s = stream()
    s.send(action=pb.WRITE, ref="resume", data=b"hello ")
    s.close()
    s2 = stream()
    r = s2.send(action=pb.STAT, ref="resume")
    assert (r.offset, r.digest) == (6, hashlib.sha256(b"hello ").hexdigest().join(["sha256:", ""]))
    r = s2.send(action=pb.COMMIT, offset=6, data=b"world")
    assert (r.offset, r.digest) == (11, digest_of(b"hello world"))
