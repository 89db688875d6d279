"""A Writer over one Write bidi stream (containerd's ``content/proxy`` remote writer, spec §6).

Every operation is one request and one response on the stream. The
requests go through a queue that gRPC's sender thread drains; ending the
queue half-closes the stream. Whatever way a writer ends -- commit, close,
a failed request, or being garbage-collected unclosed -- its queue is ended
and its call finished or cancelled, so neither a stream nor gRPC's sender
thread outlives it.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import weakref
from collections.abc import Iterator, Mapping
from types import TracebackType
from typing import Final, Self

import grpc

from contentd.api._pb.containerd.services.content.v1 import content_pb2 as pb
from contentd.api.convert import time_field
from contentd.api.errors import from_grpc
from contentd.content.errors import ContentError, FailedPrecondition, Unknown
from contentd.content.types import Status
from contentd.proxy.channel import cancel_call

__all__ = ["CLOSE_TIMEOUT", "ProxyWriter", "RequestQueue"]

#: How long ``close()`` waits for the server to finish the stream before cancelling it.
CLOSE_TIMEOUT: Final = 30.0

_END: Final = None


class RequestQueue:
    """The request iterator of one stream: ``put`` feeds it, ``end`` half-closes it."""

    __slots__ = ("__weakref__", "_ended", "_queue")

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[pb.WriteContentRequest | None] = queue.SimpleQueue()
        self._ended = False

    def put(self, request: pb.WriteContentRequest) -> None:
        self._queue.put(request)

    def end(self) -> None:
        if not self._ended:
            self._ended = True
            self._queue.put(_END)

    def __iter__(self) -> Iterator[pb.WriteContentRequest]:
        return self

    def __next__(self) -> pb.WriteContentRequest:
        item = self._queue.get()
        if item is None:
            self._queue.put(_END)  # stay ended for any later next()
            raise StopIteration
        return item


def _abandon(requests: RequestQueue, call: grpc.Call) -> None:
    """End a stream nobody will use again (finalizer of an unclosed writer)."""
    requests.end()
    cancel_call(call)


class ProxyWriter:
    """One remote ingest. Open it with :meth:`contentd.proxy.ProxyStore.writer`."""

    def __init__(
        self,
        ref: str,
        requests: RequestQueue,
        call: grpc.CallIterator[pb.WriteContentResponse],
        offset: int,
        digest: str,
    ) -> None:
        self._ref = ref
        self._requests = requests
        self._call = call
        self._responses = iter(call)
        self._offset = offset
        self._digest = digest
        self._closed = False
        self._finalizer = weakref.finalize(self, _abandon, requests, call)

    @classmethod
    def open(
        cls,
        write: grpc.StreamStreamMultiCallable[pb.WriteContentRequest, pb.WriteContentResponse],
        metadata: tuple[tuple[str, str], ...],
        ref: str,
        total: int,
        expected: str,
    ) -> ProxyWriter:
        """Open a Write stream and negotiate with a STAT (errors are the server's, mapped)."""
        requests = RequestQueue()
        requests.put(
            pb.WriteContentRequest(action=pb.STAT, ref=ref, total=total, expected=expected)
        )
        call = write(requests, metadata=metadata)
        try:
            response = next(iter(call))
        except grpc.RpcError as err:
            _abandon(requests, call)
            raise from_grpc(err) from None
        except StopIteration:
            _abandon(requests, call)
            raise Unknown("EOF") from None
        except BaseException:
            _abandon(requests, call)
            raise
        # containerd's proxy ignores this digest; keeping it makes digest() right from the start
        return cls(ref, requests, call, response.offset, response.digest)

    # -- the request/response cycle -----------------------------------------

    def _send(self, request: pb.WriteContentRequest, op: str) -> pb.WriteContentResponse:
        if self._closed:
            raise FailedPrecondition(f"cannot {op} on closed writer")
        self._requests.put(request)
        try:
            response = next(self._responses)
        except grpc.RpcError as err:
            self._end_stream()
            raise from_grpc(err) from None
        except StopIteration:
            self._end_stream()
            raise Unknown("EOF") from None
        except BaseException:
            self._end_stream()
            raise
        if response.digest:
            self._digest = response.digest
        return response

    def _end_stream(self) -> None:
        self._closed = True
        self._finalizer.detach()
        _abandon(self._requests, self._call)

    # -- Writer protocol ---------------------------------------------------

    def write(self, data: bytes | memoryview) -> int:
        offset = self._offset
        if not isinstance(data, bytes):
            data = bytes(data)
        try:
            response = self._send(
                pb.WriteContentRequest(action=pb.WRITE, offset=offset, data=data), "write"
            )
        except ContentError as err:
            raise err.wrap("failed to send write") from None
        n = response.offset - offset
        self._offset += n
        if n < len(data):
            raise Unknown(f"short write: {n} of {len(data)} bytes")
        return n

    def digest(self) -> str:
        """The last digest the server reported."""
        return self._digest

    def status(self) -> Status:
        try:
            response = self._send(pb.WriteContentRequest(action=pb.STAT), "get status")
        except ContentError as err:
            raise err.wrap("error getting writer status") from None
        return Status(
            ref=self._ref,
            offset=response.offset,
            total=response.total,
            started_at=time_field(response, "started_at"),
            updated_at=time_field(response, "updated_at"),
        )

    def truncate(self, size: int) -> None:
        """Only moves the local offset: the server applies it with the next write.

        0 restarts the ingest; any other size must be the server's offset, or
        the next write fails with OutOfRange.
        """
        self._offset = size

    def commit(
        self,
        size: int = 0,
        expected: str | None = None,
        labels: Mapping[str, str] | None = None,
    ) -> None:
        if self._closed:
            raise FailedPrecondition("cannot commit on closed writer")
        try:
            try:
                response = self._send(
                    pb.WriteContentRequest(
                        action=pb.COMMIT,
                        total=size,
                        offset=self._offset,
                        expected=expected or "",
                        labels=labels or None,
                    ),
                    "commit",
                )
            except ContentError as err:
                raise err.wrap("commit failed") from None
            if size != 0 and response.offset != size:
                raise Unknown(f"unexpected size: {response.offset} != {size}")
            if expected and response.digest != expected:
                raise Unknown(f"unexpected digest: {response.digest} != {expected}")
            self._digest = response.digest
            self._offset = response.offset
        finally:
            self.close()

    def cancel(self) -> None:
        """End the stream at once, without waiting for the server: the ingest stays
        (resumable), as after a lost connection."""
        if not self._closed:
            self._end_stream()

    def close(self) -> None:
        """Half-close the stream and wait until the server has released the ingest.

        containerd's proxy only half-closes; waiting for the server's end of
        the stream (bounded by :data:`CLOSE_TIMEOUT`) means the ref can be
        reopened as soon as this returns.
        """
        if self._closed:
            return
        self._closed = True
        self._finalizer.detach()
        self._requests.end()
        watchdog = threading.Timer(CLOSE_TIMEOUT, self._call.cancel)
        watchdog.daemon = True
        watchdog.start()
        try:
            with contextlib.suppress(grpc.RpcError):
                for _ in self._responses:  # the duplicate final response, then the end
                    pass
        finally:
            watchdog.cancel()
            cancel_call(self._call)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"ProxyWriter({self._ref!r}, offset={self._offset})"
