"""Scanner and parser of containerd's filter language (containerd 1.6 ``filters``).

The scanner works on the UTF-8 bytes of the filter string, one code point at a
time, exactly as containerd's does, so that error positions are byte offsets and
error texts show the same bytes containerd shows. The quirks that follow from
that are kept on purpose:

* the scanner remembers only the *first* error it ever met, even one met while
  peeking ahead, and every later illegal token reports that one;
* ``"..."``, ``/.../`` and ``|...|`` are all quote tokens wherever they appear;
  only ``"`` is accepted for a field, the other two only after ``~=``;
* a value is a run of "graphic" code points up to ``,`` or white space, and the
  scanner decides it is in a value only right after an operator;
* a literal U+FFFD, a NUL or an invalid UTF-8 byte is an illegal token.

Which code points may continue a bare value (Go's letters, marks, numbers,
punctuation, symbols and spaces) is taken from Python's ``unicodedata``
(Unicode 14 on Python 3.11; Go 1.19 has Unicode 13), so only code points
assigned after Unicode 13 can scan differently.

Strings that are not valid UTF-8 enter and leave as Python strings through the
``surrogateescape`` error handler (a raw byte ``0xNN`` is ``"\\udcNN"``), which is
how Python itself carries undecodable bytes (e.g. in ``sys.argv``).
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from typing import Final

__all__ = [
    "OP_EQUAL",
    "OP_MATCHES",
    "OP_NOT_EQUAL",
    "OP_PRESENT",
    "ParseError",
    "Selector",
    "encode",
    "go_decode",
    "parse_selectors",
    "quote",
]

OP_PRESENT: Final = 0
OP_EQUAL: Final = 1
OP_NOT_EQUAL: Final = 2
OP_MATCHES: Final = 3

# Token kinds; a token that is none of these is the (non-negative) code point itself.
_EOF: Final = -1
_QUOTED: Final = -2
_VALUE: Final = -3
_FIELD: Final = -4
_SEPARATOR: Final = -5
_OPERATOR: Final = -6
_ILLEGAL: Final = -7

_RUNE_ERROR: Final = 0xFFFD

# Go's unicode.IsSpace: the Latin-1 spaces plus the other White_Space code points.
_SPACES: Final = frozenset(
    (0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x20, 0x85, 0xA0, 0x1680, 0x2028, 0x2029, 0x202F, 0x205F, 0x3000)
) | frozenset(range(0x2000, 0x200B))
_QUOTES: Final = frozenset(b'/|"')
_SEPARATORS: Final = frozenset(b",.")
_OPERATOR_RUNES: Final = frozenset(b"=!~")
_FIELD_RUNES: Final = frozenset(b"_0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
_SIMPLE_ESCAPES: Final = frozenset(b"abfnrtv\\")
_UNQUOTE_SIMPLE: Final = {
    ord("a"): 0x07,
    ord("b"): 0x08,
    ord("f"): 0x0C,
    ord("n"): 0x0A,
    ord("r"): 0x0D,
    ord("t"): 0x09,
    ord("v"): 0x0B,
    ord("\\"): 0x5C,
}


@dataclass(frozen=True, slots=True)
class Selector:
    """One ``<fieldpath>[<op><value>]`` term of a filter."""

    fieldpath: tuple[str, ...]
    op: int
    value: str = ""


class ParseError(Exception):
    """A filter that does not parse; ``text`` is containerd's message for it."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text


def decode_rune(data: bytes, i: int) -> tuple[int, int]:
    """Go's ``utf8.DecodeRune``: ``(code point, width)``; ``(U+FFFD, 1)`` if invalid.

    At the end of ``data`` it returns ``(U+FFFD, 0)``.
    """
    if i >= len(data):
        return _RUNE_ERROR, 0
    b = data[i]
    if b < 0x80:
        return b, 1
    if 0xC2 <= b <= 0xDF:
        width = 2
    elif 0xE0 <= b <= 0xEF:
        width = 3
    elif 0xF0 <= b <= 0xF4:
        width = 4
    else:
        return _RUNE_ERROR, 1
    chunk = data[i : i + width]
    if len(chunk) < width:
        return _RUNE_ERROR, 1
    try:
        # The strict decoder rejects overlong forms, surrogates and > U+10FFFF, as Go does.
        return ord(chunk.decode("utf-8")), width
    except UnicodeDecodeError:
        return _RUNE_ERROR, 1


