"""Go (RE2) regular expressions for the ``~=`` filter operator, run on Python's ``re``.

containerd compiles a ``~=`` value with Go's ``regexp.Compile`` and matches with
``MatchString`` (an unanchored search). A value that does not compile is not a
parse error: that selector simply never matches. To get both halves right this
module parses the pattern with Go's syntax rules (``regexp/syntax`` in Perl
mode, Go 1.19 as used by containerd 1.6.20's Debian build), rejecting exactly
what Go rejects, and then writes an equivalent Python pattern from the parse
tree. The written pattern never relies on Python's flags or on the syntax where
the two dialects differ:

* ``\\d`` ``\\s`` ``\\w`` and word boundaries are ASCII-only in Go (and ``\\s``
  has no ``\\v``): written as explicit ASCII classes and lookarounds (Python's
  ``\\B`` also never matches in an empty string, Go's does);
* ``$`` without ``(?m)`` is the end of text only: written ``\\Z``; Go's ``\\z`` is
  ``\\Z`` too, and Go's ``\\Z`` is invalid;
* flags ``(?i)`` ``(?m)`` ``(?s)`` ``(?U)`` may appear anywhere and last to the end
  of the current group, across ``|``: they are applied while writing, case
  folding by expanding literals and classes to their simple case-fold orbits
  (Go's ``unicode.SimpleFold``), greediness not at all (a yes/no search does not
  depend on it);
* ``\\pL``, ``\\p{Lu}``, ``\\PN``, ``\\p{^L}``, ``\\p{Any}``, POSIX ``[[:alpha:]]``,
  ``\\Q...\\E``, ``\\x{10FFFF}`` and octal ``\\123``: written as explicit code points;
* ``a{,2}`` and ``a{01}`` are literal text in Go;
* back-references, lookaround, comments, possessive and nested quantifiers
  (``a**``), ``\\C``, ``\\Z``, ``\\u0041``, ``(?<name>``, counts above 1000 and
  nested counts whose product exceeds 1000 are rejected, as Go rejects them.

Remaining differences, all deliberate or out of reach:

* Unicode *scripts* (``\\p{Greek}``, ``\\p{Han}``...) are valid in Go but Python
  has no script data; such a pattern is treated as one that never matches and a
  warning is logged.
* Character data comes from Python's ``unicodedata`` (Unicode 14 on 3.11) where
  Go 1.19 has Unicode 13; code points assigned in between differ.
* Go 1.19 simplifies alternations by factoring out a common leading one-letter
  literal without comparing its case-folding flag, so ``X(?i)y|X.`` does not
  match ``"xz"`` there (the second ``X`` loses its ``(?i)``). That bug needs a
  flag change in mid-pattern and is not reproduced.
* Go limits patterns by nesting height (1000) and compiled size; these limits
  are approximated on this module's own parse tree. Patterns nested too deeply
  for Python's recursive regex compiler are treated as never matching.
* Go's engine runs in linear time; Python's ``re`` backtracks, so a pathological
  pattern (e.g. ``(a*)*b``) can be slow on long values. Values here are labels
  (at most 4 KiB), digests and refs.
"""

from __future__ import annotations

import bisect
import logging
import re
import unicodedata
from collections.abc import Iterable, Sequence
from functools import lru_cache
from typing import Final

__all__ = ["GoRegexpError", "compile_go_regexp", "translate"]

log = logging.getLogger(__name__)

_MAX_RUNE: Final = 0x10FFFF
_MAX_REPEAT: Final = 1000
_MAX_HEIGHT: Final = 1000
_MAX_SIZE: Final = (128 << 20) // 40
_MAX_RUNES: Final = (128 << 20) // 4

# Parse flags (Go's FoldCase, OneLine, DotNL, NonGreedy).
_FOLD: Final = 1
_ONE_LINE: Final = 2
_DOT_NL: Final = 4
_NON_GREEDY: Final = 8
_ALL_FLAGS: Final = _FOLD | _ONE_LINE | _DOT_NL | _NON_GREEDY

Ranges = tuple[tuple[int, int], ...]


class GoRegexpError(ValueError):
    """Go's ``regexp.Compile`` would reject the pattern."""


class _Unsupported(GoRegexpError):
    """Valid in Go, but cannot be expressed here (Unicode scripts)."""


# --------------------------------------------------------------------------- ranges


