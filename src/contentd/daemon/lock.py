"""One daemon per root: an exclusive ``flock`` on ``<root>/contentd.lock``.

The lock belongs to the open file, so it goes away with the process however
the process ends; a lock file left behind by a dead daemon is simply locked
again. The holder's pid is written into the file for the refusal message.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from types import TracebackType
from typing import Final, Self

from contentd.content.errors import Unavailable

__all__ = ["LOCK_FILE", "RootLock", "RootLocked"]

LOCK_FILE: Final = "contentd.lock"


class RootLocked(Unavailable):
    """Another daemon holds the root."""


class RootLock:
    def __init__(self, root: str) -> None:
        self.root = root
        self.path = os.path.join(root, LOCK_FILE)
        self._fd: int | None = None

    def acquire(self) -> Self:
        """Take the lock, or raise RootLocked naming the holder."""
        os.makedirs(self.root, 0o700, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_pid(fd)
            os.close(fd)
            who = f" (pid {holder})" if holder else ""
            raise RootLocked(
                f"another contentd{who} is already running on root {self.root};"
                f" lock {self.path} is held"
            ) from None
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
        os.close(fd)

    @property
    def held(self) -> bool:
        return self._fd is not None

    def __enter__(self) -> Self:
        return self.acquire()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
        return int(text) if text else None
    except (OSError, ValueError):
        return None
