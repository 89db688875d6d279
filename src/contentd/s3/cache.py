"""The node-local read cache: whole blobs on local disk, keyed by digest.

A blob is immutable, so a cached copy never needs invalidating: it is written
once, verified (size and digest) before it gets its name, and dropped only to
make room (least recently used first, within ``max_bytes``) or when the blob
is deleted through this process. Files are ``<root>/<alg>/<hex>``; fills go to
``<root>/tmp/`` first and are renamed into place, so a crash leaves no
half-written entry under a digest's name.

A cache file can still be damaged later (a disk error, a stray write): the
first time this process opens an entry it hashes it again, and whenever the
file's inode, size or times change it does so once more. A file that fails is
removed and counted in ``corrupt``; the store then fetches the blob again.
Afterwards an open costs a stat of a file kept open (:mod:`contentd.local.openblobs`).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import threading
import uuid
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass

from contentd.content import digest as digests
from contentd.content.errors import DigestMismatch, SizeMismatch
from contentd.local.reader import FileReaderAt
from contentd.local.roots import root_state

__all__ = ["CacheStats", "ReadCache"]

log = logging.getLogger(__name__)

_CHUNK = 1 << 20
_FILL_STRIPES = 64


@dataclass
class CacheStats:
    """Counters since the cache was opened."""

    hits: int = 0
    misses: int = 0
    fills: int = 0
    fill_bytes: int = 0
    corrupt: int = 0
    evictions: int = 0


class ReadCache:
    """Verified whole-blob copies under ``root``, at most ``max_bytes`` in all."""

    def __init__(self, root: str | os.PathLike[str], max_bytes: int) -> None:
        self.root = os.path.abspath(os.fspath(root))
        self.max_bytes = max_bytes
        self.stats = CacheStats()
        self._tmp = os.path.join(self.root, "tmp")
        os.makedirs(self._tmp, 0o700, exist_ok=True)
        self._root_state = root_state(self.root)  # open files shared by caches on this root
        self._mutex = threading.Lock()
        # fills are serialised per digest on a fixed set of locks (bounded, unlike one per digest)
        self._fill_locks = [threading.Lock() for _ in range(_FILL_STRIPES)]
        # digest -> size, least recently used first
        self._entries: OrderedDict[str, int] = OrderedDict()
        self._total = 0
        # digest -> (ino, size, mtime_ns, ctime_ns) of the file verified in this process
        self._verified: dict[str, tuple[int, int, int, int]] = {}
        self._scan()

    @property
    def total_bytes(self) -> int:
        return self._total

    def _path(self, digest: str) -> str:
        parsed = digests.parse(digest)  # validated before it becomes a path
        return os.path.join(self.root, parsed.algorithm, parsed.encoded)

    def _scan(self) -> None:
        for name in os.listdir(self._tmp):
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(self._tmp, name))
        found: list[tuple[int, str, int]] = []
        for algorithm in digests.ALGORITHMS:
            directory = os.path.join(self.root, algorithm)
            try:
                names = os.listdir(directory)
            except FileNotFoundError:
                continue
            for name in names:
                digest = f"{algorithm}:{name}"
                if not digests.is_valid(digest):
                    continue
                try:
                    st = os.stat(os.path.join(directory, name))
                except OSError:
                    continue
                found.append((st.st_mtime_ns, digest, st.st_size))
        for _mtime, digest, size in sorted(found):
            self._entries[digest] = size
            self._total += size
        self._evict(keep=None)

    # -- reading -----------------------------------------------------------

    def open(self, digest: str) -> FileReaderAt | None:
        """A reader of the cached, verified copy of ``digest``; None on a miss."""
        path = self._path(digest)
        try:
            blob = self._root_state.blobs.acquire(digest, path, _open_read)
        except FileNotFoundError:
            with self._mutex:
                self.stats.misses += 1
                self._drop_entry(digest)
            return None
        reader = FileReaderAt(blob.fd, blob.size, lambda: self._root_state.blobs.release(blob))
        try:
            st = os.fstat(blob.fd)
            key = (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
            if self._verified.get(digest) != key and not self._check(digest, blob.fd, st.st_size):
                reader.close()
                self._discard(digest, path)
                with self._mutex:
                    self.stats.corrupt += 1
                    self.stats.misses += 1
                return None
            self._verified[digest] = key
            with self._mutex:
                self.stats.hits += 1
                if digest in self._entries:
                    self._entries.move_to_end(digest)
        except BaseException:
            reader.close()
            raise
        return reader

    def _check(self, digest: str, fd: int, size: int) -> bool:
        hasher = hashlib.new(digests.parse(digest).algorithm)
        offset = 0
        while offset < size:
            chunk = os.pread(fd, min(_CHUNK, size - offset), offset)
            if not chunk:
                break
            hasher.update(chunk)
            offset += len(chunk)
        ok = offset == size and f"{hasher.name}:{hasher.hexdigest()}" == digest
        if not ok:
            log.warning("read cache: %s failed verification; fetching it again", digest)
        return ok

    # -- filling -------------------------------------------------------------

    def fits(self, size: int) -> bool:
        return size <= self.max_bytes

    def fill_lock(self, digest: str) -> threading.Lock:
        """The lock one fill of ``digest`` holds (concurrent readers wait, then hit)."""
        return self._fill_locks[hash(digest) % _FILL_STRIPES]

    def fill(self, digest: str, size: int, chunks: Iterable[bytes]) -> None:
        """Store ``chunks`` as ``digest`` if they are exactly its ``size`` bytes and digest.

        SizeMismatch / DigestMismatch when they are not (nothing is kept).
        """
        path = self._path(digest)
        hasher = hashlib.new(digests.parse(digest).algorithm)
        tmp = os.path.join(self._tmp, uuid.uuid4().hex)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            written = 0
            for chunk in chunks:
                view = memoryview(chunk)
                while view:
                    n = os.write(fd, view)
                    view = view[n:]
                hasher.update(chunk)
                written += len(chunk)
                if written > size:  # never more than announced onto the disk
                    break
            if written != size:
                raise SizeMismatch(
                    size, written, f"S3 object {digest}: {written} bytes, want {size}"
                )
            actual = f"{hasher.name}:{hasher.hexdigest()}"
            if actual != digest:
                raise DigestMismatch(digest, actual)
            st = os.fstat(fd)
            os.makedirs(os.path.dirname(path), 0o700, exist_ok=True)
            os.rename(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        finally:
            os.close(fd)
        self._root_state.blobs.forget(digest)  # a damaged copy may still be open
        self._verified[digest] = (st.st_ino, st.st_size, st.st_mtime_ns, os.stat(path).st_ctime_ns)
        with self._mutex:
            self.stats.fills += 1
            self.stats.fill_bytes += size
            self._drop_entry(digest)
            self._entries[digest] = size
            self._total += size
            self._evict(keep=digest)

    # -- removal -------------------------------------------------------------

    def remove(self, digest: str) -> None:
        """Drop the cached copy of ``digest`` (the blob was deleted)."""
        self._discard(digest, self._path(digest))

    def _discard(self, digest: str, path: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        self._root_state.blobs.forget(digest)
        self._verified.pop(digest, None)
        with self._mutex:
            self._drop_entry(digest)

    def _drop_entry(self, digest: str) -> None:
        size = self._entries.pop(digest, None)
        if size is not None:
            self._total -= size

    def _evict(self, keep: str | None) -> None:
        """Remove least recently used entries until the total fits (under the mutex)."""
        while self._total > self.max_bytes and self._entries:
            digest, size = next(iter(self._entries.items()))
            if digest == keep:
                if len(self._entries) == 1:
                    break
                self._entries.move_to_end(digest)
                continue
            del self._entries[digest]
            self._total -= size
            self.stats.evictions += 1
            with contextlib.suppress(OSError, ValueError):
                os.unlink(self._path(digest))
            self._root_state.blobs.forget(digest)
            self._verified.pop(digest, None)


def _open_read(path: str) -> int:
    return os.open(path, os.O_RDONLY | os.O_CLOEXEC)
