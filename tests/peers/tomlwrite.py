"""A tiny TOML writer and merger, enough for containerd configuration files.

The standard library reads TOML (``tomllib``) but does not write it; containerd configs
only need strings, integers, floats, booleans, arrays and nested tables.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Iterable, Mapping
from typing import Any

_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")

#: Top-level keys whose arrays are unioned, not replaced, when configs are merged.
UNION_KEYS = frozenset({"disabled_plugins", "required_plugins", "imports"})


def _key(k: str) -> str:
    return k if _BARE_KEY.match(k) else json.dumps(k)


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, Mapping):
        inner = ", ".join(f"{_key(k)} = {_value(x)}" for k, x in v.items())
        return "{" + inner + "}"
    if isinstance(v, list | tuple):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    raise TypeError(f"cannot write {type(v).__name__} as TOML")


def _table(out: list[str], path: tuple[str, ...], table: Mapping[str, Any]) -> None:
    scalars = [(k, v) for k, v in table.items() if not isinstance(v, Mapping)]
    tables = [(k, v) for k, v in table.items() if isinstance(v, Mapping)]
    if path and (scalars or not tables):
        out.append("")
        out.append("[" + ".".join(_key(p) for p in path) + "]")
    for k, v in scalars:
        out.append(f"{_key(k)} = {_value(v)}")
    for k, v in tables:
        _table(out, (*path, k), v)


def dumps(doc: Mapping[str, Any]) -> str:
    """Serialise ``doc`` as TOML; the result is checked to read back equal."""
    out: list[str] = []
    _table(out, (), doc)
    text = "\n".join(out).lstrip("\n") + "\n"
    if tomllib.loads(text) != _plain(doc):
        raise ValueError("TOML round-trip mismatch")
    return text


def _plain(v: Any) -> Any:
    if isinstance(v, Mapping):
        return {k: _plain(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_plain(x) for x in v]
    return v


def _union(a: Iterable[Any], b: Iterable[Any]) -> list[Any]:
    out = list(a)
    for x in b:
        if x not in out:
            out.append(x)
    return out


def merge(base: Mapping[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    """Deep-merge ``extra`` over ``base``: tables merge, arrays in UNION_KEYS union."""
    out: dict[str, Any] = {k: _plain(v) for k, v in base.items()}
    for k, v in extra.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), Mapping):
            out[k] = merge(out[k], v)
        elif k in UNION_KEYS and isinstance(v, list | tuple) and isinstance(out.get(k), list):
            out[k] = _union(out[k], v)
        else:
            out[k] = _plain(v)
    return out
