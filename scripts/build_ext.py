"""Compile contentd's hot modules with mypyc, into src/ beside their sources.

    .venv/bin/python scripts/build_ext.py          # build if a source changed (bootstrap does)
    .venv/bin/python scripts/build_ext.py --check   # exit 1 unless the build matches the sources
    .venv/bin/python scripts/build_ext.py --force   # rebuild
    .venv/bin/python scripts/build_ext.py --clean   # remove the build: pure Python

The build key (the sources' hashes, mypy's version, this script, the Python) is
kept in src/contentd/_compiled.json with what the build produced;
contentd/_compiled.py reads it at import and uses the extension modules only
while it matches the sources on disk. Extensions are built under build/mypyc/
and renamed into place (a process that has the old one loaded keeps it).

Without a C compiler or Python's headers, or if mypyc fails, this says so in one
line, leaves no extension behind, and exits 0 (no compiler) or 1 (a failed
build): contentd then runs pure Python.
"""

from __future__ import annotations

import argparse
import ast
import fcntl
import hashlib
import importlib.machinery
import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "src"
PACKAGE = SRC / "contentd"
MANIFEST = PACKAGE / "_compiled.json"
WORK = ROOT / "build" / "mypyc"
LOG = WORK / "build.log"
FORMAT = 1  # contentd._compiled.FORMAT
#: the shared library mypyc builds for the group: contentd/_native__mypyc.*.so
GROUP = "contentd._native"

#: compiled, chosen by measurement (README: "The engine compiled"); paths under src/contentd
MODULES = [
    "api/content_codec.py",
    "wire/events.py",
    "wire/frames.py",
    "wire/limits.py",
    "wire/metadata.py",
    "wire/protocol.py",
    "wire/streams.py",
]

SUFFIX = importlib.machinery.EXTENSION_SUFFIXES[0]


def module_name(rel: str) -> str:
    return "contentd." + rel.removesuffix(".py").replace("/", ".")


def imported_sources(rel: str) -> set[str]:
    """The contentd modules ``rel`` imports (paths under src/contentd)."""
    tree = ast.parse((PACKAGE / rel).read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)
    found: set[str] = set()
    for name in names:
        if not name.startswith("contentd."):
            continue
        path = SRC / name.replace(".", "/")
        for candidate in (path.with_suffix(".py"), path / "__init__.py"):
            if candidate.is_file():
                found.add(candidate.relative_to(PACKAGE).as_posix())
    return found


#: each source's [size, mtime_ns], taken before it was hashed (sources() fills it): while
#: a source still has them, contentd takes it as the one hashed without hashing it again
SOURCE_STATS: dict[str, list[int]] = {}


