"""``fsck``: check a metadata database and its backend against each other, and the bytes.

What is checked (each problem is a :class:`Finding` of one kind):

``corrupt``
    a backend blob whose bytes do not hash to its digest (or cannot be read
    whole). Every backend blob is hashed, ``jobs`` at a time, within a shared
    bytes/s budget.
``missing``
    a record whose blob the backend does not have.
``size``
    a record whose size differs from the blob's.
``quarantined``
    a recorded blob quarantined earlier (reads fail with DATA_LOSS until an
    ingest of the digest repairs it).
``orphan-blob`` / ``orphan-ingest``
    backend bytes or ingests that no record knows (left by a crash; GC removes
    them).
``expired-ingest``
    an ingest record past its expiry (GC removes it).
``ingest-without-data``
    an ingest record whose backend ingest is gone.
``mode`` / ``stray``
    local store only: a writable blob; a file neither store made
    (:mod:`contentd.local.check`).

Nothing is changed unless ``repair``: corrupt, missing and mis-sized blobs are
quarantined (:func:`contentd.metadata.health.quarantine`), ingests without
data aborted through the content store, modes fixed, and orphans and expired
ingests left to one garbage collection (run through the scheduler when there
is one) — the normal paths, so a repair does nothing a client could not have
caused. Strays and earlier quarantines are reported, never touched.

It runs on a live database: it holds no lock while it reads and hashes (reads
are snapshot transactions, writers never wait), and a candidate that a
concurrent commit, delete or GC could explain is checked again before it is
reported. With ``namespace`` only that namespace's records and ingests are
checked (and the blobs they name); orphans and the layout need the whole store.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any, Final

from contentd.content import digest as digests
from contentd.content.errors import ContentError, NotFound
from contentd.metadata import health
from contentd.metadata.core import Core

__all__ = ["KINDS", "Finding", "Options", "Report", "run"]

log = logging.getLogger(__name__)

KINDS: Final = (
    "corrupt",
    "missing",
    "size",
    "quarantined",
    "orphan-blob",
    "orphan-ingest",
    "expired-ingest",
    "ingest-without-data",
    "mode",
    "stray",
)


@dataclass
class Finding:
    kind: str
    detail: str
    digest: str = ""
    namespace: str = ""
    ref: str = ""
    path: str = ""
    #: what --repair did ("" when it did nothing, or was not asked to)
    repair: str = ""
    #: fixed: the store no longer has this problem
    fixed: bool = False
    #: False for what the next garbage collection removes anyway (orphans after deletes
    #: or a crash, expired ingests): reported, but the store is clean with it
    problem: bool = True


@dataclass(frozen=True)
class Options:
    repair: bool = False
    namespace: str | None = None
    jobs: int = 2
    #: hashing budget in bytes per second (0: none)
    bytes_per_second: int = 0


@dataclass
class Report:
    findings: list[Finding] = field(default_factory=list)
    repair: bool = False
    namespace: str = ""
    blobs: int = 0  # backend blobs hashed
    bytes: int = 0  # bytes hashed
    records: int = 0
    ingests: int = 0
    duration: float = 0.0

    @property
    def clean(self) -> bool:
        """No problem is left (none found, or every one found was fixed); leftovers the
        next garbage collection removes do not count."""
        return all(f.fixed or not f.problem for f in self.findings)

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["clean"] = self.clean
        return out


def run(core: Core, options: Options, gc: Callable[[], object] | None = None) -> Report:
    """Check (and with ``options.repair`` repair) the store; see the module doc.

    ``gc`` runs one collection and waits for it (default: ``core.sync_gc``).
    """
    return _Check(core, options, gc or core.sync_gc).run()


class _Check:
    def __init__(self, core: Core, options: Options, gc: Callable[[], object] | None) -> None:
        self.core = core
        self.options = options
        self.gc = gc
        self.report = Report(repair=options.repair, namespace=options.namespace or "")
        self.lock = threading.Lock()

    def add(self, finding: Finding) -> None:
        with self.lock:
            self.report.findings.append(finding)

    def run(self) -> Report:
        started = time.monotonic()
        whole = self.options.namespace is None
        records = self._records()
        self.report.records = sum(len(v) for v in records.values())
        # a name that is no digest is a stray (the layout check reports it)
        backend_blobs = {
            info.digest: info.size
            for info in self.core.backend.walk()
            if digests.is_valid(info.digest)
        }
        self._verify(records, backend_blobs, whole)
        self._missing_and_sizes(records, backend_blobs)
        if whole:
            self._orphan_blobs(records, backend_blobs)
        self._ingests(whole)
        if whole:
            self._layout()
        if self.options.repair:
            self._repair()
        self.report.findings.sort(key=lambda f: (KINDS.index(f.kind), f.digest, f.namespace))
        self.report.duration = time.monotonic() - started
        return self.report

    # -- records and bytes -------------------------------------------------------------

    def _records(self) -> dict[str, list[tuple[str, int]]]:
        """digest -> [(namespace, recorded size)]."""
        query = "SELECT digest, namespace, size FROM blobs"
        args: tuple[str, ...] = ()
        if self.options.namespace is not None:
            query += " WHERE namespace = ?"
            args = (self.options.namespace,)
        out: dict[str, list[tuple[str, int]]] = {}
        with self.core.view() as conn:
            for digest, ns, size in conn.execute(query, args):
                out.setdefault(digest, []).append((ns, size))
        return out

    def _verify(
        self, records: dict[str, list[tuple[str, int]]], blobs: dict[str, int], whole: bool
    ) -> None:
        wanted = [d for d in sorted(blobs) if whole or d in records]
        quarantined = self.core.quarantined
        for digest in sorted(records):
            reason = quarantined.get(digest)
            if reason is not None:
                for ns, _ in records[digest]:
                    self.add(Finding("quarantined", reason, digest, ns))
        wanted = [d for d in wanted if d not in quarantined]
        limiter = health.RateLimiter(self.options.bytes_per_second)
        verified: list[str] = []

        def one(digest: str) -> None:
            verdict = health.verify_blob(self.core.backend, digest, None, limiter)
            if verdict is None:
                return  # gone meanwhile (GC, delete): the other checks see to it
            with self.lock:
                self.report.blobs += 1
                self.report.bytes += verdict.size
                if verdict.ok:
                    verified.append(digest)
            if not verdict.ok:
                self.add(Finding("corrupt", verdict.problem, digest))

        with ThreadPoolExecutor(max(1, self.options.jobs), thread_name_prefix="fsck") as pool:
            list(pool.map(one, wanted))
        health.mark_verified(self.core, verified)

    def _missing_and_sizes(
        self, records: dict[str, list[tuple[str, int]]], blobs: dict[str, int]
    ) -> None:
        quarantined = self.core.quarantined
        for digest, holders in sorted(records.items()):
            if digest in quarantined:
                continue
            size = blobs.get(digest)
            if size is None:
                if self._really_missing(digest):
                    for ns, _ in holders:
                        if self._still_recorded(ns, digest):
                            self.add(Finding("missing", "no blob in the backend", digest, ns))
                continue
            for ns, recorded in holders:
                if recorded != size:
                    self.add(
                        Finding("size", f"{recorded} bytes recorded, {size} stored", digest, ns)
                    )

    def _really_missing(self, digest: str) -> bool:
        try:
            self.core.backend.info(digest)
        except NotFound:
            return True
        return False

    def _still_recorded(self, ns: str, digest: str) -> bool:
        with self.core.view() as conn:
            return (
                conn.execute(
                    "SELECT 1 FROM blobs WHERE namespace = ? AND digest = ?", (ns, digest)
                ).fetchone()
                is not None
            )

    def _orphan_blobs(
        self, records: dict[str, list[tuple[str, int]]], blobs: dict[str, int]
    ) -> None:
        candidates = [d for d in blobs if d not in records]
        if not candidates:
            return
        # read again: a commit in flight when the records were read has its record now
        with self.core.view() as conn:
            expected = {
                r[0]
                for r in conn.execute("SELECT expected FROM ingests WHERE expected IS NOT NULL")
            }
            for digest in sorted(candidates):
                if digest in expected:
                    continue
                if conn.execute("SELECT 1 FROM blobs WHERE digest = ?", (digest,)).fetchone():
                    continue
                self.add(self._leftover("orphan-blob", "no namespace records it", digest=digest))

    def _leftover(self, kind: str, detail: str, *, digest: str = "", ref: str = "") -> Finding:
        """An orphan: expected after deletes, a crash or a start (the store is *dirty*
        until a collection ran); the next garbage collection removes it. Once one ran,
        an orphan means something wrote behind the metadata's back: a problem."""
        if self.core.dirty_content:
            detail += ": the next garbage collection removes it"
        return Finding(kind, detail, digest, ref=ref, problem=not self.core.dirty_content)

    # -- ingests -----------------------------------------------------------------------

    def _backend_refs(self) -> set[str]:
        backend = self.core.backend
        walk_refs = getattr(backend, "walk_status_refs", None)
        if callable(walk_refs):
            return set(walk_refs())
        return {status.ref for status in backend.list_statuses()}

    def _ingest_rows(self) -> list[tuple[str, str, str, int | None, str | None]]:
        query = "SELECT namespace, ref, backend_ref, expire_at, expected FROM ingests"
        args: tuple[str, ...] = ()
        if self.options.namespace is not None:
            query += " WHERE namespace = ?"
            args = (self.options.namespace,)
        with self.core.view() as conn:
            return list(conn.execute(query, args))

    def _ingests(self, whole: bool) -> None:
        rows = self._ingest_rows()
        self.report.ingests = len(rows)
        backend_refs = self._backend_refs()
        now = self.core.now_ns()
        for ns, ref, bref, expire_at, expected in rows:
            if expire_at is not None and expire_at < now:
                self.add(
                    Finding(
                        "expired-ingest",
                        "past its expiry: the next garbage collection removes it",
                        namespace=ns,
                        ref=ref,
                        problem=False,
                    )
                )
            elif bref not in backend_refs and not expected and self._ingest_gone(ns, ref, bref):
                self.add(
                    Finding(
                        "ingest-without-data",
                        "the backend has no such ingest",
                        namespace=ns,
                        ref=ref,
                    )
                )
        if not whole:
            return
        known = {row[2] for row in rows}
        candidates = backend_refs - known
        if not candidates:
            return
        with self.core.view() as conn:  # read again: writers open backend ingests first
            known = {r[0] for r in conn.execute("SELECT backend_ref FROM ingests")}
        for bref in sorted(candidates - known):
            self.add(self._leftover("orphan-ingest", "no ingest record knows it", ref=bref))

    def _ingest_gone(self, ns: str, ref: str, bref: str) -> bool:
        try:
            self.core.backend.status(bref)
        except NotFound:
            pass
        else:
            return False
        with self.core.view() as conn:
            row = conn.execute(
                "SELECT backend_ref FROM ingests WHERE namespace = ? AND ref = ?", (ns, ref)
            ).fetchone()
        return row is not None and row[0] == bref

    # -- the local store's directory -----------------------------------------------------

    def _layout(self) -> None:
        root = getattr(self.core.backend, "root", None)
        if not isinstance(root, str) or not os.path.isdir(os.path.join(root, "blobs")):
            return
        from contentd.local.check import scan

        for problem in scan(root):
            self.add(Finding(problem.kind, problem.detail, problem.digest, path=problem.path))

    # -- repair ------------------------------------------------------------------------

    def _repair(self) -> None:
        collect = False
        for f in self.report.findings:
            try:
                collect |= self._repair_one(f)
            except (ContentError, OSError) as err:
                f.repair = f"failed: {err}"
        if collect:
            self._collect()

    def _repair_one(self, f: Finding) -> bool:
        """Repair ``f`` now; True if it needs a garbage collection instead."""
        core = self.core
        if f.kind in ("corrupt", "missing", "size"):
            if f.digest in core.quarantined:  # quarantined by an earlier finding of this run
                f.repair, f.fixed = "quarantined", True
                return False
            moved = health.quarantine(core, f.digest, f"fsck: {f.kind}: {f.detail}")
            f.repair = f"quarantined, bytes moved to {moved}" if moved else "quarantined"
            f.fixed = True
        elif f.kind == "ingest-without-data":
            from contentd.metadata.content import ContentStore

            with contextlib.suppress(NotFound):  # gone meanwhile: fixed all the same
                ContentStore(core, f.namespace).abort(f.ref)
            f.repair, f.fixed = "aborted", True
        elif f.kind == "mode":
            from contentd.local.check import fix_mode

            f.repair, f.fixed = f"mode set to {fix_mode(f.path):04o}", True
        elif f.kind in ("orphan-blob", "orphan-ingest", "expired-ingest"):
            return True
        elif f.kind == "stray":
            f.repair = "left in place: not made by a content store"
        elif f.kind == "quarantined":
            f.repair = "needs an ingest of the same digest"
        return False

    def _collect(self) -> None:
        self.core.mark_dirty(content=True)
        if self.gc is None:
            for f in self.report.findings:
                if f.kind in ("orphan-blob", "orphan-ingest", "expired-ingest"):
                    f.repair = "failed: no garbage collector"
            return
        result = self.gc()
        removed_blobs = set(getattr(result, "backend_blobs", ()))
        removed_refs = set(getattr(result, "backend_ingests", ()))
        removed_ingests = {
            (ns, ref) for ns, refs in getattr(result, "ingests", {}).items() for ref in refs
        }
        error = getattr(result, "backend_error", None)
        for f in self.report.findings:
            if f.kind == "orphan-blob":
                f.fixed = f.digest in removed_blobs or self._really_missing(f.digest)
            elif f.kind == "orphan-ingest":
                f.fixed = f.ref in removed_refs or f.ref not in self._backend_refs()
            elif f.kind == "expired-ingest":
                f.fixed = (f.namespace, f.ref) in removed_ingests
            else:
                continue
            f.repair = "removed by garbage collection" if f.fixed else f"GC kept it ({error})"
