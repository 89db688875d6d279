"""One-line errors and exit statuses: 1 for errors, 2 for usage errors."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from contentd.proxy import ProxyStore
from tests.cli.conftest import Cli, contentd_command
from tests.daemon.harness import short_tmpdir
from tests.peers.process import clean_env

MISSING = "sha256:" + "0" * 64


def one_line(err: str) -> str:
    lines = err.splitlines()
    assert len(lines) == 1, err
    return lines[0]


def test_not_found(cli: Cli) -> None:
    for args in (("content", "info", MISSING), ("content", "get", MISSING)):
        result = cli(*args)
        assert result.code == 1
        assert one_line(result.err) == f"contentd: not found: content digest {MISSING}"
        assert result.out == b""
    result = cli("content", "label", MISSING, "a=b")
    assert result.code == 1 and one_line(result.err).startswith("contentd: not found: ")
    result = cli("leases", "rm", "no-such-lease")
    assert result.code == 1 and one_line(result.err).startswith("contentd: not found: ")


@pytest.mark.parametrize(
    ("digest", "message"),
    [
        ("sha256:abc", "invalid checksum digest length"),
        ("nonsense", "invalid checksum digest format"),
        ("md5:" + "0" * 32, "unsupported digest algorithm"),
    ],
)
def test_bad_digest_is_refused_before_connecting(digest: str, message: str, tmp_path: Path) -> None:
    # the address does not exist: the digest is checked first
    cli = Cli(str(tmp_path / "absent.sock"), "default")
    for args, name in (
        (("content", "info", digest), "DIGEST"),
        (("content", "get", digest), "DIGEST"),
        (("content", "label", digest, "a=b"), "DIGEST"),
        (("content", "ingest", "r", "--expected-digest", digest), "--expected-digest"),
    ):
        result = cli(*args)
        assert result.code == 1, args
        # the argument, its value, and what is wrong with it
        assert one_line(result.err) == f"contentd: invalid argument: {name} {digest!r}: {message}"


def test_bad_filter(cli: Cli) -> None:
    for args in (
        ("content", "ls", "labels.=="),
        ("content", "active", "ref=="),
        ("leases", "ls", "id=="),
    ):
        result = cli(*args)
        assert result.code == 1, args
        line = one_line(result.err)
        assert line.startswith("contentd: invalid argument: "), line
        assert "parse error" in line


def test_locked_ref(cli: Cli) -> None:
    with ProxyStore(cli.address, cli.namespace) as store:
        writer = store.writer("locked")
        writer.write(b"held")
        try:
            started = time.monotonic()
            result = cli("content", "ingest", "locked", "--wait", "0", input=b"other")
            assert time.monotonic() - started < 30
            assert result.code == 1
            line = one_line(result.err)
            assert line.startswith("contentd: unavailable: another writer holds locked"), line
            assert "contentd content abort locked" in line and "locked" in line
            # --wait retries, then gives up the same way
            result = cli("content", "ingest", "locked", "--wait", "300ms", input=b"other")
            assert result.code == 1
            assert one_line(result.err).startswith("contentd: unavailable: another writer")
        finally:
            writer.close()
    cli("content", "abort", "locked").ok()


def test_unreachable_socket_names_the_address_and_the_fix(tmp_path: Path) -> None:
    absent = tmp_path / "absent.sock"
    result = Cli(str(absent), "default")("content", "ls")
    assert result.code == 1
    line = one_line(result.err)
    assert line == (
        f"contentd: unavailable: cannot connect to unix:{absent} (no such file or directory); "
        "is the daemon running? Start it with `contentd serve`, or point --address "
        "(or CONTENTD_ADDRESS) at its socket"
    )
    # a socket nobody listens on
    base = short_tmpdir()
    dead = base / "dead.sock"
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(str(dead))
    for args in (("content", "ls"), ("leases", "ls"), ("gc",), ("content", "rm", MISSING)):
        result = Cli(str(dead), "default")(*args)
        assert result.code == 1, args
        line = one_line(result.err)
        assert line.startswith(f"contentd: unavailable: cannot connect to unix:{dead} ("), line
        assert "connection refused" in line and "contentd serve" in line
    # a file that is no socket
    result = Cli(str(tmp_path), "default")("content", "ls")
    assert "(not a socket)" in one_line(result.err)
    # TCP
    result = Cli("127.0.0.1:1", "default")("content", "ls")
    assert one_line(result.err).startswith("contentd: unavailable: cannot connect to 127.0.0.1:1")


def test_default_address_and_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from contentd.cli import main
    from contentd.cli.context import DEFAULT_ADDRESS
    from contentd.config import DEFAULT_ADDRESS as DAEMON_DEFAULT

    assert DEFAULT_ADDRESS == DAEMON_DEFAULT
    monkeypatch.delenv("CONTENTD_ADDRESS", raising=False)
    cli = Cli("unused", "default")
    if not Path(DEFAULT_ADDRESS).exists():
        assert f"unix:{DEFAULT_ADDRESS} (" in cli.raw("content", "ls").err
    monkeypatch.setenv("CONTENTD_ADDRESS", str(tmp_path / "env.sock"))
    assert f"unix:{tmp_path / 'env.sock'} (" in cli.raw("content", "ls").err
    assert main is not None


def test_usage_errors_exit_2(cli: Cli) -> None:
    for args in (
        ("content", "frobnicate"),
        ("content", "get"),
        ("content", "ls", "--bogus"),
        ("leases", "create", "--expires", "soon"),
        ("content", "ingest", "r", "--label", "novalue"),
        ("--output", "yaml", "content", "ls"),
        ("completion", "tcsh"),
    ):
        result = cli(*args)
        assert result.code == 2, args
        assert "usage:" in result.err or "error:" in result.err
    empty_ref = cli("content", "ingest", "")
    assert empty_ref.code == 2
    assert one_line(empty_ref.err) == "contentd: usage: must specify a transaction reference"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("fsck", "--jobs", "0"), "argument --jobs/-j: must be from 1 to 64: 0"),
        (("fsck", "--root", "/nonexistent", "-j", "0"), "must be from 1 to 64: 0"),
        (("fsck", "--jobs", "65"), "must be from 1 to 64: 65"),
        (("fetch", "--concurrency", "0", "r.io/a:b"), "argument --concurrency: must be from 1"),
        (("push", "--concurrency", "-1", "r.io/a:b"), "argument --concurrency: must be from 1"),
    ],
)
def test_a_count_of_zero_is_a_usage_error_not_quietly_one(
    cli: Cli, args: tuple[str, ...], message: str
) -> None:
    # --jobs 0 ran one job offline and the daemon's default online; --concurrency 0 the default
    result = cli(*args)
    assert result.code == 2, result.err
    assert message in result.err


def test_the_cli_bounds_jobs_as_the_daemon_does() -> None:
    from contentd.api.fsck import MAX_JOBS
    from contentd.cli import fsck

    assert fsck.MAX_JOBS == MAX_JOBS


def test_debug_adds_a_traceback(cli: Cli) -> None:
    plain = cli("content", "info", MISSING)
    debug = cli("--debug", "content", "info", MISSING)
    assert debug.code == 1
    assert "Traceback (most recent call last)" in debug.err
    assert debug.err.splitlines()[-1] == plain.err.strip()


def test_help_has_an_example_for_every_command(cli: Cli) -> None:
    from contentd.cli import build_parser
    from contentd.cli.completion import tree

    paths = [node.path for node in tree(build_parser()) if not node.commands]
    assert len(paths) > 20
    for path in paths:
        args = path.split()[1:]
        result = cli.raw(*args, "--help")
        assert result.code == 0, path
        text = result.text
        assert "example:\n  " in text and "contentd" in text.split("example:")[-1], path
    top = cli.raw("--help")
    assert top.code == 0 and "examples:" in top.text


def test_a_group_without_a_command_prints_its_help(cli: Cli) -> None:
    result = cli.raw("content")
    assert result.code == 2 and result.out == b""
    assert "ingest" in result.err and "example:" in result.err


def test_no_command_prints_help_and_exits_2(cli: Cli) -> None:
    proc = subprocess.run(contentd_command(), capture_output=True, timeout=60, check=False)
    assert proc.returncode == 2 and proc.stdout == b""
    assert b"usage: contentd" in proc.stderr and b"commands:" in proc.stderr


def test_broken_pipe_is_quiet(cli: Cli) -> None:
    data = bytes(4 << 20)
    digest = cli("content", "ingest", "pipe", "--label", "containerd.io/gc.root=x", input=data)
    proc = subprocess.Popen(
        [sys.executable, "-m", "contentd", *cli.argv(["content", "get", digest.ok().text.strip()])],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=clean_env(),
    )
    assert proc.stdout is not None and proc.stderr is not None
    assert proc.stdout.read(10) == bytes(10)
    proc.stdout.close()
    err = proc.stderr.read()
    assert proc.wait(60) == 141
    assert err == b""


def test_top_level_table_matches_the_parser() -> None:
    import argparse

    from contentd.cli import TOP_LEVEL, build_parser, command_module

    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert set(action.choices) == set(TOP_LEVEL)
    for name, sub in action.choices.items():
        # the branch built for a command line naming it holds the same command
        partial = build_parser([name])
        branch = next(a for a in partial._actions if isinstance(a, argparse._SubParsersAction))
        assert sub.format_help() == branch.choices[name].format_help(), name
    assert command_module(["-n", "content", "--output", "json", "gc", "--dry-run"]) == "gc"
    assert command_module(["--debug", "content", "ls"]) == "content"
    assert command_module(["-a", "x"]) is None
    assert command_module(["nonsense"]) is None


def test_a_password_with_no_terminal_to_ask_on_is_a_clear_error(cli: Cli) -> None:
    # a new session has no controlling terminal: getpass warned (a Python warning with its
    # file and line), read stdin echoed and sent an empty password
    proc = cli.spawn(
        "fetch",
        "--plain-http",
        "--user",
        "alice",
        "127.0.0.1:9/x/y:1",
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    _, err = proc.communicate(timeout=60)
    text = err.decode()
    assert proc.returncode == 1, text
    assert text.startswith("contentd: invalid argument: --user alice: no password"), text
    assert "Warning" not in text and "getpass" not in text


def test_ctrl_d_at_the_password_prompt_is_a_clear_error(cli: Cli) -> None:
    # Ctrl-D at getpass's prompt raised a bare EOFError: "contentd: unknown: EOFError"
    import os
    import pty

    main, secondary = pty.openpty()
    try:
        # a new session: no /dev/tty, so getpass asks on stdin, the terminal given here
        proc = cli.spawn(
            "fetch",
            "--plain-http",
            "--user",
            "alice",
            "127.0.0.1:9/x/y:1",
            stdin=secondary,
            start_new_session=True,
        )
        os.close(secondary)
        assert proc.stderr is not None
        prompt = b""
        while not prompt.endswith(b": "):  # unbuffered: communicate() reads the fd
            prompt += os.read(proc.stderr.fileno(), 100)
        assert prompt == b"Password for alice@127.0.0.1:9: "
        os.write(main, b"\x04")
        _, err = proc.communicate(timeout=60)
    finally:
        os.close(main)
    text = err.decode()
    assert proc.returncode == 1, text
    # the prompt's line is ended; the error is a line of its own
    assert text == (
        "\ncontentd: invalid argument: --user alice: no password given (end of input at the "
        "prompt); give --user alice:PASSWORD or an entry in ~/.docker/config.json\n"
    ), text


def test_no_password_is_asked_for_when_no_daemon_listens(tmp_path: Path) -> None:
    # as with ctr, the missing daemon is found before the user types a password for nothing
    cli = Cli(str(tmp_path / "absent.sock"), "default")
    proc = cli.spawn(
        "fetch",
        "--user",
        "alice",
        "127.0.0.1:9/x/y:1",
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    _, err = proc.communicate(timeout=60)
    text = err.decode()
    assert proc.returncode == 1, text
    assert one_line(text).startswith("contentd: unavailable: cannot connect to unix:"), text


@pytest.mark.parametrize(
    ("args", "hint"),
    [
        (("images", "pull", "h/r:1"), "`contentd fetch REF`"),
        (("pull", "h/r:1"), "`contentd fetch REF`"),
        (("content", "fetch", "h/r:1"), "`contentd fetch REF`"),
        (("image", "push", "h/r:1"), "`contentd push REF [SOURCE]`"),
        (("images", "export", "a.tar", "app"), "`contentd export -o FILE NAME...`"),
        (("i", "import", "a.tar"), "`contentd import DIR|FILE.tar`"),
    ],
)
def test_a_ctr_command_spelled_otherwise_here_names_contentds(
    args: tuple[str, ...], hint: str, tmp_path: Path
) -> None:
    # a ctr user's `images pull` got only argparse's list of choices
    result = Cli(str(tmp_path / "absent.sock"), "default")(*args)
    assert result.code == 2
    last = result.err.splitlines()[-1]
    assert "invalid choice" in last and f"contentd's command for that is {hint}" in last, last


def test_other_invalid_commands_get_no_hint(tmp_path: Path) -> None:
    result = Cli(str(tmp_path / "absent.sock"), "default")("content", "nope")
    assert result.code == 2
    assert "command for that" not in result.err


@pytest.mark.parametrize(
    "typed", ["a" * 64, "A" * 64, f" sha256:{'a' * 64}", f"SHA256:{'a' * 64}\n"]
)
def test_a_digest_off_by_its_prefix_or_case_says_what_was_meant(typed: str, tmp_path: Path) -> None:
    # the hex alone (as `sha256sum` prints it) was only "invalid checksum digest format"
    result = Cli(str(tmp_path / "absent.sock"), "default")("content", "get", typed)
    assert result.code == 1
    assert one_line(result.err).endswith(f"; did you mean sha256:{'a' * 64}?"), result.err


def test_a_socket_that_answers_http1_is_named_as_not_grpc() -> None:
    # docker's socket (say) answers the HTTP/2 preface with HTTP/1.1 400: this was
    # "connection error: frame of 4740180 bytes" (the bytes "HTT" read as a frame length)
    import threading

    base = short_tmpdir()
    path = base / "http1.sock"
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(path))
    listener.listen()

    def answer() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.recv(4096)
            conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
            conn.recv(4096)  # until the client closes

    server = threading.Thread(target=answer, daemon=True)
    server.start()
    try:
        result = Cli(str(path), "default")("content", "ls")
    finally:
        server.join(30)
        listener.close()
    assert result.code == 1
    assert one_line(result.err) == (
        f"contentd: unavailable: connection error: unix:{path} answered "
        "'HTTP/1.1 400 Bad Request', HTTP/1 and not gRPC: it is not a containerd or contentd "
        "socket"
    )


def test_a_local_file_s_error_is_named_by_its_kind(cli: Cli, tmp_path: Path) -> None:
    """Errors of files on this machine read like every other error: their kind first."""
    missing = tmp_path / "nosuchdir"
    result = cli("import", str(missing))
    assert result.code == 1
    assert one_line(result.err) == f"contentd: not found: {missing}: No such file or directory"
    private = tmp_path / "private.tar"
    private.write_bytes(b"")
    private.chmod(0)
    result = cli("import", str(private))
    if os.geteuid() != 0:  # root reads it anyway
        assert result.code == 1
        assert one_line(result.err).startswith("contentd: permission denied: ")
