"""Image records (containerd's ``metadata/images.go``): names bound to a target descriptor.

An image is a name, unique within its namespace, pointing at the root
descriptor of an image (an index or a manifest), with free-form labels and
created/updated times. The target is a garbage-collection root: the content
it names is kept, and so is what that content references through its
``containerd.io/gc.ref.content`` labels; the image's own
``containerd.io/gc.ref.content*`` labels reference content too. Deleting an
image marks the store dirty so the next collection can free what only it held.

Field paths for :meth:`ImageStore.update` and filter fields for
:meth:`ImageStore.list` are containerd's: ``name``, ``target.digest``,
``target.mediatype``, ``labels.<key>``, ``annotations.<key>`` (the target's
annotations); update also takes ``labels``, ``target`` and ``annotations``.
"""

from __future__ import annotations

import builtins
import functools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

from contentd import filters as filtering
from contentd.content import digest as digests
from contentd.content.errors import AlreadyExists, ContentError, InvalidArgument, NotFound
from contentd.content.gotime import from_ns
from contentd.content.labels import validate_labels
from contentd.content.types import ZERO_TIME, Descriptor
from contentd.metadata import identifiers
from contentd.metadata.core import Core
from contentd.metadata.sql import Conn

__all__ = ["Image", "ImageStore", "image_field"]


@dataclass(frozen=True, slots=True)
class Image:
    """An image record: ``target`` is the root descriptor (media type, digest, size,
    annotations)."""

    name: str
    target: Descriptor
    labels: Mapping[str, str] = field(default_factory=dict)
    created_at: datetime = ZERO_TIME
    updated_at: datetime = ZERO_TIME


def _map_field(values: Mapping[str, str], rest: Sequence[str]) -> tuple[str, bool]:
    if not values:
        return "", False
    value = values.get(".".join(rest))
    return (value, True) if value is not None else ("", False)


def image_field(image: Image, fieldpath: Sequence[str]) -> tuple[str, bool]:
    """containerd's image filter adaptor."""
    if not fieldpath:
        return "", False
    head = fieldpath[0]
    if head == "name":
        return image.name, bool(image.name)
    if head == "target" and len(fieldpath) >= 2:
        if fieldpath[1] == "digest":
            return image.target.digest, bool(image.target.digest)
        if fieldpath[1] == "mediatype":
            return image.target.media_type, bool(image.target.media_type)
        return "", False
    if head == "labels":
        return _map_field(image.labels, fieldpath[1:])
    if head == "annotations":
        return _map_field(image.target.annotations, fieldpath[1:])
    return "", False


def _validate(image: Image) -> None:
    if not image.name:
        raise InvalidArgument("image name must not be empty")
    try:
        validate_labels(image.labels)
    except ContentError as err:
        raise err.wrap("image.Labels") from None
    target = image.target
    try:
        digests.parse(target.digest)
    except ContentError as err:
        raise InvalidArgument(
            f'Target.Digest "{target.digest}" invalid: {err.context or err}'
        ) from None
    if target.size <= 0:
        raise InvalidArgument("Target.Size must be greater than zero")
    if not target.media_type:
        raise InvalidArgument("Target.MediaType must be set")


class ImageStore:
    """The images of one namespace."""

    def __init__(self, core: Core, namespace: str | None) -> None:
        self._core = core
        self._namespace = namespace

    def _ns(self) -> str:
        return identifiers.require_namespace(self._namespace)

    def get(self, name: str) -> Image:
        ns = self._ns()
        with self._core.view() as conn:
            image = _read(conn, ns, name)
        if image is None:
            raise NotFound(f'image "{name}"')
        return image

    def list(self, *filters: str) -> builtins.list[Image]:
        """Images in name order that match any of ``filters`` (all when none)."""
        ns = self._ns()
        try:
            match = filtering.parse_all(filters)
        except InvalidArgument as err:
            # containerd wraps the (already InvalidArgument) parse error once more
            raise InvalidArgument(str(err)) from err
        with self._core.view() as conn:
            found = _read_all(conn, ns)
        if match is filtering.ALWAYS:
            return found
        return [
            image
            for image in found
            if match.match(filtering.adapt_fn(functools.partial(image_field, image)))
        ]

    def create(self, image: Image) -> Image:
        """Record a new image; AlreadyExists when the name is taken."""
        ns = self._ns()
        _validate(image)
        now = self._core.now_ns()
        with self._core.update() as conn:
            self._core.ensure_namespace(conn, ns)
            if _exists(conn, ns, image.name):
                raise AlreadyExists(f'image "{image.name}"')
            created = replace(
                _without_empty(image), created_at=from_ns(now), updated_at=from_ns(now)
            )
            _write(conn, ns, created, now, now)
        return created

    def update(self, image: Image, *fieldpaths: str) -> Image:
        """Change an image: the fields named by ``fieldpaths``, or every field when none."""
        ns = self._ns()
        if not image.name:
            raise InvalidArgument("image name is required for update")
        now = self._core.now_ns()
        with self._core.update() as conn:
            current = _read(conn, ns, image.name)
            if current is None:
                raise NotFound(f'image "{image.name}"')
            updated = _apply(current, image, fieldpaths) if fieldpaths else image
            _validate(updated)
            created_ns = _created_ns(conn, ns, image.name)
            conn.execute("DELETE FROM images WHERE namespace = ? AND name = ?", (ns, image.name))
            updated = replace(
                _without_empty(updated), created_at=current.created_at, updated_at=from_ns(now)
            )
            _write(conn, ns, updated, created_ns, now)
            # a new target or new references may leave content unreferenced
            self._core.mark_dirty()
        return updated

    def delete(self, name: str, *, sync: bool = False) -> None:
        """Delete the image; with ``sync``, return only after a garbage collection."""
        ns = self._ns()
        with self._core.update() as conn:
            cur = conn.execute("DELETE FROM images WHERE namespace = ? AND name = ?", (ns, name))
            if cur.rowcount == 0:
                raise NotFound(f'image "{name}"')
            self._core.mark_dirty()
        if sync and self._core.sync_gc is not None:
            self._core.sync_gc()


