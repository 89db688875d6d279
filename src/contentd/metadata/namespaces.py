"""Namespaces and their labels (containerd's ``metadata/namespaces.go``).

A namespace comes into being when it is created explicitly, when a label is
set on it, or implicitly with its first content ingest or lease (as bolt
creates the bucket on first write).
"""

from __future__ import annotations

import builtins
import itertools
from collections.abc import Mapping
from typing import Final

from contentd.content.errors import AlreadyExists, ContentError, FailedPrecondition, NotFound
from contentd.content.labels import validate_label, validate_labels
from contentd.metadata import identifiers
from contentd.metadata.core import Core
from contentd.metadata.sql import Conn

__all__ = ["LABEL_GC_MANAGED_EXTERNALLY", "NamespaceStore"]

#: With value ``true`` on a namespace, contentd's GC treats every blob record
#: and every ingest record there as a root, and ingests there never expire:
#: the namespace's owner (containerd, through the proxy plugin) deletes and
#: aborts on its own.
LABEL_GC_MANAGED_EXTERNALLY: Final = "contentd.io/gc.managed-externally"


class NamespaceStore:
    def __init__(self, core: Core) -> None:
        self._core = core
        self._changes = itertools.count(1)
        #: Moves on whenever a namespace's labels change or a namespace goes, so a caller
        #: can keep what it read until then (the daemon's pinned-namespace check).
        self.changes = 0

    def _changed(self) -> None:
        self.changes = next(self._changes)

    def create(self, name: str, labels: Mapping[str, str] | None = None) -> None:
        identifiers.validate(name)
        try:
            validate_labels(labels)
        except ContentError as err:
            raise err.wrap("namespace.Labels") from None
        with self._core.update() as conn:
            if conn.execute("SELECT 1 FROM namespaces WHERE name = ?", (name,)).fetchone():
                raise AlreadyExists(f'namespace "{name}"')
            self._core.ensure_namespace(conn, name)
            conn.executemany(
                "INSERT INTO namespace_labels (namespace, key, value) VALUES (?, ?, ?)",
                [(name, k, v) for k, v in (labels or {}).items() if v],
            )

    def get(self, name: str) -> dict[str, str]:
        """The labels of an existing namespace; NotFound if there is none."""
        with self._core.view() as conn:
            if not conn.execute("SELECT 1 FROM namespaces WHERE name = ?", (name,)).fetchone():
                raise NotFound(f'namespace "{name}"')
            return _labels(conn, name)

    def labels(self, name: str) -> dict[str, str]:
        """The labels of a namespace; empty if it does not exist (containerd's Labels)."""
        with self._core.view() as conn:
            return _labels(conn, name)

    def list(self) -> builtins.list[str]:
        with self._core.view() as conn:
            return [row[0] for row in conn.execute("SELECT name FROM namespaces ORDER BY name")]

    def set_label(self, name: str, key: str, value: str) -> None:
        """Set one label (``""`` deletes it); creates the namespace if needed."""
        identifiers.validate(name)
        try:
            validate_label(key, value)
        except ContentError as err:
            raise err.wrap("namespace.Labels") from None
        with self._core.update() as conn:
            self._core.ensure_namespace(conn, name)
            if value:
                conn.execute(
                    "INSERT INTO namespace_labels (namespace, key, value) VALUES (?, ?, ?)"
                    " ON CONFLICT (namespace, key) DO UPDATE SET value = excluded.value",
                    (name, key, value),
                )
            else:
                conn.execute(
                    "DELETE FROM namespace_labels WHERE namespace = ? AND key = ?", (name, key)
                )
        self._changed()

    def delete(self, name: str) -> None:
        """Delete an empty namespace: FailedPrecondition while it holds anything."""
        with self._core.update() as conn:
            if not conn.execute("SELECT 1 FROM namespaces WHERE name = ?", (name,)).fetchone():
                raise NotFound(f'namespace "{name}"')
            held = [
                table
                for table in ("images", "blobs", "ingests", "leases")
                if conn.execute(
                    f"SELECT 1 FROM {table} WHERE namespace = ? LIMIT 1", (name,)
                ).fetchone()
            ]
            if held:
                raise FailedPrecondition(
                    f'namespace "{name}" must be empty, but it still has {", ".join(held)}'
                )
            conn.execute("DELETE FROM namespaces WHERE name = ?", (name,))
        self._changed()


def _labels(conn: Conn, name: str) -> dict[str, str]:
    return dict(
        conn.execute(
            "SELECT key, value FROM namespace_labels WHERE namespace = ? ORDER BY key", (name,)
        ).fetchall()
    )