def sources() -> dict[str, str]:
    """Every source the build depends on, with its SHA-256."""
    names: set[str] = set(MODULES)
    for rel in MODULES:
        names |= imported_sources(rel)
    digests = {}
    for rel in sorted(names):
        path = PACKAGE / rel
        st = path.stat()  # before the read: a change made while hashing shows in mtime
        SOURCE_STATS[rel] = [st.st_size, st.st_mtime_ns]
        digests[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return digests


def build_key(digests: dict[str, str]) -> str:
    import mypy.version

    h = hashlib.sha256()
    h.update(json.dumps([MODULES, digests, mypy.version.__version__, SUFFIX]).encode())
    h.update(Path(__file__).read_bytes())
    return h.hexdigest()


def current(key: str) -> bool:
    """The build in place is the one ``key`` asks for, and contentd would use it."""
    try:
        manifest = json.loads(MANIFEST.read_text())
    except (OSError, ValueError):
        return False
    if manifest.get("build_key") != key:
        return False
    sys.path.insert(0, str(SRC))
    from contentd._compiled import _check

    return _check(manifest) == ""


def installed_extensions() -> list[Path]:
    return sorted(PACKAGE.rglob("*" + SUFFIX))


def clean() -> None:
    """Remove the manifest first (from then on contentd imports its .py files), then
    every extension module under src/contentd."""
    MANIFEST.unlink(missing_ok=True)
    for path in installed_extensions():
        path.unlink()


def toolchain_problem() -> str:
    cc = (os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc").split()[0]
    if shutil.which(cc) is None:
        return f"no C compiler ({cc})"
    include = Path(sysconfig.get_paths()["include"])
    if not (include / "Python.h").is_file():
        return f"no Python headers ({include}/Python.h; on Debian: apt-get install python3-dev)"
    try:
        import mypyc.build  # noqa: F401
    except ImportError:
        return "no mypyc (pip install mypy)"
    return ""


_SETUP = """
import sys
from setuptools import setup
from mypyc.build import mypycify

work, group, *paths = sys.argv[1:]
setup(
    name="contentd-compiled",
    package_dir={"": "src"},
    ext_modules=mypycify(paths, opt_level="3", group_name=group, target_dir=work + "/c"),
    script_args=["build_ext", "--build-lib", work + "/lib", "--build-temp", work + "/temp"],
)
"""


def build() -> bool:
    if WORK.exists():
        shutil.rmtree(WORK)
    WORK.mkdir(parents=True)
    paths = [f"src/contentd/{rel}" for rel in MODULES]
    with LOG.open("w") as log:
        rc = subprocess.call(
            [sys.executable, "-c", _SETUP, str(WORK), GROUP, *paths],
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    return rc == 0


def install(digests: dict[str, str], key: str) -> None:
    lib = WORK / "lib"
    built = sorted(lib.rglob("*" + SUFFIX))
    wanted = {module_name(rel) for rel in MODULES}
    produced = {p.relative_to(lib).as_posix().removesuffix(SUFFIX).replace("/", ".") for p in built}
    missing = wanted - produced
    if missing:
        raise RuntimeError(f"the build produced no {', '.join(sorted(missing))}")
    clean()
    extensions: dict[str, list[int]] = {}
    for path in built:
        rel = path.relative_to(lib / "contentd").as_posix()
        target = PACKAGE / rel
        os.replace(path, target)  # a new file: a process that mapped the old one keeps it
        st = target.stat()
        extensions[rel] = [st.st_size, st.st_mtime_ns]
    manifest = {
        "format": FORMAT,
        "build_key": key,
        "ext_suffix": SUFFIX,
        "modules": sorted(wanted),
        "sources": digests,
        "source_stats": {rel: SOURCE_STATS[rel] for rel in digests},
        "extensions": extensions,
    }
    tmp = MANIFEST.with_suffix(".tmp")
    tmp.write_text(json.dumps(manifest, indent=1) + "\n")
    os.replace(tmp, MANIFEST)


def _build(digests: dict[str, str], key: str, force: bool) -> int:
    if current(key) and not force:
        return 0
    names = ", ".join(module_name(rel) for rel in MODULES)
    print(f"build_ext: compiling {names} with mypyc ...", flush=True, file=sys.stderr)
    try:
        if not build():
            raise RuntimeError(f"mypyc failed, see {LOG.relative_to(ROOT)}")
        install(digests, key)
    except (OSError, RuntimeError) as err:
        clean()
        print(f"build_ext: {err}: contentd runs pure Python", file=sys.stderr)
        return 1
    return 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--check", action="store_true", help="exit 1 unless the build is current")
    p.add_argument("--force", action="store_true", help="rebuild even if current")
    p.add_argument("--clean", action="store_true", help="remove the build (pure Python)")
    args = p.parse_args()
    if args.clean:
        clean()
        return 0
    problem = toolchain_problem()
    if problem and not args.check:
        clean()
        print(f"build_ext: {problem}: contentd runs pure Python", file=sys.stderr)
        return 0
    digests = sources()
    key = build_key(digests)
    if args.check:
        if current(key):
            return 0
        print(
            "build_ext: the compiled modules do not match their sources (run scripts/bootstrap)",
            file=sys.stderr,
        )
        return 1
    WORK.parent.mkdir(exist_ok=True)
    with open(WORK.parent / "mypyc.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one build at a time in this checkout
        return _build(digests, key, args.force)


if __name__ == "__main__":
    sys.exit(main())
