"""The standard ``grpc.health.v1.Health`` service (containerd registers it as ``healthcheck``).

Check answers SERVING for the whole server (service ``""``) and for each
service name it was told about, NOT_FOUND ``unknown service`` for any other
name, and NOT_SERVING for everything once the daemon has begun shutting down.
Watch sends the current status at once and again whenever it changes
(SERVICE_UNKNOWN for an unknown name), until the client leaves or the
service is closed.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from typing import Final

import grpc

from contentd.api._pb.grpc.health.v1 import health_pb2 as pb
from contentd.api._pb.grpc.health.v1 import health_pb2_grpc as pb_grpc

__all__ = ["SERVICE_NAME", "HealthService"]

SERVICE_NAME: Final = "grpc.health.v1.Health"

_Status = pb.HealthCheckResponse
_SERVING: Final = _Status.SERVING
_NOT_SERVING: Final = _Status.NOT_SERVING
_SERVICE_UNKNOWN: Final = _Status.SERVICE_UNKNOWN


class HealthService(pb_grpc.HealthServicer):
    SERVICE_NAME = SERVICE_NAME

    def __init__(self, services: Iterable[str] = ()) -> None:
        self._services: set[str] = {"", SERVICE_NAME, *services}
        self._serving = True
        self._closed = False
        self._changed = threading.Condition()

    def register(self, server: grpc.Server) -> None:
        pb_grpc.add_HealthServicer_to_server(self, server)

    def add_services(self, names: Iterable[str]) -> None:
        with self._changed:
            self._services.update(names)
            self._changed.notify_all()

    def set_serving(self, serving: bool) -> None:
        with self._changed:
            self._serving = serving
            self._changed.notify_all()

    def close(self) -> None:
        """Not serving any more; ends every Watch stream."""
        with self._changed:
            self._serving = False
            self._closed = True
            self._changed.notify_all()

    def status(self, service: str) -> int:
        with self._changed:
            return self._status(service)

    def _status(self, service: str) -> int:
        if service not in self._services:
            return _SERVICE_UNKNOWN
        return _SERVING if self._serving else _NOT_SERVING

    def Check(
        self, request: pb.HealthCheckRequest, context: grpc.ServicerContext
    ) -> pb.HealthCheckResponse:
        status = self.status(request.service)
        if status == _SERVICE_UNKNOWN:
            context.abort(grpc.StatusCode.NOT_FOUND, "unknown service")
        return pb.HealthCheckResponse(status=status)  # type: ignore[arg-type]

    def Watch(
        self, request: pb.HealthCheckRequest, context: grpc.ServicerContext
    ) -> Iterator[pb.HealthCheckResponse]:
        gone = threading.Event()

        def wake() -> None:
            gone.set()
            with self._changed:
                self._changed.notify_all()

        context.add_callback(wake)
        last: int | None = None
        while True:
            with self._changed:
                while (
                    not gone.is_set() and not self._closed and self._status(request.service) == last
                ):
                    self._changed.wait()
                status = self._status(request.service)
                closed = self._closed
            if gone.is_set():
                return
            if status != last:
                last = status
                yield pb.HealthCheckResponse(status=status)  # type: ignore[arg-type]
            if closed:
                return
