"""The package metadata builds without setuptools' deprecation warnings (``scripts/bootstrap``
stays quiet): the license is an SPDX expression and the LICENSE file ships."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_pyproject_has_no_deprecated_fields() -> None:
    from setuptools.config.pyprojecttoml import apply_configuration
    from setuptools.dist import Distribution

    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            dist = apply_configuration(Distribution(), "pyproject.toml")
    finally:
        os.chdir(cwd)
    assert dist.metadata.license_expression == "Apache-2.0"
    assert "Apache License" in (ROOT / "LICENSE").read_text()
