"""What the run ran on: CPU, kernel, filesystem, versions, load."""

from __future__ import annotations

import contextlib
import datetime
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

__all__ = ["loadavg", "machine_info"]


def _cpu() -> dict[str, Any]:
    model, flags = "", ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            key = key.strip()
            if key == "model name" and not model:
                model = value.strip()
            elif key == "flags" and not flags:
                flags = value
    return {"model": model, "cores": os.cpu_count(), "sha_ni": " sha_ni " in f" {flags} "}


def _first_line(argv: list[str]) -> str:
    try:
        p = subprocess.run(argv, capture_output=True, timeout=20, check=False)
    except (OSError, subprocess.TimeoutExpired) as err:
        return f"unavailable ({type(err).__name__})"
    text = (p.stdout or p.stderr).decode("utf-8", "replace").strip()
    return text.splitlines()[0] if text else f"exit {p.returncode}"


def _git() -> dict[str, Any]:
    repo = Path(__file__).resolve().parent.parent
    head = _first_line(["git", "-C", str(repo), "rev-parse", "HEAD"])
    try:
        dirty = bool(
            subprocess.run(
                ["git", "-C", str(repo), "status", "--porcelain", "--", "src"],
                capture_output=True,
                timeout=20,
                check=False,
            ).stdout.strip()
        )
    except (OSError, subprocess.TimeoutExpired):
        dirty = None
    return {"commit": head, "src_dirty": dirty}


def _filesystem(path: str) -> dict[str, Any]:
    best = ("", "", "")
    with contextlib.suppress(OSError):
        real = os.path.realpath(path)
        for line in Path("/proc/mounts").read_text().splitlines():
            dev, point, fstype, *_ = line.split()
            inside = real == point or real.startswith(point.rstrip("/") + "/")
            if inside and len(point) >= len(best[1]):
                best = (dev, point, fstype)
    st = os.statvfs(path)
    return {
        "path": path,
        "device": best[0],
        "mount": best[1],
        "type": best[2],
        "free_gib": round(st.f_bavail * st.f_frsize / (1 << 30), 1),
    }


def loadavg() -> list[float]:
    try:
        return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]
    except (OSError, ValueError):
        return []


def machine_info(workdir: str) -> dict[str, Any]:
    """Everything that explains the figures, collected at the start of a run."""
    import google.protobuf
    import grpc

    import contentd

    mem_total = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_total = line.split(":", 1)[1].strip()
    return {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "cpu": _cpu(),
        "memory": mem_total,
        "kernel": platform.release(),
        "os": _first_line(["sh", "-c", ". /etc/os-release && echo $PRETTY_NAME"]),
        "python": platform.python_version(),
        "grpcio": grpc.__version__,
        "protobuf": google.protobuf.__version__,
        "contentd": contentd.__version__,
        "git": _git(),
        "containerd": _first_line(["containerd", "--version"]),
        "ctr": _first_line(["ctr", "--version"]),
        "filesystem": _filesystem(workdir),
        "loadavg_start": loadavg(),
    }
