"""Store factories for the conformance suite.

Every Store implementation registers a factory here; the suite in this package
runs every test against every registered factory. A factory receives pytest's
``tmp_path`` and ``request`` (for session fixtures such as a live server) and
returns a :class:`Harness`.
"""

from __future__ import annotations

import hashlib
import itertools
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from contentd import Store

__all__ = ["FACTORIES", "Harness", "create_content", "register"]


@dataclass
class Harness:
    """A store under test, and what the suite may expect of it."""

    store: Store
    # the store keeps labels (a local store needs a label store for that)
    labels: bool = True
    # containerd's local-store quirks: deleting a missing blob or aborting a
    # missing ref succeeds (the metadata layer says NotFound)
    missing_ok: bool = False
    # truncate(n != 0) is an error (local); metadata/proxy delegate or defer it
    truncate_zero_only: bool = True
    # truncate only moves the client's offset; the server applies it on the next
    # write (containerd's proxy writer), so status() right after still shows the old one
    truncate_deferred: bool = False
    # a second store on the same data, as after a restart (None: not possible)
    reopen: Callable[[], Store] | None = None
    # the local store's directory, for on-disk layout checks (None: not local)
    root: Path | None = None
    extra: dict[str, Any] = field(default_factory=dict)


Factory = Callable[[Path, pytest.FixtureRequest], Harness]
FACTORIES: dict[str, Factory] = {}


def register(name: str) -> Callable[[Factory], Factory]:
    def deco(fn: Factory) -> Factory:
        FACTORIES[name] = fn
        return fn

    return deco


_seed = itertools.count(1)


def create_content(size: int) -> tuple[bytes, str]:
    """Distinct, reproducible pseudo-random content and its digest."""
    data = random.Random(next(_seed)).randbytes(size)
    return data, "sha256:" + hashlib.sha256(data).hexdigest()


# -- the factories ---------------------------------------------------------


@register("local")
def _local(tmp_path: Path, request: pytest.FixtureRequest) -> Harness:
    from contentd import LocalStore, MemoryLabelStore

    labels = MemoryLabelStore()
    root = tmp_path / "content"
    return Harness(
        store=LocalStore(root, label_store=labels),
        missing_ok=True,
        reopen=lambda: LocalStore(root, label_store=labels),
        root=root,
    )


@register("local-nolabels")
def _local_nolabels(tmp_path: Path, request: pytest.FixtureRequest) -> Harness:
    from contentd import LocalStore

    root = tmp_path / "content"
    return Harness(
        store=LocalStore(root),
        labels=False,
        missing_ok=True,
        reopen=lambda: LocalStore(root),
        root=root,
    )


# Every other Store registers its factories from its own module:
# factories_daemon (daemon-shared, daemon-isolated: ProxyStore against contentd serve),
# factories_metadata (metadata-shared, metadata-isolated; metadata-postgres-shared and
# -isolated on PostgreSQL), factories_proxy (proxy-local, proxy-containerd),
# factories_s3 (s3, metadata-s3: against a private SeaweedFS).
from tests.conformance import (  # noqa: E402, F401
    factories_daemon,
    factories_metadata,
    factories_proxy,
    factories_s3,
)
