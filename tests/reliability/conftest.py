"""The reliability suite prints its figures at the end of a run (``-s`` not needed)."""

from __future__ import annotations

import pytest

from tests.reliability.figures import FIGURES
from tests.reliability.profile import PROFILE


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not FIGURES:
        return
    terminalreporter.section(f"reliability figures ({PROFILE.name} profile)")
    for name, value in sorted(FIGURES.items()):
        terminalreporter.write_line(f"{name}: {value}")
