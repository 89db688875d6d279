"""Blob contents for the workloads: distinct per sample, cheap to make and to digest.

A big blob is ``n - 1`` copies of one random 1 MiB block followed by a last
block ending in a 32-byte tag. Every blob of ``n`` MiB shares the digest
state of its first ``n - 1`` MiB, so a new blob's digest costs one 1 MiB
update, and the ``ctr content ingest`` input file is retagged in place (it
stays in the page cache) instead of being written again.
"""

from __future__ import annotations

import hashlib
import os
import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final

__all__ = ["MIB", "TAG_SIZE", "BigBlob", "BlobMaker"]

MIB: Final = 1 << 20
TAG_SIZE: Final = 32


@dataclass(frozen=True)
class BigBlob:
    """``mib`` MiB: the shared block ``mib - 1`` times, then ``last``."""

    block: bytes
    last: bytes
    mib: int
    digest: str

    @property
    def size(self) -> int:
        return self.mib * MIB

    def chunks(self) -> Iterator[bytes]:
        block = self.block
        for _ in range(self.mib - 1):
            yield block
        yield self.last


class BlobMaker:
    """Makes distinct blobs from one random block (seeded: runs are repeatable)."""

    def __init__(self, seed: int = 6) -> None:
        self._rng = random.Random(seed)
        self.block = self._rng.randbytes(MIB)
        self._prefix: dict[int, hashlib._Hash] = {}

    def _tagged(self, tag: str) -> bytes:
        raw = tag.encode()[:TAG_SIZE].ljust(TAG_SIZE, b".")
        return self.block[:-TAG_SIZE] + raw

    def _state(self, mib: int) -> hashlib._Hash:
        h = self._prefix.get(mib)
        if h is None:
            h = hashlib.sha256()
            for _ in range(mib - 1):
                h.update(self.block)
            self._prefix[mib] = h
        return h.copy()

    def big(self, mib: int, tag: str) -> BigBlob:
        """A ``mib`` MiB blob whose last bytes are ``tag`` (at most 32 bytes of it)."""
        if mib < 1:
            raise ValueError("mib must be at least 1")
        last = self._tagged(tag)
        h = self._state(mib)
        h.update(last)
        return BigBlob(self.block, last, mib, "sha256:" + h.hexdigest())

    def write_file(self, path: str, mib: int, tag: str) -> str:
        """Write the blob ``big(mib, tag)`` to ``path``; its digest."""
        blob = self.big(mib, tag)
        with open(path, "wb") as f:
            for chunk in blob.chunks():
                f.write(chunk)
            f.flush()
            os.fsync(f.fileno())
        return blob.digest

    def retag_file(self, path: str, mib: int, tag: str) -> str:
        """Turn the file at ``path`` (from :meth:`write_file`) into ``big(mib, tag)``."""
        blob = self.big(mib, tag)
        fd = os.open(path, os.O_WRONLY)
        try:
            os.pwrite(fd, blob.last[-TAG_SIZE:], blob.size - TAG_SIZE)
        finally:
            os.close(fd)
        return blob.digest

    @staticmethod
    def small(size: int, tag: str) -> tuple[bytes, str]:
        """``size`` bytes starting with ``tag`` (distinct tags, distinct blobs); and the digest."""
        head = tag.encode()
        body = hashlib.sha256(head).digest()
        data = (head + b"\n" + body * (size // len(body) + 1))[:size]
        return data, "sha256:" + hashlib.sha256(data).hexdigest()
