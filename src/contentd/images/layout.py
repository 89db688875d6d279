"""OCI image layout 1.x: export images to a directory or a tar, import them from either.

A layout is ``oci-layout`` (``{"imageLayoutVersion": "1.0.0"}``), ``index.json`` (an OCI
index whose manifests are the images' root descriptors) and ``blobs/<alg>/<hex>``.

* :func:`export_layout` writes every blob of the given images (all platforms the store
  holds) once, and names each root in ``index.json`` with the annotations ctr and skopeo
  read: ``io.containerd.image.name`` (the full name) and
  ``org.opencontainers.image.ref.name`` (the tag, or the full name when it has none).
  A tar is streamed: blobs are read in pieces, never whole.
* :func:`import_layout` reads what skopeo, umoci, ``ctr images export`` and
  :func:`export_layout` write. Every blob path is built from a validated digest (never
  from a name in the archive), every blob is written through a writer that verifies its
  digest and size, manifests get containerd's ``gc.ref.content`` labels, and one image
  record is made per ``index.json`` entry that has a name.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import stat
import tarfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO, Any, Final, Protocol

from contentd.content import digest as digests
from contentd.content.errors import (
    AlreadyExists,
    ContentError,
    DigestMismatch,
    InvalidArgument,
    NotFound,
    SizeMismatch,
)
from contentd.content.helpers import COPY_BUFFER, open_writer
from contentd.content.store import Provider, Store
from contentd.content.types import Descriptor
from contentd.images.media import (
    MAX_MANIFEST_SIZE,
    MT_OCI_INDEX,
    ManifestError,
    check_nesting,
    children,
    descriptor_to_json,
    gc_labels,
    is_index,
    is_manifest,
    parse_descriptor,
    parse_document,
)
from contentd.images.tree import walk
from contentd.metadata.images import Image

__all__ = [
    "ANNOTATION_IMAGE_NAME",
    "ANNOTATION_REF_NAME",
    "ExportedImage",
    "export_layout",
    "import_layout",
    "layout_blobs",
    "write_tar",
]

ANNOTATION_IMAGE_NAME: Final = "io.containerd.image.name"
ANNOTATION_REF_NAME: Final = "org.opencontainers.image.ref.name"
_LAYOUT: Final = b'{"imageLayoutVersion":"1.0.0"}'


@dataclass(frozen=True)
class ExportedImage:
    name: str
    target: Descriptor


def _ref_name(name: str) -> str:
    """The tag part of ``name`` (what ctr writes as ref.name), else the whole name."""
    last = name.rsplit("/", 1)[-1]
    if "@" not in name and ":" in last:
        return last.rsplit(":", 1)[1]
    return name


def _blob_path(digest: str) -> str:
    parsed = digests.parse(digest)
    return f"blobs/{parsed.algorithm}/{parsed.encoded}"


# -- export ----------------------------------------------------------------------


def _blobs_of(store: Provider, images: Sequence[ExportedImage]) -> list[Descriptor]:
    """Every descriptor of every image the store holds, each digest once."""
    from contentd.content.helpers import read_blob

    seen: set[str] = set()
    out: list[Descriptor] = []
    for image in images:

        def read(desc: Descriptor) -> bytes:
            if desc.size > MAX_MANIFEST_SIZE:
                raise ManifestError(f"{desc.digest}: too big for a manifest")
            return read_blob(store, desc.digest)

        for node in walk(read, image.target):
            if not node.present:
                continue  # a platform the store does not hold (a partial fetch)
            if node.desc.digest not in seen:
                seen.add(node.desc.digest)
                out.append(node.desc)
    return out


def layout_blobs(
    store: Provider, images: Sequence[ExportedImage]
) -> tuple[list[Descriptor], bytes]:
    """The blobs a layout of ``images`` holds, and its ``index.json``."""
    return _blobs_of(store, images), _index_json(images)


def _index_json(images: Sequence[ExportedImage]) -> bytes:
    manifests = []
    for image in images:
        annotations = dict(image.target.annotations)
        annotations[ANNOTATION_IMAGE_NAME] = image.name
        annotations[ANNOTATION_REF_NAME] = _ref_name(image.name)
        target = Descriptor(image.target.media_type, image.target.digest, image.target.size)
        manifests.append(descriptor_to_json(target, annotations=annotations))
    doc = {"schemaVersion": 2, "mediaType": MT_OCI_INDEX, "manifests": manifests}
    return json.dumps(doc, separators=(",", ":")).encode()


def _copy_blob(store: Provider, desc: Descriptor, out: IO[bytes]) -> None:
    with store.reader_at(desc.digest) as ra:
        offset = 0
        while offset < ra.size:
            chunk = ra.read_at(offset, min(COPY_BUFFER, ra.size - offset))
            if not chunk:
                break
            out.write(chunk)
            offset += len(chunk)


def export_layout(
    store: Provider, images: Sequence[ExportedImage], dest: str | os.PathLike[str]
) -> list[Descriptor]:
    """Write ``images`` as a layout at ``dest``: a directory, or a tar when ``dest`` ends in
    ``.tar`` (``-`` is not supported here; the CLI streams). Returns the blobs written."""
    blobs, index = layout_blobs(store, images)
    path = Path(dest)
    if path.suffix == ".tar":
        with open(path, "wb") as f:
            write_tar(store, blobs, index, f)
    else:
        path.mkdir(parents=True, exist_ok=True)
        (path / "oci-layout").write_bytes(_LAYOUT)
        for desc in blobs:
            target = path / _blob_path(desc.digest)
            target.parent.mkdir(parents=True, exist_ok=True)
            if target.exists() and target.stat().st_size == desc.size:
                continue
            tmp = target.with_name(target.name + ".tmp")
            with open(tmp, "wb") as f:
                _copy_blob(store, desc, f)
            os.replace(tmp, target)
        (path / "index.json").write_bytes(index)
    return blobs


def write_tar(store: Provider, blobs: Sequence[Descriptor], index: bytes, out: IO[bytes]) -> None:
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tf:
        _add_bytes(tf, "oci-layout", _LAYOUT)
        for desc in blobs:
            info = tarfile.TarInfo(_blob_path(desc.digest))
            info.size = desc.size
            info.mode = 0o444
            stream = _ReaderStream(store, desc)
            try:
                tf.addfile(info, stream)
            finally:
                stream.close()
        _add_bytes(tf, "index.json", index)


def _add_bytes(tf: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o444
    tf.addfile(info, io.BytesIO(data))


class _ReaderStream(io.RawIOBase):
    """A blob as a file object tarfile reads from, piece by piece."""

    def __init__(self, store: Provider, desc: Descriptor) -> None:
        self._ra = store.reader_at(desc.digest)
        self._offset = 0

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        data = self._ra.read_at(self._offset, len(b))
        b[: len(data)] = data
        self._offset += len(data)
        return len(data)

    def close(self) -> None:
        if not self.closed:
            self._ra.close()
        super().close()


# -- import ----------------------------------------------------------------------


class _Source(Protocol):
    def open(self, path: str) -> IO[bytes]: ...
    def size(self, path: str) -> int: ...


class _DirSource:
    def __init__(self, root: Path) -> None:
        self.root = root

    def open(self, path: str) -> IO[bytes]:
        # O_NONBLOCK: a FIFO put there must not wait for a writer (it is refused)
        try:
            fd = os.open(self.root / path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except FileNotFoundError:
            raise NotFound(f"layout {self.root}: {path}") from None
        try:
            self._regular(path, os.fstat(fd))
        except BaseException:
            os.close(fd)
            raise
        return os.fdopen(fd, "rb")

    def size(self, path: str) -> int:
        try:
            st = (self.root / path).stat()
        except FileNotFoundError:
            raise NotFound(f"layout {self.root}: {path}") from None
        return self._regular(path, st).st_size

    def _regular(self, path: str, st: os.stat_result) -> os.stat_result:
        if not stat.S_ISREG(st.st_mode):
            raise InvalidArgument(f"layout {self.root}: {path} is not a regular file")
        return st


#: the most an extended tar header (pax, GNU long name) may hold: tarfile reads one whole
_MAX_TAR_HEADER: Final = 1 << 20
#: the most members an archive may have (tarfile keeps every member's header)
_MAX_TAR_MEMBERS: Final = 100_000
_EXTENDED: Final = (
    tarfile.GNUTYPE_LONGNAME,
    tarfile.GNUTYPE_LONGLINK,
    tarfile.XHDTYPE,
    tarfile.XGLTYPE,
    tarfile.SOLARIS_XHDTYPE,
)


class _BoundedTarInfo(tarfile.TarInfo):
    """A member whose extended header is refused unread when it is too big (a gzip'd
    archive can claim gigabytes of header in a few kilobytes)."""

    def _proc_member(self, tf: tarfile.TarFile) -> tarfile.TarInfo:
        if self.type in _EXTENDED and self.size > _MAX_TAR_HEADER:
            raise InvalidArgument(
                f"tar header of {self.size} bytes at offset {self.offset}"
                f" (at most {_MAX_TAR_HEADER})"
            )
        return super()._proc_member(tf)  # type: ignore[misc,no-any-return]


class _TarSource:
    def __init__(self, tf: tarfile.TarFile, name: str) -> None:
        self.name = name
        self.tf = tf
        self.members: dict[str, tarfile.TarInfo] = {}
        for count, member in enumerate(tf, 1):
            if count > _MAX_TAR_MEMBERS:
                raise InvalidArgument(f"archive {name}: more than {_MAX_TAR_MEMBERS} members")
            if member.isfile():
                self.members[os.path.normpath(member.name).lstrip("./")] = member

    def _member(self, path: str) -> tarfile.TarInfo:
        member = self.members.get(path)
        if member is None:
            raise NotFound(f"archive {self.name}: {path}")
        return member

    def open(self, path: str) -> IO[bytes]:
        f = self.tf.extractfile(self._member(path))
        if f is None:
            raise NotFound(f"archive {self.name}: {path}")
        return f

    def size(self, path: str) -> int:
        return self._member(path).size


def _read_small(source: _Source, path: str, limit: int = MAX_MANIFEST_SIZE) -> bytes:
    if source.size(path) > limit:
        raise InvalidArgument(f"{path}: larger than {limit} bytes")
    with source.open(path) as f:
        return f.read(limit + 1)


def import_layout(
    store: Store,
    src: str | os.PathLike[str],
    *,
    base_name: str = "",
    progress: Callable[[str, Descriptor], None] | None = None,
) -> list[Image]:
    """Write every blob ``src`` (a layout directory or tar) names into ``store`` and return
    the image records to create: one per ``index.json`` entry with a name (its
    ``io.containerd.image.name``; else its ``ref.name``, prefixed ``base_name:`` when that
    is only a tag). Nothing is recorded here; the caller creates the records."""
    path = Path(src)
    with ExitStack() as stack:
        source: _Source
        if path.is_dir():
            source = _DirSource(path)
        else:
            try:
                tf = stack.enter_context(tarfile.open(path, mode="r:*", tarinfo=_BoundedTarInfo))
                source = _TarSource(tf, str(path))
            except tarfile.TarError as err:
                raise InvalidArgument(f"{path}: not a tar archive, or a damaged one") from err
        try:
            layout = json.loads(_read_small(source, "oci-layout", 4096) or b"{}")
        except ValueError:  # UnicodeDecodeError too
            layout = None
        except NotFound:  # "layout DIR: oci-layout" did not say what was missing, or why
            raise NotFound(f"{path}: not an OCI image layout: it has no oci-layout file") from None
        if not isinstance(layout, dict) or not str(layout.get("imageLayoutVersion", "")).startswith(
            "1."
        ):
            raise InvalidArgument(f"{path}: not an OCI image layout 1.x (oci-layout)")
        top = Descriptor(media_type=MT_OCI_INDEX, digest="sha256:" + "0" * 64, size=0)
        index = parse_document(_read_small(source, "index.json"), top)
        entries = index.get("manifests") or []
        if not isinstance(entries, list):
            raise ManifestError(f"{path}: index.json manifests is not a list")
        images: list[Image] = []
        done: set[str] = set()
        for i, entry in enumerate(entries):
            root = parse_descriptor(entry, f"{path}: index.json manifests[{i}]")
            for desc in _import_tree(store, source, root, done):
                if progress is not None:
                    progress("done", desc)
            name = _image_name(root, base_name)
            if name:
                annotations = {
                    k: v
                    for k, v in root.annotations.items()
                    if k not in (ANNOTATION_IMAGE_NAME, ANNOTATION_REF_NAME)
                }
                target = Descriptor(root.media_type, root.digest, root.size, (), annotations)
                images.append(Image(name=name, target=target))
        return images


def _image_name(root: Descriptor, base_name: str) -> str:
    name = root.annotations.get(ANNOTATION_IMAGE_NAME, "")
    if name:
        return name
    ref = root.annotations.get(ANNOTATION_REF_NAME, "")
    if not ref:
        return ""
    if base_name and "/" not in ref:
        return f"{base_name}:{ref}"
    return ref


def _import_tree(
    store: Store, source: _Source, root: Descriptor, done: set[str], depth: int = 0
) -> Iterator[Descriptor]:
    """Children before parents, so a parent's labels never name a blob still missing."""
    if root.digest in done:
        return
    path = _blob_path(root.digest)
    labels: dict[str, str] = {}
    if is_index(root.media_type) or is_manifest(root.media_type):
        check_nesting(path, depth)  # the walk recurses: bounded here
        data = _verified(root, path, _read_small(source, path))
        manifests, config, layers = children(root, data)
        kids = [m for m, _ in manifests] + ([config] if config else []) + layers
        for child in kids:
            yield from _import_tree(store, source, child, done, depth + 1)
        labels = gc_labels([m for m, _ in manifests], config, layers)
    _write_from(store, source, root, path, labels)
    done.add(root.digest)
    yield root


