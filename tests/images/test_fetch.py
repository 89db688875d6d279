"""``contentd fetch`` against a real docker-registry (images built offline, pushed with skopeo)."""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.cli.conftest import Cli, Result
from tests.daemon.harness import ServeProcess
from tests.peers.counting_proxy import CountingProxy
from tests.peers.images import PushedImage, build_image, build_random_image, push_image
from tests.peers.process import clean_env, run
from tests.peers.registry import RegistryPeer
from tests.peers.regproxy import RegistryProxy
from tests.peers.requires import requires
from tests.peers.tokenauth import TokenServer

pytestmark = pytest.mark.containerd

CHUNK = 1 << 20  # what the daemon reads from a response per call


def _fetch(cli: Cli, ref: str, *extra: str) -> Result:
    return cli("fetch", "--plain-http", *extra, ref)


def _labels(cli: Cli, namespace: str | None = None) -> dict[str, dict[str, str]]:
    docs = cli("--output", "jsonl", "content", "ls", namespace=namespace).ok().json_lines()
    return {doc["digest"]: doc["labels"] or {} for doc in docs}


def test_fetch_every_blob_checked_labelled_as_ctr_and_listed(
    cli: Cli, daemon: ServeProcess, test_image: PushedImage
) -> None:
    out = _fetch(cli, test_image.ref, "--all-platforms").ok()
    assert out.lines == [f"{test_image.ref} {test_image.digest}"]
    for digest, data in test_image.blobs.items():
        assert cli("content", "get", digest).ok().out == data
    assert set(_labels(cli)) == set(test_image.blobs)
    # stock ctr sees the image, and a client-side ctr fetch labels every blob the same way
    ctr = requires("ctr")
    base = [ctr, "-a", str(daemon.socket)]
    listed = run([*base, "-n", cli.namespace, "images", "ls", "-q"]).stdout.decode().split()
    assert listed == [test_image.ref]
    other = cli.namespace + "-ctr"
    run([*base, "-n", other, "content", "fetch", "--plain-http", "--all-platforms", test_image.ref])
    assert _labels(cli) == _labels(cli, other)
    # the image roots everything: a collection keeps it all, removing the image frees it
    cli("gc").ok()
    assert set(_labels(cli)) == set(test_image.blobs)
    cli("images", "rm", "--sync", test_image.ref).ok()
    assert _labels(cli) == {}


def test_platform_selection(cli: Cli, test_image: PushedImage) -> None:
    _fetch(cli, test_image.ref, "--platform", "linux/arm64").ok()
    arm = test_image.image.platform("linux/arm64")
    amd = test_image.image.platform("linux/amd64")
    held = set(_labels(cli))
    assert {arm.manifest.digest, arm.config.digest, *(b.digest for b in arm.layers)} <= held
    assert amd.manifest.digest not in held and amd.config.digest not in held
    index_labels = _labels(cli)[test_image.digest]
    assert index_labels["containerd.io/gc.ref.content.m.0"] == arm.manifest.digest
    assert "containerd.io/gc.ref.content.m.1" not in index_labels


def test_a_platform_the_index_does_not_have_fails_and_leaves_nothing(
    cli: Cli, test_image: PushedImage
) -> None:
    """`--platform linux/s390x` of an amd64/arm64 index used to exit 0 having stored the
    index alone, with an image record whose manifests were all missing. As `ctr images
    pull`: not found, naming what the index has; no image, no lease, no blob."""
    ns = "no-such-platform"
    result = cli("fetch", "--plain-http", "--platform", "linux/s390x", test_image.ref, namespace=ns)
    assert result.code == 1
    err = result.err.strip().splitlines()[-1]
    assert err.startswith("contentd: not found: no match for platform linux/s390x in index ")
    assert "linux/amd64" in err and "linux/arm64" in err and "--all-platforms" in err
    assert cli("images", "ls", "-q", namespace=ns).ok().text == ""
    assert "contentd.fetch." not in cli("leases", "ls", namespace=ns).ok().text
    assert cli("content", "ls", "-q", namespace=ns).ok().text == ""


def _fresh(registry: RegistryPeer, seed: int, repository: str) -> PushedImage:
    """An image no other test fetched (blobs another namespace holds are shared, not sent)."""
    requires("skopeo")
    return push_image(build_image(seed=seed), registry, repository, "v1")


