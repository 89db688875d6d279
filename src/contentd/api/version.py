"""The ``containerd.services.version.v1.Version`` gRPC service."""

from __future__ import annotations

from typing import Final

import grpc
from google.protobuf import empty_pb2

from contentd.api._pb.containerd.services.version.v1 import version_pb2 as pb
from contentd.api._pb.containerd.services.version.v1 import version_pb2_grpc as pb_grpc
from contentd.revision import git_revision

__all__ = ["SERVICE_NAME", "VersionService", "git_revision"]

SERVICE_NAME: Final = "containerd.services.version.v1.Version"


class VersionService(pb_grpc.VersionServicer):
    SERVICE_NAME = SERVICE_NAME

    def __init__(self, version: str | None = None, revision: str | None = None) -> None:
        if version is None:
            from contentd import __version__

            version = __version__
        self.version = version
        self._revision = revision

    @property
    def revision(self) -> str:
        if self._revision is None:
            self._revision = git_revision()
        return self._revision

    def register(self, server: grpc.Server) -> None:
        pb_grpc.add_VersionServicer_to_server(self, server)

    def Version(
        self, request: empty_pb2.Empty, context: grpc.ServicerContext
    ) -> pb.VersionResponse:
        return pb.VersionResponse(version=self.version, revision=self.revision)
