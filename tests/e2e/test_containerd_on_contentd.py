"""containerd 1.6.20 with contentd as its proxy content plugin (issue 4, spec §6-§7).

containerd's built-in content store is disabled; every byte it stores goes to a plain
``contentd serve`` through ``[proxy_plugins.contentd]``. These tests drive containerd
with stock ``ctr`` and look at contentd directly: its pinned namespace (header-less
ProxyStore, what containerd sees), another tenant's namespace, and the blob files.
"""

from __future__ import annotations

import io
import subprocess
import tarfile
import time
from pathlib import Path

import pytest

from contentd import Descriptor, NotFound, read_blob, write_blob
from tests.e2e.conftest import StackFactory
from tests.e2e.stack import PROXY_PLUGIN, Stack, blob
from tests.peers.images import PushedImage
from tests.peers.process import clean_env

pytestmark = pytest.mark.containerd


def _write(store_stack: Stack, namespace: str, lease: str, data: bytes, digest: str) -> None:
    store = store_stack.tenant(namespace, lease)
    write_blob(
        store, f"w-{digest[7:19]}", io.BytesIO(data), Descriptor(digest=digest, size=len(data))
    )


def test_containerd_loads_contentd_as_its_content_plugin(stack: Stack) -> None:
    plugins = stack.containerd.plugins()
    assert plugins[f"io.containerd.content.v1.{PROXY_PLUGIN}"] == "ok"
    assert "io.containerd.content.v1.content" not in plugins  # disabled: not even listed
    # the content chain on top of it came up
    for uri in (
        "io.containerd.metadata.v1.bolt",
        "io.containerd.gc.v1.scheduler",
        "io.containerd.service.v1.content-service",
        "io.containerd.grpc.v1.content",
    ):
        assert plugins[uri] == "ok", uri
    detailed = stack.containerd.ctr("plugins", "ls", "--detailed", f"id=={PROXY_PLUGIN}")
    assert f"address      {stack.contentd.socket}" in detailed.stdout.decode()


def test_ctr_content_lands_in_contentd(stack: Stack, tmp_path: Path) -> None:
    big, big_digest = blob(b"big", (3 << 20) + 5)  # more than one 1 MiB Read chunk
    small, small_digest = blob(b"small", 1000)
    ctr = stack.containerd.ctr
    ctr("content", "ingest", "big", input=big)
    ctr("content", "ingest", "small", input=small)

    assert stack.containerd_digests() == {big_digest, small_digest}
    assert ctr("content", "get", big_digest).stdout == big
    assert ctr("content", "get", small_digest).stdout == small
    rows = {
        r.split()[0]: r.split()[1] for r in ctr("content", "ls").stdout.decode().splitlines()[1:]
    }
    assert rows == {big_digest: "3.146MB", small_digest: "1kB"}

    # the bytes are in contentd: on its disk, and in its pinned namespace
    assert stack.blob_file(big_digest).read_bytes() == big
    assert stack.blob_file(small_digest).read_bytes() == small
    assert stack.pinned_digests() == {big_digest, small_digest}
    assert read_blob(stack.pinned(), big_digest) == big
    assert stack.pinned().info(small_digest).size == len(small)
    # ...and nowhere else: containerd's namespace is containerd's, not contentd's
    with pytest.raises(NotFound):
        stack.tenant("default").info(big_digest)

    # an interrupted ingest is an open ingest in contentd, listed back through containerd
    part, part_digest = blob(b"interrupted", (2 << 20) + 3)
    cut = (1 << 20) + 11
    args = ("--expected-size", str(len(part)), "--expected-digest", part_digest, "part")
    assert ctr("content", "ingest", *args, input=part[:cut], check=False).returncode != 0
    active = ctr("content", "active").stdout.decode().splitlines()[1:]
    assert [line.split()[:2] for line in active] == [["part", "1.049MB"]]
    [status] = stack.pinned().list_statuses()
    assert status.ref == "default/1/part"  # containerd's backend ref
    assert status.offset == cut

    # rm is a containerd metadata delete; containerd's GC then deletes in contentd
    assert ctr("content", "rm", big_digest).stdout.decode().split() == [big_digest]
    assert stack.containerd_digests() == {small_digest}
    stack.containerd_gc()
    # `ctr content ingest` uses no lease: containerd's GC takes the small blob too
    assert stack.containerd_digests() == set()
    assert stack.pinned_digests() == set()
    # the open ingest has not expired (24 h): containerd keeps it, and so does contentd
    assert [s.ref for s in stack.pinned().list_statuses()] == ["default/1/part"]

    # contentd's GC removes the bytes nobody holds any more, and keeps the open ingest
    stack.contentd_gc()
    assert stack.blob_files() == set()
    assert stack.pinned().status("default/1/part").offset == cut

    # the ingest resumes through containerd (ctr seeks its stdin: give it a file)
    source = tmp_path / "part"
    source.write_bytes(part)
    with source.open("rb") as stdin:
        subprocess.run(
            ["ctr", "--address", stack.containerd.address, "content", "ingest", *args],
            stdin=stdin,
            check=True,
            capture_output=True,
            timeout=60,
            env=clean_env(),
        )
    assert ctr("content", "get", part_digest).stdout == part
    assert stack.blob_file(part_digest).read_bytes() == part
    assert stack.pinned().list_statuses() == []


