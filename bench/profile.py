"""Profile the contentd daemon with py-spy while one benchmark workload runs against it.

    .venv/bin/pip install py-spy        # local tool, not a project dependency
    .venv/bin/python -m bench.profile ctr-get --mib 256 [--native] [--out DIR]
    .venv/bin/python -m bench.profile write-stream --mib 256
    .venv/bin/python -m bench.profile proxy-get --mib 64      # containerd -> proxy -> contentd

Starts its own ``contentd serve`` (same flags and config as the benchmark),
prepares the blob, attaches ``py-spy record --nonblocking`` to the daemon for
the duration of the workload, and prints where the daemon's samples went: the
hottest functions by own time (the leaf of each sample) and by inclusive time
(on the stack at all), plus the share of samples by thread. The raw collapsed
stacks are kept in ``--out`` for flame graphs (``py-spy``'s raw format).
"""

from __future__ import annotations

import argparse
import collections
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

if not __package__:
    _ROOT = Path(__file__).resolve().parent.parent
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _ROOT / "bench"]
    sys.path.insert(0, str(_ROOT))

from bench.client import ContentClient
from bench.data import BlobMaker
from bench.env import KEEP_NAMESPACE
from bench.peers import ContentdDaemon, Target

__all__ = ["main", "summarise"]

REPO = Path(__file__).resolve().parent.parent
WORKLOADS = ("ctr-get", "write-stream", "read-stream", "ctr-ingest", "small-ingests", "ctr-ls")
#: Rows run by containerd with a contentd as its proxy content plugin (the contentd is profiled).
PROXY_WORKLOADS = ("proxy-get", "proxy-big-pull")


def _py_spy() -> str:
    found = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not os.path.exists(found):
        raise SystemExit("py-spy not found: `.venv/bin/pip install py-spy` (a local tool only)")
    return found


def summarise(raw: str, top: int = 25) -> str:
    """Own and inclusive sample counts per function from py-spy's raw (collapsed) output."""
    own: collections.Counter[str] = collections.Counter()
    incl: collections.Counter[str] = collections.Counter()
    threads: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        total += count
        if frames and frames[0].startswith(("thread ", "process ")):
            head = [f for f in frames if f.startswith(("thread ", "process "))]
            threads[" ".join(head)] += count
            frames = [f for f in frames if not f.startswith(("thread ", "process "))]
        if not frames:
            continue
        own[frames[-1]] += count
        for frame in set(frames):
            incl[frame] += count
    if not total:
        return "no samples\n"
    out = [f"{total} samples"]
    if threads:
        out.append("\nby thread:")
        out += [f"  {100 * c / total:5.1f}%  {t}" for t, c in threads.most_common(top)]
    out.append("\nown time (leaf frame):")
    out += [f"  {100 * c / total:5.1f}%  {f}" for f, c in own.most_common(top)]
    out.append("\ninclusive time (on the stack):")
    out += [f"  {100 * c / total:5.1f}%  {f}" for f, c in incl.most_common(top)]
    return "\n".join(out) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__)
    p.add_argument("workload", choices=WORKLOADS + PROXY_WORKLOADS)
    p.add_argument("--mib", type=int, default=256)
    p.add_argument("--blobs", type=int, default=1000, help="for small-ingests and ctr-ls")
    p.add_argument("--repeat", type=int, default=10, help="ctr-ls: how many listings")
    p.add_argument("--rate", type=int, default=200, help="py-spy samples per second")
    p.add_argument("--native", action="store_true", help="include native (C) frames")
    p.add_argument("--idle", action="store_true", help="include idle threads")
    p.add_argument("--gil", action="store_true", help="only samples holding the GIL")
    p.add_argument("--out", default=str(REPO / "bench" / "results" / "profiles"))
    p.add_argument("--workdir", default=str(REPO / "var"))
    args = p.parse_args(argv)
    spy = _py_spy()
    from contentd.daemon.engines import tune_malloc

    tune_malloc()
    Path(args.workdir).mkdir(parents=True, exist_ok=True)
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = f"{time.strftime('%Y%m%d-%H%M%S')}-{args.workload}-{args.mib}"
    raw_path = out_dir / f"{stem}.txt"
    if args.workload in PROXY_WORKLOADS:
        seconds, err = _profile_proxy(args, spy, raw_path)
        return _report(args, seconds, raw_path, err)
    data = BlobMaker()
    with ContentdDaemon(args.workdir, name="contentd-profile") as daemon:
        target = Target("contentd", daemon.address, lambda: daemon.pid)
        client: ContentClient = target.client
        blob = data.big(args.mib, "profile")
        if args.workload in ("ctr-get", "read-stream"):
            client.write_blob(
                "profile", blob.chunks(), total=blob.size, expected=blob.digest,
                namespace=KEEP_NAMESPACE,
            )  # fmt: skip
        ingest_file = Path(daemon.base) / "ingest.bin"
        if args.workload == "ctr-ingest":
            data.write_file(str(ingest_file), args.mib, "profile-ctr")
        small = [data.small(1024, f"profile {i}") for i in range(args.blobs)]
        if args.workload == "ctr-ls":
            for i, (payload, digest) in enumerate(small):
                client.write_blob(
                    f"ls-{i}", (payload,), total=len(payload), expected=digest, namespace="bench-ls"
                )
        pid = daemon.pid
        assert pid is not None
        spy_proc = _spy(args, spy, pid, raw_path)
        t0 = time.perf_counter()
        try:
            if args.workload == "ctr-get":
                target.ctr("content", "get", blob.digest, namespace=KEEP_NAMESPACE, capture=False)
            elif args.workload == "read-stream":
                client.read(blob.digest, namespace=KEEP_NAMESPACE)
            elif args.workload == "write-stream":
                client.write_blob(
                    "profile-ws", blob.chunks(), total=blob.size, expected=blob.digest,
                    namespace="bench-ingest",
                )  # fmt: skip
            elif args.workload == "ctr-ingest":
                with ingest_file.open("rb") as stdin:
                    target.ctr(
                        "content", "ingest", "profile", namespace="bench-ingest",
                        stdin=stdin, capture=False,
                    )  # fmt: skip
            elif args.workload == "ctr-ls":
                for _ in range(args.repeat):
                    target.ctr("content", "ls", namespace="bench-ls")
            else:
                for i, (payload, digest) in enumerate(small):
                    client.write_blob(
                        f"profile-{i}", (payload,), total=len(payload), expected=digest,
                        namespace="bench-small",
                    )  # fmt: skip
            seconds = time.perf_counter() - t0
        finally:
            err = _stop_spy(spy_proc)
            target.close()
    return _report(args, seconds, raw_path, err)


