"""The ``io.containerd.grpc.v1.fsck`` plugin: ``contentd fsck`` online, and the scrubber.

It serves ``contentd.services.fsck.v1.Fsck`` on the daemon's main socket over the
metadata plugin and runs the online scrubber configured by its table
(:class:`~contentd.plugins.builtin.configs.FsckConfig`). Its exports show the
scrubber's settings and progress in ``ctr plugins ls -d`` / introspection.
"""

from __future__ import annotations

from typing import Final

from contentd.content.errors import FailedPrecondition
from contentd.plugins import types
from contentd.plugins.builtin.configs import FsckConfig
from contentd.plugins.context import InitContext
from contentd.plugins.registry import Registration

__all__ = ["FSCK_SERVICE_ID", "fsck_service_registration"]

FSCK_SERVICE_ID: Final = "fsck"


def _init_fsck_service(ic: InitContext) -> object:
    from contentd.api.fsck import FsckService
    from contentd.metadata import MetadataDB, ScrubConfig

    config = ic.config if isinstance(ic.config, FsckConfig) else FsckConfig()
    config.validate()
    db = ic.get(types.METADATA)
    if not isinstance(db, MetadataDB):
        raise FailedPrecondition(f"{types.METADATA} plugin is not a MetadataDB")
    scrubber = db.scrubber(
        ScrubConfig(
            interval=config.seconds("scrub_interval"),
            bytes_per_second=config.scrub_bytes_per_second,
            startup_delay=config.seconds("scrub_startup_delay"),
        )
    )
    ic.exports["scrub_interval"] = str(config.scrub_interval)
    ic.exports["scrub_bytes_per_second"] = str(config.scrub_bytes_per_second)
    scrubber.start()
    return FsckService(db, scrubber)


def fsck_service_registration() -> Registration:
    return Registration(
        types.GRPC,
        FSCK_SERVICE_ID,
        _init_fsck_service,
        requires=(types.METADATA,),
        config=FsckConfig(),
    )
