"""The ``containerd.services.content.v1.Content`` gRPC service over any Store (spec §5).

:class:`ContentService` serves the nine RPCs exactly as containerd 1.6's
``contentserver`` does, including its quirks (the Read response offset, List
sending no ``updated_at``, the duplicate final Write response). Which store a
call works on is decided per call by a :class:`StoreResolver` from the call's
``containerd-namespace`` and ``containerd-lease`` headers:
:class:`SingleStoreResolver` ignores them and serves one store, as a plain
backend server (a proxy plugin's target) does.

It is written for grpcio's synchronous server (and the native engine, which
runs handlers the same way): every RPC runs on a pool thread and streams are
generators, so a blob is never held in memory whole (Read streams through
``reader_at`` in chunks of at most 1 MiB). The two messages that carry blob
bytes, Write requests and Read responses, are decoded and encoded by hand
(:mod:`contentd.api.content_codec`): a Write's data reaches the store as a view
of the received message, not a copy.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Final, NoReturn, Protocol, cast

import grpc
from google.protobuf import empty_pb2

from contentd.api._pb.containerd.services.content.v1 import content_pb2 as pb
from contentd.api.content_codec import (
    ReadRequest,
    WriteRequest,
    decode_read_request,
    decode_write_request,
    encode_read_response,
)
from contentd.api.convert import (
    ZERO_SECONDS,
    fill_timestamp,
    info_from_pb,
    info_rows,
    info_to_pb,
    status_to_pb,
)
from contentd.api.errors import StatusError, abort_with, expected
from contentd.api.goquote import go_quote
from contentd.api.metadata_keys import namespace_and_lease
from contentd.content import digest as digests
from contentd.content.errors import ContentError, DataLoss, InvalidDigest
from contentd.content.store import Store, Writer
from contentd.content.types import ZERO_TIME, InfoRow
from contentd.wire.handlers import inline_unary_handler

__all__ = [
    "LIST_BATCH",
    "READ_CHUNK",
    "SERVICE_NAME",
    "ContentService",
    "DeleteHook",
    "SingleStoreResolver",
    "StoreResolver",
]

log = logging.getLogger(__name__)

#: Infos per List response message.
LIST_BATCH: Final = 100
#: Largest data chunk of a Read response.
READ_CHUNK: Final = 1 << 20

#: The gRPC service name.
SERVICE_NAME: Final = "containerd.services.content.v1.Content"

_STAT: Final = pb.STAT
_WRITE: Final = pb.WRITE
_COMMIT: Final = pb.COMMIT
_Code = grpc.StatusCode
_EMPTY: Final = empty_pb2.Empty()
_EMPTY_SERIALIZE: Final = empty_pb2.Empty.SerializeToString
#: what Read takes: the hand-decoded request, or the generated message
_ReadArgs = ReadRequest | pb.ReadContentRequest


class StoreResolver(Protocol):
    """Picks the store a call works on.

    ``namespace`` and ``lease`` are the first values of the call's
    ``containerd-namespace`` and ``containerd-lease`` metadata, or None when
    absent. Errors it raises (e.g. FailedPrecondition ``namespace is
    required``) go back to the caller as the store's own errors would.
    """

    def resolve(self, namespace: str | None, lease: str | None) -> Store: ...


class SingleStoreResolver:
    """Serves one store to every call, whatever its namespace or lease."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def resolve(self, namespace: str | None, lease: str | None) -> Store:
        return self.store

    def __repr__(self) -> str:
        return f"SingleStoreResolver({self.store!r})"


#: Called after a successful Delete with the call's namespace header (None if
#: absent) and the digest; what it raises is returned to the caller (the blob
#: is deleted regardless), as containerd's event publishing does.
DeleteHook = Callable[[str | None, str], None]