def _spy(args: argparse.Namespace, spy: str, pid: int, raw_path: Path) -> subprocess.Popen[bytes]:
    """py-spy recording ``pid`` into ``raw_path``, attached (after a second's wait)."""
    spy_argv = [spy, "record", "--pid", str(pid), "--rate", str(args.rate), "--nonblocking"]
    spy_argv += ["--format", "raw", "--output", str(raw_path), "--threads"]
    if args.native:
        spy_argv.append("--native")
    if args.idle:
        spy_argv.append("--idle")
    if args.gil:
        spy_argv.append("--gil")
    spy_proc = subprocess.Popen(spy_argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    time.sleep(1.0)  # py-spy attaches
    return spy_proc


def _stop_spy(spy_proc: subprocess.Popen[bytes]) -> bytes:
    spy_proc.send_signal(signal.SIGINT)
    try:
        _, err = spy_proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        spy_proc.kill()
        _, err = spy_proc.communicate()
    return err


def _profile_proxy(args: argparse.Namespace, spy: str, raw_path: Path) -> tuple[float, bytes]:
    """One proxy row's sample on containerd + contentd, py-spy on the contentd behind it."""
    from bench.env import BenchEnv, Scale
    from bench.workloads.proxy import ProxyBigPull, ProxyGet

    scale = Scale("profile", mib=args.mib, blobs=args.blobs, proxy_mib=args.mib,
                  pull_mib=args.mib)  # fmt: skip
    with BenchEnv(scale, base_dir=args.workdir) as env:
        workload = ProxyGet() if args.workload == "proxy-get" else ProxyBigPull()
        target = env.target("containerd+contentd")
        assert target.backend is not None and target.backend.pid is not None
        workload.setup(env, target)
        spy_proc = _spy(args, spy, target.backend.pid, raw_path)
        try:
            seconds = workload.sample(env, target, 0).seconds or 0.0
        finally:
            err = _stop_spy(spy_proc)
        workload.cleanup(env, target, 0)
    return seconds, err


def _report(args: argparse.Namespace, seconds: float, raw_path: Path, err: bytes) -> int:
    size = (
        f"{args.blobs} blobs" if args.workload in ("small-ingests", "ctr-ls") else f"{args.mib} MiB"
    )
    print(f"{args.workload} {size}: {seconds:.2f} s under py-spy (rate {args.rate}/s)")
    if not raw_path.exists():
        print(err.decode("utf-8", "replace"), file=sys.stderr)
        return 1
    print(f"raw stacks: {raw_path}\n")
    print(summarise(raw_path.read_text()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
