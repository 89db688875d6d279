"""The benchmark's one command: contentd vs containerd 1.6.20, side by side, in one run.

    .venv/bin/python -m bench.run [--scale quick|full] [--reps N] [--only NAME,...] [--json PATH]

Starts a private containerd 1.6.20 and a ``contentd serve`` (temp dirs under
``var/``, on the repository's filesystem), runs every workload against both,
alternating (A B A B ...), and prints one Markdown table: the median of the
repetitions (and the best), the ratio with > 1 meaning contentd is better (times
are inverted), the issue's goal and whether it is met, and each figure as a
share of the physical limit measured in the same run. Every sample and the
machine are saved as JSON (default ``bench/results/<date>-<scale>.json``).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

if not __package__:  # run as a file: make the repository root importable, not bench/
    _ROOT = Path(__file__).resolve().parent.parent
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _ROOT / "bench"]
    sys.path.insert(0, str(_ROOT))

from bench.env import BenchEnv, Scale
from bench.machine import loadavg, machine_info
from bench.model import Row
from bench.report import errors_text, format_table, write_json
from bench.runner import run_workload
from bench.workloads import all_workloads

__all__ = ["SCALES", "main", "run"]

REPO = Path(__file__).resolve().parent.parent

#: ``full`` is the issue's sizes; ``quick`` takes a few minutes on a 2-core machine.
SCALES = {
    "quick": Scale("quick", mib=256, blobs=1000),
    "full": Scale("full", mib=1024, blobs=10000),
}


#: At full scale these rows take minutes per repetition (10 000 fsynced blobs); one
#: repetition each unless ``--reps-for`` says otherwise.
FULL_SCALE_REPS = {"small-ingests": 1, "durable-small-files": 1}


def _parse_overrides(text: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for item in filter(None, (x.strip() for x in text.split(","))):
        name, sep, value = item.partition("=")
        if not sep:
            raise argparse.ArgumentTypeError(f"expected NAME=N, got {item!r}")
        out[name.strip()] = int(value)
    return out


def _names(text: str) -> list[str]:
    return [x.strip() for x in text.split(",") if x.strip()]


def parser() -> argparse.ArgumentParser:
    names = ", ".join(w.name for w in all_workloads())
    p = argparse.ArgumentParser(
        prog="python -m bench.run",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        epilog=f"workloads: {names}",
    )
    p.add_argument("--scale", choices=sorted(SCALES), default="quick")
    p.add_argument("--reps", type=int, default=3, help="repetitions per target (default 3)")
    p.add_argument("--only", type=_names, default=[], help="comma-separated workload names")
    p.add_argument("--skip", type=_names, default=[], help="comma-separated workload names")
    p.add_argument(
        "--reps-for",
        type=_parse_overrides,
        default={},
        metavar="NAME=N,...",
        help="repetitions for some workloads (e.g. small-ingests=1 at full scale)",
    )
    p.add_argument("--mib", type=int, help="override the big-transfer size (MiB)")
    p.add_argument("--blobs", type=int, help="override the small-blob count")
    p.add_argument("--json", dest="json_path", help="where to save the results")
    p.add_argument(
        "--workdir",
        default=str(REPO / "var"),
        help="parent of the run's temp dir (default: var/ in the repository)",
    )
    p.add_argument("--log-level", default="warn", help="daemons' log level (default warn)")
    p.add_argument(
        "--engine",
        choices=("contentd", "grpcio"),
        help="contentd's gRPC engine ([grpc] engine; default: $CONTENTD_BENCH_ENGINE or the"
        " daemon's default)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    p.add_argument("--verbose", action="store_true", help="tracebacks of failures on stderr")
    return p


def _scale(args: argparse.Namespace) -> Scale:
    base = SCALES[args.scale]
    if args.mib is None and args.blobs is None:
        return base
    return Scale(
        "custom",
        mib=args.mib if args.mib is not None else base.mib,
        blobs=args.blobs if args.blobs is not None else base.blobs,
        proxy_mib=min(base.proxy_mib, args.mib if args.mib is not None else base.proxy_mib),
        pull_mib=min(base.pull_mib, args.mib if args.mib is not None else base.pull_mib),
    )


def _sigterm(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def run(argv: Sequence[str] | None = None) -> tuple[dict[str, Any], str]:
    """Run the benchmark; returns the JSON document and the printed report."""
    args = parser().parse_args(argv)
    if args.reps < 1:
        raise SystemExit("--reps must be at least 1")
    workloads = all_workloads()
    known = {w.name for w in workloads}
    unknown = sorted((set(args.only) | set(args.skip) | set(args.reps_for)) - known)
    if unknown:
        raise SystemExit(f"unknown workload(s): {', '.join(unknown)}; known: {', '.join(known)}")
    if args.only:
        workloads = [w for w in workloads if w.name in args.only]
    workloads = [w for w in workloads if w.name not in args.skip]
    scale = _scale(args)
    reps_for = dict(FULL_SCALE_REPS if scale.name == "full" else {})
    reps_for.update(args.reps_for)

    def log(msg: str) -> None:
        if not args.quiet:
            print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)

    # The client side gets the same malloc tuning the daemon applies to itself, so
    # neither server is measured through a client paying mmap/munmap per 1 MiB message.
    from contentd.daemon.engines import tune_malloc

    client_tuned = tune_malloc()
    from bench.peers import ENGINE_ENV

    if args.engine:
        os.environ[ENGINE_ENV] = args.engine
    Path(args.workdir).mkdir(parents=True, exist_ok=True)
    started = time.time()
    doc: dict[str, Any] = {
        "machine": machine_info(args.workdir),
        "run": {
            "argv": list(argv if argv is not None else sys.argv[1:]),
            "scale": scale.name,
            "mib": scale.mib,
            "blobs": scale.blobs,
            "proxy_mib": scale.proxy_mib,
            "pull_mib": scale.pull_mib,
            "small_size": scale.small_size,
            "reps": args.reps,
            "reps_for": reps_for,
            "client_malloc_tuned": client_tuned,
            "engine": os.environ.get(ENGINE_ENV) or "default",
            "ratio": "contentd relative to containerd; > 1 means contentd is better "
            "(rates: contentd/containerd; times and sizes: containerd/contentd)",
        },
        "rows": [],
    }
    rows: list[Row] = []
    interrupted = False
    old = signal.signal(signal.SIGTERM, _sigterm)
    env = BenchEnv(scale, base_dir=args.workdir, log_level=args.log_level, log=log)
    try:
        log(f"scale {scale.name}: {scale.mib} MiB, {scale.blobs} blobs; work dir {env.base}")
        for workload in workloads:
            reps = reps_for.get(workload.name, args.reps)
            rows.append(run_workload(env, workload, reps, log, verbose=args.verbose))
    except KeyboardInterrupt:
        interrupted = True
        log("interrupted: stopping the daemons")
    finally:
        env.close()
        signal.signal(signal.SIGTERM, old)
    doc["run"]["interrupted"] = interrupted
    doc["run"]["seconds"] = round(time.time() - started, 1)
    doc["machine"]["loadavg_end"] = loadavg()
    doc["rows"] = [r.as_json() for r in rows]
    report = render(doc, rows)
    json_path = args.json_path or str(
        REPO / "bench" / "results" / f"{time.strftime('%Y%m%d-%H%M%S')}-{scale.name}.json"
    )
    write_json(json_path, doc)
    doc["json_path"] = json_path
    if interrupted:
        raise KeyboardInterrupt(report)
    return doc, report


def render(doc: dict[str, Any], rows: list[Row]) -> str:
    m, r = doc["machine"], doc["run"]
    cpu = m["cpu"]
    fs = m["filesystem"]
    fewer = ", ".join(f"{name} {n}" for name, n in sorted(r["reps_for"].items()))
    head = [
        f"contentd vs containerd — scale {r['scale']} ({r['mib']} MiB, {r['blobs']} blobs), "
        f"{r['reps']} reps per target{f' ({fewer})' if fewer else ''}, alternating; "
        f"cells: median (best); ratio > 1 means contentd is better (times and sizes "
        f"inverted); proxy rows: the contentd column is containerd with contentd as its "
        f"content store; S3 rows: the containerd column is contentd on its local store, the "
        f"contentd column contentd on S3 (a private SeaweedFS); cluster rows: containerds "
        f"on two contentd nodes of one cluster (PostgreSQL + SeaweedFS), the columns plain "
        f"containerd and the first node (first-node row), the first node and the second "
        f"pulling the same image after it (second-node row).",
        f"{m['date']}: {cpu['model']}, {cpu['cores']} cores"
        f"{' (SHA-NI)' if cpu['sha_ni'] else ''}, {m['memory']} RAM, kernel {m['kernel']}, "
        f"{fs['type']} on {fs['device']}; Python {m['python']}, grpcio {m['grpcio']}; "
        f"{m['containerd']}; load average {m['loadavg_start']} → {m.get('loadavg_end')}.",
    ]
    out = "\n".join(head) + "\n\n" + format_table(rows) + "\n"
    errors = errors_text(rows)
    if errors:
        out += "\nErrors and notes:\n" + errors + "\n"
    return out


def main(argv: Sequence[str] | None = None) -> int:
    try:
        doc, report = run(argv)
    except KeyboardInterrupt as stop:
        if stop.args and isinstance(stop.args[0], str) and "|" in stop.args[0]:
            print(stop.args[0])
        return 130
    print(report)
    print(f"saved {doc['json_path']}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
