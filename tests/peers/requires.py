"""Skip locally, fail in CI: real-peer tests must never be silently skipped by CI."""

from __future__ import annotations

import os
import shutil

import pytest


def in_ci() -> bool:
    """True when the environment says ``CI=true`` (as ``.ci/run`` is started)."""
    return os.environ.get("CI") == "true"


def requires(binary: str, *more: str) -> str:
    """Path of ``binary`` on PATH, after checking ``more`` binaries are there too.

    A missing one skips the calling test locally, and fails it when ``CI=true``.
    """
    found = {b: shutil.which(b) for b in (binary, *more)}
    missing = [b for b, path in found.items() if path is None]
    if missing:
        msg = f"missing binary {', '.join(missing)} (install with scripts/ci-deps.sh)"
        if in_ci():
            pytest.fail(f"CI=true and {msg}", pytrace=False)
        pytest.skip(msg)
    path = found[binary]
    assert path is not None
    return path
