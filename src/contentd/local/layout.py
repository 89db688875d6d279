"""containerd's on-disk layout, byte for byte, and the only place paths are built.

::

    <root>/blobs/<alg>/<hex>            committed blob, read-only
    <root>/ingest/<sha256(ref)>/        one ingest
        data  ref  startedat  updatedat  [total]

Digests are validated before they become paths; refs never become paths
(they are hashed), so nothing can escape the root.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from datetime import datetime

from contentd.content import digest as digests
from contentd.content import gotime
from contentd.content.errors import InvalidDigest, NotFound

__all__ = ["IngestPaths", "Layout", "fsync_dir", "read_timestamp", "write_timestamp"]


def fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass(frozen=True, slots=True)
class IngestPaths:
    dir: str

    @property
    def data(self) -> str:
        return os.path.join(self.dir, "data")

    @property
    def ref(self) -> str:
        return os.path.join(self.dir, "ref")

    @property
    def startedat(self) -> str:
        return os.path.join(self.dir, "startedat")

    @property
    def updatedat(self) -> str:
        return os.path.join(self.dir, "updatedat")

    @property
    def total(self) -> str:
        return os.path.join(self.dir, "total")


class Layout:
    def __init__(self, root: str) -> None:
        self.root = root
        self.blobs = os.path.join(root, "blobs")
        self.ingests = os.path.join(root, "ingest")

    def blob_dir(self, algorithm: str) -> str:
        return os.path.join(self.blobs, algorithm)

    def blob_path(self, digest: str) -> str:
        """Path of a blob; raises InvalidDigest (an InvalidArgument) first."""
        try:
            parsed = digests.parse(digest)
        except InvalidDigest as err:
            raise err.wrap("cannot calculate blob path from invalid digest") from None
        return os.path.join(self.blobs, parsed.algorithm, parsed.encoded)

    def ingest(self, ref: str) -> IngestPaths:
        key = hashlib.sha256(ref.encode()).hexdigest()
        return IngestPaths(os.path.join(self.ingests, key))

    def ingest_dir(self, name: str) -> IngestPaths:
        """An ingest directory found by listing ``ingest/`` (already a bare name)."""
        return IngestPaths(os.path.join(self.ingests, os.path.basename(name)))


def write_timestamp(path: str, t: datetime) -> None:
    """Write ``<path>.tmp`` synchronously, then rename it over ``path``."""
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_SYNC, 0o666)
    try:
        os.write(fd, gotime.format_text(t).encode())
    finally:
        os.close(fd)
    os.rename(tmp, path)


def read_timestamp(path: str) -> datetime:
    try:
        with open(path, "rb") as f:
            text = f.read().decode()
    except FileNotFoundError as err:
        raise NotFound(f"open {path}: no such file or directory") from err
    try:
        return gotime.parse_text(text)
    except ValueError as err:
        raise ValueError(f"could not parse timestamp file {path}: {err}") from err
