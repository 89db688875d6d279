"""The reliability suite's two profiles: ``quick`` (CI, the default) and ``long`` (by hand).

``CONTENTD_RELIABILITY=long`` selects the long one; its figures are in the README
with the command that reproduces them. Every count the tests use is here.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Final

__all__ = ["PROFILE", "Profile"]


@dataclass(frozen=True)
class Profile:
    name: str
    crash_cycles: int
    fuzz_examples: int
    concurrency_rounds: int


_PROFILES: Final = {
    "quick": Profile("quick", crash_cycles=8, fuzz_examples=150, concurrency_rounds=1),
    "long": Profile("long", crash_cycles=200, fuzz_examples=20_000, concurrency_rounds=10),
}

PROFILE: Final = _PROFILES[os.environ.get("CONTENTD_RELIABILITY", "quick") or "quick"]
