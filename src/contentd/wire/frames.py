"""HTTP/2 frames (RFC 9113 §4, §6): the 9-byte header, and building the frames a server sends.

The connection parses incoming frames itself with :data:`HEADER` (one
``unpack_from`` per frame is the cheapest way in Python); the builders here
return ready-to-send ``bytes``. :func:`parse_frames` is the same parse for
tests and tools.
"""

from __future__ import annotations

import struct
from typing import Final, NamedTuple

__all__ = [
    "ACK",
    "CONTINUATION",
    "DATA",
    "END_HEADERS",
    "END_STREAM",
    "GOAWAY",
    "HEADER",
    "HEADERS",
    "PADDED",
    "PING",
    "PREFACE",
    "PRIORITY",
    "PRIORITY_FLAG",
    "PUSH_PROMISE",
    "RST_STREAM",
    "SETTINGS",
    "WINDOW_UPDATE",
    "ErrorCode",
    "Frame",
    "Setting",
    "data",
    "encode",
    "goaway",
    "headers",
    "parse_frames",
    "parse_settings",
    "ping",
    "rst_stream",
    "settings",
    "window_update",
]

#: What a client sends before its first frame.
PREFACE: Final = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

# frame types
DATA: Final = 0x0
HEADERS: Final = 0x1
PRIORITY: Final = 0x2
RST_STREAM: Final = 0x3
SETTINGS: Final = 0x4
PUSH_PROMISE: Final = 0x5
PING: Final = 0x6
GOAWAY: Final = 0x7
WINDOW_UPDATE: Final = 0x8
CONTINUATION: Final = 0x9

# flags
END_STREAM: Final = 0x1
ACK: Final = 0x1
END_HEADERS: Final = 0x4
PADDED: Final = 0x8
PRIORITY_FLAG: Final = 0x20

#: length (24 bits) and type packed into one 32-bit word, flags, stream id (31 bits)
HEADER: Final[struct.Struct] = struct.Struct(">IBI")
_SETTING: Final[struct.Struct] = struct.Struct(">HI")
_U32: Final[struct.Struct] = struct.Struct(">I")
_GOAWAY: Final[struct.Struct] = struct.Struct(">II")


class ErrorCode:
    """RST_STREAM / GOAWAY error codes (RFC 9113 §7)."""

    NO_ERROR: Final = 0x0
    PROTOCOL_ERROR: Final = 0x1
    INTERNAL_ERROR: Final = 0x2
    FLOW_CONTROL_ERROR: Final = 0x3
    STREAM_CLOSED: Final = 0x5
    FRAME_SIZE_ERROR: Final = 0x6
    REFUSED_STREAM: Final = 0x7
    CANCEL: Final = 0x8
    COMPRESSION_ERROR: Final = 0x9
    ENHANCE_YOUR_CALM: Final = 0xB


class Setting:
    """SETTINGS identifiers (RFC 9113 §6.5.2)."""

    HEADER_TABLE_SIZE: Final = 0x1
    ENABLE_PUSH: Final = 0x2
    MAX_CONCURRENT_STREAMS: Final = 0x3
    INITIAL_WINDOW_SIZE: Final = 0x4
    MAX_FRAME_SIZE: Final = 0x5
    MAX_HEADER_LIST_SIZE: Final = 0x6


class Frame(NamedTuple):
    type: int
    flags: int
    stream_id: int
    payload: bytes


def encode(ftype: int, flags: int, stream_id: int, payload: bytes = b"") -> bytes:
    """One frame: header and payload."""
    return HEADER.pack(len(payload) << 8 | ftype, flags, stream_id) + payload


def parse_frames(buf: bytes) -> tuple[list[Frame], int]:
    """The complete frames at the start of ``buf`` and how many bytes they take."""
    frames: list[Frame] = []
    off = 0
    end = len(buf)
    while end - off >= 9:
        word, flags, sid = HEADER.unpack_from(buf, off)
        length = word >> 8
        if end - off - 9 < length:
            break
        start = off + 9
        off = start + length
        frames.append(Frame(word & 0xFF, flags, sid & 0x7FFFFFFF, bytes(buf[start:off])))
    return frames, off


def data(stream_id: int, payload: bytes, end_stream: bool = False) -> bytes:
    return encode(DATA, END_STREAM if end_stream else 0, stream_id, payload)


def headers(stream_id: int, block: bytes, end_stream: bool = False) -> bytes:
    """A HEADERS frame carrying a whole header block (no CONTINUATION)."""
    return encode(HEADERS, END_HEADERS | (END_STREAM if end_stream else 0), stream_id, block)


def settings(values: dict[int, int] | None = None, *, ack: bool = False) -> bytes:
    payload = b"".join(_SETTING.pack(k, v) for k, v in (values or {}).items())
    return encode(SETTINGS, ACK if ack else 0, 0, payload)


def parse_settings(payload: bytes) -> list[tuple[int, int]]:
    """``(identifier, value)`` pairs; ValueError when the length is not a multiple of 6."""
    if len(payload) % 6:
        raise ValueError("SETTINGS payload length is not a multiple of 6")
    return [_SETTING.unpack_from(payload, i) for i in range(0, len(payload), 6)]


def window_update(stream_id: int, increment: int) -> bytes:
    return encode(WINDOW_UPDATE, 0, stream_id, _U32.pack(increment))


def ping(payload: bytes, *, ack: bool = False) -> bytes:
    return encode(PING, ACK if ack else 0, 0, payload)


def rst_stream(stream_id: int, code: int) -> bytes:
    return encode(RST_STREAM, 0, stream_id, _U32.pack(code))


def goaway(last_stream_id: int, code: int, debug: bytes = b"") -> bytes:
    return encode(GOAWAY, 0, 0, _GOAWAY.pack(last_stream_id, code) + debug)
