from __future__ import annotations

import pytest

from contentd.content import errors


@pytest.mark.parametrize(
    ("cls", "text"),
    [
        (errors.InvalidArgument, "invalid argument"),
        (errors.NotFound, "not found"),
        (errors.AlreadyExists, "already exists"),
        (errors.FailedPrecondition, "failed precondition"),
        (errors.Unavailable, "unavailable"),
        (errors.NotImplemented, "not implemented"),
        (errors.Unknown, "unknown"),
        (errors.OutOfRange, "out of range"),
        (errors.ResourceExhausted, "resource exhausted"),
        (errors.Unauthenticated, "unauthenticated"),
        (errors.PermissionDenied, "permission denied"),
    ],
)
def test_message_shape(cls: type[errors.ContentError], text: str) -> None:
    assert str(cls()) == text
    err = cls("content sha256:x")
    assert str(err) == f"content sha256:x: {text}"
    wrapped = err.wrap("outer")
    assert isinstance(wrapped, cls)
    assert str(wrapped) == f"outer: content sha256:x: {text}"
    assert wrapped.__cause__ is err
    assert isinstance(cls(), errors.ContentError)


def test_mismatches_carry_values() -> None:
    e = errors.SizeMismatch(10, 12)
    assert (e.expected, e.actual) == (10, 12)
    assert isinstance(e, errors.FailedPrecondition)
    assert str(e) == "unexpected commit size 12, expected 10: failed precondition"
    d = errors.DigestMismatch("sha256:a", "sha256:b")
    assert str(d) == "unexpected commit digest sha256:b, expected sha256:a: failed precondition"
    w = d.wrap("ctx")
    assert isinstance(w, errors.DigestMismatch) and w.expected == "sha256:a"
