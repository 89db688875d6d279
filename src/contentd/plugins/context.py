"""What a plugin sees while it is built, and the set of plugins built so far.

:class:`InitContext` gives a plugin its directories (``root = <root>/<uri>``,
``state = <state>/<uri>``), its decoded config, the daemon's address, a place
to export values and capabilities (shown by ``ctr plugins ls -d``), and
lookups of the plugins initialised before it.

Lookups are deterministic (containerd's ``Get`` returns an arbitrary plugin of
the type, from a Go map): :meth:`PluginSet.get` returns the *first* plugin of
the type, in initialisation order, whose init succeeded; if every plugin of
the type failed, it raises the first one's error; with none, NotFound.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from contentd.content.errors import AlreadyExists, NotFound
from contentd.plugins.registry import Registration

if TYPE_CHECKING:
    from contentd.config import Config

__all__ = ["InitContext", "Meta", "Plugin", "PluginSet"]


@dataclass
class Meta:
    """What a plugin declares about itself at init (containerd's ``plugin.Meta``)."""

    exports: dict[str, str] = field(default_factory=dict)
    capabilities: list[str] = field(default_factory=list)
    #: OCI platforms as ``(os, architecture, variant)``; contentd's plugins have none.
    platforms: list[tuple[str, str, str]] = field(default_factory=list)


@dataclass
class Plugin:
    """An initialised plugin: its instance, or the error its init raised."""

    registration: Registration
    config: object | None
    meta: Meta
    instance: object | None = None
    error: BaseException | None = None

    @property
    def uri(self) -> str:
        return self.registration.uri

    @property
    def type(self) -> str:
        return self.registration.type

    @property
    def id(self) -> str:
        return self.registration.id

    @property
    def ok(self) -> bool:
        return self.error is None

    def result(self) -> object:
        """The instance; raises the init error if init failed."""
        if self.error is not None:
            raise self.error
        return self.instance


class PluginSet:
    """Initialised plugins in initialisation order, indexed by type and id."""

    def __init__(self) -> None:
        self._ordered: list[Plugin] = []
        self._by_type: dict[str, dict[str, Plugin]] = {}

    def add(self, plugin: Plugin) -> None:
        by_id = self._by_type.setdefault(plugin.type, {})
        if plugin.id in by_id:
            raise AlreadyExists(f"plugin {plugin.uri} already initialized")
        by_id[plugin.id] = plugin
        self._ordered.append(plugin)

    def __iter__(self) -> Iterator[Plugin]:
        return iter(list(self._ordered))

    def __len__(self) -> int:
        return len(self._ordered)

    def all(self) -> list[Plugin]:
        return list(self._ordered)

    def get(self, type: str) -> object:
        """The first successfully initialised plugin of ``type`` (see the module doc)."""
        plugins = self._by_type.get(type)
        if not plugins:
            raise NotFound(f"no plugins registered for {type}")
        for plugin in plugins.values():
            if plugin.ok:
                return plugin.instance
        return next(iter(plugins.values())).result()

    def get_by_type(self, type: str) -> dict[str, Plugin]:
        """``{id: plugin}`` of every plugin of ``type`` (failed ones included), in order."""
        plugins = self._by_type.get(type)
        if not plugins:
            raise NotFound(f"no plugins registered for {type}")
        return dict(plugins)

    def get_by_id(self, type: str, id: str) -> object:
        """The instance of ``<type>.<id>``; its init error if it failed; NotFound if absent."""
        plugin = self.get_by_type(type).get(id)
        if plugin is None:
            raise NotFound(f"no {type} plugins with id {id}")
        return plugin.result()

    def find(self, uri: str) -> Plugin | None:
        for plugin in self._ordered:
            if plugin.uri == uri:
                return plugin
        return None


class InitContext:
    """Handed to a registration's ``init``."""

    def __init__(
        self,
        registration: Registration,
        plugins: PluginSet,
        *,
        root: str,
        state: str,
        config: object | None = None,
        address: str = "",
        server_config: Config | None = None,
    ) -> None:
        self.registration = registration
        self.root = os.path.join(root, registration.uri)
        self.state = os.path.join(state, registration.uri)
        self.config = config
        self.address = address
        #: the daemon's whole (effective) configuration, when run by the daemon
        self.server_config = server_config
        self.meta = Meta()
        self.plugins = plugins

    @property
    def exports(self) -> dict[str, str]:
        """Values shown by introspection (``ctr plugins ls -d``); plugins fill it in."""
        return self.meta.exports

    @property
    def capabilities(self) -> list[str]:
        return self.meta.capabilities

    def get(self, type: str) -> object:
        return self.plugins.get(type)

    def get_by_type(self, type: str) -> dict[str, Plugin]:
        return self.plugins.get_by_type(type)

    def get_by_id(self, type: str, id: str) -> object:
        return self.plugins.get_by_id(type, id)

    def get_all(self) -> list[Plugin]:
        return self.plugins.all()