def _without_empty(image: Image) -> Image:
    """Labels and annotations with empty values dropped (bolt stores none of them)."""
    return replace(
        image,
        labels={k: v for k, v in image.labels.items() if v},
        target=replace(
            image.target, annotations={k: v for k, v in image.target.annotations.items() if v}
        ),
    )


def _apply(current: Image, given: Image, fieldpaths: Iterable[str]) -> Image:
    labels = dict(current.labels)
    target = current.target
    annotations = dict(target.annotations)
    for path in fieldpaths:
        if path.startswith("labels."):
            key = path[len("labels.") :]
            labels[key] = given.labels.get(key, "")
        elif path.startswith("annotations."):
            key = path[len("annotations.") :]
            annotations[key] = given.target.annotations.get(key, "")
        elif path == "labels":
            labels = dict(given.labels)
        elif path == "target":
            target = given.target
            annotations = dict(given.target.annotations)
        elif path == "annotations":
            annotations = dict(given.target.annotations)
        else:
            raise InvalidArgument(f'cannot update "{path}" field on image "{given.name}"')
    return replace(current, labels=labels, target=replace(target, annotations=annotations))


# -- rows ----------------------------------------------------------------------


def _exists(conn: Conn, ns: str, name: str) -> bool:
    row = conn.execute("SELECT 1 FROM images WHERE namespace = ? AND name = ?", (ns, name))
    return row.fetchone() is not None


def _created_ns(conn: Conn, ns: str, name: str) -> int:
    row = conn.execute(
        "SELECT created_at FROM images WHERE namespace = ? AND name = ?", (ns, name)
    ).fetchone()
    return int(row[0])


def _write(conn: Conn, ns: str, image: Image, created: int, updated: int) -> None:
    """Insert ``image``; empty label and annotation values are not stored (as bolt's)."""
    target = image.target
    conn.execute(
        "INSERT INTO images (namespace, name, media_type, digest, size, created_at, updated_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        (ns, image.name, target.media_type, target.digest, target.size, created, updated),
    )
    conn.executemany(
        "INSERT INTO image_labels (namespace, image, key, value) VALUES (?, ?, ?, ?)",
        [(ns, image.name, k, v) for k, v in image.labels.items() if v],
    )
    conn.executemany(
        "INSERT INTO image_annotations (namespace, image, key, value) VALUES (?, ?, ?, ?)",
        [(ns, image.name, k, v) for k, v in target.annotations.items() if v],
    )


def _read(conn: Conn, ns: str, name: str) -> Image | None:
    row = conn.execute(
        "SELECT name, media_type, digest, size, created_at, updated_at FROM images"
        " WHERE namespace = ? AND name = ?",
        (ns, name),
    ).fetchone()
    if row is None:
        return None
    labels = dict(
        conn.execute(
            "SELECT key, value FROM image_labels WHERE namespace = ? AND image = ?", (ns, name)
        ).fetchall()
    )
    annotations = dict(
        conn.execute(
            "SELECT key, value FROM image_annotations WHERE namespace = ? AND image = ?",
            (ns, name),
        ).fetchall()
    )
    return _image(row, labels, annotations)


def _read_all(conn: Conn, ns: str) -> builtins.list[Image]:
    labels: dict[str, dict[str, str]] = {}
    for image, key, value in conn.execute(
        "SELECT image, key, value FROM image_labels WHERE namespace = ?", (ns,)
    ):
        labels.setdefault(image, {})[key] = value
    annotations: dict[str, dict[str, str]] = {}
    for image, key, value in conn.execute(
        "SELECT image, key, value FROM image_annotations WHERE namespace = ?", (ns,)
    ):
        annotations.setdefault(image, {})[key] = value
    rows = conn.execute(
        "SELECT name, media_type, digest, size, created_at, updated_at FROM images"
        " WHERE namespace = ? ORDER BY name",
        (ns,),
    ).fetchall()
    return [_image(row, labels.get(row[0], {}), annotations.get(row[0], {})) for row in rows]


def _image(
    row: tuple[str, str, str, int, int, int],
    labels: Mapping[str, str],
    annotations: Mapping[str, str],
) -> Image:
    name, media_type, digest, size, created_at, updated_at = row
    return Image(
        name=name,
        target=Descriptor(
            media_type=media_type, digest=digest, size=size, annotations=dict(annotations)
        ),
        labels=dict(labels),
        created_at=from_ns(created_at),
        updated_at=from_ns(updated_at),
    )