def test_fetch_twice_downloads_nothing_the_second_time(
    cli: Cli, proxy: RegistryProxy, registry_peer: RegistryPeer
) -> None:
    test_image = _fresh(registry_peer, 101, "contentd/twice")
    ref = f"{proxy.host}/{test_image.repository}:{test_image.tag}"
    _fetch(cli, ref, "--all-platforms").ok()
    noise = test_image.image.platform("linux/amd64").layers[1]  # the seed's own layer
    assert proxy.served[noise.digest] == noise.size
    proxy.served.clear()
    proxy.requests.clear()
    result = _fetch(cli, ref, "--all-platforms").ok()
    assert result.lines == [f"{ref} {test_image.digest}"]
    assert sum(proxy.served.values()) == 0
    # one HEAD to resolve the tag; manifests come from the store
    assert [r[0] for r in proxy.requests] == ["HEAD"]


def test_blobs_another_namespace_holds_are_reported_linked_not_downloaded(
    cli: Cli, proxy: RegistryProxy, registry_peer: RegistryPeer
) -> None:
    test_image = _fresh(registry_peer, 103, "contentd/linked")
    documents = 1 + len(test_image.image.manifest_digests)  # the index and its manifests
    leaves = len(test_image.blobs) - documents
    ref = f"{proxy.host}/{test_image.repository}:{test_image.tag}"
    _fetch(cli, ref, "--all-platforms").ok()  # (its base layers may be linked already)
    proxy.served.clear()
    other = cli.namespace + "-b"
    second = cli("fetch", "--plain-http", "--all-platforms", ref, namespace=other).ok()
    assert sum(proxy.served.values()) == 0  # no blob crossed the network
    lines = second.err.splitlines()
    linked = [line for line in lines if ": linked " in line]
    assert len(linked) == leaves, second.err
    assert all(line.endswith("(another namespace's copy: nothing downloaded)") for line in linked)
    assert all(line.startswith(("config-", "layer-")) for line in linked)
    # the index and manifests are read from the registry again: those are downloads
    done = [line for line in lines if ": done " in line]
    assert len(done) == documents and all(
        line.startswith(("index-", "manifest-")) for line in done
    ), second.err
    summary = lines[-1]
    assert summary.startswith(f"fetch: {documents} blobs ("), summary
    assert "downloaded in " in summary and f"{leaves} linked from another namespace" in summary


def test_resume_after_the_registry_dies_mid_layer(cli: Cli) -> None:
    requires("docker-registry", "skopeo")
    size = 6 << 20
    image = build_random_image((size,), seed=11)
    layer = image.platforms[0].layers[0].digest
    with RegistryPeer() as registry, RegistryProxy("") as proxy:
        registry.start()
        pushed = push_image(image, registry, "contentd/big", "v1")
        proxy.upstream = registry.host
        proxy.cut_after[layer] = 3 << 20
        ref = f"{proxy.host}/{pushed.repository}:{pushed.tag}"
        results: list[Result] = []
        worker = threading.Thread(target=lambda: results.append(_fetch(cli, ref)))
        worker.start()
        assert proxy.cut_reached.wait(60)
        registry.stop()  # killed mid-layer ...
        proxy.release()  # ... and the connection it was sending on drops
        worker.join(120)
        (failed,) = results
        assert failed.code == 1 and "unavailable" in failed.err
        first = proxy.served[layer]
        active = cli("--output", "jsonl", "content", "active").ok().json_lines()
        offset = {a["ref"]: a["offset"] for a in active}[f"layer-{layer}"]
        assert 0 < offset <= first

        registry.start()  # back, on another port: the proxy follows it
        proxy.upstream = registry.host
        del proxy.cut_after[layer]
        proxy.served.clear()
        proxy.requests.clear()
        _fetch(cli, ref).ok()
        again = proxy.served[layer]
        assert again == size - offset  # only the rest: nothing re-sent
        assert again < (size - first) + 2 * CHUNK
        ranges = [r[2] for r in proxy.requests if r[1].endswith(layer)]
        assert ranges == [f"bytes={offset}-"]
    assert cli("content", "get", layer).ok().out == image.platforms[0].layers[0].data


