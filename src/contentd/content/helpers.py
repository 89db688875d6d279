"""Client helpers over any :class:`~contentd.content.store.Store`: containerd's
``OpenWriter``, ``WriteBlob``, ``Copy`` and ``ReadBlob``.
"""

from __future__ import annotations

import io
import random
import time
from collections.abc import Mapping
from typing import BinaryIO, Protocol, runtime_checkable

from contentd.content.errors import AlreadyExists, Unavailable, Unknown
from contentd.content.store import Ingester, Provider, Writer
from contentd.content.types import Descriptor

__all__ = ["COPY_BUFFER", "copy", "open_writer", "read_blob", "write_blob"]

COPY_BUFFER = 1 << 20


@runtime_checkable
class _PositionalReader(Protocol):
    def read_at(self, offset: int, n: int) -> bytes: ...


def open_writer(
    store: Ingester,
    ref: str,
    total: int = 0,
    expected: str | None = None,
    *,
    timeout: float | None = None,
) -> Writer:
    """Open a writer, retrying while the ref is locked (Unavailable).

    Sleeps a random ``[0, r)`` ms between tries, ``r`` doubling from 16 to 2048.
    Without ``timeout`` it retries forever; with one, the last error is raised.
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    retry_ms = 16
    while True:
        try:
            return store.writer(ref, total=total, expected=expected)
        except Unavailable:
            if deadline is not None and time.monotonic() >= deadline:
                raise
        time.sleep(random.uniform(0, retry_ms) / 1000)
        retry_ms = min(retry_ms * 2, 2048)


def _skip_to(reader: BinaryIO | _PositionalReader, offset: int) -> BinaryIO | _SectionFrom:
    """Position ``reader`` at ``offset``: seek, positional reads, or read-and-discard."""
    if isinstance(reader, _PositionalReader):
        return _SectionFrom(reader, offset)
    if reader.seekable():
        reader.seek(offset, io.SEEK_SET)
        return reader
    left = offset
    while left > 0:
        chunk = reader.read(min(left, COPY_BUFFER))
        if not chunk:
            break
        left -= len(chunk)
    return reader


class _SectionFrom:
    """A sequential view of a positional reader starting at ``offset``."""

    def __init__(self, reader: _PositionalReader, offset: int) -> None:
        self._reader = reader
        self._offset = offset

    def read(self, n: int) -> bytes:
        data = self._reader.read_at(self._offset, n)
        self._offset += len(data)
        return data


def copy(
    writer: Writer,
    reader: BinaryIO | _PositionalReader,
    size: int = 0,
    expected: str | None = None,
    labels: Mapping[str, str] | None = None,
) -> None:
    """Copy ``reader`` into ``writer`` from the writer's offset, then commit.

    AlreadyExists from commit counts as success. If ``size`` is known and the
    reader ends early, raises Unknown ``unexpected EOF``.
    """
    offset = writer.status().offset
    source: BinaryIO | _SectionFrom
    if offset > 0:
        source = _skip_to(reader, offset)
    elif isinstance(reader, _PositionalReader):
        source = _SectionFrom(reader, 0)
    else:
        source = reader
    copied = 0
    read = source.read
    while True:
        chunk = read(COPY_BUFFER)
        if not chunk:
            break
        writer.write(chunk)
        copied += len(chunk)
    if size and copied < size - offset:
        writer.close()
        raise Unknown(f"failed to copy: unexpected EOF (copied {copied} of {size - offset} bytes)")
    try:
        writer.commit(size, expected, labels)
    except AlreadyExists:
        return


def write_blob(
    store: Ingester,
    ref: str,
    reader: BinaryIO | _PositionalReader,
    desc: Descriptor | None = None,
    labels: Mapping[str, str] | None = None,
    *,
    timeout: float | None = None,
) -> None:
    """Open a writer for ``ref`` and copy ``reader`` into it.

    Content that already exists is success, and ``reader`` is then not read.
    """
    desc = desc or Descriptor()
    try:
        writer = open_writer(store, ref, desc.size, desc.digest or None, timeout=timeout)
    except AlreadyExists:
        return
    try:
        copy(writer, reader, desc.size, desc.digest or None, labels)
    except BaseException:
        writer.close()
        raise


def read_blob(store: Provider, target: str | Descriptor) -> bytes:
    """All bytes of a blob. For small blobs only; stream large ones with reader_at."""
    with store.reader_at(target) as ra:
        parts: list[bytes] = []
        offset = 0
        while offset < ra.size:
            chunk = ra.read_at(offset, min(COPY_BUFFER, ra.size - offset))
            if not chunk:
                break
            parts.append(chunk)
            offset += len(chunk)
        return b"".join(parts)
