"""The mypyc-compiled modules (scripts/build_ext.py, contentd/_compiled.py): after
bootstrap they are what gets imported, and a build that no longer matches its
sources (or no build) never shadows the ``.py`` files."""

from __future__ import annotations

import importlib.machinery
import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path
from typing import Any

import pytest

from contentd import _compiled
from tests.peers.requires import in_ci, requires

ROOT = Path(__file__).resolve().parents[2]
BUILD_EXT = ROOT / "scripts" / "build_ext.py"
SUFFIX = importlib.machinery.EXTENSION_SUFFIXES[0]

# what a process imports: each compiled module's origin, and the variant's description
_PROBE = """
import importlib, json, sys
from contentd import _compiled
names = ["contentd.wire.frames", "contentd.wire.protocol", *sorted(_compiled.compiled_modules())]
origins = {name: importlib.import_module(name).__spec__.origin for name in names}
print(json.dumps({"origins": origins, "variant": _compiled.variant().describe()}))
"""


def _toolchain() -> None:
    """Skip without a C compiler or Python's headers (fail in CI, as for a missing peer)."""
    requires((sysconfig.get_config_var("CC") or "cc").split()[0])
    headers = Path(sysconfig.get_paths()["include"]) / "Python.h"
    if not headers.is_file():
        if in_ci():
            pytest.fail(f"CI={os.environ.get('CI')} and no {headers}", pytrace=False)
        pytest.skip(f"no {headers}")


def _env(**changes: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != _compiled.ENV}
    env.update(changes)
    return env


def _probe(cwd: Path, env: dict[str, str]) -> tuple[dict[str, Any], str]:
    done = subprocess.run(
        [sys.executable, "-c", _PROBE],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result, done.stderr


def _built() -> None:
    """Skip unless the build matches the sources (fail in CI, where bootstrap just ran: a
    source edited since the last bootstrap is a developer's state, not CI's)."""
    _toolchain()
    check = subprocess.run(
        [sys.executable, str(BUILD_EXT), "--check"], capture_output=True, text=True, timeout=120
    )
    if check.returncode:
        if in_ci():
            pytest.fail(check.stdout + check.stderr, pytrace=False)
        pytest.skip(check.stderr.strip())


def test_after_bootstrap_the_compiled_modules_are_imported() -> None:
    _built()
    result, err = _probe(ROOT, _env())
    assert result["variant"].startswith("compiled with mypyc: "), result
    assert {"contentd.wire.frames", "contentd.wire.protocol"} <= set(result["origins"])
    for name, origin in result["origins"].items():
        assert origin.endswith(SUFFIX), (name, origin)
    assert "compiled modules not used" not in err


def test_the_environment_variable_forces_pure_python() -> None:
    result, err = _probe(ROOT, _env(**{_compiled.ENV: "1"}))
    assert result["variant"] == f"pure Python: {_compiled.ENV} is set"
    for name, origin in result["origins"].items():
        assert origin.endswith(".py"), (name, origin)
    assert err == ""


def test_a_build_older_than_its_source_is_not_imported(tmp_path: Path) -> None:
    """A copy of the package with its build: as built it loads compiled; after a source
    changes, every module loads from its .py with one warning; without the manifest
    the extension files beside the sources are not imported at all."""
    _built()
    copy = tmp_path / "src" / "contentd"
    shutil.copytree(_compiled.PACKAGE_DIR, copy, ignore=shutil.ignore_patterns("__pycache__"))
    env = _env(PYTHONPATH=str(tmp_path / "src"), PYTHONDONTWRITEBYTECODE="1")

    result, err = _probe(tmp_path, env)
    assert result["variant"].startswith("compiled with mypyc: "), (result, err)
    for origin in result["origins"].values():
        assert origin.startswith(str(copy)) and origin.endswith(SUFFIX), origin

    with (copy / "wire" / "frames.py").open("a") as f:
        f.write("\n# edited after the build\n")
    result, err = _probe(tmp_path, env)
    for name, origin in result["origins"].items():
        assert origin == str(copy / (name.removeprefix("contentd.").replace(".", "/") + ".py"))
    assert result["variant"] == "pure Python: wire/frames.py changed since the build"
    [warning] = err.splitlines()
    assert "compiled modules not used" in warning and "wire/frames.py changed" in warning
    # the command it names for the rebuild is one a fresh clone has
    assert warning.endswith("(rebuild: scripts/bootstrap)"), warning
    assert (ROOT / "scripts" / "bootstrap").is_file()

    (copy / "_compiled.json").unlink()
    result, err = _probe(tmp_path, env)
    assert result["variant"] == "pure Python: no compiled build (scripts/build_ext.py)"
    for origin in result["origins"].values():
        assert origin.endswith(".py"), origin
    assert err == ""


_HASHED = """
import json, sys
import contentd.wire.frames
from contentd import _compiled
print(json.dumps({"variant": _compiled.variant().describe(), "hashed": "hashlib" in sys.modules}))
"""


def _hashed(cwd: Path, env: dict[str, str]) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-c", _HASHED], cwd=cwd, env=env, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def test_sources_as_hashed_at_the_build_are_not_hashed_again(tmp_path: Path) -> None:
    """A source with the size and mtime it had when the build hashed it is taken as built
    (no hashlib import at start-up); a touched one is hashed (and still matches); one
    edited to the same size is hashed and refused."""
    _built()
    copy = tmp_path / "src" / "contentd"
    # copy2 keeps the mtimes, as an installed or copied tree does
    shutil.copytree(_compiled.PACKAGE_DIR, copy, ignore=shutil.ignore_patterns("__pycache__"))
    env = _env(PYTHONPATH=str(tmp_path / "src"), PYTHONDONTWRITEBYTECODE="1")
    result = _hashed(tmp_path, env)
    assert result["variant"].startswith("compiled with mypyc: ") and not result["hashed"]

    frames = copy / "wire" / "frames.py"
    os.utime(frames)
    result = _hashed(tmp_path, env)
    assert result["variant"].startswith("compiled with mypyc: ") and result["hashed"]

    data = bytearray(frames.read_bytes())
    at = data.index(b'"""') + 3  # the docstring's first letter, case flipped: same size
    data[at : at + 1] = bytes([data[at] ^ 0x20])
    frames.write_bytes(bytes(data))
    result = _hashed(tmp_path, env)
    assert result["variant"] == "pure Python: wire/frames.py changed since the build"
