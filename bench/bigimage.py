"""A one-layer image of N MiB for pull benchmarks, written to disk without holding it in memory.

The layer is an *uncompressed* tar (``application/vnd.oci.image.layer.v1.tar``) of
one file of ``mib`` MiB made by :class:`bench.data.BlobMaker` (its shared random
block repeated, the last block tagged), so a pull measures moving and unpacking the
bytes through the content store, not gzip. The image is a single OCI manifest for
this machine's platform (``ctr images pull`` fetches only that one). The layout is
written chunk by chunk (memory flat in ``mib``), then copied to the registry with
``skopeo copy --preserve-digests``.
"""

from __future__ import annotations

import hashlib
import json
import platform
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.data import BlobMaker
from tests.peers import RegistryPeer
from tests.peers.images import MT_CONFIG, MT_LAYER, MT_MANIFEST
from tests.peers.process import PeerError, run

__all__ = ["BigImage", "push_big_image"]

_EPOCH = 1_700_000_000
_CREATED = "2023-11-14T22:13:20Z"
_GO_ARCH = {"x86_64": "amd64", "aarch64": "arm64"}


@dataclass(frozen=True)
class BigImage:
    """A pushed one-layer image: where it is and the digests a pull must end up with."""

    ref: str
    manifest: str
    layer: str
    layer_size: int


def _json(doc: Any) -> bytes:
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


def _write_blob(blobs: Path, data: bytes) -> dict[str, Any]:
    digest = hashlib.sha256(data).hexdigest()
    (blobs / digest).write_bytes(data)
    return {"digest": f"sha256:{digest}", "size": len(data)}


def _write_layer(blobs: Path, data: BlobMaker, mib: int, tag: str) -> tuple[str, str, int]:
    """The layer tar, streamed to ``blobs``; its digest (= diff id: uncompressed) and size."""
    blob = data.big(mib, tag)
    info = tarfile.TarInfo("data/big.bin")
    info.size = blob.size
    info.mtime = _EPOCH
    info.mode = 0o644
    info.uname = info.gname = "root"
    head = info.tobuf(format=tarfile.PAX_FORMAT)
    # the file's padding to 512 bytes (none: it is whole MiB), then two zero blocks, then
    # tarfile's padding of the archive to its 10 KiB record
    tail_len = 2 * tarfile.BLOCKSIZE
    total = len(head) + blob.size + tail_len
    tail_len += -total % tarfile.RECORDSIZE
    h = hashlib.sha256()
    tmp = blobs / "layer.partial"
    with tmp.open("wb") as f:
        for chunk in (head, *blob.chunks(), bytes(tail_len)):
            h.update(chunk)
            f.write(chunk)
    digest = h.hexdigest()
    size = tmp.stat().st_size
    tmp.rename(blobs / digest)
    return f"sha256:{digest}", digest, size


def write_layout(directory: Path, data: BlobMaker, mib: int, tag: str) -> tuple[str, str, int]:
    """An OCI layout at ``directory`` tagged ``tag``; (manifest digest, layer digest, size)."""
    blobs = directory / "blobs" / "sha256"
    blobs.mkdir(parents=True, exist_ok=True)
    layer, diff_hex, layer_size = _write_layer(blobs, data, mib, tag)
    arch = _GO_ARCH.get(platform.machine(), platform.machine())
    config = _write_blob(
        blobs,
        _json(
            {
                "architecture": arch,
                "os": "linux",
                "created": _CREATED,
                "config": {"Cmd": ["/bin/true"]},
                "rootfs": {"type": "layers", "diff_ids": [f"sha256:{diff_hex}"]},
            }
        ),
    )
    manifest_bytes = _json(
        {
            "schemaVersion": 2,
            "mediaType": MT_MANIFEST,
            "config": {"mediaType": MT_CONFIG, **config},
            "layers": [{"mediaType": MT_LAYER, "digest": layer, "size": layer_size}],
        }
    )
    manifest = _write_blob(blobs, manifest_bytes)
    (directory / "oci-layout").write_bytes(_json({"imageLayoutVersion": "1.0.0"}))
    top = {
        "schemaVersion": 2,
        "manifests": [
            {
                "mediaType": MT_MANIFEST,
                **manifest,
                "annotations": {"org.opencontainers.image.ref.name": tag},
            }
        ],
    }
    (directory / "index.json").write_bytes(_json(top))
    return manifest["digest"], layer, layer_size


def push_big_image(
    registry: RegistryPeer,
    data: BlobMaker,
    mib: int,
    *,
    work_dir: str,
    repository: str = "bench/big",
    tag: str = "v1",
    variant: str = "",
    timeout: float = 600.0,
) -> BigImage:
    """Build the ``mib`` MiB one-layer image under ``work_dir`` and push it to ``registry``.

    Images of one size with different ``variant`` strings have different layers."""
    name = f"big-{mib}{'-' + variant if variant else ''}"
    with tempfile.TemporaryDirectory(prefix="big-layout-", dir=work_dir) as tmp:
        layout = Path(tmp) / "layout"
        manifest, layer, size = write_layout(layout, data, mib, name)
        run(
            [
                "skopeo", "--insecure-policy", "copy", "--preserve-digests",
                "--dest-tls-verify=false", "--retry-times=0",
                f"oci:{layout}:{name}", f"docker://{registry.host}/{repository}:{tag}",
            ],
            timeout=timeout,
            env={"TMPDIR": tmp},
        )  # fmt: skip
    resp = registry.request(
        "HEAD", f"/v2/{repository}/manifests/{tag}", headers={"Accept": MT_MANIFEST}
    )
    served = resp.headers.get("docker-content-digest")
    if resp.status != 200 or served != manifest:
        raise PeerError(
            f"registry serves {repository}:{tag} as {served!r} (HTTP {resp.status}), "
            f"expected {manifest}"
        )
    return BigImage(f"{registry.host}/{repository}:{tag}", manifest, layer, size)
