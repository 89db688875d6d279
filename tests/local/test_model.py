"""Random write/close/reopen/truncate/commit/abort sequences against a simple model."""

from __future__ import annotations

import shutil
import tempfile

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from contentd import (
    AlreadyExists,
    FailedPrecondition,
    LocalStore,
    NotFound,
    Writer,
    read_blob,
)
from contentd.content.digest import digest_of

REFS = st.sampled_from(["a", "b", "c/with/slashes"])
DATA = st.binary(min_size=0, max_size=300)


class LocalStoreModel(RuleBasedStateMachine):
    """The model: per ref the bytes of its ingest (if any), the set of committed blobs."""

    @initialize()
    def setup(self) -> None:
        self.root = tempfile.mkdtemp(prefix="contentd-model-")
        self.store = LocalStore(self.root)
        self.ingests: dict[str, bytes] = {}
        self.open: dict[str, Writer] = {}
        self.blobs: dict[str, bytes] = {}

    def teardown(self) -> None:
        for w in self.open.values():
            w.close()
        shutil.rmtree(self.root, ignore_errors=True)

    @rule(ref=REFS)
    def open_writer(self, ref: str) -> None:
        if ref in self.open:
            return
        w = self.store.writer(ref)
        self.ingests.setdefault(ref, b"")
        assert w.status().offset == len(self.ingests[ref])
        assert w.digest() == digest_of(self.ingests[ref])
        self.open[ref] = w

    @precondition(lambda self: bool(self.open))
    @rule(data=st.data(), chunk=DATA)
    def write(self, data: st.DataObject, chunk: bytes) -> None:
        ref = data.draw(st.sampled_from(sorted(self.open)))
        assert self.open[ref].write(chunk) == len(chunk)
        self.ingests[ref] += chunk

    @precondition(lambda self: bool(self.open))
    @rule(data=st.data())
    def close(self, data: st.DataObject) -> None:
        ref = data.draw(st.sampled_from(sorted(self.open)))
        self.open.pop(ref).close()

    @precondition(lambda self: bool(self.open))
    @rule(data=st.data())
    def truncate(self, data: st.DataObject) -> None:
        ref = data.draw(st.sampled_from(sorted(self.open)))
        self.open[ref].truncate(0)
        self.ingests[ref] = b""

    @precondition(lambda self: bool(self.open))
    @rule(
        data=st.data(), how=st.sampled_from(["plain", "size", "digest", "bad-size", "bad-digest"])
    )
    def commit(self, data: st.DataObject, how: str) -> None:
        ref = data.draw(st.sampled_from(sorted(self.open)))
        w = self.open.pop(ref)
        content = self.ingests[ref]
        d = digest_of(content)
        size, expected = {
            "plain": (0, None),
            "size": (len(content), None),
            "digest": (0, d),
            "bad-size": (len(content) + 1, None),
            "bad-digest": (0, digest_of(content + b"x")),
        }[how]
        try:
            w.commit(size, expected)
        except FailedPrecondition:
            assert how.startswith("bad")
            return  # the ingest is kept for resuming
        except AlreadyExists:
            assert d in self.blobs
            del self.ingests[ref]
            return
        assert not how.startswith("bad")
        assert d not in self.blobs
        self.blobs[d] = content
        del self.ingests[ref]

    @precondition(lambda self: bool(self.ingests))
    @rule(data=st.data())
    def abort(self, data: st.DataObject) -> None:
        ref = data.draw(st.sampled_from(sorted(self.ingests)))
        if ref in self.open:
            self.open.pop(ref).close()
        self.store.abort(ref)
        del self.ingests[ref]

    @rule()
    def restart(self) -> None:
        """A new store instance on the same root (open writers are closed first)."""
        for w in self.open.values():
            w.close()
        self.open.clear()
        self.store = LocalStore(self.root)

    @precondition(lambda self: bool(self.blobs))
    @rule(data=st.data())
    def delete(self, data: st.DataObject) -> None:
        d = data.draw(st.sampled_from(sorted(self.blobs)))
        self.store.delete(d)
        del self.blobs[d]

    @invariant()
    def store_matches_model(self) -> None:
        if not hasattr(self, "store"):
            return
        assert {i.digest for i in self.store.walk()} == set(self.blobs)
        for d, content in self.blobs.items():
            assert self.store.info(d).size == len(content)
        assert {s.ref: s.offset for s in self.store.list_statuses()} == {
            ref: len(content) for ref, content in self.ingests.items()
        }
        for ref in ("a", "b", "c/with/slashes"):
            if ref not in self.ingests:
                try:
                    self.store.status(ref)
                except NotFound:
                    continue
                raise AssertionError(f"status of {ref} should be NotFound")

    @invariant()
    def blobs_read_back(self) -> None:
        if not hasattr(self, "store"):
            return
        for d, content in list(self.blobs.items())[:3]:
            assert read_blob(self.store, d) == content


LocalStoreModel.TestCase.settings = settings(
    max_examples=60,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestLocalStoreModel = LocalStoreModel.TestCase
