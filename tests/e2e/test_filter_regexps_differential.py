"""``~=`` filters give the same answers from ``contentd serve`` as from containerd 1.6.20.

Both stores get the same blobs, one per subject, labelled ``s=<subject>``; every
pattern of the regexp table in ``tests/test_filters.py`` plus a fixed sample of
random patterns is sent as ``labels.s~=<pattern>`` in a Content/List call to each,
and the sets of blobs listed must be equal. containerd compiles with Go's
``regexp`` (Go 1.19.8 in Debian's build); contentd runs RE2. A pattern that does
not compile lists nothing on either side.
"""

from __future__ import annotations

import io
import random
import uuid
from collections.abc import Iterator

import pytest

from contentd import write_blob
from contentd.filters import quote
from contentd.proxy import ProxyStore
from tests.daemon.harness import ServeProcess
from tests.peers.containerd import ContainerdPeer
from tests.test_filters import REGEXPS

pytestmark = pytest.mark.containerd

# every subject of the table, and some more text for random patterns to meet
SUBJECTS: tuple[str, ...] = tuple(
    dict.fromkeys(
        [s for _, s, _ in REGEXPS] + ["ab0:\n-", "AB", "é", "x{2}", "a-b", "Ab_é9", "(?<", "[:"]
    )
)
_ALPHABET = [
    *"ab()[]{}|*+?^$.\\-:,0129iPpLQEx<>=!#dDsSwWbBAzUmCé_",
    "(?P<",
    "(?i)",
    "[:alpha:]",
    "\\p{Greek}",
    "{2}",
    "{1,3}",
    "\\Q",
    "\\E",
]


def _random_patterns(n: int) -> list[str]:
    rng = random.Random(20261207)
    return ["".join(rng.choice(_ALPHABET) for _ in range(rng.randint(1, 10))) for _ in range(n)]


PATTERNS: tuple[str, ...] = tuple(dict.fromkeys([p for p, _, _ in REGEXPS] + _random_patterns(300)))


@pytest.fixture(scope="module")
def stores(
    containerd_peer: ContainerdPeer, contentd_peer: ServeProcess
) -> Iterator[tuple[ProxyStore, ProxyStore, dict[str, str]]]:
    ns = "regexps-" + uuid.uuid4().hex[:8]
    theirs = ProxyStore(containerd_peer.address, ns)
    ours = ProxyStore(str(contentd_peer.socket), ns)
    subject_of: dict[str, str] = {}
    try:
        for store in (theirs, ours):
            for i, subject in enumerate(SUBJECTS):
                data = b"subject %d" % i
                # held by a GC root on both sides; an empty label value is no label
                labels = {"containerd.io/gc.root": "regexps"}
                if subject:
                    labels["s"] = subject
                write_blob(store, f"s{i}", io.BytesIO(data), labels=labels)
        for info in ours.walk():
            subject_of[info.digest] = (info.labels or {}).get("s", "")
        assert len(subject_of) == len(SUBJECTS)
        yield theirs, ours, subject_of
    finally:
        theirs.close()
        ours.close()


def _listed(store: ProxyStore, pattern: str) -> set[str]:
    return {info.digest for info in store.walk(f"labels.s~={quote(pattern)}")}


def test_every_pattern_lists_the_same_blobs(
    stores: tuple[ProxyStore, ProxyStore, dict[str, str]],
) -> None:
    theirs, ours, subject_of = stores
    differ = []
    matching = 0
    for pattern in PATTERNS:
        expected, got = _listed(theirs, pattern), _listed(ours, pattern)
        matching += bool(expected)
        if expected != got:
            differ.append(
                (
                    pattern,
                    sorted(subject_of[d] for d in expected - got),  # only containerd
                    sorted(subject_of[d] for d in got - expected),  # only contentd
                )
            )
    assert differ == []
    assert matching > 60  # not a comparison of empty answers (98 of 412 list something)


def test_the_table_holds_on_containerd(
    stores: tuple[ProxyStore, ProxyStore, dict[str, str]],
) -> None:
    # the expected outcomes in tests/test_filters.py are containerd's
    theirs, _, subject_of = stores
    wrong = []
    for pattern, subject, expected in REGEXPS:
        listed = {subject_of[d] for d in _listed(theirs, pattern)}
        if (subject in listed) is not bool(expected):
            wrong.append((pattern, subject, expected))
    assert wrong == []
