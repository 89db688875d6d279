"""Which variant of contentd's hot modules runs: compiled with mypyc, or pure Python.

``scripts/build_ext`` compiles a few modules (the native engine's protocol core and
frame codec, ...) with mypyc into extension modules beside their sources
(``wire/protocol.cpython-311-x86_64-linux-gnu.so`` next to ``wire/protocol.py``) and
writes :data:`MANIFEST`: the SHA-256 of each compiled module's source and of every
contentd module it imports (compiled code has their types and constants built in),
each source's size and mtime as it was hashed, and the size and mtime of each
extension file it produced.

Python would import an extension module in preference to the ``.py`` beside it,
however old. The finder :func:`install` puts first on ``sys.meta_path`` (contentd's
``__init__`` does, before any other contentd module loads) decides instead, once
per process:

* **compiled**: the manifest's sources all hash as recorded (a source with the size and
  mtime it had when hashed is not hashed again: every command imports this module,
  and hashlib's import alone cost a fetch ~5% of its command's CPU), its extension files are
  the ones it recorded, and ``CONTENTD_PURE_PYTHON`` is not set to a true value;
* otherwise **pure Python**: every contentd module loads from its ``.py`` -- all of
  them, since compiled modules call each other's compiled code directly, a mix cannot
  work -- and a build that no longer matches its sources logs one warning.

An extension file beside a contentd ``.py`` that the manifest does not vouch for is
never imported. :func:`variant` says which variant runs (``contentd version``, the
daemon's boot line).
"""

from __future__ import annotations

import importlib.machinery
import os
import sys
from importlib.machinery import ExtensionFileLoader, ModuleSpec, PathFinder
from pathlib import Path
from types import ModuleType
from typing import Any, Final

__all__ = [
    "ENV",
    "MANIFEST",
    "PACKAGE_DIR",
    "Variant",
    "compiled_modules",
    "install",
    "source_digest",
    "variant",
]

#: set to 1 (or true/yes/on) to run every module from its ``.py``
ENV: Final = "CONTENTD_PURE_PYTHON"
#: the directory of the ``contentd`` package
PACKAGE_DIR: Final = Path(__file__).resolve().parent
#: what the last successful build produced (not in git; written by ``scripts/build_ext``)
MANIFEST: Final = PACKAGE_DIR / "_compiled.json"
#: the manifest format this module reads
FORMAT: Final = 1


def source_digest(path: Path) -> str:
    """The SHA-256 of a source file, hex."""
    import hashlib  # here, as json, logging and importlib.util: every command imports this module

    return hashlib.sha256(path.read_bytes()).hexdigest()


class Variant:
    """The decision, made once per process."""

    __slots__ = ("modules", "reason")

    def __init__(self, modules: frozenset[str], reason: str) -> None:
        #: the modules that load compiled (empty: pure Python)
        self.modules = modules
        #: why pure Python runs ("" when compiled)
        self.reason = reason

    @property
    def compiled(self) -> bool:
        return bool(self.modules)

    def describe(self) -> str:
        if self.modules:
            names = ", ".join(sorted(m.removeprefix("contentd.") for m in self.modules))
            return f"compiled with mypyc: {names}"
        return f"pure Python: {self.reason}"


_variant: Variant | None = None


def _pure_forced() -> bool:
    return os.environ.get(ENV, "").strip().lower() in ("1", "true", "yes", "on")


def _decide() -> Variant:
    if _pure_forced():
        return Variant(frozenset(), f"{ENV} is set")
    import json

    try:
        manifest: dict[str, Any] = json.loads(MANIFEST.read_text())
    except FileNotFoundError:
        return Variant(frozenset(), "no compiled build (scripts/build_ext.py)")
    except (OSError, ValueError) as err:
        _warn("compiled modules not used: unreadable %s (%s)", MANIFEST.name, err)
        return Variant(frozenset(), f"unreadable {MANIFEST.name}")
    problem = _check(manifest)
    if problem:
        _warn(
            "compiled modules not used, running pure Python: %s (rebuild: scripts/bootstrap)",
            problem,
        )
        return Variant(frozenset(), problem)
    return Variant(frozenset(manifest["modules"]), "")


def _warn(message: str, *args: object) -> None:
    import logging

    logging.getLogger(__name__).warning(message, *args)


def _check(manifest: dict[str, Any]) -> str:
    """Why the manifest's build cannot be used, or ``""``."""
    try:
        if manifest.get("format") != FORMAT:
            return f"{MANIFEST.name} has another format"
        if manifest["ext_suffix"] != importlib.machinery.EXTENSION_SUFFIXES[0]:
            return f"built for {manifest['ext_suffix']}, not this Python"
        stats = manifest.get("source_stats", {})
        changed = [
            name
            for name, digest in sorted(manifest["sources"].items())
            if not _same_source(PACKAGE_DIR / name, digest, stats.get(name))
        ]
        if changed:
            return f"{', '.join(changed)} changed since the build"
        for name, (size, mtime_ns) in sorted(manifest["extensions"].items()):
            try:
                st = (PACKAGE_DIR / name).stat()
            except OSError:
                return f"{name} is missing"
            if (st.st_size, st.st_mtime_ns) != (size, mtime_ns):
                return f"{name} is not the one built"
        if not manifest["modules"]:
            return "nothing compiled"
    except (KeyError, TypeError, ValueError) as err:
        return f"malformed {MANIFEST.name} ({err!r})"
    return ""


def _same_source(path: Path, digest: str, stat: list[int] | None) -> bool:
    """Whether ``path`` still has the bytes the build hashed: its size and mtime as the
    build found them before hashing it (as Python's own ``.pyc`` check trusts them; no
    edit leaves both), else its hash."""
    try:
        if stat is not None:
            st = os.stat(path)
            if [st.st_size, st.st_mtime_ns] == stat:
                return True
        return source_digest(path) == digest
    except OSError:
        return False


def variant() -> Variant:
    """Which variant runs in this process (decided on first use)."""
    global _variant
    if _variant is None:
        _variant = _decide()
    return _variant


def compiled_modules() -> frozenset[str]:
    """The contentd modules that load compiled in this process."""
    return variant().modules


class _Finder:
    """Finds contentd's modules as the path finder does, except that an extension
    module is used only when :func:`variant` vouches for it (else its ``.py``)."""

    @classmethod
    def find_spec(
        cls, fullname: str, path: Any = None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        if not fullname.startswith("contentd."):
            return None
        spec = PathFinder.find_spec(fullname, path, target)
        if spec is None or not isinstance(spec.loader, ExtensionFileLoader) or not spec.origin:
            return spec
        source = Path(spec.origin).parent / (fullname.rpartition(".")[2] + ".py")
        if not source.is_file():  # mypyc's shared library: no source to shadow
            return spec
        if fullname in variant().modules:
            return spec
        import importlib.util

        return importlib.util.spec_from_file_location(fullname, source)

    @classmethod
    def invalidate_caches(cls) -> None:
        pass


def install() -> None:
    """Put the finder first on ``sys.meta_path`` (once; importing this module does)."""
    if _Finder not in sys.meta_path:
        sys.meta_path.insert(0, _Finder)


install()
