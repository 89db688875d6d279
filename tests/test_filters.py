"""containerd's filter language (spec §9): parser, error texts, matching, regexps, adaptors.

Every expected error text and every regexp outcome in the tables below was
checked against containerd 1.6.20's ``filters`` package built with Go 1.19.8
(Debian's toolchain for containerd 1.6.20), through ``filters.ParseAll`` and
``regexp.Compile`` + ``MatchString``.
"""

from __future__ import annotations

import ast
import contextlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from contentd import filters
from contentd.content import filters as content_filters
from contentd.content.errors import InvalidArgument
from contentd.content.filters import info_adaptor, status_adaptor
from contentd.filters import ALWAYS, Adaptor, adapt_fn, parse, parse_all, quote
from contentd.filters.regexp import GoRegexpError, compile_go, compile_go_regexp

DIGEST = "sha256:" + "ab" * 32


@dataclass(frozen=True)
class Entry:
    """The object of containerd's filter_test.go corpus."""

    name: str = ""
    other: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)


def adapt(obj: Entry) -> Adaptor:
    def field_of(path: Sequence[str]) -> tuple[str, bool]:
        head = path[0]
        if head == "name":
            return obj.name, bool(obj.name)
        if head == "other":
            return obj.other, bool(obj.other)
        if head == "labels":
            key = ".".join(path[1:])
            return (obj.labels[key], True) if key in obj.labels else ("", False)
        return "", False

    return adapt_fn(field_of)


CORPUS = [
    Entry("foo", labels={"foo": "true"}),
    Entry("bar"),
    Entry("foo", labels={"foo": "present", "more complex label": "present"}),
    Entry("bar", labels={"bar": "true"}),
    Entry("fooer", labels={'more complex label with \\ and "': "present"}),
    Entry("fooer", labels={'more complex label with \\ and ".post': "present"}),
    Entry("baz", other="too complex, yo"),
    Entry("bazo", other="abc"),
    Entry("compound", labels={"foo": "omg_asdf.asdf-qwer"}),
]


def matching(filter_str: str) -> list[int]:
    f = parse(filter_str)
    return [i for i, obj in enumerate(CORPUS) if f.match(adapt(obj))]


# --------------------------------------------------------------------------- containerd's own cases


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", list(range(9))),
        ("name", list(range(9))),
        ("labels.foo", [0, 2, 8]),
        ("labels.foo,name", [0, 2, 8]),
        ("labels.foo==true", [0]),
        ("labels.foo==omg_asdf.asdf-qwer", [8]),
        ("name==bar", [1, 3]),
        ("name!=bar", [0, 2, 4, 5, 6, 7, 8]),
        ("name==bar,labels.bar", [3]),
        ('other=="too complex, yo"', [6]),
        ("other~=[abc]+,name!=foo", [6, 7]),
        ("other~=/[abc]+/,name!=foo", [6, 7]),
        ("other~=/[abc]{1,2}/,name!=foo", [6, 7]),
        ('other~=/[abc]{0,1}"\\//,name!=foo', []),
        ("name==bar,labels.bar==true", [3]),
        ("name==bar,labels.bar==wrong", []),
        ('name==foo,labels."more complex label"', [2]),
        (r'labels."more complex label with \\ and \""==present', [4]),
        (r'labels."more complex label with \\ and \"".post==present', [5]),
    ],
)
def test_containerd_corpus(text: str, expected: list[int]) -> None:
    assert matching(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "labels.|foo|==omg_asdf.asdf-qwer",
            "[labels. >|||< foo|==omg_asdf.asdf-qwer]: invalid quote encountered",
        ),
        (
            r'labels.?"more complex label with \\ and \"".post==present',
            r'[labels. >|?|< "more complex label with \\ and \"".post==present]: '
            "expected field or quoted",
        ),
        ("name==foo,", "[name==foo,]: expected field or quoted"),
        ("labels.", "[labels.]: expected field or quoted"),
        ("image~=,id?=?fbaq", "[image~= >|,|< id?=?fbaq]: expected value or quoted"),
        ("labels.ns/key==value", "[labels.ns >|/|< key==value]: quoted literal not terminated"),
        ("labels.key==/value", "[labels.key== >|/|< value]: quoted literal not terminated"),
    ],
)
def test_containerd_parse_errors(text: str, message: str) -> None:
    with pytest.raises(InvalidArgument) as exc:
        parse(text)
    assert exc.value.context == f"filters: parse error: {message}"
    assert str(exc.value) == f"filters: parse error: {message}: invalid argument"


