"""Pushing an image from a content store to a registry.

:func:`push` walks the image (every platform the store holds; a manifest the index names
but the store lacks fails the push before anything is sent), then uploads bottom-up:
configs and layers first (at most ``concurrency`` at a time), then manifests, then
indexes, the root last under the reference's tag. For each blob it

* asks the registry first (``HEAD``) and skips what it holds;
* tries a cross-repository mount when the blob's
  ``containerd.io/distribution.source.<host>`` label names another repository on the same
  registry host (``POST .../uploads/?mount=<digest>&from=<repo>``), falling back to an
  upload when the registry declines;
* uploads small blobs (up to ``chunk_size``) in one ``PUT`` and larger ones in
  ``PATCH`` chunks of ``chunk_size`` read from the store one at a time (memory stays at
  one chunk per transfer), retrying a failed upload from the start.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Final, Protocol

from contentd.content.errors import FailedPrecondition, NotFound
from contentd.content.helpers import read_blob
from contentd.content.store import Store
from contentd.content.types import Descriptor
from contentd.images.errors import RegistryUnavailable
from contentd.images.fetch import (
    LABEL_DISTRIBUTION_SOURCE,
    Progress,
    host_name,
    ref_key,
    workers,
)
from contentd.images.media import (
    MAX_MANIFEST_SIZE,
    ManifestError,
    check_nesting,
    children,
    is_index,
    is_manifest,
    is_non_distributable,
)
from contentd.images.reference import parse_reference
from contentd.images.registry import Credentials, RegistryClient
from contentd.metadata.images import Image

__all__ = ["DEFAULT_CHUNK", "PushOptions", "push"]

#: blobs up to this size go in one PUT; larger ones in PATCH chunks of this size
DEFAULT_CHUNK: Final = 16 << 20


@dataclass(frozen=True)
class PushOptions:
    plain_http: bool = False
    credentials: Credentials | None = None
    concurrency: int = 3
    retries: int = 4
    backoff: float = 0.2
    chunk_size: int = DEFAULT_CHUNK
    progress: Callable[[Progress], None] | None = None
    cancelled: Callable[[], bool] = field(default=lambda: False)


class ImageGetter(Protocol):
    def get(self, name: str) -> Image: ...


def push(
    store: Store,
    images: ImageGetter,
    reference: str,
    source: str = "",
    options: PushOptions | None = None,
) -> Descriptor:
    """Push image ``source`` (default: the image named ``reference``) to ``reference``;
    returns the root descriptor."""
    options = options or PushOptions()
    ref = parse_reference(reference)
    image = images.get(source or reference)
    levels, leaves, foreign = _plan(store, image.target)
    # the host name alone, as fetch labels it ("[::1]:5000" -> "::1")
    job = _Push(store, ref.repository, host_name(ref.host), options)
    with RegistryClient(
        ref.host,
        plain_http=options.plain_http,
        credentials=options.credentials,
        retries=options.retries,
        backoff=options.backoff,
        maxsize=workers(options.concurrency),  # a connection per worker, as fetch
    ) as client:
        job.client = client
        for desc in foreign:
            job.emit("skipped", desc)
        with ThreadPoolExecutor(
            workers(options.concurrency), thread_name_prefix="contentd-push"
        ) as pool:
            for f in [pool.submit(job.blob, d) for d in leaves]:
                f.result()
            for level in reversed(levels[1:]):
                for f in [pool.submit(job.manifest, d, d.digest) for d in level]:
                    f.result()
        tag = ref.tag if not ref.digest else ref.digest
        job.manifest(image.target, tag or image.target.digest)
    return image.target


def _plan(
    store: Store, root: Descriptor
) -> tuple[list[list[Descriptor]], list[Descriptor], list[Descriptor]]:
    """Manifest levels (root first), the leaves to push and the non-distributable layers
    (never pushed, need not be held: containerd's push skips them too), each digest once;
    FailedPrecondition when the store lacks a manifest or blob to push."""
    levels: list[list[Descriptor]] = []
    leaves: dict[str, Descriptor] = {}
    foreign: dict[str, Descriptor] = {}
    seen: set[str] = set()
    level = [root]
    while level:
        check_nesting(level[0].digest, len(levels))
        levels.append(level)
        nxt: list[Descriptor] = []
        for desc in level:
            if desc.size > MAX_MANIFEST_SIZE:
                raise ManifestError(f"{desc.digest}: too big for a manifest")
            try:
                data = read_blob(store, desc.digest)
            except NotFound:
                raise FailedPrecondition(
                    f"manifest {desc.digest} of the image is not in the store"
                    " (fetch it with --all-platforms, or push a single platform's manifest)"
                ) from None
            manifests, config, layers = children(desc, data)
            for child, _ in manifests:
                if child.digest not in seen:
                    seen.add(child.digest)
                    nxt.append(child)
            for child in ([config] if config else []) + layers:
                if is_non_distributable(child.media_type):
                    foreign.setdefault(child.digest, child)
                else:
                    leaves.setdefault(child.digest, child)
        level = nxt
    for desc in leaves.values():
        try:
            store.info(desc.digest)
        except NotFound:
            raise FailedPrecondition(
                f"blob {desc.digest} ({desc.media_type}) of the image is not in the store"
            ) from None
    return levels, list(leaves.values()), list(foreign.values())


class _Push:
    client: RegistryClient

    def __init__(self, store: Store, repository: str, hostname: str, options: PushOptions) -> None:
        self.store = store
        self.repository = repository
        self.source_key = f"{LABEL_DISTRIBUTION_SOURCE}.{hostname}"
        self.options = options
        self._lock = threading.Lock()

    def emit(self, status: str, desc: Descriptor, offset: int = 0) -> None:
        if self.options.progress is not None:
            with self._lock:
                self.options.progress(Progress(status, desc, ref_key(desc), offset))

    def _check(self) -> None:
        if self.options.cancelled():
            from contentd.content.errors import Canceled

            raise Canceled("push cancelled")

    def manifest(self, desc: Descriptor, reference: str) -> None:
        self._check()
        if not (is_index(desc.media_type) or is_manifest(desc.media_type)):
            raise ManifestError(f"{desc.digest}: cannot push media type {desc.media_type!r}")
        data = read_blob(self.store, desc.digest)
        self.client.put_manifest(self.repository, reference, desc, data)
        self.emit("done", desc, desc.size)

    def blob(self, desc: Descriptor) -> None:
        self._check()
        if self.client.has_blob(self.repository, desc.digest):
            self.emit("exists", desc, desc.size)
            return
        for source in self._sources(desc):
            location = self.client.start_upload(self.repository, (desc.digest, source))
            if location is None:
                self.emit("mounted", desc, desc.size)
                return
            # declined: upload into the location the registry opened instead
            self._upload(desc, location)
            return
        attempt = 0
        while True:
            try:
                self._upload(desc, None)
                return
            except RegistryUnavailable:
                attempt += 1
                if attempt > self.options.retries:
                    raise
                time.sleep(min(self.options.backoff * 2**attempt, 5.0))

    def _sources(self, desc: Descriptor) -> Sequence[str]:
        labels = self.store.info(desc.digest).labels or {}
        repos = [r for r in labels.get(self.source_key, "").split(",") if r]
        return [r for r in repos if r != self.repository][:1]

    def _upload(self, desc: Descriptor, location: str | None) -> None:
        if location is None:
            location = self.client.start_upload(self.repository)
            assert location is not None
        chunk = max(1, self.options.chunk_size)
        if desc.size <= chunk:
            self.emit("uploading", desc, 0)
            data = read_blob(self.store, desc.digest)
            self.client.finish_upload(self.repository, location, desc.digest, data)
            self.emit("done", desc, desc.size)
            return
        with self.store.reader_at(desc.digest) as ra:
            offset = 0
            while offset < desc.size:
                self._check()
                data = _read_exactly(ra.read_at, offset, min(chunk, desc.size - offset))
                location = self.client.upload_chunk(self.repository, location, data, offset)
                offset += len(data)
                self.emit("uploading", desc, offset)
        self.client.finish_upload(self.repository, location, desc.digest)
        self.emit("done", desc, desc.size)


def _read_exactly(read_at: Callable[[int, int], bytes], offset: int, n: int) -> bytes:
    parts: list[bytes] = []
    got = 0
    while got < n:
        piece = read_at(offset + got, min(n - got, 1 << 20))
        if not piece:
            raise FailedPrecondition(f"blob ended at {offset + got}, expected {offset + n}")
        parts.append(piece)
        got += len(piece)
    return b"".join(parts)