def go_decode(data: bytes) -> str:
    """Decode as Go's UTF-8 handling would show it: each invalid byte becomes U+FFFD.

    This is what a gRPC client sees of a Go error text holding invalid UTF-8.
    """
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    out: list[str] = []
    i = 0
    while i < len(data):
        r, w = decode_rune(data, i)
        out.append(chr(r))
        i += w
    return "".join(out)


def encode(text: str) -> bytes:
    """The bytes Go would hold for ``text`` (see the module docstring)."""
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        # Lone surrogates that are not escaped bytes: keep them as (invalid) UTF-8
        # so the scanner rejects them like any other invalid sequence.
        return text.encode("utf-8", "surrogatepass")


def _decode(data: bytes) -> str:
    return data.decode("utf-8", "surrogateescape")


def _is_space(r: int) -> bool:
    return r in _SPACES


@lru_cache(maxsize=4096)
def _is_graphic_nonascii(r: int) -> bool:
    # Go: IsLetter || IsDigit || IsNumber || IsGraphic || IsPunct, i.e. the
    # categories L, M, N, P, S and Zs.
    cat = unicodedata.category(chr(r))
    return cat[0] in "LMNPS" or cat == "Zs"


def _is_value_rune(r: int) -> bool:
    if r < 0x80:
        return 0x21 <= r <= 0x7E and r != 0x2C
    if r in _SPACES:
        return False
    return _is_graphic_nonascii(r)


def _digit_val(r: int) -> int:
    if 0x30 <= r <= 0x39:
        return r - 0x30
    if 0x61 <= r <= 0x66:
        return r - 0x61 + 10
    if 0x41 <= r <= 0x46:
        return r - 0x41 + 10
    return 16


class _Scanner:
    __slots__ = ("data", "err", "pos", "ppos", "value")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0
        self.ppos = 0  # end of the current code point
        self.value = False
        self.err = ""

    def error(self, msg: str) -> None:
        if not self.err:
            self.err = msg

    def next(self) -> int:
        data = self.data
        if self.pos >= len(data):
            return _EOF
        self.pos = self.ppos
        r, w = decode_rune(data, self.ppos)
        self.ppos += w
        if r == _RUNE_ERROR:
            if w > 0:
                self.error("rune error")
                return _ILLEGAL
            return _EOF
        if r == 0:
            self.error("unexpected null")
            return _ILLEGAL
        return r

    def peek(self) -> int:
        pos, ppos = self.pos, self.ppos
        ch = self.next()
        self.pos, self.ppos = pos, ppos
        return ch

    def scan(self) -> tuple[int, int, bytes]:
        ch = self.next()
        pos = self.pos
        while True:
            if ch in (_EOF, _ILLEGAL):
                break
            if ch in _QUOTES:
                ok = self._scan_quoted(ch)
                return pos, (_QUOTED if ok else _ILLEGAL), self.data[pos : self.ppos]
            if ch in _SEPARATORS:
                self.value = False
                return pos, _SEPARATOR, self.data[pos : self.ppos]
            if ch in _OPERATOR_RUNES:
                while self.peek() in _OPERATOR_RUNES:
                    self.next()
                self.value = True
                return pos, _OPERATOR, self.data[pos : self.ppos]
            if _is_space(ch):
                ch = self.next()
                pos = self.pos
                continue
            if self.value:
                while _is_value_rune(self.peek()):
                    self.next()
                self.value = False
                return pos, _VALUE, self.data[pos : self.ppos]
            if ch in _FIELD_RUNES:
                while self.peek() in _FIELD_RUNES:
                    self.next()
                return pos, _FIELD, self.data[pos : self.ppos]
            break
        return self.pos, ch, b""

    def _scan_quoted(self, quote: int) -> bool:
        illegal = False
        ch = self.next()
        while ch != quote:
            if ch == 0x0A or ch < 0:
                self.error("quoted literal not terminated")
                return False
            if ch == 0x5C:
                ch, legal = self._scan_escape(quote)
                if not legal:
                    illegal = True
            else:
                ch = self.next()
        return not illegal

    def _scan_escape(self, quote: int) -> tuple[int, bool]:
        ch = self.next()
        if ch in _SIMPLE_ESCAPES or ch == quote:
            return self.next(), True
        if 0x30 <= ch <= 0x37:
            return self._scan_digits(ch, 8, 3)
        if ch == 0x78:  # x
            return self._scan_digits(self.next(), 16, 2)
        if ch == 0x75:  # u
            return self._scan_digits(self.next(), 16, 4)
        if ch == 0x55:  # U
            return self._scan_digits(self.next(), 16, 8)
        self.error("illegal escape sequence")
        return ch, False

    def _scan_digits(self, ch: int, base: int, n: int) -> tuple[int, bool]:
        while n > 0 and _digit_val(ch) < base:
            ch = self.next()
            n -= 1
        if n > 0:
            self.error("illegal numeric escape sequence")
            return ch, False
        return ch, True