# --------------------------------------------------------------------------- error texts

# (input, containerd's error text without the "filters: parse error: " prefix)
ERRORS = [
    # the illegal tokens of containerd's scanner tests
    (
        "labels.containerd.io/key==value",
        "[labels.containerd.io >|/|< key==value]: quoted literal not terminated",
    ),
    (
        'labels."containerd.io\nkey"==value',
        '[labels. >|"|< containerd.io\nkey"==value]: quoted literal not terminated',
    ),
    ('labels."\\g"', '[labels. >|"|< \\g"]: illegal escape sequence'),
    ('labels."\\xaz"', '[labels. >|"|< \\xaz"]: illegal numeric escape sequence'),
    ("foo\x00bar", "[foo >|\x00|< bar]: unexpected null"),
    ("input==,id!=ff", "[input== >|,|< id!=ff]: expected value or quoted"),
    # operators: the longest run of = ! ~
    ("foo = bar    ", '[foo  >|=|<  bar    ]: unsupported operator "="'),
    ("interrupted=", '[interrupted >|=|< ]: unsupported operator "="'),
    ("a===b", '[a >|=|< ==b]: unsupported operator "==="'),
    ("a!~b", '[a >|!|< ~b]: unsupported operator "!~"'),
    ("a~b", '[a >|~|< b]: unsupported operator "~"'),
    ("a!b", '[a >|!|< b]: unsupported operator "!"'),
    ("a=!b", '[a >|=|< !b]: unsupported operator "=!"'),
    ("a==!=b", '[a >|=|< =!=b]: unsupported operator "==!="'),
    ("a~~=b", '[a >|~|< ~=b]: unsupported operator "~~="'),
    # white space only before a field, an operator or a value
    ("a==1 ,b", "[a==1 >| |< ,b]: unexpected input:  "),
    ("a==b c", "[a==b >| |< c]: unexpected input:  "),
    ("name ", '[name ]: expected an operator ("=="|"!="|"~=")'),
    ("a ,b", '[a  >|,|< b]: expected an operator ("=="|"!="|"~=")'),
    ("a .b", '[a  >|.|< b]: expected an operator ("=="|"!="|"~=")'),
    (" ", "[ ]: expected field or quoted"),
    ("a==b\u00a0", "[a==b >|\ufffd|< \ufffd]: unexpected input: \u00a0"),
    # structure
    (",a", "[ >|,|< a]: expected field or quoted"),
    ("a,,b", "[a, >|,|< b]: expected field or quoted"),
    ("a..b", "[a. >|.|< b]: expected field or quoted"),
    (".a", "[ >|.|< a]: expected field or quoted"),
    ("=a", "[ >|=|< a]: expected field or quoted"),
    ("a==", "[a==]: expected value or quoted"),
    ("a~=", "[a~=]: expected value or quoted"),
    ("a==b,", "[a==b,]: expected field or quoted"),
    ("a.b.", "[a.b.]: expected field or quoted"),
    ("'a'", "[ >|'|< a']: expected field or quoted"),
    ('a=="x"y', '[a=="x" >|y|< ]: unexpected input: y'),
    ('a"b"', '[a >|"|< b"]: expected an operator ("=="|"!="|"~=")'),
    ("a\x01", '[a >|\x01|< ]: expected an operator ("=="|"!="|"~=")'),
    ("a==b\x01", "[a==b >|\x01|< ]: unexpected input: \x01"),
    # quoting
    ('a=="\\400"', '[a== >|"|< \\400"]: unquoting failed: quote syntax error'),
    ('a=="\\U00110000"', '[a== >|"|< \\U00110000"]: unquoting failed: quote syntax error'),
    ('a=="\\u12"', '[a== >|"|< \\u12"]: illegal numeric escape sequence'),
    ('a=="\\x4"', '[a== >|"|< \\x4"]: illegal numeric escape sequence'),
    ('a=="abc', '[a== >|"|< abc]: quoted literal not terminated'),
    ('a=="abc\\"', '[a== >|"|< abc\\"]: quoted literal not terminated'),
    ("a~=/abc", "[a~= >|/|< abc]: quoted literal not terminated"),
    ("a~=|abc", "[a~= >|||< abc]: quoted literal not terminated"),
    ("a~=/a\\|b/", "[a~= >|/|< a\\|b/]: illegal escape sequence"),
    ("a~=|a\\/b|", "[a~= >|||< a\\/b|]: illegal escape sequence"),
    ("a==/x/", "[a== >|/|< x/]: invalid quote encountered"),
    ("a!=|x|", "[a!= >|||< x|]: invalid quote encountered"),
    ("/a/==b", "[ >|/|< a/==b]: invalid quote encountered"),
    ('a=="\\/"', '[a== >|"|< \\/"]: illegal escape sequence'),
    ('a=="\\\'"', '[a== >|"|< \\\'"]: illegal escape sequence'),
    # illegal code points; positions are byte offsets and a cut UTF-8 sequence shows as U+FFFD
    ("a\x00", "[a >|\x00|< ]: unexpected null"),
    ('a=="\x00"', '[a== >|"|< \x00"]: unexpected null'),
    ("a\ufffd", "[a >|\ufffd|< \ufffd\ufffd]: rune error"),
    ('"\ufffd"', '[ >|"|< \ufffd"]: rune error'),
    ("a==b\ufffd", "[a==b >|\ufffd|< \ufffd\ufffd]: unexpected input: \ufffd"),
    ("name==a,牛", "[name==a, >|\ufffd|< \ufffd\ufffd]: expected field or quoted"),
    ("牛==a", "[ >|\ufffd|< \ufffd\ufffd==a]: expected field or quoted"),
    ("a==b,é", "[a==b, >|\ufffd|< \ufffd]: expected field or quoted"),
    ("a\u200b", '[a >|\ufffd|< \ufffd\ufffd]: expected an operator ("=="|"!="|"~=")'),
]


