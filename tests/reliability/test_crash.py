"""SIGKILL ``contentd serve`` at seeded points of a live workload; after every restart the
store is consistent and everything acknowledged is there.

Each cycle starts the daemon on the same root and runs :class:`Workload` (ingests,
resumable half-ingests, deletes, label updates, a lease deleted with ``sync``, GC).
The daemon is killed either after a seeded delay or by one of the metadata layer's
crash points (``CONTENTD_METADATA_CRASH_AT``: after the backend opened an ingest,
after the ingest record, between a commit's backend link and its record, after it,
in the middle of GC's sweep and backend deletes). Then:

1. offline ``contentd fsck --root`` finds nothing but crash leftovers (orphan blobs
   and ingests, records of ingests that were still pending; see ``LEFTOVERS``) -
   never a corrupt, missing or mis-sized blob;
2. after a restart every acknowledged blob reads back whole (verified) with its
   acknowledged labels, every interrupted ingest resumes to a correct commit,
   ``contentd fsck --repair`` fixes every leftover through GC and abort, and then
   ``contentd fsck`` is clean.
"""

from __future__ import annotations

import random
import shutil
import signal
import subprocess
import threading

import pytest

from tests.cli.conftest import Cli
from tests.daemon.harness import ServeProcess, short_tmpdir
from tests.reliability.figures import count
from tests.reliability.profile import PROFILE
from tests.reliability.workload import Workload

CONFIG = 'version = 2\n[plugins."io.containerd.grpc.v1.fsck"]\n  scrub_interval = "0"\n'
CRASH_POINTS = (
    "writer:after-backend-open",
    "writer:after-record",
    "commit:after-backend",
    "commit:after-record",
    "commit:inline-after-record",
    "commit:inline-after-link",
    "gc:after-sweep",
    "gc:after-backend-delete",
)
#: what a crash may leave by design: bytes or ingests whose record never came (GC removes
#: them), and the record of an ingest that was still pending (no directory on disk yet:
#: the crash took its bytes; ``status`` says NotFound, a new writer starts it over)
LEFTOVERS = {"orphan-blob", "orphan-ingest", "ingest-without-data"}


def _daemon(base: object, cycle: int, crash_at: str | None = None) -> ServeProcess:
    env = {"CONTENTD_METADATA_CRASH_AT": crash_at} if crash_at else {}
    return ServeProcess(
        base,  # type: ignore[arg-type]
        config=CONFIG,
        name=f"c{cycle}",
        env=env,
    )


@pytest.mark.slow
def test_sigkill_cycles_leave_a_consistent_store() -> None:
    base = short_tmpdir()
    rng = random.Random(20261207)
    workload = Workload(namespace="crash", seed=rng.randrange(1 << 30))
    try:
        for cycle in range(PROFILE.crash_cycles):
            crash_at = rng.choice(CRASH_POINTS) if rng.random() < 0.4 else None
            daemon = _daemon(base, cycle, crash_at)
            try:
                daemon.start()
            except RuntimeError:  # the crash point came in start-up (its first GC)
                assert crash_at is not None and daemon.proc is not None
                assert daemon.proc.returncode == -signal.SIGKILL, daemon.log_text()
                count(f"crash cycles: killed at {crash_at} during start-up")
            else:
                runner = threading.Thread(target=workload.run, args=(daemon.address, cycle))
                runner.start()
                assert daemon.proc is not None
                try:
                    daemon.proc.wait(rng.uniform(0.05, 1.5) if crash_at is None else 5.0)
                    count(f"crash cycles: killed at {crash_at}")
                except subprocess.TimeoutExpired:
                    daemon.proc.kill()
                    daemon.proc.wait(10)
                    count("crash cycles: SIGKILL at a seeded moment")
                runner.join(60)
                assert not runner.is_alive()

            # 1. offline, before anything repairs: only crash leftovers
            cli = Cli(daemon.address, "crash")
            offline = cli.raw("--output", "json", "fsck", "--root", str(daemon.root))
            assert offline.code in (0, 3), offline.err
            kinds = [f["kind"] for f in offline.json()["findings"]]
            assert set(kinds) <= LEFTOVERS, offline.json()["findings"]
            count("crash leftovers found offline (orphans)", len(kinds))

            # 2. restart: acknowledged state, resumed ingests, clean after one GC
            daemon = _daemon(base, cycle + 100_000).start()
            cli = Cli(daemon.address, "crash")
            try:
                count("acknowledged blobs verified", workload.verify(daemon.address))
                repaired = cli("--output", "json", "fsck", "--repair")
                findings = repaired.json()["findings"]
                assert repaired.code == 0 and {f["kind"] for f in findings} <= LEFTOVERS, findings
                online = cli("--output", "json", "fsck")
                assert online.code == 0, online.json()["findings"]
            finally:
                daemon.stop()
            count("crash cycles: fsck clean after restart")
        count("workload operations", workload.ops)
    finally:
        shutil.rmtree(base, ignore_errors=True)