def _encode_rune(r: int) -> bytes:
    if 0xD800 <= r <= 0xDFFF or r > 0x10FFFF:
        r = _RUNE_ERROR
    return chr(r).encode("utf-8")


def _unquote(s: bytes) -> bytes | None:
    """Go's ``strconv.Unquote``, extended to ``/`` and ``|`` delimiters; None on a syntax error."""
    if len(s) < 2:
        return None
    quote = s[0]
    if quote != s[-1] or quote not in b"\"'|/":
        return None
    body = s[1:-1]
    if b"\n" in body:
        return None
    if b"\\" not in body and quote not in body and quote != 0x27:
        return body
    out = bytearray()
    i, n = 0, len(body)
    while i < n:
        c = body[i]
        if c == quote:
            return None
        if c >= 0x80:
            r, w = decode_rune(body, i)
            out += _encode_rune(r)
            i += w
        elif c != 0x5C:
            out.append(c)
            i += 1
        else:
            if i + 1 >= n:
                return None
            e = body[i + 1]
            i += 2
            if e in _UNQUOTE_SIMPLE:
                out.append(_UNQUOTE_SIMPLE[e])
            elif e in b"xuU":
                width = {0x78: 2, 0x75: 4, 0x55: 8}[e]
                if n - i < width:
                    return None
                v = 0
                for d in body[i : i + width]:
                    dv = _digit_val(d)
                    if dv >= 16:
                        return None
                    v = v << 4 | dv
                i += width
                if e == 0x78:
                    out.append(v)
                elif v > 0x10FFFF:
                    return None
                else:
                    out += _encode_rune(v)
            elif 0x30 <= e <= 0x37:
                if n - i < 2:
                    return None
                v = e - 0x30
                for d in body[i : i + 2]:
                    if not 0x30 <= d <= 0x37:
                        return None
                    v = v << 3 | (d - 0x30)
                i += 2
                if v > 255:
                    return None
                out.append(v)
            elif e in b"'\"|/":
                if e != quote:
                    return None
                out.append(e)
            else:
                return None
        if quote == 0x27 and i < n:
            return None
    return bytes(out)


