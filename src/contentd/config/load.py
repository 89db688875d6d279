"""Reading a config file: TOML → :class:`~contentd.config.model.Config`.

A file without ``version`` is version 1, as in containerd: its
``disabled_plugins``, ``required_plugins`` and ``[plugins.<key>]`` name
plugin *ids*. contentd accepts it and turns ids into URIs once the plugins
are known (:func:`contentd.plugins.loader.normalize`).
"""

from __future__ import annotations

import os
import tomllib
from typing import Any

from contentd.config.decode import ConfigError, decode
from contentd.config.model import Config

__all__ = ["default_config", "load", "parse"]


def default_config() -> Config:
    """The built-in defaults (version 2)."""
    return Config()


def parse(text: str, source: str = "<config>", warnings: list[str] | None = None) -> Config:
    """A Config from TOML text; ConfigError naming the key for anything wrong."""
    try:
        table: dict[str, Any] = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{source}: invalid TOML: {err}") from None
    return from_table(table, source, warnings)


def from_table(
    table: dict[str, Any], source: str = "<config>", warnings: list[str] | None = None
) -> Config:
    table = dict(table)
    if "version" not in table:
        table["version"] = 1
    try:
        config = decode(Config(), table, "", warnings)
    except ConfigError as err:
        raise ConfigError(f"{source}: {err.context}") from None
    return config


def load(path: str | os.PathLike[str], warnings: list[str] | None = None) -> Config:
    """Read and parse the config file at ``path`` (OSError if it cannot be read)."""
    name = os.fspath(path)
    with open(name, "rb") as f:
        data = f.read()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ConfigError(f"{name}: not UTF-8: {err}") from None
    return parse(text, name, warnings)
