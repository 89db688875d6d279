"""Registry credentials from a docker config (``$DOCKER_CONFIG/config.json``, default
``~/.docker/config.json``), as ``docker`` finds them.

For a registry host the config answers in docker's order:

1. ``credHelpers[host]`` names a credential helper for that host;
2. otherwise ``credsStore`` names one for every host;
3. with no helper, a plain ``auths`` entry (``auth`` = base64 ``user:password``, or
   ``username`` and ``password``, or ``identitytoken``).

A helper is the program ``docker-credential-<name>`` on ``PATH``, run as
``docker-credential-<name> get`` with the host on stdin; it answers
``{"ServerURL": ..., "Username": ..., "Secret": ...}``. The user name ``<token>`` means the
secret is an identity token (an OAuth2 refresh token for the registry's token service),
which is passed on with that user name. A helper's answer decides: "credentials not found"
means anonymous, as with docker; any other failure (no such program, a non-zero exit, a
bad answer, more than :data:`HELPER_OUTPUT_LIMIT` bytes of output, no answer within
:data:`HELPER_TIMEOUT` seconds) is reported through ``warn`` and also means anonymous.
No secret is ever part of a warning: a failing helper is quoted only when it did not
answer with credentials.
"""

from __future__ import annotations

import base64
import json
import os
import re
import time
from collections.abc import Callable
from typing import Any, Final

__all__ = [
    "HELPER_OUTPUT_LIMIT",
    "HELPER_TIMEOUT",
    "IDENTITY_TOKEN_USER",
    "docker_config_path",
    "docker_credentials",
    "helper_credentials",
]

#: the user name a helper (and this module) gives an identity token under
IDENTITY_TOKEN_USER: Final = "<token>"
#: the most a helper may print (its answer is a few hundred bytes)
HELPER_OUTPUT_LIMIT: Final = 1 << 20
#: seconds a helper has to answer (some ask a cloud service for a token)
HELPER_TIMEOUT: Final = 30.0
#: what docker-credential-helpers print when a host has no credentials
_NOT_FOUND: Final = "credentials not found in native keychain"
_HELPER_NAME: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_QUOTE_LIMIT: Final = 200
#: the key docker stores Docker Hub's credentials under (config.json and helpers alike)
_DOCKER_HUB_KEY: Final = "https://index.docker.io/v1/"
_DOCKER_HUB_HOSTS: Final = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io"})

Warn = Callable[[str], None]


def docker_config_path() -> str:
    # os.path, not pathlib: pathlib's import was ~8% of contentd fetch's command
    root = os.environ.get("DOCKER_CONFIG") or os.path.join(os.path.expanduser("~"), ".docker")
    return os.path.join(root, "config.json")


def _ignore(text: str) -> None:
    pass


def docker_credentials(
    host: str, path: str | os.PathLike[str] | None = None, warn: Warn = _ignore
) -> tuple[str, str, str] | None:
    """(user, secret, where they came from) for ``host`` from a docker config, or None
    for anonymous; where is ``docker-credential-<name>`` or the config file's path."""
    if path is None:
        path = docker_config_path()
    try:
        with open(path, encoding="utf-8") as f:
            doc = json.loads(f.read())
    except FileNotFoundError:
        return None
    except OSError as err:
        warn(f"cannot read {path}: {err.strerror or err}; continuing anonymously")
        return None
    except ValueError as err:  # as docker does: say so, then go on without it
        warn(f"{path} is not valid JSON ({err}); continuing anonymously")
        return None
    if not isinstance(doc, dict):
        warn(f"{path} does not hold a JSON object; continuing anonymously")
        return None
    if host in _DOCKER_HUB_HOSTS:
        host = _DOCKER_HUB_KEY  # what `docker login` (no server) wrote, and what helpers get
    helpers = doc.get("credHelpers")
    helper = helpers.get(host) if isinstance(helpers, dict) else None
    if not helper:
        helper = doc.get("credsStore")
    if isinstance(helper, str) and helper:
        found = helper_credentials(helper, host, warn)
        return None if found is None else (*found, f"docker-credential-{helper}")
    found = _plain_entry(doc.get("auths"), host)
    return None if found is None else (*found, str(path))


