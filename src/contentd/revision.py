"""contentd's git revision, read from the checkout its sources live in (no grpcio, no git)."""

from __future__ import annotations

import functools
from pathlib import Path

__all__ = ["git_revision"]


@functools.cache
def git_revision(start: str | None = None) -> str:
    """The commit checked out where contentd's sources live, or ``""``.

    Read from ``.git`` directly (no ``git`` process): ``HEAD``, then the
    branch's loose ref or ``packed-refs``. Installed (non-checkout) copies
    have no revision.
    """
    here = Path(start or __file__).resolve()
    for directory in (here, *here.parents):
        git = directory / ".git"
        if git.is_file():  # a worktree: "gitdir: <path>"
            text = git.read_text(errors="replace").strip()
            if text.startswith("gitdir:"):
                git = (directory / text[len("gitdir:") :].strip()).resolve()
        if git.is_dir():
            return _resolve_head(git)
    return ""


def _resolve_head(git: Path) -> str:
    try:
        head = (git / "HEAD").read_text().strip()
    except OSError:
        return ""
    if not head.startswith("ref:"):
        return head if _is_sha(head) else ""
    ref = head[len("ref:") :].strip()
    common = git
    commondir = git / "commondir"
    if commondir.is_file():
        common = (git / commondir.read_text().strip()).resolve()
    for base in (git, common):
        try:
            sha = (base / ref).read_text().strip()
            if _is_sha(sha):
                return sha
        except OSError:
            pass
        try:
            for line in (base / "packed-refs").read_text().splitlines():
                parts = line.split()
                if len(parts) == 2 and parts[1] == ref and _is_sha(parts[0]):
                    return parts[0]
        except OSError:
            pass
    return ""


def _is_sha(text: str) -> bool:
    return len(text) in (40, 64) and all(c in "0123456789abcdef" for c in text)
