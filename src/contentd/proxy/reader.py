"""Positional reads of a remote blob: one Read stream per ``read_at`` (spec §6)."""

from __future__ import annotations

from types import TracebackType
from typing import Self

import grpc

from contentd.api._pb.containerd.services.content.v1 import content_pb2 as pb
from contentd.api._pb.containerd.services.content.v1 import content_pb2_grpc as pb_grpc
from contentd.api.errors import from_grpc
from contentd.content.errors import InvalidArgument
from contentd.proxy.channel import cancel_call

__all__ = ["ProxyReaderAt"]


class ProxyReaderAt:
    """A ReaderAt over the Content service; ``size`` comes from the Info call that opened it.

    Each :meth:`read_at` is one ``Read{digest, offset, size=n}`` stream,
    always finished or cancelled before it returns. ``close()`` does nothing
    (there is nothing held open between reads).
    """

    def __init__(
        self,
        stub: pb_grpc.ContentStub,
        digest: str,
        size: int,
        metadata: tuple[tuple[str, str], ...],
    ) -> None:
        self._stub = stub
        self._digest = digest
        self._size = size
        self._metadata = metadata

    @property
    def size(self) -> int:
        return self._size

    @property
    def digest(self) -> str:
        return self._digest

    def read_at(self, offset: int, n: int) -> bytes:
        """Up to ``n`` bytes at ``offset``: short at the end, ``b""`` at or past it.

        At or past the end no RPC is made (containerd's proxy sends one and
        returns the server's raw OUT_OF_RANGE past the end); server errors
        come back as error kinds (containerd returns them unmapped).
        """
        if offset < 0:
            raise InvalidArgument(f"read at negative offset {offset}")
        if n <= 0 or offset >= self._size:
            return b""
        call = self._stub.Read(
            pb.ReadContentRequest(digest=self._digest, offset=offset, size=n),
            metadata=self._metadata,
        )
        chunks: list[bytes] = []
        got = 0
        try:
            for response in call:
                data = response.data
                if data:
                    chunks.append(data)
                    got += len(data)
                    if got >= n:
                        break
        except grpc.RpcError as err:
            raise from_grpc(err) from None
        finally:
            cancel_call(call)  # a no-op once the stream has ended
        if len(chunks) == 1 and got <= n:
            return chunks[0]
        data = b"".join(chunks)
        return data[:n] if got > n else data

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
        self.close()

    def __repr__(self) -> str:
        return f"ProxyReaderAt({self._digest}, size={self._size})"