class ContentService:
    """containerd's Content service over the stores ``resolver`` hands out.

    Methods take and return the generated messages, except ``Read``, which yields
    serialized ``ReadContentResponse`` bytes, and ``Write``, which takes
    :class:`~contentd.api.content_codec.WriteRequest` items (see :meth:`register`).
    """

    def __init__(self, resolver: StoreResolver, *, on_delete: DeleteHook | None = None) -> None:
        self._resolver = resolver
        self._on_delete = on_delete
        #: (namespace, lease) headers by call metadata: a client repeating a call sends the
        #: same header block, and the native engine hands out the same metadata tuple
        self._headers: dict[Any, tuple[str | None, str | None]] = {}

    def register(self, server: grpc.Server) -> None:
        """Add this service to ``server`` (see :func:`contentd.daemon.engines.build_server`)."""
        handlers = self.method_handlers()
        server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler(SERVICE_NAME, handlers),)
        )

    def method_handlers(self) -> dict[str, grpc.RpcMethodHandler[Any, Any]]:
        """The service's method table: the generated one's, but Read's responses go out
        as ``Read`` encodes them, Read's and Write's requests come in as
        :mod:`~contentd.api.content_codec` decodes them, and Read has the native engine's
        inline shortcut (:meth:`read_inline`)."""
        unary = grpc.unary_unary_rpc_method_handler
        return {
            "Info": unary(self.Info, pb.InfoRequest.FromString, pb.InfoResponse.SerializeToString),
            "Update": unary(
                self.Update, pb.UpdateRequest.FromString, pb.UpdateResponse.SerializeToString
            ),
            "List": grpc.unary_stream_rpc_method_handler(
                self.List,
                pb.ListContentRequest.FromString,
                pb.ListContentResponse.SerializeToString,
            ),
            "Delete": unary(self.Delete, pb.DeleteContentRequest.FromString, _EMPTY_SERIALIZE),
            "Read": inline_unary_handler(
                grpc.unary_stream_rpc_method_handler(self.Read, decode_read_request, None),
                self.read_inline,
            ),
            "Status": unary(
                self.Status, pb.StatusRequest.FromString, pb.StatusResponse.SerializeToString
            ),
            "ListStatuses": unary(
                self.ListStatuses,
                pb.ListStatusesRequest.FromString,
                pb.ListStatusesResponse.SerializeToString,
            ),
            "Write": grpc.stream_stream_rpc_method_handler(
                self.Write, decode_write_request, pb.WriteContentResponse.SerializeToString
            ),
            "Abort": unary(self.Abort, pb.AbortRequest.FromString, _EMPTY_SERIALIZE),
        }

    # -- helpers -----------------------------------------------------------

    def _store(self, context: grpc.ServicerContext) -> Store:
        return self._store_for(context.invocation_metadata())

    def _store_for(self, metadata: Sequence[tuple[str, str | bytes]] | None) -> Store:
        namespace, lease = self._namespace_and_lease(metadata)
        return self._resolver.resolve(namespace, lease)

    def _namespace_and_lease(
        self, metadata: Sequence[tuple[str, str | bytes]] | None
    ) -> tuple[str | None, str | None]:
        """:func:`namespace_and_lease` of ``metadata``, remembered for small metadata."""
        headers = self._headers
        if metadata is None or len(metadata) > _HEADERS_SIZE:
            return namespace_and_lease(metadata)
        try:
            found = headers.get(metadata)
        except TypeError:  # unhashable (a list)
            return namespace_and_lease(metadata)
        if found is None:
            found = namespace_and_lease(metadata)
            if len(headers) >= _HEADERS_LIMIT:
                headers.clear()
            headers[metadata] = found
        return found

    @staticmethod
    def _fail(context: grpc.ServicerContext, err: BaseException, method: str) -> NoReturn:
        err = expected(err)
        if not isinstance(err, ContentError | StatusError):
            log.exception("Content/%s failed unexpectedly", method)
        else:
            log.debug("Content/%s failed: %s", method, err)
        abort_with(context, err)

    # -- unary RPCs --------------------------------------------------------

    def Info(self, request: pb.InfoRequest, context: grpc.ServicerContext) -> pb.InfoResponse:
        try:
            digest = _validated(request.digest)
            info = self._store(context).info(digest)
        except Exception as err:
            self._fail(context, err, "Info")
        response = pb.InfoResponse()
        info_to_pb(info, response.info)
        return response

    def Update(self, request: pb.UpdateRequest, context: grpc.ServicerContext) -> pb.UpdateResponse:
        try:
            _validated(request.info.digest)
            info = self._store(context).update(
                info_from_pb(request.info), *request.update_mask.paths
            )
        except Exception as err:
            self._fail(context, err, "Update")
        response = pb.UpdateResponse()
        info_to_pb(info, response.info)
        return response

    def Delete(
        self, request: pb.DeleteContentRequest, context: grpc.ServicerContext
    ) -> empty_pb2.Empty:
        digest = request.digest
        try:
            try:
                digests.validate(digest)
            except InvalidDigest as err:
                raise StatusError(_Code.INVALID_ARGUMENT, err.context) from None
            namespace, lease = namespace_and_lease(context.invocation_metadata())
            self._resolver.resolve(namespace, lease).delete(digest)
            if self._on_delete is not None:
                self._on_delete(namespace, digest)
        except Exception as err:
            self._fail(context, err, "Delete")
        return _EMPTY

    def Status(self, request: pb.StatusRequest, context: grpc.ServicerContext) -> pb.StatusResponse:
        ref = request.ref
        try:
            try:
                status = self._store(context).status(ref)
            except ContentError as err:
                raise err.wrap(f"could not get status for ref {go_quote(ref)}") from None
            except StatusError:
                raise
            except Exception as err:
                raise StatusError(
                    _Code.UNKNOWN, f"could not get status for ref {go_quote(ref)}: {err}"
                ) from err
        except Exception as err:
            self._fail(context, err, "Status")
        response = pb.StatusResponse()
        status_to_pb(status, response.status)
        return response

    def ListStatuses(
        self, request: pb.ListStatusesRequest, context: grpc.ServicerContext
    ) -> pb.ListStatusesResponse:
        try:
            statuses = self._store(context).list_statuses(*request.filters)
        except Exception as err:
            self._fail(context, err, "ListStatuses")
        response = pb.ListStatusesResponse()
        add = response.statuses.add
        for status in statuses:
            status_to_pb(status, add())
        return response

    def Abort(self, request: pb.AbortRequest, context: grpc.ServicerContext) -> empty_pb2.Empty:
        try:
            self._store(context).abort(request.ref)
        except Exception as err:
            self._fail(context, err, "Abort")
        return _EMPTY

    # -- server streams ----------------------------------------------------

    def List(
        self, request: pb.ListContentRequest, context: grpc.ServicerContext
    ) -> Iterator[pb.ListContentResponse]:
        try:
            yield from self._list(request, context)
        except Exception as err:
            self._fail(context, err, "List")

    def _list(
        self, request: pb.ListContentRequest, context: grpc.ServicerContext
    ) -> Iterator[pb.ListContentResponse]:
        store = self._store(context)
        walk_rows = getattr(store, "walk_rows", None)
        # a filter that matches nothing yields nothing until the walk ends: the walk asks
        # between its chunks whether the client is still there
        rows: Iterator[InfoRow] = (
            walk_rows(*request.filters, cancelled=lambda: not context.is_active())
            if walk_rows is not None
            else info_rows(store.walk(*request.filters))
        )
        # Rows go straight into the messages: no datetimes, no Info objects (``ctr content
        # ls`` of 10 000 blobs is mostly this loop). containerd's List sends updated_at as
        # the zero time. A fresh message per batch: protobuf (upb) keeps everything ever
        # assigned to a message in that message's arena, so a reused one would grow with
        # the whole listing.
        response = pb.ListContentResponse()
        add = response.info.add
        count = 0
        for digest, size, created_ns, _, labels in rows:
            seconds, nanos = divmod(created_ns, 1_000_000_000)
            info = add(digest=digest, size=size, labels=labels)
            created = info.created_at
            created.seconds = seconds
            created.nanos = nanos
            info.updated_at.seconds = ZERO_SECONDS
            count += 1
            if count >= LIST_BATCH:
                yield response
                response = pb.ListContentResponse()
                add = response.info.add
                count = 0
        if count:
            yield response

    def Read(self, request: _ReadArgs, context: grpc.ServicerContext) -> Iterator[bytes]:
        try:
            yield from self._read(request, context)
        except Exception as err:
            self._fail(context, err, "Read")

    def read_inline(
        self, request: _ReadArgs, metadata: Sequence[tuple[str, str | bytes]]
    ) -> bytes | None:
        """Read's answer when it is one message with all the bytes asked for, else None.

        The native engine's shortcut for the Reads it answers on a connection's reader
        thread (containerd's proxy plugin and ``ctr content get`` read 32 KiB per call;
        see :mod:`contentd.wire.handlers`): the same lookups and bytes as :meth:`Read`,
        without its context, generators and status handling. Everything else is
        declined and so answered by :meth:`Read`: a digest not validated yet, any error
        (not found, out of range, bad namespace, ...), a read of the whole blob (which
        is verified), one that would be empty or short, more than one chunk.
        """
        size = request.size
        digest = request.digest
        if size <= 0 or size > READ_CHUNK or digest not in _VALID:
            return None
        try:
            with self._store_for(metadata).reader_at(digest) as ra:
                blob_size = ra.size
                offset = request.offset
                if offset < 0:
                    offset = 0
                left = blob_size - offset
                if left <= 0 or (offset == 0 and size >= blob_size):
                    return None
                if size > left:
                    size = left
                chunk = ra.read_at(offset, size)
        except Exception:
            return None
        if len(chunk) != size:
            return None
        return encode_read_response(0, chunk)

    def _read(self, request: _ReadArgs, context: grpc.ServicerContext) -> Iterator[bytes]:
        digest = request.digest
        try:
            _valid_digest(digest)
        except InvalidDigest as err:
            raise StatusError(_Code.INVALID_ARGUMENT, f"{digest}: {err.context}") from None
        # containerd calls Info and then ReaderAt; the reader's record check raises the
        # same NotFound and its size is the blob's, so one metadata lookup serves both
        # (ctr content get issues one Read per 32 KiB: per-call cost is what counts).
        with self._store(context).reader_at(digest) as ra:
            blob_size = ra.size
            offset = max(request.offset, 0)
            if offset > blob_size:
                raise StatusError(_Code.OUT_OF_RANGE, f"read past object length {blob_size} bytes")
            size = request.size
            if size <= 0 or offset + size > blob_size:
                size = blob_size - offset
            # The response offset counts the bytes sent in this stream (containerd's quirk).
            read_at = ra.read_at
            sent = 0
            # a whole blob is verified as it goes; its last chunk is held back until the
            # digest matched, so a client never receives all of a corrupt blob
            h = hashlib.new(digest.partition(":")[0]) if size == blob_size > 0 else None
            while sent < size:
                chunk = read_at(offset + sent, min(READ_CHUNK, size - sent))
                if h is not None:
                    h.update(chunk)
                    if not chunk or sent + len(chunk) == size:
                        self._check_whole(context, digest, h.hexdigest(), sent + len(chunk), size)
                if not chunk:
                    break
                yield encode_read_response(sent, chunk)
                sent += len(chunk)

    def _check_whole(
        self, context: grpc.ServicerContext, digest: str, hexdigest: str, got: int, size: int
    ) -> None:
        """DataLoss (and the blob quarantined) unless a whole read matched its digest."""
        algorithm, _, want = digest.partition(":")
        if got == size and want == hexdigest:
            return
        if got == size:
            reason = f"read: bytes hash to {algorithm}:{hexdigest}"
        else:
            reason = f"read: short read, {got} of {size} bytes"
        report = getattr(self._store(context), "report_corrupt", None)
        if callable(report):
            report(digest, reason)
        raise DataLoss(f"content {digest}: {reason}")

    # -- the Write bidi stream ----------------------------------------------

    def Write(
        self, request_iterator: Iterator[WriteRequest], context: grpc.ServicerContext
    ) -> Iterator[pb.WriteContentResponse]:
        try:
            yield from self._write(iter(request_iterator), context)
        except _StreamGone:
            return
        except Exception as err:
            self._fail(context, err, "Write")

    def _write(
        self, requests: Iterator[WriteRequest], context: grpc.ServicerContext
    ) -> Iterator[pb.WriteContentResponse]:
        req = _receive(requests)
        if req is None:  # the client half-closed before its first message
            raise StatusError(_Code.UNKNOWN, "EOF")
        ref = req.ref
        if not ref:
            raise StatusError(_Code.INVALID_ARGUMENT, "first message must have a reference")
        total = req.total
        expected = req.expected
        store = self._store(context)
        wr = store.writer(ref, total, expected or None)
        # a store whose writer refuses an expected digest it records (AlreadyExists) has
        # just answered the first message's Info check: only later messages ask again
        checked = expected if getattr(store, "writer_checks_expected", False) else ""
        # One response message, reused: fields set by a STAT persist into later responses.
        msg = pb.WriteContentResponse()
        fill_timestamp(msg.started_at, ZERO_TIME)  # Go always sends its (zero) times
        fill_timestamp(msg.updated_at, ZERO_TIME)
        try:
            while True:
                action = cast(pb.WriteAction, req.action)
                msg.action = action
                status = wr.status()
                msg.offset = status.offset

                if req.expected:
                    expected = req.expected
                    if checked == expected:
                        checked = ""  # the open checked it
                    elif _exists(store, expected):
                        _close_quietly(wr)
                        try:
                            store.abort(ref)
                        except Exception as err:
                            log.error("Write %s: abort after existing blob failed: %s", ref, err)
                        raise StatusError(
                            _Code.ALREADY_EXISTS, f"blob with expected digest {expected} exists"
                        )
                if req.total > 0:
                    total = req.total

                if action == _STAT:
                    msg.digest = wr.digest()
                    fill_timestamp(msg.started_at, status.started_at)
                    fill_timestamp(msg.updated_at, status.updated_at)
                    msg.total = total
                elif action in (_WRITE, _COMMIT):
                    _apply_write(wr, req, msg, status.offset)
                    if action == _COMMIT:
                        wr.commit(total, expected or None, dict(req.labels) if req.labels else None)
                    msg.digest = wr.digest()

                yield msg

                if action == _COMMIT:
                    break
                next_req = _receive(requests)
                if next_req is None:
                    break
                req = next_req
        finally:
            _close_quietly(wr)
        # Every successful end sends the last response once more (containerd's quirk).
        yield msg


