"""The metadata schema, as an ordered list of migrations.

A database records the version of the last migration applied to it; opening
it applies every later migration, in order, in one write transaction (DDL is
transactional in SQLite and PostgreSQL alike, so a failed upgrade leaves the
old schema intact). Never edit a released migration: append a new one.

A migration is DDL text in SQLite's spelling; :func:`statements` splits it and
PostgreSQL's layer (:mod:`contentd.metadata.postgres`) translates each
statement (``INTEGER`` -> ``BIGINT``, ``TEXT`` -> ``TEXT COLLATE "C"``, no
``WITHOUT ROWID``), so one list of migrations serves both engines.

Logical schema (containerd's bolt layout, spec §4.1, as tables):

- ``namespaces`` and ``namespace_labels``
- ``blobs``: one row per committed digest *per namespace* (size, created_at,
  updated_at as integer nanoseconds UTC) and ``blob_labels``, indexed on
  (key, value) for label lookups (GC roots and references, label filters)
- ``ingests``: (namespace, ref) -> backend ref ``<ns>/1/<ref>``, expire_at
  (nanoseconds, NULL when a lease holds the ingest) and expected (the shared
  writer's digest, else NULL)
- ``leases``, ``lease_labels`` and ``lease_resources`` (type ``content``,
  ``ingests`` or ``snapshots/<snapshotter>``)
- (v2) ``images``: (namespace, name) -> the target descriptor's media type,
  digest and size, created_at and updated_at; ``image_labels`` and
  ``image_annotations`` (the target's annotations). ``images_by_digest``
  serves GC and "which images point here".
- (v3) ``blob_health``: per digest, when its bytes last hashed to it
  (``verified_at``, nanoseconds) and, for a quarantined blob, when and why
  (``quarantined_at``, ``reason``); see :mod:`contentd.metadata.health`
- (v4) ``unsettled_blobs``: per digest, the bytes of a small blob whose commit
  made them durable in this database's transaction instead of by syncing the
  blob file (``data``), and when (``recorded_at``); the row goes once the file
  is durable. See :mod:`contentd.metadata.settle`. (``BLOB`` is ``BYTEA`` on
  PostgreSQL, where the table stays empty.)
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["MIGRATIONS", "Migration", "statements"]


@dataclass(frozen=True)
class Migration:
    version: int
    description: str
    ddl: str

    def statements(self) -> list[str]:
        return statements(self.ddl)


def statements(ddl: str) -> list[str]:
    """The statements of a DDL text (``;``-separated; no ``;`` inside one)."""
    return [s.strip() for s in ddl.split(";") if s.strip()]


_V1 = """
CREATE TABLE namespaces (
    name TEXT PRIMARY KEY NOT NULL,
    created_at INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE namespace_labels (
    namespace TEXT NOT NULL REFERENCES namespaces(name) ON DELETE CASCADE,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (namespace, key)
) WITHOUT ROWID;

CREATE TABLE blobs (
    namespace TEXT NOT NULL REFERENCES namespaces(name),
    digest TEXT NOT NULL,
    size INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (namespace, digest)
) WITHOUT ROWID;
CREATE INDEX blobs_by_digest ON blobs(digest);

CREATE TABLE blob_labels (
    namespace TEXT NOT NULL,
    digest TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (namespace, digest, key),
    FOREIGN KEY (namespace, digest) REFERENCES blobs(namespace, digest) ON DELETE CASCADE
) WITHOUT ROWID;
CREATE INDEX blob_labels_by_key_value ON blob_labels(key, value);

CREATE TABLE ingests (
    namespace TEXT NOT NULL REFERENCES namespaces(name),
    ref TEXT NOT NULL,
    backend_ref TEXT NOT NULL,
    expire_at INTEGER,
    expected TEXT,
    PRIMARY KEY (namespace, ref)
) WITHOUT ROWID;

CREATE TABLE leases (
    namespace TEXT NOT NULL REFERENCES namespaces(name),
    id TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (namespace, id)
) WITHOUT ROWID;

CREATE TABLE lease_labels (
    namespace TEXT NOT NULL,
    lease TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (namespace, lease, key),
    FOREIGN KEY (namespace, lease) REFERENCES leases(namespace, id) ON DELETE CASCADE
) WITHOUT ROWID;

CREATE TABLE lease_resources (
    namespace TEXT NOT NULL,
    lease TEXT NOT NULL,
    type TEXT NOT NULL,
    id TEXT NOT NULL,
    PRIMARY KEY (namespace, lease, type, id),
    FOREIGN KEY (namespace, lease) REFERENCES leases(namespace, id) ON DELETE CASCADE
) WITHOUT ROWID;
"""

_V2 = """
CREATE TABLE images (
    namespace TEXT NOT NULL REFERENCES namespaces(name),
    name TEXT NOT NULL,
    media_type TEXT NOT NULL,
    digest TEXT NOT NULL,
    size INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (namespace, name)
) WITHOUT ROWID;
CREATE INDEX images_by_digest ON images(digest);

CREATE TABLE image_labels (
    namespace TEXT NOT NULL,
    image TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (namespace, image, key),
    FOREIGN KEY (namespace, image) REFERENCES images(namespace, name) ON DELETE CASCADE
) WITHOUT ROWID;

CREATE TABLE image_annotations (
    namespace TEXT NOT NULL,
    image TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (namespace, image, key),
    FOREIGN KEY (namespace, image) REFERENCES images(namespace, name) ON DELETE CASCADE
) WITHOUT ROWID;
"""


_V3 = """
CREATE TABLE blob_health (
    digest TEXT PRIMARY KEY NOT NULL,
    verified_at INTEGER,
    quarantined_at INTEGER,
    reason TEXT
) WITHOUT ROWID
"""


# not WITHOUT ROWID: rows of up to 64 KiB belong in a rowid table (SQLite keeps a
# WITHOUT ROWID row whole in its b-tree page, and a big row overflows every page it is in)
_V4 = """
CREATE TABLE unsettled_blobs (
    digest TEXT PRIMARY KEY NOT NULL,
    data BLOB NOT NULL,
    recorded_at INTEGER NOT NULL
)
"""


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "initial schema", _V1),
    Migration(2, "images", _V2),
    Migration(3, "blob health: last verified, quarantine", _V3),
    Migration(4, "unsettled blobs: small blobs' bytes until their files are durable", _V4),
)
