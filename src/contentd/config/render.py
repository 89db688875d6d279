"""Writing config as TOML (the stdlib reads TOML but does not write it).

:func:`render` writes a mapping the way ``containerd config default`` lays its
output out: a table's plain keys first, sorted, then its sub-tables, each under
a ``[dotted."header"]`` indented two spaces per level. Dataclass values are
turned into tables with :func:`to_table`. Only what configs hold is
supported: strings, booleans, integers, floats, arrays of those, and tables.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

from contentd.config.decode import key_path

__all__ = ["render", "to_table", "toml_value"]


def to_table(obj: object) -> Any:
    """Dataclasses (recursively) as dicts; lists and dicts copied; scalars as they are.

    A dataclass with a ``redacted()`` method (a config holding a credential) is
    rendered as what that returns.
    """
    redacted = getattr(obj, "redacted", None)
    if callable(redacted) and dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        obj = redacted()
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {
            f.name: to_table(getattr(obj, f.name))
            for f in dataclasses.fields(obj)
            if f.init and not f.name.startswith("_")
        }
    if isinstance(obj, Mapping):
        return {str(k): to_table(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [to_table(v) for v in obj]
    return obj


def _string(text: str) -> str:
    out = ['"']
    for ch in text:
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\r":
            out.append("\\r")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def toml_value(value: object) -> str:
    """One TOML value (not a table)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        text = repr(value)
        return text if any(c in text for c in ".eE") else text + ".0"
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} as a TOML value")


def render(table: Mapping[str, Any]) -> str:
    """``table`` as a TOML document."""
    lines: list[str] = []
    _emit(table, (), lines)
    return "\n".join(lines).rstrip("\n") + "\n"


def _emit(table: Mapping[str, Any], path: tuple[str, ...], lines: list[str]) -> None:
    indent = "  " * len(path)
    plain = sorted((k, v) for k, v in table.items() if not isinstance(v, Mapping))
    tables = sorted((k, v) for k, v in table.items() if isinstance(v, Mapping))
    for key, value in plain:
        lines.append(f"{indent}{key_path(key)} = {toml_value(value)}")
    for key, value in tables:
        sub = (*path, key)
        if lines:
            lines.append("")
        lines.append(f"{'  ' * (len(sub) - 1)}[{key_path(*sub)}]")
        _emit(value, sub, lines)