def test_ctrl_c_names_the_blobs_under_way_and_the_lease_that_keeps_them(
    cli: Cli, proxy: RegistryProxy, registry_peer: RegistryPeer
) -> None:
    """The layer under way is named (its ingest opened before any of its bytes came), and
    what the user is told is what happens: the lease holds the ingest, fetching again
    resumes it and deletes the lease."""
    requires("skopeo")
    size = 6 << 20
    image = build_random_image((size,), seed=21)
    pushed = push_image(image, registry_peer, "contentd/interrupted", "v1")
    layer = image.platforms[0].layers[0].digest
    proxy.cut_after[layer] = 1 << 20  # then the proxy waits: the download hangs there
    ref = f"{proxy.host}/{pushed.repository}:{pushed.tag}"
    proc = cli.spawn("fetch", "--plain-http", ref)
    try:
        assert proxy.cut_reached.wait(60)
        time.sleep(0.5)  # the layer's first message is on its way before its GET
        proc.send_signal(signal.SIGINT)
        _, err_bytes = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
        proxy.release()
    err = err_bytes.decode()
    assert proc.returncode == 130, err
    lease = [line for line in cli("leases", "ls", "-q").ok().lines if line.startswith("contentd.")]
    assert len(lease) == 1, err
    note = err[err.index("contentd: interrupted\n") :].splitlines()
    assert note[1].startswith(f"fetch of {ref} stopped: "), err
    assert note[1].endswith(", 1 under way (as last reported):"), err
    assert note[2].startswith(f"  layer-{layer}  ") and note[2].endswith(" of 6.291MB"), err
    assert f"under lease {lease[0]} until a fetch of {ref} succeeds" in note[3]
    # the lease is this namespace's: the command as printed names it
    assert note[4].endswith(
        f"`contentd -n {cli.namespace} leases rm --sync {lease[0]}` discards them"
    )
    (shown,) = cli("--output", "json", "leases", "ls").ok().json()
    assert shown["labels"]["contentd.io/fetch.ref"] == ref
    active = [a["ref"] for a in cli("--output", "json", "content", "active").ok().json()]
    assert active == [f"layer-{layer}"]

    proxy.cut_after.clear()
    again = _fetch(cli, ref).ok()
    assert f"layer-{layer}: done 6.291MB (resumed at " in again.err, again.err
    assert cli("leases", "ls", "-q").ok().lines == []
    assert cli("content", "get", layer).ok().out == image.platforms[0].layers[0].data


def test_a_fetch_that_fails_before_storing_anything_leaves_no_lease(
    cli: Cli, proxy: RegistryProxy, registry_peer: RegistryPeer
) -> None:
    test_image = _fresh(registry_peer, 104, "contentd/no-lease")
    proxy.forbid.add("GET")  # the tag resolves (HEAD), the index cannot be read
    ref = f"{proxy.host}/{test_image.repository}:{test_image.tag}"
    failed = _fetch(cli, ref)
    assert failed.code == 1 and "permission denied" in failed.err, failed.err
    assert cli("leases", "ls", "-q").ok().lines == []
    proxy.forbid.clear()
    _fetch(cli, ref).ok()


def test_each_attempt_renews_the_fetch_lease(
    cli: Cli, proxy: RegistryProxy, registry_peer: RegistryPeer
) -> None:
    """An earlier attempt's lease, 10 minutes from its end, gets 24 h again when the fetch
    is tried again: it must not expire (and what it keeps be collected) half-way."""
    from datetime import UTC, datetime, timedelta

    from contentd.cli.registry import _fetch_lease

    test_image = _fresh(registry_peer, 105, "contentd/renew")
    ref = f"{proxy.host}/{test_image.repository}:{test_image.tag}"
    lease = _fetch_lease(ref)
    cli("leases", "create", "--id", lease, "--expires", "10m").ok()
    cli("content", "ingest", "--lease", lease, "held", input=b"kept by the lease").ok()
    proxy.forbid.add("GET")  # this attempt fails, and keeps the lease (it holds a blob)
    assert _fetch(cli, ref).code == 1
    (shown,) = [x for x in cli("--output", "json", "leases", "ls").ok().json() if x["id"] == lease]
    expire = datetime.fromisoformat(shown["labels"]["containerd.io/gc.expire"])
    assert expire > datetime.now(UTC) + timedelta(hours=23), shown
    proxy.forbid.clear()
    _fetch(cli, ref).ok()
    assert lease not in cli("leases", "ls", "-q").ok().lines


