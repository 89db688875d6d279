"""A small multi-layer, multi-platform OCI image, built offline, pushed to a registry.

:func:`build_image` makes every blob in memory (layer tars made with ``tarfile``,
compressed with ``gzip`` at mtime 0, JSON serialised compactly with sorted keys), so the
same inputs give the same digests. The image is an OCI image index for ``linux/amd64``
and ``linux/arm64``; each platform's manifest has a config and three layers:

* ``base``   -- a few small text files and directories (gzip), shared by both platforms;
* ``noise``  -- one file of seeded pseudo-random, incompressible bytes (512 KiB, gzip),
  shared by both platforms;
* ``arch``   -- a per-platform file (gzip on amd64, an *uncompressed* tar on arm64).

:func:`write_oci_layout` writes it as an OCI image layout directory and
:func:`push_image` copies that to a registry with ``skopeo copy --all
--preserve-digests``, then checks the registry serves the index under the same digest.
(skopeo, run as root, keeps its blob-info cache in ``/var/lib/containers/cache``; it has
no flag to move it.)
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import random
import tarfile
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.peers.process import PeerError, run
from tests.peers.registry import RegistryPeer

MT_INDEX = "application/vnd.oci.image.index.v1+json"
MT_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_CONFIG = "application/vnd.oci.image.config.v1+json"
MT_LAYER = "application/vnd.oci.image.layer.v1.tar"
MT_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"

PLATFORMS: tuple[tuple[str, str], ...] = (("linux", "amd64"), ("linux", "arm64"))
NOISE_SIZE = 512 * 1024
_EPOCH = 1_700_000_000  # fixed mtime for tar entries
_CREATED = "2023-11-14T22:13:20Z"


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Blob:
    """One content-addressed blob: bytes plus the descriptor fields that name them."""

    media_type: str
    data: bytes = field(repr=False)

    @property
    def digest(self) -> str:
        return sha256_digest(self.data)

    @property
    def size(self) -> int:
        return len(self.data)

    def descriptor(self, **extra: Any) -> dict[str, Any]:
        return {"mediaType": self.media_type, "digest": self.digest, "size": self.size, **extra}


@dataclass(frozen=True)
class PlatformImage:
    """One platform's manifest, config and layers (plus the layers' uncompressed digests)."""

    os: str
    architecture: str
    manifest: Blob
    config: Blob
    layers: tuple[Blob, ...]
    diff_ids: tuple[str, ...]

    @property
    def platform(self) -> str:
        return f"{self.os}/{self.architecture}"


@dataclass(frozen=True)
class OciImage:
    """A built multi-platform image: the index and one :class:`PlatformImage` per platform."""

    index: Blob
    platforms: tuple[PlatformImage, ...]

    def iter_blobs(self) -> Iterator[Blob]:
        """Every blob, index first, each digest once."""
        seen: set[str] = set()
        for blob in self._all():
            if blob.digest not in seen:
                seen.add(blob.digest)
                yield blob

    def _all(self) -> Iterator[Blob]:
        yield self.index
        for p in self.platforms:
            yield p.manifest
            yield p.config
            yield from p.layers

    @property
    def blobs(self) -> dict[str, bytes]:
        """``{digest: bytes}`` for every blob (index, manifests, configs, layers)."""
        return {b.digest: b.data for b in self.iter_blobs()}

    @property
    def manifest_digests(self) -> tuple[str, ...]:
        return tuple(p.manifest.digest for p in self.platforms)

    @property
    def config_digests(self) -> tuple[str, ...]:
        return tuple(p.config.digest for p in self.platforms)

    @property
    def layer_digests(self) -> tuple[str, ...]:
        out: list[str] = []
        for p in self.platforms:
            out.extend(b.digest for b in p.layers if b.digest not in out)
        return tuple(out)

    def platform(self, name: str) -> PlatformImage:
        for p in self.platforms:
            if p.platform == name:
                return p
        raise KeyError(name)


@dataclass(frozen=True)
class PushedImage:
    """An :class:`OciImage` stored in a registry under ``host/repository:tag``."""

    image: OciImage
    host: str
    repository: str
    tag: str

    @property
    def ref(self) -> str:
        return f"{self.host}/{self.repository}:{self.tag}"

    @property
    def digest(self) -> str:
        """Digest of the image index (the reference's target)."""
        return self.image.index.digest

    @property
    def blobs(self) -> dict[str, bytes]:
        return self.image.blobs


# -- building ----------------------------------------------------------------------------


def _tar(entries: list[tuple[str, bytes | None, int]]) -> bytes:
    """A deterministic tar of ``(name, data or None for a directory, mode)`` entries."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for name, data, mode in entries:
            info = tarfile.TarInfo(name)
            info.mtime = _EPOCH
            info.mode = mode
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            if data is None:
                info.type = tarfile.DIRTYPE
                tf.addfile(info)
            else:
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _gzip(data: bytes) -> bytes:
    return gzip.compress(data, compresslevel=6, mtime=0)


def _json(doc: Any) -> bytes:
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


def _base_layer() -> bytes:
    lines = "".join(f"line {i:05d}: contentd peer test image\n" for i in range(200))
    return _tar(
        [
            ("etc/", None, 0o755),
            ("etc/hostname", b"contentd-test\n", 0o644),
            ("etc/os-release", b'NAME="contentd test image"\nID=contentd\n', 0o644),
            ("usr/", None, 0o755),
            ("usr/share/", None, 0o755),
            ("usr/share/lines.txt", lines.encode(), 0o644),
            ("usr/share/empty", b"", 0o644),
        ]
    )


def _noise_layer(seed: int) -> bytes:
    noise = random.Random(seed).randbytes(NOISE_SIZE)
    return _tar([("var/", None, 0o755), ("var/noise.bin", noise, 0o600)])


def _arch_layer(os_name: str, arch: str) -> bytes:
    text = f"{os_name}/{arch}\n".encode()
    return _tar([("etc/", None, 0o755), ("etc/platform", text, 0o644)])


def build_image(seed: int = 20230420) -> OciImage:
    """Build the test image in memory; equal seeds give equal digests."""
    base_tar = _base_layer()
    noise_tar = _noise_layer(seed)
    base = Blob(MT_LAYER_GZIP, _gzip(base_tar))
    noise = Blob(MT_LAYER_GZIP, _gzip(noise_tar))
    platforms: list[PlatformImage] = []
    for os_name, arch in PLATFORMS:
        arch_tar = _arch_layer(os_name, arch)
        arch_blob = (
            Blob(MT_LAYER_GZIP, _gzip(arch_tar)) if arch == "amd64" else Blob(MT_LAYER, arch_tar)
        )
        layers = (base, noise, arch_blob)
        diff_ids = tuple(sha256_digest(t) for t in (base_tar, noise_tar, arch_tar))
        config = Blob(
            MT_CONFIG,
            _json(
                {
                    "architecture": arch,
                    "os": os_name,
                    "created": _CREATED,
                    "config": {"Env": ["PATH=/usr/bin:/bin"], "Cmd": ["/bin/true"]},
                    "rootfs": {"type": "layers", "diff_ids": list(diff_ids)},
                    "history": [
                        {"created": _CREATED, "created_by": f"contentd tests: layer {i}"}
                        for i in range(len(layers))
                    ],
                }
            ),
        )
        manifest = Blob(
            MT_MANIFEST,
            _json(
                {
                    "schemaVersion": 2,
                    "mediaType": MT_MANIFEST,
                    "config": config.descriptor(),
                    "layers": [b.descriptor() for b in layers],
                    "annotations": {"org.opencontainers.image.title": f"contentd-{arch}"},
                }
            ),
        )
        platforms.append(PlatformImage(os_name, arch, manifest, config, layers, diff_ids))
    index = Blob(
        MT_INDEX,
        _json(
            {
                "schemaVersion": 2,
                "mediaType": MT_INDEX,
                "manifests": [
                    p.manifest.descriptor(platform={"architecture": p.architecture, "os": p.os})
                    for p in platforms
                ],
            }
        ),
    )
    return OciImage(index, tuple(platforms))


def write_oci_layout(image: OciImage, directory: Path, tag: str) -> Path:
    """Write ``image`` as an OCI image layout at ``directory``, its index tagged ``tag``."""
    blobs = directory / "blobs" / "sha256"
    blobs.mkdir(parents=True, exist_ok=True)
    for blob in image.iter_blobs():
        (blobs / blob.digest.removeprefix("sha256:")).write_bytes(blob.data)
    (directory / "oci-layout").write_bytes(_json({"imageLayoutVersion": "1.0.0"}))
    top = {
        "schemaVersion": 2,
        "mediaType": MT_INDEX,
        "manifests": [
            image.index.descriptor(annotations={"org.opencontainers.image.ref.name": tag})
        ],
    }
    (directory / "index.json").write_bytes(_json(top))
    return directory


def push_image(
    image: OciImage,
    registry: RegistryPeer,
    repository: str = "contentd/test-image",
    tag: str = "v1",
    *,
    skopeo: str = "skopeo",
    timeout: float = 120.0,
    creds: str | None = None,
    verify: bool = True,
) -> PushedImage:
    """Copy ``image`` into ``registry`` with skopeo, keeping every digest; verify the index
    (``verify=False`` for registries behind bearer tokens, which this check cannot get)."""
    with tempfile.TemporaryDirectory(prefix="oci-layout-") as tmp:
        layout = write_oci_layout(image, Path(tmp) / "layout", tag)
        run(
            [
                skopeo,
                "--insecure-policy",
                "copy",
                "--all",
                "--preserve-digests",
                "--dest-tls-verify=false",
                "--retry-times=0",
                *([f"--dest-creds={creds}"] if creds else []),
                f"oci:{layout}:{tag}",
                f"docker://{registry.host}/{repository}:{tag}",
            ],
            timeout=timeout,
            env={"TMPDIR": tmp},
        )
    pushed = PushedImage(image, registry.host, repository, tag)
    if not verify:
        return pushed
    auth = {"Authorization": "Basic " + base64.b64encode(creds.encode()).decode()} if creds else {}
    resp = registry.request(
        "HEAD", f"/v2/{repository}/manifests/{tag}", headers={"Accept": MT_INDEX, **auth}
    )
    served = resp.headers.get("docker-content-digest")
    if resp.status != 200 or served != image.index.digest:
        raise PeerError(
            f"registry serves {repository}:{tag} as {served!r} (HTTP {resp.status}), "
            f"expected {image.index.digest}"
        )
    return pushed


def build_random_image(layer_sizes: tuple[int, ...], seed: int = 7) -> OciImage:
    """An index with one ``linux/amd64`` manifest whose layers are seeded random bytes of
    ``layer_sizes`` (typed as uncompressed tars; registries do not look inside)."""
    rng = random.Random(seed)

    def noise(size: int) -> bytes:  # randbytes takes at most 2**31 bits at once
        return b"".join(rng.randbytes(min(16 << 20, size - i)) for i in range(0, size, 16 << 20))

    layers = tuple(Blob(MT_LAYER, noise(size)) for size in layer_sizes)
    config = Blob(
        MT_CONFIG,
        _json(
            {
                "architecture": "amd64",
                "os": "linux",
                "rootfs": {"type": "layers", "diff_ids": [b.digest for b in layers]},
            }
        ),
    )
    manifest = Blob(
        MT_MANIFEST,
        _json(
            {
                "schemaVersion": 2,
                "mediaType": MT_MANIFEST,
                "config": config.descriptor(),
                "layers": [b.descriptor() for b in layers],
            }
        ),
    )
    platform = PlatformImage(
        "linux", "amd64", manifest, config, layers, tuple(b.digest for b in layers)
    )
    index = Blob(
        MT_INDEX,
        _json(
            {
                "schemaVersion": 2,
                "mediaType": MT_INDEX,
                "manifests": [
                    manifest.descriptor(platform={"architecture": "amd64", "os": "linux"})
                ],
            }
        ),
    )
    return OciImage(index, (platform,))
