"""A native HTTP/2 gRPC server engine for contentd (cleartext, prior knowledge).

It stands in for the part of ``grpc.Server`` contentd uses, so every servicer
runs unchanged; what it changes is the threading: cheap calls run on the
connection's reader thread with no hand-off (see :mod:`.connection`), which
takes grpcio's per-RPC machinery off the hot path of ``ctr content get``
(one Content/Read per 32 KiB).

Modules, bottom up: :mod:`.errors` (every exception of the engine),
:mod:`.frames` (frame codec), :mod:`.metadata` (header blocks, built and
checked), :mod:`.limits`, :mod:`.streams` (connection and stream states),
:mod:`.events`, :mod:`.protocol` (the sans-IO HTTP/2 + gRPC core: bytes in,
events and bytes out), :mod:`.address`, :mod:`.call` / :mod:`.context` (one RPC and what its
handler sees), :mod:`.handlers` (method handlers with a shortcut for inline calls),
:mod:`.rpc` (running a handler), :mod:`.connection` (the
socket/thread shell around the core), :mod:`.deadlines`, :mod:`.server`; and
:mod:`.client`, a small grpcio-free client driving the same core.

The server's names load on first use, so the client does not import grpcio.
"""

from typing import TYPE_CHECKING

from contentd._lazy import lazy_exports

if TYPE_CHECKING:
    from contentd.wire.server import DEFAULT_MAX_WORKERS, InlinePolicy, Server

_LAZY = {
    "DEFAULT_MAX_WORKERS": "contentd.wire.server",
    "InlinePolicy": "contentd.wire.server",
    "Server": "contentd.wire.server",
}
__getattr__, __dir__ = lazy_exports("contentd.wire", globals(), _LAZY)

__all__ = ["DEFAULT_MAX_WORKERS", "InlinePolicy", "Server"]
