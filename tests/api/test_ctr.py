"""Stock ``ctr content`` against contentd's Content service (spec §8, checklist 64–67).

The server is a plain backend: ``SingleStoreResolver(LocalStore)`` with a
label store. ctr sends ``containerd-namespace: default`` on every call and
the resolver ignores it; ``ctr content`` needs no other service (no version
or introspection call is made).
"""

from __future__ import annotations

import hashlib
import random
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from contentd.api._pb.containerd.services.content.v1 import content_pb2 as pb
from contentd.api._pb.containerd.services.content.v1 import content_pb2_grpc as pb_grpc
from tests.api.servers import ContentdServer, local_store
from tests.peers.process import CommandError, clean_env
from tests.peers.requires import requires

pytestmark = pytest.mark.containerd


class Ctr:
    def __init__(self, binary: str, server: ContentdServer) -> None:
        self.binary = binary
        self.server = server

    def __call__(
        self, *args: str, input: bytes | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[bytes]:
        # No preexec_fn: forking a process whose gRPC
        # threads are busy serving and then running Python in the child can abort it.
        proc = subprocess.run(
            [self.binary, "--address", self.server.socket, *args],
            input=input,
            stdin=None if input is not None else subprocess.DEVNULL,
            capture_output=True,
            timeout=30,
            env=clean_env(),
            check=False,
        )
        if check and proc.returncode != 0:
            raise CommandError(proc.returncode, proc.args, proc.stdout, proc.stderr)
        return proc

    def text(self, *args: str) -> str:
        return self(*args).stdout.decode()


@pytest.fixture
def ctr(tmp_path: Path) -> Iterator[Ctr]:
    binary = requires("ctr")
    with ContentdServer(local_store(tmp_path / "content")) as server:
        yield Ctr(binary, server)


def _blob(size: int, seed: int) -> tuple[bytes, str]:
    data = random.Random(seed).randbytes(size)
    return data, "sha256:" + hashlib.sha256(data).hexdigest()


def _rows(out: str) -> list[list[str]]:
    return [line.split() for line in out.splitlines()]


def test_ingest_ls_get(ctr: Ctr) -> None:
    data, digest = _blob(1024, 1)
    proc = ctr("content", "ingest", "r1", input=data)
    assert proc.stdout == b"" and proc.stderr == b""
    assert ctr.text("content", "ls", "-q") == digest + "\n"
    rows = _rows(ctr.text("content", "ls"))
    assert rows[0] == ["DIGEST", "SIZE", "AGE", "LABELS"]
    assert rows[1][0] == digest
    assert rows[1][1] == "1.024kB"
    assert rows[1][-1] == "-"
    assert ctr("content", "get", digest).stdout == data
    # content that already exists is a silent success
    assert ctr("content", "ingest", "r2", input=data).stdout == b""
    assert ctr.text("content", "ls", "-q") == digest + "\n"


def test_ingest_with_expectations(ctr: Ctr) -> None:
    data, digest = _blob(5000, 2)
    ctr(
        "content", "ingest", "--expected-size", "5000", "--expected-digest", digest, "r",
        input=data,
    )  # fmt: skip
    assert ctr("content", "get", digest).stdout == data
    wrong = ctr(
        "content", "ingest", "--expected-digest", _blob(10, 3)[1], "r-wrong", input=data,
        check=False,
    )  # fmt: skip
    assert wrong.returncode != 0
    assert b"failed precondition" in wrong.stderr


def test_label_and_filter(ctr: Ctr) -> None:
    data, digest = _blob(256, 4)
    other, other_digest = _blob(256, 5)
    ctr("content", "ingest", "a", input=data)
    ctr("content", "ingest", "b", input=other)
    out = ctr.text("content", "label", digest, "a=b", "c")
    assert set(out.strip().split(",")) == {"a=b", "c=true"}
    row = next(r for r in _rows(ctr.text("content", "ls")) if r[0] == digest)
    assert set(row[-1].split(",")) == {"a=b", "c=true"}
    assert ctr.text("content", "ls", "-q", 'labels."a"==b') == digest + "\n"
    assert ctr.text("content", "ls", "-q", "labels.c") == digest + "\n"
    assert set(
        ctr.text("content", "ls", "-q", "labels.a==b", f"digest=={other_digest}").split()
    ) == {
        digest,
        other_digest,
    }
    assert ctr.text("content", "label", digest, "a=").strip() == "c=true"
    assert ctr.text("content", "ls", "-q", "labels.a") == ""


def test_rm(ctr: Ctr) -> None:
    data, digest = _blob(100, 6)
    ctr("content", "ingest", "r", input=data)
    assert ctr.text("content", "rm", digest) == digest + "\n"
    assert ctr.text("content", "ls", "-q") == ""
    # a local store deletes a missing blob without complaint, so ctr reports it deleted
    # (behind containerd's metadata layer it is NotFound and ctr prints nothing)
    assert ctr.text("content", "rm", digest) == digest + "\n"


def test_active_and_resumed_interrupted_ingest(ctr: Ctr, tmp_path: Path) -> None:
    data, digest = _blob(3 * (1 << 20) + 123, 7)
    cut = (1 << 20) + 77
    interrupted = ctr(
        "content", "ingest", "--expected-size", str(len(data)), "--expected-digest", digest,
        "resume-me", input=data[:cut], check=False,
    )  # fmt: skip
    assert interrupted.returncode != 0
    assert b"unexpected EOF" in interrupted.stderr

    rows = _rows(ctr.text("content", "active"))
    assert rows[0] == ["REF", "SIZE", "AGE"]
    assert rows[1][0] == "resume-me"
    assert rows[1][1] == "1.049MB"
    assert ctr.text("content", "active", "ref==resume-me").count("resume-me") == 1
    assert ctr.text("content", "active", "ref==other").strip().split() == ["REF", "SIZE", "AGE"]

    with ctr.server.channel() as channel:
        status = pb_grpc.ContentStub(channel).Status(pb.StatusRequest(ref="resume-me")).status
        assert status.offset == cut  # what the resumed ingest starts from
        assert status.total == len(data)

    # ctr resumes by seeking its stdin (a pipe fails with "illegal seek"): give it a file
    source = tmp_path / "blob"
    source.write_bytes(data)
    with source.open("rb") as stdin:
        subprocess.run(
            [ctr.binary, "--address", ctr.server.socket, "content", "ingest",
             "--expected-size", str(len(data)), "--expected-digest", digest, "resume-me"],
            stdin=stdin, check=True, capture_output=True, timeout=30,
        )  # fmt: skip
    assert ctr("content", "get", digest).stdout == data
    assert _rows(ctr.text("content", "active")) == [["REF", "SIZE", "AGE"]]
