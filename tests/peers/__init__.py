"""Real peers for compatibility tests: a private containerd 1.6.20, a registry, an image.

See ``tests/peers/containerd.py`` for what was found about containerd in this sandbox and
``tests/peers/fixtures.py`` for the pytest fixtures.
"""

from tests.peers.containerd import DEFAULT_DISABLED_PLUGINS, ContainerdPeer
from tests.peers.images import (
    Blob,
    OciImage,
    PlatformImage,
    PushedImage,
    build_image,
    push_image,
    sha256_digest,
    write_oci_layout,
)
from tests.peers.process import CommandError, PeerError
from tests.peers.registry import RegistryPeer
from tests.peers.requires import in_ci, requires

__all__ = [
    "DEFAULT_DISABLED_PLUGINS",
    "Blob",
    "CommandError",
    "ContainerdPeer",
    "OciImage",
    "PeerError",
    "PlatformImage",
    "PushedImage",
    "RegistryPeer",
    "build_image",
    "in_ci",
    "push_image",
    "requires",
    "sha256_digest",
    "write_oci_layout",
]
