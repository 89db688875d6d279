"""``contentd leases|namespaces|plugins|gc|version|completion`` against a live daemon."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta

from contentd.cli.output import parse_time
from contentd.proxy import ProxyStore
from tests.cli.conftest import Cli
from tests.daemon.harness import ServeProcess


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


# -- leases ---------------------------------------------------------------------------------


def test_leases_create_ls_rm(cli: Cli) -> None:
    assert cli("leases", "ls").ok().lines == ["ID CREATED AT LABELS "]
    assert cli("leases", "create", "--id", "fixed", "--label", "a=b").ok().lines == ["fixed"]
    random_id = cli("leases", "create", "--expires", "0").ok().text.strip()
    assert random_id and random_id != "fixed"
    assert sorted(cli("leases", "ls", "-q").ok().lines) == sorted(["fixed", random_id])
    objs = {o["id"]: o for o in cli("--output", "json", "leases", "ls").ok().json()}
    expire = parse_time(objs["fixed"]["labels"]["containerd.io/gc.expire"])
    in_a_day = datetime.now(UTC) + timedelta(hours=24)
    assert abs((expire - in_a_day).total_seconds()) < 120
    assert objs["fixed"]["labels"]["a"] == "b"
    assert objs[random_id]["labels"] == {}
    table = cli("leases", "ls").ok().lines
    assert table[0].split() == ["ID", "CREATED", "AT", "LABELS"]
    assert any(line.startswith("fixed ") and "a=b," in line for line in table)
    assert cli("leases", "ls", "-q", "id==fixed").ok().lines == ["fixed"]
    assert cli("leases", "rm", "fixed", random_id, "--sync").ok().lines == ["fixed", random_id]
    assert cli("leases", "ls", "-q").ok().lines == []


def test_lease_rm_sync_collects_what_it_held(cli: Cli) -> None:
    lease = cli("leases", "create").ok().text.strip()
    data = uuid.uuid4().bytes
    cli("content", "ingest", "held", "--lease", lease, input=data).ok()
    assert cli("content", "ls", "-q").ok().lines == [sha(data)]
    cli("leases", "rm", "--sync", lease).ok()
    assert cli("content", "ls", "-q").ok().lines == []


# -- namespaces -----------------------------------------------------------------------------


def test_namespaces_create_label_ls_rm(cli: Cli) -> None:
    ns = cli.namespace
    assert cli("namespaces", "create", ns, "owner=alice", "flag").ok().lines == [ns]
    assert ns in cli("namespaces", "ls", "-q").ok().lines
    rows = [line for line in cli("namespaces", "ls").ok().lines if line.startswith(ns + " ")]
    assert rows and rows[0].split() == [ns, "flag=true,owner=alice"]
    assert cli("ns", "label", ns, "owner=", "team=a").ok().lines == ["flag=true,team=a"]
    objs = {o["name"]: o for o in cli("--output", "json", "namespaces", "ls").ok().json()}
    assert objs[ns]["labels"] == {"flag": "true", "team": "a"}
    again = cli("namespaces", "create", ns)
    assert again.code == 1 and again.err.startswith("contentd: already exists: ")
    # not empty: refused, reported, and the other names still go
    cli("content", "ingest", "keep", "--label", "containerd.io/gc.root=x", input=b"x").ok()
    other = ns + "-other"
    cli("namespaces", "create", other).ok()
    result = cli("namespaces", "rm", ns, other, ns + "-absent")
    assert result.code == 1
    assert result.lines == [other, ns + "-absent"]
    assert result.err.startswith(f"contentd: failed precondition: unable to delete {ns}: ")
    cli("content", "rm", sha(b"x")).ok()
    assert cli("namespaces", "rm", ns).ok().lines == [ns]
    assert ns not in cli("namespaces", "ls", "-q").ok().lines


# -- plugins --------------------------------------------------------------------------------


def test_plugins_ls(cli: Cli) -> None:
    lines = cli("plugins", "ls").ok().lines
    assert lines[0].split() == ["TYPE", "ID", "PLATFORMS", "STATUS"]
    rows = {tuple(line.split()[:2]): line.split() for line in lines[1:]}
    assert rows[("io.containerd.grpc.v1", "gc")][-1] == "ok"
    assert rows[("io.containerd.content.v1", "content")] == [
        "io.containerd.content.v1",
        "content",
        "-",
        "ok",
    ]
    quiet = cli("plugins", "ls", "-q", "type==io.containerd.grpc.v1").ok().lines
    assert "content" in quiet and "gc" in quiet and "sqlite" not in quiet
    detailed = cli("plugins", "ls", "-d", "id==sqlite").ok().text
    assert "Type:" in detailed and "io.containerd.metadata.v1" in detailed
    assert "Exports:" in detailed and "policy" in detailed
    objs = cli("--output", "json", "plugins", "ls", "id==sqlite").ok().json()
    assert objs[0]["exports"]["policy"] == "shared" and objs[0]["status"] == "ok"


# -- gc -------------------------------------------------------------------------------------


def test_gc_dry_run_then_collect(cli: Cli) -> None:
    kept = b"kept " + uuid.uuid4().bytes
    gone = b"gone " + uuid.uuid4().bytes * 100
    cli("content", "ingest", "kept", "--label", "containerd.io/gc.root=x", input=kept).ok()
    cli("content", "ingest", "gone", input=gone).ok()
    lease = cli("leases", "create", "--id", "short", "--expires", "1ns").ok().text.strip()

    dry = cli("--output", "json", "gc", "--dry-run").ok().json()
    assert dry["dry_run"] is True
    mine = dry["removed"][cli.namespace]
    assert mine["content"] == [sha(gone)] and mine["leases"] == [lease]
    assert sha(gone) in dry["backend_blobs"] and sha(kept) not in dry["backend_blobs"]
    assert dry["bytes_freed"] >= len(gone)
    assert sorted(cli("content", "ls", "-q").ok().lines) == sorted([sha(kept), sha(gone)])

    text = cli("gc").ok().lines
    assert text[0].split() == ["NAMESPACE", "KIND", "ID"]
    assert [cli.namespace, "content", sha(gone)] in [line.split() for line in text]
    assert ["-", "blob", sha(gone)] in [line.split() for line in text]
    assert text[-1].startswith("removed ") and "freed" in text[-1]
    assert cli("content", "ls", "-q").ok().lines == [sha(kept)]
    assert cli("leases", "ls", "-q").ok().lines == []
    again = cli("--output", "json", "gc", "--dry-run").ok().json()
    assert cli.namespace not in again["removed"]


# -- version, completion --------------------------------------------------------------------


def test_version_shows_client_and_server(cli: Cli, tmp_path: object) -> None:
    lines = cli("version").ok().lines
    assert lines[0].startswith("contentd 0.1.0")
    assert lines[1].startswith("server 0.1.0") and lines[1].endswith(f"at {cli.address}")
    obj = cli("--output", "json", "version").ok().json()
    assert obj["client"]["version"] == "0.1.0" and obj["server"]["version"] == "0.1.0"
    nobody = Cli("/nonexistent/contentd.sock", "default")("version")
    # the client's version is printed, and the exit status says no daemon answered
    assert nobody.code == 1 and nobody.lines[0].startswith("contentd 0.1.0")
    assert nobody.err.startswith("contentd: no server version: unavailable: cannot connect")
    flag = cli.raw("--version")
    assert flag.code == 0 and flag.text.startswith("contentd 0.1.0")


def test_completion_scripts_come_from_the_parser(cli: Cli) -> None:
    # what they complete: tests/cli/test_completion.py
    bash = cli.raw("completion", "bash").ok().text
    assert "complete -o default -F _contentd contentd" in bash
    zsh = cli.raw("completion", "zsh").ok().text
    assert zsh.startswith("#compdef contentd\n")
    assert "_contentd_cmds+=('contentd content' 'ls list info get ingest" in zsh
    fish = cli.raw("completion", "fish").ok().text
    assert "complete -c contentd" in fish


# -- containerd's own GC is not ours to run -------------------------------------------------


def test_gc_against_a_server_without_the_service(cli_daemon: ServeProcess) -> None:
    # a contentd with the gc plugin disabled answers as containerd does: UNIMPLEMENTED
    from tests.peers.contentd_fixtures import start_contentd

    daemon = start_contentd('version = 2\ndisabled_plugins = ["io.containerd.grpc.v1.gc"]\n')
    try:
        result = Cli(daemon.address, "default")("gc")
        assert result.code == 1
        assert result.err.strip() == (
            f"contentd: not implemented: the server at {daemon.address} has no "
            "contentd.services.gc.v1.GC service; containerd collects garbage on its own schedule"
        )
    finally:
        daemon.close()


def test_json_is_one_document_and_jsonl_one_object_per_line(cli: Cli) -> None:
    for i in range(3):
        cli("content", "ingest", f"j{i}", "--label", "containerd.io/gc.root=x", input=b"%d" % i)
    with ProxyStore(cli.address, cli.namespace) as store:
        stored = {i.digest for i in store.walk()}
    doc = cli.run_process("--output", "json", "content", "ls")
    assert doc.returncode == 0, doc.stderr
    # what `python3 -m json.tool` reads: one document, an array for a list
    tool = subprocess.run(
        [sys.executable, "-m", "json.tool"], input=doc.stdout, capture_output=True, check=False
    )
    assert tool.returncode == 0, tool.stderr
    listed = json.loads(doc.stdout)
    assert isinstance(listed, list) and {o["digest"] for o in listed} == stored
    lines = cli("--output", "jsonl", "content", "ls").ok()
    assert len(lines.lines) == 3 and {o["digest"] for o in lines.json_lines()} == stored
    # an empty list is still a document
    assert cli("--output", "json", "content", "ls", "labels.none==x").ok().json() == []
    for args in (("leases", "ls"), ("namespaces", "ls"), ("plugins", "ls"), ("content", "active")):
        assert isinstance(cli("--output", "json", *args).ok().json(), list), args


def test_every_option_of_every_command_has_help_text() -> None:
    """``--help`` explains each option (export's -o showed a bare, empty entry)."""
    import argparse

    from contentd.cli import build_parser

    missing: list[str] = []

    def visit(parser: argparse.ArgumentParser) -> None:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub in dict.fromkeys(action.choices.values()):
                    visit(sub)
            elif action.option_strings and not action.help:
                missing.append(f"{parser.prog} {'/'.join(action.option_strings)}")

    visit(build_parser())
    assert missing == []