@pytest.mark.parametrize(("text", "message"), ERRORS)
def test_error_texts(text: str, message: str) -> None:
    with pytest.raises(InvalidArgument) as exc:
        parse_all([text])
    assert str(exc.value) == f"filters: parse error: {message}: invalid argument"


def test_invalid_utf8_is_a_rune_error() -> None:
    # Raw bytes travel as surrogateescape code points; Go shows each bad byte as U+FFFD.
    raw = b"a==b,\xff".decode("utf-8", "surrogateescape")
    with pytest.raises(InvalidArgument) as exc:
        parse(raw)
    assert exc.value.context == "filters: parse error: [a==b, >|\ufffd|< ]: rune error"
    with pytest.raises(InvalidArgument, match="rune error"):
        parse('a=="\ud800"')


def test_first_error_wins() -> None:
    # The scanner keeps the first error it met, even one met while peeking ahead.
    with pytest.raises(InvalidArgument) as exc:
        parse('a=="\\q\n"')
    assert "illegal escape sequence" in str(exc.value)


@pytest.mark.parametrize(
    "text",
    [
        "a. b",  # white space before a field
        "a ==  b",  # ... before an operator and a value
        "a==1, b==2",
        "a\u3000==b",
        "a=='x'",  # ' is not a quote character: a bare value
        "a=='\\''",
        'a==b"c"',  # a bare value may contain quotes after its first character
        "a==\x01",  # the first character of a value is not checked
        "a==\u200b",
        "9a==1",  # fields may start with a digit
        "a~=\\d+",  # \d bare
        'a~="\\\\d+"',
        'a=="\\a\\b\\f\\n\\r\\t\\v\\\\\\""',
        "a~=/\\//,b~=|\\||",
        "digest==sha256:" + "ab" * 32,
        'labels."containerd.io/gc.root"',
    ],
)
def test_valid(text: str) -> None:
    parse(text)


# --------------------------------------------------------------------------- spec §9 rules


def fields(**values: str) -> Adaptor:
    """An adaptor over dotted paths: fields(**{"labels.a": "x"})."""
    return adapt_fn(lambda path: (values.get(".".join(path), ""), ".".join(path) in values))


def test_empty_matches_everything() -> None:
    assert parse("") is ALWAYS
    assert parse_all([]) is ALWAYS
    assert parse_all(()) is ALWAYS
    assert parse_all([""]).match(fields())
    assert parse_all(["a==b", ""]).match(fields())


def test_list_is_or_comma_is_and() -> None:
    f = parse_all(["a==1", "b==2"])
    assert f.match(fields(a="1"))
    assert f.match(fields(b="2"))
    assert not f.match(fields(a="2", b="1"))
    g = parse("a==1,b==2")
    assert g.match(fields(a="1", b="2"))
    assert not g.match(fields(a="1"))


