from __future__ import annotations

from pathlib import Path

import pytest

from tests.conformance.harness import FACTORIES, Harness


@pytest.fixture(params=sorted(FACTORIES))
def harness(request: pytest.FixtureRequest, tmp_path: Path) -> Harness:
    return FACTORIES[request.param](tmp_path, request)
