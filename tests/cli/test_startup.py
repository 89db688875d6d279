"""What the command loads before it needs it (bench/cli_startup.py measures the time)."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

from tests.peers.process import clean_env

HEAVY = ("grpc", "google.protobuf", "sqlite3", "rich", "contentd.local", "contentd.metadata")


def _loaded_after(code: str) -> list[str]:
    program = (
        "import sys, json\n"
        f"{code}\n"
        f"heavy = {HEAVY!r}\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith(heavy))))\n"
    )
    return list(_printed(program))


def _printed(program: str) -> Any:
    """What ``program``, run by a fresh interpreter, printed last as JSON."""
    proc = subprocess.run(
        [sys.executable, "-c", program],
        capture_output=True,
        timeout=60,
        env=clean_env(),
        check=True,
    )
    return json.loads(proc.stdout.decode().splitlines()[-1])


def test_import_contentd_loads_no_layer() -> None:
    assert _loaded_after("import contentd") == []
    assert _loaded_after("import contentd.content") == []


@pytest.mark.parametrize(
    "argv",
    [
        ["--help"],
        ["content", "--help"],
        ["completion", "bash"],
        ["-a", "/nonexistent/c.sock", "content", "ls"],
        ["-a", "/nonexistent/c.sock", "content", "info", "sha256:bad"],
    ],
)
def test_the_command_loads_grpc_only_when_it_calls_the_daemon(argv: list[str]) -> None:
    code = (
        "import contextlib, io\n"
        "from contentd.cli import main\n"
        "quiet = io.StringIO()\n"
        "with contextlib.redirect_stdout(quiet), contextlib.redirect_stderr(quiet):\n"
        "    try:\n"
        f"        main({argv!r})\n"
        "    except SystemExit:\n"
        "        pass\n"
    )
    assert _loaded_after(code) == []


def test_public_names_still_import() -> None:
    import contentd
    import contentd.content

    for name in contentd.__all__:
        assert getattr(contentd, name) is not None, name
    for name in contentd.content.__all__:
        assert getattr(contentd.content, name) is not None, name
    from contentd import LocalStore, ProxyStore, filters, write_blob
    from contentd.content import Info
    from contentd.content.filters import info_adaptor

    names = (LocalStore, ProxyStore, write_blob, Info, filters.parse, info_adaptor)
    assert [x.__name__ for x in names] == [
        "LocalStore",
        "ProxyStore",
        "write_blob",
        "Info",
        "parse",
        "info_adaptor",
    ]
    with pytest.raises(AttributeError):
        _ = contentd.nothing_here


def test_python_m_contentd_runs_the_command_with_cycle_collection_on() -> None:
    """``python -m contentd`` collects nothing while it starts (what start-up makes lives
    as long as the process) and freezes that before the command runs with collection on:
    the daemon (``serve``) and every long command must collect their cycles."""
    program = (
        "import gc, json, runpy, sys\n"
        "import contentd.cli as cli\n"
        "seen = []\n"
        "def main(*args, **kwargs):\n"
        "    seen.append([gc.isenabled(), gc.get_freeze_count() > 0])\n"
        "    return 0\n"
        "cli.main = main\n"
        "sys.argv = ['contentd', 'version']\n"
        "try:\n"
        "    runpy.run_module('contentd', run_name='__main__')\n"
        "except SystemExit:\n"
        "    pass\n"
        "print(json.dumps(seen))\n"
    )
    assert _printed(program) == [[True, True]]


def test_import_contentd_leaves_hashing_json_and_logging_to_first_use() -> None:
    """Every command imports contentd (its compiled-module finder among it): the finder
    loads hashlib, json and logging only when a compiled module is asked for."""
    program = (
        "import json, sys\n"
        "import contentd\n"
        "print(json.dumps(sorted(m for m in ('hashlib', 'logging', 'importlib.util')"
        " if m in sys.modules)))\n"
    )
    assert _printed(program) == []
