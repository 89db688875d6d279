"""``contentd.services.registry.v1.Registry``: fetch and push run in the daemon.

Fetch writes straight into the metadata layer's content store of the caller's namespace
(no second trip through gRPC Write) and streams :class:`Progress` messages; the last one
has status ``image``, the root descriptor and the image record's name. The job runs on
its own thread; the stream between it and the client is a bounded queue, and a client
that goes away (Ctrl-C) cancels the job, which keeps its ingests (under the fetch's lease)
for the next attempt to resume. Credentials in the request are used for this call only
and never logged.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Iterator
from typing import Final, NoReturn

import grpc

from contentd.api._pb.contentd.services.registry.v1 import registry_pb2 as pb
from contentd.api._pb.contentd.services.registry.v1 import registry_pb2_grpc as pb_grpc
from contentd.api.calls import fail, headers
from contentd.api.event_types import ImageCreate, ImageUpdate
from contentd.api.images import TOPIC_IMAGE_CREATE, TOPIC_IMAGE_UPDATE, descriptor_to_pb
from contentd.content.errors import ContentError, InvalidArgument
from contentd.content.types import Descriptor
from contentd.images.platforms import parse_platform
from contentd.images.registry import Credentials
from contentd.metadata import Exchange, ImageStore, MetadataDB, identifiers

__all__ = [
    "DEFAULT_CONCURRENCY",
    "DEFAULT_FETCH_CONCURRENCY",
    "MAX_CONCURRENCY",
    "SERVICE_NAME",
    "RegistryService",
]

log = logging.getLogger(__name__)

SERVICE_NAME: Final = "contentd.services.registry.v1.Registry"
#: blobs transferred at once when the request does not say: CRI's default (ctr content fetch sets
#: no limit unless --max-concurrent-downloads; a loopback registry served 20 at once no faster)
DEFAULT_CONCURRENCY: Final = 3
#: blobs a fetch downloads at once when the request does not say. More than push's: a blob's
#: download waits mostly on the registry (its first byte, then the commit's syncs), and
#: those waits overlap: 20 x 1 MiB layers from a loopback registry took ~0.21 s at 6, ~0.13
#: s at 10 and at 20, in-process on a loaded 2-core machine (ctr content fetch sets no limit)
DEFAULT_FETCH_CONCURRENCY: Final = 10
_QUEUE: Final = 256


#: the most blobs a request may ask to transfer at once (``contentd fetch --concurrency``)
MAX_CONCURRENCY: Final = 64


def _concurrency(requested: int, default: int = DEFAULT_CONCURRENCY) -> int:
    """The request's concurrency; 0 (unset) is ``default``, and one out of range is
    InvalidArgument (the worker pool took it as 1 or 64 without a word)."""
    if requested == 0:
        return default
    if not 1 <= requested <= MAX_CONCURRENCY:
        raise InvalidArgument(f"concurrency {requested}: must be from 1 to {MAX_CONCURRENCY}")
    return requested


def _credentials(msg: pb.Credentials) -> Credentials | None:
    if not msg.username and not msg.secret:
        return None
    return Credentials(msg.username, msg.secret)


def _progress_pb(
    status: str, desc: Descriptor, ref: str = "", offset: int = 0, resumed: int = 0
) -> pb.Progress:
    out = pb.Progress(status=status, ref=ref, offset=offset, resumed=resumed)
    descriptor_to_pb(desc, out.descriptor)
    return out


class _Job:
    """A job on its own thread, its output a bounded queue of messages."""

    def __init__(self) -> None:
        self.queue: queue.Queue[pb.Progress | BaseException | None] = queue.Queue(_QUEUE)
        self.cancel = threading.Event()

    def put(self, item: pb.Progress | BaseException | None) -> None:
        while not self.cancel.is_set():
            try:
                self.queue.put(item, timeout=0.5)
                return
            except queue.Full:
                continue

    def run(self, work: Callable[[], pb.Progress]) -> Iterator[pb.Progress]:
        def body() -> None:
            try:
                self.put(work())
                self.put(None)
            except BaseException as err:  # handed to the RPC thread, which reports it
                self.put(err)

        thread = threading.Thread(target=body, name="contentd-registry-job", daemon=True)
        thread.start()
        try:
            while True:
                item = self.queue.get()
                if item is None:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            self.cancel.set()


class RegistryService(pb_grpc.RegistryServicer):
    SERVICE_NAME = SERVICE_NAME

    def __init__(self, db: MetadataDB, exchange: Exchange) -> None:
        self.db = db
        self.exchange = exchange

    def register(self, server: grpc.Server) -> None:
        pb_grpc.add_RegistryServicer_to_server(self, server)

    def Fetch(
        self, request: pb.FetchRequest, context: grpc.ServicerContext
    ) -> Iterator[pb.Progress]:
        from contentd.images.fetch import FetchOptions, Progress, fetch

        job = _Job()
        context.add_callback(job.cancel.set)
        try:
            namespace = identifiers.require_namespace(headers(context)[0])
            platforms = [parse_platform(p) for p in request.platforms]
            concurrency = _concurrency(request.concurrency, DEFAULT_FETCH_CONCURRENCY)
        except Exception as err:
            _fail(context, err, "Fetch")

        def progress(p: Progress) -> None:
            job.put(_progress_pb(p.status, p.desc, p.ref, p.offset, p.resumed))

        options = FetchOptions(
            platforms=platforms,
            all_platforms=request.all_platforms,
            plain_http=request.plain_http,
            credentials=_credentials(request.credentials),
            concurrency=concurrency,
            image_name=request.image_name,
            progress=progress,
            cancelled=job.cancel.is_set,
        )

        def work() -> pb.Progress:
            images = self.db.images(namespace)
            existed = _exists(images, request.image_name or request.reference)
            root, image = fetch(
                lambda lease: self.db.content_store(namespace, lease),
                self.db.leases(namespace),
                images,
                request.reference,
                options,
            )
            event = (ImageUpdate if existed else ImageCreate)(image.name, image.labels)
            topic = TOPIC_IMAGE_UPDATE if existed else TOPIC_IMAGE_CREATE
            self.exchange.publish(namespace, topic, event)
            final = _progress_pb("image", root, offset=root.size)
            final.image = image.name
            return final

        try:
            yield from job.run(work)
        except Exception as err:
            _fail(context, err, "Fetch")

    def Push(self, request: pb.PushRequest, context: grpc.ServicerContext) -> Iterator[pb.Progress]:
        from contentd.images.fetch import Progress
        from contentd.images.push import PushOptions, push

        job = _Job()
        context.add_callback(job.cancel.set)
        try:
            namespace = identifiers.require_namespace(headers(context)[0])
            concurrency = _concurrency(request.concurrency)
        except Exception as err:
            _fail(context, err, "Push")

        def progress(p: Progress) -> None:
            job.put(_progress_pb(p.status, p.desc, p.ref, p.offset))

        options = PushOptions(
            plain_http=request.plain_http,
            credentials=_credentials(request.credentials),
            concurrency=concurrency,
            progress=progress,
            cancelled=job.cancel.is_set,
        )

        def work() -> pb.Progress:
            root = push(
                self.db.content_store(namespace),
                self.db.images(namespace),
                request.reference,
                request.source,
                options,
            )
            final = _progress_pb("image", root, offset=root.size)
            final.image = request.reference
            return final

        try:
            yield from job.run(work)
        except Exception as err:
            _fail(context, err, "Push")


def _exists(images: ImageStore, name: str) -> bool:
    try:
        images.get(name)
    except ContentError:
        return False
    return True


def _fail(context: grpc.ServicerContext, err: BaseException, method: str) -> NoReturn:
    fail(context, err, f"Registry/{method}", log)
