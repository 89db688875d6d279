"""Error kinds <-> gRPC codes (spec §5.4, checklist 58)."""

from __future__ import annotations

import grpc
import pytest
from hypothesis import given
from hypothesis import strategies as st

from contentd.api.errors import StatusError, from_grpc, from_status, to_grpc
from contentd.content import errors as e

Code = grpc.StatusCode

PAIRS = [
    (e.InvalidArgument, Code.INVALID_ARGUMENT),
    (e.NotFound, Code.NOT_FOUND),
    (e.AlreadyExists, Code.ALREADY_EXISTS),
    (e.FailedPrecondition, Code.FAILED_PRECONDITION),
    (e.Unavailable, Code.UNAVAILABLE),
    (e.NotImplemented, Code.UNIMPLEMENTED),
    (e.Canceled, Code.CANCELLED),
    (e.DeadlineExceeded, Code.DEADLINE_EXCEEDED),
    # ours: containerd maps these three codes to Unknown
    (e.OutOfRange, Code.OUT_OF_RANGE),
    (e.ResourceExhausted, Code.RESOURCE_EXHAUSTED),
    (e.DataLoss, Code.DATA_LOSS),
    # as containerd's later errdefs (1.6: Unknown)
    (e.Unauthenticated, Code.UNAUTHENTICATED),
    (e.PermissionDenied, Code.PERMISSION_DENIED),
]


class FakeRpcError(grpc.RpcError):
    """What a failed call raises: an RpcError that is also a grpc.Call."""

    def __init__(self, code: grpc.StatusCode, details: str | None) -> None:
        self._code = code
        self._details = details

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str | None:
        return self._details


@pytest.mark.parametrize(("kind", "code"), PAIRS)
def test_kind_to_code_and_back(kind: type[e.ContentError], code: grpc.StatusCode) -> None:
    err = kind("content sha256:abc")
    assert to_grpc(err) == (code, f"content sha256:abc: {kind.kind_text}")
    back = from_grpc(FakeRpcError(*to_grpc(err)))
    assert type(back) is kind
    assert back.message == err.message


def test_subkinds_map_through_their_base() -> None:
    assert to_grpc(e.InvalidDigest("invalid checksum digest format"))[0] == Code.INVALID_ARGUMENT
    assert to_grpc(e.SizeMismatch(5, 3)) == (
        Code.FAILED_PRECONDITION,
        "unexpected commit size 3, expected 5: failed precondition",
    )
    assert to_grpc(e.NotFound("x").wrap("outer")) == (Code.NOT_FOUND, "outer: x: not found")


def test_not_found_round_trip_keeps_the_message() -> None:
    err = from_grpc(FakeRpcError(Code.NOT_FOUND, "content sha256:x: not found"))
    assert isinstance(err, e.NotFound)
    assert str(err) == "content sha256:x: not found"
    assert err.context == "content sha256:x"


def test_bare_kind_text_stays_bare() -> None:
    err = from_grpc(FakeRpcError(Code.NOT_FOUND, "not found"))
    assert isinstance(err, e.NotFound)
    assert (err.context, str(err)) == ("", "not found")


def test_message_without_kind_text_gets_it_appended() -> None:
    err = from_grpc(FakeRpcError(Code.UNAVAILABLE, "connection refused"))
    assert isinstance(err, e.Unavailable)
    assert str(err) == "connection refused: unavailable"


def test_only_one_trailing_kind_text_is_stripped() -> None:
    err = from_grpc(FakeRpcError(Code.NOT_FOUND, "a: not found: not found"))
    assert str(err) == "a: not found: not found"


@pytest.mark.parametrize("code", [Code.UNKNOWN, Code.INTERNAL, Code.ABORTED])
def test_other_codes_come_back_as_unknown(code: grpc.StatusCode) -> None:
    err = from_grpc(FakeRpcError(code, "wrote 1 of 2 bytes"))
    assert type(err) is e.Unknown
    assert str(err) == "wrote 1 of 2 bytes: unknown"


def test_unmapped_errors_go_out_as_unknown_and_come_back_unknown() -> None:
    code, message = to_grpc(ValueError("boom"))
    assert (code, message) == (Code.UNKNOWN, "boom")
    back = from_grpc(FakeRpcError(code, message))
    assert type(back) is e.Unknown and str(back) == "boom: unknown"
    assert to_grpc(e.Unknown("x")) == (Code.UNKNOWN, "x: unknown")


def test_statuses_pass_through_unchanged() -> None:
    assert to_grpc(StatusError(Code.OUT_OF_RANGE, "read past object length 3 bytes")) == (
        Code.OUT_OF_RANGE,
        "read past object length 3 bytes",
    )
    assert to_grpc(FakeRpcError(Code.DATA_LOSS, "lost")) == (Code.DATA_LOSS, "lost")


def test_rpc_error_without_status_is_unknown() -> None:
    err = from_grpc(grpc.RpcError("odd"))
    assert type(err) is e.Unknown


def test_cause_is_kept() -> None:
    rpc = FakeRpcError(Code.NOT_FOUND, "x: not found")
    assert from_grpc(rpc).__cause__ is rpc


@given(
    st.sampled_from(PAIRS),
    st.text(st.characters(exclude_categories=["Cs"]), max_size=40),
)
def test_round_trip_of_any_context(
    pair: tuple[type[e.ContentError], grpc.StatusCode], ctx: str
) -> None:
    kind, code = pair
    err = kind(ctx)
    sent = to_grpc(err)
    assert sent[0] == code
    back = from_status(*sent)
    assert type(back) is kind
    assert back.message == err.message or ctx.endswith(": " + kind.kind_text)
