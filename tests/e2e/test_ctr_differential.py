"""Stock ``ctr`` gets the same answers from ``contentd serve`` as from containerd 1.6.20.

One script of ``ctr content`` / ``ctr leases`` / ``ctr namespaces`` commands runs against a
fresh ``contentd serve`` and a fresh private containerd; every step's exit status, stdout
and stderr must match after normalisation (times, ages, log prefixes, label order -- Go
map order is random). Each step also states its expected exit status, so a step cannot
pass by failing the same way on both sides.

Known, intended differences are normalised away and listed in :func:`normalise`:
contentd's ``namespaces ls`` also shows its pinned namespace for header-less callers.

A second script does the same for images: ``ctr content fetch`` from a private registry,
``ctr images ls|check|tag|label|export|import|rm`` and what GC leaves afterwards. contentd
has no snapshotter, so ``images check`` exits 1 there (the table itself must match).

Complements ``tests/daemon/test_ctr.py`` (version, plugins ls, basic namespaces and leases,
ingest/ls/get/label/rm in two namespaces, active + resume, events): here the filters,
error paths, lease expiry, ``content prune references`` and namespace removal rules.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.daemon.harness import QUIET_GC, ServeProcess
from tests.e2e.stack import PINNED, blob
from tests.peers.contentd_fixtures import ContentdFactory
from tests.peers.fixtures import ContainerdFactory
from tests.peers.images import PushedImage
from tests.peers.process import run
from tests.peers.requires import requires

pytestmark = pytest.mark.containerd

NS = "diff"
PARTIAL = "partial"  # open ingests (contentd refuses to delete a namespace holding any)

A, A_DIGEST = blob(b"blob a", 100)
B, B_DIGEST = blob(b"blob b", 2000)
C, C_DIGEST = blob(b"blob c", 30_000)
BIG, BIG_DIGEST = blob(b"an interrupted ingest", (2 << 20) + 7)
_DIGESTS = {"$A": A_DIGEST, "$B": B_DIGEST, "$C": C_DIGEST, "$BIG": BIG_DIGEST}


@dataclass(frozen=True)
class Step:
    line: str
    rc: int = 0
    input: bytes | None = None
    namespace: str = NS
    unordered: bool = False  # rows after the header come in no particular order
    output: bool = True  # False: compare exit statuses only (progress displays, timings)
    ours_rc: int | None = None  # a known difference in exit status: then stdout alone matches

    def argv(self) -> list[str]:
        words = self.line.split(" ")
        return [_DIGESTS.get(w, w) for w in words]


def _steps() -> Iterator[Step]:
    # content: ingest, labels, and every kind of filter `ctr content ls` passes on
    yield Step("content ingest a", input=A)
    yield Step("content ingest b", input=B)
    yield Step("content ingest c", input=C)
    yield Step("content ingest --expected-digest $A again", input=A)  # already there
    yield Step("content ingest --expected-digest $B wrong", input=A)  # B is there: done
    yield Step("content label $A kind=layer team=blue containerd.io/gc.ref.content.l.0=$B")
    yield Step("content label $B kind=config")
    yield Step("content label $C containerd.io/gc.root=yes containerd.io/gc.ref.content.l.0=$A")
    yield Step("content label $C team=")
    yield Step("content ls")
    for query in (
        "digest==$A",
        "digest~=^sha256:",
        "size==100",  # size is never present: nothing
        "size!=100",  # ... so != matches everything
        "kind",  # a bare field that content Info does not have
        "labels.kind",
        "labels.kind==layer,labels.team==blue",  # AND
        "labels.kind==config labels.team==blue",  # OR across arguments
        "labels.kind!=layer",
        "labels.kind~=^la",
        "labels.kind~=[",  # a bad regexp matches nothing
        'labels."containerd.io/gc.root"',
        'labels."containerd.io/gc.ref.content.l.0"==$B',
    ):
        yield Step(f"content ls -q {query}")
    for bad in ("labels.containerd.io/gc.root", "labels.kind===x", "labels.kind==/v", ",kind"):
        yield Step(f"content ls -q {bad}", rc=1)
    yield Step("content label $A k" + "x" * 4100 + "=v", rc=1)  # key too long
    yield Step("content label sha256:" + "0" * 64 + " a=b", rc=1)
    yield Step("content label nonsense a=b", rc=1)
    yield Step("content get $A", namespace="elsewhere", rc=1)
    yield Step("content rm $A", namespace="elsewhere")

    # failed and interrupted ingests stay open; listed with and without a filter
    bad_digest = "sha256:" + "1" * 64
    yield Step(f"content ingest --expected-digest {bad_digest} wrong", 1, A, PARTIAL)
    yield Step("content ingest --expected-size 5 short", 1, A, PARTIAL)
    big = f"content ingest --expected-size {len(BIG)} --expected-digest $BIG big"
    yield Step(big, 1, BIG[: (1 << 20) + 5], PARTIAL)
    yield Step("content active", namespace=PARTIAL, unordered=True)
    yield Step("content active ref~=^b", namespace=PARTIAL)
    yield Step("content active ref==nope", namespace=PARTIAL)
    yield Step("content active ref==/x", 1, namespace=PARTIAL)
    yield Step("content active", unordered=True)  # none in the main namespace

    # leases
    yield Step("leases create --id keep team=blue")
    yield Step("leases create --id keep", rc=1)
    yield Step("leases create --id old --expires 1ns")  # expired right away
    yield Step("leases ls -q")
    yield Step("leases ls -q labels.team==blue")
    yield Step("leases ls -q id~=^ol")
    yield Step("leases rm nope", rc=1)

    # a forced GC: layer labels go, then whatever nothing holds; the expired lease goes
    yield Step("content prune references")
    yield Step("content ls")
    yield Step("content active", namespace=PARTIAL, unordered=True)  # not expired: kept
    yield Step("leases ls -q")
    yield Step("leases rm --sync keep")
    yield Step("content ls -q")

    # namespaces: labels, and only empty ones can be removed
    yield Step("namespaces create labelled a=1 b=2")
    yield Step("namespaces create labelled", rc=1)
    yield Step("namespaces create bad_", rc=1)
    yield Step("namespaces label labelled a=3 b=")
    yield Step("namespaces ls")
    yield Step(f"namespaces rm {NS}", rc=1)
    yield Step("content rm $C")
    yield Step(f"namespaces rm {NS} labelled nope")
    yield Step("namespaces ls -q")


STEPS: tuple[Step, ...] = tuple(_steps())

_LOG_PREFIX = re.compile(r'time="[^"]*" ')
_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:\d\d)")
_AGE = re.compile(r"Less than a second|About a minute|\d+ seconds?")


def normalise(text: str) -> list[str]:
    """Lines of ctr output with what legitimately differs between runs taken out.

    Times and ages; logrus' timestamp prefix; the order of comma-separated ``k=v`` lists
    (labels come from Go maps); column padding (tabwriter widths follow the longest cell);
    and the line of contentd's pinned namespace (``containerd-proxy``) in ``namespaces ls``.
    """
    text = _AGE.sub("<age>", _TIME.sub("<time>", _LOG_PREFIX.sub("", text)))
    lines = []
    for line in text.splitlines():
        fields = line.split()
        if fields and fields[0] == PINNED:
            continue
        fields = [",".join(sorted(f.split(","))) if "=" in f else f for f in fields]
        lines.append(" ".join(fields))
    return lines


@dataclass(frozen=True)
class Outcome:
    rc: int
    stdout: list[str]
    stderr: list[str]


def _play(
    ctr: str, socket: str, steps: Sequence[Step], subst: dict[str, str] | None = None
) -> list[Outcome]:
    outcomes = []
    for step in steps:
        argv = [(subst or {}).get(w, w) for w in step.argv()]
        proc = run(
            [ctr, "--address", socket, "--namespace", step.namespace, *argv],
            input=step.input,
            check=False,
            timeout=60,
        )
        stdout = normalise(proc.stdout.decode("utf-8", "replace"))
        stderr = normalise(proc.stderr.decode("utf-8", "replace"))
        if step.unordered:
            stdout = stdout[:1] + sorted(stdout[1:])
        if not step.output:
            stdout = stderr = []
        outcomes.append(Outcome(proc.returncode, stdout, stderr))
    return outcomes


@pytest.fixture
def contentd(contentd_peer_factory: ContentdFactory) -> ServeProcess:
    # contentd's GC collects when asked only, as the containerd peer's does
    return contentd_peer_factory(QUIET_GC)


def test_ctr_answers_match_containerd(
    contentd: ServeProcess, containerd_peer_factory: ContainerdFactory
) -> None:
    ctr = requires("ctr")
    containerd = containerd_peer_factory()
    theirs = _play(ctr, containerd.address, STEPS)
    ours = _play(ctr, str(contentd.socket), STEPS)
    for step, expected, got in zip(STEPS, theirs, ours, strict=True):
        assert expected.rc == step.rc, f"containerd: ctr {step.line[:120]} -> {expected}"
        assert got == expected, f"ctr {step.line[:120]}"

    # a few landmarks, so that the script cannot drift into checking nothing
    by_line = {step.line: out for step, out in zip(STEPS, ours, strict=True)}
    assert by_line["content ls -q labels.kind==layer,labels.team==blue"].stdout == [A_DIGEST]
    assert by_line["content ls -q size!=100"].stdout == sorted([A_DIGEST, B_DIGEST, C_DIGEST])
    after_prune = by_line["content ls -q"].stdout
    assert after_prune == [C_DIGEST]  # held by its gc.root label; A and B were layers
    assert by_line["leases ls -q id~=^ol"].stdout == ["old"]
    assert any("must be empty" in line for line in by_line[f"namespaces rm {NS}"].stderr)
    assert by_line[f"namespaces rm {NS} labelled nope"].stdout == [NS, "labelled", "nope"]
    assert by_line["content active ref~=^b"].stdout[1:] == ["big 1.049MB <age>"]


def test_normalise() -> None:
    text = (
        'time="2026-01-01T00:00:00Z" level=error msg="x"\n'
        "ID  CREATED AT           LABELS\n"
        "k   2026-01-01T00:00:00Z b=2,a=1\n"
        f"{PINNED} contentd.io/gc.managed-externally=true\n"
        "ref 1kB Less than a second\n"
    )
    assert normalise(text) == [
        'level=error msg="x"',
        "ID CREATED AT LABELS",
        "k <time> a=1,b=2",
        "ref 1kB <age>",
    ]


def test_steps_expand_digests() -> None:
    assert Step("content get $A").argv() == ["content", "get", A_DIGEST]


def test_leases_ls_bad_filter_message_matches_containerd(
    contentd: ServeProcess, containerd_peer_factory: ContainerdFactory
) -> None:
    ctr = requires("ctr")
    steps = [Step("leases ls -q id==", rc=1)]
    theirs = _play(ctr, containerd_peer_factory().address, steps)
    ours = _play(ctr, str(contentd.socket), steps)
    assert theirs[0].rc == 1
    assert ours == theirs


IMG_NS = "diff-images"
IMPORTED = "diff-imported"


def _image_steps() -> Iterator[Step]:
    # ctr fetches client-side: resolve, then Content writes under a lease, Images/Create
    yield Step("content fetch --plain-http --all-platforms $REF", namespace=IMG_NS, output=False)
    yield Step("content ls", namespace=IMG_NS)  # pull labels (gc.ref.content.*, source)
    yield Step("images ls", namespace=IMG_NS)
    # check also asks a snapshotter whether the image is unpacked: contentd has none,
    # so ctr logs that half of the check as failed and exits 1; the table is the same
    yield Step("images check", namespace=IMG_NS, ours_rc=1)
    yield Step("images tag $REF example.com/copy:1", namespace=IMG_NS)
    yield Step("images tag $REF example.com/copy:1", rc=1, namespace=IMG_NS)
    yield Step("images tag --force $REF example.com/copy:1", namespace=IMG_NS)
    yield Step("images label example.com/copy:1 team=blue tier=1", namespace=IMG_NS)
    yield Step("images label example.com/copy:1 tier=", namespace=IMG_NS)
    yield Step("images ls", namespace=IMG_NS)
    for query in ("labels.team==blue", "name~=^example", "target.mediatype~=index", "nope"):
        yield Step(f"images ls -q {query}", namespace=IMG_NS)
    yield Step("images ls -q name===", rc=1, namespace=IMG_NS)
    yield Step("images rm nope", namespace=IMG_NS)
    yield Step("images export --all-platforms $OUT example.com/copy:1", namespace=IMG_NS)
    yield Step("images import --no-unpack --all-platforms $OUT", namespace=IMPORTED)
    yield Step("images ls", namespace=IMPORTED)
    yield Step("namespaces rm diff-imported", rc=1, namespace=IMPORTED)  # holds images
    yield Step("images rm --sync example.com/copy:1", namespace=IMPORTED)
    yield Step("content ls -q", namespace=IMPORTED)  # nothing holds it any more
    yield Step("images rm --sync example.com/copy:1", namespace=IMG_NS)
    yield Step("content ls -q", namespace=IMG_NS)  # still held by $REF
    yield Step("images rm --sync $REF", namespace=IMG_NS)
    yield Step("content ls -q", namespace=IMG_NS)
    yield Step("namespaces rm diff-images diff-imported", namespace=IMG_NS)


IMAGE_STEPS: tuple[Step, ...] = tuple(_image_steps())


def test_ctr_images_match_containerd(
    contentd: ServeProcess,
    containerd_peer_factory: ContainerdFactory,
    test_image: PushedImage,
    tmp_path: Path,
) -> None:
    ctr = requires("ctr")
    containerd = containerd_peer_factory()
    subst = {"$REF": test_image.ref, "$OUT": str(tmp_path / "export.tar")}
    theirs = _play(ctr, containerd.address, IMAGE_STEPS, subst)
    ours = _play(ctr, str(contentd.socket), IMAGE_STEPS, subst)
    for step, expected, got in zip(IMAGE_STEPS, theirs, ours, strict=True):
        assert expected.rc == step.rc, f"containerd: ctr {step.line} -> {expected}"
        if step.ours_rc is not None:
            assert got.rc == step.ours_rc, f"ctr {step.line} -> {got}"
            expected = Outcome(got.rc, expected.stdout, got.stderr)
        assert got == expected, f"ctr {step.line}"

    by_line = {step.line: out for step, out in zip(IMAGE_STEPS, ours, strict=True)}
    assert by_line["images ls -q labels.team==blue"].stdout == ["example.com/copy:1"]
    listed = by_line["images ls"].stdout  # the last plain `images ls` in IMG_NS
    assert any(test_image.digest in line for line in listed)
    assert by_line["content ls -q"].stdout == []  # the last one: everything freed
    check = by_line["images check"]
    assert any("complete (4/4)" in line for line in check.stdout)
    assert any("snapshots" in line for line in check.stderr)
