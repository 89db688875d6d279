"""``contentd export`` / ``contentd import`` against skopeo, umoci, ctr and containerd."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import pytest

from tests.cli.conftest import Cli
from tests.daemon.harness import ServeProcess
from tests.peers.fixtures import ContainerdFactory
from tests.peers.images import PushedImage, build_image, write_oci_layout
from tests.peers.process import run
from tests.peers.requires import requires

pytestmark = pytest.mark.containerd


def _skopeo(*args: str) -> bytes:
    return run([requires("skopeo"), "--insecure-policy", *args], timeout=120).stdout


def _held(cli: Cli) -> set[str]:
    return set(cli("content", "ls", "-q").ok().lines)


def test_export_is_accepted_by_skopeo_and_containerd(
    cli: Cli,
    test_image: PushedImage,
    tmp_path: Path,
    containerd_peer_factory: ContainerdFactory,
) -> None:
    cli("fetch", "--plain-http", "--all-platforms", test_image.ref).ok()
    cli("images", "tag", test_image.ref, "example.com/app:2").ok()
    layout = tmp_path / "layout"
    cli("export", "-o", str(layout), test_image.ref, "example.com/app:2").ok()
    index = json.loads((layout / "index.json").read_text())
    names = [m["annotations"]["io.containerd.image.name"] for m in index["manifests"]]
    assert names == [test_image.ref, "example.com/app:2"]
    assert {m["digest"] for m in index["manifests"]} == {test_image.digest}
    for digest, data in test_image.blobs.items():
        assert (layout / "blobs" / "sha256" / digest[7:]).read_bytes() == data

    inspected = json.loads(_skopeo("inspect", f"oci:{layout}:v1"))
    assert inspected["Digest"] == test_image.digest
    copy = tmp_path / "copy"
    _skopeo("copy", "--all", "--preserve-digests", f"oci:{layout}:2", f"oci:{copy}:2")
    assert json.loads((copy / "index.json").read_text())["manifests"][0]["digest"] == (
        test_image.digest
    )

    archive = tmp_path / "image.tar"
    said = cli("export", "-o", str(archive), test_image.ref).ok().text
    n = len(test_image.blobs)
    assert said.startswith(f"{archive}: 1 image, {n} blob{'s' if n != 1 else ''}, "), said
    _skopeo("inspect", f"oci-archive:{archive}:v1")
    containerd = containerd_peer_factory()
    ctr = requires("ctr")
    base = [ctr, "-a", containerd.address, "-n", "from-contentd"]
    run([*base, "images", "import", "--no-unpack", "--all-platforms", str(archive)])
    rows = run([*base, "images", "ls"]).stdout.decode().splitlines()[1:]
    assert [r.split()[:3:2] for r in rows] == [[test_image.ref, test_image.digest]]
    held = set(run([*base, "content", "ls", "-q"]).stdout.decode().split())
    assert set(test_image.blobs) <= held


def test_export_to_stdout_is_a_tar(cli: Cli, test_image: PushedImage, tmp_path: Path) -> None:
    cli("fetch", "--plain-http", test_image.ref).ok()
    out = cli("export", "-o", "-", test_image.ref).ok().out
    archive = tmp_path / "out.tar"
    archive.write_bytes(out)
    with tarfile.open(archive) as tf:
        names = tf.getnames()
    assert names[0] == "oci-layout" and names[-1] == "index.json"
    amd = test_image.image.platform("linux/amd64")
    assert {f"blobs/sha256/{b.digest[7:]}" for b in amd.layers} <= set(names)


def test_export_refuses_to_write_a_tar_to_a_terminal(cli: Cli, test_image: PushedImage) -> None:
    import os
    import pty

    cli("fetch", "--plain-http", test_image.ref).ok()
    main, terminal = pty.openpty()
    try:
        proc = cli.spawn("export", "-o", "-", test_image.ref, stdout=terminal)
        _, err = proc.communicate(timeout=60)
        os.set_blocking(main, False)
        try:
            written = os.read(main, 1 << 16)
        except BlockingIOError:
            written = b""
    finally:
        os.close(main)
        os.close(terminal)
    assert proc.returncode == 1
    assert "refusing to write a tar to a terminal" in err.decode()
    assert written == b""


def test_import_a_skopeo_layout(cli: Cli, test_image: PushedImage, tmp_path: Path) -> None:
    layout = tmp_path / "from-registry"
    _skopeo(
        "copy",
        "--all",
        "--preserve-digests",
        "--src-tls-verify=false",
        f"docker://{test_image.ref}",
        f"oci:{layout}:v1",
    )
    result = cli("import", "--base-name", "example.com/imported", str(layout)).ok()
    assert result.lines == [f"example.com/imported:v1 {test_image.digest}"]
    assert set(test_image.blobs) <= _held(cli)
    for digest, data in test_image.blobs.items():
        assert cli("content", "get", digest).ok().out == data
    # the manifests carry the references: GC with the image as the only root keeps all
    cli("gc").ok()
    assert set(test_image.blobs) <= _held(cli)
    cli("images", "rm", "--sync", "example.com/imported:v1").ok()
    assert _held(cli) == set()


def test_import_what_ctr_exports(
    cli: Cli, daemon: ServeProcess, test_image: PushedImage, tmp_path: Path
) -> None:
    ctr = requires("ctr")
    other = cli.namespace + "-ctr"
    base = [ctr, "-a", str(daemon.socket), "-n", other]
    run([*base, "content", "fetch", "--plain-http", "--all-platforms", test_image.ref])
    archive = tmp_path / "ctr.tar"
    run([*base, "images", "export", "--all-platforms", str(archive), test_image.ref])
    result = cli("import", str(archive)).ok()
    assert result.lines == [f"{test_image.ref} {test_image.digest}"]
    assert set(test_image.blobs) <= _held(cli)


def test_import_refuses_bad_layouts_and_keeps_nothing_of_them(cli: Cli, tmp_path: Path) -> None:
    image = build_image(seed=77)
    layout = write_oci_layout(image, tmp_path / "bad", "v1")
    noise = image.platform("linux/amd64").layers[1]
    blob = layout / "blobs" / "sha256" / noise.digest[7:]
    spoiled = bytearray(blob.read_bytes())
    spoiled[100] ^= 0xFF
    blob.write_bytes(bytes(spoiled))
    result = cli("import", "--base-name", "x/y", str(layout))
    assert result.code == 1 and "failed precondition" in result.err
    assert noise.digest not in _held(cli)
    assert cli("images", "ls", "-q").ok().lines == []
    assert cli("content", "active").ok().lines[1:] == []

    (tmp_path / "empty").mkdir()
    missing = cli("import", str(tmp_path / "empty"))
    assert missing.code == 1 and missing.err == (
        f"contentd: not found: {tmp_path / 'empty'}: not an OCI image layout: "
        "it has no oci-layout file\n"
    ), missing.err
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "oci-layout").write_text('{"imageLayoutVersion": "2.0.0"}')
    old = cli("import", str(tmp_path / "old"))
    assert old.code == 1 and "not an OCI image layout 1.x" in old.err


def test_import_an_umoci_layout_and_export_it_back(cli: Cli, tmp_path: Path) -> None:
    umoci = requires("umoci")
    layout = tmp_path / "umoci"
    run([umoci, "init", "--layout", str(layout)])
    run([umoci, "new", "--image", f"{layout}:v1"])
    (entry,) = json.loads((layout / "index.json").read_text())["manifests"]
    result = cli("import", "--base-name", "example.com/umoci", str(layout)).ok()
    assert result.lines == [f"example.com/umoci:v1 {entry['digest']}"]
    back = tmp_path / "back"
    cli("export", "-o", str(back), "example.com/umoci:v1").ok()
    run([umoci, "stat", "--image", f"{back}:v1"])  # umoci reads our layout


def _hostile_layout(root: Path, blobs: dict[str, bytes], index: dict[str, object]) -> Path:
    (root / "blobs" / "sha256").mkdir(parents=True)
    (root / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    for digest, data in blobs.items():
        (root / "blobs" / "sha256" / digest[7:]).write_bytes(data)
    (root / "index.json").write_text(json.dumps(index))
    return root


def test_import_verifies_a_manifest_before_reading_what_it_names(cli: Cli, tmp_path: Path) -> None:
    # blobs/sha256/<X> holds an index that is not X's bytes and names X itself: read
    # unverified, it is a cycle; verified, it is a blob whose bytes do not match its name
    mt = "application/vnd.oci.image.index.v1+json"
    name = "sha256:" + "ab" * 32

    def doc(size: int) -> bytes:
        entry = {"mediaType": mt, "digest": name, "size": size}
        return json.dumps({"schemaVersion": 2, "mediaType": mt, "manifests": [entry]}).encode()

    size = len(doc(100))
    assert len(doc(size)) == size
    entry = {"mediaType": mt, "digest": name, "size": size, "annotations": {
        "io.containerd.image.name": "example.com/loop:v1"}}  # fmt: skip
    layout = _hostile_layout(tmp_path / "loop", {name: doc(size)}, {
        "schemaVersion": 2, "manifests": [entry]})  # fmt: skip
    result = cli("import", str(layout))
    assert result.code == 1, result.err
    assert "failed precondition" in result.err and name in result.err, result.err
    assert "Traceback" not in result.err
    assert cli("images", "ls", "-q").ok().lines == []
    assert cli("content", "active").ok().lines[1:] == []


def test_import_refuses_an_oci_layout_file_that_is_not_json(cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "oci-layout").write_bytes(b"\xff not json")
    result = cli("import", str(tmp_path / "junk"))
    assert result.code == 1 and "not an OCI image layout 1.x" in result.err, result.err


def test_import_refuses_indexes_nested_beyond_reason(cli: Cli, tmp_path: Path) -> None:
    # every blob genuine, but index -> index -> ... 1200 deep
    import hashlib

    mt = "application/vnd.oci.image.index.v1+json"
    blobs: dict[str, bytes] = {}
    child: dict[str, object] | None = None
    for _ in range(1200):
        doc = {"schemaVersion": 2, "mediaType": mt, "manifests": [child] if child else []}
        data = json.dumps(doc).encode()
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        blobs[digest] = data
        child = {"mediaType": mt, "digest": digest, "size": len(data)}
    assert child is not None
    child["annotations"] = {"io.containerd.image.name": "example.com/deep:v1"}
    layout = _hostile_layout(tmp_path / "deep", blobs, {"schemaVersion": 2, "manifests": [child]})
    result = cli("import", str(layout))
    assert result.code == 1 and "invalid argument" in result.err and "nested" in result.err, (
        result.err
    )
    assert cli("images", "ls", "-q").ok().lines == []


def test_import_refuses_a_layout_file_that_is_not_a_regular_file(cli: Cli, tmp_path: Path) -> None:
    # a FIFO where index.json should be: opening it for reading would wait for a writer
    import os
    import subprocess

    layout = tmp_path / "fifo"
    layout.mkdir()
    (layout / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    os.mkfifo(layout / "index.json")
    try:
        done = cli.run_process("import", str(layout), timeout=30)
    except subprocess.TimeoutExpired:
        pytest.fail("import waited on a FIFO")
    assert done.returncode == 1 and b"not a regular file" in done.stderr, done.stderr


def test_import_refuses_archives_that_are_not_tars_or_bomb_their_headers(
    cli: Cli, tmp_path: Path
) -> None:
    import gzip
    import io

    junk = tmp_path / "junk.tar"
    junk.write_bytes(b"this is no tar archive" * 100)
    result = cli("import", str(junk))
    assert result.code == 1 and "invalid argument" in result.err, result.err

    # a gzip'd tar whose first member is a 64 MiB pax header (64 KiB on disk): parsing it
    # would hold all of it in memory, so the header is refused unread
    raw = io.BytesIO()
    info = tarfile.TarInfo("././@PaxHeader")
    info.type = tarfile.XHDTYPE
    info.size = 64 << 20
    raw.write(info.tobuf(format=tarfile.USTAR_FORMAT))
    with gzip.open(tmp_path / "bomb.tar.gz", "wb", compresslevel=1) as gz:
        gz.write(raw.getvalue())
        chunk = b"0" * (1 << 20)
        for _ in range(64):
            gz.write(chunk)
    result = cli("import", str(tmp_path / "bomb.tar.gz"))
    assert result.code == 1 and "invalid argument" in result.err, result.err
    assert "tar header of 67108864 bytes" in result.err, result.err
