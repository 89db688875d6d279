"""The Content service's bulk messages, encoded and decoded by hand.

Every byte of a blob crosses the wire in one of two messages, and the generic
protobuf runtime copies it on the way: parsing a ``WriteContentRequest`` copies
its ``data`` into the message, reading the field copies it out again;
building a ``ReadContentResponse`` copies the chunk in and serializing copies
it out. Here:

* :func:`decode_write_request` reads the fields of a ``WriteContentRequest``
  straight from the received buffer; ``data`` is a ``memoryview`` of it (no
  copy). Anything but the plain encoding of fields 1-6 -- labels (field 7,
  sent only with a commit), unknown fields, other wire types, malformed or
  truncated input, invalid UTF-8 -- goes to the protobuf runtime instead, so
  odd and hostile input is accepted or refused exactly as it parses there.
* :func:`decode_read_request` reads a ``ReadContentRequest`` (containerd's
  proxy sends one per 32 KiB it reads) the same way, with the same fallback to
  the protobuf runtime for anything but fields 1-3 plainly encoded.
* :func:`encode_read_response` writes a ``ReadContentResponse`` as the Go
  server does (proto3: a zero ``offset`` and empty ``data`` are omitted).

Field numbers (``containerd/services/content/v1/content.proto``):
``WriteContentRequest``: action 1 (enum), ref 2, total 3 (int64), expected 4,
offset 5 (int64), data 6, labels 7 (map); ``ReadContentRequest``: digest 1,
offset 2 (int64), size 3 (int64); ``ReadContentResponse``: offset 1 (int64), data 2.
"""

from __future__ import annotations

from typing import Final

from contentd.api._pb.containerd.services.content.v1 import content_pb2 as pb

__all__ = [
    "ReadRequest",
    "WriteRequest",
    "decode_read_request",
    "decode_write_request",
    "encode_read_response",
    "varint",
]

_U64: Final = 1 << 64
_I64_MIN_AS_U64: Final = 1 << 63
_I32_LIMIT: Final = 1 << 31


class WriteRequest:
    """A decoded ``WriteContentRequest``: the fields the service reads, by the same names."""

    __slots__ = ("action", "data", "expected", "labels", "offset", "ref", "total")

    def __init__(
        self,
        action: int = 0,
        ref: str = "",
        total: int = 0,
        expected: str = "",
        offset: int = 0,
        data: bytes | memoryview = b"",
        labels: dict[str, str] | None = None,
    ) -> None:
        self.action = action
        self.ref = ref
        self.total = total
        self.expected = expected
        self.offset = offset
        self.data = data
        self.labels: dict[str, str] = labels if labels is not None else {}

    def __repr__(self) -> str:
        return (
            f"WriteRequest(action={self.action}, ref={self.ref!r}, total={self.total},"
            f" expected={self.expected!r}, offset={self.offset}, data=<{len(self.data)} bytes>,"
            f" labels={self.labels!r})"
        )


class ReadRequest:
    """A decoded ``ReadContentRequest``: ``digest``, ``offset`` and ``size``, by the same names."""

    __slots__ = ("digest", "offset", "size")

    def __init__(self, digest: str = "", offset: int = 0, size: int = 0) -> None:
        self.digest = digest
        self.offset = offset
        self.size = size

    def __repr__(self) -> str:
        return f"ReadRequest(digest={self.digest!r}, offset={self.offset}, size={self.size})"


class _Unusual(Exception):
    """Not the plain encoding: let the protobuf runtime parse it."""


def _uvarint(buf: bytes | bytearray, i: int, end: int) -> tuple[int, int]:
    """An unsigned varint of at most 10 bytes and 64 bits at ``buf[i]``; and the next index."""
    result = 0
    shift = 0
    while i < end:
        b = buf[i]
        i += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            if result >= _U64:
                raise _Unusual
            return result, i
        shift += 7
        if shift >= 70:
            break
    raise _Unusual


def _int64(v: int) -> int:
    return v - _U64 if v >= _I64_MIN_AS_U64 else v


