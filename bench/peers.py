"""The daemons a benchmark run drives, and what it measures them with.

* :class:`ContentdDaemon` -- ``python -m contentd serve`` as a child process with
  its root, state and socket in a temp dir.
* :func:`bench_containerd` -- the harness's private containerd 1.6.20
  (:class:`tests.peers.ContainerdPeer`), optionally with a contentd as its
  content proxy plugin.
* :class:`Target` -- one server under test: its socket, its pid, ``ctr`` against it.
* :class:`RssSampler` -- peak ``VmRSS`` of a process while a block runs.

Both daemons get the same GC schedule: no start-up collection and no
mutation-triggered ones (``tests/peers`` configures containerd so, and the
contentd config written here says the same); the benchmark collects
explicitly, between samples, outside the timed part.
"""

from __future__ import annotations

import contextlib
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from bench.client import ContentClient
from tests.peers import ContainerdPeer
from tests.peers.process import ChildProcess, PeerError, clean_env, tail
from tests.peers.tomlwrite import dumps

__all__ = [
    "ENGINE_ENV",
    "GC_QUIET",
    "ContentdDaemon",
    "CtrResult",
    "RssSampler",
    "Target",
    "bench_containerd",
    "client_cpu_seconds",
    "proc_cpu_seconds",
    "proc_status_kib",
]

#: Environment variable naming contentd's ``[grpc] engine`` for the benchmark's daemons
#: (``contentd`` or ``grpcio``; unset: contentd's default). ``bench.run --engine`` sets it.
ENGINE_ENV = "CONTENTD_BENCH_ENGINE"

#: The GC scheduler settings both daemons run with (containerd's keys).
GC_QUIET: Mapping[str, Any] = {
    "io.containerd.gc.v1.scheduler": {"startup_delay": "1h", "mutation_threshold": 1_000_000_000}
}


class ContentdDaemon(ChildProcess):
    """A ``contentd serve`` child process; ``start()`` waits until its socket answers."""

    def __init__(
        self,
        base_dir: str | Path,
        *,
        name: str = "contentd",
        log_level: str = "warn",
        policy: str | None = None,
        python: str = sys.executable,
        env: Mapping[str, str] | None = None,
        plugins: Mapping[str, Any] | None = None,
        start_timeout: float = 30.0,
        stop_timeout: float = 10.0,
    ) -> None:
        self.base = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=base_dir))
        self._plugins = dict(plugins or {})
        self.name = name
        self._log_level = log_level
        self._policy = policy
        self._python = python
        self._env = dict(env or {})
        self._start_timeout = start_timeout
        self._stop_timeout = stop_timeout
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def root(self) -> Path:
        return self.base / "root"

    @property
    def state(self) -> Path:
        return self.base / "state"

    @property
    def address(self) -> str:
        return str(self.state / "contentd.sock")

    @property
    def config_path(self) -> Path:
        return self.base / "config.toml"

    @property
    def log_path(self) -> Path:
        return self.base / "contentd.log"

    def argv(self) -> list[str]:
        argv = [self._python, "-m", "contentd", "serve"]
        argv += [
            "--root",
            str(self.root),
            "--state",
            str(self.state),
            "--address",
            self.address,
            "--config",
            str(self.config_path),
            "--log-level",
            self._log_level,
        ]
        if self._policy:
            argv += ["--content-sharing-policy", self._policy]
        return argv

    def config_text(self) -> str:
        # containerd never re-reads its blobs: contentd's scrubber stays off here too
        scrub_off = {"io.containerd.grpc.v1.fsck": {"scrub_interval": "0"}}
        doc: dict[str, Any] = {
            "version": 2,
            "plugins": {**GC_QUIET, **scrub_off, **self._plugins},
        }
        engine = os.environ.get(ENGINE_ENV)
        if engine:  # [grpc] engine: compare the native HTTP/2 engine with grpcio's server
            doc["grpc"] = {"engine": engine}
        return dumps(doc)

    def start(self) -> ContentdDaemon:
        for d in (self.root, self.state):
            d.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(self.config_text())
        env = clean_env(self._env)
        if "GRPC_ENABLE_FORK_SUPPORT" not in self._env:
            env.pop("GRPC_ENABLE_FORK_SUPPORT", None)  # set for the benchmark's process only
        self._spawn(self.argv(), env=env, cwd=self.base)
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self) -> None:
        assert self._proc is not None
        deadline = time.monotonic() + self._start_timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise PeerError(
                    f"{self.name} exited with {self._proc.returncode} during start-up; "
                    f"log tail ({self.log_path}):\n{tail(self.log_path)}"
                )
            if os.path.exists(self.address):
                with ContentClient(self.address, timeout=5.0) as client:
                    try:
                        client.wait_ready(timeout=max(0.1, min(5.0, deadline - time.monotonic())))
                        client.count(namespace="default")
                        return
                    except Exception:
                        pass
            time.sleep(0.05)
        raise PeerError(
            f"{self.name} did not answer on {self.address} within {self._start_timeout}s; "
            f"log tail ({self.log_path}):\n{tail(self.log_path)}"
        )

    def health(self) -> str:
        """``running``, or how the process ended and the tail of its log."""
        if self._proc is None:
            return "not started"
        code = self._proc.poll()
        if code is None:
            return "running"
        return f"exited with {code}; log tail ({self.log_path}):\n{tail(self.log_path, 30)}"

    def close(self) -> None:
        import shutil

        self.stop()
        shutil.rmtree(self.base, ignore_errors=True)