def test_corrupted_blob_is_refused_and_nothing_of_it_kept(
    cli: Cli, proxy: RegistryProxy, registry_peer: RegistryPeer
) -> None:
    test_image = _fresh(registry_peer, 102, "contentd/corrupt")
    noise = test_image.image.platform("linux/amd64").layers[1]
    proxy.corrupt.add(noise.digest)
    ref = f"{proxy.host}/{test_image.repository}:{test_image.tag}"
    result = _fetch(cli, ref)
    assert result.code == 1
    assert "failed precondition" in result.err and noise.digest in result.err
    assert noise.digest not in _labels(cli)
    assert cli("content", "active").ok().lines[1:] == []
    assert cli("images", "ls", "-q").ok().lines == []  # no image record either
    proxy.corrupt.clear()
    _fetch(cli, ref).ok()
    assert cli("content", "get", noise.digest).ok().out == noise.data


def test_basic_auth_from_flag_and_docker_config(
    cli: Cli, daemon: ServeProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    requires("docker-registry", "skopeo")
    with RegistryPeer(htpasswd={"alice": "s3cret-pw"}) as registry:
        registry.start()
        pushed = push_image(
            build_image(seed=5), registry, "private/app", "v1", creds="alice:s3cret-pw"
        )
        monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "empty"))
        anonymous = _fetch(cli, pushed.ref)
        assert anonymous.code == 1 and "authentication required, no credentials" in anonymous.err
        assert anonymous.err.startswith("contentd: unauthenticated: ")  # 401, not a precondition
        # what to do about it
        assert f"give credentials: --user USER[:PASSWORD], or `docker login {registry.host}`" in (
            anonymous.err
        )
        wrong = _fetch(cli, pushed.ref, "--user", "alice:nope")
        assert wrong.code == 1 and "refused for the given credentials" in wrong.err
        assert "check the user name and password given with --user" in wrong.err
        _fetch(cli, pushed.ref, "--user", "alice:s3cret-pw").ok()
        cli("images", "rm", "--sync", pushed.ref).ok()
        # ~/.docker/config.json's auths entry, as `docker login` writes it
        config = tmp_path / "docker"
        config.mkdir()
        auth = "YWxpY2U6czNjcmV0LXB3"  # base64("alice:s3cret-pw")
        (config / "config.json").write_text(json.dumps({"auths": {registry.host: {"auth": auth}}}))
        monkeypatch.setenv("DOCKER_CONFIG", str(config))
        _fetch(cli, pushed.ref).ok()
        assert pushed.digest in set(_labels(cli))
        # a stale entry: the advice names the file and docker login
        stale = {"auths": {registry.host: {"username": "alice", "password": "old-pw"}}}
        (config / "config.json").write_text(json.dumps(stale))
        refused = _fetch(cli, pushed.ref, "--name", "stale")
        assert refused.err.startswith("contentd: unauthenticated: "), refused.err
        assert f"the credentials from {config / 'config.json'} were refused" in refused.err
        assert f"`docker login {registry.host}`" in refused.err
    assert "s3cret-pw" not in daemon.log_text()