def _verified(desc: Descriptor, path: str, data: bytes) -> bytes:
    """``data`` if it is ``desc``'s bytes: a manifest is trusted (parsed, its children
    followed) only once it is (else a blob could name itself: an endless walk)."""
    if len(data) != desc.size:
        raise SizeMismatch(
            desc.size, len(data), f"{path}: {len(data)} bytes, its descriptor says {desc.size}"
        )
    parsed = digests.parse(desc.digest)
    got = f"{parsed.algorithm}:{hashlib.new(parsed.algorithm, data).hexdigest()}"
    if got != desc.digest:
        raise DigestMismatch(
            desc.digest, got, f"{path}: holds the bytes of {got}, not {desc.digest}"
        )
    return data


def _write_from(
    store: Store, source: _Source, desc: Descriptor, path: str, labels: dict[str, str]
) -> None:
    try:
        info = store.info(desc.digest)
    except NotFound:
        info = None
    if info is not None:
        if labels:
            store.update(replace(info, labels=labels), *(f"labels.{k}" for k in labels))
        return
    if source.size(path) != desc.size:
        raise InvalidArgument(f"{path}: {source.size(path)} bytes, its descriptor says {desc.size}")
    ref = f"import-{desc.digest}"
    writer = open_writer(store, ref, desc.size, desc.digest, timeout=60)
    failed = False
    try:
        if writer.status().offset:
            writer.truncate(0)
        with source.open(path) as f:
            while True:
                chunk = f.read(COPY_BUFFER)
                if not chunk:
                    break
                writer.write(chunk)
        writer.commit(desc.size, desc.digest, labels)
    except AlreadyExists:
        pass
    except ContentError:
        failed = True
        raise
    finally:
        writer.close()
        if failed:  # wrong bytes in the archive: keep nothing of them
            with contextlib.suppress(NotFound):
                store.abort(ref)
