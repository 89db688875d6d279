"""Filters are hostile input: stock ``ctr`` against a real ``contentd serve``.

A filter costs the daemon time linear in what it walks, whatever the pattern
(regular expressions run on RE2, as Go's ``regexp`` does in containerd), and the
daemon keeps serving other clients meanwhile. Lists beyond the filter bounds are
refused with InvalidArgument. No timing is asserted beyond generous deadlines that
a pinned daemon misses by minutes.
"""

from __future__ import annotations

import io
import subprocess
from collections.abc import Iterator

import pytest

from contentd import filters, write_blob
from contentd.proxy import ProxyStore
from tests.daemon.harness import QUIET_GC, ServeProcess
from tests.peers.process import clean_env
from tests.peers.requires import requires

pytestmark = pytest.mark.containerd

NS = "hostile-filters"
# 31 characters that ^(a+)+$ almost matches: 2^30 paths for a backtracking engine
LABEL = "a" * 30 + "!"
CATASTROPHIC = "labels.k~=^(a+)+$"


@pytest.fixture(scope="module")
def daemon() -> Iterator[ServeProcess]:
    with ServeProcess(config=QUIET_GC) as d:
        with ProxyStore(str(d.socket), NS) as store:
            for i in range(3):
                write_blob(store, f"blob-{i}", io.BytesIO(b"blob %d" % i), labels={"k": LABEL})
        yield d


def _ctr(daemon: ServeProcess, *args: str) -> list[str]:
    return [requires("ctr"), "--address", str(daemon.socket), "--namespace", NS, *args]


def _run(daemon: ServeProcess, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        _ctr(daemon, *args),
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        env=clean_env(),
        timeout=60,
        check=False,
    )


def _digests(proc: subprocess.CompletedProcess[str]) -> list[str]:
    assert proc.returncode == 0, proc.stderr
    return [line.split()[0] for line in proc.stdout.splitlines()[1:]]


def test_a_catastrophic_regexp_answers_and_the_daemon_keeps_serving(
    daemon: ServeProcess,
) -> None:
    ls = subprocess.Popen(
        _ctr(daemon, "content", "ls", CATASTROPHIC),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        env=clean_env(),
        text=True,
    )
    try:
        # a concurrent call with ctr's own 10 s deadline (a pinned daemon misses it)
        version = _run(daemon, "--timeout", "10s", "version")
        out, err = ls.communicate(timeout=60)
    finally:
        if ls.poll() is None:
            ls.kill()
            ls.wait()
    assert version.returncode == 0, version.stderr
    assert "Server:" in version.stdout
    assert ls.returncode == 0, err
    assert out.splitlines() == ["DIGEST\tSIZE\tAGE\tLABELS"]  # nothing matches
    # the same family of pattern matches where it should
    assert len(_digests(_run(daemon, "content", "ls", "labels.k~=^(a+)+!$"))) == 3
    assert len(_digests(_run(daemon, "content", "ls", "labels.k~=(a|a)*!"))) == 3


def test_catastrophic_regexps_on_every_filtered_service(daemon: ServeProcess) -> None:
    # leases, ingests, images and plugins take the same filters
    name = "a" * 30
    assert _run(daemon, "leases", "create", "--id", name).returncode == 0
    with ProxyStore(str(daemon.socket), NS) as store:
        writer = store.writer(name)
        writer.write(b"partial")
        writer.close()  # the ingest stays open
    assert _digests(_run(daemon, "leases", "ls", "id~=^(a+)+b$")) == []
    assert _digests(_run(daemon, "leases", "ls", "id~=^(a+)+$")) == [name]
    assert _digests(_run(daemon, "content", "active", "ref~=^(a|aa)+b$")) == []
    assert _digests(_run(daemon, "content", "active", "ref~=^(a|aa)+$")) == [name]
    assert _digests(_run(daemon, "images", "ls", "name~=^(a+)+b$")) == []
    assert _digests(_run(daemon, "plugins", "ls", "id~=^(a+)+b$")) == []


def test_filters_beyond_the_bounds_are_invalid_arguments(daemon: ServeProcess) -> None:
    long = _run(daemon, "content", "ls", "labels.k==" + "x" * filters.MAX_LENGTH)
    assert long.returncode == 1
    assert "characters exceed the limit of 16384: invalid argument" in long.stderr
    regexps = [f"labels.k~=^{i}" for i in range(filters.MAX_REGEXPS + 1)]
    many = _run(daemon, "content", "ls", *regexps)
    assert many.returncode == 1
    assert "9 regular expressions (~=) exceed the limit of 8" in many.stderr
    # at the bound, an OR of regexps is served
    assert len(_digests(_run(daemon, "content", "ls", *regexps[:-2], "labels.k~=/!$/"))) == 3