def _plain_entry(auths: Any, host: str) -> tuple[str, str] | None:
    if not isinstance(auths, dict):
        return None
    # docker's order: the host as the key, then any key that names it with a scheme or a
    # path (what older docker versions and other tools wrote: https://host/v1/)
    keys = [host, f"https://{host}", f"http://{host}"]
    keys += [k for k in auths if isinstance(k, str) and k not in keys and _key_host(k) == host]
    for key in keys:
        entry = auths.get(key)
        if not isinstance(entry, dict):
            continue
        # `docker login` with an identity token stores it beside an `auth` of "user:" (an
        # empty password); the token is the credential, as docker and containerd's CRI read it
        if isinstance(entry.get("identitytoken"), str) and entry["identitytoken"]:
            return IDENTITY_TOKEN_USER, entry["identitytoken"]
        if isinstance(entry.get("auth"), str) and entry["auth"]:
            try:
                user, _, secret = base64.b64decode(entry["auth"]).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                continue
            return user, secret
        if isinstance(entry.get("username"), str) and isinstance(entry.get("password"), str):
            return entry["username"], entry["password"]
    return None


def _key_host(key: str) -> str:
    """The host an ``auths`` key names (docker's ConvertToHostname): no scheme, no path."""
    for scheme in ("http://", "https://"):
        if key.startswith(scheme):
            key = key[len(scheme) :]
            break
    return key.partition("/")[0]


def helper_credentials(
    name: str, host: str, warn: Warn = _ignore, timeout: float = HELPER_TIMEOUT
) -> tuple[str, str] | None:
    """Ask ``docker-credential-<name>`` for ``host``'s credentials (None: anonymous)."""
    import shutil  # here: a fetch without a helper need not load it

    program = f"docker-credential-{name}"
    if not _HELPER_NAME.fullmatch(name):
        warn(f"credential helper name {name!r} is not a program name; continuing anonymously")
        return None
    found = shutil.which(program)
    if found is None:
        warn(f"credential helper {program} is not on PATH; continuing anonymously")
        return None
    try:
        code, out = _run_helper(found, host.encode(), timeout)
    except OSError as err:
        warn(f"credential helper {program}: {err.strerror or err}; continuing anonymously")
        return None
    if code is None:
        warn(f"credential helper {program} gave no answer in {timeout:g}s; continuing anonymously")
        return None
    if len(out) > HELPER_OUTPUT_LIMIT:
        warn(
            f"credential helper {program} printed over {HELPER_OUTPUT_LIMIT} bytes;"
            " continuing anonymously"
        )
        return None
    text = out.decode(errors="replace").strip()
    if code != 0:
        if text == _NOT_FOUND:
            return None
        quoted = text.splitlines()[0][:_QUOTE_LIMIT] if text else ""
        warn(
            f"credential helper {program} failed (exit status {code})"
            + (f": {quoted}" if quoted else "")
            + "; continuing anonymously"
        )
        return None
    try:
        doc = json.loads(text)
        user, secret = doc["Username"], doc["Secret"]
    except (ValueError, TypeError, KeyError):
        user = secret = None
    if not isinstance(user, str) or not isinstance(secret, str):
        # the answer is not quoted: it may hold a secret in a shape not understood
        warn(
            f"credential helper {program} answered without Username and Secret;"
            " continuing anonymously"
        )
        return None
    if not user and not secret:
        return None
    return user, secret


def _run_helper(program: str, stdin: bytes, timeout: float) -> tuple[int | None, bytes]:
    """(exit status, stdout) of ``program get``; status None when it outran ``timeout``.

    Reads at most one byte past :data:`HELPER_OUTPUT_LIMIT`; a helper still running at
    the deadline (or past the limit) is killed. stderr is discarded, as docker does."""
    # here, not at the top: most fetches run no helper and need none of them
    import selectors
    import signal
    import subprocess

    deadline = time.monotonic() + timeout
    proc = subprocess.Popen(
        [program, "get"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # a helper waiting on a terminal cannot steal it
    )
    assert proc.stdin is not None and proc.stdout is not None
    chunks: list[bytes] = []
    held = 0
    try:
        try:
            proc.stdin.write(stdin)
            proc.stdin.close()
        except BrokenPipeError:  # a helper need not read its input
            pass
        with selectors.DefaultSelector() as sel:
            sel.register(proc.stdout, selectors.EVENT_READ)
            while held <= HELPER_OUTPUT_LIMIT:
                left = deadline - time.monotonic()
                if left <= 0 or not sel.select(left):
                    return None, b""
                chunk = os.read(proc.stdout.fileno(), 64 << 10)
                if not chunk:
                    break
                chunks.append(chunk)
                held += len(chunk)
        if held > HELPER_OUTPUT_LIMIT:
            return 0, b"".join(chunks)
        try:
            code = proc.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            return None, b""
        return code, b"".join(chunks)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)  # its own session: the helper and its children
            proc.wait()
        proc.stdout.close()
