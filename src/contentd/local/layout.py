"""containerd's on-disk layout, byte for byte, and the only place paths are built.

::

    <root>/blobs/<alg>/<hex>            committed blob, read-only
    <root>/ingest/<sha256(ref)>/        one ingest
        data  ref  startedat  updatedat  [total]
    <root>/quarantine/<alg>/<hex>.<ns>  a blob found corrupt, moved aside (contentd's;
                                        containerd never looks there)

Digests are validated before they become paths; refs never become paths
(they are hashed), so nothing can escape the root.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from contentd.content import digest as digests
from contentd.content import gotime
from contentd.content.errors import InvalidDigest, NotFound

__all__ = [
    "IngestPaths",
    "Layout",
    "create_ingest_files",
    "fsync_dir",
    "read_timestamp",
    "remove_ingest",
    "sync_ingest",
    "write_file",
    "write_timestamp",
]

#: blob paths a layout remembers at most (then it starts over)
_PATHS: Final = 1024


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
        self.quarantine = os.path.join(root, "quarantine")
        # paths of blobs asked for lately: a proxied read asks for one blob per 32 KiB
        self._paths: dict[str, str] = {}

    def blob_dir(self, algorithm: str) -> str:
        return os.path.join(self.blobs, algorithm)

    def blob_path(self, digest: str) -> str:
        """Path of a blob; raises InvalidDigest (an InvalidArgument) first."""
        path = self._paths.get(digest)
        if path is not None:
            return path
        try:
            parsed = digests.parse(digest)
        except InvalidDigest as err:
            raise err.wrap("cannot calculate blob path from invalid digest") from None
        path = os.path.join(self.blobs, parsed.algorithm, parsed.encoded)
        if len(self._paths) >= _PATHS:
            self._paths.clear()
        self._paths[digest] = path
        return path

    def ingest(self, ref: str) -> IngestPaths:
        key = hashlib.sha256(ref.encode()).hexdigest()
        return IngestPaths(os.path.join(self.ingests, key))

    def ingest_dir(self, name: str) -> IngestPaths:
        """An ingest directory found by listing ``ingest/`` (already a bare name)."""
        return IngestPaths(os.path.join(self.ingests, os.path.basename(name)))


def write_file(path: str, data: bytes) -> None:
    """Create or replace ``path`` with ``data``, unsynced (see :func:`sync_ingest`)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o666)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def write_timestamp(path: str, t: datetime, *, durable: bool = False) -> None:
    """Write ``<path>.tmp``, then rename it over ``path``: a reader sees one whole timestamp.

    ``durable`` writes it with O_SYNC, as containerd writes every timestamp
    file. Only :meth:`LocalWriter.close` asks for that: a new ingest's files
    need no sync of their own, because an ingest is only worth resuming once
    its data has been synced, and close syncs everything then.
    """
    tmp = path + ".tmp"
    flags = os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC
    if durable:
        flags |= os.O_SYNC
    fd = os.open(tmp, flags, 0o666)
    try:
        os.write(fd, gotime.format_text(t).encode())
    finally:
        os.close(fd)
    os.rename(tmp, path)


def create_ingest_files(
    paths: IngestPaths,
    ref: str,
    started_at: datetime,
    total: int,
    updated_at: datetime | None = None,
    *,
    fresh: bool,
) -> None:
    """Write a new ingest's ``ref``, ``startedat``, ``updatedat`` and ``total`` (if > 0).

    Unsynced: they only matter once the data is synced too (close, commit).
    ``fresh`` (the directory was just made, and its ``data`` comes last) lets
    the timestamps be written in place; over a broken ingest that a reader
    may be looking at, they are renamed into place whole.
    """
    if updated_at is None:
        updated_at = started_at
    write_file(paths.ref, ref.encode())
    if fresh:
        stamp = gotime.format_text(started_at).encode()
        write_file(paths.startedat, stamp)
        if updated_at != started_at:
            stamp = gotime.format_text(updated_at).encode()
        write_file(paths.updatedat, stamp)
    else:
        write_timestamp(paths.startedat, started_at)
        write_timestamp(paths.updatedat, updated_at)
    if total > 0:
        write_file(paths.total, str(total).encode())


def sync_ingest(paths: IngestPaths) -> None:
    """fsync an ingest's small files, its directory and ``ingest/``: it survives power loss.

    A new ingest writes ``ref``, ``startedat``, ``updatedat`` and ``total``
    without syncing (a sync each cost more than the rest of a small ingest);
    until this runs, a power loss may leave them empty, and such an ingest
    restarts from nothing when reopened, which is safe because its data was
    never synced either.
    """
    for name in ("ref", "startedat", "updatedat", "total"):
        try:
            fd = os.open(os.path.join(paths.dir, name), os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            continue  # no total
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    fsync_dir(paths.dir)
    fsync_dir(os.path.dirname(paths.dir))


#: what an ingest directory holds, as containerd writes it
_INGEST_FILES = ("data", "ref", "startedat", "updatedat", "total")


def remove_ingest(paths: IngestPaths) -> None:
    """Remove an ingest directory: its known files one by one, then the directory.

    Cheaper than a generic tree removal (no directory scan, no stat per
    entry); anything else inside (a ``.tmp`` left by a crash) falls back to one.
    """
    for name in _INGEST_FILES:
        try:
            os.unlink(os.path.join(paths.dir, name))
        except FileNotFoundError:
            continue
        except OSError:
            break
    try:
        os.rmdir(paths.dir)
    except FileNotFoundError:
        pass
    except OSError:
        shutil.rmtree(paths.dir, ignore_errors=True)


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
