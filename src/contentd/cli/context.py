"""The state one command runs with: where the daemon is, the namespace, the output streams.

Nothing here imports gRPC until a command asks for a channel, so commands that
fail early (a bad digest, a socket that is not there) stay fast.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Callable, Iterable, Iterator
from typing import IO, TYPE_CHECKING, Any, BinaryIO, Final, TextIO, TypeVar

from contentd.cli.errors import unreachable

if TYPE_CHECKING:
    import argparse

    import grpc
    from google.protobuf.message import Message

    from contentd.proxy.store import ProxyStore
    from contentd.wire.client import Connection as WireConnection

__all__ = [
    "DEFAULT_ADDRESS",
    "DEFAULT_NAMESPACE",
    "Context",
    "Streams",
    "display_address",
    "resolve_address",
    "resolve_namespace",
    "socket_path",
]

#: The daemon's default socket (contentd.config.DEFAULT_ADDRESS; kept here so the
#: command does not load the config package to find it).
DEFAULT_ADDRESS: Final = "/run/contentd/contentd.sock"
DEFAULT_NAMESPACE: Final = "default"
#: The longest a command waits for its channel to close.
CLOSE_TIMEOUT: Final = 5.0

_T = TypeVar("_T")
_M = TypeVar("_M", bound="Message")


class Streams:
    """Where a command reads and writes: bytes on ``out`` and ``inp``, text on ``err``.

    A plain class, not a dataclass: ``dataclasses`` imports ``inspect``, which alone
    cost every command about a tenth of its start-up.
    """

    __slots__ = ("err", "inp", "out")

    def __init__(self, out: BinaryIO, err: TextIO, inp: BinaryIO) -> None:
        self.out = out
        self.err = err
        self.inp = inp

    def __repr__(self) -> str:
        return f"Streams(out={self.out!r}, err={self.err!r}, inp={self.inp!r})"

    @property
    def err_is_tty(self) -> bool:
        return _isatty(self.err)

    @property
    def out_is_tty(self) -> bool:
        return _isatty(self.out)


def _isatty(stream: IO[Any]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError, OSError):
        return False


def resolve_address(flag: str | None, env: dict[str, str] | os._Environ[str] = os.environ) -> str:
    """``--address``, else ``$CONTENTD_ADDRESS``, else the daemon's default socket."""
    return flag or env.get("CONTENTD_ADDRESS") or DEFAULT_ADDRESS


def resolve_namespace(flag: str | None, env: dict[str, str] | os._Environ[str] = os.environ) -> str:
    """``--namespace``, else ``$CONTENTD_NAMESPACE``, else ``$CONTAINERD_NAMESPACE``, else
    ``default``."""
    return (
        flag
        or env.get("CONTENTD_NAMESPACE")
        or env.get("CONTAINERD_NAMESPACE")
        or DEFAULT_NAMESPACE
    )


def socket_path(address: str) -> str | None:
    """The unix socket path of ``address`` (absolute), or None for ``host:port`` and
    other gRPC targets. ``unix:`` prefixes, paths, and names without a ``:`` are sockets."""
    if address.startswith("unix://"):
        path = address[len("unix://") :]
    elif address.startswith("unix:"):
        path = address[len("unix:") :]
    elif "://" in address:
        return None
    elif "/" in address or ":" not in address or os.path.exists(address):
        path = address
    else:
        return None
    return os.path.abspath(path)


def _same_bytes(data: bytes) -> bytes:
    return data


def display_address(address: str) -> str:
    path = socket_path(address)
    return address if path is None else f"unix:{path}"


