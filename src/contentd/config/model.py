"""contentd's configuration, in containerd's version-2 shape.

::

    version = 2
    root = "/var/lib/contentd"
    state = "/run/contentd"
    disabled_plugins = []
    required_plugins = []

    [grpc]
      address = "/run/contentd/contentd.sock"
      uid = 0
      gid = 0
      max_recv_message_size = 16777216
      max_send_message_size = 16777216
      headerless_namespace = "containerd-proxy"
      engine = "contentd"                  # or "grpcio"

    [debug]
      level = "info"
      format = "text"

    [proxy_plugins.mystore]
      type = "content"
      address = "/run/mystore.sock"

    [headerless_listeners.node-a]          # one socket per containerd tenant
      address = "/run/contentd/node-a.sock"
      namespace = "node-a"

    [plugins."io.containerd.metadata.v1.sqlite"]
      content_sharing_policy = "shared"

``[plugins."<uri>"]`` tables stay raw here; each is decoded into its plugin's
typed config when the plugins are known (:mod:`contentd.plugins.loader`).
Settings containerd has and contentd does not use (``oom_score``,
``[metrics]``, ``[ttrpc]``, ...) are accepted and reported as ignored.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Final

from contentd.config.decode import ConfigError, key_path
from contentd.content.errors import InvalidArgument

__all__ = [
    "DEFAULT_ADDRESS",
    "DEFAULT_CONFIG_PATH",
    "DEFAULT_GRPC_ENGINE",
    "DEFAULT_HEADERLESS_NAMESPACE",
    "DEFAULT_MAX_CONCURRENT_STREAMS",
    "DEFAULT_MAX_MESSAGE_SIZE",
    "DEFAULT_ROOT",
    "DEFAULT_STATE",
    "GRPC_ENGINES",
    "LOG_FORMATS",
    "LOG_LEVELS",
    "PROXY_CONTENT_TYPES",
    "Config",
    "DebugConfig",
    "GRPCConfig",
    "HeaderlessListener",
    "ProxyPlugin",
]

DEFAULT_ROOT: Final = "/var/lib/contentd"
DEFAULT_STATE: Final = "/run/contentd"
DEFAULT_ADDRESS: Final = "/run/contentd/contentd.sock"
#: Read by ``contentd serve`` when no ``--config`` is given and the file exists.
DEFAULT_CONFIG_PATH: Final = "/etc/contentd/config.toml"
DEFAULT_MAX_MESSAGE_SIZE: Final = 16 << 20
#: Streams (calls) one connection may have open at once (SETTINGS_MAX_CONCURRENT_STREAMS).
DEFAULT_MAX_CONCURRENT_STREAMS: Final = 250
#: Where calls without a ``containerd-namespace`` header (containerd's proxy plugin) land.
DEFAULT_HEADERLESS_NAMESPACE: Final = "containerd-proxy"
#: ``[grpc] engine`` values: contentd's own HTTP/2 server (contentd.wire) or grpcio's.
GRPC_ENGINES: Final = ("contentd", "grpcio")
DEFAULT_GRPC_ENGINE: Final = "contentd"
#: ``[proxy_plugins.<name>] type`` values that make a content proxy.
PROXY_CONTENT_TYPES: Final = ("content", "io.containerd.content.v1")
_PROXY_SNAPSHOT_TYPES: Final = ("snapshot", "io.containerd.snapshotter.v1")
#: Accepted ``[debug] level`` values (logrus' names; ``trace`` is logged as debug).
LOG_LEVELS: Final = ("trace", "debug", "info", "warn", "warning", "error", "fatal", "panic")
LOG_FORMATS: Final = ("text", "json")


@dataclass
class GRPCConfig:
    """``[grpc]``: the daemon's listener.

    ``uid``/``gid``: owner and group the socket is given after it is created;
    0 leaves that part unchanged. ``headerless_namespace``: the namespace of
    calls that carry no ``containerd-namespace`` header; ``""`` refuses them
    as containerd does (FailedPrecondition ``namespace is required``).
    ``engine``: the gRPC server serving every socket: ``contentd`` (the native
    HTTP/2 engine, :mod:`contentd.wire`: cheap calls answered on the connection's
    reader thread) or ``grpcio`` (grpcio's synchronous server).
    ``max_concurrent_streams``: calls one connection may have open at once,
    advertised to clients and enforced (more are refused with REFUSED_STREAM).
    """

    IGNORED_KEYS: ClassVar[frozenset[str]] = frozenset(
        {"tcp_address", "tcp_tls_ca", "tcp_tls_cert", "tcp_tls_key"}
    )

    address: str = DEFAULT_ADDRESS
    uid: int = 0
    gid: int = 0
    max_recv_message_size: int = DEFAULT_MAX_MESSAGE_SIZE
    max_send_message_size: int = DEFAULT_MAX_MESSAGE_SIZE
    headerless_namespace: str = DEFAULT_HEADERLESS_NAMESPACE
    engine: str = DEFAULT_GRPC_ENGINE
    max_concurrent_streams: int = DEFAULT_MAX_CONCURRENT_STREAMS

    def validate(self) -> None:
        if self.engine not in GRPC_ENGINES:
            raise ConfigError(
                f"grpc.engine: unknown engine {self.engine!r} (want {' or '.join(GRPC_ENGINES)})"
            )
        if not self.address:
            raise ConfigError("grpc.address: must not be empty")
        for name in ("uid", "gid"):
            if getattr(self, name) < 0:
                raise ConfigError(f"grpc.{name}: must not be negative")
        for name in ("max_recv_message_size", "max_send_message_size"):
            if getattr(self, name) < 0:
                raise ConfigError(f"grpc.{name}: must not be negative")
        if self.max_concurrent_streams < 1:
            raise ConfigError("grpc.max_concurrent_streams: must be at least 1")
        if self.headerless_namespace:
            from contentd.metadata import identifiers

            try:
                identifiers.validate(self.headerless_namespace)
            except InvalidArgument as err:
                raise ConfigError(f"grpc.headerless_namespace: {err.context}") from None


@dataclass
class DebugConfig:
    """``[debug]``: logging (to stderr)."""

    IGNORED_KEYS: ClassVar[frozenset[str]] = frozenset({"address", "uid", "gid"})

    level: str = "info"
    #: ``text`` (containerd's logfmt-style lines) or ``json``
    format: str = "text"

    def validate(self) -> None:
        if self.level.lower() not in LOG_LEVELS:
            raise ConfigError(
                f"debug.level: unknown level {self.level!r} (want one of {', '.join(LOG_LEVELS)})"
            )
        if self.format and self.format not in LOG_FORMATS:
            raise ConfigError(f"debug.format: unknown format {self.format!r} (want text or json)")


@dataclass
class ProxyPlugin:
    """``[proxy_plugins.<name>]``: another Content service used as a content plugin."""

    type: str = ""
    address: str = ""


@dataclass
class HeaderlessListener:
    """``[headerless_listeners.<name>]``: an extra socket serving one namespace's content.

    For several containerds sharing one contentd: each points its proxy plugin at its own
    socket, whose header-less calls are pinned to ``namespace`` (default: the name), so
    no containerd can see or delete another's records. The socket serves the Content
    and Health services only, and refuses calls that name another namespace.
    """

    address: str = ""
    namespace: str = ""
    uid: int = 0
    gid: int = 0


@dataclass
class Config:
    """The whole configuration. ``version`` 1 lists plugin ids where 2 lists URIs."""

    IGNORED_KEYS: ClassVar[frozenset[str]] = frozenset(
        {
            "temp",
            "plugin_dir",
            "ttrpc",
            "metrics",
            "oom_score",
            "cgroup",
            "timeouts",
            "imports",
            "stream_processors",
        }
    )

    version: int = 2
    root: str = DEFAULT_ROOT
    state: str = DEFAULT_STATE
    disabled_plugins: list[str] = field(default_factory=list)
    required_plugins: list[str] = field(default_factory=list)
    grpc: GRPCConfig = field(default_factory=GRPCConfig)
    debug: DebugConfig = field(default_factory=DebugConfig)
    proxy_plugins: dict[str, ProxyPlugin] = field(default_factory=dict)
    headerless_listeners: dict[str, HeaderlessListener] = field(default_factory=dict)
    plugins: dict[str, dict[str, Any]] = field(default_factory=dict)

    def validate(self) -> None:
        if self.version not in (1, 2):
            raise ConfigError(f"version: unsupported config version {self.version} (want 1 or 2)")
        if not self.root:
            raise ConfigError("root: must not be empty")
        if not self.state:
            raise ConfigError("state: must not be empty")
        if self.version == 2:
            for key, entries in (
                ("disabled_plugins", self.disabled_plugins),
                ("required_plugins", self.required_plugins),
                ("plugins", list(self.plugins)),
            ):
                for entry in entries:
                    if len(entry.split(".")) < 4:
                        what = "plugin key" if key == "plugins" else key.replace("_", " ")[:-1]
                        raise ConfigError(
                            f"{key}: invalid {what} URI {entry!r}, expect io.containerd.x.vx.<id>"
                        )
        for name, proxy in self.proxy_plugins.items():
            where = key_path("proxy_plugins", name)
            if proxy.type in _PROXY_SNAPSHOT_TYPES:
                raise ConfigError(
                    f"{where}.type: snapshot proxies are not supported by contentd"
                    " (only content stores)"
                )
            if proxy.type not in PROXY_CONTENT_TYPES:
                raise ConfigError(
                    f"{where}.type: unknown proxy plugin type {proxy.type!r}"
                    f" (want {' or '.join(repr(t) for t in PROXY_CONTENT_TYPES)})"
                )
            if not proxy.address:
                raise ConfigError(f"{where}.address: must not be empty")
            if not name or "." in name or "/" in name:
                raise ConfigError(f"{where}: invalid proxy plugin name {name!r}")
            if name == "content":
                raise ConfigError(
                    f"{where}: the name 'content' is taken by the local content store"
                )

        from contentd.metadata import identifiers

        addresses = {self.grpc.address}
        for name, listener in self.headerless_listeners.items():
            where = key_path("headerless_listeners", name)
            if not listener.address:
                raise ConfigError(f"{where}.address: must not be empty")
            if listener.address in addresses:
                raise ConfigError(f"{where}.address: {listener.address!r} is already in use")
            addresses.add(listener.address)
            try:
                identifiers.validate(listener.namespace or name)
            except InvalidArgument as err:
                key = "namespace" if listener.namespace else "(name)"
                raise ConfigError(f"{where}.{key}: {err.context}") from None
            if listener.uid < 0 or listener.gid < 0:
                raise ConfigError(f"{where}: uid and gid must not be negative")

    def listener_namespace(self, name: str) -> str:
        """The namespace a ``[headerless_listeners.<name>]`` socket serves."""
        return self.headerless_listeners[name].namespace or name

    def plugin_key(self, uri: str, id: str) -> str:
        """The ``[plugins.<key>]`` key of a plugin: its URI (version 2) or its id (1)."""
        return uri if self.version >= 2 else id