def _normalize(ranges: Iterable[tuple[int, int]]) -> Ranges:
    out: list[tuple[int, int]] = []
    for lo, hi in sorted(ranges):
        if out and lo <= out[-1][1] + 1:
            if hi > out[-1][1]:
                out[-1] = (out[-1][0], hi)
        else:
            out.append((lo, hi))
    return tuple(out)


def _negate(ranges: Ranges) -> Ranges:
    out: list[tuple[int, int]] = []
    nxt = 0
    for lo, hi in ranges:
        if lo > nxt:
            out.append((nxt, lo - 1))
        nxt = hi + 1
    if nxt <= _MAX_RUNE:
        out.append((nxt, _MAX_RUNE))
    return tuple(out)


def _r(*spec: str) -> Ranges:
    """Ranges from specs like ``"az"`` (a range) or ``"_"`` (one character)."""
    return _normalize((ord(s[0]), ord(s[-1])) for s in spec)


_PERL_GROUPS: Final[dict[str, Ranges]] = {
    "d": _r("09"),
    "s": _r("\t\n", "\f\r", " "),
    "w": _r("09", "AZ", "_", "az"),
}

_POSIX_GROUPS: Final[dict[str, Ranges]] = {
    "alnum": _r("09", "AZ", "az"),
    "alpha": _r("AZ", "az"),
    "ascii": ((0, 0x7F),),
    "blank": _r("\t", " "),
    "cntrl": ((0, 0x1F), (0x7F, 0x7F)),
    "digit": _r("09"),
    "graph": _r("!~"),
    "lower": _r("az"),
    "print": _r(" ~"),
    "punct": _r("!/", ":@", "[`", "{~"),
    "space": _r("\t\r", " "),
    "upper": _r("AZ"),
    "word": _r("09", "AZ", "_", "az"),
    "xdigit": _r("09", "AF", "af"),
}

_ANY: Final[Ranges] = ((0, _MAX_RUNE),)
# Python's \B never matches in an empty string (before 3.14); Go's does.
_NOT_WORD_BOUNDARY: Final = (
    r"(?:(?<=[0-9A-Za-z_])(?=[0-9A-Za-z_])|(?<![0-9A-Za-z_])(?![0-9A-Za-z_]))"
)
_ANY_NOT_NL: Final[Ranges] = ((0, 9), (11, _MAX_RUNE))

# Go's unicode.Categories: the two-letter categories (without Cn) and their one-letter unions.
_CATEGORIES: Final = frozenset(
    "Cc Cf Co Cs Ll Lm Lo Lt Lu Mc Me Mn Nd Nl No Pc Pd Pe Pf Pi Po Ps Sc Sk Sm So Zl Zp Zs".split()  # noqa: SIM905
)


@lru_cache(maxsize=1)
def _category_table() -> dict[str, Ranges]:
    spans: dict[str, list[tuple[int, int]]] = {}
    category = unicodedata.category
    prev = ""
    start = 0
    for cp in range(_MAX_RUNE + 2):
        cat = category(chr(cp)) if cp <= _MAX_RUNE else ""
        if cat != prev:
            if prev:
                spans.setdefault(prev, []).append((start, cp - 1))
            prev, start = cat, cp
    table = {name: _normalize(spans.get(name, ())) for name in _CATEGORIES}
    for letter in "CLMNPSZ":
        table[letter] = _normalize(
            r for name in _CATEGORIES if name[0] == letter for r in table[name]
        )
    return table


def _unicode_table(name: str) -> Ranges | None:
    if name == "Any":
        return _ANY
    if name in _CATEGORIES or (len(name) == 1 and name in "CLMNPSZ"):
        return _category_table()[name]
    return None


# --------------------------------------------------------------------------- case folding


def _fold_key(ch: str) -> str:
    folded = ch.casefold()
    if len(folded) == 1:
        return folded
    lower = ch.lower()
    if len(lower) == 1:
        folded = lower.casefold()
        return folded if len(folded) == 1 else lower
    return ch