def test_pipe_is_not_or() -> None:
    # | quotes a regexp; it is not an OR operator. Inside a bare value it is a plain character.
    f = parse("a==1|b==2")
    assert f.match(fields(a="1|b==2"))
    assert not f.match(fields(a="1", b="2"))
    with pytest.raises(InvalidArgument, match="invalid quote encountered"):
        parse("a==|1|")
    assert parse("a~=|1|").match(fields(a="x1y"))


def test_parse_all_of_a_str_is_one_filter() -> None:
    assert parse_all("a==1").match(fields(a="1"))


def test_list_with_one_bad_filter_fails() -> None:
    with pytest.raises(InvalidArgument):
        parse_all(["a==1", "a==="])


def test_operators() -> None:
    present = fields(a="x")
    empty = fields(a="")
    absent = fields()
    assert parse("a").match(present) and parse("a").match(empty)
    assert not parse("a").match(absent)
    assert parse("a==x").match(present)
    assert not parse("a==x").match(absent)
    assert parse('a==""').match(empty)
    assert not parse('a==""').match(absent)  # == needs presence
    assert not parse("a!=x").match(present)
    assert parse("a!=x").match(absent)  # absent counts as ""
    assert parse("a!=y").match(present)
    assert not parse('a!=""').match(absent)
    assert parse("a~=^$").match(absent)  # ~= searches "" when absent
    assert parse("a~=x").match(present)
    assert parse("a~=^").match(absent)


def test_bare_values() -> None:
    assert parse("a==a_b.c-d").match(fields(a="a_b.c-d"))
    assert parse("a==x=y:z/w").match(fields(a="x=y:z/w"))
    assert parse(f"digest=={DIGEST}").match(fields(digest=DIGEST))
    assert parse("a==牛").match(fields(a="牛"))


def test_quoted_values_and_fields() -> None:
    assert parse('a=="x, y"').match(fields(a="x, y"))
    assert parse(r'a=="\x41\101\u0041\U00000041"').match(fields(a="AAAA"))
    assert parse(r'a=="\a\b\f\n\r\t\v\\\""').match(fields(a='\a\b\f\n\r\t\v\\"'))
    assert parse(r'a=="\u00e9\U0001F600"').match(fields(a="é😀"))
    assert parse('labels."containerd.io/gc.root"').match(
        fields(**{"labels.containerd.io/gc.root": "1"})
    )
    assert parse('"a b".c==1').match(fields(**{"a b.c": "1"}))
    # \xNN and \NNN are bytes: above 0x7f they are not UTF-8 on their own.
    assert parse(r'a=="\xff"').match(fields(a="\udcff"))
    assert parse(r'a=="\303\251"').match(fields(a="é"))
    # \u escapes of surrogates become U+FFFD, as Go's UTF-8 encoder makes them.
    assert parse(r'a=="\ud800"').match(fields(a="\ufffd"))


def test_regexp_quotes_only_after_match_operator() -> None:
    assert parse("a~=/x/").match(fields(a="x"))
    assert parse("a~=|x|").match(fields(a="x"))
    assert parse('a~="x"').match(fields(a="x"))
    assert parse(r"a~=/a\/b/").match(fields(a="a/b"))
    assert parse(r"a~=|a\|b|").match(fields(a="a|b"))


def test_bad_regexp_never_matches_and_is_not_a_parse_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.ERROR):
        f = parse("a~=(")
    assert not f.match(fields(a="("))
    assert not f.match(fields())
    assert "error compiling regexp" in caplog.text
    # a bad regexp does not stop the other filters of a list
    assert parse_all(["a~=(", "a==("]).match(fields(a="("))


# --------------------------------------------------------------------------- Go RE2 regexps