def bench_containerd(
    base_dir: str | Path, *, proxy_address: str | None = None, log_level: str = "warn"
) -> ContainerdPeer:
    """A private containerd (not started); with ``proxy_address``, contentd is its content store."""
    extra: dict[str, Any] = {"plugins": dict(GC_QUIET)}
    if proxy_address is not None:
        extra["disabled_plugins"] = ["io.containerd.content.v1.content"]
        extra["proxy_plugins"] = {"contentd": {"type": "content", "address": proxy_address}}
    return ContainerdPeer(extra, base_dir=base_dir, log_level=log_level)


@dataclass(frozen=True)
class CtrResult:
    seconds: float
    stdout: bytes


@dataclass
class Target:
    """One server under test, as the workloads see it."""

    name: str
    address: str
    pid_fn: Any = field(repr=False)  # () -> int | None
    ctr_binary: str = "ctr"
    snapshotter: str = "overlayfs"
    #: for ``containerd+contentd``: the contentd behind the containerd
    backend: Target | None = None
    #: the backend's namespace for the containerd's header-less calls (contentd's default)
    pinned_namespace: str = "containerd-proxy"
    #: stops and starts the daemon again on the same directories (a fresh process)
    restart_fn: Any = field(default=None, repr=False)
    #: () -> str: "running", or how the daemon ended (for error messages)
    health_fn: Any = field(default=None, repr=False)
    client: ContentClient = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.client = ContentClient(self.address)

    @property
    def pid(self) -> int | None:
        pid: int | None = self.pid_fn()
        return pid

    def ctr(
        self,
        *args: str,
        namespace: str = "default",
        stdin: IO[bytes] | None = None,
        capture: bool = True,
        timeout: float = 600.0,
    ) -> CtrResult:
        """Run ``ctr --address <sock> -n <namespace> *args``; wall time of the whole command.

        A non-zero exit raises ``RuntimeError`` with ctr's stderr; a timeout kills ctr.
        """
        argv = [self.ctr_binary, "--address", self.address, "-n", namespace, *args]
        t0 = time.perf_counter()
        p = subprocess.run(
            argv,
            stdin=stdin if stdin is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE if capture else subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            timeout=timeout,
            env=clean_env({"CONTAINERD_SNAPSHOTTER": self.snapshotter}),
            check=False,
        )
        seconds = time.perf_counter() - t0
        if p.returncode != 0:
            err = p.stderr.decode("utf-8", "replace").strip()[-2000:]
            raise RuntimeError(f"ctr {' '.join(args[:3])} against {self.name}: {err}")
        return CtrResult(seconds, p.stdout if capture else b"")

    def health(self) -> str:
        """``running`` when every daemon behind this target runs; else what happened."""
        parts = []
        for target in (self, self.backend):
            if target is not None and target.health_fn is not None:
                state = str(target.health_fn())
                if state != "running":
                    parts.append(f"{target.name}: {state}")
        return "; ".join(parts) or "running"

    def cpu_seconds(self) -> float | None:
        """CPU time (user + system) the daemon(s) behind this target have used so far."""
        total = 0.0
        for target in (self, self.backend):
            pid = target.pid if target is not None else None
            if target is not None and pid is None:
                return None
            if pid is not None:
                try:
                    total += proc_cpu_seconds(pid)
                except OSError:
                    return None
        return total

    def restart(self) -> None:
        """A fresh daemon process on the same store (``VmHWM`` starts over)."""
        if self.restart_fn is None:
            raise RuntimeError(f"{self.name} cannot be restarted")
        self.client.close()
        self.restart_fn()
        self.client = ContentClient(self.address)

    def close(self) -> None:
        self.client.close()


