"""The engine's core tests under the variant this run does not use: pure Python when the
compiled (mypyc) modules are loaded, compiled when ``CONTENTD_PURE_PYTHON`` forced
pure Python here. The files cover the compiled modules frame by frame (test_core,
test_frames) and over live sockets (the rest; the daemons they start inherit the
variant through the environment)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from contentd import _compiled

ROOT = Path(__file__).resolve().parents[2]
FILES = [
    "tests/wire/test_core.py",
    "tests/wire/test_frames.py",
    "tests/wire/test_protocol.py",
    "tests/wire/test_rpc.py",
    "tests/wire/test_windows_and_queued_output.py",
]

# pytest in the child, then: did the child run the variant it was meant to?
_RUN = """
import sys, pytest
from contentd import _compiled
rc = pytest.main(["-q", "-p", "no:cacheprovider", *sys.argv[2:]])
want_compiled = sys.argv[1] == "compiled"
got = _compiled.variant()
assert got.compiled == want_compiled, got.describe()
origin = sys.modules["contentd.wire.protocol"].__spec__.origin
assert origin.endswith(".py") != want_compiled, origin
sys.exit(rc)
"""


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_wire_core_tests_pass_under_the_other_variant() -> None:
    env = dict(os.environ)
    if _compiled.variant().compiled:
        env[_compiled.ENV] = "1"
        other = "pure"
    elif os.environ.get(_compiled.ENV):
        del env[_compiled.ENV]
        other = "compiled"
        check = subprocess.run(
            [sys.executable, "scripts/build_ext.py", "--check"], cwd=ROOT, capture_output=True
        )
        if check.returncode:
            pytest.skip("no current compiled build: this run's pure Python is the only variant")
    else:
        pytest.skip("not compiled (tests/unit/test_compiled.py says why): pure Python only")
    done = subprocess.run(
        [sys.executable, "-c", _RUN, other, *FILES],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
