"""The ``containerd.services.introspection.v1.Introspection`` gRPC service.

**Plugins** lists every plugin the daemon tried to load, in initialisation
order, failed ones included: type, id, the types it requires, its exports and
capabilities, no platforms, and ``init_err`` (a ``google.rpc.Status`` with the
code and message api/errors.py gives the init error) when its init failed.
Filters (containerd's syntax) see ``type``, ``id`` and contentd's extra
``exports.<key>``.

**Server** returns the daemon's UUID, created at random on first use and kept
in ``<root>/uuid`` (the introspection plugin's own root directory), so it
stays the same across restarts.
"""

from __future__ import annotations

import logging
import os
import threading
import uuid
from collections.abc import Sequence
from typing import Final, NoReturn

import grpc
from google.protobuf import empty_pb2

from contentd import filters as filtering
from contentd.api._pb.containerd.services.introspection.v1 import introspection_pb2 as pb
from contentd.api._pb.containerd.services.introspection.v1 import (
    introspection_pb2_grpc as pb_grpc,
)
from contentd.api.calls import fail
from contentd.api.errors import to_grpc
from contentd.plugins.context import Plugin, PluginSet

__all__ = ["SERVICE_NAME", "UUID_FILE", "IntrospectionService", "plugin_to_pb"]

log = logging.getLogger(__name__)

SERVICE_NAME: Final = "containerd.services.introspection.v1.Introspection"
UUID_FILE: Final = "uuid"


def plugin_to_pb(plugin: Plugin) -> pb.Plugin:
    msg = pb.Plugin(
        type=plugin.type,
        id=plugin.id,
        requires=list(plugin.registration.requires),
        exports=dict(plugin.meta.exports),
        capabilities=list(plugin.meta.capabilities),
    )
    for os_name, arch, variant in plugin.meta.platforms:
        msg.platforms.add(os=os_name, architecture=arch, variant=variant)
    if plugin.error is not None:
        code, message = to_grpc(plugin.error)
        msg.init_err.code = code.value[0]
        msg.init_err.message = message
    return msg


def _plugin_field(msg: pb.Plugin, path: Sequence[str]) -> tuple[str, bool]:
    if not path:
        return "", False
    head = path[0]
    if head == "type":
        return msg.type, bool(msg.type)
    if head == "id":
        return msg.id, bool(msg.id)
    if head == "exports" and len(path) > 1:
        key = ".".join(path[1:])
        if key in msg.exports:
            return msg.exports[key], True
    return "", False


def _adaptor(msg: pb.Plugin) -> filtering.Adaptor:
    def field(path: Sequence[str]) -> tuple[str, bool]:
        return _plugin_field(msg, path)

    return filtering.adapt_fn(field)


class IntrospectionService(pb_grpc.IntrospectionServicer):
    SERVICE_NAME = SERVICE_NAME

    def __init__(self, plugins: PluginSet, root: str) -> None:
        self.plugins = plugins
        self.root = root
        self._uuid: str | None = None
        self._lock = threading.Lock()

    def register(self, server: grpc.Server) -> None:
        pb_grpc.add_IntrospectionServicer_to_server(self, server)

    def Plugins(
        self, request: pb.PluginsRequest, context: grpc.ServicerContext
    ) -> pb.PluginsResponse:
        try:
            match = filtering.parse_all(request.filters)
        except Exception as err:
            _fail(context, err, "Plugins")
        response = pb.PluginsResponse()
        for plugin in self.plugins:
            msg = plugin_to_pb(plugin)
            if match.match(_adaptor(msg)):
                response.plugins.append(msg)
        return response

    def Server(self, request: empty_pb2.Empty, context: grpc.ServicerContext) -> pb.ServerResponse:
        try:
            return pb.ServerResponse(uuid=self.server_uuid())
        except Exception as err:
            _fail(context, err, "Server")

    def server_uuid(self) -> str:
        """The persistent UUID (created on first use)."""
        with self._lock:
            if self._uuid is None:
                self._uuid = _load_or_create_uuid(os.path.join(self.root, UUID_FILE))
            return self._uuid


def _load_or_create_uuid(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read().strip()
        return str(uuid.UUID(text))
    except FileNotFoundError:
        pass
    value = str(uuid.uuid4())
    os.makedirs(os.path.dirname(path), 0o700, exist_ok=True)
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(value)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return value


def _fail(context: grpc.ServicerContext, err: Exception, method: str) -> NoReturn:
    fail(context, err, f"Introspection/{method}", log)
