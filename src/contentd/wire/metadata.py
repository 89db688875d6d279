"""gRPC over HTTP/2 headers: the blocks a server sends, and reading what a client sent.

Response headers and trailers are HPACK-encoded here as static-table
references and literals *without indexing* (RFC 7541 §6.2.2), never Huffman:
the encoder keeps no dynamic-table state, so any thread may build a block at
any time, and the constant ones are built once. Request headers are decoded
with the ``hpack`` package (clients use Huffman and the dynamic table).
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Final

from contentd.content import codes

__all__ = [
    "MAX_STATUS_MESSAGE",
    "REQUEST_PSEUDO",
    "RESPONSE_HEADERS",
    "RESPONSE_PSEUDO",
    "TRAILERS_OK",
    "Request",
    "Response",
    "check_fields",
    "check_request",
    "early_abort",
    "hpack_integer",
    "hpack_literal",
    "hpack_string",
    "parse_request",
    "parse_response",
    "percent_encode",
    "stateless",
    "status_block",
    "status_message",
    "timeout_seconds",
    "trailers_only",
]

# headers the gRPC transport consumes: not shown to handlers as metadata
_RESERVED: Final = frozenset(
    {
        b"content-type",
        b"te",
        b"grpc-timeout",
        b"grpc-encoding",
        b"grpc-accept-encoding",
        b"grpc-message-type",
    }
)
_UNITS: Final = {
    "H": 3600.0,
    "M": 60.0,
    "S": 1.0,
    "m": 1e-3,
    "u": 1e-6,
    "n": 1e-9,
}
# bytes sent as they are in grpc-message (printable ASCII except '%')
_PLAIN: Final = frozenset(range(0x20, 0x7F)) - {ord("%")}
_PLAIN_BYTES: Final = bytes(sorted(_PLAIN))


def hpack_integer(value: int, prefix_bits: int, first: int) -> bytes:
    """An HPACK integer (RFC 7541 §5.1); ``first`` holds the bits above the prefix."""
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes((first | value,))
    out = bytearray((first | limit,))
    value -= limit
    while value >= 128:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def hpack_string(text: bytes) -> bytes:
    """A string literal, not Huffman-coded."""
    return hpack_integer(len(text), 7, 0) + text


def hpack_literal(name: bytes | int, value: bytes) -> bytes:
    """A literal header field without indexing: ``name`` literal, or a static-table index."""
    if isinstance(name, int):
        return hpack_integer(name, 4, 0) + hpack_string(value)
    return b"\x00" + hpack_string(name) + hpack_string(value)


#: ``:status: 200`` (static index 8) and ``content-type: application/grpc`` (name index 31)
RESPONSE_HEADERS: Final = b"\x88" + hpack_integer(31, 4, 0) + hpack_string(b"application/grpc")
_STATUS_BLOCKS: Final = {  # the 17 codes gRPC defines
    code: hpack_literal(b"grpc-status", str(code).encode()) for code in range(17)
}
#: the trailers of a successful call
TRAILERS_OK: Final = _STATUS_BLOCKS[0]


def percent_encode(message: str) -> bytes:
    """``grpc-message``'s encoding: UTF-8, bytes outside printable ASCII and '%' as ``%XX``."""
    raw = message.encode("utf-8", "replace")
    if not raw.translate(None, _PLAIN_BYTES):  # all plain (checked in C)
        return raw
    return b"".join(bytes((b,)) if b in _PLAIN else b"%%%02X" % b for b in raw)


#: the longest grpc-message sent, encoded: clients refuse a header list over their limit
#: (grpcio's is 16 KiB) and then report RESOURCE_EXHAUSTED instead of the call's status,
#: so a message naming a 64 KiB ref is cut, and says so, rather than losing its code
MAX_STATUS_MESSAGE: Final = 4096
_CUT_MARK: Final = b"...(cut)"


