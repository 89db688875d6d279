"""Go's ``%q`` for strings (``strconv.Quote``), for error texts that must read like containerd's."""

from __future__ import annotations

from typing import Final

__all__ = ["go_quote"]

_ESCAPES: Final = {
    "\a": "\\a",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\v": "\\v",
    '"': '\\"',
    "\\": "\\\\",
}


def go_quote(s: str) -> str:
    """``s`` as a double-quoted Go literal: printable characters as they are,
    the rest escaped (``\\n``, ``\\x00``, ``\\u00ad``, ``\\U0001f000``)."""
    if s.isprintable() and '"' not in s and "\\" not in s:
        return f'"{s}"'
    out = ['"']
    for ch in s:
        esc = _ESCAPES.get(ch)
        if esc is not None:
            out.append(esc)
        elif ch.isprintable():
            out.append(ch)
        else:
            o = ord(ch)
            if 0xDC80 <= o <= 0xDCFF:  # a raw byte carried by surrogateescape
                out.append(f"\\x{o - 0xDC00:02x}")
            elif o < 0x20 or o == 0x7F:
                out.append(f"\\x{o:02x}")
            elif o < 0x10000:
                out.append(f"\\u{o:04x}")
            else:
                out.append(f"\\U{o:08x}")
    out.append('"')
    return "".join(out)
