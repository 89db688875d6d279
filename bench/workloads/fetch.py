"""Fetching images from the run's docker-registry: ``contentd fetch`` (the download runs in
contentd's daemon) against ``ctr content fetch`` on containerd 1.6.20 (client-side: ctr
downloads and writes through containerd's Content API), and the same ``ctr content
fetch`` against contentd.

Two images: one layer of ``scale.pull_mib`` MiB (:mod:`bench.bigimage`, uncompressed) and
twenty 1 MiB random layers. Every repetition fetches into a fresh namespace; afterwards
the image is removed with ``images rm --sync``, so nothing is already there (contentd
shares blobs across namespaces: the removal frees them everywhere).

``contentd fetch`` runs byte-compiled, as an installed contentd does (its wheel's modules
are compiled at install): the modules are compiled once into a cache under the run's work
dir (``PYTHONPYCACHEPREFIX``), with ``PYTHONDONTWRITEBYTECODE`` dropped. A source checkout
run with ``PYTHONDONTWRITEBYTECODE=1`` would otherwise compile every contentd module the
command imports on every run, which measured ~40 ms of CPU per fetch, none of it the
fetch's (bench/cli_startup.py measures start-up the same way).
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from pathlib import Path
from typing import Final

import contentd
from bench.env import BenchEnv, Scale
from bench.model import Goal, Sample
from bench.peers import Target
from bench.workloads.base import Workload
from bench.workloads.transfer import _need
from tests.peers.images import PushedImage, build_random_image, push_image
from tests.peers.process import clean_env

__all__ = ["FetchBig", "FetchBigCtr", "FetchSmall", "FetchSmallCtr"]

SMALL_LAYERS: Final = 20
SMALL_LAYER_SIZE: Final = 1 << 20

_small_images: dict[int, PushedImage] = {}
_command_envs: dict[int, dict[str, str]] = {}


def command_env(env: BenchEnv) -> dict[str, str]:
    """The environment ``contentd`` commands run in: byte-compiled modules in a cache under
    the run's work dir (compiled once, here), as an installed contentd has them."""
    key = id(env)
    found = _command_envs.get(key)
    if found is None:
        found = clean_env({"PYTHONPYCACHEPREFIX": env.path("pycache")})
        found.pop("PYTHONDONTWRITEBYTECODE", None)
        package = Path(contentd.__file__).parent
        argv = [sys.executable, "-m", "compileall", "-q", str(package)]
        subprocess.run(argv, env=found, capture_output=True, timeout=300, check=True)
        _command_envs[key] = found
    return found


def small_image(env: BenchEnv) -> PushedImage:
    """Twenty 1 MiB random layers, pushed once per run."""
    key = id(env)
    image = _small_images.get(key)
    if image is None:
        env.log(f"pushing a {SMALL_LAYERS}-layer image")
        built = build_random_image((SMALL_LAYER_SIZE,) * SMALL_LAYERS, seed=20)
        image = push_image(built, env.registry(), repository="bench/small-layers", tag="v1")
        _small_images[key] = image
    return image


def contentd_fetch(
    t: Target, ref: str, namespace: str, timeout: float, env: dict[str, str] | None = None
) -> float:
    """``contentd fetch --plain-http REF`` against ``t`` (in ``env``, default
    :func:`clean_env`); the command's wall time."""
    argv = [sys.executable, "-m", "contentd", "-a", t.address, "-n", namespace]
    argv += ["fetch", "--plain-http", ref]
    t0 = time.perf_counter()
    p = subprocess.run(
        argv,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=timeout,
        env=env if env is not None else clean_env(),
        check=False,
    )
    seconds = time.perf_counter() - t0
    if p.returncode != 0:
        raise RuntimeError(f"contentd fetch against {t.name}: {p.stderr.decode()[-2000:]}")
    return seconds


class _Fetch(Workload):
    unit = "s"
    higher_is_better = False
    #: fetch with ``contentd fetch`` on the contentd target (else ``ctr content fetch``)
    native = True
    label = ""

    def __init__(self) -> None:
        self._ref: dict[str, tuple[str, str]] = {}

    def image(self, env: BenchEnv) -> tuple[str, int]:
        raise NotImplementedError

    def timeout(self, scale: Scale) -> float:
        return 120.0 + 0.5 * scale.pull_mib

    def setup(self, env: BenchEnv, target: Target | None) -> None:
        self.image(env)
        if self.native:
            command_env(env)

    def sample(self, env: BenchEnv, target: Target | None, rep: int) -> Sample:
        t = _need(target)
        ref, size = self.image(env)
        namespace = f"bench-{self.name}-{rep}"
        self._ref[t.address] = (ref, namespace)
        timeout = self.timeout(env.scale)
        if self.native and t.name == "contentd":
            seconds = contentd_fetch(t, ref, namespace, timeout, command_env(env))
        else:
            seconds = t.ctr(
                "--debug", "content", "fetch", "--plain-http", ref,
                namespace=namespace, timeout=timeout,
            ).seconds  # fmt: skip
        return Sample(rep, seconds, seconds, {"MiB/s": round(size / (1 << 20) / seconds, 1)})

    def cleanup(self, env: BenchEnv, target: Target | None, rep: int) -> None:
        t = _need(target)
        ref, namespace = self._ref.pop(t.address, ("", ""))
        if ref:
            with contextlib.suppress(Exception):
                t.ctr("images", "rm", "--sync", ref, namespace=namespace, timeout=120)


class _Big(_Fetch):
    def image(self, env: BenchEnv) -> tuple[str, int]:
        big = env.big_image(env.scale.pull_mib)
        return big.ref, big.layer_size


class _Small(_Fetch):
    def image(self, env: BenchEnv) -> tuple[str, int]:
        return small_image(env).ref, SMALL_LAYERS * SMALL_LAYER_SIZE


class FetchBig(_Big):
    """``contentd fetch`` vs ``ctr content fetch`` on containerd: one big layer."""

    name = "fetch-big"
    goal: Goal | None = Goal("≥ 3× ctr content fetch on containerd", min_ratio=3.0)

    def title(self, scale: Scale) -> str:
        return f"fetch one {scale.pull_mib} MiB layer (contentd fetch vs ctr content fetch)"


class FetchBigCtr(_Big):
    """``ctr content fetch`` of the big layer against each daemon."""

    name = "fetch-big-ctr"
    native = False

    def title(self, scale: Scale) -> str:
        return f"ctr content fetch, one {scale.pull_mib} MiB layer"


class FetchSmall(_Small):
    name = "fetch-small"
    goal: Goal | None = Goal("≥ 1.5× ctr content fetch on containerd", min_ratio=1.5)

    def title(self, scale: Scale) -> str:
        return f"fetch {SMALL_LAYERS} × 1 MiB layers (contentd fetch vs ctr content fetch)"


class FetchSmallCtr(_Small):
    name = "fetch-small-ctr"
    native = False

    def title(self, scale: Scale) -> str:
        return f"ctr content fetch, {SMALL_LAYERS} × 1 MiB layers"
