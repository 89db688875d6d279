"""Filters: what a filter string means, how it is parsed, and its bounds.

A filter string is a comma-separated list of selectors that must *all* match::

    <fieldpath>[<op><value>]        e.g.  labels."containerd.io/gc.root"
                                          digest==sha256:0123...,labels.app~=^web

A list of filter strings (the ``filters`` of List RPCs) matches when *any* of
them does. ``""`` and ``[]`` match everything. Operators are ``==`` (present and
equal), ``!=`` (differs; an absent field counts as ``""``) and ``~=`` (Go regexp
search, run by RE2 in linear time, see :mod:`contentd.filters.regexp`); a
selector without an operator tests presence. A bad regular expression is not a
parse error: its selector never matches and the error is logged, as in containerd.

Filters come from whoever can reach the socket, so one list is bounded (containerd
has no bounds): at most :data:`MAX_LENGTH` characters, :data:`MAX_SELECTORS`
selectors and :data:`MAX_REGEXPS` regular expressions. Parsing is linear in the
text and matching one object is linear in its fields, so a List costs at most a
constant times the objects it walks. A list beyond a bound is an
:class:`~contentd.content.errors.InvalidArgument`. The constant is small for any
filter a person writes; the worst found within the bounds (eight alternations of
``x.{999}z`` against 4000-character labels, which defeat RE2's DFA) costs about
0.8 s of RE2 time per object on a loaded 2-core machine, during which RE2 holds no
GIL and other calls are served (a concurrent Version: median 27 ms, max 165 ms).

Objects are seen through an :class:`Adaptor` that answers ``(value, present)``
for a field path; each kind of object has its own (content's are in
:mod:`contentd.content.filters`, leases', images' and events' beside them in
:mod:`contentd.metadata`); :func:`adapt_fn` makes one from a function.

Parse errors raise :class:`~contentd.content.errors.InvalidArgument` whose
message is containerd's, e.g.
``filters: parse error: [labels.ns >|/|< key==v]: quoted literal not terminated: invalid argument``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Final, Protocol, final

from contentd.content.errors import InvalidArgument
from contentd.filters.regexp import compile_go_regexp
from contentd.filters.syntax import (
    OP_EQUAL,
    OP_MATCHES,
    OP_NOT_EQUAL,
    OP_PRESENT,
    ParseError,
    Selector,
    parse_selectors,
)

__all__ = [
    "ALWAYS",
    "MAX_LENGTH",
    "MAX_REGEXPS",
    "MAX_SELECTORS",
    "Adaptor",
    "Filter",
    "adapt_fn",
    "parse",
    "parse_all",
]


MAX_LENGTH: Final = 16 * 1024
"""Characters in one list of filter strings, all strings together."""
MAX_SELECTORS: Final = 256
"""Selectors in one list of filter strings."""
MAX_REGEXPS: Final = 8
"""``~=`` selectors in one list of filter strings (each holds up to 4 MiB in RE2)."""


class Adaptor(Protocol):
    """Maps a field path to ``(value, present)``; an absent field gives ``("", False)``."""

    def field(self, path: Sequence[str], /) -> tuple[str, bool]: ...


class Filter(Protocol):
    """A parsed filter."""

    def match(self, adaptor: Adaptor, /) -> bool: ...


# --------------------------------------------------------------------------- filters


@final
class _Always:
    __slots__ = ()

    def match(self, adaptor: Adaptor, /) -> bool:
        return True

    def __repr__(self) -> str:
        return "ALWAYS"


ALWAYS: Final[Filter] = _Always()
"""Matches everything (what ``""`` and ``[]`` parse to)."""


@final
class _AnyOf:
    __slots__ = ("filters",)

    def __init__(self, filters: Sequence[Filter]) -> None:
        self.filters = tuple(filters)

    def match(self, adaptor: Adaptor, /) -> bool:
        return any(f.match(adaptor) for f in self.filters)

    def __repr__(self) -> str:
        return f"AnyOf{self.filters!r}"


@final
class _AllOf:
    __slots__ = ("filters",)

    def __init__(self, filters: Sequence[Filter]) -> None:
        self.filters = tuple(filters)

    def match(self, adaptor: Adaptor, /) -> bool:
        return all(f.match(adaptor) for f in self.filters)

    def __repr__(self) -> str:
        return f"AllOf{self.filters!r}"


@final
class _Present:
    __slots__ = ("path",)

    def __init__(self, path: tuple[str, ...]) -> None:
        self.path = path

    def match(self, adaptor: Adaptor, /) -> bool:
        return adaptor.field(self.path)[1]

    def __repr__(self) -> str:
        return f"Present({self.path!r})"


@final
class _Equal:
    __slots__ = ("path", "value")

    def __init__(self, path: tuple[str, ...], value: str) -> None:
        self.path = path
        self.value = value

    def match(self, adaptor: Adaptor, /) -> bool:
        value, present = adaptor.field(self.path)
        return present and value == self.value

    def __repr__(self) -> str:
        return f"Equal({self.path!r}, {self.value!r})"


@final
class _NotEqual:
    __slots__ = ("path", "value")

    def __init__(self, path: tuple[str, ...], value: str) -> None:
        self.path = path
        self.value = value

    def match(self, adaptor: Adaptor, /) -> bool:
        # As containerd: presence is not consulted, an absent field's value is "".
        return adaptor.field(self.path)[0] != self.value

    def __repr__(self) -> str:
        return f"NotEqual({self.path!r}, {self.value!r})"


@final
class _Matches:
    __slots__ = ("path", "pattern", "search")

    def __init__(self, path: tuple[str, ...], pattern: str) -> None:
        self.path = path
        self.pattern = pattern
        compiled = compile_go_regexp(pattern)
        self.search = None if compiled is None else compiled.search

    def match(self, adaptor: Adaptor, /) -> bool:
        if self.search is None:
            return False  # a pattern that does not compile never matches
        return self.search(adaptor.field(self.path)[0])

    def __repr__(self) -> str:
        return f"Matches({self.path!r}, {self.pattern!r})"


def _selector_filter(sel: Selector) -> Filter:
    if sel.op == OP_PRESENT:
        return _Present(sel.fieldpath)
    if sel.op == OP_EQUAL:
        return _Equal(sel.fieldpath, sel.value)
    if sel.op == OP_NOT_EQUAL:
        return _NotEqual(sel.fieldpath, sel.value)
    assert sel.op == OP_MATCHES
    return _Matches(sel.fieldpath, sel.value)


def parse(filter_str: str) -> Filter:
    """Parse one filter string: its comma-separated selectors must all match.

    ``""`` matches everything. Raises :class:`InvalidArgument` with containerd's
    parse error text, or when the string is beyond a bound.
    """
    return parse_all((filter_str,))


def parse_all(filters: Iterable[str]) -> Filter:
    """Parse a list of filter strings, any of which may match; ``[]`` matches everything.

    A bare ``str`` is taken as one filter, not as a list of characters. Raises
    :class:`InvalidArgument` for a string that does not parse (containerd's text) and
    for a list beyond a bound.
    """
    strings = (filters,) if isinstance(filters, str) else tuple(filters)
    length = sum(map(len, strings))
    if length > MAX_LENGTH:
        raise InvalidArgument(f"filters: {length} characters exceed the limit of {MAX_LENGTH}")
    groups = [_selectors(s) for s in strings]
    _check_counts(groups)
    parsed = [_all_of(g) for g in groups]
    if not parsed:
        return ALWAYS
    if len(parsed) == 1:
        return parsed[0]
    if any(f is ALWAYS for f in parsed):
        return ALWAYS
    return _AnyOf(parsed)


def _selectors(filter_str: str) -> list[Selector]:
    if filter_str == "":
        return []
    try:
        return parse_selectors(filter_str)
    except ParseError as err:
        raise InvalidArgument(err.text) from None


def _check_counts(groups: Sequence[Sequence[Selector]]) -> None:
    selectors = sum(map(len, groups))
    if selectors > MAX_SELECTORS:
        raise InvalidArgument(f"filters: {selectors} selectors exceed the limit of {MAX_SELECTORS}")
    regexps = sum(s.op == OP_MATCHES for g in groups for s in g)
    if regexps > MAX_REGEXPS:
        raise InvalidArgument(
            f"filters: {regexps} regular expressions (~=) exceed the limit of {MAX_REGEXPS}"
        )


def _all_of(selectors: Sequence[Selector]) -> Filter:
    if not selectors:
        return ALWAYS  # the empty filter string
    filters = [_selector_filter(s) for s in selectors]
    return filters[0] if len(filters) == 1 else _AllOf(filters)


# --------------------------------------------------------------------------- adaptors


@final
class _FnAdaptor:
    __slots__ = ("fn",)

    def __init__(self, fn: Callable[[Sequence[str]], tuple[str, bool]]) -> None:
        self.fn = fn

    def field(self, path: Sequence[str], /) -> tuple[str, bool]:
        return self.fn(path)


def adapt_fn(fn: Callable[[Sequence[str]], tuple[str, bool]]) -> Adaptor:
    """An :class:`Adaptor` whose ``field`` is ``fn``."""
    return _FnAdaptor(fn)
