"""Leases (containerd's ``metadata/leases.go``): named holds on content and ingests.

A lease protects the content digests, ingest refs and snapshot keys added
to it until it is deleted or its ``containerd.io/gc.expire`` time passes.
The content store adds to and removes from the lease of its calls (the
``lease_*`` hook functions below), all within the caller's transaction.
"""

from __future__ import annotations

import base64
import builtins
import functools
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from contentd import filters as filtering
from contentd.content import digest as digests
from contentd.content import errors
from contentd.content.errors import AlreadyExists, ContentError, InvalidArgument, NotFound
from contentd.content.gotime import from_ns, to_ns
from contentd.content.labels import validate_labels
from contentd.metadata import identifiers
from contentd.metadata.core import Core
from contentd.metadata.sql import Conn

__all__ = [
    "RESOURCE_CONTENT",
    "RESOURCE_INGESTS",
    "RESOURCE_SNAPSHOTS",
    "Lease",
    "LeaseManager",
    "Resource",
    "generate_lease_id",
]

RESOURCE_CONTENT = "content"
RESOURCE_INGESTS = "ingests"
RESOURCE_SNAPSHOTS = "snapshots"


@dataclass(frozen=True, slots=True)
class Lease:
    id: str
    created_at: datetime
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Resource:
    """A leased item: ``type`` is ``content``, ``ingests`` or ``snapshots/<snapshotter>``."""

    id: str
    type: str


def generate_lease_id() -> str:
    """A random id as ctr makes one: ``<nanoseconds of now>-<4 base64url chars>``."""
    return f"{time.time_ns() % 1_000_000_000}-{base64.urlsafe_b64encode(os.urandom(3)).decode()}"


def _parse_resource(resource: Resource) -> tuple[str, str]:
    """(stored type, stored id), validated as containerd does."""
    parts = resource.type.split("/")
    kind = parts[0]
    if kind in (RESOURCE_CONTENT, RESOURCE_INGESTS):
        if len(parts) != 1:
            raise InvalidArgument(f"invalid resource type {resource.type}")
        if kind == RESOURCE_CONTENT:
            try:
                digests.parse(resource.id)
            except ContentError as err:
                raise InvalidArgument(
                    f"invalid content resource id {resource.id}: {err.context or err}"
                ) from None
        return resource.type, resource.id
    if kind == RESOURCE_SNAPSHOTS:
        if len(parts) != 2:
            raise InvalidArgument(f"invalid snapshot resource type {resource.type}")
        return resource.type, resource.id
    raise errors.NotImplemented(f"resource type {resource.type} not supported yet")


def _lease_fields(lease: Lease, fieldpath: Sequence[str]) -> tuple[str, bool]:
    if not fieldpath:
        return "", False
    if fieldpath[0] == "id":
        return lease.id, bool(lease.id)
    if fieldpath[0] == "labels":
        if not lease.labels:
            return "", False
        key = ".".join(fieldpath[1:])
        value = lease.labels.get(key)
        return (value, True) if value is not None else ("", False)
    return "", False


