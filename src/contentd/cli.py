"""The ``contentd`` command (placeholder until the CLI lands)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    from contentd import __version__

    parser = argparse.ArgumentParser(prog="contentd", description=__doc__)
    parser.add_argument("--version", action="version", version=f"contentd {__version__}")
    parser.parse_args(argv)
    parser.print_help()
    return 0


if __name__ == "__main__":
    sys.exit(main())
