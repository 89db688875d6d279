"""Fetching an image from a registry straight into a content store.

:func:`fetch` resolves a reference, walks index -> manifests -> config and layers, and
downloads what the store does not hold yet, in parallel (at most ``concurrency`` blobs at
a time), each through a writer named as containerd names it (``index-<digest>``,
``manifest-<digest>``, ``config-<digest>``, ``layer-<digest>``) and verified by the commit.
It sets the labels containerd's pull sets: ``containerd.io/gc.ref.content.m.<i>`` on an
index, ``.config`` and ``.l.<i>`` on a manifest, and
``containerd.io/distribution.source.<host>=<repository>`` on every blob. Then it records
the image (name -> root descriptor) and returns the root descriptor. An index or
manifest is committed while the walk goes on to its children (the walk needs only its
verified bytes); the fetch waits for every commit before it records the image.

Durability and resumption: everything is written under a lease named after the
namespace's reference (``contentd.fetch.<sha256(ref)[:16]>``, 24 h expiry, renewed by
each attempt, labelled ``contentd.io/fetch.ref=<ref>``) that is deleted when the fetch
succeeds and kept when it fails while it holds something (a failure before anything was
written drops it). The lease is what keeps an interrupted fetch's work: its committed
blobs, which no image roots yet, and its ingests, which have no expiry of their own while
leased. containerd does the
same: ``ctr content fetch`` and ``ctr images pull`` run under a lease with a 24 h expiry
(``Client.WithLease``) that an interrupted ``ctr`` leaves behind. An interrupted layer
therefore stays an ingest; the next fetch of the same reference opens the same writer ref
and asks the registry for the rest with ``Range: bytes=<offset>-`` (starting over when
the registry ignores the range). A blob's download reports ``downloading`` at its start
(the offset it resumes from), so a client knows which ingests are open. Connection errors
and 5xx answers are retried with backoff, resuming the same way. A blob whose bytes do
not match its digest or size fails the fetch with ``FailedPrecondition`` naming the blob;
its ingest is aborted, nothing of it is committed, and blobs already committed stay.
Non-distributable layers are fetched too (from their ``urls`` first), as containerd does.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, wait
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Final, NoReturn, Protocol

from urllib3.exceptions import HTTPError

from contentd._pools import SharedPool
from contentd.content.errors import (
    AlreadyExists,
    Canceled,
    ContentError,
    DigestMismatch,
    FailedPrecondition,
    NotFound,
    SizeMismatch,
)
from contentd.content.gotime import format_text
from contentd.content.helpers import open_writer, read_blob
from contentd.content.labels import LABEL_GC_EXPIRE
from contentd.content.store import Store, Writer
from contentd.content.types import Descriptor, Info
from contentd.images.errors import RegistryUnavailable
from contentd.images.media import (
    MAX_MANIFEST_SIZE,
    ManifestError,
    check_nesting,
    children,
    gc_labels,
    is_index,
    is_manifest,
)
from contentd.images.platforms import Platform, default_platform
from contentd.images.reference import Reference, parse_reference
from contentd.images.registry import Credentials, RegistryClient, describe, discard
from contentd.metadata.images import Image

__all__ = [
    "CHUNK",
    "LABEL_DISTRIBUTION_SOURCE",
    "LABEL_FETCH_REF",
    "FetchOptions",
    "Progress",
    "fetch",
    "fetch_lease_id",
    "host_name",
    "ref_key",
    "workers",
]

log = logging.getLogger(__name__)

LABEL_DISTRIBUTION_SOURCE: Final = "containerd.io/distribution.source"
#: bytes read from a response and written per call
CHUNK: Final = 1 << 20
#: a blob at most this big (what is left of it) is read and written in one call: the
#: store then commits it without first giving its ingest a directory
_WHOLE: Final = 2 * CHUNK
_LEASE_TTL: Final = timedelta(hours=24)
#: the label on a fetch's lease naming what it fetches (``contentd leases ls`` shows it)
LABEL_FETCH_REF: Final = "contentd.io/fetch.ref"
_PROGRESS_EVERY: Final = 0.25


@dataclass(frozen=True)
class Progress:
    """One step of a fetch: ``status`` is ``resolved``, ``exists``, ``downloading``,
    ``done``, ``linked`` (another namespace held it: nothing downloaded) or ``failed`` (a
    push also has ``uploading``, ``mounted`` and ``skipped``, a non-distributable layer)
    for blob ``desc`` (``offset`` of ``desc.size``); ``resumed`` is the offset the
    download started from (on ``downloading`` and ``done``)."""

    status: str
    desc: Descriptor
    ref: str = ""
    offset: int = 0
    resumed: int = 0


@dataclass(frozen=True)
class FetchOptions:
    platforms: Sequence[Platform] = ()
    all_platforms: bool = False
    plain_http: bool = False
    credentials: Credentials | None = None
    #: the daemon's default (api.registry.DEFAULT_FETCH_CONCURRENCY)
    concurrency: int = 10
    retries: int = 4
    backoff: float = 0.2
    #: the image record's name; default: the reference as given
    image_name: str = ""
    progress: Callable[[Progress], None] | None = None
    cancelled: Callable[[], bool] = field(default=lambda: False)


class ImageRecords(Protocol):
    def create(self, image: Image) -> Image: ...
    def update(self, image: Image, *fieldpaths: str) -> Image: ...


class Leases(Protocol):
    def create(self, id: str | None = None, labels: Mapping[str, str] | None = None) -> object: ...
    def delete(self, id: str, *, sync: bool = False) -> None: ...
    def list_resources(self, id: str) -> Sequence[object]: ...
    def set_labels(self, id: str, labels: Mapping[str, str]) -> object: ...


def ref_key(desc: Descriptor) -> str:
    """containerd's writer ref for a blob (``remotes.MakeRefKey``)."""
    mt = desc.media_type
    if is_manifest(mt):
        kind = "manifest"
    elif is_index(mt):
        kind = "index"
    elif "layer" in mt or "rootfs" in mt:
        kind = "layer"
    elif "config" in mt:
        kind = "config"
    else:
        kind = "unknown"
    return f"{kind}-{desc.digest}"


