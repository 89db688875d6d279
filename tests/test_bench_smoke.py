"""The benchmark (bench/) at a toy scale, so it does not rot: every row runs on every target.

Nothing here looks at the figures (tests never assert timing); it checks that the one
command exits 0, measures every workload on each of its targets without an error,
saves its JSON, prints the table, and leaves no temp dir or daemon behind.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.peers import requires
from tests.peers.postgres import require_postgres

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.slow
@pytest.mark.containerd
@pytest.mark.registry
def test_bench_runs_every_workload_at_toy_scale(tmp_path: Path) -> None:
    requires("containerd", "ctr", "docker-registry", "skopeo")
    require_postgres()
    out = tmp_path / "bench.json"
    # short: the daemons' unix socket paths live below it (at most 104 bytes)
    work = Path(tempfile.mkdtemp(prefix="bs-", dir="/tmp"))
    try:
        _run_and_check(out, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _run_and_check(out: Path, work: Path) -> None:
    # A child process: the run forks daemons and ctr while its gRPC channels are open,
    # which it prepares for at start-up (see bench/__init__.py).
    p = subprocess.run(
        [
            sys.executable, "-m", "bench.run",
            "--mib", "1", "--blobs", "10", "--reps", "1",
            "--json", str(out), "--workdir", str(work), "--quiet",
        ],
        cwd=REPO,
        capture_output=True,
        timeout=240,
        check=False,
    )  # fmt: skip
    stdout = p.stdout.decode("utf-8", "replace")
    stderr = p.stderr.decode("utf-8", "replace")
    assert p.returncode == 0, f"stdout:\n{stdout}\nstderr:\n{stderr}"

    from bench.workloads import all_workloads

    doc = json.loads(out.read_text())
    rows = {row["name"]: row for row in doc["rows"]}
    assert set(rows) == {w.name for w in all_workloads()}
    for row in rows.values():
        for side in ("baseline", "subject"):
            series = row[side]
            if series is None:
                continue
            assert series["error"] is None, (
                f"{row['name']} on {series['target']}: {series['error']}"
            )
            assert len(series["samples"]) == 1, row["name"]
            assert series["samples"][0]["value"] > 0, row["name"]
    # the client's CPU beside the daemon's: lock-step rows wait for both
    for name in ("write-stream", "small-ingests", "ctr-ingest"):
        for side in ("baseline", "subject"):
            assert rows[name][side]["samples"][0]["client_cpu_s"] >= 0, (name, side)
    assert rows["ctr-ingest"]["baseline"]["target"] == "containerd"
    assert rows["ctr-ingest"]["subject"]["target"] == "contentd"
    assert rows["proxy-pull"]["subject"]["target"] == "containerd+contentd"
    assert rows["proxy-big-pull"]["subject"]["target"] == "containerd+contentd"
    assert rows["s3-get-warm"]["baseline"]["target"] == "contentd"
    assert rows["s3-get-warm"]["subject"]["target"] == "contentd-s3"
    assert rows["cluster-pull-first"]["baseline"]["target"] == "containerd"
    assert rows["cluster-pull"]["baseline"]["target"] == "cluster-a"
    assert rows["cluster-pull"]["subject"]["target"] == "cluster-b"
    # each cluster pull records what the registry served: the whole image for the first
    # node (and plain containerd), no blob byte for the second
    first = rows["cluster-pull"]["baseline"]["samples"][0]["registry_blob_bytes"]
    assert first > 1024 * 1024
    assert rows["cluster-pull-first"]["subject"]["samples"][0]["registry_blob_bytes"] == first
    assert rows["cluster-pull"]["subject"]["samples"][0]["registry_blob_bytes"] == 0
    assert doc["machine"]["containerd"].startswith("containerd ")

    assert "| workload |" in stdout
    assert "ratio (>1: contentd better)" in stdout
    for row in rows.values():
        assert row["title"] in stdout
    assert list(work.iterdir()) == []  # the run's temp dir (daemons' roots included) is gone
