"""The sans-IO parts of contentd.images: references, platforms, manifests (hostile input),
containerd's ref names and labels, and docker config credentials."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from contentd.content.errors import InvalidArgument
from contentd.content.types import Descriptor
from contentd.images.fetch import ref_key
from contentd.images.media import (
    MT_DOCKER_MANIFEST,
    MT_OCI_INDEX,
    MT_OCI_MANIFEST,
    ManifestError,
    children,
    gc_labels,
    is_non_distributable,
)
from contentd.images.platforms import Platform, parse_platform
from contentd.images.reference import Reference, parse_reference
from contentd.images.registry import Credentials, describe

D = "sha256:" + "a" * 64
E = "sha256:" + "b" * 64


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("127.0.0.1:5000/library/app:1", Reference("127.0.0.1:5000", "library/app", "1")),
        ("registry.example.com/a/b/c", Reference("registry.example.com", "a/b/c", "latest")),
        ("localhost/x@" + D, Reference("localhost", "x", "", D)),
        ("r.io/x:v1@" + D, Reference("r.io", "x", "v1", D)),
        ("[::1]:5000/x:y", Reference("[::1]:5000", "x", "y")),
    ],
)
def test_references(text: str, want: Reference) -> None:
    assert parse_reference(text) == want
    assert parse_reference(str(want)) == want


@pytest.mark.parametrize(
    "text",
    [
        "app:1",  # no host
        "library/app",  # "library" is not a host name
        "r.io/UPPER",
        "r.io/x:" + "t" * 200,
        "r.io/x@sha256:short",
        "r.io/../etc",
        "r.io/x:/y",
        "r.io/",
        "",
    ],
)
def test_bad_references(text: str) -> None:
    with pytest.raises(InvalidArgument):
        parse_reference(text)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        # docker reads these as Docker Hub's; the error said only "hostname required"
        (
            "alpine",
            "hostname required (host[:port]/repository); for Docker Hub write "
            "docker.io/library/alpine",
        ),
        (
            "nosuchhost/x:1",
            "'nosuchhost' is not a host (a host has a '.' or a ':port', or is "
            "'localhost'); for Docker Hub write docker.io/nosuchhost/x:1",
        ),
        ("app@sha256:" + "a" * 64, "write docker.io/library/app@sha256:" + "a" * 64),
        ("127.0.0.1:5000/UPPER", "invalid repository 'UPPER' (a repository name is lowercase)"),
        # a URL, as a registry's web page shows it: it said "hostname required", beside a host
        (
            "http://127.0.0.1:5000/library/app:1",
            "a reference has no scheme: write 127.0.0.1:5000/library/app:1 "
            "(and --plain-http for an HTTP registry)",
        ),
        ("https://r.io/app", "a reference has no scheme: write r.io/app"),
    ],
)
def test_bad_references_say_what_to_write(text: str, says: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        parse_reference(text)
    assert says in str(caught.value.context)


@pytest.mark.parametrize("text", ["/x", "a b/c", "127.0.0.1:5000/a_b_"])
def test_no_hint_where_none_would_parse(text: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        parse_reference(text)
    assert "Docker Hub" not in str(caught.value) and "lowercase" not in str(caught.value)


def test_platforms() -> None:
    assert parse_platform("linux/arm64/v8") == Platform("linux", "arm64")
    assert parse_platform("Linux/x86_64") == Platform("linux", "amd64")
    assert parse_platform("linux/arm") == Platform("linux", "arm", "v7")
    assert parse_platform("linux/arm64").matches({"os": "linux", "architecture": "arm64"})
    assert not parse_platform("linux/arm64").matches({"os": "linux", "architecture": "amd64"})
    for bad in ("", "a/b/c/d", "linux/../x", "lin ux"):
        with pytest.raises(InvalidArgument):
            parse_platform(bad)


def _doc(obj: object) -> bytes:
    return json.dumps(obj).encode()


def test_children_of_an_index_and_a_manifest() -> None:
    index = Descriptor(MT_OCI_INDEX, D, 1)
    data = _doc(
        {
            "mediaType": MT_OCI_INDEX,
            "manifests": [
                {"mediaType": MT_OCI_MANIFEST, "digest": E, "size": 7, "platform": {"os": "l"}}
            ],
        }
    )
    manifests, config, layers = children(index, data)
    assert manifests == [(Descriptor(MT_OCI_MANIFEST, E, 7), {"os": "l"})]
    assert config is None and layers == []
    manifest = Descriptor(MT_DOCKER_MANIFEST, E, 1)
    data = _doc(
        {
            "config": {"mediaType": "c", "digest": D, "size": 2},
            "layers": [{"mediaType": "l", "digest": E, "size": 3, "urls": ["http://x"]}],
        }
    )
    _, config, layers = children(manifest, data)
    assert config == Descriptor("c", D, 2)
    assert layers == [Descriptor("l", E, 3, ("http://x",))]
    labels = gc_labels([], config, layers)
    assert labels == {
        "containerd.io/gc.ref.content.config": D,
        "containerd.io/gc.ref.content.l.0": E,
    }


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"\xff\xfe",
        b"[]",
        _doc({"mediaType": MT_OCI_MANIFEST, "config": "x"}),
        _doc({"config": {"mediaType": "c", "digest": "sha256:../../etc", "size": 1}}),
        _doc({"config": {"mediaType": "c", "digest": D, "size": -1}}),
        _doc({"config": {"mediaType": "c", "digest": D, "size": True}}),
        _doc({"config": {"mediaType": "c", "digest": D, "size": 1}, "layers": {}}),
        _doc({"config": {"mediaType": "c", "digest": D, "size": 1, "annotations": {"a": 1}}}),
        _doc({"mediaType": MT_OCI_INDEX, "config": {"mediaType": "c", "digest": D, "size": 1}}),
        b" " * (5 << 20),
    ],
)
def test_hostile_manifests_are_manifest_errors(body: bytes) -> None:
    with pytest.raises(ManifestError):
        children(Descriptor(MT_OCI_MANIFEST, D, len(body)), body)


def test_ref_keys_and_non_distributable_layers() -> None:
    assert ref_key(Descriptor(MT_OCI_INDEX, D)) == f"index-{D}"
    assert ref_key(Descriptor(MT_DOCKER_MANIFEST, D)) == f"manifest-{D}"
    assert ref_key(Descriptor("application/vnd.oci.image.layer.v1.tar+gzip", D)) == f"layer-{D}"
    assert ref_key(Descriptor("application/vnd.oci.image.config.v1+json", D)) == f"config-{D}"
    assert ref_key(Descriptor("text/plain", D)) == f"unknown-{D}"
    assert is_non_distributable("application/vnd.docker.image.rootfs.foreign.diff.tar.gzip")
    assert not is_non_distributable("application/vnd.oci.image.layer.v1.tar")


def test_credentials_never_show_their_secret(tmp_path: Path) -> None:
    from contentd.cli.credentials import docker_credentials
    from contentd.cli.registry import split_user

    creds = Credentials("alice", "hunter2")
    assert "hunter2" not in repr(creds)
    assert creds.basic() == "Basic " + base64.b64encode(b"alice:hunter2").decode()
    assert split_user("bob:pa:ss") == ("bob", "pa:ss")
    assert split_user("bob") == ("bob", None)
    config = tmp_path / "config.json"
    auth = base64.b64encode(b"carol:s3c:ret").decode()
    config.write_text(
        json.dumps(
            {"auths": {"r.io": {"auth": auth}, "https://q.io": {"username": "u", "password": "p"}}}
        )
    )
    assert docker_credentials("r.io", config) == ("carol", "s3c:ret", str(config))
    assert docker_credentials("q.io", config) == ("u", "p", str(config))
    assert docker_credentials("nowhere.io", config) is None
    config.write_text("{not json")
    assert docker_credentials("r.io", config) is None


def test_transport_errors_are_named_by_errno() -> None:
    err = ConnectionRefusedError(111, "Connection refused")
    wrapper = OSError("wrapped")
    wrapper.__cause__ = err
    reason, transient = describe(wrapper)
    assert transient and "ECONNREFUSED" in reason and "refused" not in reason.replace("REFUSED", "")


def test_a_tls_failure_names_plain_http() -> None:
    import ssl
    import urllib.error

    tls = ssl.SSLError(1, "[SSL: WRONG_VERSION_NUMBER] wrong version number")
    tls.reason = "WRONG_VERSION_NUMBER"  # a str, as the ssl module sets it
    reason, transient = describe(urllib.error.URLError(tls))
    assert reason.startswith("TLS failed (WRONG_VERSION_NUMBER)") and "--plain-http" in reason
    assert not transient
