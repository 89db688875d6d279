"""contentd's TOML configuration (containerd's version-2 shape; see :mod:`.model`)."""

from contentd.config.decode import ConfigError, decode, key_path
from contentd.config.load import default_config, from_table, load, parse
from contentd.config.model import (
    DEFAULT_ADDRESS,
    DEFAULT_CONFIG_PATH,
    DEFAULT_HEADERLESS_NAMESPACE,
    DEFAULT_MAX_MESSAGE_SIZE,
    DEFAULT_ROOT,
    DEFAULT_STATE,
    PROXY_CONTENT_TYPES,
    Config,
    DebugConfig,
    GRPCConfig,
    HeaderlessListener,
    ProxyPlugin,
)
from contentd.config.render import render, to_table

__all__ = [
    "DEFAULT_ADDRESS",
    "DEFAULT_CONFIG_PATH",
    "DEFAULT_HEADERLESS_NAMESPACE",
    "DEFAULT_MAX_MESSAGE_SIZE",
    "DEFAULT_ROOT",
    "DEFAULT_STATE",
    "PROXY_CONTENT_TYPES",
    "Config",
    "ConfigError",
    "DebugConfig",
    "GRPCConfig",
    "HeaderlessListener",
    "ProxyPlugin",
    "decode",
    "default_config",
    "from_table",
    "key_path",
    "load",
    "parse",
    "render",
    "to_table",
]