def test_credentials_from_a_docker_credential_helper(
    cli: Cli, daemon: ServeProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.cli.test_credentials import NOT_FOUND, answering, write_helper

    requires("docker-registry", "skopeo")
    bindir = tmp_path / "bin"
    log = tmp_path / "asked"
    write_helper(bindir, "good", answering("alice", "h3lper-pw", log))
    write_helper(bindir, "none", NOT_FOUND)
    monkeypatch.setenv("PATH", f"{bindir}:{os.environ['PATH']}")
    config = tmp_path / "docker"
    config.mkdir()
    monkeypatch.setenv("DOCKER_CONFIG", str(config))
    with RegistryPeer(htpasswd={"alice": "h3lper-pw"}) as registry:
        registry.start()
        pushed = push_image(
            build_image(seed=7), registry, "private/helped", "v1", creds="alice:h3lper-pw"
        )
        doc = {"credHelpers": {registry.host: "good"}, "credsStore": "none"}
        (config / "config.json").write_text(json.dumps(doc))
        fetched = _fetch(cli, pushed.ref, "--all-platforms").ok()
        assert log.read_text() == f"get|{registry.host}\n"  # docker's protocol: host on stdin
        target = f"{registry.host}/private/copied:v1"
        cli("push", "--plain-http", target, pushed.ref).ok()
        assert "h3lper-pw" not in fetched.err + daemon.log_text()
        # the store has nothing for this host: anonymous, and the registry's refusal says so
        (config / "config.json").write_text(json.dumps({"credsStore": "none"}))
        refused = _fetch(cli, target)
        assert refused.code == 1 and "no credentials" in refused.err
        # a helper that fails is named, and the fetch goes on anonymously
        (config / "config.json").write_text(json.dumps({"credsStore": "gone"}))
        gone = _fetch(cli, target)
        assert "docker-credential-gone is not on PATH" in gone.err
        assert gone.code == 1 and "no credentials" in gone.err


def test_identity_token_is_traded_at_the_token_service(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.cli.test_credentials import answering, write_helper

    requires("docker-registry", "skopeo")
    tokens = TokenServer(tmp_path, users={"bob": "t0ken-pw"}, refresh_tokens={"id-7": "bob"})
    bindir = tmp_path / "bin"
    write_helper(bindir, "ident", answering("<token>", "id-7", tmp_path / "asked"))
    monkeypatch.setenv("PATH", f"{bindir}:{os.environ['PATH']}")
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    (tmp_path / "config.json").write_text(json.dumps({"credsStore": "ident"}))
    try:
        with RegistryPeer(auth=tokens.registry_auth()) as registry:
            registry.start()
            pushed = push_image(
                build_image(seed=8),
                registry,
                "private/idt",
                "v1",
                creds="bob:t0ken-pw",
                verify=False,
            )
            tokens.issued.clear()
            _fetch(cli, pushed.ref).ok()
            # docker's OAuth2 form: the identity token as a refresh token, POSTed
            assert tokens.posted and all(
                f["grant_type"] == ["refresh_token"] and f["refresh_token"] == ["id-7"]
                for f in tokens.posted
            )
            assert tokens.issued == ["repository:private/idt:pull"]
            # a wrong token is the token service's refusal
            tokens.refresh_tokens.clear()
            refused = _fetch(cli, pushed.ref, "--name", "again")
            assert refused.code == 1 and "token service refused" in refused.err
    finally:
        tokens.close()


def test_bearer_tokens_from_the_registrys_token_service(cli: Cli, tmp_path: Path) -> None:
    requires("docker-registry", "skopeo")
    tokens = TokenServer(tmp_path, users={"bob": "t0ken-pw"})
    try:
        with RegistryPeer(auth=tokens.registry_auth()) as registry:
            registry.start()
            image = build_image(seed=6)
            pushed = push_image(
                image, registry, "private/tok", "v1", creds="bob:t0ken-pw", verify=False
            )
            tokens.issued.clear()
            anonymous = _fetch(cli, pushed.ref)
            assert anonymous.code == 1 and "token service refused" in anonymous.err
            _fetch(cli, pushed.ref, "--all-platforms", "--user", "bob:t0ken-pw").ok()
            assert set(tokens.issued) == {"repository:private/tok:pull"}
            for digest, data in image.blobs.items():
                assert cli("content", "get", digest).ok().out == data
            # and push with a token for pull,push
            target = f"{registry.host}/private/copy:v1"
            cli("push", "--plain-http", "--user", "bob:t0ken-pw", target, pushed.ref).ok()
            assert any("private/copy:" in s and "push" in s for s in tokens.issued)
            # the mount's challenge also asked for pull on the source repository
            assert any("repository:private/tok:pull" in s.split(" ")[1:] for s in tokens.issued)
            again = _fetch(cli, target, "--user", "bob:t0ken-pw", "--name", "copy")
            assert again.ok().lines == [f"copy {pushed.digest}"]
    finally:
        tokens.close()


@pytest.mark.parametrize(
    ("ref", "message"),
    [
        ("nohost", "hostname required"),
        ("127.0.0.1:5000/UPPER:tag", "invalid repository"),
        ("127.0.0.1:1/x:y", "unreachable (ECONNREFUSED)"),
    ],
)
def test_bad_references(cli: Cli, ref: str, message: str) -> None:
    result = _fetch(cli, ref)
    assert result.code == 1
    assert message in result.err


def test_missing_tag_is_not_found(cli: Cli, test_image: PushedImage) -> None:
    result = _fetch(cli, f"{test_image.host}/{test_image.repository}:nope")
    assert result.code == 1 and "not found" in result.err


def test_an_http_registry_without_plain_http_says_so(cli: Cli, test_image: PushedImage) -> None:
    """TLS to a plain-HTTP registry fails with a hint at --plain-http (ssl.SSLError's
    ``reason`` is a str: following it as an exception was 'unknown: AttributeError')."""
    pushed = test_image.ref.rsplit(":", 1)[0] + ":tls"
    for args in (("fetch", test_image.ref), ("push", pushed, test_image.ref)):
        result = cli(*args)
        assert result.code == 1, result.err
        assert "TLS failed" in result.err and "--plain-http" in result.err, result.err
        assert "unknown" not in result.err
        _fetch(cli, test_image.ref, "--all-platforms").ok()  # for the push


def test_indexes_nested_beyond_reason_fail_the_fetch_clearly(
    cli: Cli, registry_peer: RegistryPeer
) -> None:
    import hashlib

    from contentd.images.media import MAX_NESTING

    mt = "application/vnd.oci.image.index.v1+json"
    child: dict[str, object] | None = None
    for _ in range(MAX_NESTING + 3):  # bottom up: the registry checks every child is there
        doc = {"schemaVersion": 2, "mediaType": mt, "manifests": [child] if child else []}
        data = json.dumps(doc).encode()
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        put = registry_peer.request(
            "PUT", f"/v2/deep/chain/manifests/{digest}", headers={"Content-Type": mt}, body=data
        )
        assert put.status == 201, put.body
        child = {"mediaType": mt, "digest": digest, "size": len(data)}
    assert child is not None
    ref = f"{registry_peer.host}/deep/chain@{child['digest']}"
    result = _fetch(cli, ref, "--all-platforms")
    assert result.code == 1, result.err
    assert "invalid argument" in result.err and f"nested more than {MAX_NESTING} deep" in result.err
    assert cli("images", "ls", "-q").ok().lines == []


def test_the_fetch_command_loads_neither_protobuf_nor_grpc(
    cli: Cli, test_image: PushedImage
) -> None:
    """It encodes its request and decodes the progress by hand: the runtime's import would
    come before the request leaves (so would dataclasses, which imports inspect, and
    subprocess, which only a credential helper needs; pathlib, shutil, hashlib and
    datetime, a fifth of the command's start-up, are not needed either)."""
    argv = cli.argv(["--output", "json", "fetch", "--plain-http", test_image.ref])
    program = (
        "import contextlib, io, json, sys\n"
        "from contentd.cli import main\n"
        "out = io.StringIO()\n"
        "with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):\n"
        f"    status = main({argv!r})\n"
        "heavy = ('google.protobuf', 'grpc', 'dataclasses', 'inspect', 'subprocess',"
        " 'pathlib', 'shutil', 'hashlib', 'datetime')\n"
        "heavy = sorted(m for m in sys.modules if m.startswith(heavy))\n"
        "print(json.dumps([status, out.getvalue(), heavy]))\n"
    )
    proc = run([sys.executable, "-c", program], env=clean_env())
    status, out, heavy = json.loads(proc.stdout.decode().splitlines()[-1])
    assert (status, heavy) == (0, [])
    assert json.loads(out)["digest"] == test_image.digest


@pytest.mark.parametrize("concurrency", [3, 12])
def test_layers_download_in_parallel_within_the_bound_on_kept_connections(
    cli: Cli, registry_peer: RegistryPeer, concurrency: int
) -> None:
    """--concurrency N: N blob GETs at once, never more, over connections kept alive (a
    connection per blob would be a TCP handshake and a slow start each); above 8 too (the
    client's connection pool once held 8 and made the other workers wait)."""
    requires("skopeo")
    # 12 blobs with the config, none another test (or parameter) fetched
    image = build_random_image((64 << 10,) * 11, seed=31 + concurrency)
    pushed = push_image(image, registry_peer, f"contentd/parallel{concurrency}", "v1")
    with CountingProxy(registry_peer.host) as proxy:
        # answered in groups of N: the peak is what the client sends
        proxy.gather_blobs = concurrency
        proxy.gather_timeout = 10.0
        ref = f"{proxy.host}/{pushed.repository}:{pushed.tag}"
        _fetch(cli, ref, "--concurrency", str(concurrency)).ok()
        assert len(proxy.blob_requests) == 12
        assert proxy.peak_blob_gets == concurrency
        assert proxy.connections <= concurrency
    for digest, data in image.blobs.items():
        assert cli("content", "get", digest).ok().out == data
