"""What a new user meets in the first hour: the installed ``contentd`` program against a
live ``contentd serve`` (options anywhere, labels on stored blobs, resuming the right
file, Ctrl-C, health checks, label limits, the pinned namespace, JSON output)."""

from __future__ import annotations

import hashlib
import json
import os
import pty
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from contentd.proxy import ProxyStore
from tests.cli.conftest import Cli

ROOT = "containerd.io/gc.root=test"
MiB = 1 << 20


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def run(cli: Cli, *args: str, input: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return cli.run_process(*args, input=input)


def stored(cli: Cli) -> set[str]:
    with ProxyStore(cli.address, cli.namespace) as store:
        return {info.digest for info in store.walk()}


def active(cli: Cli) -> dict[str, int]:
    with ProxyStore(cli.address, cli.namespace) as store:
        return {s.ref: s.offset for s in store.list_statuses()}


def wait_for(predicate: object, timeout: float = 30) -> None:
    assert callable(predicate)
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


# -- 1. options anywhere -------------------------------------------------------------------


def test_options_between_and_after_positionals(cli: Cli, tmp_path: Path) -> None:
    data = os.urandom(1000)
    path = tmp_path / "f"
    path.write_bytes(data)
    # the README's synopsis: ingest REF [--expected-size N] [--label k=v]... [FILE|-]
    proc = run(
        cli, "content", "ingest", "r1", "--expected-digest", sha(data), "--label", ROOT, str(path)
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.decode().strip() == sha(data)
    proc = run(cli, "content", "ingest", "r2", "--expected-size", "1000", str(path), "-n", "x")
    assert proc.returncode == 0, proc.stderr
    # ls FILTER -q, label DIGEST k=v --output json, info DIGEST --output jsonl
    proc = run(cli, "content", "ls", 'labels."containerd.io/gc.root"==test', "-q")
    assert proc.stdout.decode().split() == [sha(data)]
    proc = run(cli, "content", "label", sha(data), "a=b", "--output", "json")
    assert json.loads(proc.stdout)["labels"]["a"] == "b"
    # leases and namespaces: the id/name before and after options
    proc = run(cli, "leases", "create", "--id", f"{cli.namespace}-l", "--expires", "1h")
    assert proc.returncode == 0, proc.stderr
    proc = run(cli, "leases", "rm", f"{cli.namespace}-l", "--sync")
    assert proc.returncode == 0, proc.stderr
    name = f"{cli.namespace}-ns"
    proc = run(cli, "namespaces", "create", name, "--output", "json", "k=v")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {"name": name, "labels": {"k": "v"}}
    assert run(cli, "namespaces", "rm", name, "--output", "json").returncode == 0


# -- 2. labels of a blob already stored ----------------------------------------------------


def test_labels_are_applied_when_the_blob_exists(cli: Cli, tmp_path: Path) -> None:
    data = b"stored once " * 100
    path = tmp_path / "f"
    path.write_bytes(data)
    assert run(cli, "content", "ingest", "first", str(path), "--label", ROOT).returncode == 0
    # uploaded again under another ref: the commit finds the blob there
    proc = run(cli, "content", "ingest", "--label", "keep=me", "ref2", str(path))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.decode().strip() == sha(data)
    assert b"already stored; labels set: keep=me" in proc.stderr
    # with the digest given, nothing is sent at all
    proc = run(
        cli, "content", "ingest", "ref3", "--expected-digest", sha(data), "--label", "k2=v2",
        str(path),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert b"labels set: k2=v2" in proc.stderr
    with ProxyStore(cli.address, cli.namespace) as store:
        labels = store.info(sha(data)).labels
    assert labels == {"containerd.io/gc.root": "test", "keep": "me", "k2": "v2"}


# -- 3. resuming the same input only ----------------------------------------------------------


def _half_ingest(cli: Cli, ref: str, data: bytes) -> None:
    with ProxyStore(cli.address, cli.namespace) as store:
        writer = store.writer(ref, total=len(data))
        writer.write(data[: len(data) // 2])
        writer.close()


def test_resume_refuses_another_input_under_the_same_ref(cli: Cli, tmp_path: Path) -> None:
    a, b = os.urandom(3 * MiB), os.urandom(3 * MiB)
    (tmp_path / "a.bin").write_bytes(a)
    (tmp_path / "b.bin").write_bytes(b)
    _half_ingest(cli, "mixref", a)
    proc = run(cli, "content", "ingest", "mixref", str(tmp_path / "b.bin"), "--label", ROOT)
    assert proc.returncode == 1
    err = proc.stderr.decode()
    assert "not the input's first" in err and "--restart" in err, err
    assert sha(b) not in stored(cli) and active(cli)["mixref"] == len(a) // 2
    # the right file resumes, and says so
    proc = run(cli, "content", "ingest", "mixref", str(tmp_path / "a.bin"), "--label", ROOT)
    assert proc.returncode == 0, proc.stderr
    assert f"resuming mixref at {len(a) // 2} of {len(a)} bytes".encode() in proc.stderr
    assert proc.stdout.decode().strip() == sha(a)
    assert sha(a) in stored(cli)


def test_restart_discards_what_the_ref_held(cli: Cli, tmp_path: Path) -> None:
    a, b = os.urandom(2 * MiB), os.urandom(2 * MiB)
    (tmp_path / "b.bin").write_bytes(b)
    _half_ingest(cli, "again", a)
    proc = run(cli, "content", "ingest", "--restart", "again", str(tmp_path / "b.bin"))
    assert proc.returncode == 0, proc.stderr
    assert f"discarded {len(a) // 2} bytes of a previous ingest of again".encode() in proc.stderr
    assert proc.stdout.decode().strip() == sha(b)


def test_resume_from_a_pipe_checks_the_prefix_too(cli: Cli) -> None:
    a, b = os.urandom(2 * MiB), os.urandom(2 * MiB)
    _half_ingest(cli, "piped", a)
    proc = run(cli, "content", "ingest", "piped", "-", input=b)
    assert proc.returncode == 1 and b"--restart" in proc.stderr
    proc = run(cli, "content", "ingest", "piped", "--label", ROOT, input=a)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.decode().strip() == sha(a)


# -- 4. Ctrl-C -------------------------------------------------------------------------------


@pytest.fixture
def feeder(cli: Cli) -> Iterator[list[subprocess.Popen[bytes]]]:
    procs: list[subprocess.Popen[bytes]] = []
    yield procs
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def _piped_ingest(
    cli: Cli, procs: list[subprocess.Popen[bytes]], ref: str, head: bytes
) -> subprocess.Popen[bytes]:
    """``ingest REF -`` reading a pipe that delivered ``head`` and then stays open."""
    proc = cli.spawn(
        "content", "ingest", "--label", "containerd.io/gc.root=x", ref, "-",
        stdin=subprocess.PIPE,
    )  # fmt: skip
    procs.append(proc)
    assert proc.stdin is not None
    proc.stdin.write(head)
    proc.stdin.flush()
    wait_for(lambda: active(cli).get(ref, 0) >= len(head))
    return proc


def test_ctrl_c_on_a_pipe_stops_at_once_and_commits_nothing(
    cli: Cli, feeder: list[subprocess.Popen[bytes]]
) -> None:
    data = os.urandom(8 * MiB)
    proc = _piped_ingest(cli, feeder, "mix", data[: 4 * MiB])
    proc.send_signal(signal.SIGINT)
    assert proc.wait(20) == 130  # the pipe is still open: the read was interrupted
    assert proc.stderr is not None
    err = proc.stderr.read()
    assert b"contentd: interrupted" in err and b"Traceback" not in err
    assert stored(cli) == set()  # nothing committed, no gc.root on a half blob
    assert active(cli)["mix"] == 4 * MiB  # and the ingest resumes
    again = run(cli, "content", "ingest", "mix", "--label", ROOT, input=data)
    assert again.returncode == 0, again.stderr
    assert b"resuming mix at 4194304" in again.stderr
    assert again.stdout.decode().strip() == sha(data)


def test_a_second_ctrl_c_exits_at_once(cli: Cli, feeder: list[subprocess.Popen[bytes]]) -> None:
    # `timeout -s INT` and an impatient user send two: never a traceback, never a hang
    for i in range(10):
        proc = _piped_ingest(cli, feeder, f"twice-{i}", os.urandom(MiB))
        proc.send_signal(signal.SIGINT)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(20) == 130
        assert proc.stderr is not None
        err = proc.stderr.read()
        assert b"Traceback" not in err and b"KeyboardInterrupt" not in err, err
    assert stored(cli) == set()


def test_ctrl_c_during_a_file_upload(cli: Cli, tmp_path: Path) -> None:
    path = tmp_path / "big.bin"
    data = os.urandom(64 * MiB)
    path.write_bytes(data)
    proc = cli.spawn("content", "ingest", "big", str(path), "--label", ROOT)
    try:
        wait_for(lambda: active(cli).get("big", 0) > 0 or proc.poll() is not None)
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
        code = proc.wait(20)
        assert proc.stderr is not None
        assert b"Traceback" not in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    if code == 130:  # the usual case; a fast machine may finish first
        assert stored(cli) == set()
        again = run(cli, "content", "ingest", "big", str(path), "--label", ROOT)
        assert again.returncode == 0 and again.stdout.decode().strip() == sha(data)
    else:
        assert code == 0


# -- 5. version as a health check --------------------------------------------------------------


def test_version_fails_when_no_daemon_answers(cli: Cli, tmp_path: Path) -> None:
    assert run(cli, "version").returncode == 0
    nobody = Cli(str(tmp_path / "missing.sock"), "default").run_process("version")
    assert nobody.returncode == 1
    assert nobody.stdout.startswith(b"contentd ") and b"no server version" in nobody.stderr


# -- 9. limits checked before a byte is sent -------------------------------------------------


def test_an_oversized_label_is_refused_before_reading_the_input(cli: Cli) -> None:
    # stdin never ends: reading it would hang the command
    proc = cli.spawn(
        "content", "ingest", "big-label", "--label", "k=" + "v" * 5000, "-", stdin=subprocess.PIPE
    )
    try:
        assert proc.wait(30) == 2
        assert proc.stderr is not None
        assert b"greater than maximum size (4096 bytes)" in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert "big-label" not in active(cli)
    label = run(cli, "content", "label", sha(b""), "k=" + "v" * 5000)
    assert label.returncode == 1 and b"invalid argument: label key and value" in label.stderr


def test_a_size_that_cannot_match_is_refused_before_sending(cli: Cli, tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"12345")
    proc = run(cli, "content", "ingest", "sized", "--expected-size", "4", str(path))
    assert proc.returncode == 1
    assert b"holds 5 bytes, not the --expected-size 4" in proc.stderr
    assert "sized" not in active(cli)


# -- 10. the namespace containerd manages ---------------------------------------------------


def test_rm_in_a_namespace_managed_externally_needs_force(cli: Cli) -> None:
    ns = cli.namespace
    assert (
        run(cli, "namespaces", "create", ns, "contentd.io/gc.managed-externally=true").returncode
        == 0
    )
    digest = run(cli, "content", "ingest", "pinned", input=b"containerd's").stdout.decode().strip()
    proc = run(cli, "content", "rm", digest)
    assert proc.returncode == 1
    assert b"contentd.io/gc.managed-externally=true" in proc.stderr and b"--force" in proc.stderr
    assert digest in stored(cli)
    proc = run(cli, "content", "rm", "--force", digest)
    assert proc.returncode == 0 and proc.stdout.decode().strip() == digest
    assert digest not in stored(cli)


# -- output ---------------------------------------------------------------------------------


def test_ls_and_info_show_the_same_fields_and_values(cli: Cli) -> None:
    digest = run(cli, "content", "ingest", "same", "--label", ROOT, input=b"same").stdout
    digest_text = digest.decode().strip()
    run(cli, "content", "label", digest_text, "later=yes")  # moves updated_at
    listed = json.loads(run(cli, "--output", "json", "content", "ls").stdout)
    info = json.loads(run(cli, "--output", "json", "content", "info", digest_text).stdout)
    assert listed == [info]
    assert info["updated_at"] != "0001-01-01T00:00:00Z"
    several = json.loads(
        run(cli, "--output", "json", "content", "info", digest_text, digest_text).stdout
    )
    assert several == [info, info]


def test_create_commands_print_what_they_created(cli: Cli) -> None:
    lease = json.loads(
        run(cli, "--output", "json", "leases", "create", "--id", f"{cli.namespace}-c").stdout
    )
    assert lease["id"] == f"{cli.namespace}-c" and "containerd.io/gc.expire" in lease["labels"]
    run(cli, "leases", "rm", lease["id"])
    name = f"{cli.namespace}-created"
    assert run(cli, "namespaces", "create", name).stdout == f"{name}\n".encode()
    run(cli, "namespaces", "rm", name)


def test_ingest_from_a_terminal_says_how_to_end(cli: Cli) -> None:
    main, secondary = pty.openpty()
    try:
        proc = cli.spawn("content", "ingest", "tty", "--label", ROOT, stdin=secondary)
        os.close(secondary)
        assert proc.stderr is not None
        line = proc.stderr.readline()
        assert line == b"contentd: reading stdin (Ctrl-D to end)\n"
        os.write(main, b"typed\n\x04")
        out, _ = proc.communicate(timeout=30)
        assert proc.returncode == 0 and out.decode().strip() == sha(b"typed\n")
    finally:
        os.close(main)


def test_a_pipe_is_read_in_whole_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    # os.read of a pipe returns at most its buffer (64 KiB): the reader fills each chunk,
    # so an ingest from a pipe sends 1 MiB Write messages as one from a file does
    import threading

    from contentd.cli import interrupt

    monkeypatch.setattr(interrupt, "_installed", True)
    r, w = os.pipe()
    data = os.urandom(3 * MiB + 5)

    def feed() -> None:
        for start in range(0, len(data), 4096):
            os.write(w, data[start : start + 4096])
        os.close(w)

    feeder = threading.Thread(target=feed)
    feeder.start()
    with os.fdopen(r, "rb") as source:
        chunks = list(interrupt.read_interruptibly(source, MiB))
    feeder.join()
    assert [len(c) for c in chunks] == [MiB, MiB, MiB, 5]
    assert b"".join(chunks) == data


def test_a_command_stuck_after_ctrl_c_still_ends(tmp_path: Path) -> None:
    # the first Ctrl-C can land inside grpcio with one of its locks held; the cleanup that
    # follows then waits for ever (seen: content ingest still running 20 s after SIGINT).
    # Here the cleanup blocks outright: the process must end anyway, with 130.
    script = tmp_path / "stuck.py"
    script.write_text(
        "import os, signal, threading, time\n"
        "from contentd.cli import interrupt\n"
        "interrupt.install()\n"
        "interrupt.UNWIND_LIMIT = 0.5\n"
        "try:\n"
        "    os.kill(os.getpid(), signal.SIGINT)\n"
        "    time.sleep(60)\n"
        "except KeyboardInterrupt:\n"
        "    threading.Event().wait(60)  # a cleanup that never returns\n"
    )
    proc = subprocess.run(
        [sys.executable, str(script)], capture_output=True, timeout=30, check=False
    )
    assert proc.returncode == 130, proc.stderr
    assert b"still winding down after 0.5s, exiting" in proc.stderr