@lru_cache(maxsize=1)
def _fold_orbits() -> tuple[tuple[int, ...], dict[int, tuple[int, ...]]]:
    """Simple case-folding orbits (Go's ``unicode.SimpleFold`` cycles), by member."""
    groups: dict[str, list[int]] = {}
    for cp in range(0x1F000):
        if 0xD800 <= cp <= 0xDFFF:
            continue
        ch = chr(cp)
        key = _fold_key(ch)
        if key != ch or ch.upper() != ch or ch.lower() != ch:
            groups.setdefault(key, []).append(cp)
    orbit_of: dict[int, tuple[int, ...]] = {}
    for members in groups.values():
        if len(members) > 1:
            orbit = tuple(members)
            for cp in orbit:
                orbit_of[cp] = orbit
    return tuple(sorted(orbit_of)), orbit_of


def _fold(ranges: Ranges) -> Ranges:
    keys, orbit_of = _fold_orbits()
    extra: list[tuple[int, int]] = []
    for lo, hi in ranges:
        i = bisect.bisect_left(keys, lo)
        j = bisect.bisect_right(keys, hi)
        for cp in keys[i:j]:
            extra.extend((m, m) for m in orbit_of[cp])
    if not extra:
        return ranges
    return _normalize([*ranges, *extra])


def _literal_ranges(cp: int, flags: int) -> Ranges:
    if flags & _FOLD:
        orbit = _fold_orbits()[1].get(cp)
        if orbit:
            return _normalize((m, m) for m in orbit)
    return ((cp, cp),)


# --------------------------------------------------------------------------- parse tree


class _Node:
    __slots__ = ("height", "size")

    height: int
    size: int


class _Class(_Node):
    __slots__ = ("literal", "ranges")

    def __init__(self, ranges: Ranges, *, literal: bool = False) -> None:
        self.ranges = ranges
        self.literal = literal
        self.height = 1
        self.size = 1


class _Assert(_Node):
    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text
        self.height = 1
        self.size = 1


class _Empty(_Node):
    __slots__ = ()

    def __init__(self) -> None:
        self.height = 1
        self.size = 1


class _Concat(_Node):
    __slots__ = ("subs",)

    def __init__(self, subs: Sequence[_Node]) -> None:
        self.subs = tuple(subs)
        if all(isinstance(s, _Class) and s.literal for s in self.subs):
            self.height = 1  # Go keeps a run of literals as one node
        else:
            self.height = 1 + max(s.height for s in self.subs)
        self.size = max(1, sum(s.size for s in self.subs))


class _Alternate(_Node):
    __slots__ = ("subs",)

    def __init__(self, subs: Sequence[_Node]) -> None:
        self.subs = tuple(subs)
        self.height = 1 + max(s.height for s in self.subs)
        self.size = sum(s.size for s in self.subs) + len(self.subs) - 1


class _Capture(_Node):
    __slots__ = ("sub",)

    def __init__(self, sub: _Node) -> None:
        self.sub = sub
        self.height = 1 + sub.height
        self.size = 2 + sub.size


class _Repeat(_Node):
    """``*`` ``+`` ``?`` (``counted`` False) or ``{min,max}`` (max -1: unbounded)."""

    __slots__ = ("counted", "max", "min", "sub")

    def __init__(self, sub: _Node, lo: int, hi: int, *, counted: bool) -> None:
        self.sub = sub
        self.min = lo
        self.max = hi
        self.counted = counted
        self.height = 1 + sub.height
        if not counted:
            self.size = (2 if (lo, hi) == (0, -1) else 1) + sub.size
        elif hi == -1:
            self.size = 2 + sub.size if lo == 0 else 1 + lo * sub.size
        else:
            self.size = max(1, hi * sub.size + (hi - lo))


def _repeat_is_valid(node: _Node, n: int) -> bool:
    """Go's check that nested counted repeats stay within ``n`` copies."""
    stack = [(node, n)]
    while stack:
        cur, budget = stack.pop()
        if isinstance(cur, _Repeat) and cur.counted:
            m = cur.max
            if m == 0:
                continue
            if m < 0:
                m = cur.min
            if m > budget:
                return False
            if m > 0:
                budget //= m
        if isinstance(cur, _Concat | _Alternate):
            stack.extend((s, budget) for s in cur.subs)
        elif isinstance(cur, _Capture | _Repeat):
            stack.append((cur.sub, budget))
    return True


def _concat(items: list[_Node]) -> _Node:
    if not items:
        return _Empty()
    if len(items) == 1:
        return items[0]
    return _Concat(items)


def _alternate(items: list[_Node]) -> _Node:
    if len(items) == 1:
        return items[0]
    return _Alternate(items)


