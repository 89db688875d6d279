"""What the process keeps about each store root, in one object per root.

Several stores may be open on one root in a process (the daemon's plugin and a
second handle, tests); what they must agree on lives in the root's
:class:`RootState`, not in the store objects:

* ``locks``: one open writer per ref (:mod:`contentd.local.locks`);
* ``blobs``: blob files kept open for readers, dropped by a delete through any
  store (:mod:`contentd.local.openblobs`);
* ``pending``: ingests not on disk yet, which status, list and abort through any
  store must see (:mod:`contentd.local.pending`).

:func:`root_state` gives a root's one state. It lives while a store, a writer or
a reader of that root does; when it goes, its idle blob files are closed (a
reader still open closes its own when done), so roots a process no longer uses
hold no files. Nothing here is on disk or seen by other processes.
"""

from __future__ import annotations

import threading
import weakref
from typing import Final, final

from contentd.local.locks import RefLocks
from contentd.local.openblobs import OpenBlobs
from contentd.local.pending import PendingIngests

__all__ = ["RootState", "root_state"]


@final
class RootState:
    """The ref locks, open blob files and pending ingests of one store root."""

    __slots__ = ("__weakref__", "blobs", "locks", "pending", "root")

    def __init__(self, root: str) -> None:
        self.root = root
        self.locks = RefLocks()
        self.blobs = OpenBlobs()
        self.pending = PendingIngests()
        weakref.finalize(self, self.blobs.close)

    def __repr__(self) -> str:
        return f"RootState({self.root!r})"


_states: Final[weakref.WeakValueDictionary[str, RootState]] = weakref.WeakValueDictionary()
_mutex: Final = threading.Lock()


def root_state(root: str) -> RootState:
    """The state of ``root`` (an absolute path, or any key naming one store), made on first use."""
    with _mutex:
        state = _states.get(root)
        if state is None:
            state = _states[root] = RootState(root)
        return state
