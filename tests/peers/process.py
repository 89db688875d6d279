"""Process plumbing shared by the real-peer harnesses.

Every wait here is bounded; every child is started so that it dies with the process
that started it (``PR_SET_PDEATHSIG``), and every harness stops its children with
SIGTERM, a bounded wait, then SIGKILL.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Self


class PeerError(RuntimeError):
    """A real peer (containerd, registry, skopeo) could not be started or driven."""


class CommandError(subprocess.CalledProcessError):
    """A peer command exited non-zero; unlike its base class, its message shows stderr."""

    def __str__(self) -> str:
        err = self.stderr if isinstance(self.stderr, bytes) else b""
        text = err.decode("utf-8", "replace").strip()
        if len(text) > 4000:
            text = "..." + text[-4000:]
        return f"{super().__str__()}\nstderr:\n{text}"


_SETPRIV = shutil.which("setpriv")


def with_parent_death(argv: Sequence[str]) -> list[str]:
    """``argv`` wrapped so the kernel SIGTERMs it when this process goes away.

    util-linux's ``setpriv --pdeathsig`` sets it in the child without running any
    Python after fork, which covers a killed pytest whose teardown never runs.
    """
    if _SETPRIV is None:
        return list(argv)
    return [_SETPRIV, "--pdeathsig", "TERM", "--", *argv]


def stop_process(proc: subprocess.Popen[bytes], timeout: float = 10.0) -> int | None:
    """Stop ``proc``: SIGTERM, wait up to ``timeout``, then SIGKILL and wait again.

    Returns the exit status (None only if even SIGKILL did not reap it in time).
    """
    if proc.poll() is not None:
        return proc.returncode
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        pass
    with contextlib.suppress(ProcessLookupError):
        proc.kill()
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        return None


class ChildProcess:
    """What every peer harness does with its one long-running child: start it (dying
    with this process, output appended to :attr:`log_path`), report on it, stop it.

    A subclass sets :attr:`log_path` and ``_stop_timeout`` and provides ``start()``
    (which calls :meth:`_spawn` and waits until the child answers) and ``close()``.
    """

    _stop_timeout: float = 10.0
    _proc: subprocess.Popen[bytes] | None = None

    @property
    def log_path(self) -> Path:
        raise NotImplementedError

    def start(self) -> Self:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def _spawn(
        self, argv: Sequence[str], *, env: Mapping[str, str] | None = None, cwd: Path | None = None
    ) -> subprocess.Popen[bytes]:
        with self.log_path.open("ab") as log:
            self._proc = subprocess.Popen(
                with_parent_death(argv),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=dict(env) if env is not None else clean_env(),
                cwd=cwd,
            )
        return self._proc

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def stop(self) -> int | None:
        """SIGTERM, a bounded wait, then SIGKILL; the exit status (None if never started)."""
        if self._proc is None:
            return None
        proc, self._proc = self._proc, None
        return stop_process(proc, self._stop_timeout)

    def log_tail(self, lines: int = 40) -> str:
        return tail(self.log_path, lines)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def tail(path: Path, lines: int = 40) -> str:
    """The last ``lines`` lines of a log file (empty if it does not exist)."""
    try:
        data = path.read_bytes()
    except OSError:
        return ""
    return "\n".join(data.decode("utf-8", "replace").splitlines()[-lines:])


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The current environment without proxy settings (peers only talk to loopback)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k.lower() not in {"http_proxy", "https_proxy", "all_proxy", "no_proxy"}
    }
    if extra:
        env.update(extra)
    return env


def run(
    argv: Sequence[str],
    *,
    input: bytes | None = None,
    check: bool = True,
    timeout: float = 60.0,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[bytes]:
    """Run a command to completion with a bounded wait, capturing stdout and stderr.

    On timeout the child is killed and ``subprocess.TimeoutExpired`` propagates; with
    ``check`` a non-zero exit raises :class:`CommandError`.
    """
    proc = subprocess.run(
        list(argv),
        input=input,
        stdin=None if input is not None else subprocess.DEVNULL,
        capture_output=True,
        timeout=timeout,
        env=clean_env(env),
        cwd=cwd,
        check=False,
    )
    if check and proc.returncode != 0:
        raise CommandError(proc.returncode, proc.args, proc.stdout, proc.stderr)
    return proc


def unmount_under(base: Path) -> None:
    """Lazily unmount anything still mounted at or below ``base`` (deepest first)."""
    prefix = str(base.resolve())
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return
    points = []
    for line in lines:
        fields = line.split()
        if len(fields) > 4:
            point = fields[4].encode().decode("unicode_escape")
            if point == prefix or point.startswith(prefix + "/"):
                points.append(point)
    for point in sorted(points, key=len, reverse=True):
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            subprocess.run(["umount", "-l", point], capture_output=True, timeout=10, check=False)
