"""A stand-in for ``contentd serve``, used by the benchmark only while ``serve`` is missing.

It composes the same pieces the daemon serves -- LocalStore under the
metadata layer (SQLite), the Content gRPC service on grpcio's sync server --
with the daemon's flags, so the harness can be built before the daemon
lands. It serves no Leases service (GC between samples is then skipped), and
header-less calls land in the namespace ``containerd-proxy`` as the daemon's
default does. The benchmark labels results taken with it as a stand-in.
"""

from __future__ import annotations

import argparse
import os
import signal
import threading
from collections.abc import Sequence

from contentd.api.content import ContentService
from contentd.api.server import build_server
from contentd.content.store import Store
from contentd.local import LocalStore
from contentd.metadata import MetadataDB

HEADERLESS_NAMESPACE = "containerd-proxy"


class _Resolver:
    def __init__(self, db: MetadataDB) -> None:
        self._db = db

    def resolve(self, namespace: str | None, lease: str | None) -> Store:
        return self._db.content_store(namespace or HEADERLESS_NAMESPACE, lease)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bench.standin")
    p.add_argument("--root", required=True)
    p.add_argument("--state", required=True)
    p.add_argument("--address", required=True)
    p.add_argument("--config")
    p.add_argument("--content-sharing-policy", default="shared")
    p.add_argument("--log-level", default="info")
    args = p.parse_args(argv)
    content_root = os.path.join(args.root, "io.containerd.content.v1.content")
    meta_dir = os.path.join(args.root, "io.containerd.metadata.v1.sqlite")
    os.makedirs(meta_dir, exist_ok=True)
    os.makedirs(args.state, exist_ok=True)
    db = MetadataDB(
        os.path.join(meta_dir, "meta.db"),
        LocalStore(content_root),
        content_sharing_policy=args.content_sharing_policy,
    )
    server = build_server(args.address, [ContentService(_Resolver(db))])
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    server.start()
    stop.wait()
    server.stop(1).wait()
    db.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
