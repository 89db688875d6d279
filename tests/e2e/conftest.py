"""Fixtures: contentd + containerd stacks (see :mod:`tests.e2e.stack`)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

import pytest

from tests.e2e.stack import Stack, proxy_config
from tests.peers.contentd_fixtures import ContentdFactory
from tests.peers.fixtures import ContainerdFactory


class StackFactory(Protocol):
    def __call__(self, *, policy: str | None = None, config: str | None = None) -> Stack: ...


@pytest.fixture
def make_stack(
    contentd_peer_factory: ContentdFactory, containerd_peer_factory: ContainerdFactory
) -> Iterator[StackFactory]:
    """``make_stack(policy=None, config=None)``: a plain ``contentd serve`` (or one with
    ``--content-sharing-policy`` / a config file) and a containerd using it as its content
    store. Both are stopped at teardown (log tails on failure)."""
    stacks: list[Stack] = []

    def factory(*, policy: str | None = None, config: str | None = None) -> Stack:
        contentd = contentd_peer_factory(config, policy=policy)
        containerd = containerd_peer_factory(proxy_config(contentd.socket))
        stack = Stack(contentd, containerd)
        stacks.append(stack)
        return stack

    try:
        yield factory
    finally:
        for stack in stacks:
            stack.close()


@pytest.fixture
def stack(make_stack: StackFactory) -> Stack:
    """A plain ``contentd serve`` (no config at all) under a containerd."""
    return make_stack()
