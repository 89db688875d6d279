"""The ``containerd.services.version.v1.Version`` gRPC service, and contentd's git revision."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Final

import grpc
from google.protobuf import empty_pb2

from contentd.api._pb.containerd.services.version.v1 import version_pb2 as pb
from contentd.api._pb.containerd.services.version.v1 import version_pb2_grpc as pb_grpc

__all__ = ["SERVICE_NAME", "VersionService", "git_revision"]

SERVICE_NAME: Final = "containerd.services.version.v1.Version"


@functools.cache
def git_revision(start: str | None = None) -> str:
    """The commit checked out where contentd's sources live, or ``""``.

    Read from ``.git`` directly (no ``git`` process): ``HEAD``, then the
    branch's loose ref or ``packed-refs``. Installed (non-checkout) copies
    have no revision.
    """
    here = Path(start or __file__).resolve()
    for directory in (here, *here.parents):
        git = directory / ".git"
        if git.is_file():  # a worktree: "gitdir: <path>"
            text = git.read_text(errors="replace").strip()
            if text.startswith("gitdir:"):
                git = (directory / text[len("gitdir:") :].strip()).resolve()
        if git.is_dir():
            return _resolve_head(git)
    return ""


def _resolve_head(git: Path) -> str:
    try:
        head = (git / "HEAD").read_text().strip()
    except OSError:
        return ""
    if not head.startswith("ref:"):
        return head if _is_sha(head) else ""
    ref = head[len("ref:") :].strip()
    common = git
    commondir = git / "commondir"
    if commondir.is_file():
        common = (git / commondir.read_text().strip()).resolve()
    for base in (git, common):
        try:
            sha = (base / ref).read_text().strip()
            if _is_sha(sha):
                return sha
        except OSError:
            pass
        try:
            for line in (base / "packed-refs").read_text().splitlines():
                parts = line.split()
                if len(parts) == 2 and parts[1] == ref and _is_sha(parts[0]):
                    return parts[0]
        except OSError:
            pass
    return ""


def _is_sha(text: str) -> bool:
    return len(text) in (40, 64) and all(c in "0123456789abcdef" for c in text)


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