def decode_write_request(raw: bytes | bytearray) -> WriteRequest:
    """A ``WriteContentRequest`` from its serialized bytes (see the module docstring);
    a ``bytearray`` (how the engine hands out a large message) is not copied either.

    Raises what the protobuf runtime raises for input it refuses.
    """
    try:
        return _decode_write(raw)
    except _Unusual:
        pass
    msg = pb.WriteContentRequest.FromString(raw if type(raw) is bytes else bytes(raw))
    return WriteRequest(
        msg.action, msg.ref, msg.total, msg.expected, msg.offset, msg.data, dict(msg.labels)
    )


def _decode_write(raw: bytes | bytearray) -> WriteRequest:
    req = WriteRequest()
    end = len(raw)
    i = 0
    while i < end:
        key = raw[i]
        i += 1
        if key & 7 == 0:  # varint fields: action 1, total 3, offset 5
            v, i = _uvarint(raw, i, end)
            if key == 0x28:
                req.offset = _int64(v)
            elif key == 0x08:
                if v >= _I32_LIMIT:  # a negative or out-of-range enum value
                    raise _Unusual
                req.action = v
            elif key == 0x18:
                req.total = _int64(v)
            else:
                raise _Unusual
        elif key & 7 == 2:  # length-delimited: ref 2, expected 4, data 6
            n, i = _uvarint(raw, i, end)
            stop = i + n
            if stop > end:
                raise _Unusual
            if key == 0x32:
                req.data = memoryview(raw)[i:stop]
            elif key == 0x12 or key == 0x22:
                try:
                    text = raw[i:stop].decode("utf-8")
                except UnicodeDecodeError:
                    raise _Unusual from None
                if key == 0x12:
                    req.ref = text
                else:
                    req.expected = text
            else:
                raise _Unusual
            i = stop
        else:
            raise _Unusual
    return req


def decode_read_request(raw: bytes | bytearray) -> ReadRequest:
    """A ``ReadContentRequest`` from its serialized bytes (see the module docstring).

    Raises what the protobuf runtime raises for input it refuses.
    """
    if type(raw) is not bytes:  # a large message, as the engine hands it out: a bytearray
        raw = bytes(raw)
    try:
        return _decode_read(raw)
    except _Unusual:
        pass
    msg = pb.ReadContentRequest.FromString(raw)
    return ReadRequest(msg.digest, msg.offset, msg.size)


def _decode_read(raw: bytes) -> ReadRequest:
    req = ReadRequest()
    end = len(raw)
    i = 0
    while i < end:
        key = raw[i]
        i += 1
        if key == 0x10 or key == 0x18:  # offset 2, size 3 (int64 varints)
            v, i = _uvarint(raw, i, end)
            if key == 0x10:
                req.offset = _int64(v)
            else:
                req.size = _int64(v)
        elif key == 0x0A:  # digest 1
            n, i = _uvarint(raw, i, end)
            stop = i + n
            if stop > end:
                raise _Unusual
            try:
                req.digest = raw[i:stop].decode("utf-8")
            except UnicodeDecodeError:
                raise _Unusual from None
            i = stop
        else:
            raise _Unusual
    return req


def varint(v: int) -> bytes:
    """The protobuf varint of ``v`` (a negative int64 as its 10-byte two's complement)."""
    if v < 0:
        v += _U64
    if v < 0x80:
        return bytes((v,))
    if v < 0x4000:  # a Read's chunk length up to 16 KiB, and offsets below it
        return bytes((v & 0x7F | 0x80, v >> 7))
    if v < 0x200000:  # up to 2 MiB: the chunk length of every Read (1 MiB at most)
        return bytes((v & 0x7F | 0x80, (v >> 7) & 0x7F | 0x80, v >> 14))
    out = bytearray()
    while v >= 0x80:
        out.append((v & 0x7F) | 0x80)
        v >>= 7
    out.append(v)
    return bytes(out)


def encode_read_response(offset: int, data: bytes) -> bytes:
    """A serialized ``ReadContentResponse``: one copy of ``data``."""
    head = b"\x08" + varint(offset) if offset else b""
    if data:
        head += b"\x12" + varint(len(data))
    return head + data
