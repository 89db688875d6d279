"""``contentd content ...`` against a live ``contentd serve``."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from contentd.cli.output import info_from_json
from contentd.proxy import ProxyStore
from tests.cli.conftest import Cli

ROOT = "containerd.io/gc.root=test"


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def ingest(cli: Cli, ref: str, data: bytes, *args: str) -> str:
    result = cli("content", "ingest", ref, *args, input=data).ok()
    return result.text.strip()


# -- ingest / get round trips -----------------------------------------------------------


@pytest.mark.parametrize("size", [0, 1, 5 * 1024 * 1024 + 17])
def test_ingest_then_get_is_byte_identical(cli: Cli, size: int, tmp_path: Path) -> None:
    data = os.urandom(size)
    digest = ingest(cli, f"rt-{size}", data, "--label", ROOT)
    assert digest == sha(data)
    assert cli("content", "get", digest).ok().out == data
    out = tmp_path / "blob"
    assert cli("content", "get", digest, "-o", str(out)).ok().out == b""
    assert out.read_bytes() == data
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".part")]


def test_get_into_a_missing_directory_names_the_path_asked_for(cli: Cli, tmp_path: Path) -> None:
    digest = ingest(cli, "get-nodir", b"x", "--label", ROOT)
    target = tmp_path / "no" / "such" / "blob"
    result = cli("content", "get", digest, "-o", str(target))
    assert result.code == 1
    # not the hidden temp file the blob is written to first
    assert f"{target}: No such file or directory" in result.err and ".part" not in result.err


def test_ingest_from_a_file_with_expectations(cli: Cli, tmp_path: Path) -> None:
    data = os.urandom(300_000)
    src = tmp_path / "src"
    src.write_bytes(data)
    digest = sha(data)
    result = cli(
        "content",
        "ingest",
        "from-file",
        str(src),
        "--expected-size",
        str(len(data)),
        "--expected-digest",
        digest,
        "--label",
        ROOT,
        "--label",
        "x=y",
    ).ok()
    assert result.text == f"{digest}\n"
    info = cli("--output", "json", "content", "info", digest).ok().json()
    assert info["labels"] == {"containerd.io/gc.root": "test", "x": "y"}
    assert info["size"] == len(data)
    # content that already exists: a silent success that reads nothing
    again = cli("content", "ingest", "again", "--expected-digest", digest, input=b"not read")
    assert again.ok().text == f"{digest}\n"


def test_ingest_with_wrong_expectations_fails(cli: Cli) -> None:
    data = b"some bytes"
    wrong = cli("content", "ingest", "wrong", "--expected-digest", sha(b"other"), input=data)
    assert wrong.code == 1
    assert wrong.err.startswith("contentd: failed precondition: ")
    assert "unexpected commit digest" in wrong.err
    short = cli("content", "ingest", "short", "--expected-size", "99", input=data)
    assert short.code == 1 and short.err.startswith("contentd: ")
    cli("content", "abort", "wrong").ok()


def test_ingest_expected_size_0_is_checked_not_taken_for_unset(cli: Cli) -> None:
    """The commit reads a size of 0 as "not checked" (containerd's too): from a pipe, whose
    size is unknown until its end, --expected-size 0 committed whatever came."""
    piped = cli.run_process("content", "ingest", "zero", "--expected-size", "0", input=b"six b\n")
    assert piped.returncode == 1, piped.stderr
    assert piped.stderr.decode() == (
        'contentd: failed precondition: commit failed: "zero" failed size validation: 6 != 0\n'
    )
    assert cli("content", "ls", "-q").ok().lines == []
    empty = cli.run_process("content", "ingest", "empty", "--expected-size", "0", "--label", ROOT)
    assert empty.returncode == 0, empty.stderr
    assert empty.stdout.decode() == sha(b"") + "\n"


def test_ingest_json_output(cli: Cli) -> None:
    data = b"json ingest"
    result = cli("--output", "json", "content", "ingest", "j", "--label", ROOT, input=data).ok()
    assert result.json() == {"ref": "j", "digest": sha(data), "size": len(data)}


def test_ingest_under_a_lease(cli: Cli) -> None:
    lease = cli("leases", "create", "--expires", "0").ok().text.strip()
    data = os.urandom(100)
    ingest(cli, "leased", data, "--lease", lease)
    gc = cli("--output", "json", "gc", "--dry-run").ok().json()
    assert sha(data) not in gc["backend_blobs"]
    assert sha(data) not in gc["removed"].get(cli.namespace, {}).get("content", [])
    cli("leases", "rm", lease).ok()


def _active_offset(store: ProxyStore, ref: str) -> int:
    statuses = [s for s in store.list_statuses() if s.ref == ref]
    return statuses[0].offset if statuses else -1


@pytest.mark.parametrize("source", ["stdin-pipe", "file"])
def test_killed_ingest_resumes_when_rerun(cli: Cli, tmp_path: Path, source: str) -> None:
    data = os.urandom(6 * 1024 * 1024)
    half = len(data) // 2
    ref = f"resume-{source}"
    proc = cli.spawn("content", "ingest", ref, stdin=subprocess.PIPE)
    assert proc.stdin is not None
    with ProxyStore(cli.address, cli.namespace) as store:
        proc.stdin.write(data[:half])
        proc.stdin.flush()
        deadline = time.monotonic() + 30
        while _active_offset(store, ref) < half - (1 << 20) and time.monotonic() < deadline:
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
        proc.stdin.close()
        held = _active_offset(store, ref)
        assert held >= half - (1 << 20), "the ingest did not get far enough before the kill"
        assert held < len(data)
    if source == "file":
        src = tmp_path / "src"
        src.write_bytes(data)
        rerun = cli.run_process("content", "ingest", ref, str(src), "--label", ROOT)
    else:
        rerun = cli.run_process("content", "ingest", ref, "--label", ROOT, input=data)
    assert rerun.returncode == 0, rerun.stderr
    assert rerun.stdout.decode().strip() == sha(data)
    assert cli("content", "get", sha(data)).ok().out == data
    assert cli("content", "active").ok().lines == ["REF\tSIZE\tAGE\t"]


def test_resume_refuses_an_input_shorter_than_the_ingest(cli: Cli) -> None:
    with ProxyStore(cli.address, cli.namespace) as store:
        writer = store.writer("partial")
        writer.write(b"0123456789")
        writer.close()
    result = cli("content", "ingest", "partial", input=b"0123")
    assert result.code == 1
    assert "already holds 10 bytes" in result.err and "ingest --restart partial" in result.err
    cli("content", "abort", "partial").ok()


# -- get ranges ---------------------------------------------------------------------------


def test_get_ranges(cli: Cli) -> None:
    data = bytes(range(256)) * 10
    digest = ingest(cli, "ranges", data, "--label", ROOT)
    assert (
        cli("content", "get", digest, "--offset", "100", "--size", "50").ok().out == data[100:150]
    )
    assert cli("content", "get", digest, "--offset", "2500").ok().out == data[2500:]
    assert cli("content", "get", digest, "--size", "0").ok().out == b""
    assert cli("content", "get", digest, "--offset", str(len(data))).ok().out == b""
    past = cli("content", "get", digest, "--offset", str(len(data) + 1))
    assert past.code == 1
    assert past.err.startswith("contentd: out of range: offset 2561 is past the end")
    bad = cli("content", "get", digest, "--offset", "-1")
    assert bad.code == 2


# -- ls, info, active -------------------------------------------------------------------


def test_ls_table_quiet_json_and_filters(cli: Cli) -> None:
    empty = cli("content", "ls").ok()
    assert empty.lines == ["DIGEST\tSIZE\tAGE\tLABELS"]
    a = ingest(cli, "a", b"a" * 1024, "--label", ROOT)
    b = ingest(cli, "b", b"b" * 256, "--label", ROOT, "--label", "kind=b")
    table = cli("content", "ls").ok().lines
    assert table[0].split("\t")[0] == "DIGEST" and table[0].split() == [
        "DIGEST",
        "SIZE",
        "AGE",
        "LABELS",
    ]
    rows = {line.split("\t")[0]: line.split() for line in table[1:]}
    assert rows[a][1] == "1.024kB" and rows[a][-1] == "containerd.io/gc.root=test"
    assert rows[b][1] == "256B" and rows[b][-1] == "containerd.io/gc.root=test,kind=b"
    assert "second" in " ".join(rows[a][2:-1])
    assert sorted(cli("content", "ls", "-q").ok().lines) == sorted([a, b])
    assert cli("content", "ls", "-q", "labels.kind==b").ok().lines == [b]
    # filters are ORed
    assert sorted(cli("content", "ls", "-q", "labels.kind==b", f"digest=={a}").ok().lines) == (
        sorted([a, b])
    )
    objs = cli("--output", "json", "content", "ls").ok().json()
    assert {o["digest"] for o in objs} == {a, b}
    assert set(objs[0]) == {"digest", "size", "created_at", "updated_at", "labels"}


def test_info_json_round_trips_to_the_servers_info(cli: Cli) -> None:
    digest = ingest(cli, "info", b"info me", "--label", ROOT)
    obj = cli("--output", "json", "content", "info", digest).ok().json()
    with ProxyStore(cli.address, cli.namespace) as store:
        assert info_from_json(obj) == store.info(digest)
    text = cli("content", "info", digest).ok().lines
    assert text[0] == f"digest   {digest}"
    assert text[1] == "size     7 (7B)"
    assert text[-1] == "labels   containerd.io/gc.root=test"


def test_active_lists_ingests_in_progress(cli: Cli) -> None:
    with ProxyStore(cli.address, cli.namespace) as store:
        writer = store.writer("in-progress", total=100)
        writer.write(b"x" * 40)
        try:
            lines = cli("content", "active").ok().lines
            # ctr's layout: "in-progress" is wider than a tab stop, so REF gets two tabs
            assert lines[0] == "REF\t\tSIZE\tAGE\t\t\t"
            assert lines[1].startswith("in-progress\t40B\t")
            assert lines[1].endswith("\t")
            assert [c for c in lines[1].split("\t") if c][:2] == ["in-progress", "40B"]
            objs = cli("--output", "json", "content", "active", "ref==in-progress").json()
            assert objs[0]["ref"] == "in-progress" and objs[0]["offset"] == 40
            assert objs[0]["total"] == 100
            assert cli("content", "active", "ref==other").ok().lines == ["REF\tSIZE\tAGE\t"]
            assert cli("content", "active", "--timeout", "10s").ok().lines[1:] == lines[1:]
        finally:
            writer.close()
    cli("content", "abort", "in-progress").ok()
    assert cli("content", "active").ok().lines == ["REF\tSIZE\tAGE\t"]


# -- rm, label, abort -----------------------------------------------------------------------


def test_rm_prints_deleted_and_skips_missing(cli: Cli) -> None:
    a = ingest(cli, "rm-a", b"rm a", "--label", ROOT)
    missing = sha(b"never stored")
    result = cli("content", "rm", a, missing).ok()  # as ctr content rm: exit 0
    assert result.lines == [a]
    assert result.err == f"contentd: {missing}: not found, nothing removed\n"
    assert cli("content", "ls", "-q").ok().lines == []
    # a bad digest is reported and the others are still deleted; the exit status says so
    b = ingest(cli, "rm-b", b"rm b", "--label", ROOT)
    mixed = cli("content", "rm", "sha256:nope", b)
    assert mixed.code == 1
    assert mixed.lines == [b]
    assert mixed.err.startswith("contentd: invalid argument: ")


def test_label_sets_removes_and_prints(cli: Cli) -> None:
    digest = ingest(cli, "label", b"label me", "--label", ROOT)
    assert cli("content", "label", digest, "a=1", "flag").ok().lines == [
        "a=1,containerd.io/gc.root=test,flag=true"
    ]
    assert cli("content", "label", digest, "a=").ok().lines == [
        "containerd.io/gc.root=test,flag=true"
    ]
    assert cli("content", "label", digest).ok().lines == ["containerd.io/gc.root=test,flag=true"]
    obj = cli("--output", "json", "content", "label", digest, "flag=").ok().json()
    assert obj["labels"] == {"containerd.io/gc.root": "test"}


def test_abort(cli: Cli) -> None:
    with ProxyStore(cli.address, cli.namespace) as store:
        writer = store.writer("to-abort")
        writer.write(b"abc")
        writer.close()
    assert cli("content", "abort", "to-abort").ok().out == b""
    missing = cli("content", "abort", "to-abort")
    assert missing.code == 1 and missing.err.startswith("contentd: not found: ")


def test_global_options_after_the_command(cli: Cli) -> None:
    digest = ingest(cli, "late", b"late options", "--label", ROOT)
    result = cli.raw("content", "ls", "-q", "-a", cli.address, "-n", cli.namespace)
    assert result.ok().lines == [digest]
    objs = cli.raw(
        "-a", cli.address, "content", "info", digest, "--output", "json", "-n", cli.namespace
    )
    assert objs.ok().json()["digest"] == digest


def test_namespace_from_the_environment(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    digest = ingest(cli, "env", b"env namespace", "--label", ROOT)
    monkeypatch.setenv("CONTENTD_ADDRESS", cli.address)
    monkeypatch.delenv("CONTENTD_NAMESPACE", raising=False)
    monkeypatch.setenv("CONTAINERD_NAMESPACE", cli.namespace)
    assert cli.raw("content", "ls", "-q").ok().lines == [digest]
    monkeypatch.setenv("CONTENTD_NAMESPACE", "elsewhere-" + cli.namespace)
    assert cli.raw("content", "ls", "-q").ok().lines == []
    assert cli.raw("-n", cli.namespace, "content", "ls", "-q").ok().lines == [digest]


def test_rm_help_says_a_missing_one_exits_0_as_ctr(cli: Cli) -> None:
    """content rm and images rm treat what is not there alike (warning, exit 0), as ctr
    1.6.20's content rm and images rm do, and their --help says so."""
    for group, ctr in (("content", "`ctr content rm`'s"), ("images", "`ctr images rm`'s")):
        text = " ".join(cli.raw(group, "rm", "--help").text.split())
        assert (
            "is skipped with a warning on stderr and the others still go: "
            f"the exit status is 0, as {ctr}" in text
        ), text
