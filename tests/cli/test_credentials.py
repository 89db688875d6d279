"""Registry credentials from a docker config: plain ``auths`` entries and credential
helpers (real programs on ``PATH``, run as docker runs them)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from contentd.cli.credentials import (
    HELPER_OUTPUT_LIMIT,
    IDENTITY_TOKEN_USER,
    docker_credentials,
    helper_credentials,
)


def write_helper(bindir: Path, name: str, body: str) -> Path:
    """``docker-credential-<name>``: a shell script; ``$LOG`` gets its argv and stdin."""
    bindir.mkdir(exist_ok=True)
    path = bindir / f"docker-credential-{name}"
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return path


def answering(user: str, secret: str, log: Path) -> str:
    answer = json.dumps({"ServerURL": "ignored", "Username": user, "Secret": secret})
    return f"printf '%s|%s\\n' \"$*\" \"$(cat)\" >> {log}\necho '{answer}'\n"


NOT_FOUND = "cat >/dev/null\necho 'credentials not found in native keychain'\nexit 1\n"


@pytest.fixture
def bindir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "bin"
    path.mkdir()
    monkeypatch.setenv("PATH", f"{path}{os.pathsep}{os.environ['PATH']}")
    return path


def _config(tmp_path: Path, doc: dict[str, object]) -> Path:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(doc))
    return path


def test_cred_helpers_then_creds_store_then_auths(tmp_path: Path, bindir: Path) -> None:
    log = tmp_path / "calls"
    write_helper(bindir, "per-host", answering("hostuser", "host-secret", log))
    write_helper(bindir, "store", answering("storeuser", "store-secret", log))
    config = _config(
        tmp_path,
        {
            "auths": {"r.io:5000": {"auth": "cGxhaW46cGFzcw=="}, "plain.io": {"auth": "YTpi"}},
            "credHelpers": {"r.io:5000": "per-host"},
            "credsStore": "store",
        },
    )
    # credHelpers wins for its host; the host goes on stdin, as the one argument's input
    helper = "docker-credential-per-host"
    assert docker_credentials("r.io:5000", config) == ("hostuser", "host-secret", helper)
    assert log.read_text() == "get|r.io:5000\n"
    # credsStore answers for every other host, an auths entry notwithstanding (docker)
    store = "docker-credential-store"
    assert docker_credentials("plain.io", config) == ("storeuser", "store-secret", store)
    assert log.read_text().splitlines()[1] == "get|plain.io"
    # no helper at all: the plain entry
    config = _config(tmp_path, {"auths": {"plain.io": {"auth": "YTpi"}}})
    assert docker_credentials("plain.io", config) == ("a", "b", str(config))


def test_not_found_is_anonymous_without_a_word(tmp_path: Path, bindir: Path) -> None:
    write_helper(bindir, "empty", NOT_FOUND)
    warnings: list[str] = []
    config = _config(tmp_path, {"credsStore": "empty"})
    assert docker_credentials("r.io", config, warnings.append) is None
    assert warnings == []


def test_identity_token_keeps_docker_user_name(tmp_path: Path, bindir: Path) -> None:
    write_helper(bindir, "tok", answering(IDENTITY_TOKEN_USER, "refresh-me", tmp_path / "log"))
    assert helper_credentials("tok", "r.io") == (IDENTITY_TOKEN_USER, "refresh-me")
    config = _config(tmp_path, {"auths": {"r.io": {"identitytoken": "id-tok"}}})
    assert docker_credentials("r.io", config) == (IDENTITY_TOKEN_USER, "id-tok", str(config))


def test_identity_token_beside_an_auth_with_no_password_wins(tmp_path: Path) -> None:
    """What `docker login` writes for an identity-token registry: `auth` is base64 of
    "user:" (an empty password) and the token sits beside it; basic auth with an empty
    password would be refused, so the token is what gets sent."""
    entry = {"auth": "MDAwMDAwMDAtMDAwMDo=", "identitytoken": "id-tok"}  # "00000000-0000:"
    config = _config(tmp_path, {"auths": {"https://r.io": entry}})
    assert docker_credentials("r.io", config) == (IDENTITY_TOKEN_USER, "id-tok", str(config))


@pytest.mark.parametrize(
    ("name", "body", "warning"),
    [
        ("missing", None, "docker-credential-missing is not on PATH"),
        ("locked", "echo 'keychain locked'\nexit 3\n", "failed (exit status 3): keychain locked"),
        ("silent", "exit 1\n", "failed (exit status 1); continuing"),
        ("garbled", "echo 'Secret: hunter2'\n", "answered without Username and Secret"),
        ("noisy", "head -c 3000000 /dev/zero\n", f"printed over {HELPER_OUTPUT_LIMIT} bytes"),
        ("../evil", None, "is not a program name"),
    ],
)
def test_a_failing_helper_is_named_and_means_anonymous(
    tmp_path: Path, bindir: Path, name: str, body: str | None, warning: str
) -> None:
    if body is not None:
        write_helper(bindir, name, body)
    warnings: list[str] = []
    config = _config(tmp_path, {"credHelpers": {"r.io": name}})
    assert docker_credentials("r.io", config, warnings.append) is None
    assert len(warnings) == 1 and warning in warnings[0], warnings
    assert "anonymously" in warnings[0]
    assert "hunter2" not in warnings[0]  # an answer not understood is never quoted


def test_a_helper_that_hangs_is_killed_at_the_timeout(tmp_path: Path, bindir: Path) -> None:
    pidfile = tmp_path / "pid"
    # the shell and a child holding stdout open: both go at the deadline
    write_helper(bindir, "hang", f"sleep 60 &\necho $! > {pidfile}\nwait\n")
    warnings: list[str] = []
    started = time.monotonic()
    assert helper_credentials("hang", "r.io", warnings.append, timeout=0.5) is None
    assert time.monotonic() - started < 10
    assert warnings and "no answer in 0.5s" in warnings[0]
    child = int(pidfile.read_text())
    for _ in range(100):
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    else:
        pytest.fail("the helper's child outlived the timeout")


def test_a_broken_docker_config_is_named_and_means_anonymous(tmp_path: Path) -> None:
    """A config.json that does not parse is not silently read as "no credentials": the
    warning names the file (docker warns about it too); no file at all says nothing."""
    path = tmp_path / "config.json"
    warnings: list[str] = []
    assert docker_credentials("r.io", path, warnings.append) is None
    assert warnings == []
    path.write_text('{"auths": {"r.io": ')
    assert docker_credentials("r.io", path, warnings.append) is None
    [warning] = warnings
    assert warning.startswith(f"{path} is not valid JSON") and "anonymously" in warning
    path.write_text("[]")
    assert docker_credentials("r.io", path, warnings.append) is None
    assert warnings[1] == f"{path} does not hold a JSON object; continuing anonymously"


@pytest.mark.parametrize("host", ["docker.io", "registry-1.docker.io"])
def test_docker_hub_credentials_are_found_under_dockers_key(
    tmp_path: Path, bindir: Path, host: str
) -> None:
    """`docker login` without a server stores Docker Hub under https://index.docker.io/v1/,
    in config.json and in a helper (which is asked for that key), not under docker.io."""
    config = _config(tmp_path, {"auths": {"https://index.docker.io/v1/": {"auth": "YTpi"}}})
    assert docker_credentials(host, config) == ("a", "b", str(config))
    log = tmp_path / "calls"
    write_helper(bindir, "hub", answering("hubuser", "hub-secret", log))
    config = _config(tmp_path, {"credHelpers": {"https://index.docker.io/v1/": "hub"}})
    assert docker_credentials(host, config) == ("hubuser", "hub-secret", "docker-credential-hub")
    assert log.read_text() == "get|https://index.docker.io/v1/\n"


@pytest.mark.parametrize(
    "key", ["https://r.io:5000/v2/", "http://r.io:5000/v1/", "r.io:5000/", "https://r.io:5000"]
)
def test_legacy_auths_keys_are_found_by_their_host(tmp_path: Path, key: str) -> None:
    """Older docker versions and other tools wrote keys with a scheme and a path
    (`https://host/v1/`); docker still finds them by host, and so does contentd."""
    config = _config(tmp_path, {"auths": {"other.io/v2/": {"auth": "eDp5"}, key: {"auth": "YTpi"}}})
    assert docker_credentials("r.io:5000", config) == ("a", "b", str(config))
    assert docker_credentials("r.io", config) is None  # another port is another registry
    assert docker_credentials("other.io", config) == ("x", "y", str(config))
