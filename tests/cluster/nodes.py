"""``contentd serve`` nodes of one cluster: one PostgreSQL database, one SeaweedFS
bucket prefix, each node with its own root, socket and pinned header-less namespace."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

from contentd.proxy import ProxyStore
from tests.daemon.harness import QUIET_GC, ServeProcess
from tests.peers.fixtures import S3_BUCKET
from tests.peers.postgres import PostgresPeer
from tests.peers.process import clean_env
from tests.peers.seaweedfs import SeaweedPeer

__all__ = ["Cluster", "node_config"]


def node_config(
    name: str,
    dsn: str,
    endpoint: str,
    prefix: str,
    *,
    ref_lock_lease: str = "2s",
    gc_grace: str = "0s",
    pinned: str | None = None,
    bucket: str = S3_BUCKET,
    cache_size: str = "256MiB",
) -> str:
    """A node's config: its own header-less namespace, the cluster's database and bucket."""
    return (
        QUIET_GC
        + f"""
[grpc]
  headerless_namespace = "{pinned or "node-" + name}"

[plugins."io.contentd.metadata.v1.postgres"]
  dsn = "{dsn}"
  node_name = "{name}"
  ref_lock_lease = "{ref_lock_lease}"
  gc_grace = "{gc_grace}"

[plugins."io.contentd.content.v1.s3"]
  endpoint = "{endpoint}"
  bucket = "{bucket}"
  prefix = "{prefix}"
  cache_size = "{cache_size}"
  part_size = "5MiB"
"""
    )


class Cluster:
    """Starts nodes on demand; closes them (and their stores) at teardown."""

    def __init__(
        self,
        postgres: PostgresPeer,
        seaweed: SeaweedPeer,
        prefix: str,
        *,
        bucket: str = S3_BUCKET,
        node_defaults: dict[str, Any] | None = None,
    ) -> None:
        self.dsn = postgres.create_database("cluster")
        self.seaweed = seaweed
        self.prefix = prefix
        self.bucket = bucket
        #: keyword arguments of :func:`node_config` every node gets (a call's own win)
        self.node_defaults = dict(node_defaults or {})
        self.nodes: dict[str, ServeProcess] = {}
        self._stores: list[ProxyStore] = []

    def config(self, name: str, **kw: Any) -> str:
        kw = {"bucket": self.bucket, **self.node_defaults, **kw}
        return node_config(name, self.dsn, self.seaweed.endpoint, self.prefix, **kw)

    def start(self, name: str, env: dict[str, str] | None = None, **kw: Any) -> ServeProcess:
        """Start node ``name`` (``env``: extra variables, e.g. a crash point)."""
        node = ServeProcess(
            config=self.config(name, **kw), env={**self.seaweed.env(), **(env or {})}, name=name
        )
        self.nodes[name] = node
        node.start(timeout=60)
        return node

    def spawn(self, name: str, **kw: Any) -> ServeProcess:
        """Start a node without waiting for it (for starts that must fail)."""
        node = ServeProcess(config=self.config(name, **kw), env=self.seaweed.env(), name=name)
        self.nodes[name] = node
        node.spawn()
        return node

    def store(self, name: str, namespace: str | None, lease: str | None = None) -> ProxyStore:
        """A client of node ``name``: a namespace, or None for its pinned header-less one."""
        store = ProxyStore(self.nodes[name].address, namespace=namespace, lease=lease)
        self._stores.append(store)
        return store

    def gc(self, name: str) -> dict[str, Any]:
        """``contentd gc`` against node ``name``: what the collection removed."""
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "contentd",
                "--address",
                str(self.nodes[name].socket),
                "--output",
                "json",
                "gc",
            ],
            capture_output=True,
            check=True,
            timeout=120,
            env=clean_env(),
        )
        result: dict[str, Any] = json.loads(out.stdout)
        return result

    def s3_keys(self) -> set[str]:
        client = self.seaweed.client()
        keys: set[str] = set()
        for page in client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=self.prefix
        ):
            keys.update(obj["Key"] for obj in page.get("Contents", []))
        return keys

    def logs(self) -> str:
        return "\n".join(
            f"--- node {name} ---\n{node.log_text()[-3000:]}" for name, node in self.nodes.items()
        )

    def close(self) -> None:
        for store in self._stores:
            store.close()
        for node in self.nodes.values():
            node.close()
