"""Running one workload: set-up per target, then A B A B ... samples, each cleaned up."""

from __future__ import annotations

import os
import traceback
from collections.abc import Callable

import grpc

from bench.env import BenchEnv
from bench.model import Row, Sample, Series
from bench.peers import Target, client_cpu_seconds
from bench.report import format_value
from bench.workloads.base import Workload

__all__ = ["run_workload"]


def _error(err: BaseException) -> str:
    if isinstance(err, grpc.RpcError) and hasattr(err, "code") and hasattr(err, "details"):
        return f"gRPC {err.code().name}: {err.details()}"
    text = str(err).strip() or type(err).__name__
    return f"{type(err).__name__}: {text}"


def run_workload(
    env: BenchEnv,
    workload: Workload,
    reps: int,
    log: Callable[[str], None] = print,
    *,
    verbose: bool = False,
) -> Row:
    """Measure ``workload`` ``reps`` times on each of its targets, alternating targets.

    A failure in set-up or in a sample ends that target's series with the error
    (the other target goes on); the row is returned either way. Ctrl-C propagates.
    """
    if workload.max_reps is not None:
        reps = min(reps, workload.max_reps)
    names = workload.targets
    series = {n: Series(n, workload.higher_is_better) for n in names}
    targets: dict[str, Target | None] = {}
    title = workload.title(env.scale)
    log(f"== {workload.name}: {title}")

    def fail(name: str, what: str, err: BaseException) -> None:
        series[name].error = f"{what}: {_error(err)}"
        log(f"   {name}: {what} failed: {_error(err)}")
        if verbose:
            log(traceback.format_exc())

    for name in names:
        try:
            target = workload.target(env, name)
            workload.setup(env, target)
        except Exception as err:
            fail(name, "set-up", err)
        else:
            targets[name] = target

    def record(name: str, rep: int, result: Sample | Exception) -> None:
        if isinstance(result, Exception):
            target = targets.get(name)
            health = target.health() if target is not None else "running"
            if health != "running":
                result = RuntimeError(f"{_error(result)} -- daemon {health}")
            fail(name, f"rep {rep + 1}", result)
        else:
            series[name].samples.append(result)
            cpu = result.extra.get("daemon_cpu_s")
            more = f"daemon CPU {cpu:.2f} s" if cpu is not None else ""
            client = result.extra.get("client_cpu_s")
            if client is not None:
                more += f"{', ' if more else ''}client CPU {client:.2f} s"
            more = f" ({more})" if more else ""
            log(
                f"   rep {rep + 1}/{reps} {name}: {format_value(result.value, workload.unit)}{more}"
            )

    def cleanup(name: str, rep: int) -> None:
        try:
            workload.cleanup(env, targets[name], rep)
        except Exception as err:
            log(f"   {name}: clean-up after rep {rep + 1} failed: {_error(err)}")

    for rep in range(reps):
        live = {n: t for n, t in targets.items() if not series[n].error}
        if not live:
            break
        os.sync()
        try:
            together = workload.sample_interleaved(env, live, rep)
        except Exception as err:
            together = {name: err for name in live}
        if together is not None:
            for name in live:
                record(name, rep, together.get(name, RuntimeError("no sample")))
                cleanup(name, rep)
            continue
        for name in names:
            if name not in live:
                continue
            os.sync()
            target = live[name]
            pid0 = target.pid if target is not None else None
            cpu0 = target.cpu_seconds() if target is not None else None
            client0 = client_cpu_seconds()
            try:
                result: Sample | Exception = workload.sample(env, target, rep)
            except Exception as err:
                result = err
            client1 = client_cpu_seconds()
            cpu1 = target.cpu_seconds() if target is not None else None
            same = target is not None and target.pid == pid0  # not restarted in between
            if isinstance(result, Sample) and same and cpu0 is not None and cpu1 is not None:
                result.extra.setdefault("daemon_cpu_s", round(cpu1 - cpu0, 3))
            if isinstance(result, Sample) and same:
                # the client's share: lock-step rows wait for it as much as for the daemon
                result.extra.setdefault("client_cpu_s", round(client1 - client0, 3))
            record(name, rep, result)
            cleanup(name, rep)
    for name, target in targets.items():
        try:
            workload.teardown(env, target)
        except Exception as err:
            log(f"   {name}: teardown failed: {_error(err)}")
    subject = series[names[-1]]
    baseline = series[names[0]] if len(names) > 1 else None
    row = Row(
        name=workload.name,
        title=title,
        unit=workload.unit,
        higher_is_better=workload.higher_is_better,
        subject=subject,
        baseline=baseline,
        goal=workload.goal,
        limits=workload.limits,
        section=workload.section,
    )
    row.notes.extend(workload.notes(row))
    return row
