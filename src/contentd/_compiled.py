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
from types import ModuleType
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from pathlib import Path

    #: the directory of the ``contentd`` package
    PACKAGE_DIR: Path
    #: what the last successful build produced (not in git; written by ``scripts/build_ext``)
    MANIFEST: Path

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
# os.path, not pathlib, here: every command imports this module, and pathlib (with
# urllib.parse and ipaddress) was ~8% of contentd fetch's command; PACKAGE_DIR and
# MANIFEST are Paths made on first use (__getattr__)
_PACKAGE: Final = os.path.dirname(os.path.realpath(__file__))
_MANIFEST_NAME: Final = "_compiled.json"
#: the manifest format this module reads
FORMAT: Final = 1


def source_digest(path: str | os.PathLike[str]) -> str:
    """The SHA-256 of a source file, hex."""
    import hashlib  # here, as json, logging and importlib.util: every command imports this module

    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


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
        with open(os.path.join(_PACKAGE, _MANIFEST_NAME), encoding="utf-8") as f:
            manifest: dict[str, Any] = json.loads(f.read())
    except FileNotFoundError:
        return Variant(frozenset(), "no compiled build (scripts/build_ext.py)")
    except (OSError, ValueError) as err:
        _warn("compiled modules not used: unreadable %s (%s)", _MANIFEST_NAME, err)
        return Variant(frozenset(), f"unreadable {_MANIFEST_NAME}")
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
            return f"{_MANIFEST_NAME} has another format"
        if manifest["ext_suffix"] != importlib.machinery.EXTENSION_SUFFIXES[0]:
            return f"built for {manifest['ext_suffix']}, not this Python"
        stats = manifest.get("source_stats", {})
        changed = [
            name
            for name, digest in sorted(manifest["sources"].items())
            if not _same_source(os.path.join(_PACKAGE, name), digest, stats.get(name))
        ]
        if changed:
            return f"{', '.join(changed)} changed since the build"
        for name, (size, mtime_ns) in sorted(manifest["extensions"].items()):
            try:
                st = os.stat(os.path.join(_PACKAGE, name))
            except OSError:
                return f"{name} is missing"
            if (st.st_size, st.st_mtime_ns) != (size, mtime_ns):
                return f"{name} is not the one built"
        if not manifest["modules"]:
            return "nothing compiled"
    except (KeyError, TypeError, ValueError) as err:
        return f"malformed {_MANIFEST_NAME} ({err!r})"
    return ""


def _same_source(path: str, digest: str, stat: list[int] | None) -> bool:
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
        source = os.path.join(os.path.dirname(spec.origin), fullname.rpartition(".")[2] + ".py")
        if not os.path.isfile(source):  # mypyc's shared library: no source to shadow
            return spec
        if fullname in variant().modules:
            return spec
        import importlib.util

        return importlib.util.spec_from_file_location(fullname, source)

    @classmethod
    def invalidate_caches(cls) -> None:
        pass


def __getattr__(name: str) -> Path:
    """:data:`PACKAGE_DIR` (the ``contentd`` package's directory) and :data:`MANIFEST`
    (what the last successful build produced, not in git; written by
    ``scripts/build_ext``), as Paths."""
    from pathlib import Path

    if name == "PACKAGE_DIR":
        return Path(_PACKAGE)
    if name == "MANIFEST":
        return Path(_PACKAGE, _MANIFEST_NAME)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def install() -> None:
    """Put the finder first on ``sys.meta_path`` (once; importing this module does)."""
    if _Finder not in sys.meta_path:
        sys.meta_path.insert(0, _Finder)


install()