def _platform_text(platform: Mapping[str, object]) -> str:
    parts = [platform.get("os"), platform.get("architecture"), platform.get("variant")]
    return "/".join(str(p) for p in parts if p) or "?"


def fetch_lease_id(reference: str) -> str:
    return "contentd.fetch." + hashlib.sha256(reference.encode()).hexdigest()[:16]


def fetch(
    store_for_lease: Callable[[str], Store],
    leases: Leases,
    images: ImageRecords,
    reference: str,
    options: FetchOptions | None = None,
) -> tuple[Descriptor, Image]:
    """Fetch ``reference`` into the store; returns the root descriptor and the image record.

    ``store_for_lease(lease_id)`` is the namespace's content store with that lease applied.
    """
    options = options or FetchOptions()
    ref = parse_reference(reference)
    with RegistryClient(
        ref.host,
        plain_http=options.plain_http,
        credentials=options.credentials,
        retries=options.retries,
        backoff=options.backoff,
        # a connection per worker: with fewer, the pool (which blocks) capped the
        # downloads at its size whatever the concurrency asked for
        maxsize=workers(options.concurrency),
    ) as client:
        job = _Fetch(client, ref, options)
        root = job.resolve()  # before the lease: a reference that resolves to nothing leaves none
        lease_id = fetch_lease_id(str(ref))
        expire = datetime.now(UTC).replace(microsecond=0) + _LEASE_TTL
        labels = {LABEL_GC_EXPIRE: format_text(expire), LABEL_FETCH_REF: str(ref)}
        _take_lease(leases, lease_id, labels)
        try:
            job.run(store_for_lease(lease_id), root)
        except BaseException:
            _drop_if_empty(leases, lease_id)
            raise
    name = options.image_name or reference
    record = Image(name=name, target=root)
    try:
        image = images.create(record)
    except AlreadyExists:
        image = images.update(record, "target")
    leases.delete(lease_id)
    return root, image


