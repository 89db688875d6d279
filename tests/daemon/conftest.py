"""Fixtures: an in-process daemon per module, channels and headers to call it with."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from contentd.daemon.server import Daemon
from tests.daemon.harness import QUIET_GC, short_tmpdir, start_daemon


@pytest.fixture
def base() -> Iterator[Path]:
    path = short_tmpdir()
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def daemon() -> Iterator[Daemon]:
    path = short_tmpdir()
    d = start_daemon(path, QUIET_GC)
    try:
        yield d
    finally:
        d.stop()
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def channel(daemon: Daemon) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(daemon.address) as ch:
        yield ch