# (pattern, subject, Go's MatchString result, or None where regexp.Compile fails)
REGEXPS: list[tuple[str, str, bool | None]] = [
    ("a", "cat", True),
    ("^a", "cat", False),
    ("^c", "cat", True),
    ("t$", "cat", True),
    ("t$", "cat\n", False),
    ("(?m)t$", "cat\n", True),
    ("\\z", "", True),
    ("t\\z", "cat", True),
    ("t\\Z", "cat", None),
    ("\\d", "\u0663", False),
    ("\\d", "3", True),
    ("\\w", "é", False),
    ("\\w", "_", True),
    ("\\s", "\v", False),
    ("\\s", "\t", True),
    ("[[:space:]]", "\v", True),
    ("\\bé", "é", False),
    ("\\ba", "a", True),
    ("\\B", "", True),
    ("\\b", "", False),
    ("(?i)k", "\u212a", True),
    ("(?i)K", "k", True),
    ("(?i)ß", "ẞ", True),
    ("(?i)[^k]", "K", False),
    ("(?i)\\w", "\u212a", True),
    ("a(?i)b|c", "C", True),
    ("(?i:a)b", "AB", False),
    ("(?i:a)b", "Ab", True),
    ("(?i)a(?-i)b", "AB", False),
    (".", "\n", False),
    ("(?s).", "\n", True),
    ("[^a]", "\n", True),
    ("\\pL", "é", True),
    ("\\p{Lu}", "é", False),
    ("\\PL", "1", True),
    ("\\p{^L}", "a", False),
    ("\\pN", "\u0663", True),
    ("\\p{Any}", "\n", True),
    ("\\p{Cn}", "x", None),
    ("\\p{Foo}", "x", None),
    ("[[:alpha:]]+", "abc", True),
    ("[[:^alpha:]]", "abc", False),
    ("[[:foo:]]", "a", None),
    ("[[:word:]]", "_", True),
    ("\\Q.*\\E", "a.*b", True),
    ("\\Q.*\\E", "ab", False),
    ("\\Qa.b", "a.b", True),
    ("\\x41", "A", True),
    ("\\x{1F600}", "😀", True),
    ("\\101", "A", True),
    ("\\0", "\x00", True),
    ("\\1", "a", None),
    ("(a)\\1", "aa", None),
    ("\\8", "8", None),
    ("a{,2}", "a{,2}", True),
    ("a{,2}", "aa", False),
    ("a{01}", "a{01}", True),
    ("a{2}", "aa", True),
    ("a{1001}", "a", None),
    ("a{2,1}", "aa", None),
    ("x{2}{3}", "xxxxxx", None),
    ("(a{100}){11}", "a", None),
    ("(?:a{2}){500}", "a" * 1000, True),
    ("a**", "a", None),
    ("a*+", "a", None),
    ("a*?", "a", True),
    ("(?U)a+", "a", True),
    ("(?=a)", "a", None),
    ("(?!a)", "b", None),
    ("(?<=a)b", "ab", None),
    ("(?#c)a", "a", None),
    ("(?P<n>a)", "a", True),
    ("(?P=n)", "a", None),
    ("(?<n>a)", "a", None),
    ("[(?<n>]", "<", True),
    ("\\Q(?<n>\\E", "(?<n>", True),
    ("(?P<é>a)", "a", None),
    ("(?P<a-b>a)", "a", None),
    ("(?P<1>a)", "a", True),
    ("(?P<n>a)(?P<n>b)", "ab", True),
    ("\\p{Greek}", "α", True),
    ("\\p{Greek}", "a", False),
    ("[^\\p{Greek}]", "α", False),
    ("\\p{Yezidi}", "\U00010e80", True),
    ("\\p{Vithkuqi}", "a", None),
    ("[\\P{^Kawi}]", "a", None),
    ("\\p{greek}", "a", None),
    ("\udcff", "x", None),  # a raw byte (\xff in the filter): not UTF-8
    ("(?x)a b", "ab", None),
    ("(?a)a", "a", None),
    ("(?)a", "a", True),
    ("(?i-)a", "a", None),
    ("\\e", "\x1b", None),
    ("\\u0041", "A", None),
    ("\\N{DIGIT ONE}", "1", None),
    ("\\C", "a", None),
    ("\\Q\\C\\E", "\\C", True),
    ("[\\C]", "C", None),
    ("\\_", "_", True),
    ("\\é", "é", None),
    ("[\\b]", "\b", None),
    ("\\cA", "\x01", None),
    ("*", "a", None),
    ("(*)", "a", None),
    ("a|*", "a", None),
    ("(", "a", None),
    (")", "a", None),
    ("[a", "a", None),
    ("[]a]", "]", True),
    ("[^]a]", "b", True),
    ("[a-]", "-", True),
    ("[z-a]", "a", None),
    ("[\\d-z]", "-", True),
    ("\\", "a", None),
    ("^*", "", True),
    ("$+", "a", True),
    ("\\b*", "a", True),
    ("(?i)*", "a", None),
    ("a(?i)*", "", True),
    ("[a&&b]", "&", True),
    ("[[a]", "[", True),
    ("a{1,2}?", "a", True),
    ("sha256:[a-f0-9]{64}", DIGEST, True),
    ("^default/1/", "default/1/ref", True),
    ("ref-[0-9]+$", "ref-12", True),
]


