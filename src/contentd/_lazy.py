"""Lazy re-exports for package ``__init__`` modules.

A package lists ``{name: module}``; the module is imported the first time the
name is looked up, and the value is cached in the package's globals. That keeps
``import contentd`` (and the ``contentd`` command) from loading gRPC, SQLite or
the local store until something actually uses them.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Mapping
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(
    package: str,
    namespace: dict[str, Any],
    names: Mapping[str, str],
    submodules: Iterable[str] = (),
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for ``package`` whose globals are ``namespace``.

    ``names`` maps an exported name to the module defining it; each of
    ``submodules`` resolves to ``<package>.<submodule>`` itself.
    """
    modules = frozenset(submodules)

    def getattr_(name: str) -> Any:
        if name in modules:
            value = importlib.import_module(f"{package}.{name}")
        else:
            module = names.get(name)
            if module is None:
                raise AttributeError(f"module {package!r} has no attribute {name!r}")
            value = getattr(importlib.import_module(module), name)
        namespace[name] = value
        return value

    def dir_() -> list[str]:
        return sorted(set(namespace) | set(namespace.get("__all__", ())))

    return getattr_, dir_
