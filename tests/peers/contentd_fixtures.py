"""pytest plugin: ``contentd serve`` fixtures. Load with ``tests.peers.contentd_fixtures``.

The daemon process itself is :class:`tests.daemon.harness.ServeProcess` (``python -m
contentd serve`` on its own root, state and socket under a short ``/tmp/cds-*`` directory,
started under ``setpriv --pdeathsig``, ready once it logged its boot line and the socket
accepts, stopped with SIGTERM). These fixtures only manage its life time:

* ``contentd_peers`` (session): :class:`ContentdPool`; ``pool.get(policy)`` starts one
  daemon per content sharing policy (``shared`` / ``isolated``) on first use and keeps it
  for the session.
* ``contentd_peer`` (session): ``contentd_peers.get("shared")``.
* ``contentd_peer_factory`` (function): ``factory(config=None, *, policy=None, args=())``
  starts a daemon with its own config; all are closed at teardown.

The session daemons run contentd's built-in defaults, GC scheduler included: like
containerd's, it deletes content that no lease, ``gc.root`` label or reference holds at
its next collection. Tests sharing them work in their own namespace (``ctr_namespace``)
under a lease, or start their own daemon (e.g. with ``tests.daemon.harness.QUIET_GC``).

On a test failure the tail of each daemon's log is written to the teardown's stderr.
"""

from __future__ import annotations

import sys
from collections.abc import Generator, Iterator, Sequence
from typing import TYPE_CHECKING, Protocol

import pytest

if TYPE_CHECKING:  # imported when a daemon is started: loading this plugin stays cheap
    from tests.daemon.harness import ServeProcess

__all__ = ["ContentdFactory", "ContentdPool", "start_contentd"]

_FAILED = pytest.StashKey[bool]()
_LOG_LINES = 40
POLICIES = ("shared", "isolated")


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.failed:
        item.stash[_FAILED] = True
    return report


def start_contentd(
    config: str | None = None,
    *,
    policy: str | None = None,
    args: Sequence[str] = (),
    name: str = "contentd",
) -> ServeProcess:
    """A started ``contentd serve`` (``--content-sharing-policy`` when ``policy`` is set)."""
    from tests.daemon.harness import ServeProcess

    argv = list(args)
    if policy is not None:
        if policy not in POLICIES:
            raise ValueError(f"unknown content sharing policy {policy!r}")
        argv += ["--content-sharing-policy", policy]
    daemon = ServeProcess(args=argv, config=config, name=name)
    try:
        return daemon.start()
    except BaseException:
        daemon.close()
        raise


def log_tail(daemon: ServeProcess, lines: int = _LOG_LINES) -> str:
    return "\n".join(daemon.log_text().splitlines()[-lines:])


def _report(daemon: ServeProcess) -> None:
    sys.stderr.write(f"--- {daemon.log} (tail) ---\n{log_tail(daemon)}\n")


class ContentdPool:
    """One session ``contentd serve`` per content sharing policy, started on first use."""

    def __init__(self) -> None:
        self._daemons: dict[str, ServeProcess] = {}

    def get(self, policy: str = "shared") -> ServeProcess:
        daemon = self._daemons.get(policy)
        if daemon is None or daemon.proc is None or daemon.proc.poll() is not None:
            if daemon is not None:
                _report(daemon)  # it died under an earlier test
                daemon.close()
            daemon = start_contentd(policy=policy, name=f"contentd-{policy}")
            self._daemons[policy] = daemon
        return daemon

    def close(self) -> None:
        for daemon in self._daemons.values():
            daemon.close()
        self._daemons.clear()


class ContentdFactory(Protocol):
    def __call__(
        self,
        config: str | None = None,
        *,
        policy: str | None = None,
        args: Sequence[str] = (),
    ) -> ServeProcess: ...


@pytest.fixture(scope="session")
def contentd_peers() -> Iterator[ContentdPool]:
    pool = ContentdPool()
    try:
        yield pool
    finally:
        pool.close()


@pytest.fixture(scope="session")
def contentd_peer(contentd_peers: ContentdPool) -> ServeProcess:
    return contentd_peers.get("shared")


@pytest.fixture
def contentd_peer_factory(request: pytest.FixtureRequest) -> Iterator[ContentdFactory]:
    daemons: list[ServeProcess] = []

    def factory(
        config: str | None = None,
        *,
        policy: str | None = None,
        args: Sequence[str] = (),
    ) -> ServeProcess:
        daemon = start_contentd(config, policy=policy, args=args, name=f"contentd{len(daemons)}")
        daemons.append(daemon)
        return daemon

    try:
        yield factory
    finally:
        failed = request.node.stash.get(_FAILED, False)
        for daemon in daemons:
            if failed:
                _report(daemon)
            daemon.close()