def client_cpu_seconds() -> float:
    """User + system CPU seconds of the benchmark's own process (all its threads: the
    gRPC client the raw rows drive) and of its children that have ended (each ``ctr``).
    A daemon counts only once it has been stopped: compare across a restart not at all."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    ended = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + ended.ru_utime + ended.ru_stime


def proc_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of ``pid`` (all its threads) from ``/proc/<pid>/stat``."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        fields = f.read().rsplit(b")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_status_kib(pid: int, keys: Sequence[str] = ("VmRSS", "VmHWM")) -> dict[str, int]:
    """Selected ``kB`` fields of ``/proc/<pid>/status``."""
    out: dict[str, int] = {}
    with open(f"/proc/{pid}/status", "rb") as f:
        for line in f:
            name, _, rest = line.partition(b":")
            key = name.decode()
            if key in keys:
                out[key] = int(rest.split()[0])
    return out


class RssSampler:
    """Samples ``VmRSS`` of ``pid`` every ``interval`` seconds while the block runs.

    ``peak_kib`` is the largest sample (taken at least once before and after the
    block); ``before_kib`` the first; ``hwm_kib`` the process's ``VmHWM`` at the end;
    ``anon_peak_kib`` the largest ``RssAnon`` (heap, not file-backed pages).
    """

    def __init__(self, pid: int, interval: float = 0.005) -> None:
        self.pid = pid
        self.interval = interval
        self.before_kib = 0
        self.peak_kib = 0
        self.hwm_kib = 0
        self.anon_peak_kib = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def _sample(self) -> int:
        status = proc_status_kib(self.pid, ("VmRSS", "RssAnon"))
        rss = status.get("VmRSS", 0)
        self.samples += 1
        self.peak_kib = max(self.peak_kib, rss)
        self.anon_peak_kib = max(self.anon_peak_kib, status.get("RssAnon", 0))
        return rss

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            with contextlib.suppress(OSError):
                self._sample()

    def __enter__(self) -> RssSampler:
        self.before_kib = self._sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        with contextlib.suppress(OSError):
            self._sample()
            self.hwm_kib = proc_status_kib(self.pid, ("VmHWM",)).get("VmHWM", 0)


@contextlib.contextmanager
def started(peer: Any) -> Iterator[Any]:
    """``peer.start()`` now and ``peer.close()`` at the end, whatever happens."""
    try:
        peer.start()
        yield peer
    finally:
        peer.close()