def _take_lease(leases: Leases, lease_id: str, labels: Mapping[str, str]) -> None:
    """Create the fetch's lease, or renew an earlier attempt's (which holds what that attempt
    fetched, and under which its ingests resume): its expiry starts again now, so a resume
    the day after does not lose the lease, and with it what is stored so far, half-way."""
    for _ in range(3):
        try:
            leases.create(lease_id, labels)
            return
        except AlreadyExists:
            pass
        try:
            leases.set_labels(lease_id, {LABEL_GC_EXPIRE: labels[LABEL_GC_EXPIRE]})
            return
        except NotFound:  # collected in between: create it again
            continue
    # never go on without a lease (a collection could take what the fetch stores): a
    # last create; AlreadyExists means a concurrent fetch of the reference has it
    with contextlib.suppress(AlreadyExists):
        leases.create(lease_id, labels)


def _drop_if_empty(leases: Leases, lease_id: str) -> None:
    """A failed fetch's lease that holds nothing (it failed, or was cancelled, before a
    byte was written) would only clutter ``leases ls`` for 24 h: delete it."""
    try:
        if not leases.list_resources(lease_id):
            leases.delete(lease_id)
    except ContentError as err:  # the fetch's own error is the one to report
        log.debug("fetch lease %s: %s", lease_id, err)


#: the most worker threads all fetches together keep (a fetch asks for at most 64)
_MAX_THREADS: Final = 64

#: the daemon's fetch workers, kept between fetches: a fetch that started its own
#: threads waited for each to start before it could hand it the next blob (under load a
#: few milliseconds each, so the twentieth of twenty blobs started ~0.1 s late)
_threads = SharedPool(_MAX_THREADS, "contentd-fetch")


