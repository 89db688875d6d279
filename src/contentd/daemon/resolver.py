"""Which content store a Content call works on, and header-less callers.

Calls with a ``containerd-namespace`` header get that namespace's store in
the metadata database (with the ``containerd-lease`` header's lease, if any).

containerd's proxy content plugin sends **no** namespace header: containerd
keeps its own namespaces in its own metadata and uses the remote store as one
flat backend, writing ingests as ``<ns>/1/<ref>`` and, during its GC, listing
every blob and deleting those it has no record of. Serving such calls from
the whole backend would let containerd's GC delete every other tenant's
blobs. So header-less calls are *pinned* to one namespace
(``[grpc] headerless_namespace``, default ``containerd-proxy``):

* containerd only ever sees (List, ListStatuses) and deletes or aborts
  (Delete, Abort) records in that namespace; other namespaces' records, and
  the bytes they hold, are out of its reach;
* the bytes still live once in the shared backend: under the ``shared``
  policy a blob that another namespace already holds is recorded in the
  pinned namespace when containerd commits it, without a second copy; one
  that another containerd's pinned namespace holds (another listener's, or
  another node's) is recorded as soon as containerd asks for it (Info,
  before it opens a writer), so containerd skips the download;
* the pinned namespace is labelled ``contentd.io/gc.managed-externally=true``
  (created on demand, and the label restored if someone removes it), so
  contentd's own GC treats everything in it as rooted: containerd decides
  what lives there, through Delete and Abort.

An empty ``headerless_namespace`` turns pinning off: header-less calls then
fail with FailedPrecondition ``namespace is required``, as containerd's own
content service answers them.

Several containerds sharing one contentd must not share a pinned namespace
(each one's GC would delete the others' blobs). ``[headerless_listeners.<name>]``
gives each its own socket and namespace; such a resolver is *exclusive*: a
call that names any other namespace is refused, so a tenant cannot reach
past its own namespace by adding a header.
"""

from __future__ import annotations

import logging
import threading
from typing import Final

from contentd.content.errors import FailedPrecondition, InvalidArgument
from contentd.metadata import LABEL_GC_MANAGED_EXTERNALLY, ContentStore, MetadataDB, identifiers

__all__ = ["NamespaceResolver"]

log = logging.getLogger(__name__)

#: stores remembered per resolver at most (then it starts over)
_STORES: Final = 256


class NamespaceResolver:
    """A :class:`~contentd.api.content.StoreResolver` over a metadata database."""

    def __init__(
        self, db: MetadataDB, headerless_namespace: str | None, *, exclusive: bool = False
    ) -> None:
        if headerless_namespace:
            identifiers.validate(headerless_namespace)
        elif exclusive:
            raise InvalidArgument("an exclusive resolver needs a namespace")
        self.db = db
        self.headerless_namespace = headerless_namespace or None
        self.exclusive = exclusive
        self._lock = threading.Lock()
        # namespaces.changes when the label was last seen in place (-1: never)
        self._checked = -1
        # the stores handed out, by (namespace header, lease header): a store is a few
        # immutable fields, and containerd's proxy resolves the same one per 32 KiB
        self._stores: dict[tuple[str | None, str | None], ContentStore] = {}

    def __repr__(self) -> str:
        return (
            f"NamespaceResolver({self.db!r}, headerless_namespace={self.headerless_namespace!r},"
            f" exclusive={self.exclusive})"
        )

    def resolve(self, namespace: str | None, lease: str | None) -> ContentStore:
        if self.exclusive and namespace is not None and namespace != self.headerless_namespace:
            raise FailedPrecondition(
                f"this socket serves only namespace {self.headerless_namespace!r},"
                f" not {namespace!r}"
            )
        pinned = namespace is None and self.headerless_namespace is not None
        if pinned:
            self.ensure_pinned()
        key = (namespace, lease)
        store = self._stores.get(key)
        if store is None:
            if pinned:
                # containerd: a blob another namespace shares is linked here when asked for
                store = self.db.content_store(self.headerless_namespace, lease, link_shared=True)
            else:
                store = self.db.content_store(namespace, lease)
            if len(self._stores) >= _STORES:
                self._stores.clear()
            self._stores[key] = store
        return store

    def ensure_pinned(self) -> None:
        """Create the pinned namespace if needed and make sure it carries the GC label.

        A database read only after some namespace's labels changed (containerd's
        proxy makes a header-less call per 32 KiB it reads: a read each was most of
        what finding the store cost them); a write only when the label is missing.
        """
        name = self.headerless_namespace
        if name is None:
            return
        namespaces = self.db.namespaces
        if namespaces.changes == self._checked:
            return
        with self._lock:
            # read before the labels: a change after this is noticed by the next call (our
            # own write below included, which costs one more read)
            seen = namespaces.changes
            if namespaces.labels(name).get(LABEL_GC_MANAGED_EXTERNALLY) != "true":
                namespaces.set_label(name, LABEL_GC_MANAGED_EXTERNALLY, "true")
                log.info(
                    "header-less calls are served from namespace %s (GC managed by the caller)",
                    name,
                    extra={"fields": {"namespace": name}},
                )
            self._checked = seen