def status_message(message: str) -> bytes:
    """``message`` as grpc-message carries it, at most :data:`MAX_STATUS_MESSAGE` bytes."""
    encoded = percent_encode(message)
    if len(encoded) <= MAX_STATUS_MESSAGE:
        return encoded
    budget = MAX_STATUS_MESSAGE - len(_CUT_MARK)
    pieces: list[bytes] = []
    for char in message:  # whole characters: a cut escape or UTF-8 sequence is invalid
        piece = percent_encode(char)
        budget -= len(piece)
        if budget < 0:
            break
        pieces.append(piece)
    return b"".join(pieces) + _CUT_MARK


def status_block(code: int, message: str) -> bytes:
    """A header block with ``grpc-status`` (and ``grpc-message`` when there is one)."""
    block = _STATUS_BLOCKS.get(code) or hpack_literal(b"grpc-status", str(code).encode())
    if message:
        block += hpack_literal(b"grpc-message", status_message(message))
    return block


def trailers_only(code: int, message: str) -> bytes:
    """The single header block of a call that fails before sending anything."""
    return RESPONSE_HEADERS + status_block(code, message)


def early_abort(http_status: int, code: int, message: str) -> bytes:
    """grpc-go's answer to a request that is not gRPC: an HTTP status (405, 415) with
    a gRPC status, in one block."""
    if http_status == 200:
        return trailers_only(code, message)
    head = hpack_literal(8, str(http_status).encode())  # :status, name index 8
    return head + RESPONSE_HEADERS[1:] + status_block(code, message)


def timeout_seconds(value: str) -> float | None:
    """A ``grpc-timeout`` value (``1S``, ``250m``, ...) in seconds; None when malformed."""
    digits = value[:-1]
    if len(value) < 2 or len(value) > 9 or value[-1] not in _UNITS or not digits.isascii():
        return None
    if not digits.isdigit():
        return None
    return int(value[:-1]) * _UNITS[value[-1]]


class Request:
    """What the transport needs of a request's header block."""

    __slots__ = ("content_type", "encoding", "metadata", "method", "path", "timeout")

    def __init__(self) -> None:
        self.method = ""
        self.path = ""
        self.content_type = ""
        self.encoding = ""
        self.timeout: float | None = None
        #: ``(key, value)`` pairs for the handler; ``-bin`` values are bytes
        self.metadata: tuple[tuple[str, str | bytes], ...] = ()


def parse_request(fields: list[tuple[bytes, bytes]]) -> Request:
    """Read decoded header fields (``hpack.Decoder.decode(raw=True)``) of a request."""
    req = Request()
    metadata: list[tuple[str, str | bytes]] = []
    for name, value in fields:
        if name[:1] == b":":
            if name == b":path":
                req.path = value.decode("utf-8", "replace")
            elif name == b":method":
                req.method = value.decode("latin-1")
            continue
        if name in _RESERVED:
            if name == b"content-type":
                req.content_type = value.decode("latin-1")
            elif name == b"grpc-timeout":
                req.timeout = timeout_seconds(value.decode("latin-1"))
            elif name == b"grpc-encoding":
                req.encoding = value.decode("latin-1")
            continue
        key = name.decode("latin-1")
        if key.endswith("-bin"):
            metadata.append((key, _binary(value)))
        else:
            metadata.append((key, value.decode("utf-8", "replace")))
    req.metadata = tuple(metadata)
    return req


class Response:
    """What a client has read of a response's header blocks."""

    __slots__ = ("http_status", "message", "reset_code", "status")

    def __init__(self) -> None:
        self.http_status = 200
        #: ``grpc-status`` once the trailers came, and ``grpc-message``
        self.status: int | None = None
        self.message = ""
        #: the RST_STREAM code when the server reset the stream before its status
        self.reset_code: int | None = None


def parse_response(response: Response, fields: list[tuple[bytes, bytes]]) -> None:
    """Read a response header block or trailers into ``response``."""
    for name, value in fields:
        if name == b":status":
            response.http_status = int(value) if value.isdigit() else 0
        elif name == b"grpc-status":
            response.status = int(value) if value.isdigit() else 2
        elif name == b"grpc-message":
            response.message = _percent_decode(value.decode("utf-8", "replace"))


