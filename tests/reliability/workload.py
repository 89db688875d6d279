"""A seeded client workload against ``contentd serve`` that remembers what was acknowledged.

It ingests (committed, and some left half-written to resume later), deletes,
updates labels, writes under a lease and deletes the lease, and asks for garbage
collections, until the daemon goes away. What the daemon acknowledged must
survive any crash: :meth:`Workload.verify` checks it against a restarted daemon.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field

import grpc

from contentd.api._pb.containerd.services.content.v1 import content_pb2 as pb
from contentd.api._pb.containerd.services.content.v1 import content_pb2_grpc as pb_grpc
from contentd.api._pb.containerd.services.leases.v1 import leases_pb2 as lpb
from contentd.api._pb.containerd.services.leases.v1 import leases_pb2_grpc as lpb_grpc
from contentd.api._pb.contentd.services.gc.v1 import gc_pb2 as gpb
from contentd.api._pb.contentd.services.gc.v1 import gc_pb2_grpc as gpb_grpc
from contentd.content.errors import AlreadyExists, NotFound
from contentd.content.types import Info
from contentd.proxy import ProxyStore
from tests.daemon.harness import md

__all__ = ["Workload"]

ROOT = "containerd.io/gc.root"
SIZES = (0, 1, 100, 4096, 65536, 700_000, (1 << 20) + 12345, 3 << 20)


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass
class Workload:
    namespace: str
    seed: int
    rng: random.Random = field(init=False)
    #: digest -> bytes of every acknowledged commit not deleted since (acknowledged)
    present: dict[str, bytes] = field(default_factory=dict)
    #: digests whose last operation was not acknowledged: present or not, both fine
    maybe: set[str] = field(default_factory=set)
    #: digest -> labels acknowledged by the last update
    labels: dict[str, dict[str, str]] = field(default_factory=dict)
    #: ref -> the bytes an interrupted ingest was writing
    interrupted: dict[str, bytes] = field(default_factory=dict)
    ops: int = 0

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)

    # -- running -----------------------------------------------------------------------

    def run(self, address: str, cycle: int) -> None:
        """Operate until the daemon goes away (any error ends the run)."""
        store = ProxyStore(address, namespace=self.namespace)
        try:
            i = 0
            while True:
                self._one(store, f"c{cycle}-{i}")
                i += 1
                self.ops += 1
        except Exception:
            return
        finally:
            store.close()

    def _one(self, store: ProxyStore, name: str) -> None:
        op = self.rng.choices(
            ["ingest", "partial", "delete", "label", "lease", "gc"], [8, 2, 2, 2, 1, 1]
        )[0]
        if op in ("ingest", "partial"):
            data = self.rng.randbytes(self.rng.choice(SIZES))
            self._ingest(store, name, data, partial=op == "partial")
        elif op == "delete" and self.present:
            digest = self.rng.choice(sorted(self.present))
            data = self.present.pop(digest)
            self.maybe.add(digest)
            try:
                store.delete(digest)
            except NotFound:
                pass
            except Exception:
                self.present[digest] = data  # not acknowledged: either state is fine
                raise
            self.maybe.discard(digest)
            self.labels.pop(digest, None)
        elif op == "label" and self.present:
            digest = self.rng.choice(sorted(self.present))
            labels = {ROOT: "x", "n": str(self.rng.randrange(1000))}
            self.labels.pop(digest, None)
            store.update(Info(digest=digest, labels=labels))
            self.labels[digest] = labels
        elif op == "lease":
            self._leased(store, name)
        elif op == "gc":
            gpb_grpc.GCStub(store.channel).Collect(gpb.CollectRequest())

    def _ingest(self, store: ProxyStore, ref: str, data: bytes, *, partial: bool) -> None:
        digest = digest_of(data)
        if partial and len(data) > 1:
            self.interrupted[ref] = data
            with store.writer(ref, total=len(data)) as w:
                w.write(data[: len(data) // 2])
            return
        self.interrupted[ref] = data
        self.maybe.add(digest)
        try:
            with store.writer(ref, total=len(data), expected=digest) as w:
                w.write(data)
                w.commit(len(data), digest, {ROOT: "x"})
        except AlreadyExists:
            pass
        del self.interrupted[ref]
        self.present[digest] = data
        self.maybe.discard(digest)

    def _leased(self, store: ProxyStore, name: str) -> None:
        leases = lpb_grpc.LeasesStub(store.channel)
        lease = f"lease-{name}"
        leases.Create(lpb.CreateRequest(id=lease), metadata=md(self.namespace))
        data = self.rng.randbytes(self.rng.choice(SIZES[:5]))
        digest = digest_of(data)
        self.maybe.add(digest)  # held by the lease only: GC may take it after the delete
        leased = store.with_namespace(self.namespace, lease)
        try:
            with leased.writer(name, total=len(data), expected=digest) as w:
                w.write(data)
                w.commit(len(data), digest)
        except AlreadyExists:
            pass
        leases.Delete(lpb.DeleteRequest(id=lease, sync=True), metadata=md(self.namespace))

    # -- checking ----------------------------------------------------------------------

    def verify(self, address: str) -> int:
        """Every acknowledged blob is there with its bytes and labels, and every
        interrupted ingest resumes to a correct commit. Returns the blobs checked."""
        with grpc.insecure_channel(address) as channel:
            stub = pb_grpc.ContentStub(channel)
            for digest, data in sorted(self.present.items()):
                if digest in self.maybe:
                    continue
                info = stub.Info(pb.InfoRequest(digest=digest), metadata=md(self.namespace)).info
                assert info.size == len(data), digest
                want = self.labels.get(digest)
                if want is not None:
                    assert dict(info.labels) == want, digest
                got = b"".join(
                    r.data
                    for r in stub.Read(
                        pb.ReadContentRequest(digest=digest), metadata=md(self.namespace)
                    )
                )
                assert got == data, f"{digest}: wrong bytes after restart"
        self._resume(address)
        return len(self.present)

    def _resume(self, address: str) -> None:
        store = ProxyStore(address, namespace=self.namespace)
        try:
            # an ingest never made durable (a small one still pending) starts over at 0
            for ref, data in sorted(self.interrupted.items()):
                digest = digest_of(data)
                try:
                    with store.writer(ref, total=len(data), expected=digest) as w:
                        st = w.status()
                        if st.offset > len(data) or w.digest() != digest_of(data[: st.offset]):
                            raise AssertionError(
                                f"ingest {ref}: kept {st.offset} bytes that are not a prefix"
                            )
                        w.write(data[st.offset :])
                        w.commit(len(data), digest, {ROOT: "x"})
                except AlreadyExists:
                    pass
                self.present[digest] = data
                self.maybe.discard(digest)
            self.interrupted.clear()
        finally:
            store.close()
