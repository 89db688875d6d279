"""Fixtures for the ``contentd`` command's tests.

* ``cli_daemon`` (session): one ``contentd serve`` with a GC that collects only when
  asked (``QUIET_GC``), so content written without a lease stays until a test runs
  ``contentd gc`` or deletes a lease with ``--sync``.
* ``cli`` (function): a :class:`Cli` bound to that daemon and a fresh namespace; it runs
  the command in-process (``main(argv, streams=...)``), or as a child process with
  :meth:`Cli.spawn` / :meth:`Cli.run_process`.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import pytest

from contentd.cli import Streams, main
from tests.daemon.harness import QUIET_GC, ServeProcess
from tests.peers.contentd_fixtures import start_contentd
from tests.peers.process import clean_env


@dataclass
class Result:
    code: int
    out: bytes
    err: str

    @property
    def text(self) -> str:
        return self.out.decode()

    @property
    def lines(self) -> list[str]:
        return self.text.splitlines()

    def json(self) -> Any:
        """The output as one JSON document (``--output json``)."""
        return json.loads(self.text)

    def json_lines(self) -> list[Any]:
        """One JSON object per line (``--output jsonl``)."""
        return [json.loads(line) for line in self.lines]

    def ok(self) -> Result:
        assert self.code == 0, f"exit {self.code}: {self.err}"
        return self


class Cli:
    """``contentd -a <address> -n <namespace> ...`` in-process or as a child process."""

    def __init__(self, address: str, namespace: str) -> None:
        self.address = address
        self.namespace = namespace

    def argv(self, args: Sequence[str], namespace: str | None = None) -> list[str]:
        return ["-a", self.address, "-n", namespace or self.namespace, *args]

    def __call__(self, *args: str, input: bytes = b"", namespace: str | None = None) -> Result:
        out = io.BytesIO()
        err = io.StringIO()
        code = main(
            self.argv(args, namespace), streams=Streams(out=out, err=err, inp=io.BytesIO(input))
        )
        return Result(code, out.getvalue(), err.getvalue())

    def raw(self, *args: str, input: bytes = b"") -> Result:
        """Without the -a/-n this helper adds."""
        out = io.BytesIO()
        err = io.StringIO()
        code = main(list(args), streams=Streams(out=out, err=err, inp=io.BytesIO(input)))
        return Result(code, out.getvalue(), err.getvalue())

    def process_argv(self, args: Sequence[str]) -> list[str]:
        """The installed ``contentd`` command (the console script next to this Python)."""
        return [*contentd_command(), *self.argv(args)]

    def spawn(self, *args: str, **kwargs: Any) -> subprocess.Popen[bytes]:
        """The command as a child process (no preexec_fn: this process has gRPC threads)."""
        kwargs.setdefault("stdout", subprocess.PIPE)
        kwargs.setdefault("stderr", subprocess.PIPE)
        kwargs.setdefault("env", clean_env())
        return subprocess.Popen(self.process_argv(args), **kwargs)

    def run_process(
        self, *args: str, input: bytes | None = None, timeout: float = 60
    ) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            self.process_argv(args),
            input=input,
            stdin=None if input is not None else subprocess.DEVNULL,
            capture_output=True,
            timeout=timeout,
            env=clean_env(),
            check=False,
        )


def contentd_command() -> list[str]:
    """The ``contentd`` program as installed (``python -m contentd`` without a script)."""
    script = os.path.join(os.path.dirname(sys.executable), "contentd")
    return [script] if os.access(script, os.X_OK) else [sys.executable, "-m", "contentd"]


@pytest.fixture(scope="session")
def cli_daemon() -> Iterator[ServeProcess]:
    daemon = start_contentd(QUIET_GC, name="contentd-cli")
    try:
        yield daemon
    finally:
        if daemon.proc is not None and daemon.proc.poll() is not None:
            sys.stderr.write(daemon.log_text()[-4000:])
        daemon.close()


@pytest.fixture
def cli(cli_daemon: ServeProcess, ctr_namespace: str) -> Cli:
    return Cli(cli_daemon.address, ctr_namespace)


@pytest.fixture
def no_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No CONTENTD_*/CONTAINERD_* variables from the outside."""
    for name in list(os.environ):
        if name.startswith(("CONTENTD_", "CONTAINERD_")):
            monkeypatch.delenv(name)
