"""Event payloads <-> ``google.protobuf.Any``, as the Events service sends them.

containerd marks an event's type by its protobuf message name, with no
``type.googleapis.com/`` prefix: a content delete travels as
``Any{type_url="containerd.events.ContentDelete", value=<ContentDelete bytes>}``
and ``ctr events`` decodes it by that name.

Payloads on the exchange are small objects with a ``field(path)`` filter
adaptor: the metadata layer's :class:`~contentd.metadata.ContentDelete` and
:class:`~contentd.metadata.ContentCreate`, the namespace events defined
here, and :class:`AnyEvent` (an event a client published or forwarded, kept
as the ``Any`` it arrived as). :func:`to_any` turns any of them into an Any.

The ``/content/create`` event (containerd 1.6 publishes none) is sent as
containerd 2.x's ``containerd.events.ContentCreate{digest=1, size=2}``, so
containerd 2 clients decode it; ``ctr`` 1.6 does not know the type (it logs
that it cannot decode it and goes on). The namespace events and ContentCreate
are not in contentd's generated stubs, so their (tiny) wire format is written
and read here directly.
``/content/corrupt`` (contentd's) is sent as
``contentd.events.ContentCorrupt{digest=1, reason=2}``, written and read here too.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

from google.protobuf import any_pb2
from google.protobuf.message import DecodeError, Message

from contentd.api._pb.containerd.events import content_pb2 as content_events
from contentd.api._pb.containerd.events import image_pb2 as image_events
from contentd.api.protowire import (
    MalformedVarint,
    bytes_field,
    int_field,
    read_varint,
    string_field,
)
from contentd.metadata.events import ContentCorrupt, ContentCreate, ContentDelete

__all__ = [
    "TYPE_CONTENT_CORRUPT",
    "TYPE_CONTENT_CREATE",
    "TYPE_CONTENT_DELETE",
    "TYPE_IMAGE_CREATE",
    "TYPE_IMAGE_DELETE",
    "TYPE_IMAGE_UPDATE",
    "TYPE_NAMESPACE_CREATE",
    "TYPE_NAMESPACE_DELETE",
    "TYPE_NAMESPACE_UPDATE",
    "AnyEvent",
    "ImageCreate",
    "ImageDelete",
    "ImageUpdate",
    "NamespaceCreate",
    "NamespaceDelete",
    "NamespaceUpdate",
    "decode_fields",
    "to_any",
]

TYPE_CONTENT_DELETE: Final = "containerd.events.ContentDelete"
TYPE_CONTENT_CREATE: Final = "containerd.events.ContentCreate"
TYPE_CONTENT_CORRUPT: Final = "contentd.events.ContentCorrupt"
TYPE_NAMESPACE_CREATE: Final = "containerd.events.NamespaceCreate"
TYPE_NAMESPACE_UPDATE: Final = "containerd.events.NamespaceUpdate"
TYPE_NAMESPACE_DELETE: Final = "containerd.events.NamespaceDelete"
# containerd declares its image events in the images service's package
TYPE_IMAGE_CREATE: Final = "containerd.services.images.v1.ImageCreate"
TYPE_IMAGE_UPDATE: Final = "containerd.services.images.v1.ImageUpdate"
TYPE_IMAGE_DELETE: Final = "containerd.services.images.v1.ImageDelete"

_ABSENT: Final = ("", False)


def _labels_field(labels: Mapping[str, str], rest: Sequence[str]) -> tuple[str, bool]:
    if not labels:
        return _ABSENT
    value = labels.get(".".join(rest))
    return _ABSENT if value is None else (value, True)


@dataclass(frozen=True, slots=True)
class NamespaceCreate:
    name: str
    labels: Mapping[str, str] = field(default_factory=dict)

    def field(self, fieldpath: Sequence[str]) -> tuple[str, bool]:
        return _namespace_field(self.name, self.labels, fieldpath)


@dataclass(frozen=True, slots=True)
class NamespaceUpdate:
    name: str
    labels: Mapping[str, str] = field(default_factory=dict)

    def field(self, fieldpath: Sequence[str]) -> tuple[str, bool]:
        return _namespace_field(self.name, self.labels, fieldpath)


@dataclass(frozen=True, slots=True)
class NamespaceDelete:
    name: str

    def field(self, fieldpath: Sequence[str]) -> tuple[str, bool]:
        return _namespace_field(self.name, {}, fieldpath)


def _namespace_field(
    name: str, labels: Mapping[str, str], fieldpath: Sequence[str]
) -> tuple[str, bool]:
    if not fieldpath:
        return _ABSENT
    if fieldpath[0] == "name":
        return name, bool(name)
    if fieldpath[0] == "labels":
        return _labels_field(labels, fieldpath[1:])
    return _ABSENT


@dataclass(frozen=True, slots=True)
class ImageCreate:
    name: str
    labels: Mapping[str, str] = field(default_factory=dict)

    def field(self, fieldpath: Sequence[str]) -> tuple[str, bool]:
        return _namespace_field(self.name, self.labels, fieldpath)


@dataclass(frozen=True, slots=True)
class ImageUpdate:
    name: str
    labels: Mapping[str, str] = field(default_factory=dict)

    def field(self, fieldpath: Sequence[str]) -> tuple[str, bool]:
        return _namespace_field(self.name, self.labels, fieldpath)


@dataclass(frozen=True, slots=True)
class ImageDelete:
    name: str

    def field(self, fieldpath: Sequence[str]) -> tuple[str, bool]:
        return _namespace_field(self.name, {}, fieldpath)


# -- the wire format (proto3: strings and int64s, a map<string, string>) --------


def _map_field(number: int, labels: Mapping[str, str]) -> bytes:
    return b"".join(
        bytes_field(number, bytes_field(1, k.encode()) + bytes_field(2, v.encode()))
        for k, v in sorted(labels.items())
    )


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    try:
        return read_varint(data, pos, len(data))
    except MalformedVarint as err:
        raise DecodeError(str(err)) from None


def _fields(data: bytes) -> list[tuple[int, int | bytes]]:
    """``(number, value)`` of each field: ints for varints, bytes for length-delimited."""
    out: list[tuple[int, int | bytes]] = []
    pos = 0
    while pos < len(data):
        key, pos = _read_varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _read_varint(data, pos)
            out.append((number, value))
        elif wire == 2:
            size, pos = _read_varint(data, pos)
            if pos + size > len(data):
                raise DecodeError("truncated field")
            out.append((number, data[pos : pos + size]))
            pos += size
        elif wire == 1:
            pos += 8
        elif wire == 5:
            pos += 4
        else:
            raise DecodeError(f"unsupported wire type {wire}")
    return out


def _decode_name_labels(data: bytes) -> dict[str, object]:
    name = ""
    labels: dict[str, str] = {}
    for number, value in _fields(data):
        if number == 1 and isinstance(value, bytes):
            name = value.decode()
        elif number == 2 and isinstance(value, bytes):
            key = val = ""
            for n, v in _fields(value):
                if n == 1 and isinstance(v, bytes):
                    key = v.decode()
                elif n == 2 and isinstance(v, bytes):
                    val = v.decode()
            labels[key] = val
    return {"name": name, "labels": labels}


def _decode_content_delete(data: bytes) -> dict[str, object]:
    msg = content_events.ContentDelete()
    msg.ParseFromString(data)
    return {"digest": msg.digest}


def _decode_content_create(data: bytes) -> dict[str, object]:
    digest = ""
    size = 0
    for number, value in _fields(data):
        if number == 1 and isinstance(value, bytes):
            digest = value.decode()
        elif number == 2 and isinstance(value, int):
            size = value - (1 << 64) if value >= 1 << 63 else value
    return {"digest": digest, "size": size}


def _decode_content_corrupt(data: bytes) -> dict[str, object]:
    out: dict[str, object] = {"digest": "", "reason": ""}
    for number, value in _fields(data):
        if number in (1, 2) and isinstance(value, bytes):
            out["digest" if number == 1 else "reason"] = value.decode()
    return out


_DECODERS: Final[dict[str, Callable[[bytes], dict[str, object]]]] = {
    TYPE_CONTENT_CORRUPT: _decode_content_corrupt,
    TYPE_CONTENT_DELETE: _decode_content_delete,
    TYPE_CONTENT_CREATE: _decode_content_create,
    TYPE_NAMESPACE_CREATE: _decode_name_labels,
    TYPE_NAMESPACE_UPDATE: _decode_name_labels,
    TYPE_NAMESPACE_DELETE: lambda data: {"name": _decode_name_labels(data)["name"]},
    TYPE_IMAGE_CREATE: _decode_name_labels,
    TYPE_IMAGE_UPDATE: _decode_name_labels,
    TYPE_IMAGE_DELETE: lambda data: {"name": _decode_name_labels(data)["name"]},
}


def decode_fields(event: any_pb2.Any) -> dict[str, object] | None:
    """The fields of an event of a known type (for filters); None if unknown or garbled."""
    decoder = _DECODERS.get(event.type_url.removeprefix("type.googleapis.com/"))
    if decoder is None:
        return None
    try:
        return decoder(event.value)
    except (DecodeError, UnicodeDecodeError):
        return None


@dataclass(frozen=True)
class AnyEvent:
    """An event that arrived as an ``Any`` (Publish / Forward); sent on unchanged."""

    any: any_pb2.Any

    @property
    def nbytes(self) -> int:
        """About the memory the event holds (what an exchange's queues count)."""
        return len(self.any.value) + len(self.any.type_url)

    def field(self, fieldpath: Sequence[str]) -> tuple[str, bool]:
        if not fieldpath:
            return _ABSENT
        fields = decode_fields(self.any)
        if fields is None:
            return _ABSENT
        value = fields.get(fieldpath[0])
        if isinstance(value, Mapping):
            return _labels_field(value, fieldpath[1:])
        if value is None or len(fieldpath) != 1:
            return _ABSENT
        text = str(value)
        return text, bool(text) or isinstance(value, int)


def to_any(event: object) -> any_pb2.Any:
    """The ``Any`` an exchange payload is sent as."""
    if isinstance(event, AnyEvent):
        return event.any
    if isinstance(event, any_pb2.Any):
        return event
    if isinstance(event, ContentDelete):
        value = content_events.ContentDelete(digest=event.digest).SerializeToString()
        return any_pb2.Any(type_url=TYPE_CONTENT_DELETE, value=value)
    if isinstance(event, ContentCreate):
        value = string_field(1, event.digest) + int_field(2, event.size)
        return any_pb2.Any(type_url=TYPE_CONTENT_CREATE, value=value)
    if isinstance(event, ContentCorrupt):
        value = string_field(1, event.digest) + string_field(2, event.reason)
        return any_pb2.Any(type_url=TYPE_CONTENT_CORRUPT, value=value)
    if isinstance(event, NamespaceCreate | NamespaceUpdate):
        url = TYPE_NAMESPACE_CREATE if isinstance(event, NamespaceCreate) else TYPE_NAMESPACE_UPDATE
        value = string_field(1, event.name) + _map_field(2, event.labels)
        return any_pb2.Any(type_url=url, value=value)
    if isinstance(event, ImageCreate):
        value = image_events.ImageCreate(name=event.name, labels=event.labels).SerializeToString()
        return any_pb2.Any(type_url=TYPE_IMAGE_CREATE, value=value)
    if isinstance(event, ImageUpdate):
        value = image_events.ImageUpdate(name=event.name, labels=event.labels).SerializeToString()
        return any_pb2.Any(type_url=TYPE_IMAGE_UPDATE, value=value)
    if isinstance(event, ImageDelete):
        value = image_events.ImageDelete(name=event.name).SerializeToString()
        return any_pb2.Any(type_url=TYPE_IMAGE_DELETE, value=value)
    if isinstance(event, NamespaceDelete):
        return any_pb2.Any(type_url=TYPE_NAMESPACE_DELETE, value=string_field(1, event.name))
    if isinstance(event, Message):
        return any_pb2.Any(type_url=event.DESCRIPTOR.full_name, value=event.SerializeToString())
    raise TypeError(f"cannot send {type(event).__name__} as an event")
