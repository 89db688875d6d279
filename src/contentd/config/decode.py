"""Decoding TOML tables into typed config dataclasses, with errors that name the key.

:func:`decode` lays a parsed TOML table over a default dataclass instance and
returns a new instance (the default is never changed). Field types it knows:
``str``, ``int``, ``float`` (an integer is accepted), ``bool``, ``list[str]``,
``dict[str, str]``, a nested dataclass, ``dict[str, <dataclass>]`` (each
value decoded over the dataclass's defaults) and ``dict[str, dict[str,
Any]]`` (raw tables, kept as they are).

An unknown key, or a value of the wrong type, raises :class:`ConfigError`
naming the full key path, e.g. ``grpc.uid: expected an integer, got a string
("x")``. A dataclass may list containerd keys that contentd accepts and
ignores in a ``IGNORED_KEYS`` class attribute (they are reported through the
``warnings`` list instead), and may define ``validate()``, whose
InvalidArgument is reported against the table's path.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from collections.abc import Mapping
from typing import Any, Final, TypeVar, get_args, get_origin, get_type_hints

from contentd.content.errors import ContentError, InvalidArgument

__all__ = ["ConfigError", "decode", "key_path", "type_name"]

T = TypeVar("T")

_BARE_KEY: Final = re.compile(r"[A-Za-z0-9_-]+")


class ConfigError(InvalidArgument):
    """A configuration that cannot be used; the message names the offending key."""


def key_path(*parts: str) -> str:
    """A dotted TOML key path, quoting parts that are not bare keys."""
    return ".".join(p if _BARE_KEY.fullmatch(p) else _quote(p) for p in parts)


def _quote(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def type_name(tp: object) -> str:
    """How an error message names the expected type."""
    if tp is str:
        return "a string"
    if tp is bool:
        return "a boolean"
    if tp is int:
        return "an integer"
    if tp is float:
        return "a number"
    origin = get_origin(tp)
    if origin is list:
        (item,) = get_args(tp) or (Any,)
        return "an array" if item is Any else f"an array of {_plural(item)}"
    if origin is dict or (isinstance(tp, type) and dataclasses.is_dataclass(tp)):
        return "a table"
    return str(tp)


def _plural(tp: object) -> str:
    return {str: "strings", int: "integers", float: "numbers", bool: "booleans"}.get(
        tp if isinstance(tp, type) else object, "values"
    )


def _describe(value: object) -> str:
    if isinstance(value, bool):
        return f"a boolean ({str(value).lower()})"
    if isinstance(value, int):
        return f"an integer ({value})"
    if isinstance(value, float):
        return f"a number ({value})"
    if isinstance(value, str):
        return f"a string ({_quote(value)})"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "a table"
    return type(value).__name__


def _wrong(path: str, tp: object, value: object) -> ConfigError:
    return ConfigError(f"{path}: expected {type_name(tp)}, got {_describe(value)}")


def decode(
    default: T, table: Mapping[str, Any], path: str = "", warnings: list[str] | None = None
) -> T:
    """A copy of the dataclass instance ``default`` with ``table``'s values laid over it."""
    if not dataclasses.is_dataclass(default) or isinstance(default, type):
        raise TypeError(f"decode needs a dataclass instance, not {default!r}")
    cls = type(default)
    hints = get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(default) if f.init}
    ignored: frozenset[str] = getattr(cls, "IGNORED_KEYS", frozenset())
    if not isinstance(table, Mapping):
        raise _wrong(path or "config", cls, table)
    changes: dict[str, Any] = {}
    for key, value in table.items():
        where = f"{path}.{key_path(key)}" if path else key_path(key)
        if key not in fields:
            if key in ignored:
                if warnings is not None:
                    warnings.append(f"{where} is a containerd setting contentd ignores")
                continue
            raise ConfigError(f"{where}: unknown key")
        changes[key] = _value(hints[key], value, where, getattr(default, key), warnings)
    result = dataclasses.replace(default, **changes)
    validate = getattr(result, "validate", None)
    if callable(validate):
        try:
            validate()
        except ConfigError:
            raise
        except ContentError as err:
            raise ConfigError(f"{path or 'config'}: {err.context or err}") from None
    return typing.cast(T, result)


def _value(tp: Any, value: Any, where: str, current: Any, warnings: list[str] | None) -> Any:
    if tp is Any or tp is object:
        return value
    origin = get_origin(tp)
    if origin is typing.Union or origin is types.UnionType:
        for option in get_args(tp):
            if option is type(None):
                continue
            try:
                return _value(option, value, where, current, warnings)
            except ConfigError:
                continue
        raise _wrong(where, get_args(tp)[0], value)
    if tp is bool:
        if not isinstance(value, bool):
            raise _wrong(where, tp, value)
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _wrong(where, tp, value)
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _wrong(where, tp, value)
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise _wrong(where, tp, value)
        return value
    if origin is list or origin is tuple:
        if not isinstance(value, list):
            raise _wrong(where, tp, value)
        args = get_args(tp)
        item = args[0] if args else Any
        items = [_value(item, v, f"{where}[{i}]", None, warnings) for i, v in enumerate(value)]
        return items if origin is list else tuple(items)
    if origin is dict:
        if not isinstance(value, dict):
            raise _wrong(where, tp, value)
        _, item = get_args(tp) or (str, Any)
        out: dict[str, Any] = {}
        for key, v in value.items():
            sub = f"{where}.{key_path(key)}"
            if isinstance(item, type) and dataclasses.is_dataclass(item):
                if not isinstance(v, dict):
                    raise _wrong(sub, item, v)
                out[key] = decode(item(), v, sub, warnings)
            else:
                out[key] = _value(item, v, sub, None, warnings)
        return out
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise _wrong(where, tp, value)
        base = current if isinstance(current, tp) else tp()
        return decode(base, value, where, warnings)
    raise TypeError(f"{where}: unsupported config field type {tp!r}")
