"""Shell completion in bash, zsh and fish: commands, options and choices from the parser;
digests, refs, leases and namespaces from the daemon (silent and quick without one)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import grpc
import pytest

from contentd.api._pb.containerd.services.images.v1 import images_pb2 as ipb
from contentd.api._pb.containerd.services.images.v1 import images_pb2_grpc as ipb_grpc
from contentd.api._pb.containerd.types.descriptor_pb2 import Descriptor
from contentd.proxy import ProxyStore
from tests.cli.conftest import Cli, contentd_command
from tests.peers.process import clean_env

CI = os.environ.get("CI") == "true"


def _shell(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        if CI:
            pytest.fail(f"{name} is not installed (scripts/ci-deps.sh installs it)")
        pytest.skip(f"needs {name}")
    return path


def _env(cli: Cli) -> dict[str, str]:
    """The installed contentd first on PATH, its address and namespace in the environment."""
    env = clean_env()
    env["PATH"] = os.path.dirname(contentd_command()[0]) + os.pathsep + env.get("PATH", "")
    env["CONTENTD_ADDRESS"] = cli.address
    env["CONTENTD_NAMESPACE"] = cli.namespace
    return env


def bash(cli: Cli, line: str) -> list[str]:
    """What bash offers for ``line`` (the cursor at its end)."""
    program = (
        "source <(contentd completion bash)\n"
        'COMP_LINE="$1"; COMP_POINT=${#1}; COMP_WORDS=($1); '
        "COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 )); "
        '[[ $1 == *" " ]] && COMP_CWORD=${#COMP_WORDS[@]}\n'
        '_contentd; printf "%s\\n" "${COMPREPLY[@]}"'
    )
    proc = subprocess.run(
        [_shell("bash"), "--norc", "--noprofile", "-c", program, "bash", line],
        capture_output=True,
        text=True,
        timeout=60,
        env=_env(cli),
        check=True,
    )
    return [w for w in proc.stdout.splitlines() if w]


def zsh(cli: Cli, words: list[str]) -> list[str]:
    """What the zsh function adds for ``words`` (the last is the one being completed);
    compadd and _files are stood in for, outside a completion widget."""
    program = (
        "source <(contentd completion zsh)\n"
        'compadd() { [[ $1 == -- ]] && shift; print -l -- "$@"; }\n'
        "_files() { print __files__; }\n"
        'words=("$@"); CURRENT=$#; _contentd'
    )
    proc = subprocess.run(
        [_shell("zsh"), "-f", "-c", program, "contentd", *words],
        capture_output=True,
        text=True,
        timeout=60,
        env=_env(cli),
        check=True,
    )
    assert proc.stderr == ""
    return [w for w in proc.stdout.splitlines() if w]


def fish(cli: Cli, line: str) -> list[str]:
    program = "contentd completion fish | source; complete -C $argv[1]"
    proc = subprocess.run(
        [_shell("fish"), "--no-config", "-c", program, line],
        capture_output=True,
        text=True,
        timeout=60,
        env=_env(cli),
        check=True,
    )
    assert proc.stderr == ""
    return [w.split("\t")[0] for w in proc.stdout.splitlines() if w]


@pytest.fixture
def held(cli: Cli) -> tuple[str, str, str]:
    """A blob, an ingest in progress, a lease and an image in the test's namespace."""
    digest = cli("content", "ingest", "done", "--label", "containerd.io/gc.root=x", input=b"c")
    lease = cli("leases", "create", "--id", f"{cli.namespace}-lease").ok().text.strip()
    with ProxyStore(cli.address, cli.namespace) as store:
        writer = store.writer("half-done")
        writer.write(b"half")
        writer.close()
    with grpc.insecure_channel(cli.address) as channel:
        image = ipb.Image(
            name="example.com/app:1",
            target=Descriptor(
                media_type="application/vnd.oci.image.manifest.v1+json",
                digest=digest.ok().text.strip(),
                size=1,
            ),
        )
        ipb_grpc.ImagesStub(channel).Create(
            ipb.CreateImageRequest(image=image), metadata=(("containerd-namespace", cli.namespace),)
        )
    return digest.ok().text.strip(), "half-done", lease


def test_bash_completes_the_tree_and_the_daemons_names(
    cli: Cli, held: tuple[str, str, str]
) -> None:
    digest, ref, lease = held
    assert {"content", "leases", "gc", "serve"} <= set(bash(cli, "contentd "))
    assert bash(cli, "contentd cont") == ["content"]
    assert set(bash(cli, "contentd content l")) == {"ls", "list", "label"}
    assert "--quiet" in bash(cli, "contentd -n x content ls --")
    assert bash(cli, "contentd --output ") == ["table", "json", "jsonl"]
    assert bash(cli, "contentd completion ") == ["bash", "zsh", "fish"]
    # from the daemon; bash splits the word at ':' and replaces what follows it
    assert bash(cli, "contentd content info ") == [digest]
    assert bash(cli, f"contentd content info {digest[:12]}") == [digest[7:]]
    assert bash(cli, "contentd content rm sha256:x ") == [digest]  # repeats
    assert bash(cli, "contentd content abort ") == [ref]
    assert bash(cli, "contentd leases rm ") == [lease]
    assert bash(cli, "contentd images inspect ") == ["example.com/app:1"]
    assert bash(cli, "contentd i tag ") == ["example.com/app:1"]
    assert bash(cli, "contentd i tag example.com/app:1 ") == []  # new names
    assert cli.namespace in bash(cli, "contentd -n ")
    assert cli.namespace in bash(cli, "contentd namespaces label ")
    assert bash(cli, f"contentd content label {digest} ") == []  # K=V: nothing to offer
    # the namespace typed on the line is the one asked
    assert bash(cli, "contentd -n elsewhere content info ") == []


def test_zsh_and_fish_complete_the_same(cli: Cli, held: tuple[str, str, str]) -> None:
    digest, ref, lease = held
    assert zsh(cli, ["contentd", "content", "info", ""]) == [digest]
    assert zsh(cli, ["contentd", "content", "abort", ""]) == [ref]
    assert zsh(cli, ["contentd", "--output", ""]) == ["table", "json", "jsonl"]
    assert zsh(cli, ["contentd", "content", "ingest", "r", ""]) == ["__files__"]
    assert zsh(cli, ["contentd", "-n", "elsewhere", "leases", "rm", ""]) == []
    assert fish(cli, "contentd content info sha") == [digest]
    assert fish(cli, "contentd leases rm ") == [lease]
    assert fish(cli, "contentd cont") == ["content"]
    assert fish(cli, "contentd --output j") == ["json", "jsonl"]


def test_completion_is_silent_and_quick_without_a_daemon(tmp_path: Path) -> None:
    for kind in ("digests", "refs", "leases", "namespaces"):
        proc = subprocess.run(
            [*contentd_command(), "__complete", kind, "-a", str(tmp_path / "none.sock")],
            capture_output=True,
            timeout=60,
            env=clean_env(),
            check=False,
        )
        assert (proc.returncode, proc.stdout, proc.stderr) == (0, b"", b"")
    # a socket nobody answers on: the completion gives up (after 1 s) instead of hanging
    path = str(tmp_path / "mute.sock")
    with socket.socket(socket.AF_UNIX) as mute:
        mute.bind(path)
        mute.listen()
        proc = subprocess.run(
            [sys.executable, "-m", "contentd", "__complete", "digests", "-a", path],
            capture_output=True,
            timeout=60,
            env=clean_env(),
            check=False,
        )
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, b"", b"")
