"""Go regular expressions for the ``~=`` filter operator, run by RE2 in linear time.

containerd 1.6.20 compiles a ``~=`` value with Go's ``regexp.Compile`` and matches
with ``MatchString`` (an unanchored search). A value that does not compile is not a
parse error: that selector never matches, and containerd logs ``error compiling
regexp``. Go's ``regexp`` is a port of RE2 and runs in time linear in the pattern and
the text; so does this module, which hands the pattern to RE2 itself (the
``google-re2`` bindings). A match releases the GIL while RE2 runs.

Go 1.19 (Debian's build of containerd 1.6.20) and RE2 read the same syntax with the
same meaning, except for what Go rejects and RE2 takes, checked here first:

* ``\\C`` (any byte);
* ``(?<name>re)`` (Go has it from 1.22 on), and capture names beyond ASCII letters,
  digits and ``_``;
* script names from Unicode 14 on (``\\p{Vithkuqi}``...): Go 1.19 has Unicode 13;
* a pattern that is not valid UTF-8 (a raw byte, written in the filter as ``\\xNN``):
  RE2 takes the UTF-8 encoding of a surrogate, which such bytes can spell.

Remaining differences:

* Character data: Go 1.19 has Unicode 13, RE2 its own newer tables, so classes and
  case folding differ for code points assigned since.
* Go 1.19 simplifies alternations by factoring out a common leading one-letter
  literal without comparing its case-folding flag, so ``X(?i)y|X.`` does not match
  ``"xz"`` there; RE2 keeps the documented meaning of ``(?i)`` and matches.
* Size limits: Go rejects patterns nesting deeper than 1000 or compiling to more
  than about 3.3 million instructions. RE2 gets a memory budget of
  :data:`MAX_MEMORY` per pattern (programs up to roughly 200 000 instructions:
  ``\\pL{100}`` fits, ``\\pL{300}`` does not); a larger pattern is treated like
  one that does not compile. The budget bounds what one pattern can hold (program
  and DFA cache), and with it the time of one match: linear in the text, a few tens
  of milliseconds for a 4 KiB label in the worst case measured.
"""

from __future__ import annotations

import logging
import re
from typing import Final, Protocol, cast, final

from re2 import Options as _Options
from re2 import _re2

from contentd.filters.syntax import encode

__all__ = ["MAX_MEMORY", "GoRegexp", "GoRegexpError", "compile_go", "compile_go_regexp"]

log = logging.getLogger(__name__)

MAX_MEMORY: Final = 4 << 20
"""RE2's memory budget for one pattern (its program and its DFA cache), in bytes."""


class GoRegexpError(ValueError):
    """The pattern does not compile: Go's ``regexp.Compile`` rejects it, or it is
    larger than :data:`MAX_MEMORY` allows."""


class _Program(Protocol):
    """The part of ``re2._re2.RE2`` used here."""

    def ok(self) -> bool: ...

    def error(self) -> bytes: ...

    def Match(
        self, anchor: object, text: bytes, pos: int, endpos: int, /
    ) -> list[tuple[int, int]]: ...


def _options() -> object:
    options = _Options()
    options.max_mem = MAX_MEMORY
    options.never_capture = True  # a yes/no search needs no submatches
    options.log_errors = False  # RE2 would print to stderr; errors are raised here
    return cast(object, options)


_OPTIONS: Final = _options()
_UNANCHORED: Final = _re2.RE2.Anchor.UNANCHORED


@final
class GoRegexp:
    """A compiled pattern; :meth:`search` is Go's ``MatchString``."""

    __slots__ = ("_match", "pattern")

    def __init__(self, pattern: str, program: _Program) -> None:
        self.pattern = pattern
        self._match = program.Match

    def search(self, text: str) -> bool:
        """True when the pattern matches anywhere in ``text``."""
        data = encode(text)
        return self._match(_UNANCHORED, data, 0, len(data))[0][1] >= 0

    def __repr__(self) -> str:
        return f"GoRegexp({self.pattern!r})"


def compile_go(pattern: str) -> GoRegexp:
    """Compile ``pattern`` with Go's syntax; raises :class:`GoRegexpError` if it does not."""
    reason = _go_rejects(pattern)
    if reason is not None:
        raise GoRegexpError(f"error parsing regexp: {reason}")
    program = cast(_Program, _re2.RE2(encode(pattern), _OPTIONS))
    if not program.ok():
        raise GoRegexpError(program.error().decode("utf-8", "replace"))
    return GoRegexp(pattern, program)


