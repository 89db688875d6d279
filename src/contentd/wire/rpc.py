"""Running one call's handler and turning how it ended into a gRPC status.

The semantics are grpcio's synchronous server's, so servicers behave the same
on either engine: ``context.abort`` ends the call with the code and details it
was given; an exception ends it UNKNOWN ``Exception calling application: ...``
(or the code and details the handler set); a response-streaming handler is
stopped (its generator closed) when the call ends under it; an error raised
because the call was cancelled is not logged.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any, Final

import grpc

from contentd.wire.call import Call, RequestIterator
from contentd.wire.context import AbortError, Context
from contentd.wire.errors import CallCancelled, MessageTooLarge
from contentd.wire.handlers import InlineUnaryHandler
from contentd.wire.streams import as_bytes

__all__ = ["run", "run_inline"]

log = logging.getLogger("contentd.wire")

_OK: Final = grpc.StatusCode.OK
_UNKNOWN: Final = grpc.StatusCode.UNKNOWN
_OK_NUMBER: Final = 0


#: A unary reply up to this size is queued and written together with its trailers.
_SMALL_REPLY: Final = 64 << 10


def run(call: Call, argument: Any, *, deserialize: bool) -> None:
    """Run ``call``'s handler with its request (raw bytes when ``deserialize``) on a
    worker and end the call (:func:`run_inline` runs the reader's own calls).

    ``argument`` is None for a client-streaming call (the handler gets the
    request iterator).
    """
    if not call.active:
        return  # ended before its turn on the pool (reset, deadline, connection lost)
    handler = call.handler
    context = Context(call)
    if handler.request_streaming:
        argument = RequestIterator(call, handler.request_deserializer)
    elif deserialize and handler.request_deserializer is not None:
        try:
            argument = handler.request_deserializer(argument)
        except Exception:
            call.fail(_number(grpc.StatusCode.INTERNAL), "Exception deserializing request!")
            return
    elif deserialize:  # raw, as grpcio gives it: bytes
        argument = as_bytes(argument)
    serialize = handler.response_serializer
    what = "calling application"
    try:
        if handler.response_streaming:
            behavior = handler.stream_stream if handler.request_streaming else handler.unary_stream
            assert behavior is not None
            responses: Iterable[Any] = behavior(argument, context)
            what = "iterating responses"
            _stream(call, responses, serialize, hold=handler.request_streaming)
        else:
            behavior = handler.stream_unary if handler.request_streaming else handler.unary_unary
            assert behavior is not None
            response = behavior(argument, context)
            if call.active:
                what = "serializing response"
                payload = serialize(response) if serialize is not None else response
                # small replies go out with the trailers in one write; a big one is written
                # now and the worker waits for window, so a client that does not read
                # holds at most a worker's worth of queued output per call
                call.send(payload, flush=len(payload) > _SMALL_REPLY)
    except MessageTooLarge as err:
        call.fail(_number(grpc.StatusCode.RESOURCE_EXHAUSTED), str(err))
        return
    except Exception as err:
        _failed(call, err, what)
        return
    call.finish(_number(call.code or _OK), call.details or "")


def run_inline(call: Call, request: Any) -> None:
    """Run the handler of a unary-request ``call`` on the connection's reader thread.

    What it produces (its admission bounds the size) is collected and queued at
    once, with the status, in one :meth:`Call.reply`: one lock round trip, and
    the reader writes it all with whatever else the batch queued. Statuses are
    :func:`run`'s: messages produced before a failure still go out before it.
    A handler's ``inline_unary`` shortcut (:mod:`.handlers`) is asked first.
    """
    if not call.active:
        return
    handler = call.handler
    if type(handler) is InlineUnaryHandler:
        try:
            payload = handler.inline_unary(request, call.metadata)
        except Exception:
            log.exception("%s: the inline_unary shortcut failed; running the handler", call.path)
            payload = None
        if payload is not None:
            try:
                call.reply([payload], _OK_NUMBER, "")
            except MessageTooLarge as err:
                call.fail(_number(grpc.StatusCode.RESOURCE_EXHAUSTED), str(err))
            return
    context = Context(call)
    serialize = handler.response_serializer
    payloads: list[Any] = []
    what = "calling application"
    try:
        if handler.response_streaming:
            behavior = handler.unary_stream
            assert behavior is not None
            responses: Iterable[Any] = behavior(request, context)
            what = "iterating responses"
            for response in responses:
                payloads.append(serialize(response) if serialize is not None else response)
        else:
            unary = handler.unary_unary
            assert unary is not None
            response = unary(request, context)
            what = "serializing response"
            payloads.append(serialize(response) if serialize is not None else response)
        code = call.code
        status = (_OK_NUMBER if code is None else _number(code), call.details or "")
    except Exception as err:
        failure = _failure(call, err, what)
        if failure is None:
            return
        status = failure
    try:
        call.reply(payloads, *status)
    except MessageTooLarge as err:
        call.fail(_number(grpc.StatusCode.RESOURCE_EXHAUSTED), str(err))


def _stream(call: Call, responses: Iterable[Any], serialize: Any, *, hold: bool) -> None:
    """Send what the handler yields, as there is room for it.

    With ``hold`` (a bidi call) a small response is queued without a write: it goes
    out with whatever comes next - the next response, the status, the window
    updates of the next request it takes - or before the handler waits for a
    request or for room, at the latest. A lock-step client's exchange costs the
    same writes; a Write's COMMIT reply, its duplicate and the trailers go in one.
    """
    send = call.send
    room = call.wait_for_room
    iterator = iter(responses)
    try:
        # the next response is made only when there is room for it: memory stays bounded
        # however many streams a client opens and leaves unread
        while True:
            # False when the call ended (resumed once more, the handler finds out through
            # its request iterator or its next send) or the connection is gone (stop now:
            # a message made for a peer that is gone is memory spent on nothing)
            if not room() and (call.active or call.gone):
                break
            try:
                response = next(iterator)
            except StopIteration:
                break
            payload = serialize(response) if serialize is not None else response
            if not send(payload, flush=not hold or len(payload) > _SMALL_REPLY):
                break
    finally:
        close = getattr(iterator, "close", None)
        if close is not None:
            try:
                close()
            except Exception as err:
                log.debug("closing the response generator of %s failed: %r", call.path, err)


def _failed(call: Call, err: Exception, what: str) -> None:
    status = _failure(call, err, what)
    if status is not None:
        call.finish(*status)


def _failure(call: Call, err: Exception, what: str) -> tuple[int, str] | None:
    """The status a handler's exception ends ``call`` with; None if the call had ended."""
    if not call.active:
        return None  # cancelled under the handler: whatever it raised is moot
    if isinstance(err, AbortError) or call.aborted:
        code = call.code if call.code is not None and call.code is not _OK else _UNKNOWN
        return _number(code), call.details or ""
    if isinstance(err, CallCancelled):
        return _number(grpc.StatusCode.CANCELLED), "Cancelled"
    details = f"Exception {what}: {err}"
    log.error("%s: %s", call.path, details, exc_info=err)
    return _number(call.code or _UNKNOWN), call.details or details


def _number(code: grpc.StatusCode) -> int:
    value: int = code.value[0]
    return value
