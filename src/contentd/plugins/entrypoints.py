"""Third-party plugins, found through the ``contentd.plugins`` entry-point group.

A distribution declares, e.g. in its ``pyproject.toml``::

    [project.entry-points."contentd.plugins"]
    mystore = "mypkg.plugin:registrations"

where ``registrations`` is a callable taking no arguments and returning one
:class:`~contentd.plugins.registry.Registration` or an iterable of them. An
entry point that fails to load or returns something else is reported (not
fatal: its plugins are simply absent, and a ``required_plugins`` entry naming
one of them then stops the daemon).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import metadata
from typing import Final

from contentd.plugins.registry import Registration

__all__ = ["ENTRY_POINT_GROUP", "EntryPointError", "discover"]

ENTRY_POINT_GROUP: Final = "contentd.plugins"


@dataclass(frozen=True)
class EntryPointError:
    """An entry point that gave no registrations: its name, value and the problem."""

    name: str
    value: str
    error: str


def discover(
    entry_points: Iterable[metadata.EntryPoint] | None = None,
) -> tuple[list[Registration], list[EntryPointError]]:
    """Registrations from every ``contentd.plugins`` entry point, and the failures."""
    if entry_points is None:
        entry_points = metadata.entry_points(group=ENTRY_POINT_GROUP)
    found: list[Registration] = []
    errors: list[EntryPointError] = []
    for ep in sorted(entry_points, key=lambda e: e.name):
        try:
            factory = ep.load()
            produced = factory()
            items = [produced] if isinstance(produced, Registration) else list(produced)
            bad = [r for r in items if not isinstance(r, Registration)]
            if bad:
                raise TypeError(f"returned {type(bad[0]).__name__}, not Registration")
        except Exception as err:
            errors.append(EntryPointError(ep.name, ep.value, f"{type(err).__name__}: {err}"))
            continue
        found.extend(dataclasses.replace(r, origin=f"entrypoint {ep.name}") for r in items)
    return found, errors
