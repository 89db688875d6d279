"""What the command loads before it needs it (bench/cli_startup.py measures the time)."""

from __future__ import annotations

import json
import subprocess
import sys

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
    proc = subprocess.run(
        [sys.executable, "-c", program],
        capture_output=True,
        timeout=60,
        env=clean_env(),
        check=True,
    )
    return list(json.loads(proc.stdout.decode().splitlines()[-1]))


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
