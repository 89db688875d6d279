"""``contentd events``: a live stream, one line per event, until Ctrl-C (exit 0)."""

from __future__ import annotations

import json
import select
import signal
import subprocess
import time

from tests.cli.conftest import Cli


# unbuffered pipes (bufsize=0): select() then sees every byte not yet read
def _read_line(proc: subprocess.Popen[bytes], timeout: float = 30) -> bytes:
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], 0.1)
        if ready:
            return proc.stdout.readline()
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else b""
    raise AssertionError("no event line in time")


def _wait_subscribed(cli: Cli, proc: subprocess.Popen[bytes], marker: str) -> bytes:
    """Make namespace events until the subscriber prints one (it may start late)."""
    for i in range(200):
        name = f"{cli.namespace}-{marker}-{i}"
        cli("namespaces", "create", name).ok()
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 0.1)
        if ready:
            return proc.stdout.readline()
    raise AssertionError("the subscriber never printed an event")


def test_events_stream_until_ctrl_c(cli: Cli) -> None:
    proc = cli.spawn("events", f"namespace~=^{cli.namespace}", bufsize=0)
    try:
        first = _wait_subscribed(cli, proc, "warmup").decode()
        stamp, namespace, topic, payload = first.rstrip("\n").split(" ", 3)
        # published in the caller's namespace
        assert namespace == cli.namespace and topic == "/namespaces/create"
        assert stamp.endswith("Z") and json.loads(payload)["name"].startswith(namespace + "-")
        # content events of this test's namespace
        digest = cli("content", "ingest", "ev", input=b"event").ok().text.strip()
        line = _read_line(proc).decode()
        while "/content/" not in line:
            line = _read_line(proc).decode()
        _, namespace, topic, payload = line.rstrip("\n").split(" ", 3)
        assert namespace == cli.namespace
        assert topic == "/content/create"
        assert json.loads(payload)["digest"] == digest
        cli("content", "rm", digest).ok()
        line = _read_line(proc).decode()
        assert line.split(" ")[2] == "/content/delete" and digest in line
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 0
        assert proc.stderr is not None and b"Traceback" not in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def test_events_json(cli: Cli) -> None:
    proc = cli.spawn("--output", "json", "events", f"namespace~=^{cli.namespace}", bufsize=0)
    try:
        obj = json.loads(_wait_subscribed(cli, proc, "json"))
        assert set(obj) == {"timestamp", "namespace", "topic", "event"}
        assert obj["topic"] == "/namespaces/create" and obj["namespace"] == cli.namespace
        assert obj["event"]["name"].startswith(cli.namespace + "-json-")
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
