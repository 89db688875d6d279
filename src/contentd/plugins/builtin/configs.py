"""Typed configs of the built-in plugins (``[plugins."<uri>"]`` tables)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Final

from contentd.content.errors import InvalidArgument

__all__ = [
    "POLICY_ISOLATED",
    "POLICY_SHARED",
    "Durations",
    "FsckConfig",
    "GCSchedulerConfig",
    "MetadataConfig",
]

POLICY_SHARED: Final = "shared"
POLICY_ISOLATED: Final = "isolated"


@dataclass(frozen=True)
class MetadataConfig:
    """``[plugins."io.containerd.metadata.v1.sqlite"]``.

    ``content_sharing_policy``: ``shared`` or ``isolated`` (containerd's). Any
    other value makes the plugin's init fail with InvalidArgument ``unknown
    policy`` (it is not a config error, as in containerd).
    """

    content_sharing_policy: str = POLICY_SHARED


class Durations:
    """A config whose ``DURATIONS`` fields hold Go duration strings (``"100ms"``) or
    numbers of seconds: :meth:`check_durations` validates them, :meth:`seconds` reads one."""

    DURATIONS: ClassVar[tuple[str, ...]] = ()

    def check_durations(self) -> None:
        from contentd.metadata.scheduler import parse_duration

        for name in self.DURATIONS:
            try:
                parse_duration(getattr(self, name))
            except InvalidArgument as err:
                raise InvalidArgument(f"{name}: {err.context}") from None

    def seconds(self, name: str) -> float:
        from contentd.metadata.scheduler import parse_duration

        value: str | float = getattr(self, name)
        return parse_duration(value)


@dataclass(frozen=True)
class GCSchedulerConfig(Durations):
    """``[plugins."io.containerd.gc.v1.scheduler"]``, containerd's keys and defaults.

    Durations are Go duration strings (``"100ms"``, ``"1s"``) or numbers of seconds.
    """

    pause_threshold: float = 0.02
    deletion_threshold: int = 0
    mutation_threshold: int = 100
    schedule_delay: str | float = "0s"
    startup_delay: str | float = "100ms"

    DURATIONS: ClassVar[tuple[str, ...]] = ("schedule_delay", "startup_delay")

    def validate(self) -> None:
        self.check_durations()


@dataclass(frozen=True)
class FsckConfig(Durations):
    """``[plugins."io.containerd.grpc.v1.fsck"]``: the online scrubber.

    Every recorded blob is re-hashed once per ``scrub_interval`` (a Go duration or
    seconds; ``"0"`` turns scrubbing off), oldest-verified first, within
    ``scrub_bytes_per_second`` (0: no limit), starting ``scrub_startup_delay`` after
    the daemon.
    """

    scrub_interval: str | float = "24h"
    scrub_bytes_per_second: int = 16 << 20
    scrub_startup_delay: str | float = "1m"

    DURATIONS: ClassVar[tuple[str, ...]] = ("scrub_interval", "scrub_startup_delay")

    def validate(self) -> None:
        self.check_durations()
        if self.scrub_bytes_per_second < 0:
            raise InvalidArgument("scrub_bytes_per_second must not be negative")
