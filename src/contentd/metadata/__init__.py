"""containerd's metadata layer for content, on SQLite: namespaces, leases, GC.

``MetadataDB(path, backend)`` wraps a namespace-agnostic backend store (the
local store, or a proxy) and hands out per-namespace content stores that
satisfy the same :class:`~contentd.content.store.Store` contract, and image
records (``db.images(namespace)``) whose targets are GC roots.
"""

from contentd.metadata import identifiers
from contentd.metadata.content import INGEST_EXPIRY, ContentStore, backend_ref
from contentd.metadata.events import (
    TOPIC_CONTENT_CORRUPT,
    TOPIC_CONTENT_CREATE,
    TOPIC_CONTENT_DELETE,
    ContentCorrupt,
    ContentCreate,
    ContentDelete,
    Envelope,
    Exchange,
    Subscription,
    validate_topic,
)
from contentd.metadata.fsck import Finding as FsckFinding
from contentd.metadata.fsck import Options as FsckOptions
from contentd.metadata.fsck import Report as FsckReport
from contentd.metadata.gc import GCResult
from contentd.metadata.health import Quarantined
from contentd.metadata.images import Image, ImageStore, image_field
from contentd.metadata.leases import Lease, LeaseManager, Resource, generate_lease_id
from contentd.metadata.metadb import POLICIES, MetadataDB
from contentd.metadata.namespaces import LABEL_GC_MANAGED_EXTERNALLY, NamespaceStore
from contentd.metadata.scheduler import Scheduler, SchedulerConfig, parse_duration
from contentd.metadata.scrub import Scrubber, ScrubConfig, ScrubStatus
from contentd.metadata.writer import NamespacedWriter

__all__ = [
    "INGEST_EXPIRY",
    "LABEL_GC_MANAGED_EXTERNALLY",
    "POLICIES",
    "TOPIC_CONTENT_CORRUPT",
    "TOPIC_CONTENT_CREATE",
    "TOPIC_CONTENT_DELETE",
    "ContentCorrupt",
    "ContentCreate",
    "ContentDelete",
    "ContentStore",
    "Envelope",
    "Exchange",
    "FsckFinding",
    "FsckOptions",
    "FsckReport",
    "GCResult",
    "Image",
    "ImageStore",
    "Lease",
    "LeaseManager",
    "MetadataDB",
    "NamespaceStore",
    "NamespacedWriter",
    "Quarantined",
    "Resource",
    "Scheduler",
    "SchedulerConfig",
    "ScrubConfig",
    "ScrubStatus",
    "Scrubber",
    "Subscription",
    "backend_ref",
    "generate_lease_id",
    "identifiers",
    "image_field",
    "parse_duration",
    "validate_topic",
]
