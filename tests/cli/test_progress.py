"""Progress bars: on a terminal, for transfers that last; never off a terminal."""

from __future__ import annotations

import io
import os
import sys
from pathlib import Path

import pytest

from contentd.cli import Streams, main
from contentd.cli.progress import Progress
from tests.cli.conftest import Cli


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_bar_appears_on_a_terminal_once_due() -> None:
    pytest.importorskip("rich")
    stream = Terminal()
    with Progress(stream, "blob", 1000, show_after=0) as progress:
        progress.advance(500)
        assert progress.shown
    text = stream.getvalue()
    assert "blob" in text and "0.5/1.0 kB" in text


def test_no_bar_before_it_is_due_or_when_disabled() -> None:
    stream = Terminal()
    with Progress(stream, "blob", 1000, show_after=3600) as progress:
        progress.advance(1000)
        assert not progress.shown
    with Progress(stream, "blob", 1000, show_after=0, enabled=False) as progress:
        progress.advance(1000)
        assert not progress.shown
    assert stream.getvalue() == ""


def test_without_rich_there_is_no_bar(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "rich", None)
    stream = Terminal()
    with Progress(stream, "blob", 1000, show_after=0) as progress:
        progress.advance(10)
        assert not progress.shown
    assert stream.getvalue() == ""


def test_transfers_off_a_terminal_print_only_the_result(cli: Cli, tmp_path: Path) -> None:
    data = os.urandom(3 * 1024 * 1024)
    result = cli("content", "ingest", "quiet", "--label", "containerd.io/gc.root=x", input=data)
    assert result.ok().err == ""
    digest = result.text.strip()
    got = cli("content", "get", digest, "-o", str(tmp_path / "out")).ok()
    assert got.out == b"" and got.err == ""