class _Jobs:
    """One fetch's jobs on the shared worker threads, at most ``limit`` at a time (the
    rest wait in order; a worker that finishes one takes the next). Futures are cancelled
    as a pool's are: until the job starts."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._queue: deque[tuple[Future[Any], Callable[[], Any]]] = deque()
        self._running = 0

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future[Any]:
        future: Future[Any] = Future()
        item = (future, functools.partial(fn, *args))
        with self._lock:
            if self._running >= self._limit:
                self._queue.append(item)
                return future
            self._running += 1
        try:
            _threads.get().submit(self._work, item)
        except BaseException as err:  # shutting down: no job runs
            self._done_one()
            future.set_exception(err)
        return future

    def _work(self, item: tuple[Future[Any], Callable[[], Any]] | None) -> None:
        while item is not None:
            future, call = item
            if future.set_running_or_notify_cancel():
                try:
                    result = call()
                except BaseException as err:
                    future.set_exception(err)
                else:
                    future.set_result(result)
            with self._lock:
                item = self._queue.popleft() if self._queue else None
                if item is None:
                    self._done_one_locked()

    def _done_one(self) -> None:
        with self._lock:
            self._done_one_locked()

    def _done_one_locked(self) -> None:
        self._running -= 1
        if not self._running:
            self._idle.notify_all()

    def join(self) -> None:
        """Wait until every job submitted has run (or was cancelled)."""
        with self._lock:
            while self._running:
                self._idle.wait()


class _Fetch:
    store: Store  # the lease's store, set by run()
    _pool: _Jobs  # set by run(): the downloads
    _commits: _Jobs  # set by run(): the commits

    def __init__(self, client: RegistryClient, ref: Reference, options: FetchOptions) -> None:
        self.client = client
        self.ref = ref
        self.options = options
        self.platforms = list(options.platforms) or [default_platform()]
        # containerd keys the source by host name alone (no port)
        self.source_key = f"{LABEL_DISTRIBUTION_SOURCE}.{host_name(ref.host)}"
        self._progress_lock = threading.Lock()
        # documents being stored (their commits run beside the walk)
        self._stores: list[Future[None]] = []
        self._stores_lock = threading.Lock()

    # -- progress --------------------------------------------------------------------

    def emit(self, status: str, desc: Descriptor, offset: int = 0, resumed: int = 0) -> None:
        if self.options.progress is not None:
            with self._progress_lock:
                self.options.progress(Progress(status, desc, ref_key(desc), offset, resumed))

    def check_cancel(self) -> None:
        if self.options.cancelled():
            raise Canceled("fetch cancelled")

    # -- the walk --------------------------------------------------------------------

    def resolve(self) -> Descriptor:
        root = self.client.resolve(self.ref)
        if not (is_index(root.media_type) or is_manifest(root.media_type)):
            raise ManifestError(f"{self.ref}: unsupported media type {root.media_type!r}")
        self.emit("resolved", root)
        return root

    def run(self, store: Store, root: Descriptor) -> Descriptor:
        self.store = store
        pool = _Jobs(workers(self.options.concurrency))
        # commits (their syncs: data, directory, record) run beside the downloads, not
        # in a download's place: at most as many as blobs are downloaded
        self._commits = _Jobs(_MAX_THREADS)
        try:
            self._manifest_tree(root, pool)
        finally:
            pool.join()
            self._commits.join()
        return root

    def _manifest_tree(self, root: Descriptor, pool: _Jobs) -> None:
        """Manifests level by level (each level's documents in parallel), then every
        config and layer; parents are written with their children's labels."""
        self._pool = pool
        level = [root]
        leaves: dict[str, Descriptor] = {}
        seen: set[str] = set()
        depth = 0
        while level:
            check_nesting(level[0].digest, depth)
            depth += 1
            try:
                docs = self._run_all(pool, [(self._document, d) for d in level])
            except BaseException:
                # the documents already fetched are kept (each commit is whole or nothing)
                wait(self._stores_so_far())
                raise
            next_level: list[Descriptor] = []
            for desc, data in zip(level, docs, strict=True):
                manifests, config, layers = children(desc, data)
                for child, platform in manifests:
                    if self._keep(platform) and child.digest not in seen:
                        seen.add(child.digest)
                        next_level.append(child)
                for child in ([config] if config else []) + layers:
                    # non-distributable layers too, as containerd fetches them (from
                    # their urls first: RegistryClient.open_blob)
                    leaves.setdefault(child.digest, child)
            level = next_level
        self._settle(pool, [(self._blob, d) for d in leaves.values()])

    def _settle(
        self,
        pool: _Jobs,
        jobs: Sequence[tuple[Callable[[Descriptor], bytes | None], Descriptor]],
    ) -> None:
        """Run ``jobs`` and wait for them and for every document and blob still being
        stored (a download hands its commit on: all are submitted once the jobs ended)."""
        _wait_all(self._stores_so_far() + [pool.submit(fn, d) for fn, d in jobs])
        _wait_all(self._stores_so_far())

    def _stores_so_far(self) -> list[Future[Any]]:
        """The commits submitted so far (waited for outside the lock)."""
        with self._stores_lock:
            return list(self._stores)

    def _run_all(
        self,
        pool: _Jobs,
        jobs: Sequence[tuple[Callable[[Descriptor], bytes | None], Descriptor]],
    ) -> list[bytes]:
        futures: list[Future[bytes | None]] = [pool.submit(fn, d) for fn, d in jobs]
        _wait_all(futures)
        return [f.result() or b"" for f in futures]

    def _keep(self, platform: Mapping[str, object]) -> bool:
        return (
            self.options.all_platforms
            or not platform
            or any(p.matches(platform) for p in self.platforms)
        )

    def _check_platforms(self, desc: Descriptor, data: bytes) -> None:
        """An index none of whose manifests is a wanted platform fails the fetch, as
        containerd's pull does (``no match for platform in manifest: not found``), rather
        than record an image of an index alone (``ctr content fetch`` does that)."""
        manifests = children(desc, data)[0]
        if not manifests or any(self._keep(platform) for _, platform in manifests):
            return
        wanted = ", ".join(str(p) for p in self.platforms)
        has = sorted({_platform_text(platform) for _, platform in manifests})
        raise NotFound(
            f"no match for platform {wanted} in index {desc.digest} of {self.ref}: it has "
            f"{', '.join(has)} (give --platform one of them, or --all-platforms)"
        )

    def _labels_for(self, desc: Descriptor, data: bytes | None) -> dict[str, str]:
        labels = {self.source_key: self.ref.repository}
        if data is not None:
            manifests, config, layers = children(desc, data)
            kept = [child for child, platform in manifests if self._keep(platform)]
            labels.update(gc_labels(kept, config, layers))
        return labels

    def _document(self, desc: Descriptor) -> bytes:
        """An index or manifest: from the store when held, else from the registry."""
        self.check_cancel()
        if desc.size > MAX_MANIFEST_SIZE:
            raise ManifestError(f"{desc.digest}: {desc.size} bytes is too big for a manifest")
        try:
            info = self.store.info(desc.digest)
        except NotFound:
            info = None
        if info is not None:
            data = read_blob(self.store, desc.digest)
            self._check_platforms(desc, data)
            self._add_labels(info, self._labels_for(desc, data))
            self.emit("exists", desc, desc.size)
            return data
        data = self.client.manifest(self.ref.repository, desc)
        self._check_platforms(desc, data)  # before it is stored: a failed fetch keeps nothing
        labels = self._labels_for(desc, data)
        # stored while its children download: the walk needs only its bytes (verified),
        # and the fetch waits for the commit (as for every blob) before the image record
        self._commit_later(self._store_document, desc, data, labels)
        return data

    def _commit_later(self, fn: Callable[..., None], *args: Any) -> None:
        store = self._commits.submit(fn, *args)
        with self._stores_lock:
            self._stores.append(store)

    def _store_document(self, desc: Descriptor, data: bytes, labels: Mapping[str, str]) -> None:
        writer = open_writer(self.store, ref_key(desc), desc.size, desc.digest, timeout=60)
        try:
            if writer.status().offset:
                writer.truncate(0)
            writer.write(data)
            writer.commit(desc.size, desc.digest, labels)
        except AlreadyExists:
            self._add_labels(self.store.info(desc.digest), labels)
        finally:
            writer.close()
        self.emit("done", desc, desc.size)

    def _add_labels(self, info: Info, labels: Mapping[str, str]) -> None:
        current = dict(info.labels or {})
        wanted = dict(labels)
        source = current.get(self.source_key)
        if source and self.ref.repository not in source.split(","):
            wanted[self.source_key] = f"{source},{self.ref.repository}"
        elif source:
            wanted[self.source_key] = source
        changed = [k for k, v in wanted.items() if current.get(k) != v]
        if changed:
            self.store.update(replace(info, labels=wanted), *(f"labels.{k}" for k in changed))

    def _blob(self, desc: Descriptor) -> None:
        """A config or layer: skipped when held, else downloaded (resuming, retrying)."""
        self.check_cancel()
        labels = self._labels_for(desc, None)
        try:
            info = self.store.info(desc.digest)
        except NotFound:
            info = None
        if info is not None:
            self._add_labels(info, labels)
            self.emit("exists", desc, desc.size)
            return None
        attempt = 0
        while True:
            try:
                self._download(desc, labels)
                return None
            except RegistryUnavailable:
                attempt += 1
                if attempt > self.options.retries:
                    raise
                time.sleep(min(self.options.backoff * 2**attempt, 5.0))

    def _download(self, desc: Descriptor, labels: Mapping[str, str]) -> None:
        ref = ref_key(desc)
        writer = open_writer(self.store, ref, desc.size, desc.digest, timeout=60)
        # another namespace's blob (sharing policy "shared"): the commit links it, and
        # nothing is downloaded
        linked = bool(getattr(writer, "shared", False))
        failed: DigestMismatch | SizeMismatch | None = None
        resumed = 0
        try:
            offset = writer.status().offset
            if offset > desc.size:
                writer.truncate(0)
                offset = 0
            if offset < desc.size:
                # the ingest is open: say so now, not after the first 0.25 s of bytes (a
                # client interrupted before then would not know what the daemon keeps)
                self.emit("downloading", desc, offset, offset)
                resumed = self._stream_into(writer, desc, offset)
        except (DigestMismatch, SizeMismatch) as err:
            failed = err
        except BaseException:
            writer.close()
            raise
        if failed is not None:
            writer.close()
            self._refuse(desc, failed)
        # the commit waits on the disk (three syncs): the next download need not
        self._commit_later(self._commit_blob, writer, desc, labels, linked, resumed)

    def _commit_blob(
        self,
        writer: Writer,
        desc: Descriptor,
        labels: Mapping[str, str],
        linked: bool,
        resumed: int,
    ) -> None:
        failed: DigestMismatch | SizeMismatch | None = None
        try:
            writer.commit(desc.size, desc.digest, labels)
        except AlreadyExists:
            self._add_labels(self.store.info(desc.digest), labels)
        except (DigestMismatch, SizeMismatch) as err:
            failed = err
        finally:
            writer.close()
        if failed is not None:
            self._refuse(desc, failed)
        self.emit("linked" if linked else "done", desc, desc.size, resumed)

    def _refuse(self, desc: Descriptor, err: DigestMismatch | SizeMismatch) -> NoReturn:
        """Nothing of a blob with wrong bytes is kept: the next fetch starts it over."""
        self._abort(ref_key(desc))
        self.emit("failed", desc)
        raise _blob_error(desc, err) from None

    def _stream_into(self, writer: Writer, desc: Descriptor, offset: int) -> int:
        """Download the rest of ``desc`` from ``offset`` into ``writer``; returns the offset
        the download started at (0 when the registry ignored the range).

        Progress: ``downloading`` every :data:`_PROGRESS_EVERY` seconds after the one the
        caller sent at the start (each message is a trip to the client); ``done`` carries
        where it resumed."""
        resp, start = self.client.open_blob(self.ref.repository, desc, offset)
        if start != offset:
            writer.truncate(0)  # the registry ignored the range: start over
        written = start
        last = time.monotonic()
        left = desc.size - start
        # one more byte than is left: a body longer than the blob shows in the first read
        step = left + 1 if left <= _WHOLE else CHUNK
        try:
            while True:
                self.check_cancel()
                try:
                    chunk = resp.read(step)
                except (HTTPError, OSError) as err:
                    reason = describe(err)[0]
                    raise RegistryUnavailable(f"blob {desc.digest}: {reason}") from None
                if not chunk:
                    break
                if written + len(chunk) > desc.size:
                    raise SizeMismatch(desc.size, written + len(chunk))
                writer.write(chunk)
                written += len(chunk)
                now = time.monotonic()
                if now - last >= _PROGRESS_EVERY:
                    last = now
                    self.emit("downloading", desc, written, start)
        finally:
            discard(resp)
        if written < desc.size:
            # the body ended early: a dropped connection (retried, resumed from here)
            raise RegistryUnavailable(f"blob {desc.digest}: body ended at {written} of {desc.size}")
        return start

    def _abort(self, ref: str) -> None:
        with contextlib.suppress(NotFound):
            self.store.abort(ref)


def _wait_all(futures: Sequence[Future[Any]]) -> None:
    """Wait for ``futures``; on the first failure cancel what has not started, wait for
    what has, and raise that failure."""
    _done, pending = wait(futures, return_when=FIRST_EXCEPTION)
    failed = [f for f in futures if f.done() and not f.cancelled() and f.exception() is not None]
    if failed:
        for f in pending:
            f.cancel()
        wait(pending)
        raise failed[0].exception()  # type: ignore[misc]


def workers(concurrency: int) -> int:
    """The blobs transferred at once for ``concurrency`` (1 to 64)."""
    return max(1, min(concurrency, 64))


def host_name(host: str) -> str:
    """``host[:port]`` without the port or an IPv6 address's brackets (the label key's part)."""
    if host.startswith("["):
        return host[1:].split("]", 1)[0]
    return host.rsplit(":", 1)[0] if ":" in host else host


def _blob_error(desc: Descriptor, err: ContentError) -> FailedPrecondition:
    if isinstance(err, DigestMismatch):
        return DigestMismatch(
            err.expected,
            err.actual,
            f"blob {desc.digest} ({desc.media_type}): registry sent bytes of {err.actual}",
        )
    if isinstance(err, SizeMismatch):
        return SizeMismatch(
            err.expected,
            err.actual,
            f"blob {desc.digest} ({desc.media_type}): registry sent {err.actual} bytes,"
            f" descriptor says {err.expected}",
        )
    return FailedPrecondition(f"blob {desc.digest}: {err}")
