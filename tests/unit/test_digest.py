from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from contentd import InvalidArgument
from contentd.content import digest as digests
from contentd.content.errors import InvalidDigest

HEX64 = "a" * 64


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "invalid checksum digest format"),
        ("sha256", "invalid checksum digest format"),
        (":" + HEX64, "invalid checksum digest format"),
        ("sha256:", "invalid checksum digest format"),
        ("md5:d41d8cd98f00b204e9800998ecf8427e", "unsupported digest algorithm"),
        ("MD5:abc", "invalid checksum digest format"),
        ("sha256:" + "a" * 63, "invalid checksum digest length"),
        ("sha256:" + "a" * 65, "invalid checksum digest length"),
        ("sha256:" + "A" * 64, "invalid checksum digest format"),
        ("sha256:" + "g" * 64, "invalid checksum digest format"),
        ("sha384:" + "a" * 64, "invalid checksum digest length"),
        ("sha512:" + "a" * 96, "invalid checksum digest length"),
    ],
)
def test_rejections(text: str, message: str) -> None:
    with pytest.raises(InvalidDigest) as exc:
        digests.parse(text)
    assert exc.value.context == message
    assert str(exc.value) == f"{message}: invalid argument"
    assert isinstance(exc.value, InvalidArgument)


@pytest.mark.parametrize("alg", ["sha256", "sha384", "sha512"])
def test_valid(alg: str) -> None:
    enc = hashlib.new(alg, b"x").hexdigest()
    parsed = digests.parse(f"{alg}:{enc}")
    assert parsed.algorithm == alg and parsed.encoded == enc
    assert str(parsed) == f"{alg}:{enc}"


def test_empty_digest() -> None:
    assert digests.digest_of(b"") == digests.EMPTY_DIGEST


@given(st.binary())
def test_digest_of_round_trips(data: bytes) -> None:
    d = digests.digest_of(data)
    assert digests.parse(d).encoded == hashlib.sha256(data).hexdigest()


@given(st.text())
def test_parse_never_crashes(text: str) -> None:
    try:
        parsed = digests.parse(text)
    except InvalidDigest:
        return
    assert str(parsed) == text
    assert parsed.algorithm in digests.ALGORITHMS
    assert len(parsed.encoded) == digests.ALGORITHMS[parsed.algorithm]
    assert set(parsed.encoded) <= set("0123456789abcdef")