class _Frame:
    __slots__ = ("alts", "capture", "cur", "flags")

    def __init__(self, flags: int, *, capture: bool) -> None:
        self.flags = flags  # flags to restore at the closing paren
        self.capture = capture
        self.alts: list[_Node] = []
        self.cur: list[_Node] = []


def _is_ascii_alnum(c: str) -> bool:
    return c.isascii() and c.isalnum()


def _unhex(c: str) -> int:
    if "0" <= c <= "9":
        return ord(c) - 48
    if "a" <= c <= "f":
        return ord(c) - 87
    if "A" <= c <= "F":
        return ord(c) - 55
    return -1


class _Parser:
    def __init__(self, pattern: str) -> None:
        self.t = pattern
        self.flags = _ONE_LINE
        self.frames = [_Frame(_ONE_LINE, capture=False)]
        self.runes = 0

    def bad(self, what: str) -> GoRegexpError:
        return GoRegexpError(f"error parsing regexp: {what}: `{self.t}`")

    def push(self, node: _Node) -> None:
        self.check(node)
        self.frames[-1].cur.append(node)

    def check(self, node: _Node) -> None:
        if node.height > _MAX_HEIGHT:
            raise self.bad("expression nests too deeply")
        if node.size > _MAX_SIZE or self.runes > _MAX_RUNES:
            raise self.bad("expression too large")

    def literal(self, cp: int) -> None:
        self.runes += 1
        self.push(_Class(_literal_ranges(cp, self.flags), literal=True))

    def char_class(self, ranges: Ranges) -> None:
        self.runes += 2 * len(ranges)
        self.push(_Class(ranges))

    def parse(self) -> _Node:
        t = self.t
        n = len(t)
        i = 0
        last_repeat = False
        while i < n:
            repeat = False
            c = t[i]
            if c == "(":
                if i + 1 < n and t[i + 1] == "?":
                    i = self.perl_flags(i)
                else:
                    self.frames.append(_Frame(self.flags, capture=True))
                    i += 1
            elif c == "|":
                frame = self.frames[-1]
                frame.alts.append(_concat(frame.cur))
                frame.cur = []
                i += 1
            elif c == ")":
                self.right_paren()
                i += 1
            elif c == "^":
                self.push(_Assert(r"\A" if self.flags & _ONE_LINE else "(?m:^)"))
                i += 1
            elif c == "$":
                self.push(_Assert(r"\Z" if self.flags & _ONE_LINE else "(?m:$)"))
                i += 1
            elif c == ".":
                self.char_class(_ANY if self.flags & _DOT_NL else _ANY_NOT_NL)
                i += 1
            elif c == "[":
                i = self.parse_class(i)
            elif c in "*+?":
                lo, hi = {"*": (0, -1), "+": (1, -1), "?": (0, 1)}[c]
                i = self.repeat(i + 1, lo, hi, last_repeat, counted=False)
                repeat = True
            elif c == "{":
                parsed = _parse_repeat(t, i)
                if parsed is None:
                    self.literal(ord("{"))
                    i += 1
                else:
                    lo, hi, end = parsed
                    if lo < 0 or lo > _MAX_REPEAT or hi > _MAX_REPEAT or (0 <= hi < lo):
                        raise self.bad("invalid repeat count")
                    i = self.repeat(end, lo, hi, last_repeat, counted=True)
                    repeat = True
            elif c == "\\":
                i = self.backslash(i)
            else:
                self.literal(ord(c))
                i += 1
            last_repeat = repeat
        if len(self.frames) != 1:
            raise self.bad("missing closing )")
        frame = self.frames[0]
        root = _alternate([*frame.alts, _concat(frame.cur)])
        self.check(root)
        return root

    def repeat(self, i: int, lo: int, hi: int, last_repeat: bool, *, counted: bool) -> int:
        if i < len(self.t) and self.t[i] == "?":
            i += 1  # non-greedy: the same language, so the same search result
        if last_repeat:
            raise self.bad("invalid nested repetition operator")
        cur = self.frames[-1].cur
        if not cur:
            raise self.bad("missing argument to repetition operator")
        node = _Repeat(cur[-1], lo, hi, counted=counted)
        self.check(node)
        if counted and (lo >= 2 or hi >= 2) and not _repeat_is_valid(node, _MAX_REPEAT):
            raise self.bad("invalid repeat count")
        cur[-1] = node
        return i

    def right_paren(self) -> None:
        if len(self.frames) < 2:
            raise self.bad("unexpected )")
        frame = self.frames.pop()
        node = _alternate([*frame.alts, _concat(frame.cur)])
        if frame.capture:
            node = _Capture(node)
        self.flags = frame.flags
        self.push(node)

    def perl_flags(self, i: int) -> int:
        t = self.t
        n = len(t)
        if n - i > 4 and t[i + 2] == "P" and t[i + 3] == "<":
            end = t.find(">", i)
            if end < 0:
                raise self.bad("invalid named capture")
            name = t[i + 4 : end]
            if not name or not all(ch == "_" or _is_ascii_alnum(ch) for ch in name):
                raise self.bad("invalid named capture")
            self.frames.append(_Frame(self.flags, capture=True))
            return end + 1
        j = i + 2
        flags = self.flags
        sign = 1
        saw_flag = False
        while j < n:
            c = t[j]
            j += 1
            if c == "i":
                flags |= _FOLD
                saw_flag = True
            elif c == "m":
                flags &= ~_ONE_LINE
                saw_flag = True
            elif c == "s":
                flags |= _DOT_NL
                saw_flag = True
            elif c == "U":
                flags |= _NON_GREEDY
                saw_flag = True
            elif c == "-":
                if sign < 0:
                    break
                sign = -1
                flags = ~flags  # the flag letters now clear what they would set
                saw_flag = False
            elif c in ":)":
                if sign < 0:
                    if not saw_flag:
                        break
                    flags = ~flags
                if c == ":":
                    self.frames.append(_Frame(self.flags, capture=False))
                self.flags = flags & _ALL_FLAGS
                return j
            else:
                break
        raise self.bad("invalid or unsupported Perl syntax")

    def backslash(self, i: int) -> int:
        t = self.t
        n = len(t)
        if i + 1 < n:
            c = t[i + 1]
            if c == "A":
                self.push(_Assert(r"\A"))
                return i + 2
            if c == "b":
                self.push(_Assert(r"(?a:\b)"))
                return i + 2
            if c == "B":
                self.push(_Assert(_NOT_WORD_BOUNDARY))
                return i + 2
            if c == "C":
                raise self.bad("invalid escape sequence")
            if c == "Q":
                end = t.find(r"\E", i + 2)
                lit = t[i + 2 :] if end < 0 else t[i + 2 : end]
                for ch in lit:
                    self.literal(ord(ch))
                return n if end < 0 else end + 2
            if c == "z":
                self.push(_Assert(r"\Z"))
                return i + 2
            if c in "pP":
                ranges, i = self.unicode_class(i)
                self.char_class(ranges)
                return i
            if c in "dDsSwW":
                self.char_class(self.perl_class(c))
                return i + 2
        cp, i = self.escape(i)
        self.literal(cp)
        return i

    def perl_class(self, c: str) -> Ranges:
        ranges = _PERL_GROUPS[c.lower()]
        if self.flags & _FOLD:
            ranges = _fold(ranges)
        return _negate(ranges) if c.isupper() else ranges

    def unicode_class(self, i: int) -> tuple[Ranges, int]:
        """``\\pX``, ``\\p{Name}``, ``\\p{^Name}``, ``\\P...`` at ``i``."""
        t = self.t
        sign = 1 if t[i + 1] == "p" else -1
        j = i + 2
        if j >= len(t):
            raise self.bad("invalid character class range")
        if t[j] != "{":
            name, end = t[j], j + 1
        else:
            close = t.find("}", i)
            if close < 0:
                raise self.bad("invalid character class range")
            name, end = t[j + 1 : close], close + 1
        if name.startswith("^"):
            sign = -sign
            name = name[1:]
        ranges = _unicode_table(name)
        if ranges is None:
            if name and name.isascii() and name.replace("_", "").isalpha() and name[0].isupper():
                raise _Unsupported(f"regexp: Unicode class {t[i:end]} not supported here: `{t}`")
            raise self.bad("invalid character class range")
        if self.flags & _FOLD:
            ranges = _fold(ranges)
        return (_negate(ranges) if sign < 0 else ranges), end

    def escape(self, i: int) -> tuple[int, int]:
        """An ordinary one-character escape at ``i``: ``(code point, next index)``."""
        t = self.t
        n = len(t)
        if i + 1 >= n:
            raise self.bad("trailing backslash at end of expression")
        c = t[i + 1]
        j = i + 2
        if c in "1234567" and (j >= n or not "0" <= t[j] <= "7"):
            raise self.bad("invalid escape sequence")  # a back-reference
        if c in "01234567":
            value = ord(c) - 48
            for _ in range(2):
                if j >= n or not "0" <= t[j] <= "7":
                    break
                value = value * 8 + ord(t[j]) - 48
                j += 1
            return value, j
        if c == "x":
            if j >= n:
                raise self.bad("invalid escape sequence")
            c = t[j]
            j += 1
            if c == "{":
                digits = 0
                value = 0
                while True:
                    if j >= n:
                        raise self.bad("invalid escape sequence")
                    c = t[j]
                    j += 1
                    if c == "}":
                        break
                    v = _unhex(c)
                    if v < 0:
                        raise self.bad("invalid escape sequence")
                    value = value * 16 + v
                    if value > _MAX_RUNE:
                        raise self.bad("invalid escape sequence")
                    digits += 1
                if digits == 0:
                    raise self.bad("invalid escape sequence")
                return value, j
            x = _unhex(c)
            y = _unhex(t[j]) if j < n else -1
            if x < 0 or y < 0:
                raise self.bad("invalid escape sequence")
            return x * 16 + y, j + 1
        simple = {"a": 7, "f": 12, "n": 10, "r": 13, "t": 9, "v": 11}.get(c)
        if simple is not None:
            return simple, j
        if c.isascii() and not c.isalnum():
            return ord(c), j
        raise self.bad("invalid escape sequence")

    def parse_class(self, i: int) -> int:
        """A bracketed class starting at ``t[i] == "["``; returns the index after it."""
        t = self.t
        n = len(t)
        fold = bool(self.flags & _FOLD)
        j = i + 1
        negated = False
        if j < n and t[j] == "^":
            negated = True
            j += 1
        parts: list[tuple[int, int]] = []
        first = True
        while j >= n or t[j] != "]" or first:
            first = False
            if j + 2 < n and t[j] == "[" and t[j + 1] == ":":
                close = t.find(":]", j + 2)
                if close >= 0:
                    name = t[j + 2 : close]
                    group_neg = name.startswith("^")
                    group = _POSIX_GROUPS.get(name[1:] if group_neg else name)
                    if group is None:
                        raise self.bad("invalid character class range")
                    if fold:
                        group = _fold(group)
                    parts.extend(_negate(group) if group_neg else group)
                    j = close + 2
                    continue
            if j + 1 < n and t[j] == "\\":
                if t[j + 1] in "pP":
                    ranges, j = self.unicode_class(j)
                    parts.extend(ranges)
                    continue
                if t[j + 1] in "dDsSwW":
                    parts.extend(self.perl_class(t[j + 1]))
                    j += 2
                    continue
            lo, j = self.class_char(j)
            hi = lo
            if j + 1 < n and t[j] == "-" and t[j + 1] != "]":
                hi, j = self.class_char(j + 1)
                if hi < lo:
                    raise self.bad("invalid character class range")
            if fold:
                parts.extend(_fold(((lo, hi),)))
            else:
                parts.append((lo, hi))
        ranges = _normalize(parts)
        self.char_class(_negate(ranges) if negated else ranges)
        return j + 1

    def class_char(self, j: int) -> tuple[int, int]:
        t = self.t
        if j >= len(t):
            raise self.bad("missing closing ]")
        if t[j] == "\\":
            return self.escape(j)
        return ord(t[j]), j + 1


