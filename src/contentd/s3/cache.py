"""The node-local read cache: whole blobs on local disk, keyed by digest.

A blob is immutable, so a cached copy never needs invalidating: it is written
once, verified (size and digest) before it gets its name, and dropped only to
make room (least recently used first, within ``max_bytes``) or when the blob
is deleted through this process. Files are ``<root>/<alg>/<hex>``; fills go to
``<root>/tmp/`` first and are renamed into place, so a crash leaves no
half-written entry under a digest's name.

An entry comes either from S3 (:class:`CacheFill`: hashed here as it arrives)
or from a blob this node wrote (:class:`CacheTee`: the bytes copied as they pass
through on their way up, named once the writer's commit verified them).

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

__all__ = ["CacheFill", "CacheStats", "CacheTee", "ReadCache"]

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
    #: blobs kept as this node wrote them (:class:`CacheTee`), not fetched
    writes: int = 0
    write_bytes: int = 0
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

    def has(self, digest: str) -> bool:
        """Whether an entry of ``digest`` is kept (not checked: :meth:`open` does that)."""
        with self._mutex:
            return digest in self._entries

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

    def verified(self, digest: str) -> bool:
        """Whether ``digest`` is kept and was verified by this process (so :meth:`open`
        hashes it again only if its file changed since). A hint: no lock is taken."""
        return digest in self._verified and digest in self._entries

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
        pending = self.begin_fill(digest, size)
        try:
            for chunk in chunks:
                pending.write(chunk)
            pending.commit()
        finally:
            pending.close()

    def begin_fill(self, digest: str, size: int) -> CacheFill:
        """A fill of ``digest`` written piece by piece (see :class:`CacheFill`)."""
        return CacheFill(self, digest, size)

    def begin_tee(self, limit: int) -> CacheTee:
        """A copy of a blob of at most ``limit`` bytes being written elsewhere, kept as
        it passes through (see :class:`CacheTee`); OSError if no file can be made."""
        return CacheTee(self, limit)

    def _adopt(
        self, digest: str, size: int, key: tuple[int, int, int, int], *, written: bool = False
    ) -> None:
        """Bookkeeping of a verified fill (or ``written`` copy) just renamed into place."""
        self._root_state.blobs.forget(digest)  # a damaged copy may still be open
        self._verified[digest] = key
        with self._mutex:
            if written:
                self.stats.writes += 1
                self.stats.write_bytes += size
            else:
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


class _Staged:
    """A file under the cache's ``tmp/``, appended in order; :meth:`_publish` renames it
    under a digest's name once its owner verified it. Removed unless published.

    The file stays readable (``fd``, positional reads of what was written) until
    :meth:`close`, also after it was published.
    """

    def __init__(self, cache: ReadCache) -> None:
        self.written = 0
        self._cache = cache
        self._tmp: str | None = os.path.join(cache._tmp, uuid.uuid4().hex)
        flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
        self.fd: int | None = os.open(self._tmp, flags, 0o600)

    def _append(self, fd: int, chunk: bytes) -> None:
        view = memoryview(chunk)
        offset = self.written
        while view:
            n = os.pwrite(fd, view, offset)
            view = view[n:]
            offset += n
        self.written += len(chunk)

    def _publish(self, digest: str, size: int) -> None:
        """Name the file ``digest`` (its ``size`` bytes verified by the caller) and adopt
        it into the cache (which then evicts to stay within its bound). On failure the
        file is removed and the error raised."""
        if self.fd is None or self._tmp is None:
            raise RuntimeError("cache file is closed or published")
        path = self._cache._path(digest)
        try:
            st = os.fstat(self.fd)
            os.makedirs(os.path.dirname(path), 0o700, exist_ok=True)
            os.rename(self._tmp, path)
        except BaseException:
            self._discard_tmp()
            raise
        self._tmp = None
        key = (st.st_ino, st.st_size, st.st_mtime_ns, os.stat(path).st_ctime_ns)
        self._cache._adopt(digest, size, key, written=isinstance(self, CacheTee))

    def _discard_tmp(self) -> None:
        tmp, self._tmp = self._tmp, None
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)

    def close(self) -> None:
        """Close the file; an unpublished one is removed."""
        self._discard_tmp()
        fd, self.fd = self.fd, None
        if fd is not None:
            os.close(fd)


class CacheFill(_Staged):
    """One blob being written into the cache: appended in order, hashed as it comes,
    renamed under its digest by :meth:`commit` only if size and digest match.

    The file stays readable (``fd``, positional reads of what was written) until
    :meth:`close`, also after the commit renamed it.
    """

    def __init__(self, cache: ReadCache, digest: str, size: int) -> None:
        self.digest = digest
        self.size = size
        cache._path(digest)  # a valid digest, before a file is made
        self._hasher = hashlib.new(digests.parse(digest).algorithm)
        super().__init__(cache)

    def write(self, chunk: bytes) -> None:
        """Append ``chunk``; SizeMismatch past the announced size (nothing more is written)."""
        if self.fd is None:
            raise RuntimeError("cache fill is closed")
        if self.written + len(chunk) > self.size:
            raise SizeMismatch(
                self.size,
                self.written + len(chunk),
                f"S3 object {self.digest}: more than {self.size} bytes",
            )
        self._append(self.fd, chunk)
        self._hasher.update(chunk)

    def commit(self) -> None:
        """Give the file its digest's name; SizeMismatch / DigestMismatch (and nothing is
        kept) unless it holds exactly the blob."""
        if self.fd is None or self._tmp is None:
            raise RuntimeError("cache fill is closed or committed")
        try:
            if self.written != self.size:
                raise SizeMismatch(
                    self.size,
                    self.written,
                    f"S3 object {self.digest}: {self.written} bytes, want {self.size}",
                )
            actual = f"{self._hasher.name}:{self._hasher.hexdigest()}"
            if actual != self.digest:
                raise DigestMismatch(self.digest, actual)
        except BaseException:
            self._discard_tmp()
            raise
        self._publish(self.digest, self.size)


class CacheTee(_Staged):
    """A copy of a blob being stored elsewhere (an S3 upload from this node), kept as
    its bytes pass through: appended in order from the blob's first byte, not hashed
    here. Its writer hashes the very same bytes and verifies size and digest at its
    commit; only then does it :meth:`publish` the copy, under the digest it verified.

    Writing is best effort: past ``limit`` bytes (at most the cache's bound) or on a
    local error (disk full, the cache directory gone) the copy is dropped and every
    later write is a no-op (:attr:`active` is False). Nothing here ever raises to the
    writer but :meth:`publish`'s errors, which the caller logs and ignores.
    """

    def __init__(self, cache: ReadCache, limit: int) -> None:
        self.limit = min(limit, cache.max_bytes)
        super().__init__(cache)

    @property
    def active(self) -> bool:
        return self.fd is not None and self._tmp is not None

    def write(self, chunk: bytes) -> bool:
        """Append ``chunk``; False (and the copy dropped) past the limit or on an error."""
        fd = self.fd
        if fd is None or self._tmp is None:
            return False
        if self.written + len(chunk) > self.limit:
            log.debug("read cache: a written blob passed %d bytes; not keeping it", self.limit)
            self.close()
            return False
        try:
            self._append(fd, chunk)
        except OSError as err:
            log.debug("read cache: cannot keep a written blob: %s", err)
            self.close()
            return False
        return True

    def publish(self, digest: str, size: int) -> bool:
        """Give the copy ``digest``'s name if it holds exactly ``size`` bytes, which the
        caller verified are ``digest``'s; False (nothing kept) if it does not or was
        dropped. The copy is closed either way. OSError when the rename fails."""
        try:
            if not self.active or self.written != size:
                return False
            self._publish(digest, size)
            return True
        finally:
            self.close()


def _open_read(path: str) -> int:
    return os.open(path, os.O_RDONLY | os.O_CLOEXEC)
