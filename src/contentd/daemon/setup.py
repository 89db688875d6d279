"""The effective configuration: file (or defaults), plugins, command-line overrides.

Used by ``contentd serve`` and ``contentd config default|dump``:

1. the config file (``--config``, else ``/etc/contentd/config.toml`` if it
   exists, else the defaults);
2. the plugin registry (built-ins, the file's proxy plugins, entry points);
3. a version-1 file normalised to version 2 (ids → URIs);
4. command-line overrides (``--root``, ``--state``, ``--address``,
   ``--content-sharing-policy``, ``--log-level``), which win over the file;
5. every enabled plugin's ``[plugins."<uri>"]`` table decoded into its typed
   config (errors name the key).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from contentd.config import DEFAULT_CONFIG_PATH, Config, ConfigError, default_config, load
from contentd.config.render import render, to_table
from contentd.plugins import types
from contentd.plugins.builtin.storage import METADATA_ID
from contentd.plugins.loader import build_registry, decode_plugin_configs, normalize
from contentd.plugins.registry import Registration, Registry, uri_filter

__all__ = ["Effective", "Overrides", "prepare", "render_effective"]

METADATA_URI = f"{types.METADATA}.{METADATA_ID}"


@dataclass(frozen=True)
class Overrides:
    """Command-line settings that win over the config file (None: not given)."""

    root: str | None = None
    state: str | None = None
    address: str | None = None
    content_sharing_policy: str | None = None
    log_level: str | None = None


@dataclass
class Effective:
    config: Config
    registry: Registry
    plugin_configs: dict[str, object]
    #: where the config came from ("" for the built-in defaults)
    source: str = ""
    warnings: list[str] = field(default_factory=list)


def prepare(
    config_path: str | None = None,
    overrides: Overrides | None = None,
    *,
    use_default_path: bool = True,
    entry_points: bool = True,
    extra: Iterable[Registration] = (),
) -> Effective:
    """The effective config (see the module doc). ConfigError / OSError if unusable.

    ``extra`` registrations are added after the built-ins (tests, embedding).
    """
    warnings: list[str] = []
    source = ""
    if config_path is not None:
        config = load(config_path, warnings)
        source = config_path
    elif use_default_path and os.path.exists(DEFAULT_CONFIG_PATH):
        config = load(DEFAULT_CONFIG_PATH, warnings)
        source = DEFAULT_CONFIG_PATH
    else:
        config = default_config()
    registry = build_registry(config, entry_points=entry_points, extra=extra, warnings=warnings)
    config = normalize(config, registry, warnings)
    config = apply_overrides(config, overrides or Overrides())
    enabled = registry.graph(uri_filter(config.disabled_plugins))
    plugin_configs = decode_plugin_configs(config, enabled, warnings)
    return Effective(config, registry, plugin_configs, source, warnings)


def apply_overrides(config: Config, overrides: Overrides) -> Config:
    """``config`` (version 2) with the given overrides applied."""
    changes: dict[str, Any] = {}
    if overrides.root is not None:
        changes["root"] = os.path.abspath(overrides.root)
    if overrides.state is not None:
        changes["state"] = os.path.abspath(overrides.state)
    grpc = config.grpc
    if overrides.address is not None:
        grpc = dataclasses.replace(grpc, address=overrides.address)
    debug = config.debug
    if overrides.log_level is not None:
        debug = dataclasses.replace(debug, level=overrides.log_level)
        try:
            debug.validate()
        except ConfigError as err:
            raise ConfigError(f"--log-level: {err.context}") from None
    plugins = {uri: dict(table) for uri, table in config.plugins.items()}
    if overrides.content_sharing_policy is not None:
        plugins.setdefault(METADATA_URI, {})["content_sharing_policy"] = (
            overrides.content_sharing_policy
        )
    return dataclasses.replace(config, grpc=grpc, debug=debug, plugins=plugins, **changes)


def render_effective(effective: Effective) -> str:
    """The effective config as TOML, every enabled plugin's config spelled out."""
    table = to_table(effective.config)
    table["version"] = 2
    table["plugins"] = {uri: to_table(cfg) for uri, cfg in effective.plugin_configs.items()}
    return render(table)
