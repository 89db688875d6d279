"""Garbage collection: mark and sweep over every namespace, then backend cleanup (spec §4.8).

**Mark.** Roots, per namespace:

- leases that have not expired (``containerd.io/gc.expire``, RFC 3339; an
  unparsable value is ignored), and the content and ingests they hold. Under
  ``containerd.io/gc.flat`` the content is held but its references are not
  followed;
- ingests whose ``expire_at`` has not passed;
- content labelled ``containerd.io/gc.root``;
- images: the target digest of every image record, and the content its
  ``containerd.io/gc.ref.content`` labels name;
- in a namespace labelled ``contentd.io/gc.managed-externally=true``, every
  blob and every ingest record.

From a content record the mark follows its ``containerd.io/gc.ref.content``
labels (same namespace); from an ingest, its ``expected`` digest.

**Sweep.** Every unmarked blob record, ingest record and lease is deleted in
one write transaction. If it deleted a blob or ingest record, or a Delete
happened since the last GC, the backend is *dirty*.

**Backend cleanup** (only when dirty): delete every backend blob that no
namespace records and no ingest expects, then abort every backend ingest
whose backend ref no ingest record knows.

**Unsettled blobs** (:mod:`contentd.metadata.settle`): the sweep's transaction
also deletes the bytes kept for blobs whose files are not durable yet, once
nothing records or expects their digest; the backend cleanup then deletes the
files. The settler holds the content lock shared, so it never writes one back.

**Races.** The whole collection holds the content lock exclusively, while a
commit holds it shared from the backend commit until its record is written.
So cleanup never runs between the two halves of a commit: every blob the
backend walk sees either has its record already or belongs to a commit that
failed or crashed - an orphan by definition. For that reason the grace
window for young backend blobs (``backend_grace``) defaults to 0; it only
matters when something other than this database writes into the backend.

**Several nodes** (a shared PostgreSQL database, :mod:`contentd.metadata.cluster`):
the content lock covers one process only, so a collection first takes the
cluster's collector lock (another node collecting: this one skips, its
result ``skipped``); the sweep's write transaction is serialised with every
node's writes; the backend is cleaned at every collection (other nodes'
deletes are not counted here), sparing objects younger than the grace
period (at least none created after the collection began); each candidate
blob is re-checked, and deleted, holding its digest against writers of every
node; a backend ingest no record knows is kept while a live ref lock names it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Final

from contentd.content.errors import ContentError
from contentd.content.gotime import parse_text, to_ns
from contentd.content.labels import (
    LABEL_GC_EXPIRE,
    LABEL_GC_FLAT,
    LABEL_GC_REF_CONTENT,
    LABEL_GC_ROOT,
    content_refs,
)
from contentd.content.types import utcnow
from contentd.metadata.content import INGEST_EXPIRY
from contentd.metadata.core import Core
from contentd.metadata.crashpoints import crash_point
from contentd.metadata.namespaces import LABEL_GC_MANAGED_EXTERNALLY
from contentd.metadata.sql import Conn

__all__ = ["GCResult", "collect"]

log = logging.getLogger(__name__)

_CONTENT: Final = 1
_INGEST: Final = 2
_LEASE: Final = 3
_CONTENT_FLAT: Final = 4  # held by a flat lease: kept, references not followed

_Node = tuple[int, str, str]


@dataclass(frozen=True)
class GCResult:
    """What one collection removed (or, with ``dry_run``, would remove).

    ``content``, ``ingests`` and ``leases`` map a namespace to the digests,
    refs and lease ids whose records went. ``backend_blobs`` and
    ``backend_ingests`` are what the backend lost (digests, backend refs),
    ``bytes_freed`` the size of those blobs. ``backend_cleaned`` tells
    whether backend cleanup ran (it runs only when the store was dirty);
    ``backend_error`` holds its failure, if any (the store then stays dirty
    and the next collection retries). ``duration`` is the whole collection
    in seconds, all of it with content writes paused. ``skipped``: another
    node of a shared database was collecting, so this one did nothing.
    """

    dry_run: bool = False
    content: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    ingests: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    leases: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    backend_blobs: tuple[str, ...] = ()
    backend_ingests: tuple[str, ...] = ()
    bytes_freed: int = 0
    backend_cleaned: bool = False
    backend_error: str | None = None
    duration: float = 0.0
    skipped: bool = False

    @property
    def elapsed(self) -> float:
        """The pause this collection imposed (the scheduler's budget input)."""
        return self.duration


@dataclass
class _Sweep:
    content: list[tuple[str, str]] = field(default_factory=list)
    ingests: list[tuple[str, str]] = field(default_factory=list)
    leases: list[tuple[str, str]] = field(default_factory=list)


def collect(core: Core, *, dry_run: bool = False) -> GCResult:
    """Run one collection; see the module docstring."""
    started = time.monotonic()
    with core.cluster.collector() as ours, core.content_lock.exclusive():
        if not ours:  # another node is collecting: its sweep covers this node's records too
            return GCResult(dry_run=dry_run, skipped=True, duration=time.monotonic() - started)
        now_ns = core.now_ns()
        if dry_run:
            with core.sql.read() as conn:
                sweep = _find_unmarked(conn, _mark(conn, now_ns))
                dirty = core.dirty_content or bool(sweep.content or sweep.ingests)
                blobs, refs = _backend_keep(conn, sweep) if dirty else (set(), set())
            result = _result(sweep, dry_run=True)
            if dirty:
                result = _clean_backend(core, result, blobs, refs, dry_run=True)
        else:
            with core.sql.write() as conn:
                sweep = _find_unmarked(conn, _mark(conn, now_ns))
                _delete(conn, sweep)
            crash_point("gc:after-sweep")
            if sweep.content or sweep.ingests or core.cluster.shared_backend:
                # other nodes' deletes are not counted here: clean every time
                core.dirty_content = True
            core.reset_dirty()
            result = _result(sweep, dry_run=False)
            if core.dirty_content:
                with core.sql.read() as conn:
                    blobs, refs = _backend_keep(conn, _Sweep())
                result = _clean_backend(core, result, blobs, refs, dry_run=False)
                if result.backend_error is None:
                    core.dirty_content = False
        return replace(result, duration=time.monotonic() - started)


# -- mark ----------------------------------------------------------------------


def _mark(conn: Conn, now_ns: int) -> set[_Node]:
    managed = {
        row[0]
        for row in conn.execute(
            "SELECT namespace FROM namespace_labels WHERE key = ? AND value = 'true'",
            (LABEL_GC_MANAGED_EXTERNALLY,),
        )
    }
    roots: list[_Node] = []

    # leases: alive unless gc.expire has passed
    lease_labels: dict[tuple[str, str], dict[str, str]] = {}
    for ns, lease, key, value in conn.execute(
        "SELECT namespace, lease, key, value FROM lease_labels WHERE key IN (?, ?)",
        (LABEL_GC_EXPIRE, LABEL_GC_FLAT),
    ):
        lease_labels.setdefault((ns, lease), {})[key] = value
    alive: dict[tuple[str, str], bool] = {}  # -> flat
    for ns, lease in conn.execute("SELECT namespace, id FROM leases"):
        labels = lease_labels.get((ns, lease), {})
        if _expired(labels.get(LABEL_GC_EXPIRE), now_ns, ns, lease):
            continue
        alive[(ns, lease)] = LABEL_GC_FLAT in labels
        roots.append((_LEASE, ns, lease))
    for ns, lease, kind, key in conn.execute(
        "SELECT namespace, lease, type, id FROM lease_resources"
    ):
        flat = alive.get((ns, lease))
        if flat is None:
            continue
        if kind == "content":
            roots.append((_CONTENT_FLAT if flat else _CONTENT, ns, key))
        elif kind == "ingests":
            roots.append((_INGEST, ns, key))
        # snapshots/<name>: no snapshotter here to keep anything in

    # ingests that have not expired; all ingests of externally managed namespaces
    for ns, ref, expire_at in conn.execute("SELECT namespace, ref, expire_at FROM ingests"):
        if ns in managed or (expire_at is not None and expire_at >= now_ns):
            roots.append((_INGEST, ns, ref))

    # content with gc.root; all content of externally managed namespaces
    for ns, digest in conn.execute(
        "SELECT namespace, digest FROM blob_labels WHERE key = ?", (LABEL_GC_ROOT,)
    ):
        roots.append((_CONTENT, ns, digest))
    for ns in managed:
        for (digest,) in conn.execute("SELECT digest FROM blobs WHERE namespace = ?", (ns,)):
            roots.append((_CONTENT, ns, digest))

    # images: the target, and what the image's own labels reference
    for ns, digest in conn.execute("SELECT namespace, digest FROM images"):
        roots.append((_CONTENT, ns, digest))
    for (ns, _image), targets in _references(conn, "image_labels", "image").items():
        roots.extend((_CONTENT, ns, target) for target in targets)

    refs = _references(conn, "blob_labels", "digest")
    expected = {
        (ns, ref): digest
        for ns, ref, digest in conn.execute(
            "SELECT namespace, ref, expected FROM ingests WHERE expected IS NOT NULL"
        )
    }
    return _tricolor(roots, refs, expected)


def _expired(value: str | None, now_ns: int, ns: str, lease: str) -> bool:
    if value is None:
        return False
    try:
        expire = parse_text(value)
    except ValueError:
        log.info("lease %s/%s: ignoring invalid expiration value %r", ns, lease, value)
        return False
    return now_ns > to_ns(expire)


def _references(conn: Conn, table: str, owner: str) -> dict[tuple[str, str], list[str]]:
    """(namespace, owner) -> the digests its gc.ref.content labels name, for a label table
    (``blob_labels`` keyed by digest, ``image_labels`` by image name)."""
    prefix = LABEL_GC_REF_CONTENT
    upper = prefix[:-1] + chr(ord(prefix[-1]) + 1)  # every key starting with prefix sorts below
    grouped: dict[tuple[str, str], dict[str, str]] = {}
    for ns, key_owner, key, value in conn.execute(
        f"SELECT namespace, {owner}, key, value FROM {table} WHERE key >= ? AND key < ?",
        (prefix, upper),
    ):
        grouped.setdefault((ns, key_owner), {})[key] = value
    return {node: content_refs(labels) for node, labels in grouped.items()}


def _tricolor(
    roots: Iterable[_Node],
    refs: Mapping[tuple[str, str], list[str]],
    expected: Mapping[tuple[str, str], str],
) -> set[_Node]:
    """Everything reachable from the roots; flat content counts as content."""
    gray = list(roots)
    seen: set[_Node] = set()
    reachable: set[_Node] = set()
    while gray:
        node = gray.pop()
        if node in seen:
            continue
        seen.add(node)
        kind, ns, key = node
        if kind == _CONTENT:
            gray.extend((_CONTENT, ns, target) for target in refs.get((ns, key), ()))
        elif kind == _INGEST:
            digest = expected.get((ns, key))
            if digest:
                gray.append((_CONTENT, ns, digest))
        reachable.add((_CONTENT if kind == _CONTENT_FLAT else kind, ns, key))
    return reachable


# -- sweep ---------------------------------------------------------------------


def _find_unmarked(conn: Conn, marked: set[_Node]) -> _Sweep:
    sweep = _Sweep()
    for ns, digest in conn.execute("SELECT namespace, digest FROM blobs"):
        if (_CONTENT, ns, digest) not in marked:
            sweep.content.append((ns, digest))
    for ns, ref in conn.execute("SELECT namespace, ref FROM ingests"):
        if (_INGEST, ns, ref) not in marked:
            sweep.ingests.append((ns, ref))
    for ns, lease in conn.execute("SELECT namespace, id FROM leases"):
        if (_LEASE, ns, lease) not in marked:
            sweep.leases.append((ns, lease))
    return sweep


def _delete(conn: Conn, sweep: _Sweep) -> None:
    conn.executemany("DELETE FROM blobs WHERE namespace = ? AND digest = ?", sweep.content)
    conn.executemany("DELETE FROM ingests WHERE namespace = ? AND ref = ?", sweep.ingests)
    conn.executemany("DELETE FROM leases WHERE namespace = ? AND id = ?", sweep.leases)
    # the unsettled bytes of blobs nothing needs now (their files go in the backend cleanup,
    # under the same exclusive lock): a settler must not write a collected blob back
    conn.execute(
        "DELETE FROM unsettled_blobs WHERE NOT EXISTS"
        " (SELECT 1 FROM blobs WHERE blobs.digest = unsettled_blobs.digest)"
        " AND NOT EXISTS (SELECT 1 FROM ingests WHERE ingests.expected = unsettled_blobs.digest)"
    )


# -- backend cleanup -------------------------------------------------------------


def _backend_keep(conn: Conn, sweep: _Sweep) -> tuple[set[str], set[str]]:
    """(digests, backend refs) the backend must keep, once ``sweep`` is applied."""
    gone_content = set(sweep.content)
    gone_ingests = set(sweep.ingests)
    blobs: set[str] = set()
    for ns, digest in conn.execute("SELECT namespace, digest FROM blobs"):
        if (ns, digest) not in gone_content:
            blobs.add(digest)
    refs: set[str] = set()
    for ns, ref, bref, expected in conn.execute(
        "SELECT namespace, ref, backend_ref, expected FROM ingests"
    ):
        if (ns, ref) in gone_ingests:
            continue
        refs.add(bref)
        if expected:
            blobs.add(expected)
    return blobs, refs


def _clean_backend(
    core: Core, result: GCResult, keep_blobs: set[str], keep_refs: set[str], *, dry_run: bool
) -> GCResult:
    backend = core.backend
    deleted: list[str] = []
    aborted: list[str] = []
    freed = 0
    error: str | None = None
    cutoff = utcnow() - timedelta(seconds=core.backend_grace) if core.backend_grace > 0 else None
    cluster = core.cluster
    if cutoff is None and cluster.shared_backend:
        cutoff = utcnow()  # never a blob another node is committing right now
    try:
        candidates = [
            (info.digest, info.size)
            for info in backend.walk()
            if info.digest not in keep_blobs and (cutoff is None or info.created_at <= cutoff)
        ]
        for digest, size in candidates:
            if not dry_run:
                # re-checked holding the digest against writers (of any node)
                with cluster.sweep_digest(digest) as conn:
                    if _digest_needed(conn, digest):
                        continue
                    backend.delete(digest)
                    crash_point("gc:after-backend-delete")
            deleted.append(digest)
            freed += size
        walk_refs = getattr(backend, "walk_status_refs", None)
        if callable(walk_refs):
            backend_refs = list(walk_refs())
        else:
            backend_refs = [status.ref for status in backend.list_statuses()]
        for ref in backend_refs:
            if ref in keep_refs:
                continue
            if cluster.shared_backend:
                with core.sql.read() as conn:
                    if cluster.ref_in_use(conn, ref):
                        continue
            if not dry_run:
                backend.abort(ref)
            aborted.append(ref)
        # uploads a backend began but never recorded (a crash in between): S3's multipart
        # uploads, aborted once no ingest can still be after them
        orphans = getattr(backend, "abort_orphan_uploads", None)
        if callable(orphans) and not dry_run:
            orphans(older_than=INGEST_EXPIRY)
    except (ContentError, OSError) as err:
        log.warning("content garbage collection failed: %s", err)
        error = str(err)
    return replace(
        result,
        backend_blobs=tuple(deleted),
        backend_ingests=tuple(aborted),
        bytes_freed=freed,
        backend_cleaned=True,
        backend_error=error,
    )


def _digest_needed(conn: Conn, digest: str) -> bool:
    """Some namespace records ``digest`` or some ingest expects it (one snapshot)."""
    row = conn.execute(
        "SELECT 1 FROM blobs WHERE digest = ?"
        " UNION ALL SELECT 1 FROM ingests WHERE expected = ? LIMIT 1",
        (digest, digest),
    ).fetchone()
    return row is not None


# -- results -------------------------------------------------------------------


def _grouped(pairs: list[tuple[str, str]]) -> dict[str, tuple[str, ...]]:
    out: dict[str, list[str]] = {}
    for ns, key in pairs:
        out.setdefault(ns, []).append(key)
    return {ns: tuple(sorted(keys)) for ns, keys in sorted(out.items())}


def _result(sweep: _Sweep, *, dry_run: bool) -> GCResult:
    return GCResult(
        dry_run=dry_run,
        content=_grouped(sweep.content),
        ingests=_grouped(sweep.ingests),
        leases=_grouped(sweep.leases),
    )
