"""Protobuf wire-format fields, encoded by hand for the few messages that skip the
protobuf runtime (it is not imported here: a short-lived command need not pay for it).

Proto3 encoding, as the runtime writes it: a field whose value is the default (empty
string, zero, false) is omitted; an int32/int64 below zero is its ten-byte two's
complement.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "MalformedVarint",
    "bytes_field",
    "flag_field",
    "int_field",
    "read_varint",
    "string_field",
    "varint",
]

_U64_MASK: Final = (1 << 64) - 1
_VARINT: Final = 0
_LEN: Final = 2


def varint(n: int) -> bytes:
    """The varint of ``n`` (a negative int64 as its 64-bit two's complement)."""
    n &= _U64_MASK
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


class MalformedVarint(ValueError):
    """A varint cut short by the end of its message, or longer than ten bytes."""


def read_varint(data: bytes | memoryview, pos: int, end: int) -> tuple[int, int]:
    """The unsigned 64-bit varint at ``data[pos:end]`` and the position after it."""
    value = 0
    for shift in range(0, 70, 7):
        if pos >= end:
            raise MalformedVarint("truncated varint")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value & _U64_MASK, pos
    raise MalformedVarint("varint longer than ten bytes")


def bytes_field(number: int, data: bytes) -> bytes:
    """Field ``number`` holding ``data`` (length-delimited), even when it is empty."""
    return varint(number << 3 | _LEN) + varint(len(data)) + data


def string_field(number: int, text: str) -> bytes:
    return bytes_field(number, text.encode()) if text else b""


def int_field(number: int, value: int) -> bytes:
    return varint(number << 3 | _VARINT) + varint(value) if value else b""


def flag_field(number: int, value: bool) -> bytes:
    return int_field(number, 1 if value else 0)