def compile_go_regexp(pattern: str) -> GoRegexp | None:
    """:func:`compile_go`, or None (logged as containerd logs it) when it does not compile."""
    try:
        return compile_go(pattern)
    except GoRegexpError as err:
        log.error("error compiling regexp %r: %s", pattern, err)
        return None


# --------------------------------------------------------------------------- Go 1.19 syntax

_SURROGATE: Final = re.compile("[\ud800-\udfff]")
_CAPTURE_NAME: Final = re.compile("[A-Za-z0-9_]+")
# Scripts added in Unicode 14 and later, unknown to Go 1.19 (Unicode 13).
_NEWER_SCRIPTS: Final = frozenset(
    {
        "Cypro_Minoan",
        "Old_Uyghur",
        "Tangsa",
        "Toto",
        "Vithkuqi",
        "Kawi",
        "Nag_Mundari",
        "Garay",
        "Gurung_Khema",
        "Kirat_Rai",
        "Ol_Onal",
        "Sunuwar",
        "Todhri",
        "Tulu_Tigalari",
    }
)


class _Rejected(Exception):
    pass


def _go_rejects(pattern: str) -> str | None:
    """Why Go 1.19 rejects a pattern that RE2 accepts, or None."""
    if _SURROGATE.search(pattern):
        return "invalid UTF-8"
    try:
        _Scan(pattern).run()
    except _Rejected as err:
        return str(err)
    return None


@final
class _Scan:
    """One forward pass over a pattern, tracking only what decides the cases above:
    escapes, ``\\Q...\\E``, character classes and ``(?`` groups. A pattern it
    misreads is one that RE2 rejects as well.

    Linear in the pattern: every look-ahead for a closing token goes through
    :meth:`_find`, which remembers the last answer per token (the pass only moves
    forward, so an answer stays good until the pass has gone beyond it).
    """

    __slots__ = ("_found", "p")

    def __init__(self, pattern: str) -> None:
        self.p = pattern
        self._found: dict[str, int] = {}

    def _find(self, token: str, start: int) -> int:
        """The index of ``token`` at or after ``start``, or -1."""
        at = self._found.get(token)
        if at is None or 0 <= at < start:
            at = self.p.find(token, start)
            self._found[token] = at
        return at

    def run(self) -> None:
        p, i, n = self.p, 0, len(self.p)
        while i < n:
            c = p[i]
            if c == "\\":
                i = self._escape(i)
            elif c == "[":
                i = self._class(i)
            elif c == "(" and p.startswith("(?", i):
                i = self._group(i)
            else:
                i += 1

    def _escape(self, i: int) -> int:
        """Check the escape at ``p[i] == "\\\\"``; return the index after it."""
        p = self.p
        c = p[i + 1 : i + 2]
        if c == "Q":
            end = self._find("\\E", i + 2)
            return len(p) if end < 0 else end + 2
        if c == "C":
            raise _Rejected("invalid escape sequence: `\\C`")
        if c in ("p", "P") and p.startswith("{", i + 2):
            end = self._find("}", i + 3)
            if end < 0:
                return len(p)
            name = p[i + 3 : end].removeprefix("^")
            if name in _NEWER_SCRIPTS:
                raise _Rejected(f"invalid character class range: `{p[i : end + 1]}`")
            return end + 1
        return i + 2

    def _class(self, i: int) -> int:
        """Check the class opening at ``p[i] == "["``; return the index after it."""
        p, n = self.p, len(self.p)
        j = i + 1
        if p.startswith("^", j):
            j += 1
        if p.startswith("]", j):
            j += 1  # a leading ] is literal
        while j < n and p[j] != "]":
            if p[j] == "\\":
                j = self._escape(j)
            elif p.startswith("[:", j) and (end := self._find(":]", j + 2)) >= 0:
                j = end + 2
            else:
                j += 1
        return j + 1

    def _group(self, i: int) -> int:
        """Check the ``(?`` group at ``p[i]``; return the index to go on from."""
        p = self.p
        if p.startswith("(?<", i):
            raise _Rejected("invalid or unsupported Perl syntax: `(?<`")
        if p.startswith("(?P<", i):
            end = self._find(">", i + 4)
            if end < 0:
                return len(p)
            if not _CAPTURE_NAME.fullmatch(p, i + 4, end):
                raise _Rejected(f"invalid named capture: `{p[i : end + 1]}`")
            return end + 1
        return i + 2
