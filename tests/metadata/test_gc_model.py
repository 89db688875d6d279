"""A model-based test of GC: random writes, labels, leases, ingests, deletes,
clock moves and collections, checked against an independent model.

Invariant, at every collection: exactly the records reachable from a root
survive (GC never deletes a reachable blob and always deletes what is
unreachable), and afterwards the backend holds exactly the blobs and
ingests the surviving records need (when the collection cleaned it).
"""

from __future__ import annotations

import io
import shutil
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, multiple, precondition, rule

from contentd import AlreadyExists, Descriptor, Info, NotFound, write_blob
from contentd.content.digest import digest_of
from contentd.content.gotime import format_text
from contentd.content.labels import LABEL_GC_EXPIRE, LABEL_GC_FLAT, LABEL_GC_ROOT
from contentd.metadata import MetadataDB, Resource, backend_ref
from tests.metadata.conftest import FakeClock, new_backend

NAMESPACES = ("a", "b")
BLOBS = [f"blob number {i}".encode() for i in range(3)]
DIGESTS = [digest_of(b) for b in BLOBS]
LEASES = ("L1", "L2")
REFS = ("i1", "i2")
REF_KEY = "containerd.io/gc.ref.content.l.0"


@dataclass
class ModelLease:
    expire: datetime | None
    flat: bool
    content: set[str] = field(default_factory=set)
    ingests: set[str] = field(default_factory=set)


@dataclass
class ModelIngest:
    expire_at: datetime | None
    expected: str | None = None


