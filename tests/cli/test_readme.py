"""The README as a new user reads it: its "First five minutes" block runs as a script in a
fresh copy of the repository, it names nothing outside the repository, its Layout lists
every package, and ``--help`` shows the paths ``scripts/run`` uses."""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from tests.cli.conftest import Cli
from tests.daemon.harness import short_tmpdir
from tests.peers.process import clean_env

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


def _section(title: str) -> str:
    start = README.index(f"## {title}\n")
    end = README.find("\n## ", start + 1)
    return README[start : end if end >= 0 else None]


def _first_block(text: str, lang: str = "sh") -> str:
    match = re.search(rf"```{lang}\n(.*?)```", text, re.S)
    assert match is not None
    return match.group(1)


def _fresh_copy(dest: Path) -> None:
    """The files a clone has (git's tracked files, as they are now), and this checkout's
    .venv linked in (scripts/bootstrap then has nothing to install)."""
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.fail("needs a git checkout and git")
    listed = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True, timeout=60
    ).stdout.split(b"\0")
    for name in filter(None, (n.decode() for n in listed)):
        source = ROOT / name
        if not source.exists():  # deleted in the working tree
            continue
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)
    # the README's scripts/bootstrap must find nothing to do: an install from the copy
    # would point this checkout's .venv at a directory about to be removed
    stamp = ROOT / ".venv" / ".contentd-installed"
    want = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if not stamp.exists() or stamp.read_text().strip() != want:
        pytest.fail("the .venv is older than pyproject.toml: run scripts/bootstrap first")
    (dest / ".venv").symlink_to(ROOT / ".venv")
    # and the mypyc build bootstrap made here (untracked): with it in place and current,
    # the copy's bootstrap compiles nothing (shutil.copy2 keeps the mtimes it records)
    package = ROOT / "src" / "contentd"
    built = [package / "_compiled.json", *package.rglob("*.so")]
    for source in filter(Path.exists, built):
        target = dest / source.relative_to(ROOT)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)


@pytest.mark.slow
def test_first_five_minutes_runs_as_a_script() -> None:
    script = _first_block(_section("First five minutes"))
    workdir = short_tmpdir("cds-readme-")
    try:
        _fresh_copy(workdir)
        proc = subprocess.Popen(
            ["bash", "-e", "-o", "pipefail", "-c", script],
            cwd=workdir,
            env=clean_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        try:
            out, err = proc.communicate(timeout=600)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)  # whatever the script left running
        log = (workdir / "var" / "contentd.log").read_text(errors="replace")
        assert proc.returncode == 0, f"{err.decode()}\n--- daemon log ---\n{log[-3000:]}"
        text = out.decode()
        assert text.startswith("contentd 0.1.0") and "\nserver 0.1.0" in text
        assert "hello, content\n" in text  # content get
        assert '"labels":{"containerd.io/gc.root":"demo"}' in text  # --output json info
        assert "shutting down" in log  # kill: a graceful stop
        # the Ctrl-C interrupted the ingest (a whole file was done within a second, before
        # the block fed it a stalled pipe), and the second ingest resumed it
        assert re.search(r"^contentd: interrupted$", err.decode(), re.M), err.decode()
        # one Ctrl-C, as a terminal sends it: timeout without --foreground signals the
        # command and then its whole process group, which a loaded machine delivers as two
        assert "interrupted again" not in err.decode(), err.decode()
        assert re.search(r"resuming big at [1-9]\d* of 209715200 bytes", err.decode()), err.decode()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def test_readme_stands_on_its_own() -> None:
    assert "../shared" not in README and "shared/spec" not in README


def test_layout_lists_every_package() -> None:
    layout = _first_block(_section("Layout"), "")
    packages = sorted(
        p.name for p in (ROOT / "src" / "contentd").iterdir() if (p / "__init__.py").exists()
    )
    assert len(packages) >= 10
    for name in packages:
        assert re.search(rf"^  {re.escape(name)}/", layout, re.M), f"{name}/ is not in Layout"


def test_help_examples_use_the_paths_of_scripts_run(cli: Cli) -> None:
    run = (ROOT / "scripts" / "run").read_text()
    flags = dict(re.findall(r"(--root|--state|--address) (\S+)", run))
    assert set(flags) == {"--root", "--state", "--address"}
    serve_help = cli.raw("serve", "--help").ok().text
    top_help = cli.raw("--help").ok().text
    for flag, value in flags.items():
        assert f"{flag} {value}" in serve_help and f"{flag} {value}" in top_help
    assert f"CONTENTD_ADDRESS={flags['--address']}" in top_help
