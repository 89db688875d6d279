"""What ``contentd serve --log-level debug`` writes: contentd's lines, not the libraries'
(hpack logs every header field it decodes), one line per failed call, and one info
line per garbage collection."""

from __future__ import annotations

import re

from tests.cli.conftest import Cli
from tests.daemon.harness import QUIET_GC
from tests.peers.contentd_fixtures import start_contentd

MISSING = "sha256:" + "0" * 64


def test_debug_log_has_one_line_per_failed_call_and_no_library_noise() -> None:
    with start_contentd(QUIET_GC, args=["--log-level", "debug"], name="contentd-logs") as daemon:
        cli = Cli(daemon.address, "logs")
        before = len(daemon.log_text().splitlines())
        assert cli("content", "info", MISSING).code == 1
        assert cli("content", "ingest", "r", input=b"x").code == 0
        assert cli("gc").code == 0
        daemon.stop()
        lines = daemon.log_text().splitlines()[before:]
    assert not [line for line in lines if "Decoded" in line or "hpack" in line.lower()]
    failed = [line for line in lines if MISSING in line]
    assert len(failed) == 1 and "Content/Info failed" in failed[0] and "level=debug" in failed[0]
    collected = [line for line in lines if 'msg="garbage collected"' in line]
    assert len(collected) == 1, lines
    fields = dict(re.findall(r"(\w+)=(\S+)", collected[0]))
    assert fields["level"] == "info" and fields["trigger"] == "request"
    assert fields["records"] == "1" and fields["blobs"] == "1" and fields["bytes"] == "1"
    assert fields["duration"].endswith("s")


def test_info_level_logs_each_collection() -> None:
    with start_contentd(QUIET_GC, name="contentd-gc-log") as daemon:
        cli = Cli(daemon.address, "gclog")
        cli("content", "ingest", "a", input=b"abc").ok()
        cli("leases", "create", "--id", "l1").ok()
        cli("leases", "rm", "--sync", "l1").ok()
        daemon.stop()
        text = daemon.log_text()
    line = next(line for line in text.splitlines() if 'msg="garbage collected"' in line)
    assert "level=info" in line and "trigger=request" in line and "bytes=3" in line
