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
import os
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from contentd.plugins.registry import Registration

if TYPE_CHECKING:
    from importlib import metadata

__all__ = ["ENTRY_POINT_GROUP", "EntryPointError", "discover"]

ENTRY_POINT_GROUP: Final = "contentd.plugins"


@dataclass(frozen=True)
class EntryPointError:
    """An entry point that gave no registrations: its name, value and the problem."""

    name: str
    value: str
    error: str


def _may_declare_plugins(paths: Iterable[str]) -> bool:
    """False only when no installed distribution on ``paths`` can declare the group.

    ``importlib.metadata`` alone takes tens of milliseconds to import here; most
    daemons have no third-party plugins, so first look for the group's header in
    the ``entry_points.txt`` files on disk. Anything unusual (a zip on the path,
    an unreadable directory) answers True and takes the full route.
    """
    header = f"[{ENTRY_POINT_GROUP}]".encode()
    for entry in paths:
        directory = entry or "."
        if os.path.isfile(directory):
            return True  # a zip archive: let importlib.metadata look inside
        try:
            names = os.listdir(directory)
        except FileNotFoundError:
            continue
        except OSError:
            return True
        for name in names:
            if not name.endswith((".dist-info", ".egg-info")):
                continue
            try:
                with open(os.path.join(directory, name, "entry_points.txt"), "rb") as f:
                    if header in f.read():
                        return True
            except FileNotFoundError:
                continue
            except OSError:
                return True
    return False


def discover(
    entry_points: Iterable[metadata.EntryPoint] | None = None,
) -> tuple[list[Registration], list[EntryPointError]]:
    """Registrations from every ``contentd.plugins`` entry point, and the failures."""
    if entry_points is None:
        if not _may_declare_plugins(sys.path):
            return [], []
        from importlib import metadata

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