@pytest.mark.parametrize(("pattern", "subject", "expected"), REGEXPS)
def test_go_regexps(pattern: str, subject: str, expected: bool | None) -> None:
    compiled = compile_go_regexp(pattern)
    if expected is None:
        assert compiled is None
        with pytest.raises(GoRegexpError):
            compile_go(pattern)
    else:
        assert compiled is not None
        assert compiled.search(subject) is expected
    # and through the filter: a pattern Go rejects never matches
    f = parse(f"a~={quote(pattern)}")
    assert f.match(fields(a=subject)) is bool(expected)


def test_go_factoring_bug_is_not_reproduced() -> None:
    # Go 1.19 answers False here (see the contentd.filters.regexp module doc); RE2 keeps the
    # documented meaning of (?i): it lasts to the end of the group, across |.
    compiled = compile_go_regexp("X(?i)y|X.")
    assert compiled is not None
    assert compiled.search("xz")


@pytest.mark.parametrize(
    "pattern",
    ["^(a+)+$", "(a|a)*b", "(a*)*b", "((a+)+)+c", "(x+x+)+y", "(.*a){12}", "(?i)(a|aa)+$"],
)
def test_catastrophic_backtracking_patterns_run_in_linear_time(pattern: str) -> None:
    # Each would take longer than the age of the universe on a backtracking engine
    # (Python's re) at this length; RE2 answers in microseconds. No timing is
    # asserted: pytest-timeout is the bound.
    compiled = compile_go(pattern)
    for text in ("a" * 4096 + "!", "x" * 4096, "a" * 20_000):
        compiled.search(text)
    f = parse(f"labels.k~={quote(pattern)}")
    value = "a" * 4095 + "!"
    assert f.match(info_adaptor(FakeInfo(DIGEST, {"k": value}))) is compiled.search(value)


