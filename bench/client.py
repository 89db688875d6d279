"""One small gRPC client of containerd's Content (and Leases) API, used against every server.

The raw Write/Read workloads and all set-up (populating blobs, cleaning up)
go through :class:`ContentClient`, so containerd and contentd are measured
with exactly the same client code. Writes are lock-step, as containerd's
proxy writer and ``contentd.proxy`` do: each request waits for its response
before the next is sent.
"""

from __future__ import annotations

import queue
import uuid
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Final

import grpc

from contentd.api._pb.containerd.services.content.v1 import content_pb2 as pb
from contentd.api._pb.containerd.services.content.v1 import content_pb2_grpc as pb_grpc
from contentd.api._pb.containerd.services.leases.v1 import leases_pb2 as lpb
from contentd.api._pb.containerd.services.leases.v1 import leases_pb2_grpc as lpb_grpc
from contentd.proxy.channel import cancel_call

__all__ = ["GC_ROOT_LABEL", "MAX_MESSAGE", "ContentClient", "WriteFailed"]

#: containerd's limit, both ways (the 4 MiB gRPC default rejects a full 4 MiB chunk).
MAX_MESSAGE: Final = 16 << 20
#: A blob carrying this label is never garbage-collected (containerd's GC root).
GC_ROOT_LABEL: Final = "containerd.io/gc.root"

_OPTIONS: Final[list[tuple[str, Any]]] = [
    ("grpc.max_send_message_length", MAX_MESSAGE),
    ("grpc.max_receive_message_length", MAX_MESSAGE),
]


class WriteFailed(RuntimeError):
    """A Write stream ended without committing (the server's status is in the message)."""


class _Requests:
    """The request iterator of one lock-step Write stream."""

    def __init__(self) -> None:
        self._q: queue.SimpleQueue[pb.WriteContentRequest | None] = queue.SimpleQueue()

    def put(self, req: pb.WriteContentRequest | None) -> None:
        self._q.put(req)

    def __iter__(self) -> Iterator[pb.WriteContentRequest]:
        return self

    def __next__(self) -> pb.WriteContentRequest:
        req = self._q.get()
        if req is None:
            self._q.put(None)
            raise StopIteration
        return req


class ContentClient:
    """A channel to one Content service at a unix socket ``address``."""

    def __init__(self, address: str, *, timeout: float = 600.0) -> None:
        self.address = address
        self.timeout = timeout
        self._channel = grpc.insecure_channel(f"unix:{address}", options=_OPTIONS)
        self._content = pb_grpc.ContentStub(self._channel)
        self._leases = lpb_grpc.LeasesStub(self._channel)

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> ContentClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def wait_ready(self, timeout: float) -> None:
        """Block until the channel connects (raises ``grpc.FutureTimeoutError``)."""
        grpc.channel_ready_future(self._channel).result(timeout=timeout)

    @staticmethod
    def _md(namespace: str | None) -> tuple[tuple[str, str], ...]:
        return (("containerd-namespace", namespace),) if namespace else ()

    # -- ingest ------------------------------------------------------------------

    def write_blob(
        self,
        ref: str,
        chunks: Iterable[bytes],
        *,
        total: int,
        expected: str,
        namespace: str,
        labels: Mapping[str, str] | None = None,
    ) -> str:
        """Ingest ``chunks`` under ``ref``: STAT, one WRITE per chunk, COMMIT; lock-step.

        Returns the committed digest. Raises :class:`WriteFailed` (or
        ``grpc.RpcError``) when the server refuses any step.
        """
        requests = _Requests()
        requests.put(
            pb.WriteContentRequest(action=pb.STAT, ref=ref, total=total, expected=expected)
        )
        call = self._content.Write(requests, metadata=self._md(namespace), timeout=self.timeout)
        responses = iter(call)
        try:
            resp = next(responses)
            offset = resp.offset
            for chunk in chunks:
                requests.put(pb.WriteContentRequest(action=pb.WRITE, offset=offset, data=chunk))
                resp = next(responses)
                if resp.offset != offset + len(chunk):
                    raise WriteFailed(f"{ref}: short write at {offset}: now {resp.offset}")
                offset = resp.offset
            requests.put(
                pb.WriteContentRequest(
                    action=pb.COMMIT,
                    offset=offset,
                    total=total,
                    expected=expected,
                    labels=dict(labels) if labels else None,
                )
            )
            resp = next(responses)
            digest = resp.digest
        except StopIteration:
            raise WriteFailed(f"{ref}: stream ended early") from None
        except BaseException:
            cancel_call(call)
            raise
        finally:
            requests.put(None)
        for _ in responses:  # the server's duplicate final response, then its end
            pass
        if expected and digest != expected:
            raise WriteFailed(f"{ref}: committed {digest}, expected {expected}")
        return digest

    # -- read ---------------------------------------------------------------------

    def read(self, digest: str, *, namespace: str, offset: int = 0, size: int = 0) -> int:
        """Read ``digest`` (all of it when ``size`` is 0) in one Read stream; bytes received."""
        req = pb.ReadContentRequest(digest=digest, offset=offset, size=size)
        n = 0
        for resp in self._content.Read(req, metadata=self._md(namespace), timeout=self.timeout):
            n += len(resp.data)
        return n

    # -- metadata -----------------------------------------------------------------

    def info_size(self, digest: str, *, namespace: str) -> int:
        resp = self._content.Info(
            pb.InfoRequest(digest=digest), metadata=self._md(namespace), timeout=self.timeout
        )
        return int(resp.info.size)

    def count(self, *, namespace: str) -> int:
        """Number of blobs ``List`` returns in ``namespace``."""
        stream = self._content.List(
            pb.ListContentRequest(), metadata=self._md(namespace), timeout=self.timeout
        )
        return sum(len(resp.info) for resp in stream)

    def delete(self, digest: str, *, namespace: str) -> bool:
        """Delete ``digest`` from ``namespace``; False when it was not there."""
        try:
            self._content.Delete(
                pb.DeleteContentRequest(digest=digest),
                metadata=self._md(namespace),
                timeout=self.timeout,
            )
        except grpc.RpcError as err:
            if err.code() == grpc.StatusCode.NOT_FOUND:
                return False
            raise
        return True

    def collect_garbage(self, *, namespace: str) -> None:
        """Run the server's GC now: create a lease and delete it with ``sync``."""
        md = self._md(namespace)
        lease = self._leases.Create(
            lpb.CreateRequest(id=f"bench-gc-{uuid.uuid4().hex}"), metadata=md, timeout=self.timeout
        )
        self._leases.Delete(
            lpb.DeleteRequest(id=lease.lease.id, sync=True), metadata=md, timeout=self.timeout
        )