def test_contentd_gc_keeps_what_containerd_holds(stack: Stack) -> None:
    """contentd's own GC never deletes in the pinned namespace: containerd decides there."""
    unleased, unleased_digest = blob(b"no lease, no root", 4096)
    rooted, rooted_digest = blob(b"gc.root in containerd", 2048)
    stray, stray_digest = blob(b"an unrooted blob in a contentd namespace", 512)
    ctr = stack.containerd.ctr
    ctr("content", "ingest", "u", input=unleased)
    ctr("content", "ingest", "r", input=rooted)
    ctr("content", "label", rooted_digest, "containerd.io/gc.root=yes")
    # a blob no lease holds in an ordinary contentd namespace: contentd's GC takes it
    write_blob(
        stack.tenant("scratch"),
        "stray",
        io.BytesIO(stray),
        Descriptor(digest=stray_digest, size=len(stray)),
    )

    stack.contentd_gc()
    with pytest.raises(NotFound):
        stack.tenant("scratch").info(stray_digest)  # the collection did run
    assert not stack.blob_file(stray_digest).exists()
    assert stack.pinned_digests() == {unleased_digest, rooted_digest}
    assert ctr("content", "get", unleased_digest).stdout == unleased
    assert ctr("content", "get", rooted_digest).stdout == rooted

    # then containerd's GC decides: the unleased blob goes, the rooted one stays
    stack.containerd_gc()
    assert stack.containerd_digests() == {rooted_digest}
    assert stack.pinned_digests() == {rooted_digest}
    stack.contentd_gc()
    assert stack.blob_files() == {rooted_digest}
    assert ctr("content", "get", rooted_digest).stdout == rooted


@pytest.mark.parametrize("policy", ["shared", "isolated"])
def test_containerd_gc_never_touches_another_namespace(
    make_stack: StackFactory, policy: str
) -> None:
    stack = make_stack(policy=policy)
    same, same_digest = blob(b"in containerd and in the other tenant", 300_000)
    own, own_digest = blob(b"containerd's own", 5000)
    other, other_digest = blob(b"the other tenant's own", 7000)
    kept, kept_digest = blob(b"containerd keeps this one", 3000)
    later, later_digest = blob(b"containerd's first, then the other tenant's too", 9000)

    # another tenant of contentd holds two blobs under a lease
    stack.create_lease("other", "keep")
    _write(stack, "other", "keep", same, same_digest)
    _write(stack, "other", "keep", other, other_digest)

    ctr = stack.containerd.ctr
    ctr("content", "ingest", "same", input=same)
    ctr("content", "ingest", "own", input=own)
    ctr("content", "ingest", "kept", input=kept)
    ctr("content", "label", kept_digest, "containerd.io/gc.root=yes")
    ctr("content", "ingest", "later", input=later)
    # the other way round: the tenant writes what containerd already has
    _write(stack, "other", "keep", later, later_digest)

    # containerd sees its own blobs only, never the other tenant's
    assert stack.pinned_digests() == {same_digest, own_digest, kept_digest, later_digest}
    with pytest.raises(NotFound):
        stack.pinned().info(other_digest)
    assert ctr("content", "get", other_digest, check=False).returncode != 0
    # the bytes both hold are stored once
    assert stack.blob_files() == {
        same_digest,
        own_digest,
        other_digest,
        kept_digest,
        later_digest,
    }

    # open ingests: the other tenant's, and one in the pinned namespace that containerd
    # has no record of (as after a crash of containerd mid-write)
    tenant_writer = stack.tenant("other", "keep").writer("upload", 100, None)
    tenant_writer.write(b"t" * 40)
    tenant_writer.close()
    orphan = stack.pinned().writer("default/1/orphan", 100, None)
    orphan.write(b"o" * 30)
    orphan.close()
    assert [s.ref for s in stack.pinned().list_statuses()] == ["default/1/orphan"]

    stack.containerd_gc()
    assert stack.containerd_digests() == {kept_digest}
    assert stack.pinned_digests() == {kept_digest}
    # containerd's GC aborted the backend ingest it did not know, and only that one
    assert stack.pinned().list_statuses() == []
    assert stack.tenant("other").status("upload").offset == 40
    other_store = stack.tenant("other")
    assert {i.digest for i in other_store.walk()} == {same_digest, other_digest, later_digest}
    assert read_blob(other_store, same_digest) == same
    assert read_blob(other_store, other_digest) == other

    stack.contentd_gc()
    assert stack.blob_files() == {same_digest, other_digest, kept_digest, later_digest}
    assert read_blob(other_store, same_digest) == same
    assert read_blob(other_store, other_digest) == other
    assert read_blob(other_store, later_digest) == later
    assert ctr("content", "get", kept_digest).stdout == kept

    # once the other tenant lets go, contentd's GC frees the bytes
    stack.delete_lease("other", "keep", sync=True)
    assert stack.blob_files() == {kept_digest}