def test_a_pattern_beyond_the_memory_budget_never_matches(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Go takes it (its budget is larger); here it is treated like a bad pattern.
    compile_go("\\pL{100}")
    with caplog.at_level(logging.ERROR):
        assert compile_go_regexp("\\pL{1000}") is None
    assert "pattern too large" in caplog.text
    assert not parse("a~=\\pL{1000}").match(fields(a="x" * 1000))


@pytest.mark.parametrize(
    "pattern",
    [
        "(?P<" * 4000,
        "(?P<" * 4000 + ">",
        "[[:]" * 4000,
        "[[:" * 4000 + ":]]",
        "\\Q" * 8000,
        "\\p{" * 4000,
        "(?" * 8000,
        "[" * 16_000,
    ],
)
def test_the_go_syntax_check_is_linear(pattern: str) -> None:
    # These would be quadratic if each look-ahead scanned the rest of the pattern
    # again; pytest-timeout is the bound. Each either compiles or is refused.
    with contextlib.suppress(GoRegexpError):
        compile_go(pattern)


# --------------------------------------------------------------------------- bounds


def test_a_long_filter_list_is_refused_before_parsing() -> None:
    at_limit = "a==" + "x" * (filters.MAX_LENGTH - 3)
    parse(at_limit)
    with pytest.raises(InvalidArgument, match="16385 characters exceed the limit of 16384"):
        parse(at_limit + "x")
    with pytest.raises(InvalidArgument, match="characters exceed the limit"):
        parse_all([at_limit[:-10], "b==" + "y" * 10])


def test_too_many_selectors_are_refused() -> None:
    many = ["a==1"] * filters.MAX_SELECTORS
    assert parse_all(many).match(fields(a="1"))
    with pytest.raises(InvalidArgument, match="257 selectors exceed the limit of 256"):
        parse_all([*many, "b"])
    with pytest.raises(InvalidArgument, match="257 selectors"):
        parse(",".join([*many, "b"]))


def test_too_many_regexps_are_refused() -> None:
    regexps = [f"a~=^{i}" for i in range(filters.MAX_REGEXPS)]
    assert parse_all(regexps).match(fields(a="3"))
    with pytest.raises(
        InvalidArgument, match=r"9 regular expressions \(~=\) exceed the limit of 8"
    ):
        parse_all([*regexps, "a~=x"])
    with pytest.raises(InvalidArgument, match="exceed the limit of 8: invalid argument"):
        parse(",".join([*regexps, "b~=x"]))


def test_a_parse_error_is_reported_before_a_count() -> None:
    with pytest.raises(InvalidArgument, match="parse error"):
        parse_all(["a~=x"] * 20 + ["=="])


# --------------------------------------------------------------------------- adaptors


@dataclass(frozen=True)
class FakeInfo:
    digest: str
    labels: Mapping[str, str] | None = None
    size: int = 0


@dataclass(frozen=True)
class FakeStatus:
    ref: str


def test_info_adaptor() -> None:
    info = FakeInfo(DIGEST, {"a": "1", "x.y": "2", "containerd.io/gc.root": "now"}, size=42)
    a = info_adaptor(info)
    assert a.field(["digest"]) == (DIGEST, True)
    assert a.field(["size"]) == ("", False)
    assert a.field(["labels", "a"]) == ("1", True)
    assert a.field(["labels", "x", "y"]) == ("2", True)
    assert a.field(["labels", "b"]) == ("", False)
    assert a.field(["labels"]) == ("", False)
    assert a.field([]) == ("", False)
    assert a.field(["created"]) == ("", False)
    assert parse(f"digest=={DIGEST}").match(a)
    assert parse("digest~=^sha256:").match(a)
    assert parse("digest").match(info_adaptor(FakeInfo("")))
    assert not parse("size==42").match(a)
    assert not parse("size").match(a)
    assert parse("size!=42").match(a)
    assert parse("labels.x.y==2").match(a)
    assert parse('labels."x.y"==2').match(a)
    assert parse('labels."containerd.io/gc.root"').match(a)
    assert parse("labels.a!=2").match(a)


@pytest.mark.parametrize("labels", [None, {}])
def test_info_adaptor_without_labels(labels: Mapping[str, str] | None) -> None:
    a = info_adaptor(FakeInfo(DIGEST, labels))
    assert a.field(["labels", "a"]) == ("", False)
    assert not parse("labels.a").match(a)
    assert parse("labels.a!=x").match(a)


def test_info_adaptor_on_the_content_info_type() -> None:
    from contentd.content.types import Info

    info = Info(digest=DIGEST, size=3, labels={"k": "v"})
    assert parse('labels."k"==v').match(info_adaptor(info))


def test_status_adaptor() -> None:
    a = status_adaptor(FakeStatus("default/1/my-ref"))
    assert a.field(["ref"]) == ("default/1/my-ref", True)
    assert a.field(["ref", "x"]) == ("default/1/my-ref", True)
    assert a.field(["offset"]) == ("", False)
    assert a.field([]) == ("", False)
    assert parse("ref==default/1/my-ref").match(a)
    assert parse("ref~=^default/").match(a)
    assert parse_all(["ref==x", "ref~=my-ref$"]).match(a)
    assert not parse("ref==x").match(a)
    assert parse("ref").match(status_adaptor(FakeStatus("")))


# --------------------------------------------------------------------------- quote()


def test_quote_examples() -> None:
    assert quote("") == '""'
    assert quote("a b") == '"a b"'
    assert quote('a"b\\c') == r'"a\"b\\c"'
    assert quote("\n\t\x00\x7f") == r'"\n\t\x00\x7f"'
    assert quote("\ufffd") == r'"\ufffd"'
    assert quote("\udcff") == r'"\xff"'
    with pytest.raises(ValueError):
        quote("\ud800")


# --------------------------------------------------------------------------- properties

label_text = st.text(st.characters(exclude_categories=["Cs"]), max_size=30)
settings_fast = settings(max_examples=300, deadline=None)


@settings_fast
@given(key=label_text, value=label_text, other=label_text)
@example(key="containerd.io/gc.ref.content.m.0", value=DIGEST, other="x")
@example(key="a.b", value='"\\', other="")
def test_quote_round_trips(key: str, value: str, other: str) -> None:
    info = info_adaptor(FakeInfo(DIGEST, {key: value}))
    qk, qv = quote(key), quote(value)
    assert parse(f"labels.{qk}").match(info)
    assert parse(f"labels.{qk}=={qv}").match(info)
    assert not parse(f"labels.{qk}!={qv}").match(info)
    compiled = compile_go_regexp(value)
    assert parse(f"labels.{qk}~={qv}").match(info) == bool(compiled and compiled.search(value))
    if other != value:
        assert not parse(f"labels.{qk}=={quote(other)}").match(info)
        assert parse(f"labels.{qk}!={quote(other)}").match(info)
    if other != key:
        assert not parse(f"labels.{quote(other)}").match(info)


def go_literal(s: str) -> str:
    """A Go regexp matching exactly the text ``s``."""
    return "".join(f"\\x{{{ord(c):x}}}" for c in s)


@settings_fast
@given(text=label_text, prefix=label_text, suffix=label_text)
def test_literal_regexps_search(text: str, prefix: str, suffix: str) -> None:
    value = prefix + text + suffix
    a = fields(a=value)
    assert parse(f"a~={quote(go_literal(text))}").match(a)
    assert parse(f"a~={quote('^' + go_literal(value) + '$')}").match(a)
    assert parse(f"a~={quote('(?i)^' + go_literal(value.upper()) + '$')}").match(a) or (
        # upper() is not always one code point per code point; nothing to check then
        len(value.upper()) != len(value)
        or any(len(c.upper()) != 1 or len(c.casefold()) != 1 for c in value)
    )


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.sampled_from([*"ab.,=\"!~/|\\ \tx0-_\n\x00\ufffdé牛'", "==", "!=", "~=", "labels"]),
        max_size=25,
    ).map("".join)
    | st.text(max_size=25)
)
def test_never_crashes(text: str) -> None:
    try:
        f = parse_all([text])
    except InvalidArgument as err:
        assert str(err).startswith("filters: parse error: [")
        assert str(err).endswith(": invalid argument")
        return
    assert isinstance(f.match(fields(a="x", b="")), bool)
    assert isinstance(f.match(info_adaptor(FakeInfo(DIGEST, {"a": "b"}))), bool)