class _Parser:
    __slots__ = ("data", "scanner")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.scanner = _Scanner(data)

    def fail(self, pos: int, msg: str | bytes) -> ParseError:
        data = self.data
        raw = msg.encode("utf-8") if isinstance(msg, str) else msg
        if pos < len(data):
            before, at, after = data[:pos], data[pos : pos + 1], data[pos + 1 :]
            where = b"[" + before + b" >|" + at + b"|< " + after + b"]"
        else:
            where = b"[" + data + b"]"
        return ParseError(go_decode(b"filters: parse error: " + where + b": " + raw))

    def selectors(self) -> list[Selector]:
        out = [self.selector()]
        sc = self.scanner
        while True:
            tok = sc.peek()
            if tok == 0x2C:  # ,
                pos, kind, _ = sc.scan()
                if kind != _SEPARATOR:  # pragma: no cover - ',' always scans as one
                    raise self.fail(pos, "expected a separator")
                out.append(self.selector())
            elif tok == _EOF:
                return out
            else:
                shown = _encode_rune(tok if tok >= 0 else _RUNE_ERROR)
                raise self.fail(sc.ppos, b"unexpected input: " + shown)

    def selector(self) -> Selector:
        fieldpath = self.fieldpath()
        if self.scanner.peek() in (0x2C, _EOF):
            return Selector(fieldpath, OP_PRESENT)
        op = self.operator()
        value = self.value(allow_alt_quotes=op == OP_MATCHES)
        return Selector(fieldpath, op, value)

    def fieldpath(self) -> tuple[str, ...]:
        fields = [self.field()]
        sc = self.scanner
        while sc.peek() == 0x2E:  # .
            pos, kind, _ = sc.scan()
            if kind != _SEPARATOR:  # pragma: no cover - '.' always scans as one
                raise self.fail(pos, "expected a field separator (`.`)")
            fields.append(self.field())
        return tuple(fields)

    def field(self) -> str:
        pos, kind, text = self.scanner.scan()
        if kind == _FIELD:
            return _decode(text)
        if kind == _QUOTED:
            return self.unquote(pos, text, allow_alts=False)
        if kind == _ILLEGAL:
            raise self.fail(pos, self.scanner.err)
        raise self.fail(pos, "expected field or quoted")

    def operator(self) -> int:
        pos, kind, text = self.scanner.scan()
        if kind == _OPERATOR:
            if text == b"==":
                return OP_EQUAL
            if text == b"!=":
                return OP_NOT_EQUAL
            if text == b"~=":
                return OP_MATCHES
            raise self.fail(pos, b'unsupported operator "' + text + b'"')
        if kind == _ILLEGAL:
            raise self.fail(pos, self.scanner.err)
        raise self.fail(pos, 'expected an operator ("=="|"!="|"~=")')

    def value(self, *, allow_alt_quotes: bool) -> str:
        pos, kind, text = self.scanner.scan()
        if kind in (_VALUE, _FIELD):
            return _decode(text)
        if kind == _QUOTED:
            return self.unquote(pos, text, allow_alts=allow_alt_quotes)
        if kind == _ILLEGAL:
            raise self.fail(pos, self.scanner.err)
        raise self.fail(pos, "expected value or quoted")

    def unquote(self, pos: int, text: bytes, *, allow_alts: bool) -> str:
        if not allow_alts and text[0] not in b"'\"":
            raise self.fail(pos, "invalid quote encountered")
        raw = _unquote(text)
        if raw is None:
            raise self.fail(pos, "unquoting failed: quote syntax error")
        return _decode(raw)


def parse_selectors(filter_str: str) -> list[Selector]:
    """Parse one non-empty filter string into its selectors (all must match).

    Raises :class:`ParseError` with containerd's message text.
    """
    return _Parser(encode(filter_str)).selectors()


def quote(s: str) -> str:
    """Quote ``s`` as a ``"..."`` literal that the filter parser reads back as ``s``.

    Use it for field path parts (label keys) and values alike, e.g.
    ``f"labels.{quote(key)}=={quote(value)}"``. Raw bytes carried as
    ``surrogateescape`` code points are written as ``\\xNN``; any other lone
    surrogate cannot be expressed in a filter and raises :class:`ValueError`.
    """
    out = ['"']
    for ch in s:
        o = ord(ch)
        if ch == '"' or ch == "\\":
            out.append("\\" + ch)
        elif o < 0x20 or o == 0x7F:
            out.append(_QUOTE_CONTROL.get(ch, f"\\x{o:02x}"))
        elif o == _RUNE_ERROR:
            out.append("\\ufffd")
        elif 0xDC80 <= o <= 0xDCFF:
            out.append(f"\\x{o - 0xDC00:02x}")
        elif 0xD800 <= o <= 0xDFFF:
            raise ValueError(f"cannot quote lone surrogate U+{o:04X} in a filter")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


_QUOTE_CONTROL: Final = {
    "\a": "\\a",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\v": "\\v",
}
