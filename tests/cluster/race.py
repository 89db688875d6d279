"""Several writers of one digest at once, each through its own store (node)."""

from __future__ import annotations

import threading
from collections.abc import Sequence

from contentd import AlreadyExists, Store
from contentd.content.errors import ContentError

__all__ = ["commit_race"]


def commit_race(
    stores: Sequence[Store], writers: int, data: bytes, digest: str, *, expected: bool = False
) -> list[str]:
    """``writers`` threads, writer ``i`` on ``stores[i % len(stores)]`` with ref ``ref-<i>``,
    released together, each writing and committing ``data``. Their outcomes, sorted:
    ``committed``, ``exists`` (AlreadyExists at open or commit) or ``error: ...``.
    ``expected``: open the writers with the digest (containerd's pulls do)."""
    barrier = threading.Barrier(writers)
    outcomes: list[str] = []
    lock = threading.Lock()

    def writer(i: int) -> None:
        store = stores[i % len(stores)]
        barrier.wait()
        try:
            with store.writer(
                f"ref-{i}", total=len(data), expected=digest if expected else None
            ) as w:
                w.write(data)
                w.commit(len(data), digest)
            outcome = "committed"
        except AlreadyExists:
            outcome = "exists"
        except ContentError as err:
            outcome = f"error: {err}"
        with lock:
            outcomes.append(outcome)

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    return sorted(outcomes)
