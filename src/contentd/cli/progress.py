"""A progress bar for long transfers, on a terminal only.

:class:`Progress` counts bytes; when it is enabled (stderr is a terminal) and
the transfer has gone on for :data:`SHOW_AFTER` seconds, it shows a ``rich``
bar with bytes, rate and ETA on stderr. Short transfers, transfers off a
terminal and installs without ``rich`` show nothing, and ``rich`` is only
imported once a bar is due.
"""

from __future__ import annotations

import time
from types import TracebackType
from typing import Any, Final, Self, TextIO

__all__ = ["SHOW_AFTER", "Progress"]

#: Seconds a transfer runs before its bar appears.
SHOW_AFTER: Final = 0.5


class Progress:
    """Bytes done of ``total`` (None when unknown), starting at ``done``."""

    def __init__(
        self,
        stream: TextIO,
        description: str,
        total: int | None,
        *,
        done: int = 0,
        enabled: bool = True,
        show_after: float | None = None,
    ) -> None:
        self.stream = stream
        self.description = description
        self.total = total
        self.done = done
        self.enabled = enabled
        self._show_at = time.monotonic() + (SHOW_AFTER if show_after is None else show_after)
        self._bar: Any = None
        self._task: Any = None

    @property
    def shown(self) -> bool:
        return self._bar is not None

    def advance(self, n: int) -> None:
        self.done += n
        if self._bar is not None:
            self._bar.update(self._task, completed=self.done)
        elif self.enabled and time.monotonic() >= self._show_at:
            self._show()

    def _show(self) -> None:
        self.enabled = False  # one try only
        try:
            from rich import progress as rich_progress
            from rich.console import Console
        except ImportError:
            return
        bar = rich_progress.Progress(
            rich_progress.TextColumn("{task.description}"),
            rich_progress.BarColumn(),
            rich_progress.DownloadColumn(binary_units=False),
            rich_progress.TransferSpeedColumn(),
            rich_progress.TimeRemainingColumn(),
            console=Console(file=self.stream),
            transient=True,
            redirect_stdout=False,  # the data may be going to stdout
            redirect_stderr=False,
        )
        self._task = bar.add_task(self.description, total=self.total, completed=self.done)
        bar.start()
        self._bar = bar

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
