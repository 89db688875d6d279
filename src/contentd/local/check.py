"""What ``contentd fsck`` checks in a local store's directory beyond its blobs' bytes.

* **Modes.** A committed blob is read-only: containerd clears every write and
  execute bit when it publishes one (``mode &^ 0333``), and so does contentd. A
  blob with one of them set could be changed in place.
* **Strays.** Anything under the root that neither store made: files in
  ``blobs/`` that are not ``<alg>/<hex>`` of a supported algorithm, entries of
  ``ingest/`` that are not ``<64 hex>`` directories, other top-level entries.
  They are reported and left alone (fsck never deletes what it cannot name).
"""

from __future__ import annotations

import errno
import os
import re
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final

from contentd.content import digest as digests
from contentd.local.layout import Layout

__all__ = ["LayoutProblem", "fix_mode", "scan"]

#: top-level entries a content root may hold (``quarantine``: contentd's; the lock
#: and the metadata live in their own directories, not here)
_KNOWN_TOP: Final = frozenset({"blobs", "ingest", "quarantine"})
_INGEST_NAME: Final = re.compile(r"[0-9a-f]{64}")
_INGEST_FILES: Final = frozenset({"data", "ref", "startedat", "updatedat", "total"})
_WRITE_OR_EXEC: Final = 0o333


@dataclass(frozen=True, slots=True)
class LayoutProblem:
    kind: str  # "mode" or "stray"
    path: str
    detail: str
    digest: str = ""


def scan(root: str) -> Iterator[LayoutProblem]:
    """Every mode and stray problem under the content store at ``root``."""
    layout = Layout(root)
    try:
        top = sorted(os.listdir(root))
    except FileNotFoundError:
        return
    for name in top:
        if name not in _KNOWN_TOP:
            yield LayoutProblem("stray", os.path.join(root, name), "not part of a content store")
    yield from _scan_blobs(layout)
    yield from _scan_ingests(layout)


def _scan_blobs(layout: Layout) -> Iterator[LayoutProblem]:
    try:
        algorithms = sorted(os.listdir(layout.blobs))
    except (FileNotFoundError, NotADirectoryError):
        return
    for algorithm in algorithms:
        directory = layout.blob_dir(algorithm)
        if algorithm not in digests.ALGORITHMS or not os.path.isdir(directory):
            yield LayoutProblem("stray", directory, "not a supported digest algorithm")
            continue
        for name in sorted(os.listdir(directory)):
            path = os.path.join(directory, name)
            digest = f"{algorithm}:{name}"
            try:
                st = os.lstat(path)
            except FileNotFoundError:
                continue  # deleted meanwhile
            if not digests.is_valid(digest):
                yield LayoutProblem("stray", path, "name is not a digest")
            elif not stat.S_ISREG(st.st_mode):
                yield LayoutProblem("stray", path, "blob is not a regular file", digest)
            elif st.st_mode & _WRITE_OR_EXEC:
                mode = stat.S_IMODE(st.st_mode)
                yield LayoutProblem(
                    "mode", path, f"mode {mode:04o}: a blob must not be writable", digest
                )


def _scan_ingests(layout: Layout) -> Iterator[LayoutProblem]:
    try:
        names = sorted(os.listdir(layout.ingests))
    except (FileNotFoundError, NotADirectoryError):
        return
    for name in names:
        path = os.path.join(layout.ingests, name)
        if not _INGEST_NAME.fullmatch(name) or not os.path.isdir(path):
            yield LayoutProblem("stray", path, "not an ingest directory")
            continue
        try:
            inside = os.listdir(path)
        except FileNotFoundError:
            continue
        for entry in sorted(inside):
            if entry not in _INGEST_FILES and not entry.endswith(".tmp"):
                yield LayoutProblem("stray", os.path.join(path, entry), "not an ingest file")


def fix_mode(path: str) -> int:
    """Clear a blob's write and execute bits; the new mode. OSError unless ``path`` is
    (still) a regular file: a symlink put there since the scan is never followed."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise OSError(errno.EINVAL, "not a regular file", path)
        mode = stat.S_IMODE(st.st_mode) & ~_WRITE_OR_EXEC
        os.fchmod(fd, mode)
    finally:
        os.close(fd)
    return mode
