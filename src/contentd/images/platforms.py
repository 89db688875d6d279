"""Platforms (``os/arch[/variant]``) as containerd's ``platforms`` package normalises and
matches them, for picking manifests out of an index."""

from __future__ import annotations

import platform as _platform
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from contentd.content.errors import InvalidArgument

__all__ = ["Platform", "default_platform", "parse_platform"]

_ARCH: Final = {
    "x86_64": "amd64",
    "x86-64": "amd64",
    "amd64": "amd64",
    "aarch64": "arm64",
    "arm64": "arm64",
    "i386": "386",
    "i686": "386",
    "386": "386",
    "armhf": "arm",
    "armel": "arm",
    "arm": "arm",
    "ppc64le": "ppc64le",
    "s390x": "s390x",
    "riscv64": "riscv64",
}
_COMPONENT: Final = re.compile(r"[a-z0-9_-]+")


@dataclass(frozen=True, slots=True)
class Platform:
    os: str
    architecture: str
    variant: str = ""

    def __str__(self) -> str:
        parts = [self.os, self.architecture] + ([self.variant] if self.variant else [])
        return "/".join(parts)

    def matches(self, spec: Mapping[str, Any]) -> bool:
        """Whether an index entry's ``platform`` object is this platform."""
        other = _normalise(
            str(spec.get("os", "")), str(spec.get("architecture", "")), str(spec.get("variant", ""))
        )
        return other == self


def _normalise(os_name: str, arch: str, variant: str) -> Platform:
    os_name = os_name.lower()
    arch = _ARCH.get(arch.lower(), arch.lower())
    variant = variant.lower()
    if arch == "arm64" and variant in ("v8", "8"):
        variant = ""
    elif arch == "arm" and variant in ("", "7", "v7"):
        variant = "v7"
    elif arch == "arm" and variant in ("5", "6", "8"):
        variant = "v" + variant
    elif arch == "amd64" and variant == "v1":
        variant = ""
    return Platform(os_name, arch, variant)


def parse_platform(text: str) -> Platform:
    """``linux``, ``linux/arm64``, ``linux/arm/v7`` (``linux`` alone takes this machine's
    architecture); InvalidArgument otherwise."""
    parts = text.strip().lower().split("/")
    if not 1 <= len(parts) <= 3 or not all(_COMPONENT.fullmatch(p) for p in parts):
        raise InvalidArgument(f"{text!r}: platform must be os[/arch[/variant]]")
    if len(parts) == 1:
        host = default_platform()
        return _normalise(parts[0], host.architecture, host.variant)
    return _normalise(parts[0], parts[1], parts[2] if len(parts) == 3 else "")


def default_platform() -> Platform:
    """This machine's platform (containerd's ``platforms.DefaultSpec``)."""
    machine = _platform.machine()
    variant = ""
    if machine.startswith("armv"):
        variant = "v" + machine[4]
        machine = "arm"
    return _normalise("linux", machine, variant)
