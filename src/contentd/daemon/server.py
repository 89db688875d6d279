"""The contentd daemon: plugins loaded from config, their gRPC services on a unix socket.

:class:`Daemon` does what containerd's ``server.New`` and ``ServeGRPC`` do,
plus the process-level care of ``contentd serve``:

* one daemon per root (an flock on ``<root>/contentd.lock``; a second one is
  refused with a message naming the holder's pid);
* a stale socket at the address is replaced, a live one refused; the socket
  gets mode 0660 and, if configured, ``[grpc] uid``/``gid``;
* the ``[grpc] engine`` (the native HTTP/2 engine by default, or grpcio's
  synchronous server) on a thread pool with the configured message limits
  (16 MiB by default), for the main socket and every header-less one;
* each ``[headerless_listeners.<name>]`` gets its own socket serving the
  Content and Health services, pinned to its namespace (see
  :mod:`contentd.daemon.resolver`);
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
from collections.abc import Callable
from concurrent import futures
from typing import Any, Final

import grpc

from contentd._compiled import variant
from contentd.config import DEFAULT_MAX_MESSAGE_SIZE, Config
from contentd.daemon.listener import finish_socket, prepare_socket, remove_socket, socket_path
from contentd.daemon.lock import RootLock
from contentd.plugins import types
from contentd.plugins.builtin.postgres import require_postgres
from contentd.plugins.builtin.s3 import require_configured
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


class _Listener:
    """One gRPC server on one unix socket, with its own thread pool."""

    def __init__(self, name: str, socket: str, server: grpc.Server, executor: futures.Executor):
        self.name = name
        self.socket = socket
        self.server = server
        self.executor = executor
        self.bound = False


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
        #: ``{name: socket path}`` of the ``[headerless_listeners]``
        self.listener_sockets = {
            name: socket_path(listener.address)
            for name, listener in config.headerless_listeners.items()
        }
        self.plugins = PluginSet()
        self.services: list[object] = []
        self._lock = RootLock(config.root)
        self._listeners: list[_Listener] = []
        self._extra_services: list[object] = []
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
            for path in (self.socket, *self.listener_sockets.values()):
                prepare_socket(path)
            config = require_configured(config, self.plugin_configs or {})
            config = require_postgres(config, self.plugin_configs or {})
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

    def _new_listener(self, name: str, socket: str, workers: int) -> _Listener:
        from contentd.daemon.engines import new_server
        from contentd.wire.threads import block_signals

        grpc_config = self.config.grpc
        # handlers' threads leave SIGTERM/SIGINT to the main thread (see contentd.wire.threads)
        executor = futures.ThreadPoolExecutor(
            max_workers=workers,
            thread_name_prefix=f"contentd-grpc-{name}",
            initializer=block_signals,
        )
        server = new_server(
            grpc_config.engine,
            inline=self._inline_calls(),
            executor=executor,
            options=[
                (
                    "grpc.max_receive_message_length",
                    grpc_config.max_recv_message_size or DEFAULT_MAX_MESSAGE_SIZE,
                ),
                (
                    "grpc.max_send_message_length",
                    grpc_config.max_send_message_size or DEFAULT_MAX_MESSAGE_SIZE,
                ),
                ("grpc.max_concurrent_streams", grpc_config.max_concurrent_streams),
            ],
            name=f"contentd-grpc-{name}",
        )
        listener = _Listener(name, socket, server, executor)
        self._listeners.append(listener)
        return listener

    def _local_backend(self) -> bool:
        """Whether blobs are on local disk (else Info/Read wait for another server).

        Only then may the native engine answer Info and small Reads on a
        connection's reader thread: a call that waits for a remote backend
        there would hold up every other call of that connection.
        """
        from contentd.local import LocalStore
        from contentd.metadata import MetadataDB

        try:
            db = self.plugins.get(types.METADATA)
        except Exception:
            return True  # no content service to serve anyway
        return not isinstance(db, MetadataDB) or isinstance(db.backend, LocalStore)

    def _inline_calls(self) -> dict[str, Callable[[Any], int | None]] | None:
        """What the native engine may answer on a connection's reader thread: the default
        table (None) with blobs on local disk; with a backend that says which reads it
        serves from local disk (S3's read cache), those Reads while the metadata lookup
        needs no server either; else nothing."""
        from contentd.daemon.engines import reads_inline_when
        from contentd.metadata import MetadataDB

        if self._local_backend():
            return None
        db = self.plugins.get(types.METADATA)
        holds = getattr(db.backend, "holds", None) if isinstance(db, MetadataDB) else None
        if not isinstance(db, MetadataDB) or not callable(holds):
            return {}
        lookups_are_local = db.lookups_are_local

        def local(request: Any) -> bool:
            return lookups_are_local() and bool(holds(request.digest, request.offset, request.size))

        return reads_inline_when(local)

    def _bind(self, listener: _Listener, uid: int, gid: int) -> None:
        from contentd.daemon.engines import listen

        try:
            listen(listener.server, f"unix:{listener.socket}")
        except OSError as err:
            if err.filename is not None or err.errno is None:
                raise
            # bind(2)'s error names no path: it was logged as '[Errno 2] No such file ...'
            raise OSError(
                f"cannot listen on unix socket {listener.socket}: {err.strerror}"
            ) from err
        listener.bound = True
        listener.server.start()
        finish_socket(listener.socket, uid, gid)

    def _serve(self, t0: float) -> None:
        from contentd.api.health import HealthService
        from contentd.daemon.engines import start_malloc_trim, tune_malloc

        tune_malloc()
        start_malloc_trim()
        main = self._new_listener("main", self.socket, self.max_workers)
        names: list[str] = []
        for service in self.services:
            service.register(main.server)  # type: ignore[attr-defined]
            name = _service_name(service)
            if name:
                names.append(name)
        for service in self.services:
            if isinstance(service, HealthService):
                service.add_services(names)
        self._bind(main, self.config.grpc.uid, self.config.grpc.gid)
        self._serve_headerless_listeners()
        elapsed = time.monotonic() - t0
        age = process_age()
        fields: dict[str, object] = {
            "address": self.socket,
            "services": len(names),
            "boot_s": f"{elapsed:.3f}",
            "engine": self.config.grpc.engine,
            "variant": variant().describe(),
        }
        if age is not None:
            fields["since_exec_s"] = f"{age:.3f}"
        log.info("serving...", extra={"fields": {"address": self.socket}})
        log.info("contentd successfully booted in %.6fs", elapsed, extra={"fields": fields})

    def _serve_headerless_listeners(self) -> None:
        if not self.listener_sockets:
            return
        from contentd.api.content import ContentService
        from contentd.api.health import HealthService
        from contentd.daemon.resolver import NamespaceResolver
        from contentd.metadata import MetadataDB

        try:
            db = self.plugins.get(types.METADATA)
        except Exception as err:
            log.error(
                "headerless listeners not served: no metadata plugin",
                extra={"fields": {"error": str(err)}},
            )
            return
        if not isinstance(db, MetadataDB):
            log.error("headerless listeners not served: the metadata plugin is not a MetadataDB")
            return
        for name, path in self.listener_sockets.items():
            settings = self.config.headerless_listeners[name]
            namespace = self.config.listener_namespace(name)
            resolver = NamespaceResolver(db, namespace, exclusive=True)
            resolver.ensure_pinned()
            content = ContentService(resolver)
            health = HealthService([_CONTENT_SERVICE])
            self._extra_services.append(health)
            listener = self._new_listener(name, path, min(self.max_workers, 64))
            content.register(listener.server)
            health.register(listener.server)
            self._bind(listener, settings.uid, settings.gid)
            log.info(
                "serving header-less listener %s",
                name,
                extra={"fields": {"address": path, "namespace": namespace}},
            )

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

        services = [*self.services, *self._extra_services]
        for service in services:
            if isinstance(service, HealthService):
                service.set_serving(False)
        # long-lived streams (Subscribe, Watch) would otherwise hold the whole grace
        for service in services:
            closer = getattr(service, "close", None)
            if callable(closer):
                try:
                    closer()
                except Exception as err:
                    log.warning("closing %s failed: %s", type(service).__name__, err)
        listeners, self._listeners = self._listeners, []
        stopped = [listener.server.stop(self.grace) for listener in listeners]
        for event in stopped:
            event.wait(self.grace + 5.0)
        # handlers end soon after their calls are cancelled; do not wait forever
        waiters = [
            threading.Thread(target=listener.executor.shutdown, kwargs={"wait": True}, daemon=True)
            for listener in listeners
        ]
        for waiter in waiters:
            waiter.start()
        deadline = time.monotonic() + 5.0
        for waiter in waiters:
            waiter.join(max(0.0, deadline - time.monotonic()))
        if any(waiter.is_alive() for waiter in waiters):
            log.warning("some RPC handlers did not finish; closing plugins anyway")
        close_plugins(self.plugins)
        for listener in listeners:
            if listener.bound:
                remove_socket(listener.socket)
        self._lock.release()

    def __enter__(self) -> Daemon:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
