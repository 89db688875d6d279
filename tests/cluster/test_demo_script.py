"""``scripts/cluster-demo`` as a newcomer runs it: a busy port fails at once, starting nothing."""

from __future__ import annotations

import shutil
import socket
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "cluster-demo"


def test_up_with_the_s3_port_taken_fails_at_once_and_starts_nothing(tmp_path: Path) -> None:
    """With 127.0.0.1:8333 held by another process, `up` started PostgreSQL and weed (whose
    S3 could not bind), then polled for '90 s' counted in tries of a boto3 check that take
    most of a second each: about 15 minutes before it said anything."""
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # past TIME_WAIT leftovers
    try:
        listener.bind(("127.0.0.1", 8333))
    except OSError:
        listener.close()
        pytest.skip("127.0.0.1:8333 is in use here")
    listener.listen()
    # a copy of the script in its own tree, so nothing lands in this checkout's var/;
    # its bootstrap fails loudly, so reaching it (before the port check) fails fast too
    (tmp_path / "scripts").mkdir()
    shutil.copy(SCRIPT, tmp_path / "scripts" / "cluster-demo")
    (tmp_path / "scripts" / "bootstrap").write_text("#!/bin/sh\necho bootstrap ran >&2\nexit 3\n")
    (tmp_path / "scripts" / "bootstrap").chmod(0o755)
    try:
        done = subprocess.run(
            ["bash", str(tmp_path / "scripts" / "cluster-demo"), "up"],
            capture_output=True,
            text=True,
            timeout=30,
        )
    finally:
        listener.close()
    assert done.returncode == 1, done.stderr
    assert "127.0.0.1:8333" in done.stderr and "in use" in done.stderr
    assert not (tmp_path / "var").exists()  # no PostgreSQL, no weed, no directory
