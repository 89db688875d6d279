"""The contentd daemon: plugins loaded from config, their gRPC services on a unix socket.

:class:`Daemon` does what containerd's ``server.New`` and ``ServeGRPC`` do,
plus the process-level care of ``contentd serve``:

* one daemon per root (an flock on ``<root>/contentd.lock``; a second one is
  refused with a message naming the holder's pid);
* a stale socket at the address is replaced, a live one refused; the socket
  gets mode 0660 and, if configured, ``[grpc] uid``/``gid``;
* grpcio's synchronous server on a thread pool with the configured message
  limits (16 MiB by default);
* :meth:`Daemon.stop`: health goes NOT_SERVING, event and health streams end,
  the server stops accepting and gives in-flight calls ``grace`` seconds, then
  cancels the rest. A cancelled Write stream closes its writer, so an ingest
  open at shutdown stays on disk and resumes at its offset after restart.
  Then the plugins are closed, last loaded first (GC scheduler stopped,
  database closed), the socket removed and the root lock released.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from concurrent import futures
from typing import Final

import grpc

from contentd.config import DEFAULT_MAX_MESSAGE_SIZE, Config
from contentd.daemon.listener import finish_socket, prepare_socket, remove_socket, socket_path
from contentd.daemon.lock import RootLock
from contentd.plugins import types
from contentd.plugins.context import PluginSet
from contentd.plugins.loader import PluginLoadError, close_plugins, load_plugins
from contentd.plugins.registry import Registry

__all__ = ["DEFAULT_GRACE", "Daemon", "process_age"]

log = logging.getLogger("contentd")

#: Seconds in-flight calls get to finish at shutdown before they are cancelled.
DEFAULT_GRACE: Final = 2.0
#: Worker threads: every open stream (a Write, a Subscribe) holds one while it lasts.
DEFAULT_MAX_WORKERS: Final = 128
_CONTENT_SERVICE: Final = "containerd.services.content.v1.Content"


def process_age() -> float | None:
    """Seconds since this process started (Linux ``/proc``), or None."""
    try:
        with open("/proc/self/stat", "rb") as f:
            stat = f.read()
        with open("/proc/uptime", "rb") as f:
            uptime = float(f.read().split()[0])
        fields = stat[stat.rindex(b")") + 2 :].split()
        ticks = os.sysconf("SC_CLK_TCK")
        return max(0.0, uptime - int(fields[19]) / ticks)
    except (OSError, ValueError, IndexError):
        return None


def _service_name(service: object) -> str | None:
    name = getattr(type(service), "SERVICE_NAME", None)
    if isinstance(name, str):
        return name
    from contentd.api.content import ContentService

    return _CONTENT_SERVICE if isinstance(service, ContentService) else None


class Daemon:
    """One contentd server. ``start()``, then ``stop()`` (both from the same thread)."""

    def __init__(
        self,
        config: Config,
        registry: Registry,
        plugin_configs: dict[str, object] | None = None,
        *,
        grace: float = DEFAULT_GRACE,
        max_workers: int = DEFAULT_MAX_WORKERS,
    ) -> None:
        self.config = config
        self.registry = registry
        self.plugin_configs = plugin_configs
        self.grace = grace
        self.max_workers = max_workers
        self.socket = socket_path(config.grpc.address)
        self.plugins = PluginSet()
        self.services: list[object] = []
        self._lock = RootLock(config.root)
        self._server: grpc.Server | None = None
        self._executor: futures.ThreadPoolExecutor | None = None
        self._started = False
        self._stopped = False

    @property
    def address(self) -> str:
        """The gRPC target of the daemon (``unix:<path>``)."""
        return f"unix:{self.socket}"

    def start(self) -> None:
        t0 = time.monotonic()
        config = self.config
        os.makedirs(config.root, 0o700, exist_ok=True)
        os.makedirs(config.state, 0o711, exist_ok=True)
        self._lock.acquire()
        try:
            prepare_socket(self.socket)
            try:
                loaded = load_plugins(config, self.registry, self.plugin_configs)
            except PluginLoadError as err:
                close_plugins(err.plugins)
                raise
            self.plugins = loaded.plugins
            self.services = loaded.services
            self._report_backend()
            self._serve(t0)
        except BaseException:
            self._teardown()
            raise
        self._started = True

    def _report_backend(self) -> None:
        metadata = [p for p in self.plugins if p.type == types.METADATA]
        for plugin in metadata:
            if not plugin.ok:
                log.error(
                    "metadata plugin %s failed: content services are unavailable",
                    plugin.uri,
                    extra={"fields": {"error": str(plugin.error)}},
                )
        if not metadata:
            log.warning("no metadata plugin is enabled: content services are unavailable")

    def _serve(self, t0: float) -> None:
        from contentd.api.health import HealthService
        from contentd.api.server import listen, server_options, tune_malloc

        grpc_config = self.config.grpc
        tune_malloc()
        self._executor = futures.ThreadPoolExecutor(
            max_workers=self.max_workers, thread_name_prefix="contentd-grpc"
        )
        server = grpc.server(
            self._executor,
            options=server_options(
                [
                    (
                        "grpc.max_receive_message_length",
                        grpc_config.max_recv_message_size or DEFAULT_MAX_MESSAGE_SIZE,
                    ),
                    (
                        "grpc.max_send_message_length",
                        grpc_config.max_send_message_size or DEFAULT_MAX_MESSAGE_SIZE,
                    ),
                ]
            ),
        )
        names: list[str] = []
        for service in self.services:
            service.register(server)  # type: ignore[attr-defined]
            name = _service_name(service)
            if name:
                names.append(name)
        for service in self.services:
            if isinstance(service, HealthService):
                service.add_services(names)
        self._server = server
        listen(server, f"unix:{self.socket}")
        server.start()
        finish_socket(self.socket, grpc_config.uid, grpc_config.gid)
        elapsed = time.monotonic() - t0
        age = process_age()
        fields: dict[str, object] = {
            "address": self.socket,
            "services": len(names),
            "boot_s": f"{elapsed:.3f}",
        }
        if age is not None:
            fields["since_exec_s"] = f"{age:.3f}"
        log.info("serving...", extra={"fields": {"address": self.socket}})
        log.info("contentd successfully booted in %.6fs", elapsed, extra={"fields": fields})

    def stop(self) -> None:
        """Shut down gracefully (see the module doc); safe to call twice."""
        if self._stopped:
            return
        self._stopped = True
        log.info("stopping contentd", extra={"fields": {"grace_s": self.grace}})
        self._teardown()
        log.info("contentd stopped")

    def _teardown(self) -> None:
        from contentd.api.health import HealthService

        for service in self.services:
            if isinstance(service, HealthService):
                service.set_serving(False)
        # long-lived streams (Subscribe, Watch) would otherwise hold the whole grace
        for service in self.services:
            closer = getattr(service, "close", None)
            if callable(closer):
                try:
                    closer()
                except Exception as err:
                    log.warning("closing %s failed: %s", type(service).__name__, err)
        server, self._server = self._server, None
        if server is not None:
            server.stop(self.grace).wait(self.grace + 5.0)
        executor, self._executor = self._executor, None
        if executor is not None:
            # handlers end soon after their calls are cancelled; do not wait forever
            waiter = threading.Thread(target=executor.shutdown, kwargs={"wait": True}, daemon=True)
            waiter.start()
            waiter.join(5.0)
            if waiter.is_alive():
                log.warning("some RPC handlers did not finish; closing plugins anyway")
        close_plugins(self.plugins)
        if server is not None:
            remove_socket(self.socket)
        self._lock.release()

    def __enter__(self) -> Daemon:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
