"""S3Store: the content store on S3-compatible object storage.

Blobs are objects at ``<prefix>blobs/<alg>/<hex>`` (content-addressed, never
rewritten). Ingests are multipart uploads whose state lives in an
:class:`~contentd.s3.ingests.IngestStates` (see :mod:`contentd.s3.writer`);
reads go through a node-local :class:`~contentd.s3.cache.ReadCache`, so a
caller's many small ``read_at`` calls never each become an S3 request. The cache
also keeps each blob committed through this node, copied as it was written.

Like containerd's local store (and unlike the metadata layer above it),
deleting a missing blob or aborting a missing ingest succeeds, and labels
live in an optional :class:`~contentd.content.store.LabelStore`.
Every S3 failure reaches callers as a ContentError kind
(:func:`contentd.s3.errors.translate`): an unreachable endpoint is Unavailable.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Final, TypeVar

from contentd import filters as filtering
from contentd.content import digest as digests
from contentd.content.errors import (
    AlreadyExists,
    ContentError,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    Unavailable,
    Unknown,
)
from contentd.content.filters import info_adaptor, status_adaptor
from contentd.content.gotime import from_ns
from contentd.content.labels import apply_label_update
from contentd.content.store import LabelStore, ReaderAt, digest_of_target
from contentd.content.types import Info, Status, utcnow
from contentd.local.roots import root_state
from contentd.s3.cache import CacheTee, ReadCache
from contentd.s3.client import S3Location
from contentd.s3.errors import translate
from contentd.s3.fill import Fill
from contentd.s3.ingests import IngestState, IngestStates, Part, SqlIngestStates
from contentd.s3.reader import WINDOW, RangedReaderAt
from contentd.s3.writer import S3Writer, new_hasher, restore_hasher

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

    from contentd.metadata.sql import Database

__all__ = ["MIN_PART_SIZE", "S3Stats", "S3Store"]

log = logging.getLogger(__name__)

#: S3's smallest part (all but the last)
MIN_PART_SIZE: Final = 5 << 20
DEFAULT_PART_SIZE: Final = 8 << 20
#: CopyObject's limit; bigger blobs are copied part by part
_COPY_LIMIT: Final = 5 << 30
_COPY_PART: Final = 1 << 30
_CREATED_META: Final = "contentd-created-ns"
_GET_CHUNK: Final = 1 << 20
#: windows of ranged reads kept per store (each :data:`WINDOW` bytes at most)
_WINDOWS_KEPT: Final = 4
_TOO_BIG_KEPT: Final = 256
#: blobs filled into the read cache in the background at once (each holds one GET
#: and a 1 MiB buffer); past it a cold read fills the cache before it returns
_FILLS_MAX: Final = 4

T = TypeVar("T")

# live writers of every S3Store in the process, by (lock root, ref): Status sees their spool
_live: dict[tuple[str, str], S3Writer] = {}
_live_mutex = threading.Lock()
# commits of one digest in this process take turns, so one wins (a fixed set of locks)
_commit_locks = [threading.Lock() for _ in range(64)]


@dataclass
class S3Stats:
    """S3 requests made by this store (for tests and the benchmark)."""

    gets: int = 0
    ranged_gets: int = 0
    heads: int = 0
    puts: int = 0
    parts: int = 0
    copies: int = 0


class S3Store:
    """The content store in ``location``'s bucket.

    ``states`` keeps ingest records; ``spool_dir`` (node-local) holds each
    ingest's bytes since its last uploaded part and this node's id; ``cache``
    serves reads (None: every read is a ranged GET). ``part_size`` is at least
    5 MiB (S3's minimum part).
    """

    def __init__(
        self,
        client: S3Client,
        location: S3Location,
        *,
        states: IngestStates,
        spool_dir: str | os.PathLike[str],
        cache: ReadCache | None = None,
        label_store: LabelStore | None = None,
        part_size: int = DEFAULT_PART_SIZE,
    ) -> None:
        if part_size < MIN_PART_SIZE:
            raise InvalidArgument(f"part size {part_size} is below S3's minimum of 5 MiB")
        self.client = client
        self.location = location
        self.states = states
        self.cache = cache
        self.labels = label_store
        self.part_size = part_size
        self.stats = S3Stats()
        self.spool_dir = os.path.abspath(os.fspath(spool_dir))
        os.makedirs(self.spool_dir, 0o700, exist_ok=True)
        self.node_id = _node_id(self.spool_dir)
        self._bucket = location.bucket
        self._prefix = location.prefix
        self._lock_root = f"s3:{location.endpoint}/{location.bucket}/{location.prefix}"
        self._root_state = root_state(self._lock_root)  # shared by stores on this location
        self._locks = self._root_state.locks
        # part uploads of every writer of this store (each writer has at most IN_FLIGHT)
        self._uploader = ThreadPoolExecutor(max_workers=8, thread_name_prefix="s3-upload")
        # ranged reads of blobs bigger than the cache: the last few windows, shared
        self._windows: OrderedDict[tuple[str, int], bytes] = OrderedDict()
        self._windows_lock = threading.Lock()
        # sizes of blobs known to be bigger than the cache (no HEAD per reader_at)
        self._too_big: OrderedDict[str, int] = OrderedDict()
        # blobs being copied into the read cache, readable as they arrive
        self._fills: dict[str, Fill] = {}
        self._fills_lock = threading.Lock()
        self._prefetches = 0  # queued or running prefetch tasks
        self._filler = ThreadPoolExecutor(max_workers=_FILLS_MAX, thread_name_prefix="s3-fill")

    def __repr__(self) -> str:
        return f"S3Store({self.location.describe()!r})"

    def use_ingest_states(self, states: IngestStates) -> None:
        """Keep ingest records in ``states`` from now on: the metadata layer hands its
        own database over (:class:`~contentd.s3.ingests.SqlIngestStates` on PostgreSQL,
        shared by every node). Only before a writer of this store is open; records in
        the previous store are not carried over."""
        with _live_mutex:
            if any(root == self._lock_root for root, _ in _live):
                raise FailedPrecondition("cannot change ingest states while writers are open")
            old, self.states = self.states, states
        old.close()

    def keep_ingest_records_in(self, db: Database) -> None:
        """Called by a metadata layer shared by several nodes (PostgreSQL) with its
        database: ingest records go to a table there, so any node can resume."""
        self.use_ingest_states(SqlIngestStates(db))

    def close(self) -> None:
        """Close the ingest-state store and the client's connections."""
        with self._fills_lock:
            for fill in self._fills.values():
                fill.cancelled = True
        self._filler.shutdown(wait=True, cancel_futures=True)
        self._uploader.shutdown(wait=True, cancel_futures=True)
        self.states.close()
        self.client.close()

    # -- keys --------------------------------------------------------------

    def _blob_key(self, digest: str) -> str:
        parsed = digests.parse(digest)
        return f"{self._prefix}blobs/{parsed.algorithm}/{parsed.encoded}"

    def _staging_key(self, state: IngestState) -> str:
        return f"{self._prefix}ingests/{state.ingest_id}"

    def _is_own_key(self, key: str) -> bool:
        """Whether ``key`` is one this store makes (a blob or staging key), not another
        store's in the same bucket under a longer prefix (``<prefix>other/...``)."""
        if not key.startswith(self._prefix):
            return False
        rest = key[len(self._prefix) :]
        if rest.startswith("ingests/"):
            return "/" not in rest[len("ingests/") :]
        if rest.startswith("blobs/"):
            return digests.is_valid(rest[len("blobs/") :].replace("/", ":", 1))
        return False

    def _spool_path(self, ingest_id: str) -> str:
        if not ingest_id.isalnum():  # ours are uuid4 hex; never a path from elsewhere
            raise InvalidArgument(f"invalid ingest id {ingest_id!r}")
        return os.path.join(self.spool_dir, ingest_id)

    # -- S3 calls ------------------------------------------------------------

    def _call(self, context: str, fn: Callable[..., T], **kwargs: Any) -> T:
        try:
            return fn(Bucket=self._bucket, **kwargs)
        except Exception as err:
            raise translate(err, context) from None

    def _head(self, key: str, context: str) -> Mapping[str, Any] | None:
        self.stats.heads += 1
        try:
            return self._call(context, self.client.head_object, Key=key)
        except NotFound:
            return None

    def _exists(self, key: str) -> bool:
        return self._head(key, f"head {key}") is not None

    def _size_of(self, key: str) -> int | None:
        head = self._head(key, f"head {key}")
        return None if head is None else int(head["ContentLength"])

    def _put(self, key: str, data: bytes, digest: str) -> None:
        self.stats.puts += 1
        self._call(
            f"put {digest}",
            self.client.put_object,
            Key=key,
            Body=data,
            Metadata={_CREATED_META: str(time.time_ns())},
        )

    def _create_upload(self, key: str) -> str:
        out = self._call(f"create upload {key}", self.client.create_multipart_upload, Key=key)
        return str(out["UploadId"])

    def _upload_part(self, key: str, upload_id: str, number: int, data: bytes) -> str:
        self.stats.parts += 1
        out = self._call(
            f"upload part {number} of {key}",
            self.client.upload_part,
            Key=key,
            UploadId=upload_id,
            PartNumber=number,
            Body=data,
        )
        return str(out["ETag"])

    def _upload_part_async(self, key: str, upload_id: str, number: int, data: bytes) -> Future[str]:
        return self._uploader.submit(self._upload_part, key, upload_id, number, data)

    def _complete_upload(self, key: str, upload_id: str, parts: tuple[Part, ...]) -> None:
        self._call(
            f"complete upload {key}",
            self.client.complete_multipart_upload,
            Key=key,
            UploadId=upload_id,
            MultipartUpload={"Parts": [{"PartNumber": p.number, "ETag": p.etag} for p in parts]},
        )

    def _abort_upload(self, key: str, upload_id: str) -> None:
        with contextlib.suppress(NotFound):
            self._call(
                f"abort upload {key}",
                self.client.abort_multipart_upload,
                Key=key,
                UploadId=upload_id,
            )

    def _delete_key(self, key: str) -> None:
        self._call(f"delete {key}", self.client.delete_object, Key=key)

    def _copy(self, source: str, key: str, size: int, digest: str) -> None:
        """Server-side copy of ``source`` to ``key`` (part by part past 5 GiB)."""
        self.stats.copies += 1
        src = {"Bucket": self._bucket, "Key": source}
        meta = {_CREATED_META: str(time.time_ns())}
        context = f"copy {digest}"
        if size <= _COPY_LIMIT:
            self._call(
                context,
                self.client.copy_object,
                Key=key,
                CopySource=src,
                Metadata=meta,
                MetadataDirective="REPLACE",
            )
            return
        upload_id = self._call(
            context, self.client.create_multipart_upload, Key=key, Metadata=meta
        )["UploadId"]
        try:
            parts = []
            for number, start in enumerate(range(0, size, _COPY_PART), 1):
                end = min(start + _COPY_PART, size) - 1
                out = self._call(
                    context,
                    self.client.upload_part_copy,
                    Key=key,
                    UploadId=upload_id,
                    PartNumber=number,
                    CopySource=src,
                    CopySourceRange=f"bytes={start}-{end}",
                )
                parts.append({"PartNumber": number, "ETag": out["CopyPartResult"]["ETag"]})
            self._call(
                context,
                self.client.complete_multipart_upload,
                Key=key,
                UploadId=upload_id,
                MultipartUpload={"Parts": parts},
            )
        except BaseException:
            self._abort_upload(key, upload_id)
            raise

    def _commit_lock(self, digest: str) -> threading.Lock:
        return _commit_locks[hash((self._lock_root, digest)) % len(_commit_locks)]

    # -- Provider --------------------------------------------------------

    def reader_at(self, target: str | Any) -> ReaderAt:
        digest = digest_of_target(target)
        key = self._blob_key(digest)
        cache = self.cache
        if cache is None:
            size = self._size_of(key)
            if size is None:
                raise NotFound(f"content {digest}")
            return RangedReaderAt(self, key, size)
        big = self._too_big.get(digest)
        if big is not None:
            return RangedReaderAt(self, key, big)
        reader = self._fill_reader(digest) or cache.open(digest)
        if reader is not None:
            return reader
        with cache.fill_lock(digest):
            # filled, or begun by another reader meanwhile
            reader = self._fill_reader(digest) or cache.open(digest)
            if reader is not None:
                return reader
            context = f"content {digest}"
            size = self._size_of(key)
            if size is None:
                raise NotFound(context)
            if not cache.fits(size):
                with self._windows_lock:
                    self._too_big[digest] = size
                    while len(self._too_big) > _TOO_BIG_KEPT:
                        self._too_big.popitem(last=False)
                return RangedReaderAt(self, key, size)
            fill = self._begin_fill(cache, digest, size)
            if fill is None:  # as many fills as allowed run: fill it here
                return self._fill_now(cache, digest, key, size)
            reader = fill.reader()
            try:
                self._filler.submit(self._run_fill, fill, key)
            except BaseException:
                if reader is not None:
                    reader.close()
                fill.finish(failed=Unknown("store closed"))
                self._end_fill(fill)
                raise
            assert reader is not None  # the fill has not started
            return reader

    def holds(self, digest: str, offset: int, size: int) -> bool:
        """Whether ``size`` bytes of ``digest`` from ``offset`` are on this node's disk,
        readable without an S3 request or waiting for one (in the read cache and
        verified, or already brought by a running fill). A hint for the daemon, which
        answers such reads on the connection's reader thread instead of a worker."""
        fill = self._fills.get(digest)
        if fill is not None:
            return fill.holds(offset + size)
        cache = self.cache
        return cache is not None and digest not in self._too_big and cache.verified(digest)

    def _fill_reader(self, digest: str) -> ReaderAt | None:
        fill = self._fills.get(digest)
        return fill.reader() if fill is not None else None

    def _fill_now(self, cache: ReadCache, digest: str, key: str, size: int) -> ReaderAt:
        """Fill the cache with the whole blob, then open it (under the digest's fill lock)."""
        context = f"content {digest}"
        self.stats.gets += 1
        try:
            out = self._call(context, self.client.get_object, Key=key)
        except NotFound:
            raise NotFound(context) from None
        body = out["Body"]
        try:
            try:
                cache.fill(digest, size, _chunks(body, context))
            except FailedPrecondition as err:  # the stored object is damaged
                raise Unknown(f"{context}: S3 object fails verification: {err}") from None
        finally:
            body.close()
        reader = cache.open(digest)
        if reader is None:
            raise Unknown(f"{context}: cached copy vanished right after filling")
        return reader

    # -- filling ahead -------------------------------------------------------

    def _begin_fill(self, cache: ReadCache, digest: str, size: int) -> Fill | None:
        """A new fill of ``digest`` (registered; readers find it), or None when
        :data:`_FILLS_MAX` run already. Under the digest's fill lock."""
        with self._fills_lock:
            if len(self._fills) >= _FILLS_MAX:
                return None
            key = self._blob_key(digest)
            fill = Fill(cache.begin_fill(digest, size), lambda: RangedReaderAt(self, key, size))
            self._fills[digest] = fill
        return fill

    def _end_fill(self, fill: Fill) -> None:
        with self._fills_lock:
            if self._fills.get(fill.digest) is fill:
                del self._fills[fill.digest]

    def _run_fill(self, fill: Fill, key: str) -> None:
        """Copy the blob into the cache file, telling readers how far it got; commit it
        under its digest if it verifies (a fill thread)."""
        context = f"content {fill.digest}"
        pending = fill.pending
        try:
            self.stats.gets += 1
            body = self._call(context, self.client.get_object, Key=key)["Body"]
            try:
                for chunk in _chunks(body, context):
                    if fill.cancelled:
                        break
                    pending.write(chunk)
                    fill.advance(len(chunk))
            finally:
                body.close()
            if fill.cancelled:
                raise Unavailable(f"{context}: read cache fill cancelled")
            pending.commit()
        except FailedPrecondition as err:  # the stored object is damaged
            log.warning("read cache: %s from S3 fails verification: %s", fill.digest, err)
            fill.finish(corrupt=Unknown(f"{context}: S3 object fails verification: {err}"))
        except ContentError as err:
            log.info("read cache: filling %s stopped: %s", fill.digest, err)
            fill.finish(failed=err)
        except Exception as err:  # never lost on a pool thread
            log.warning("read cache: filling %s failed: %r", fill.digest, err)
            fill.finish(failed=Unknown(f"{context}: {err!r}"))
        else:
            fill.finish()
        finally:
            self._end_fill(fill)

    # -- keeping what this node writes ------------------------------------------

    def _begin_tee(self, total: int) -> CacheTee | None:
        """A copy for the read cache of a blob about to be written from its first byte
        (``total`` bytes, 0: unknown); None without a cache, for a blob bigger than it,
        or when no file can be made there (the write goes on without)."""
        cache = self.cache
        if cache is None or not cache.fits(total):
            return None
        try:
            return cache.begin_tee(total or cache.max_bytes)
        except OSError as err:
            log.debug("read cache: not keeping a written blob: %s", err)
            return None

    def _publish_tee(self, tee: CacheTee, digest: str, size: int) -> None:
        """Name a committed blob's copy in the read cache (its writer verified ``size``
        and ``digest``), unless it is there already or being filled. Never raises: a
        commit does not fail because the cache could not keep a copy."""
        cache = self.cache
        try:
            if cache is None or not tee.active:
                return
            with cache.fill_lock(digest):
                if digest in self._fills or cache.has(digest):
                    return
                if not tee.publish(digest, size):
                    log.debug("read cache: the copy of %s is incomplete; not kept", digest)
        except Exception as err:
            log.debug("read cache: cannot keep %s as written: %s", digest, err)
        finally:
            tee.close()

    def prefetch(self, digest: str, size: int) -> None:
        """Start copying ``digest`` (of ``size`` bytes) into the read cache in the
        background, if it is neither cached nor being filled and fits; for a blob
        this node is about to read (one another node stored and this one links)."""
        cache = self.cache
        if cache is None or digest in self._fills or not cache.fits(size):
            return
        with self._fills_lock:
            if self._prefetches >= _FILLS_MAX:
                return
            self._prefetches += 1
        try:
            self._filler.submit(self._prefetch, cache, digest, size)
        except RuntimeError:  # closed
            with self._fills_lock:
                self._prefetches -= 1

    def _prefetch(self, cache: ReadCache, digest: str, size: int) -> None:
        try:
            with cache.fill_lock(digest):
                if digest in self._fills or cache.has(digest):
                    return
                fill = self._begin_fill(cache, digest, size)
            if fill is not None:
                self._run_fill(fill, self._blob_key(digest))
        except Exception as err:  # a hint only: a reader fills on its own
            log.info("read cache: prefetch of %s: %s", digest, err)
        finally:
            with self._fills_lock:
                self._prefetches -= 1

    def _window(self, key: str, index: int, size: int) -> bytes:
        """Window ``index`` of the object ``key`` (of ``size`` bytes), from the few kept."""
        with self._windows_lock:
            data = self._windows.get((key, index))
            if data is not None:
                self._windows.move_to_end((key, index))
                return data
        start = index * WINDOW
        end = min(start + WINDOW, size) - 1
        self.stats.ranged_gets += 1
        out = self._call(
            f"read {key}", self.client.get_object, Key=key, Range=f"bytes={start}-{end}"
        )
        body = out["Body"]
        try:
            data = bytes(body.read(WINDOW + 1))
        except Exception as err:
            raise translate(err, f"read {key}") from None
        finally:
            body.close()
        if len(data) != end - start + 1:  # never keep what the range did not ask for
            raise Unknown(f"read {key}: S3 sent {len(data)} bytes for {end - start + 1}")
        with self._windows_lock:
            self._windows[(key, index)] = data
            while len(self._windows) > _WINDOWS_KEPT:
                self._windows.popitem(last=False)
        return data

    # -- Manager ---------------------------------------------------------

    def info(self, digest: str) -> Info:
        head = self._head(self._blob_key(digest), f"content {digest}")
        if head is None:
            raise NotFound(f"content {digest}")
        created = _created(head)
        return Info(
            digest=digest,
            size=int(head["ContentLength"]),
            created_at=created,
            updated_at=created,
            labels=self.labels.get(digest) if self.labels is not None else None,
        )

    def update(self, info: Info, *fieldpaths: str) -> Info:
        if self.labels is None:
            raise FailedPrecondition("update not supported on immutable content store")
        current = self.info(info.digest)
        apply_label_update(self.labels, info, fieldpaths)
        return replace(current, updated_at=utcnow(), labels=self.labels.get(info.digest))

    def walk(self, *filters: str) -> Iterator[Info]:
        match = filtering.parse_all(filters)
        prefix = f"{self._prefix}blobs/"
        paginator = self.client.get_paginator("list_objects_v2")
        pages = paginator.paginate(Bucket=self._bucket, Prefix=prefix)
        iterator = iter(pages)
        while True:
            try:
                page = next(iterator)
            except StopIteration:
                return
            except Exception as err:
                raise translate(err, f"walk {self.location.describe()}") from None
            for obj in page.get("Contents", ()):
                name = obj["Key"][len(prefix) :]
                digest = name.replace("/", ":", 1)
                if not digests.is_valid(digest):
                    log.warning("unexpected object under %s: %s", prefix, obj["Key"])
                    continue
                modified = obj["LastModified"]
                info = Info(
                    digest=digest,
                    size=int(obj["Size"]),
                    created_at=modified,
                    updated_at=modified,
                    labels=self.labels.get(digest) if self.labels is not None else None,
                )
                if match.match(info_adaptor(info)):
                    yield info

    def delete(self, digest: str) -> None:
        key = self._blob_key(digest)
        # after a commit of the digest under way here, copy into the cache included
        with self._commit_lock(digest):
            self._delete(digest, key)

    def _delete(self, digest: str, key: str) -> None:
        self._delete_key(key)
        with self._fills_lock:
            fill = self._fills.pop(digest, None)
        if fill is not None:  # never committed to the cache after this
            fill.cancelled = True
        with self._windows_lock:
            self._too_big.pop(digest, None)
            # a blob stored again under the key (a repair) must not be read from these
            for window in [w for w in self._windows if w[0] == key]:
                del self._windows[window]
        if self.cache is not None:
            self.cache.remove(digest)

    # -- IngestManager ---------------------------------------------------

    def status(self, ref: str) -> Status:
        with _live_mutex:
            w = _live.get((self._lock_root, ref))
        if w is not None:
            return w.status()
        state = self.states.get(ref)
        if state is None:
            raise NotFound(f"ingest {ref}")
        return self._status(state)

    def _status(self, state: IngestState) -> Status:
        return Status(
            ref=state.ref,
            offset=state.uploaded + self._local_tail(state),
            total=state.total,
            started_at=from_ns(state.started_ns),
            updated_at=from_ns(state.updated_ns),
        )

    def _local_tail(self, state: IngestState) -> int:
        """The bytes after the uploaded parts this node can resume from."""
        if state.tail_node != self.node_id or not state.tail_size:
            return 0
        try:
            size = os.stat(self._spool_path(state.ingest_id)).st_size
        except OSError:
            return 0
        return state.tail_size if size >= state.tail_size else 0

    def list_statuses(self, *filters: str) -> list[Status]:
        match = filtering.parse_all(filters)
        found = {s.ref: self._status(s) for s in self.states.all()}
        with _live_mutex:
            live = [w for (root, _), w in _live.items() if root == self._lock_root]
        for w in live:
            found[w.ref] = w.status()
        return [s for s in found.values() if match.match(status_adaptor(s))]

    def walk_status_refs(self) -> Iterator[str]:
        """The ref of every ingest (for garbage collection)."""
        for state in self.states.all():
            yield state.ref

    def abort(self, ref: str) -> None:
        with _live_mutex:
            w = _live.get((self._lock_root, ref))
        if w is not None:
            w._aborted()
        state = self.states.get(ref)
        if state is not None:
            self._forget_ingest(state, abort=True)

    def abort_orphan_uploads(self, older_than: timedelta = timedelta(hours=24)) -> list[str]:
        """Abort multipart uploads at this store's keys that no ingest record knows.

        Only uploads begun more than ``older_than`` ago are touched (one begun a
        moment ago may not have its record yet). Returns the keys aborted.
        """
        known = {s.upload_id for s in self.states.all() if s.upload_id}
        cutoff = utcnow() - older_than
        aborted: list[str] = []
        paginator = self.client.get_paginator("list_multipart_uploads")
        try:
            for page in paginator.paginate(Bucket=self._bucket, Prefix=self._prefix):
                for upload in page.get("Uploads", ()):
                    if (
                        upload["UploadId"] in known
                        or upload["Initiated"] > cutoff
                        or not self._is_own_key(upload["Key"])
                    ):
                        continue
                    self._abort_upload(upload["Key"], upload["UploadId"])
                    aborted.append(upload["Key"])
        except ContentError:
            raise
        except Exception as err:
            raise translate(err, "list multipart uploads") from None
        return aborted

    def _forget_ingest(self, state: IngestState, *, abort: bool) -> None:
        """Remove an ingest: its record, spool and (``abort``) upload and staged object."""
        if abort:
            if state.upload_id:
                self._abort_upload(state.key, state.upload_id)
            if state.key == self._staging_key(state):
                with contextlib.suppress(NotFound):
                    self._delete_key(state.key)
        self.states.delete(state.ref, state.ingest_id)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._spool_path(state.ingest_id))

    # -- Ingester --------------------------------------------------------

    def writer(self, ref: str, total: int = 0, expected: str | None = None) -> S3Writer:
        return self._writer(ref, total, expected or "", check=True)

    def writer_for(self, ref: str, total: int, target: str) -> S3Writer:
        """A writer whose upload is placed at ``target``'s blob key (no copy at commit)
        without the existence check ``expected`` makes: for a metadata layer that
        decided itself that the bytes are to be uploaded. A commit of other bytes
        than ``target`` is DigestMismatch once a part is uploaded (the upload can only
        ever complete at that key, and never with bytes that do not match it)."""
        try:
            self._blob_key(target)
        except ContentError as err:
            raise err.wrap("calculating expected blob path for writer") from None
        return self._writer(ref, total, target, check=False)

    def _writer(self, ref: str, total: int, expected: str, *, check: bool) -> S3Writer:
        if not ref:
            raise InvalidArgument("ref must not be empty")
        self._locks.lock(ref)
        try:
            w = self._open_writer(ref, total, expected, check=check)
        except BaseException:
            self._locks.unlock(ref)
            raise
        with _live_mutex:
            _live[(self._lock_root, ref)] = w
        return w

    def _open_writer(self, ref: str, total: int, expected: str, *, check: bool) -> S3Writer:
        if expected and check:
            try:
                key = self._blob_key(expected)
            except ContentError as err:
                raise err.wrap("calculating expected blob path for writer") from None
            if self._exists(key):
                raise AlreadyExists(f"content {expected}")
        state = self.states.get(ref)
        if state is not None and total > 0 and state.total > 0 and total != state.total:
            log.info(
                "ingest %s: total %d differs from %d; starting it over", ref, total, state.total
            )
            self._forget_ingest(state, abort=True)
            state = None
        if state is None:
            return self._new_writer(ref, total, expected)
        tail = self._local_tail(state)
        path = self._spool_path(state.ingest_id)
        # the cache's copy must hold the blob from its first byte: only when no part
        # is uploaded (the spool then holds every byte written so far, or none)
        tee = self._begin_tee(state.total) if not state.parts else None
        hasher = restore_hasher(state.hash_state)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            if tail:
                data = os.pread(fd, tail, 0)
                hasher.update(data)
            os.ftruncate(fd, tail)
            if state.tail_node != self.node_id:
                state = replace(state, tail_node=self.node_id, tail_size=0)
                self.states.put(state)
        except BaseException:
            os.close(fd)
            if tee is not None:
                tee.close()
            raise
        return S3Writer(self, state, hasher, fd, tail, tee)

    def _new_writer(self, ref: str, total: int, expected: str) -> S3Writer:
        now = time.time_ns()
        ingest_id = uuid.uuid4().hex
        state = IngestState(
            ref=ref,
            ingest_id=ingest_id,
            key="",
            part_size=self.part_size,
            total=total,
            expected=expected,
            tail_node=self.node_id,
            started_ns=now,
            updated_ns=now,
        )
        key = self._blob_key(expected) if expected else self._staging_key(state)
        state = replace(state, key=key)
        fd = os.open(
            self._spool_path(ingest_id), os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600
        )
        try:
            self.states.put(state)
        except BaseException:
            os.close(fd)
            raise
        return S3Writer(self, state, new_hasher(), fd, 0, self._begin_tee(total))

    def _release(self, w: S3Writer) -> None:
        with _live_mutex:
            if _live.get((self._lock_root, w.ref)) is w:
                del _live[(self._lock_root, w.ref)]
        self._locks.unlock(w.ref)


def _node_id(spool_dir: str) -> str:
    """This node's id: made once per spool directory (node-local disk)."""
    path = os.path.join(spool_dir, "node-id")
    try:
        with open(path) as f:
            value = f.read().strip()
        if value:
            return value
    except FileNotFoundError:
        pass
    value = uuid.uuid4().hex
    tmp = f"{path}.{value}"
    with open(tmp, "w") as f:
        f.write(value + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return value


def _created(head: Mapping[str, Any]) -> Any:
    meta = head.get("Metadata") or {}
    value = meta.get(_CREATED_META)
    if value and str(value).isdigit():
        return from_ns(int(value))
    return head["LastModified"]


def _chunks(body: Any, context: str) -> Iterator[bytes]:
    try:
        while True:
            chunk = body.read(_GET_CHUNK)
            if not chunk:
                return
            yield chunk
    except ContentError:
        raise
    except Exception as err:
        raise translate(err, context) from None