@settings(max_examples=500, deadline=None)
@given(
    st.text(
        st.sampled_from(list("ab()[]{}|*+?^$.\\-:,0129iPpLQECx<>=!#dDsSwWbBAzUmé")), max_size=20
    )
)
def test_regexp_compilation_never_crashes(pattern: str) -> None:
    try:
        compiled = compile_go(pattern)
    except GoRegexpError:
        assert compile_go_regexp(pattern) is None
        return
    assert isinstance(compiled.search("ab0:\n-é"), bool)


selector = st.sampled_from(
    [
        "a",
        "b",
        "c",
        "a==1",
        "a!=1",
        "b==2",
        "b!=2",
        "a~=^1",
        "b~=2$",
        "c~=[0-9]",
        'a==""',
        "c!=3",
        "a~=(",
    ]
)
objects = st.dictionaries(
    st.sampled_from(["a", "b", "c"]), st.sampled_from(["", "1", "2", "3", "12"])
)


@settings_fast
@given(
    xs=st.lists(selector, min_size=1, max_size=4), ys=st.lists(selector, max_size=4), obj=objects
)
def test_and_or_algebra(xs: list[str], ys: list[str], obj: dict[str, str]) -> None:
    a = fields(**obj)
    one = [parse(s).match(a) for s in xs]
    # comma is AND
    assert parse(",".join(xs)).match(a) == all(one)
    # a list is OR, in any order
    assert parse_all(xs).match(a) == any(one)
    assert parse_all(list(reversed(xs))).match(a) == any(one)
    # OR of ANDs
    groups = [",".join(xs)] + ([",".join(ys)] if ys else [])
    expected = all(one) or (bool(ys) and all(parse(s).match(a) for s in ys))
    assert parse_all(groups).match(a) == expected
    # "" in a list matches everything
    assert parse_all([*xs, ""]).match(a)
    assume(len(xs) > 1)
    # AND is commutative
    assert parse(",".join(reversed(xs))).match(a) == all(one)


def test_module_exports() -> None:
    assert set(filters.__all__) == {
        "ALWAYS",
        "MAX_LENGTH",
        "MAX_REGEXPS",
        "MAX_SELECTORS",
        "Adaptor",
        "Filter",
        "adapt_fn",
        "parse",
        "parse_all",
        "quote",
    }
    assert set(content_filters.__all__) == {
        "HasDigestAndLabels",
        "HasRef",
        "info_adaptor",
        "status_adaptor",
    }


def test_the_filters_package_stands_alone() -> None:
    # It needs nothing of contentd but the error kinds: no import circle can pass through it.
    package = Path(filters.__file__).parent
    imported: set[str] = set()
    for path in package.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                imported.add(node.module)
            elif isinstance(node, ast.Import):
                imported.update(alias.name for alias in node.names)
    ours = {m for m in imported if m.split(".")[0] == "contentd"}
    assert ours - {"contentd.content.errors"} <= {
        "contentd.filters.filter",
        "contentd.filters.regexp",
        "contentd.filters.syntax",
    }
