"""The Registry service's messages as ``contentd fetch`` and ``push`` send and read them,
encoded and decoded by hand.

Importing the protobuf runtime and the generated modules is a large part of what a short
``contentd fetch`` costs before its request leaves (the fetch itself runs in the daemon),
and the command needs two small messages of it: the request it sends and the
``Progress`` messages it reads. Both are proto3 (``proto/contentd/services/registry/v1/
registry.proto``, ``containerd/types/descriptor.proto``):

* ``FetchRequest``: reference 1, platforms 2 (repeated), all_platforms 3, plain_http 4,
  credentials 5 (``Credentials``: username 1, secret 2), concurrency 6 (int32),
  image_name 7. ``PushRequest``: reference 1, source 2, plain_http 3, credentials 4,
  concurrency 5. Encoded as the protobuf runtime encodes them (fields in order, zero
  values omitted), with the fields of :mod:`contentd.api.protowire`.
* ``Progress``: status 1, descriptor 2 (``Descriptor``: media_type 1, digest 2, size 3
  (int64), annotations 5 (map)), ref 3, offset 4 (int64), resumed 5 (int64), image 6.

The decoder reads what the daemon sends as hostile input: every length and varint is
bounds-checked, strings must be UTF-8, unknown fields of the four wire types protobuf
uses are skipped (as the runtime keeps and ignores them; so is a known field sent with
another wire type, as the runtime does), a repeated scalar's last value wins and a
repeated message field is merged, as in protobuf. Anything else (groups among them) is
:class:`MalformedMessage`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from contentd.api.protowire import (
    MalformedVarint,
    bytes_field,
    flag_field,
    int_field,
    read_varint,
    string_field,
)
from contentd.content.errors import Unknown

__all__ = [
    "MalformedMessage",
    "ProgressDescriptor",
    "ProgressMessage",
    "decode_progress",
    "encode_fetch_request",
    "encode_push_request",
]

_U64: Final = 1 << 64
_I64_SIGN: Final = 1 << 63
_VARINT: Final = 0
_FIXED64: Final = 1
_LEN: Final = 2
_FIXED32: Final = 5


class MalformedMessage(Unknown):
    """A message from the daemon that is not valid protobuf of its type."""


class ProgressDescriptor:
    """``containerd.types.Descriptor`` as a ``Progress`` carries it."""

    __slots__ = ("annotations", "digest", "media_type", "size")

    def __init__(self) -> None:
        self.media_type = ""
        self.digest = ""
        self.size = 0
        self.annotations: dict[str, str] = {}


class ProgressMessage:
    """One ``Progress``: the same field names as the generated class."""

    __slots__ = ("descriptor", "image", "offset", "ref", "resumed", "status")

    def __init__(self) -> None:
        self.status = ""
        self.descriptor = ProgressDescriptor()
        self.ref = ""
        self.offset = 0
        self.resumed = 0
        self.image = ""


# -- encoding ---------------------------------------------------------------------------


def _credentials(number: int, credentials: tuple[str, str] | None) -> bytes:
    if credentials is None:
        return b""
    user, secret = credentials
    return bytes_field(number, string_field(1, user) + string_field(2, secret))


def encode_fetch_request(
    reference: str,
    *,
    platforms: Sequence[str] = (),
    all_platforms: bool = False,
    plain_http: bool = False,
    credentials: tuple[str, str] | None = None,
    concurrency: int = 0,
    image_name: str = "",
) -> bytes:
    """A serialized ``FetchRequest``; ``credentials`` is (username, secret)."""
    parts = [string_field(1, reference)]
    parts += [bytes_field(2, p.encode()) for p in platforms]
    parts += [
        flag_field(3, all_platforms),
        flag_field(4, plain_http),
        _credentials(5, credentials),
        int_field(6, concurrency),
        string_field(7, image_name),
    ]
    return b"".join(parts)


def encode_push_request(
    reference: str,
    *,
    source: str = "",
    plain_http: bool = False,
    credentials: tuple[str, str] | None = None,
    concurrency: int = 0,
) -> bytes:
    """A serialized ``PushRequest``; ``credentials`` is (username, secret)."""
    return b"".join(
        (
            string_field(1, reference),
            string_field(2, source),
            flag_field(3, plain_http),
            _credentials(4, credentials),
            int_field(5, concurrency),
        )
    )


# -- decoding ---------------------------------------------------------------------------


class _Reader:
    __slots__ = ("data", "end", "pos")

    def __init__(self, data: bytes | memoryview, pos: int = 0, end: int | None = None) -> None:
        self.data = data
        self.pos = pos
        self.end = len(data) if end is None else end

    def more(self) -> bool:
        return self.pos < self.end

    def varint(self) -> int:
        try:
            value, self.pos = read_varint(self.data, self.pos, self.end)
        except MalformedVarint as err:
            raise MalformedMessage(f"Progress: {err}") from None
        return value

    def int64(self) -> int:
        value = self.varint()
        return value - _U64 if value >= _I64_SIGN else value

    def length(self) -> int:
        size = self.varint()
        if size > self.end - self.pos:
            raise MalformedMessage("Progress: a field runs past the end of the message")
        return size

    def string(self) -> str:
        size = self.length()
        raw = bytes(self.data[self.pos : self.pos + size])
        self.pos += size
        try:
            return raw.decode()
        except UnicodeDecodeError:
            raise MalformedMessage("Progress: a string field is not UTF-8") from None

    def sub(self) -> _Reader:
        size = self.length()
        reader = _Reader(self.data, self.pos, self.pos + size)
        self.pos += size
        return reader

    def skip(self, wire_type: int) -> None:
        if wire_type == _VARINT:
            self.varint()
            return
        if wire_type == _LEN:
            length = self.length()  # reads the length: pos moves before it is added to
            self.pos += length
            return
        size = {_FIXED64: 8, _FIXED32: 4}.get(wire_type)
        if size is None:
            raise MalformedMessage(f"Progress: unsupported wire type {wire_type}")
        if size > self.end - self.pos:
            raise MalformedMessage("Progress: a field runs past the end of the message")
        self.pos += size

    def key(self) -> tuple[int, int]:
        key = self.varint()
        number, wire_type = key >> 3, key & 7
        if number == 0:
            raise MalformedMessage("Progress: field number 0")
        return number, wire_type


def _annotation(reader: _Reader) -> tuple[str, str]:
    key = value = ""
    while reader.more():
        number, wire_type = reader.key()
        if number == 1 and wire_type == _LEN:
            key = reader.string()
        elif number == 2 and wire_type == _LEN:
            value = reader.string()
        else:
            reader.skip(wire_type)
    return key, value


def _descriptor(reader: _Reader, desc: ProgressDescriptor) -> None:
    while reader.more():
        number, wire_type = reader.key()
        if number == 1 and wire_type == _LEN:
            desc.media_type = reader.string()
        elif number == 2 and wire_type == _LEN:
            desc.digest = reader.string()
        elif number == 3 and wire_type == _VARINT:
            desc.size = reader.int64()
        elif number == 5 and wire_type == _LEN:
            key, value = _annotation(reader.sub())
            desc.annotations[key] = value
        else:
            reader.skip(wire_type)


def decode_progress(data: bytes | memoryview) -> ProgressMessage:
    """A ``Progress`` from its serialized bytes; :class:`MalformedMessage` if it is not one."""
    msg = ProgressMessage()
    reader = _Reader(data)
    while reader.more():
        number, wire_type = reader.key()
        if wire_type == _LEN and number in (1, 3, 6):
            text = reader.string()
            if number == 1:
                msg.status = text
            elif number == 3:
                msg.ref = text
            else:
                msg.image = text
        elif number == 2 and wire_type == _LEN:
            _descriptor(reader.sub(), msg.descriptor)
        elif wire_type == _VARINT and number in (4, 5):
            value = reader.int64()
            if number == 4:
                msg.offset = value
            else:
                msg.resumed = value
        else:
            reader.skip(wire_type)
    return msg
