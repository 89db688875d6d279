"""From a config to initialised plugins (containerd's ``LoadPlugins`` and ``server.New``).

1. :func:`build_registry`: the built-in registrations, the proxy plugins of
   the config, and third-party ones from entry points.
2. :func:`normalize`: a version-1 config (plugin *ids*) becomes version 2
   (plugin URIs); entries that match no plugin are reported.
3. :func:`decode_plugin_configs`: each ``[plugins."<uri>"]`` table decoded
   over its plugin's default config (errors name the key).
4. :func:`load_plugins`: the enabled plugins, initialised in dependency
   order. A failed init is recorded on its :class:`Plugin` and logged; it is
   fatal only for a plugin listed in ``required_plugins`` (as is a required
   plugin that never loaded, e.g. because it is disabled).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from contentd.config.decode import ConfigError, decode
from contentd.content.errors import FailedPrecondition
from contentd.plugins.context import InitContext, Plugin, PluginSet
from contentd.plugins.registry import Registration, Registry, SkipPlugin, uri_filter

if TYPE_CHECKING:
    from contentd.config import Config

__all__ = [
    "LoadedPlugins",
    "PluginLoadError",
    "build_registry",
    "close_plugins",
    "decode_plugin_configs",
    "load_plugins",
    "normalize",
]

log = logging.getLogger("contentd.plugins")


class PluginLoadError(FailedPrecondition):
    """A required plugin failed or is missing; ``plugins`` holds what did load (to close)."""

    def __init__(self, context: str, plugins: PluginSet | None = None) -> None:
        super().__init__(context)
        self.plugins = plugins if plugins is not None else PluginSet()


@dataclass
class LoadedPlugins:
    plugins: PluginSet
    #: instances of successfully initialised plugins with ``register(server)``, in order
    services: list[object] = field(default_factory=list)


def build_registry(
    config: Config,
    *,
    entry_points: bool = True,
    extra: Iterable[Registration] = (),
    warnings: list[str] | None = None,
) -> Registry:
    """Built-ins, the config's proxy plugins, ``extra``, then entry-point plugins."""
    from contentd.plugins.builtin import builtin_registrations

    registry = Registry(builtin_registrations(config))
    for registration in extra:
        registry.register(registration)
    if entry_points:
        from contentd.plugins.entrypoints import discover

        found, errors = discover()
        for problem in errors:
            if warnings is not None:
                warnings.append(
                    f"entry point {problem.name} ({problem.value}) gave no plugins: {problem.error}"
                )
        for registration in found:
            try:
                registry.register(registration)
            except Exception as err:
                if warnings is not None:
                    warnings.append(f"{registration.origin}: not registered: {err}")
    return registry


def normalize(config: Config, registry: Registry, warnings: list[str] | None = None) -> Config:
    """A version-2 copy of ``config``: ids become URIs (version 1); unknown names reported."""
    registrations = list(registry)
    uris = {r.uri for r in registrations}

    def note(message: str) -> None:
        if warnings is not None:
            warnings.append(message)

    if config.version >= 2:
        for entry in config.disabled_plugins:
            if entry not in uris:
                note(f"disabled_plugins: no plugin {entry!r} is registered")
        for key in config.plugins:
            if key not in uris:
                note(f"plugins: no plugin {key!r} is registered; its table is ignored")
        return config

    def by_id(entries: Sequence[str], what: str, keep_unknown: bool) -> list[str]:
        out: list[str] = []
        for entry in entries:
            matched = [r.uri for r in registrations if r.id == entry]
            if not matched:
                note(
                    f"{what}: no plugin has id {entry!r} (config version 1 lists ids;"
                    " set version = 2 to list URIs)"
                )
                if keep_unknown:
                    out.append(entry)
            out.extend(u for u in matched if u not in out)
        return out

    tables: dict[str, dict[str, object]] = {}
    for key, table in config.plugins.items():
        matched = [r.uri for r in registrations if r.id == key]
        if not matched:
            note(f"plugins: no plugin has id {key!r}; its table is ignored")
        for uri in matched:
            tables[uri] = dict(table)
    return dataclasses.replace(
        config,
        version=2,
        disabled_plugins=by_id(config.disabled_plugins, "disabled_plugins", False),
        required_plugins=by_id(config.required_plugins, "required_plugins", True),
        plugins=tables,
    )


def decode_plugin_configs(
    config: Config, registrations: Iterable[Registration], warnings: list[str] | None = None
) -> dict[str, object]:
    """``{uri: config}`` for every registration that has a config (ConfigError if bad)."""
    out: dict[str, object] = {}
    for registration in registrations:
        if registration.config is None:
            if config.plugins.get(registration.uri):
                key = next(iter(config.plugins[registration.uri]))
                raise ConfigError(f'plugins."{registration.uri}".{key}: unknown key')
            continue
        table = config.plugins.get(registration.uri, {})
        out[registration.uri] = decode(
            registration.config, table, f'plugins."{registration.uri}"', warnings
        )
    return out


def load_plugins(
    config: Config,
    registry: Registry,
    plugin_configs: dict[str, object] | None = None,
) -> LoadedPlugins:
    """Initialise the enabled plugins of ``registry`` (``config`` must be version 2)."""
    if plugin_configs is None:
        plugin_configs = decode_plugin_configs(config, registry)
    plugins = PluginSet()
    loaded = LoadedPlugins(plugins)
    required = set(config.required_plugins)
    for registration in registry.graph(uri_filter(config.disabled_plugins)):
        uri = registration.uri
        log.info('loading plugin "%s"...', uri, extra={"fields": {"type": registration.type}})
        ic = InitContext(
            registration,
            plugins,
            root=config.root,
            state=config.state,
            config=plugin_configs.get(uri, registration.config),
            address=config.grpc.address,
            server_config=config,
        )
        instance: object | None = None
        error: BaseException | None = None
        try:
            instance = registration.init(ic)
        except Exception as err:
            error = err
        plugins.add(Plugin(registration, ic.config, ic.meta, instance, error))
        if error is not None:
            fields = {"type": registration.type, "error": str(error)}
            if isinstance(error, SkipPlugin):
                log.info('skip loading plugin "%s"...', uri, extra={"fields": fields})
            else:
                log.warning("failed to load plugin %s", uri, extra={"fields": fields})
            if uri in required:
                raise PluginLoadError(f"load required plugin {uri}: {error}", plugins)
            continue
        required.discard(uri)
        if callable(getattr(instance, "register", None)):
            loaded.services.append(instance)
    if required:
        raise PluginLoadError(f"required plugin {sorted(required)} not included", plugins)
    return loaded


def close_plugins(plugins: PluginSet) -> list[tuple[str, BaseException]]:
    """Close (``close()``, else ``stop()``) every initialised instance, last first.

    Returns the errors, which are logged, not raised.
    """
    errors: list[tuple[str, BaseException]] = []
    for plugin in reversed(plugins.all()):
        if not plugin.ok or plugin.instance is None:
            continue
        closer = getattr(plugin.instance, "close", None) or getattr(plugin.instance, "stop", None)
        if not callable(closer):
            continue
        try:
            closer()
        except Exception as err:
            log.warning("closing plugin %s failed: %s", plugin.uri, err)
            errors.append((plugin.uri, err))
    return errors
