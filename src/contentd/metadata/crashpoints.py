"""Named points where a test can make this process die (SIGKILL) mid-operation.

Set ``CONTENTD_METADATA_CRASH_AT=<name>`` in a child process's environment
and the child kills itself when it reaches that point. Crash tests use this
to prove that every interruption leaves a state the next start recovers
from. Unset (the normal case) it costs one string comparison per point.
"""

from __future__ import annotations

import os
import signal
from typing import Final

__all__ = ["CRASH_ENV", "crash_point"]

CRASH_ENV: Final = "CONTENTD_METADATA_CRASH_AT"
_crash_at = os.environ.get(CRASH_ENV, "")


def crash_point(name: str) -> None:
    if _crash_at and _crash_at == name:
        os.kill(os.getpid(), signal.SIGKILL)