class LeaseManager:
    """The leases of one namespace."""

    def __init__(self, core: Core, namespace: str | None) -> None:
        self._core = core
        self._namespace = namespace

    def _ns(self) -> str:
        return identifiers.require_namespace(self._namespace)

    def create(self, id: str | None = None, labels: Mapping[str, str] | None = None) -> Lease:
        """A new lease; a random id when ``id`` is None. AlreadyExists if taken."""
        ns = self._ns()
        if id is None:
            id = generate_lease_id()
        if not id:
            raise InvalidArgument("lease id must be provided")
        validate_labels(labels)
        kept = {k: v for k, v in (labels or {}).items() if v}
        now = self._core.now()
        with self._core.update() as conn:
            self._core.ensure_namespace(conn, ns)
            if _exists(conn, ns, id):
                raise AlreadyExists(f'lease "{id}"')
            conn.execute(
                "INSERT INTO leases (namespace, id, created_at) VALUES (?, ?, ?)",
                (ns, id, to_ns(now)),
            )
            conn.executemany(
                "INSERT INTO lease_labels (namespace, lease, key, value) VALUES (?, ?, ?, ?)",
                [(ns, id, k, v) for k, v in kept.items()],
            )
        return Lease(id=id, created_at=from_ns(to_ns(now)), labels=kept)

    def set_labels(self, id: str, labels: Mapping[str, str]) -> Lease:
        """Set these labels of lease ``id`` (an empty value removes the key); the others
        stay. containerd's Leases API has no update: this is for the daemon's own leases
        (a fetch that resumes renews its lease's ``containerd.io/gc.expire``)."""
        ns = self._ns()
        validate_labels(labels)
        with self._core.update() as conn:
            row = conn.execute(
                "SELECT created_at FROM leases WHERE namespace = ? AND id = ?", (ns, id)
            ).fetchone()
            if row is None:
                raise NotFound(f'lease "{id}"')
            for key, value in labels.items():
                if value:
                    conn.execute(
                        "INSERT INTO lease_labels (namespace, lease, key, value)"
                        " VALUES (?, ?, ?, ?)"
                        " ON CONFLICT (namespace, lease, key) DO UPDATE SET value = excluded.value",
                        (ns, id, key, value),
                    )
                else:
                    conn.execute(
                        "DELETE FROM lease_labels WHERE namespace = ? AND lease = ? AND key = ?",
                        (ns, id, key),
                    )
            current = dict(
                conn.execute(
                    "SELECT key, value FROM lease_labels WHERE namespace = ? AND lease = ?",
                    (ns, id),
                ).fetchall()
            )
        return Lease(id=id, created_at=from_ns(int(row[0])), labels=current)

    def delete(self, id: str, *, sync: bool = False) -> None:
        """Delete the lease; with ``sync``, return only after a full GC has run."""
        ns = self._ns()
        with self._core.update() as conn:
            cur = conn.execute("DELETE FROM leases WHERE namespace = ? AND id = ?", (ns, id))
            if cur.rowcount == 0:
                raise NotFound(f'lease "{id}"')
            self._core.mark_dirty()
        if sync and self._core.sync_gc is not None:
            self._core.sync_gc()

    def list(self, *filters: str) -> builtins.list[Lease]:
        ns = self._ns()
        try:
            match = filtering.parse_all(filters)
        except InvalidArgument as err:
            # containerd's lease manager wraps the (already InvalidArgument) parse
            # error in InvalidArgument once more; clients see the kind text twice
            raise InvalidArgument(str(err)) from err
        out: builtins.list[Lease] = []
        with self._core.view() as conn:
            labels: dict[str, dict[str, str]] = {}
            for lease, key, value in conn.execute(
                "SELECT lease, key, value FROM lease_labels WHERE namespace = ?", (ns,)
            ):
                labels.setdefault(lease, {})[key] = value
            rows = conn.execute(
                "SELECT id, created_at FROM leases WHERE namespace = ? ORDER BY id", (ns,)
            ).fetchall()
        for lease_id, created_at in rows:
            lease = Lease(
                id=lease_id, created_at=from_ns(created_at), labels=labels.get(lease_id, {})
            )
            if match.match(filtering.adapt_fn(functools.partial(_lease_fields, lease))):
                out.append(lease)
        return out

    def add_resource(self, id: str, resource: Resource) -> None:
        ns = self._ns()
        with self._core.update() as conn:
            if not _exists(conn, ns, id):
                raise NotFound(f'lease "{id}"')
            kind, key = _parse_resource(resource)
            conn.execute(
                "INSERT INTO lease_resources (namespace, lease, type, id)"
                " VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
                (ns, id, kind, key),
            )

    def delete_resource(self, id: str, resource: Resource) -> None:
        ns = self._ns()
        with self._core.update() as conn:
            if not _exists(conn, ns, id):
                raise NotFound(f'lease "{id}"')
            kind, key = _parse_resource(resource)
            conn.execute(
                "DELETE FROM lease_resources WHERE namespace = ? AND lease = ? AND type = ?"
                " AND id = ?",
                (ns, id, kind, key),
            )
            self._core.mark_dirty()

    def list_resources(self, id: str) -> builtins.list[Resource]:
        """Content first, then ingests, then snapshots, each in key order."""
        ns = self._ns()
        with self._core.view() as conn:
            if not _exists(conn, ns, id):
                raise NotFound(f'lease "{id}"')
            rows = conn.execute(
                "SELECT type, id FROM lease_resources WHERE namespace = ? AND lease = ?",
                (ns, id),
            ).fetchall()
        order = {RESOURCE_CONTENT: 0, RESOURCE_INGESTS: 1}
        rows.sort(key=lambda r: (order.get(r[0], 2), r[0], r[1]))
        return [Resource(id=rid, type=kind) for kind, rid in rows]


def _exists(conn: Conn, ns: str, lease: str) -> bool:
    row = conn.execute("SELECT 1 FROM leases WHERE namespace = ? AND id = ?", (ns, lease))
    return row.fetchone() is not None


# -- hooks used by the content store, inside its transactions ----------------


def check(conn: Conn, ns: str, lease: str | None) -> None:
    """NotFound unless ``lease`` (when given) exists in ``ns``."""
    if lease is not None and not _exists(conn, ns, lease):
        raise NotFound("lease does not exist")


def add_content(conn: Conn, ns: str, lease: str | None, digest: str) -> None:
    if lease is None:
        return
    check(conn, ns, lease)
    conn.execute(
        "INSERT INTO lease_resources (namespace, lease, type, id) VALUES (?, ?, ?, ?)"
        " ON CONFLICT DO NOTHING",
        (ns, lease, RESOURCE_CONTENT, digest),
    )


def remove_content(conn: Conn, ns: str, lease: str | None, digest: str) -> None:
    if lease is None:
        return
    conn.execute(
        "DELETE FROM lease_resources WHERE namespace = ? AND lease = ? AND type = ? AND id = ?",
        (ns, lease, RESOURCE_CONTENT, digest),
    )


def add_ingest(conn: Conn, ns: str, lease: str | None, ref: str) -> bool:
    """Add ``ref`` to the lease; False when there is no lease (the ingest then expires)."""
    if lease is None:
        return False
    check(conn, ns, lease)
    conn.execute(
        "INSERT INTO lease_resources (namespace, lease, type, id) VALUES (?, ?, ?, ?)"
        " ON CONFLICT DO NOTHING",
        (ns, lease, RESOURCE_INGESTS, ref),
    )
    return True


def remove_ingest(conn: Conn, ns: str, lease: str | None, ref: str) -> None:
    if lease is None:
        return
    conn.execute(
        "DELETE FROM lease_resources WHERE namespace = ? AND lease = ? AND type = ? AND id = ?",
        (ns, lease, RESOURCE_INGESTS, ref),
    )