class _StreamGone(Exception):
    """The client cancelled or the connection broke while we waited for a request."""


def _receive(requests: Iterator[WriteRequest]) -> WriteRequest | None:
    """The next request; None on the client's half-close."""
    try:
        return next(requests)
    except StopIteration:
        return None
    except grpc.RpcError:
        raise _StreamGone from None


def _apply_write(wr: Writer, req: WriteRequest, msg: pb.WriteContentResponse, current: int) -> None:
    """The WRITE/COMMIT offset protocol, then the data (spec §5.3 step 5)."""
    offset = req.offset
    if offset > 0 and offset != current:
        raise StatusError(
            _Code.OUT_OF_RANGE, f"write @{offset} must occur at current offset {current}"
        )
    if offset == 0 and current > 0:  # the restart protocol
        try:
            wr.truncate(0)
        except Exception as err:
            raise StatusError(_Code.UNKNOWN, f"truncate failed: {err}") from err
        msg.offset = 0
    data = req.data
    if data:
        n = wr.write(data)
        if n != len(data):
            raise StatusError(_Code.DATA_LOSS, f"wrote {n} of {len(data)} bytes")
        msg.offset += n


#: metadata remembered by ContentService._namespace_and_lease: at most this many, of at
#: most this many entries each
_HEADERS_LIMIT: Final = 64
_HEADERS_SIZE: Final = 8

#: digests that passed validation lately (containerd's proxy asks Info and Read of one
#: digest per 32 KiB: the regular expressions ran twice per 32 KiB for the same string)
_VALID: dict[str, bool] = {}
_VALID_LIMIT: Final = 1024


def _valid_digest(digest: str) -> None:
    """Return if ``digest`` is valid; raise :class:`InvalidDigest` if not."""
    if digest in _VALID:
        return
    digests.validate(digest)
    if len(_VALID) >= _VALID_LIMIT:
        _VALID.clear()
    _VALID[digest] = True


def _validated(digest: str) -> str:
    """``digest``, or INVALID_ARGUMENT ``"<d>" failed validation`` (Info, Update)."""
    try:
        _valid_digest(digest)
    except InvalidDigest:
        raise StatusError(_Code.INVALID_ARGUMENT, f"{go_quote(digest)} failed validation") from None
    return digest


def _exists(store: Store, digest: str) -> bool:
    try:
        store.info(digest)
    except Exception:
        return False
    return True


def _close_quietly(wr: Writer) -> None:
    with contextlib.suppress(Exception):
        wr.close()