class Context:
    """The parsed global options and the (lazily opened) connection to the daemon."""

    def __init__(self, args: argparse.Namespace, streams: Streams) -> None:
        self.args = args
        self.streams = streams
        self.address = resolve_address(getattr(args, "address", None))
        self.namespace = resolve_namespace(getattr(args, "namespace", None))
        self.output: str = getattr(args, "output", None) or "table"
        self.debug = bool(getattr(args, "debug", False))
        #: lines printed after "contentd: interrupted" (what was kept, how to go on)
        self.interrupt_notes: list[str] = []
        self._channel: grpc.Channel | None = None
        self._store: ProxyStore | None = None

    @property
    def json(self) -> bool:
        """Whether objects are printed as JSON (``--output json`` or ``jsonl``)."""
        return self.output in ("json", "jsonl")

    def emit(self, obj: Any) -> None:
        """One object: a compact JSON document on its own line."""
        from contentd.cli.output import json_line

        self.write(json_line(obj))

    def delete_each(
        self, names: list[str], delete: Callable[[str, bool], object], key: str, *, sync: bool
    ) -> None:
        """``delete(name, sync)`` for each name in turn (as ctr, only the last one waits for
        the collection when ``sync``), printing each name once it is gone (unless ``delete``
        returned False: nothing went); with JSON, the list of ``{key: name}`` of those that
        went, even when one fails."""
        removed: list[dict[str, str]] = []
        try:
            for i, name in enumerate(names):
                if delete(name, sync and i == len(names) - 1) is False:
                    continue
                if self.json:
                    removed.append({key: name})
                else:
                    self.write(f"{name}\n")
        finally:
            if self.json:
                self.emit_list(removed)

    def emit_list(self, objs: Iterable[Any]) -> None:
        """A list: one JSON array (``json``), written as the items come, one per line;
        or one object per line (``jsonl``)."""
        from contentd.cli.output import json_line

        if self.output == "jsonl":
            for obj in objs:
                self.write(json_line(obj))
            return
        sep = "[\n"
        for obj in objs:
            self.write(sep + json_line(obj)[:-1])
            sep = ",\n"
        self.write("[]\n" if sep == "[\n" else "\n]\n")

    @property
    def target(self) -> str:
        """The address as shown to people (``unix:/abs/path`` or ``host:port``)."""
        return display_address(self.address)

    # -- output ------------------------------------------------------------------

    def write(self, text: str) -> None:
        self.streams.out.write(text.encode())

    def write_bytes(self, data: bytes) -> None:
        self.streams.out.write(data)

    def flush(self) -> None:
        self.streams.out.flush()

    def warn(self, text: str) -> None:
        print(f"contentd: {text}", file=self.streams.err)

    # -- the daemon --------------------------------------------------------------

    def check_socket(self) -> None:
        """Fail fast (no gRPC) when the address is a unix socket that is not there."""
        path = socket_path(self.address)
        if path is None:
            return
        try:
            mode = os.stat(path).st_mode
        except FileNotFoundError:
            raise unreachable(self.target, "no such file or directory") from None
        except OSError as err:
            raise unreachable(self.target, (err.strerror or str(err)).lower()) from None
        if not stat.S_ISSOCK(mode):
            raise unreachable(self.target, "not a socket")

    def channel(self) -> grpc.Channel:
        if self._channel is None:
            self.check_socket()
            from contentd.proxy.channel import dial

            self._channel = dial(self.target)
        return self._channel

    def metadata(self, lease: str | None = None) -> tuple[tuple[str, str], ...]:
        from contentd.api.metadata_keys import call_metadata

        return call_metadata(self.namespace, lease)

    def store(self) -> ProxyStore:
        """The daemon's content store, in this namespace (and under ``--lease`` if given)."""
        if self._store is None:
            channel = self.channel()
            from contentd.proxy.store import ProxyStore

            self._store = ProxyStore(channel, self.namespace, getattr(self.args, "lease", None))
        return self._store

    def call(self, method: Callable[..., _T], request: Any, **kwargs: Any) -> _T:
        """One unary call with this namespace's headers; a failed call raises its error kind."""
        import grpc

        from contentd.api.errors import from_grpc

        kwargs.setdefault("metadata", self.metadata())
        try:
            return method(request, **kwargs)
        except grpc.RpcError as err:
            raise from_grpc(err) from None

    def stream(
        self, method: Callable[..., Iterable[_T]], request: Any, **kwargs: Any
    ) -> Iterator[_T]:
        """The responses of a server stream; a failure raises its error kind and ending
        early cancels the call."""
        import grpc

        from contentd.api.errors import from_grpc

        kwargs.setdefault("metadata", self.metadata())
        call = method(request, **kwargs)
        try:
            yield from call
        except grpc.RpcError as err:
            raise from_grpc(err) from None
        finally:
            cancel = getattr(call, "cancel", None)
            if callable(cancel):
                cancel()

    def quick_stream(
        self, path: str, request: Message, response: type[_M], *, timeout: float | None = None
    ) -> Iterator[_M]:
        """The responses of the server stream ``path`` (``/package.Service/Method``).

        On a unix socket this goes through :mod:`contentd.wire.client`, which needs
        no grpcio: importing grpcio alone costs about 0.1 s, a large part of a
        command such as ``content ls``. Elsewhere it is a grpcio call. Errors come
        back as their kinds, as from :meth:`stream`.
        """
        for raw in self.quick_stream_raw(path, request.SerializeToString(), timeout=timeout):
            yield response.FromString(raw)

    def quick_stream_raw(
        self, path: str, request: bytes, *, timeout: float | None = None
    ) -> Iterator[bytes]:
        """:meth:`quick_stream` with the messages as serialized bytes (for commands that
        encode and decode their few messages themselves, without the protobuf runtime)."""
        if socket_path(self.address) is None:
            method = self.channel().unary_stream(
                path,
                request_serializer=_same_bytes,
                response_deserializer=_same_bytes,
            )
            yield from self.stream(method, request, timeout=timeout)
            return
        with self._quick_connection(timeout) as conn:
            yield from conn.server_stream(path, request, self.metadata())

    def quick_call(
        self, path: str, request: Message, response: type[_M], *, timeout: float | None = None
    ) -> _M:
        """One unary call, as :meth:`quick_stream` makes its calls."""
        if socket_path(self.address) is None:
            method = self.channel().unary_unary(
                path,
                request_serializer=type(request).SerializeToString,
                response_deserializer=response.FromString,
            )
            reply: _M = self.call(method, request, timeout=timeout)
            return reply
        with self._quick_connection(timeout) as conn:
            raw = conn.unary(path, request.SerializeToString(), self.metadata())
        return response.FromString(raw)

    @contextlib.contextmanager
    def quick_unary(
        self, path: str, response: type[_M], *, timeout: float | None = None
    ) -> Iterator[Callable[[Message], _M]]:
        """A function making unary calls to ``path``, all on one connection (many small
        calls in a row, as :meth:`quick_call` makes one)."""
        if socket_path(self.address) is None:
            method = self.channel().unary_unary(
                path,
                request_serializer=lambda m: m.SerializeToString(),
                response_deserializer=response.FromString,
            )
            yield lambda request: self.call(method, request, timeout=timeout)
            return
        with self._quick_connection(timeout) as conn:
            metadata = self.metadata()
            yield lambda request: response.FromString(
                conn.unary(path, request.SerializeToString(), metadata)
            )

    @contextlib.contextmanager
    def _quick_connection(self, timeout: float | None) -> Iterator[WireConnection]:
        """A grpcio-free connection to the unix socket; call errors come back as kinds."""
        self.check_socket()
        from contentd.wire.client import CallError, Connection

        try:
            with Connection(self.target, timeout=timeout) as conn:
                yield conn
        except CallError as err:
            raise err.error() from None

    def abandon(self) -> None:
        """Forget the connection without closing it (the process is about to end)."""
        self._channel = None
        self._store = None

    def close(self) -> None:
        """Close the channel, waiting at most :data:`CLOSE_TIMEOUT` seconds for grpcio."""
        if self._channel is not None:
            import threading

            channel, self._channel, self._store = self._channel, None, None
            closer = threading.Thread(target=channel.close, name="close-channel", daemon=True)
            closer.start()
            closer.join(CLOSE_TIMEOUT)