def _percent_decode(text: str) -> str:
    if "%" not in text:
        return text
    from urllib.parse import unquote_to_bytes

    return unquote_to_bytes(text).decode("utf-8", "replace")


def _binary(value: bytes) -> bytes:
    """A ``-bin`` value: base64, padded or not; several values may be joined by commas."""
    try:
        return b"".join(
            base64.b64decode(part.strip() + b"=" * (-len(part.strip()) % 4))
            for part in value.split(b",")
        )
    except (binascii.Error, ValueError):
        return value


# -- checking what a peer sent ------------------------------------------------------

# field names: lowercase token characters (RFC 9110 §5.1, RFC 9113 §8.2.1)
_FIELD_NAME: Final = re.compile(rb"[a-z0-9!#$%&'*+\-.^_`|~]+\Z")
#: a value's first or last byte may not be whitespace (RFC 9113 §8.2.1)
_EDGE: Final = frozenset(b" \t")
REQUEST_PSEUDO: Final = frozenset((b":method", b":scheme", b":path", b":authority"))
RESPONSE_PSEUDO: Final = frozenset((b":status",))


def check_fields(fields: list[tuple[bytes, bytes]], pseudo: frozenset[bytes]) -> str | None:
    """Why the decoded field list is malformed (RFC 9113 §8.2, §8.3), or None."""
    regular = False
    for name, value in fields:
        if name[:1] == b":":
            if regular or name not in pseudo:
                return f"bad pseudo-header {name[:64]!r}"
        else:
            regular = True
            if not _FIELD_NAME.match(name):
                return f"bad header name {name[:64]!r}"
        # NUL, CR, LF anywhere (each a memchr: the value may be 64 KiB of hostile bytes;
        # one regex alternation of the three rules took 30 ns a byte)
        if value and (
            b"\n" in value
            or b"\r" in value
            or b"\x00" in value
            or value[0] in _EDGE
            or value[-1] in _EDGE
        ):
            return f"bad value of header {name[:64]!r}"
    return None


_GRPC_TYPE: Final = "application/grpc"


def check_request(request: Request) -> tuple[int, int, str] | None:
    """What grpc-go answers a request that is not gRPC: (HTTP status, code, message)."""
    if request.method != "POST":
        message = f'Received a HEADERS frame with :method "{request.method}" which should be POST'
        return 405, codes.INTERNAL, message
    ctype = request.content_type
    if ctype != _GRPC_TYPE and not (
        ctype.startswith(_GRPC_TYPE) and ctype[len(_GRPC_TYPE)] in "+;"
    ):
        return 415, codes.INVALID_ARGUMENT, f'invalid gRPC request content-type "{ctype}"'
    if request.encoding and request.encoding != "identity":
        message = f'grpc: Decompressor is not installed for grpc-encoding "{request.encoding}"'
        return 200, codes.UNIMPLEMENTED, message
    return None


def _integer_end(block: bytes, i: int, prefix_mask: int) -> tuple[int, int]:
    """The value of the HPACK integer at ``i`` (RFC 7541 §5.1) and where it ends."""
    value = block[i] & prefix_mask
    i += 1
    if value < prefix_mask:
        return value, i
    shift = 0
    n = len(block)
    while i < n:
        b = block[i]
        i += 1
        value += (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            break
    return value, i


def stateless(block: bytes) -> bool:
    """True if decoding the HPACK block leaves the dynamic table unchanged.

    That is a block of indexed fields and literals without indexing / never
    indexed (RFC 7541 §6.1, §6.2.2, §6.2.3): no incremental indexing, no table
    size update.
    """
    i = 0
    n = len(block)
    try:
        while i < n:
            b = block[i]
            if b & 0x80:
                _, i = _integer_end(block, i, 0x7F)
            elif b & 0x60:  # 01xxxxxx: incremental indexing; 001xxxxx: size update
                return False
            else:
                index, i = _integer_end(block, i, 0x0F)
                if index == 0:  # a literal name
                    length, i = _integer_end(block, i, 0x7F)
                    i += length
                length, i = _integer_end(block, i, 0x7F)
                i += length
    except IndexError:
        return False
    return i == n
