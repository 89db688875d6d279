"""The child process of the crash tests: sets up a store, then dies mid-operation.

Run as ``python -m tests.metadata.crash_child setup <dir>`` first (a normal
run), then as ``python -m tests.metadata.crash_child <scenario> <dir>`` with
``CONTENTD_METADATA_CRASH_AT`` naming the crash point; the child kills itself
(SIGKILL) when it gets there. Exit status 3 means it never did.
"""

from __future__ import annotations

import io
import sys
from pathlib import Path

from contentd import Descriptor, LocalStore, write_blob
from contentd.content.digest import digest_of
from contentd.content.labels import LABEL_GC_ROOT
from contentd.metadata import MetadataDB

NS = "crash"
ANCHOR = b"anchor: rooted, committed before the crash"
HALF = b"a blob whose ingest was interrupted " * 100
VICTIM = b"the blob committed when the process died"
#: too big to ride in its record's transaction: committed the usual way (synced, then recorded)
BIG_VICTIM = b"a big blob committed when the process died " * 2000
UNROOTED = [b"unrooted one", b"unrooted two"]


def open_db(root: Path) -> MetadataDB:
    return MetadataDB(root / "meta.db", LocalStore(root / "content"))


def setup(db: MetadataDB) -> None:
    cs = db.content_store(NS)
    write_blob(cs, "anchor", io.BytesIO(ANCHOR), Descriptor(), {LABEL_GC_ROOT: "1"})
    w = cs.writer("half", total=len(HALF), expected=digest_of(HALF))
    w.write(HALF[: len(HALF) // 2])
    w.close()


def main(scenario: str, root: Path) -> int:
    db = open_db(root)
    cs = db.content_store(NS)
    if scenario == "setup":
        setup(db)
        db.close()
        return 0
    if scenario == "commit":
        w = cs.writer("victim")
        w.write(VICTIM)
        w.commit(len(VICTIM), digest_of(VICTIM))
    elif scenario == "commit-big":
        w = cs.writer("victim")
        w.write(BIG_VICTIM)
        w.commit(len(BIG_VICTIM), digest_of(BIG_VICTIM))
    elif scenario == "open":
        cs.writer("opened")
    elif scenario == "gc":
        for data in UNROOTED:
            write_blob(cs, f"u-{data.decode()}", io.BytesIO(data), Descriptor())
        db.garbage_collect()
    else:
        raise SystemExit(f"unknown scenario {scenario}")
    return 3


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], Path(sys.argv[2])))