@pytest.mark.registry
def test_pull_and_export_a_multi_platform_image(
    stack: Stack, test_image: PushedImage, tmp_path: Path
) -> None:
    ctr = stack.containerd.ctr
    blobs = test_image.blobs
    shared_layer = test_image.image.layer_digests[1]  # the 512 KiB noise layer
    # another tenant already holds one of the layers
    stack.create_lease("other", "keep")
    _write(stack, "other", "keep", blobs[shared_layer], shared_layer)

    ctr("images", "pull", "--plain-http", "--all-platforms", test_image.ref, timeout=120)
    assert stack.ctr_lines("images", "ls", "-q") == [test_image.ref]
    assert stack.containerd_digests() == set(blobs)
    assert stack.pinned_digests() == set(blobs)
    for digest, data in blobs.items():
        assert stack.blob_file(digest).read_bytes() == data, digest
    assert stack.pinned().list_statuses() == []

    def export() -> dict[str, bytes]:
        out = tmp_path / "image.tar"
        out.unlink(missing_ok=True)
        ctr("images", "export", "--all-platforms", str(out), test_image.ref)
        found: dict[str, bytes] = {}
        with tarfile.open(out) as tar:
            for member in tar.getmembers():
                if member.isfile() and member.name.startswith("blobs/sha256/"):
                    f = tar.extractfile(member)
                    assert f is not None
                    found["sha256:" + member.name.rsplit("/", 1)[1]] = f.read()
        return found

    exported = export()
    assert set(exported) == set(blobs)
    for digest, data in blobs.items():
        assert exported[digest] == data, digest

    # both GCs run: the image holds everything in containerd, so nothing goes
    stack.containerd_gc()
    stack.contentd_gc()
    assert stack.pinned_digests() == set(blobs)
    assert export() == blobs

    # removing the image frees its blobs in containerd and in the pinned namespace,
    # but not the layer the other tenant holds
    ctr("images", "rm", "--sync", test_image.ref)
    assert stack.containerd_digests() == set()
    assert stack.pinned_digests() == set()
    stack.contentd_gc()
    assert stack.blob_files() == {shared_layer}
    assert read_blob(stack.tenant("other"), shared_layer) == blobs[shared_layer]


def test_either_side_restarts(stack: Stack) -> None:
    data, digest = blob(b"survives restarts", 70_000)
    ctr = stack.containerd.ctr
    ctr("content", "ingest", "r", input=data)
    ctr("content", "label", digest, "containerd.io/gc.root=yes")

    # contentd restarts under a running containerd: its proxy connection comes back
    stack.close()
    stack.contentd.stop()
    stack.contentd.start()
    deadline = time.monotonic() + 30
    while (got := ctr("content", "get", digest, check=False)).returncode != 0:
        assert time.monotonic() < deadline, got.stderr.decode()
        time.sleep(0.05)
    assert got.stdout == data
    assert stack.pinned_digests() == {digest}

    # containerd restarts on the same contentd: its records and contentd's bytes still agree
    stack.containerd.stop()
    stack.containerd.start()
    assert stack.containerd_digests() == {digest}
    stack.containerd_gc()
    stack.contentd_gc()
    assert ctr("content", "get", digest).stdout == data
    assert stack.blob_files() == {digest}
