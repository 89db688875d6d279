"""Small blobs committed with one sync: their bytes ride in the record's transaction.

A commit through the metadata layer used to sync three times: the blob file,
its directory once the file was linked into place, and the WAL for the
record. For a small blob (at most :data:`INLINE_LIMIT` bytes) on the SQLite
database over a backend that can settle blobs later (the local store:
:class:`SettlingBackend`, :class:`InlineWriter`) it syncs once:

1. The bytes are verified first (size, expected digest: the same errors as
   before, the ingest kept for resuming) and read back from the ingest file.
2. The transaction that writes the record (and deletes the ingest row) also
   inserts them into ``unsettled_blobs``. Its WAL sync is the commit's one
   sync: from then on the bytes are as durable as the record.
3. Only then is the ingest file linked into place, with no sync at all.
   The order is what keeps a crash safe: a file in the blob directory that
   no durable row backs could be empty or short after a power loss, and a
   later shared-policy writer trusting the backend would record it.
4. A :class:`Settler` thread (every :data:`SETTLE_INTERVAL` seconds while
   rows exist) makes those files durable - a file holding exactly the row's
   bytes is synced (one ``syncfs`` for many), any other is rewritten from the
   row (temporary file, sync, rename), then each blob directory is synced -
   and only then deletes the rows, without a sync of its own (a row lost to
   a power loss is settled again, harmlessly). The database opening settles
   every row left over before it serves anything, and closing it settles
   the rest.

So a crash leaves no blob or a verified one, and nothing acknowledged is
lost: while a commit's file may not be durable, its bytes are in a durable
row; a reader that finds no file (between the record and the link, or after
a link that failed) is served from the row (``ContentStore.reader_at``).

Races. The settler holds the content lock shared, like a commit, so a GC
(exclusive) never runs inside a settle. GC's sweep deletes, in its own
transaction, the rows of digests no record and no ingest needs any more, and
its backend cleanup then deletes their files: a settler can never write a
collected blob back. A row outlives a namespace's Delete of the record (the
file stays until GC), so a writer trusting that file meanwhile is safe.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from types import TracebackType
from typing import Final, Protocol, Self, runtime_checkable

from contentd.metadata.core import Core

__all__ = [
    "INLINE_LIMIT",
    "SETTLE_INTERVAL",
    "BytesReaderAt",
    "InlineWriter",
    "Settler",
    "SettlingBackend",
    "unsettled_bytes",
]

log = logging.getLogger(__name__)

#: the largest blob committed with its bytes in the record's transaction: at 64 KiB the
#: WAL frames it adds (16 pages of 4 KiB) cost less than the two syncs it saves
INLINE_LIMIT: Final = 64 << 10

#: how often the settler looks for rows (only while commits have added some)
SETTLE_INTERVAL: Final = 0.5

#: rows settled per round (each round holds the content lock shared)
_BATCH: Final = 256


@runtime_checkable
class InlineWriter(Protocol):
    """A backend writer that can commit without a sync (the local store's)."""

    def unsynced_bytes(self, limit: int) -> bytes | None: ...

    def publish_unsynced(self) -> None: ...


@runtime_checkable
class SettlingBackend(Protocol):
    """A backend that can make blobs durable after an unsynced commit (the local store)."""

    def settle_blobs(self, blobs: Mapping[str, bytes]) -> list[str]: ...


class BytesReaderAt:
    """A ReaderAt over bytes in memory (an unsettled blob's row)."""

    __slots__ = ("_data",)

    def __init__(self, data: bytes) -> None:
        self._data = data

    @property
    def size(self) -> int:
        return len(self._data)

    def read_at(self, offset: int, n: int) -> bytes:
        if offset < 0 or n <= 0:
            return b""
        return self._data[offset : offset + n]

    def close(self) -> None:
        pass

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        pass


def unsettled_bytes(core: Core, digest: str) -> bytes | None:
    """The bytes of ``digest``'s unsettled row, if it has one."""
    rows = core.sql.query("SELECT data FROM unsettled_blobs WHERE digest = ?", (digest,))
    return bytes(rows[0][0]) if rows else None


class Settler:
    """Settles the unsettled rows of one database over one backend (see the module text)."""

    def __init__(
        self, core: Core, backend: SettlingBackend, interval: float = SETTLE_INTERVAL
    ) -> None:
        self._core = core
        self._backend = backend
        self._interval = interval
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()  # one settle at a time

    def notify(self) -> None:
        """A commit added a row: settle it at the next round."""
        self._wake.set()

    def start(self) -> None:
        thread = threading.Thread(target=self._run, name="contentd-settler", daemon=True)
        self._thread = thread
        thread.start()

    def stop(self) -> None:
        """Stop the thread (the rows left are settled by :meth:`settle_all` or the next open)."""
        self._stop.set()
        self._wake.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join()

    def settle_all(self) -> int:
        """Settle every row there is now; how many were settled. Rows that cannot be
        settled (logged) are left."""
        total = 0
        while True:
            settled, left = self.settle_once()
            total += settled
            if not settled or not left:
                return total

    def settle_once(self) -> tuple[int, bool]:
        """One round: (rows settled, whether more rows may be waiting)."""
        core = self._core
        with self._lock, core.content_lock.shared():
            if core.sql.closed:
                return 0, False
            with core.sql.read() as conn:
                rows = conn.execute(
                    "SELECT digest, data FROM unsettled_blobs ORDER BY digest LIMIT ?", (_BATCH,)
                ).fetchall()
            if not rows:
                return 0, False
            settled = self._backend.settle_blobs({str(d): bytes(b) for d, b in rows})
            if settled:
                # no sync: a delete lost to a power loss only settles the blob again
                with core.sql.write(durable=False) as conn:
                    conn.executemany(
                        "DELETE FROM unsettled_blobs WHERE digest = ?", [(d,) for d in settled]
                    )
            return len(settled), len(rows) == _BATCH

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait()
            if self._stop.wait(self._interval):
                return
            self._wake.clear()
            try:
                self.settle_all()
                if self._core.sql.query("SELECT 1 FROM unsettled_blobs LIMIT 1"):
                    self._wake.set()  # some could not be settled: try again next round
            except Exception:
                if self._stop.is_set() or self._core.sql.closed:
                    return
                log.exception("settling unsynced blobs failed; retrying")
                self._wake.set()
