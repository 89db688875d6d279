"""Image references: ``host[:port]/repository[:tag][@digest]`` (the distribution grammar,
with the host required, as containerd's resolver requires it)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from contentd.content import digest as digests
from contentd.content.errors import ContentError, InvalidArgument

__all__ = ["Reference", "parse_reference"]

_HOST: Final = re.compile(
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*"
    r"|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?"
)
_COMPONENT: Final = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*")
_TAG: Final = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
MAX_NAME: Final = 255


@dataclass(frozen=True, slots=True)
class Reference:
    host: str
    repository: str
    tag: str = ""
    digest: str = ""

    @property
    def object(self) -> str:
        """What the manifest endpoint is asked for: the digest if any, else the tag."""
        return self.digest or self.tag or "latest"

    def __str__(self) -> str:
        out = f"{self.host}/{self.repository}"
        if self.tag:
            out += f":{self.tag}"
        if self.digest:
            out += f"@{self.digest}"
        return out

    def with_object(self, tag: str = "", digest: str = "") -> Reference:
        return Reference(self.host, self.repository, tag, digest)


def parse_reference(text: str) -> Reference:
    """InvalidArgument unless ``text`` is ``host[:port]/repo[:tag][@digest]``."""
    scheme, sep, after = text.partition("://")
    if sep and scheme.lower() in ("http", "https"):
        plain = " (and --plain-http for an HTTP registry)" if scheme.lower() == "http" else ""
        raise InvalidArgument(
            f"reference {text!r}: a reference has no scheme: write {after}{plain}"
        )
    rest, _, digest = text.partition("@")
    if digest:
        try:
            digests.parse(digest)
        except ContentError as err:
            raise InvalidArgument(f"reference {text!r}: {err.context or err}") from None
    host, slash, path = rest.partition("/")
    if (
        not slash
        or not _HOST.fullmatch(host)
        or ("." not in host and ":" not in host and host != "localhost")
    ):
        raise InvalidArgument(f"reference {text!r}: {_no_host(text, host, slash)}")
    name, _, tag = path.rpartition(":") if ":" in path else (path, "", "")
    if tag and not _TAG.fullmatch(tag):
        raise InvalidArgument(f"reference {text!r}: invalid tag {tag!r}")
    if (
        not name
        or len(name) > MAX_NAME
        or not all(_COMPONENT.fullmatch(c) for c in name.split("/"))
    ):
        why = ""
        if (
            name
            and name != name.lower()
            and all(_COMPONENT.fullmatch(c) for c in name.lower().split("/"))
        ):
            why = " (a repository name is lowercase)"
        raise InvalidArgument(f"reference {text!r}: invalid repository {name!r}{why}")
    if not tag and not digest:
        tag = "latest"
    return Reference(host, name, tag, digest)


def _no_host(text: str, host: str, slash: str) -> str:
    """Why ``text`` has no host, and what to write: a first component with no '.' or
    ':port' that is not 'localhost' is, for docker, part of a Docker Hub repository
    (``alpine`` is docker.io/library/alpine)."""
    out = "hostname required (host[:port]/repository)"
    if slash and _HOST.fullmatch(host):
        out = (
            f"hostname required (host[:port]/repository): {host!r} is not a host "
            "(a host has a '.' or a ':port', or is 'localhost')"
        )
    hub = f"docker.io/{text if slash else 'library/' + text}"
    try:
        parse_reference(hub)
    except InvalidArgument:
        return out
    return f"{out}; for Docker Hub write {hub}"
