"""Skip locally, fail in CI: real-peer tests must never be silently skipped by CI."""

from __future__ import annotations

import os
import shutil

import pytest

CI_TRUE = frozenset({"1", "true", "yes", "on"})


def in_ci() -> bool:
    """True when the environment says it is CI: ``CI`` set to 1, true, yes or on (any case).

    ``.ci/run`` sets ``CI=true``; other CI systems set ``CI=1`` or ``CI=yes``, and a run
    under any of them must fail on a missing peer instead of skipping it.
    """
    return os.environ.get("CI", "").strip().lower() in CI_TRUE


def requires(binary: str, *more: str) -> str:
    """Path of ``binary`` on PATH, after checking ``more`` binaries are there too.

    A missing one skips the calling test locally, and fails it in CI (see :func:`in_ci`).
    """
    found = {b: shutil.which(b) for b in (binary, *more)}
    missing = [b for b, path in found.items() if path is None]
    if missing:
        msg = f"missing binary {', '.join(missing)} (install with scripts/ci-deps.sh)"
        if in_ci():
            pytest.fail(f"CI={os.environ.get('CI')} and {msg}", pytrace=False)
        pytest.skip(msg)
    path = found[binary]
    assert path is not None
    return path