class GCModel(RuleBasedStateMachine):
    lease_ids = Bundle("lease_ids")  # (namespace, lease id) once created

    def __init__(self) -> None:
        super().__init__()
        self.tmp = Path(tempfile.mkdtemp(prefix="gc-model-"))
        self.clock = FakeClock()
        self.db = MetadataDB(self.tmp / "m.db", new_backend(self.tmp / "c"), clock=self.clock)
        self.records: dict[tuple[str, str], dict[str, str]] = {}
        self.leases: dict[tuple[str, str], ModelLease] = {}
        self.ingests: dict[tuple[str, str], ModelIngest] = {}
        self.backend_blobs: set[str] = set()
        self.backend_ingests: set[str] = set()
        self.dirty = True  # a freshly opened database cleans the backend once
        self.commits = 0

    def teardown(self) -> None:
        self.db.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    # -- helpers ---------------------------------------------------------

    def _lease_ok(self, ns: str, lease: str | None) -> bool:
        return lease is None or (ns, lease) in self.leases

    # -- rules -----------------------------------------------------------

    @rule(
        ns=st.sampled_from(NAMESPACES),
        i=st.integers(0, len(BLOBS) - 1),
        root=st.sampled_from([False, False, True]),
        ref_to=st.none() | st.integers(0, len(BLOBS) - 1),
        leased=st.none() | lease_ids,
    )
    def commit(
        self, ns: str, i: int, root: bool, ref_to: int | None, leased: tuple[str, str] | None
    ) -> None:
        ns, lease = leased if leased is not None else (ns, None)
        dgst = DIGESTS[i]
        labels = {LABEL_GC_ROOT: "x"} if root else {}
        if ref_to is not None:
            labels[REF_KEY] = DIGESTS[ref_to]
        self.commits += 1
        cs = self.db.content_store(ns, lease)
        try:
            write_blob(
                cs, f"c{self.commits}", io.BytesIO(BLOBS[i]), Descriptor(digest=dgst), labels
            )
        except NotFound:
            assert not self._lease_ok(ns, lease)
            return
        assert self._lease_ok(ns, lease)
        if (ns, dgst) not in self.records:
            self.records[(ns, dgst)] = labels
        self.backend_blobs.add(dgst)
        if lease is not None:
            self.leases[(ns, lease)].content.add(dgst)

    @rule(
        ns=st.sampled_from(NAMESPACES),
        parent=st.integers(0, len(BLOBS) - 1),
        child=st.integers(0, len(BLOBS) - 1),
        leased=st.none() | lease_ids,
    )
    def commit_chain(
        self, ns: str, parent: int, child: int, leased: tuple[str, str] | None
    ) -> None:
        """A child, then a parent referencing it (an image's layers and manifest)."""
        ns = leased[0] if leased is not None else ns
        self.commit(ns, child, False, None, None)
        self.commit(ns, parent, False, child, leased)

    @rule(ns=st.sampled_from(NAMESPACES), i=st.integers(0, len(BLOBS) - 1))
    def delete(self, ns: str, i: int) -> None:
        dgst = DIGESTS[i]
        try:
            self.db.content_store(ns).delete(dgst)
        except NotFound:
            assert (ns, dgst) not in self.records
            return
        del self.records[(ns, dgst)]
        self.dirty = True

    @rule(ns=st.sampled_from(NAMESPACES), i=st.integers(0, len(BLOBS) - 1), root=st.booleans())
    def set_root(self, ns: str, i: int, root: bool) -> None:
        dgst = DIGESTS[i]
        value = "x" if root else ""
        try:
            self.db.content_store(ns).update(
                Info(digest=dgst, labels={LABEL_GC_ROOT: value}), f"labels.{LABEL_GC_ROOT}"
            )
        except NotFound:
            assert (ns, dgst) not in self.records
            return
        labels = self.records[(ns, dgst)]
        if root:
            labels[LABEL_GC_ROOT] = "x"
        else:
            labels.pop(LABEL_GC_ROOT, None)

    @rule(
        target=lease_ids,
        ns=st.sampled_from(NAMESPACES),
        lease=st.sampled_from(LEASES),
        expire_hours=st.none() | st.integers(-1, 30),
        flat=st.booleans(),
    )
    def create_lease(self, ns: str, lease: str, expire_hours: int | None, flat: bool) -> object:
        labels = {}
        expire = None
        if expire_hours is not None:
            expire = self.clock.now + timedelta(hours=expire_hours)
            labels[LABEL_GC_EXPIRE] = format_text(expire)
        if flat:
            labels[LABEL_GC_FLAT] = "1"
        try:
            self.db.leases(ns).create(lease, labels)
        except AlreadyExists:
            assert (ns, lease) in self.leases
            return multiple()
        # format_text keeps microseconds; the model compares at that precision
        self.leases[(ns, lease)] = ModelLease(expire=expire, flat=flat)
        return (ns, lease)

    @rule(leased=lease_ids)
    def delete_lease(self, leased: tuple[str, str]) -> None:
        ns, lease = leased
        try:
            self.db.leases(ns).delete(lease)
        except NotFound:
            assert (ns, lease) not in self.leases
            return
        del self.leases[(ns, lease)]

    @rule(leased=lease_ids, i=st.integers(0, len(BLOBS) - 1))
    def lease_content(self, leased: tuple[str, str], i: int) -> None:
        ns, lease = leased
        try:
            self.db.leases(ns).add_resource(lease, Resource(DIGESTS[i], "content"))
        except NotFound:
            assert (ns, lease) not in self.leases
            return
        self.leases[(ns, lease)].content.add(DIGESTS[i])

    @rule(
        ns=st.sampled_from(NAMESPACES),
        ref=st.sampled_from(REFS),
        leased=st.none() | lease_ids,
        share=st.none() | st.integers(0, len(BLOBS) - 1),
    )
    def open_ingest(
        self, ns: str, ref: str, leased: tuple[str, str] | None, share: int | None
    ) -> None:
        """Open (or reopen) an ingest, optionally naming an expected digest, and leave it."""
        ns, lease = leased if leased is not None else (ns, None)
        expected = DIGESTS[share] if share is not None else None
        total = len(BLOBS[share]) if share is not None else 0
        cs = self.db.content_store(ns, lease)
        try:
            w = cs.writer(ref, total=total, expected=expected)
        except NotFound:
            assert not self._lease_ok(ns, lease)
            return
        except AlreadyExists:
            assert expected is not None and (ns, expected) in self.records
            if lease is not None:
                self.leases[(ns, lease)].content.add(expected)
            return
        assert self._lease_ok(ns, lease)
        assert expected is None or (ns, expected) not in self.records
        shared = expected is not None and expected in self.backend_blobs
        if not shared:
            w.write(b"x")
        w.close()
        record = self.ingests.setdefault((ns, ref), ModelIngest(expire_at=None))
        if lease is None:
            record.expire_at = self.clock.now + timedelta(hours=24)
        else:
            self.leases[(ns, lease)].ingests.add(ref)
        if shared:
            record.expected = expected
        else:
            self.backend_ingests.add(backend_ref(ns, ref))

    @rule(hours=st.sampled_from([1, 6, 25]))
    def advance_clock(self, hours: int) -> None:
        self.clock.advance(hours=hours)

    @precondition(lambda self: self.records or self.ingests or self.leases)
    @rule(dry_run=st.booleans())
    def collect(self, dry_run: bool) -> None:
        now = self.clock.now
        reachable, alive = self._reachable(now)
        gone_content = {k for k in self.records if k not in reachable["content"]}
        gone_ingests = {k for k in self.ingests if k not in reachable["ingests"]}
        gone_leases = {k for k in self.leases if k not in alive}

        result = self.db.garbage_collect(dry_run=dry_run)

        assert _pairs(result.content) == gone_content
        assert _pairs(result.ingests) == gone_ingests
        assert _pairs(result.leases) == gone_leases
        if dry_run:
            return
        for key in gone_content:
            del self.records[key]
        for key in gone_ingests:
            del self.ingests[key]
        for key in gone_leases:
            del self.leases[key]
        if gone_content or gone_ingests:
            self.dirty = True
        assert result.backend_cleaned == self.dirty
        if self.dirty:
            self.backend_blobs = {d for _, d in self.records} | {
                ing.expected for ing in self.ingests.values() if ing.expected
            }
            known = {backend_ref(ns, ref) for ns, ref in self.ingests}
            self.backend_ingests &= known
            self.dirty = False
        # the database agrees with the model...
        for ns in NAMESPACES:
            cs = self.db.content_store(ns)
            assert {i.digest for i in cs.walk()} == {d for n, d in self.records if n == ns}
        # ...and the backend with both
        assert {i.digest for i in self.db.backend.walk()} == self.backend_blobs
        assert set(self.db.backend.walk_status_refs()) == self.backend_ingests

    # -- the model's own idea of reachability ------------------------------

    def _reachable(
        self, now: datetime
    ) -> tuple[dict[str, set[tuple[str, str]]], set[tuple[str, str]]]:
        alive = {
            k for k, lease in self.leases.items() if lease.expire is None or now <= lease.expire
        }
        content: set[tuple[str, str]] = set()
        ingests: set[tuple[str, str]] = set()
        follow: list[tuple[str, str]] = []
        for ns, lease_id in alive:
            lease = self.leases[(ns, lease_id)]
            for d in lease.content:
                content.add((ns, d))
                if not lease.flat:
                    follow.append((ns, d))
            ingests.update((ns, ref) for ref in lease.ingests)
        for key, ing in self.ingests.items():
            if ing.expire_at is not None and ing.expire_at >= now:
                ingests.add(key)
        for key in ingests:
            ing = self.ingests.get(key)
            if ing is not None and ing.expected:
                follow.append((key[0], ing.expected))
        follow.extend(k for k, labels in self.records.items() if LABEL_GC_ROOT in labels)
        followed: set[tuple[str, str]] = set()
        while follow:
            node = follow.pop()
            if node in followed:
                continue
            followed.add(node)
            content.add(node)
            labels = self.records.get(node)
            if labels and REF_KEY in labels:
                follow.append((node[0], labels[REF_KEY]))
        return {"content": content, "ingests": ingests}, alive


def _pairs(grouped: object) -> set[tuple[str, str]]:
    assert isinstance(grouped, dict)
    return {(ns, key) for ns, keys in grouped.items() for key in keys}


GCModel.TestCase.settings = settings(
    max_examples=30,
    stateful_step_count=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestGCModel = GCModel.TestCase