def _parse_int(t: str, i: int) -> tuple[int, int] | None:
    """A decimal at ``i`` without leading zeros: ``(value or -1 if too big, next index)``."""
    n = len(t)
    if i >= n or not "0" <= t[i] <= "9":
        return None
    if i + 1 < n and t[i] == "0" and "0" <= t[i + 1] <= "9":
        return None
    j = i
    while j < n and "0" <= t[j] <= "9":
        j += 1
    value = 0
    for d in t[i:j]:
        if value >= 100_000_000:
            value = -1
            break
        value = value * 10 + ord(d) - 48
    return value, j


def _parse_repeat(t: str, i: int) -> tuple[int, int, int] | None:
    """``{n}``, ``{n,}`` or ``{n,m}`` at ``i``: ``(min, max, next index)``, else None."""
    n = len(t)
    got = _parse_int(t, i + 1)
    if got is None:
        return None
    lo, j = got
    if j >= n:
        return None
    if t[j] != ",":
        hi = lo
    else:
        j += 1
        if j >= n:
            return None
        if t[j] == "}":
            hi = -1
        else:
            got = _parse_int(t, j)
            if got is None:
                return None
            hi, j = got
            if hi < 0:
                lo = -1
    if j >= n or t[j] != "}":
        return None
    return lo, hi, j + 1