def test_transfers_on_a_terminal_show_a_bar(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("rich")
    monkeypatch.setattr("contentd.cli.progress.SHOW_AFTER", 0.0)
    data = os.urandom(3 * 1024 * 1024)
    err = Terminal()
    out = io.BytesIO()
    code = main(
        cli.argv(["content", "ingest", "loud", "--label", "containerd.io/gc.root=x"]),
        streams=Streams(out=out, err=err, inp=io.BytesIO(data)),
    )
    assert code == 0
    assert "loud" in err.getvalue()
    digest = out.getvalue().decode().strip()
    err = Terminal()
    code = main(
        cli.argv(["content", "get", digest, "-o", str(tmp_path / "out")]),
        streams=Streams(out=io.BytesIO(), err=err, inp=io.BytesIO()),
    )
    assert code == 0 and digest[:19] in err.getvalue()
    assert (tmp_path / "out").read_bytes() == data


def test_the_closing_line_counts_one_blob_in_the_singular() -> None:
    """`fetch: 1 blob (192B) downloaded ...`, not `1 blobs`; other counts stay plural."""
    from types import SimpleNamespace

    from contentd.cli.registry import _Display

    ctx = SimpleNamespace(streams=SimpleNamespace(err_is_tty=False))
    shown = _Display(ctx, "fetch")  # type: ignore[arg-type]
    shown.blobs = {"manifest-x": ["done", 192, 192, 0.0, 0], "config-y": ["linked", 0, 134, 0.0, 0]}
    assert shown.summary().startswith("fetch: 1 blob (192B) downloaded in ")
    shown.blobs["layer-z"] = ["done", 10, 10, 0.0, 0]
    assert shown.summary().startswith("fetch: 2 blobs (202B) downloaded in ")
    shown.blobs = {}
    assert shown.summary().startswith("fetch: 0 blobs (0B) downloaded in ")


def test_an_interrupted_fetch_names_what_was_under_way_and_the_lease() -> None:
    """Ctrl-C during a fetch: the blobs under way (their ingests are open in the daemon),
    the lease that keeps them, how to resume and how to give up."""
    from types import SimpleNamespace

    from contentd.cli.registry import _Display
    from contentd.images.fetch import fetch_lease_id

    ref = "127.0.0.1:5000/library/app:1"
    lease = fetch_lease_id(ref)
    ctx = SimpleNamespace(streams=SimpleNamespace(err_is_tty=False))
    shown = _Display(ctx, "fetch")  # type: ignore[arg-type]
    assert shown.interrupted(ref) == [
        f"fetch of {ref} stopped before any blob was stored: fetching again starts over"
    ]
    shown.blobs = {
        "manifest-x": ["done", 192, 192, 0.0, 0],
        "config-y": ["linked", 134, 134, 0.0, 0],
        "layer-z": ["downloading", 0, 10_000_000, 0.0, 0],
    }
    note = shown.interrupted(ref)
    assert note[0] == f"fetch of {ref} stopped: 2 blobs stored, 1 under way (as last reported):"
    assert note[1] == "  layer-z  0B of 10MB"
    assert note[2].startswith(f"the daemon keeps them under lease {lease} until a fetch of {ref}")
    assert note[3] == (
        f"run the same command to resume; `contentd leases rm --sync {lease}` discards them"
    )
    push = _Display(ctx, "push")  # type: ignore[arg-type]
    push.blobs = {"layer-z": ["uploading", 5, 10, 0.0, 0], "config-y": ["exists", 1, 1, 0.0, 0]}
    assert push.interrupted(ref) == [
        f"push of {ref} stopped: 1 blob in the registry, 1 being uploaded (an upload starts over):",
        "  layer-z  5B of 10B",
        "push again to go on: blobs the registry holds are skipped",
    ]


def test_an_interrupted_fetch_in_another_namespace_names_it_in_the_lease_command() -> None:
    """The lease lives in the fetch's namespace: `contentd leases rm --sync LEASE` run as
    printed, without `-n`, answered `not found: lease ...` after `contentd -n n3 fetch`."""
    from types import SimpleNamespace

    from contentd.cli.registry import _Display
    from contentd.images.fetch import fetch_lease_id

    ref = "127.0.0.1:5000/library/app:1"
    lease = fetch_lease_id(ref)
    ctx = SimpleNamespace(streams=SimpleNamespace(err_is_tty=False), namespace="n3")
    shown = _Display(ctx, "fetch")  # type: ignore[arg-type]
    shown.blobs = {"layer-z": ["downloading", 0, 10, 0.0, 0], "config-y": ["done", 1, 1, 0.0, 0]}
    assert shown.interrupted(ref)[-1] == (
        f"run the same command to resume; `contentd -n n3 leases rm --sync {lease}` discards them"
    )


def test_fetch_help_says_what_its_lease_keeps_and_how_to_resume(cli: Cli) -> None:
    text = " ".join(cli.raw("fetch", "--help").text.split())
    assert "contentd.fetch.<hash of REF> (24 h expiry, as containerd's pull lease" in text
    assert "Run the same command again to resume" in text
    assert "`contentd leases rm --sync LEASE` to discard them" in text


def test_the_live_table_counts_a_linked_blob_as_nothing_transferred() -> None:
    """A blob another namespace held: its row says linked, and neither the table's
    'transferred' nor the closing line counts its bytes as downloaded."""
    from types import SimpleNamespace

    from contentd.cli.registry import _Display

    err = io.StringIO()
    ctx = SimpleNamespace(streams=SimpleNamespace(err_is_tty=True, err=err))
    shown = _Display(ctx, "fetch")  # type: ignore[arg-type]

    def msg(status: str, offset: int, resumed: int = 0) -> SimpleNamespace:
        desc = SimpleNamespace(digest="sha256:l", size=30_000_000)
        return SimpleNamespace(
            ref="layer-l", descriptor=desc, status=status, offset=offset, resumed=resumed
        )

    shown.update(msg("linked", 30_000_000))
    shown.finish()
    last = err.getvalue().rstrip("\n").split("\n")
    assert "linked" in last[-2] and last[-1].endswith("transferred 0B"), last
    summary = shown.summary()
    assert summary.startswith("fetch: 0 blobs (0B) downloaded in "), summary
    assert "1 linked from another namespace" in summary


def test_the_live_table_fits_an_80_by_10_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each row fits the width (a wrapped row took two lines, and the redraw moved up one
    per row: an 80-column terminal filled with copies of the table), and there are no more
    rows than the height allows, the blobs under way first."""
    from types import SimpleNamespace

    from contentd.cli.registry import _Display

    monkeypatch.setenv("COLUMNS", "80")
    monkeypatch.setenv("LINES", "10")
    err = io.StringIO()
    ctx = SimpleNamespace(streams=SimpleNamespace(err_is_tty=True, err=err))
    shown = _Display(ctx, "fetch")  # type: ignore[arg-type]

    def msg(i: int, status: str) -> SimpleNamespace:
        desc = SimpleNamespace(digest=f"sha256:{i:064x}", size=400_000_000)
        return SimpleNamespace(
            ref=f"layer-sha256:{i:064x}", descriptor=desc, status=status, offset=0, resumed=0
        )

    for i in range(12):
        shown.update(msg(i, "done"))
    shown.update(msg(99, "downloading"))
    before = len(err.getvalue())
    shown._draw()
    last = err.getvalue()[before:]
    assert last.startswith("\x1b[F\x1b[2K" * 9)
    lines = last.replace("\x1b[F\x1b[2K", "").rstrip("\n").split("\n")
    assert len(lines) == 9 and all(len(line) < 80 for line in lines), lines
    assert lines[0].startswith(f"layer-sha256:{99:064x}"[:33] + "\u2026 downloading ")
    assert lines[-2] == "... and 6 more" and lines[-1].startswith("elapsed ")
