"""Wall time of the ``contentd`` command: start-up alone, and ``content ls`` over many blobs.

    .venv/bin/python -m bench.cli_startup [--blobs 10000] [--runs 9] [--containerd]

Starts a ``contentd serve`` (quiet GC) in a temp dir, stores ``--blobs`` small
blobs in the ``default`` namespace (labelled ``containerd.io/gc.root``, through
the proxy client, 8 writers at a time), then runs each command ``--runs`` times
as a fresh process (byte-compiled, as an installed contentd is) and prints
min / median / max wall seconds. ``ctr`` against the same socket is the
reference, when it is installed; with ``--containerd`` the same runs against a
private containerd 1.6.20, whose List is fast, which shows the client's own
cost. Nothing here asserts a time: read the numbers.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench.peers import ContentdDaemon

ROOT_LABEL = {"containerd.io/gc.root": "bench"}


def populate(address: str, count: int, workers: int = 8) -> float:
    """Store ``count`` distinct small blobs; returns the seconds it took."""
    from contentd.content.helpers import write_blob
    from contentd.content.types import Descriptor
    from contentd.proxy import ProxyStore

    started = time.perf_counter()
    with ProxyStore(address, "default") as store:

        def one(i: int) -> None:
            import hashlib
            import io

            data = f"cli-startup blob {i}\n".encode() * (1 + i % 7)
            digest = "sha256:" + hashlib.sha256(data).hexdigest()
            write_blob(
                store,
                f"cli-startup-{i}",
                io.BytesIO(data),
                Descriptor(digest=digest, size=len(data)),
                ROOT_LABEL,
            )

        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(one, range(count)))
    return time.perf_counter() - started


def wall(argv: Sequence[str], runs: int, env: dict[str, str]) -> list[float]:
    times: list[float] = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(argv, stdout=subprocess.DEVNULL, env=env, check=True)
        times.append(time.perf_counter() - started)
    return times


def row(name: str, times: list[float]) -> str:
    return f"{name:<44} {min(times):7.3f} {statistics.median(times):7.3f} {max(times):7.3f}"


def measure(label: str, address: str, count: int, runs: int, env: dict[str, str]) -> None:
    contentd = [sys.executable, "-m", "contentd"]
    seconds = populate(address, count)
    print(f"\n[{label}] stored {count} blobs in {seconds:.1f}s")
    try:
        load = os.getloadavg()
        print(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    except OSError:
        pass
    env = dict(env, CONTENTD_ADDRESS=address)
    check = subprocess.run(
        [*contentd, "content", "ls", "-q"], capture_output=True, env=env, check=True
    )
    print(f"content ls -q lists {len(check.stdout.splitlines())} blobs")
    cases: list[tuple[str, list[str]]] = [
        ("python -c pass", [sys.executable, "-c", "pass"]),
        ("contentd --help", [*contentd, "--help"]),
        ("contentd version (client + server)", [*contentd, "version"]),
        ("contentd content ls -q", [*contentd, "content", "ls", "-q"]),
        ("contentd content ls", [*contentd, "content", "ls"]),
        ("contentd --output json content ls", [*contentd, "--output", "json", "content", "ls"]),
    ]
    ctr = shutil.which("ctr")
    if ctr:
        cases.append(("ctr content ls (reference)", [ctr, "-a", address, "content", "ls"]))
    title = f"wall seconds over {runs} runs"
    print(f"{title:<44} {'min':>7} {'median':>7} {'max':>7}")
    for name, command in cases:
        print(row(name, wall(command, runs, env)), flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--blobs", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--work-dir", default=None, help="parent of the temp dir (default /tmp)")
    parser.add_argument(
        "--containerd", action="store_true", help="also against a private containerd 1.6.20"
    )
    args = parser.parse_args(argv)

    base = Path(tempfile.mkdtemp(prefix="cli-startup-", dir=args.work_dir or "/tmp"))
    # byte-compiled modules, as an installed contentd has (kept out of the source tree)
    env = dict(os.environ, PYTHONPYCACHEPREFIX=str(base / "pycache"))
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    subprocess.run([sys.executable, "-m", "contentd", "--help"], env=env, capture_output=True)
    subprocess.run(
        [sys.executable, "-c", "import contentd.proxy, contentd.cli.content, contentd.cli.output"],
        env=env,
        check=True,
    )
    print(f"{os.cpu_count()} CPUs; python {sys.version.split()[0]}")
    try:
        with ContentdDaemon(base) as daemon:
            measure("contentd serve", daemon.address, args.blobs, args.runs, env)
        if args.containerd:
            from bench.peers import bench_containerd

            peer = bench_containerd(base)
            with peer:
                measure("containerd 1.6.20", peer.address, args.blobs, args.runs, env)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