# --------------------------------------------------------------------------- writing


def _esc(cp: int) -> str:
    if cp < 0x80 and (chr(cp).isalnum() or cp == 0x5F):
        return chr(cp)
    if cp < 0x100:
        return f"\\x{cp:02x}"
    if cp < 0x10000:
        return f"\\u{cp:04x}"
    return f"\\U{cp:08x}"


def _class_text(ranges: Ranges) -> str:
    if not ranges:
        return "(?!)"
    if ranges == _ANY:
        return "(?s:.)"
    if ranges == _ANY_NOT_NL:
        return "."
    if len(ranges) == 1 and ranges[0][0] == ranges[0][1]:
        return _esc(ranges[0][0])
    complement = _negate(ranges)
    body, neg = (complement, "^") if len(complement) < len(ranges) else (ranges, "")
    parts: list[str] = []
    for lo, hi in body:
        parts.append(_esc(lo))
        if hi > lo:
            parts.append(("" if hi == lo + 1 else "-") + _esc(hi))
    return f"[{neg}{''.join(parts)}]"


def _write(node: _Node) -> tuple[str, bool]:
    """Python text for ``node`` and whether it can take a quantifier as it is."""
    while isinstance(node, _Capture):  # captures are not needed for a yes/no search
        node = node.sub
    if isinstance(node, _Class):
        text = _class_text(node.ranges)
        return text, text != "(?!)"
    if isinstance(node, _Assert):
        return node.text, False
    if isinstance(node, _Empty):
        return "", False
    if isinstance(node, _Concat):
        return "".join(_write(s)[0] for s in node.subs), False
    if isinstance(node, _Alternate):
        return "(?:" + "|".join(_write(s)[0] for s in node.subs) + ")", True
    assert isinstance(node, _Repeat)
    sub = node.sub
    while isinstance(sub, _Capture):
        sub = sub.sub
    if isinstance(sub, _Assert | _Empty):
        # A zero-width operand repeated is itself (at least once) or nothing.
        return ("", False) if node.min == 0 else _write(sub)
    text, atom = _write(sub)
    if not atom:
        text = f"(?:{text})"
    if not node.counted:
        suffix = {(0, -1): "*", (1, -1): "+", (0, 1): "?"}[(node.min, node.max)]
    elif node.max == -1:
        suffix = f"{{{node.min},}}"
    elif node.max == node.min:
        suffix = f"{{{node.min}}}"
    else:
        suffix = f"{{{node.min},{node.max}}}"
    return text + suffix, False


def translate(pattern: str) -> str:
    """The Python ``re`` pattern equivalent to Go pattern ``pattern``.

    Raises :class:`GoRegexpError` where Go's ``regexp.Compile`` fails (and for
    the few valid Go constructs that cannot be expressed, see the module doc).
    """
    if any(0xD800 <= ord(ch) <= 0xDFFF for ch in pattern):
        raise GoRegexpError(f"error parsing regexp: invalid UTF-8: `{pattern}`")
    return _write(_Parser(pattern).parse())[0]


@lru_cache(maxsize=512)
def compile_go_regexp(pattern: str) -> re.Pattern[str] | None:
    """Compile a Go pattern for ``search``; None when it can never match (bad pattern)."""
    try:
        return re.compile(translate(pattern))
    except _Unsupported as err:
        log.warning("filters: %s; the selector matches nothing", err)
    except GoRegexpError:
        log.error("error compiling regexp %r", pattern)
    except (re.error, RecursionError, OverflowError, MemoryError) as err:
        log.warning("filters: regexp %r cannot be run here (%s); it matches nothing", pattern, err)
    return None
