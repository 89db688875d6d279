"""``contentd events [FILTER...]``: the daemon's live event stream, until Ctrl-C (exit 0).

Each event is one line, as ``ctr events`` prints it: time, namespace, topic,
and the event's fields as JSON. Events of every namespace are shown; narrow
them with filters (``namespace==default``, ``topic~=/content/``).
"""

from __future__ import annotations

import argparse
import base64
import json
from typing import TYPE_CHECKING, Any

from contentd.cli.parser import add_command

if TYPE_CHECKING:
    from contentd.api._pb.containerd.services.events.v1 import events_pb2
    from contentd.cli.context import Context

__all__ = ["add_commands", "envelope_to_json"]


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    events = add_command(
        commands,
        "events",
        aliases=["event"],
        help="print the daemon's events as they happen (Ctrl-C stops it, exit status 0)",
        example="contentd events 'topic~=\"^/content/\"'",
        handler=run_events,
    )
    events.add_argument(
        "filters", nargs="*", metavar="FILTER", help="any may match; fields: topic, namespace"
    )


def _fields(event: Any) -> dict[str, object]:
    """The event's fields (containerd's and contentd's known types), else its raw bytes."""
    from contentd.api.event_types import decode_fields

    try:
        fields = decode_fields(event)
    except Exception:  # a payload that does not parse as its type says
        fields = None
    if fields is not None:
        return fields
    return {"type_url": event.type_url, "value": base64.b64encode(event.value).decode()}


def envelope_to_json(envelope: events_pb2.Envelope) -> dict[str, Any]:
    from contentd.api.convert import datetime_from_pb
    from contentd.cli.output import format_time

    return {
        "timestamp": format_time(datetime_from_pb(envelope.timestamp)),
        "namespace": envelope.namespace,
        "topic": envelope.topic,
        "event": _fields(envelope.event) if envelope.HasField("event") else None,
    }


def run_events(ctx: Context) -> int:
    import grpc

    from contentd.api._pb.containerd.services.events.v1 import events_pb2 as pb
    from contentd.api._pb.containerd.services.events.v1 import events_pb2_grpc as pb_grpc
    from contentd.api.errors import from_grpc
    from contentd.proxy.channel import cancel_call

    stub = pb_grpc.EventsStub(ctx.channel())
    call = stub.Subscribe(pb.SubscribeRequest(filters=ctx.args.filters), metadata=ctx.metadata())
    try:
        for envelope in call:
            obj = envelope_to_json(envelope)
            if ctx.json:  # json and jsonl alike: one object per event, as it happens
                ctx.emit(obj)
            else:
                payload = json.dumps(obj["event"], separators=(",", ":")) if obj["event"] else ""
                ctx.write(f"{obj['timestamp']} {obj['namespace']} {obj['topic']} {payload}\n")
            ctx.flush()
    except KeyboardInterrupt:
        return 0
    except grpc.RpcError as err:
        raise from_grpc(err) from None
    finally:
        cancel_call(call)
    return 0
