"""A private containerd 1.6.20 for tests, driven through Debian's ``ctr``.

:class:`ContainerdPeer` runs ``containerd --config <generated>`` as a child process, as
root, with its root, state, temp dir and unix socket inside one fresh temp directory: it
never touches ``/run/containerd``, ``/var/lib/containerd`` or ``/opt/containerd`` and
needs no systemd. Use it as a context manager, or ``start()`` / ``close()``.

Findings on this sandbox (Debian 12, containerd 1.6.20~ds1, kernel 6.x, root, ext4):

* Start-up to a ``ctr version`` answer takes well under a second (~0.1 s measured,
  ~0.05 s of it containerd loading plugins); stopping with SIGTERM takes ~0.1 s.
* With containerd's stock plugin set, ``ctr plugins ls`` shows ``aufs`` (no modprobe),
  ``btrfs`` and ``zfs`` (root is not on btrfs/zfs) as ``skip`` and ``devmapper`` as
  ``error`` (not configured); ``cri`` loads but logs a CNI error. The stock ``opt``
  plugin creates ``/opt/containerd`` outside the temp dir. All of these, plus the task
  machinery (runtimes, cgroups monitor, tasks service, restart) which nothing here
  needs, are listed in :data:`DEFAULT_DISABLED_PLUGINS`; every plugin left is ``ok``.
* The ``overlayfs`` snapshotter works as root here (``ctr images pull`` unpacks through
  overlay mounts), so it is the default; ``native`` is loaded too and can be chosen with
  ``snapshotter="native"`` (it is passed to ``ctr`` as ``CONTAINERD_SNAPSHOTTER``).
* ``ctr images pull --plain-http --all-platforms 127.0.0.1:PORT/repo:tag`` against a
  :class:`~tests.peers.registry.RegistryPeer` works (it fetches every blob and unpacks
  each platform, so configs must carry correct ``diff_ids``), and
  ``ctr images export --all-platforms`` writes an OCI tar holding every blob byte for
  byte (see ``tests/test_peers_smoke.py``). The pull takes ~1.2 s for the ~530 KB test
  image: both platforms fetch their shared layers at once, the second writer of a ref
  gets gRPC ``Unavailable`` ("ref ... locked for ...") from the content service and the
  client retries with a back-off -- so a content service standing in for containerd's
  must answer a locked ingest ref with ``Unavailable`` for such pulls to succeed.

External content store: containerd 1.6 hands the metadata plugin the *first* loaded
content plugin, so to put contentd behind containerd, disable the built-in one and add a
proxy plugin, e.g.::

    ContainerdPeer(extra_config='''
        disabled_plugins = ["io.containerd.content.v1.content"]
        [proxy_plugins.contentd]
        type = "content"
        address = "/tmp/x/contentd.sock"
    ''')

``extra_config`` (TOML text or a mapping) is deep-merged over the generated config;
``disabled_plugins`` / ``required_plugins`` arrays are unioned with the defaults.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Self

from tests.peers import tomlwrite
from tests.peers.process import ChildProcess, PeerError, run, tail, unmount_under

#: Plugins that fail, skip, write outside the temp dir, or are not needed in tests.
DEFAULT_DISABLED_PLUGINS: tuple[str, ...] = (
    "io.containerd.grpc.v1.cri",
    "io.containerd.snapshotter.v1.aufs",
    "io.containerd.snapshotter.v1.btrfs",
    "io.containerd.snapshotter.v1.devmapper",
    "io.containerd.snapshotter.v1.zfs",
    "io.containerd.internal.v1.opt",
    "io.containerd.internal.v1.restart",
    "io.containerd.runtime.v1.linux",
    "io.containerd.runtime.v2.task",
    "io.containerd.monitor.v1.cgroups",
    "io.containerd.service.v1.tasks-service",
    "io.containerd.grpc.v1.tasks",
)

#: Directory (below ``root``) of the built-in local content store.
CONTENT_PLUGIN_DIR = "io.containerd.content.v1.content"


class ContainerdPeer(ChildProcess):
    """A private containerd process with its own root, state and socket.

    The temp directory (``base``) is made by the constructor, so the path properties are
    valid before ``start()``; ``stop()`` stops the process but keeps the directory (a
    later ``start()`` reuses it, e.g. to test restarts); ``close()`` stops and removes it.
    """

    def __init__(
        self,
        extra_config: str | Mapping[str, Any] = "",
        *,
        base_dir: str | Path | None = None,
        disabled_plugins: Iterable[str] = DEFAULT_DISABLED_PLUGINS,
        snapshotter: str = "overlayfs",
        log_level: str = "info",
        containerd_binary: str = "containerd",
        ctr_binary: str = "ctr",
        start_timeout: float = 20.0,
        stop_timeout: float = 10.0,
    ) -> None:
        self._base = Path(tempfile.mkdtemp(prefix="ctrd-", dir=base_dir))
        self._extra: Mapping[str, Any] = (
            tomllib.loads(extra_config) if isinstance(extra_config, str) else extra_config
        )
        self._disabled = list(disabled_plugins)
        self.snapshotter = snapshotter
        self._log_level = log_level
        self._containerd = containerd_binary
        self._ctr = ctr_binary
        self._start_timeout = start_timeout
        self._stop_timeout = stop_timeout
        self._proc: subprocess.Popen[bytes] | None = None
        self._closed = False
        self.startup_seconds: float | None = None

    # -- paths -------------------------------------------------------------------------

    @property
    def base(self) -> Path:
        """The temp directory holding everything this peer writes."""
        return self._base

    @property
    def root(self) -> Path:
        return self._base / "root"

    @property
    def state(self) -> Path:
        return self._base / "state"

    @property
    def address(self) -> str:
        """Path of containerd's gRPC unix socket."""
        return str(self.state / "containerd.sock")

    @property
    def content_root(self) -> Path:
        """Root of the built-in local content store (``blobs/``, ``ingest/``)."""
        return self.root / CONTENT_PLUGIN_DIR

    @property
    def log_path(self) -> Path:
        return self._base / "containerd.log"

    @property
    def config_path(self) -> Path:
        return self._base / "config.toml"

    # -- config ------------------------------------------------------------------------

    def config(self) -> dict[str, Any]:
        """The configuration document this peer runs with (defaults merged with extras)."""
        base: dict[str, Any] = {
            "version": 2,
            "root": str(self.root),
            "state": str(self.state),
            "temp": str(self._base / "tmp"),
            "plugin_dir": str(self._base / "plugins"),
            "disabled_plugins": list(self._disabled),
            "grpc": {"address": self.address},
            "ttrpc": {"address": self.address + ".ttrpc"},
            "debug": {"address": "", "level": self._log_level},
            "metrics": {"address": ""},
            # containerd's GC deletes content that has no lease and no gc.root. Its first
            # run comes 100 ms after start-up and later runs follow every 100 metadata
            # mutations, so a test ingesting with plain `ctr content ingest` would race it.
            # Tests that want a GC force one (a lease delete with sync, or
            # `ctr content prune references`); extra config can restore the defaults.
            "plugins": {
                "io.containerd.gc.v1.scheduler": {
                    "startup_delay": "1h",
                    "mutation_threshold": 1_000_000_000,
                },
            },
        }
        return tomlwrite.merge(base, self._extra)

    def config_text(self) -> str:
        return tomlwrite.dumps(self.config())

    # -- life cycle --------------------------------------------------------------------

    def start(self) -> Self:
        """Start containerd and wait until ``ctr version`` answers on the socket."""
        if self._closed:
            raise PeerError("ContainerdPeer was closed")
        if self.running:
            return self
        for d in (self.root, self.state, self._base / "tmp"):
            d.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(self.config_text())
        t0 = time.monotonic()
        self._spawn([self._containerd, "--config", str(self.config_path)])
        try:
            self._wait_ready(t0)
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - t0
        return self

    def _wait_ready(self, t0: float) -> None:
        assert self._proc is not None
        deadline = t0 + self._start_timeout
        sock = Path(self.address)
        last = ""
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise PeerError(
                    f"containerd exited with {self._proc.returncode} during start-up; "
                    f"log tail ({self.log_path}):\n{tail(self.log_path)}"
                )
            if sock.exists():
                left = max(0.5, deadline - time.monotonic())
                try:
                    p = self.ctr("version", check=False, timeout=min(5.0, left))
                except subprocess.TimeoutExpired:
                    last = "ctr version timed out"
                else:
                    if p.returncode == 0:
                        return
                    last = p.stderr.decode("utf-8", "replace").strip()
            time.sleep(0.02)
        raise PeerError(
            f"containerd did not answer on {self.address} within {self._start_timeout}s "
            f"(last ctr error: {last or 'socket never appeared'}); "
            f"log tail ({self.log_path}):\n{tail(self.log_path)}"
        )

    def close(self) -> None:
        """Stop containerd and remove its temp directory (unmounting leftovers first)."""
        if self._closed:
            return
        self.stop()
        self._closed = True
        unmount_under(self._base)
        shutil.rmtree(self._base, ignore_errors=True)

    # -- driving -----------------------------------------------------------------------

    def ctr(
        self,
        *args: str,
        namespace: str = "default",
        input: bytes | None = None,
        check: bool = True,
        timeout: float = 60.0,
    ) -> subprocess.CompletedProcess[bytes]:
        """Run ``ctr --address <sock> -n <namespace> *args`` and capture its output.

        Raises :class:`~tests.peers.process.CommandError` (a ``CalledProcessError``) on a
        non-zero exit when ``check``, and ``subprocess.TimeoutExpired`` after ``timeout``.
        """
        argv = [self._ctr, "--address", self.address, "-n", namespace, *args]
        return run(
            argv,
            input=input,
            check=check,
            timeout=timeout,
            env={"CONTAINERD_SNAPSHOTTER": self.snapshotter},
        )

    def plugins(self) -> dict[str, str]:
        """``ctr plugins ls``: ``{"<type>.<id>": status}``."""
        out = self.ctr("plugins", "ls").stdout.decode()
        result: dict[str, str] = {}
        for line in out.splitlines()[1:]:
            fields = line.split()
            if len(fields) >= 3:
                result[f"{fields[0]}.{fields[1]}"] = fields[-1]
        return result

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<ContainerdPeer {self.address} {state}>"
