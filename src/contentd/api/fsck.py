"""contentd's ``contentd.services.fsck.v1.Fsck`` gRPC service (``contentd fsck``).

**Check** runs :mod:`contentd.metadata.fsck` on the daemon's database, on the
calling worker thread; writers never wait for it, and a repair's garbage
collection goes through the running GC scheduler. **Status** reports the online
scrubber (:mod:`contentd.metadata.scrub`) and every quarantined blob.
"""

from __future__ import annotations

import logging
from typing import Final, NoReturn

import grpc

from contentd.api._pb.contentd.services.fsck.v1 import fsck_pb2 as pb
from contentd.api._pb.contentd.services.fsck.v1 import fsck_pb2_grpc as pb_grpc
from contentd.api.calls import fail
from contentd.api.convert import fill_timestamp
from contentd.content.errors import InvalidArgument
from contentd.content.gotime import from_ns
from contentd.metadata import FsckOptions, FsckReport, MetadataDB
from contentd.metadata.identifiers import validate as validate_namespace
from contentd.metadata.scrub import Scrubber

__all__ = ["SERVICE_NAME", "FsckService", "report_to_pb"]

log = logging.getLogger(__name__)

SERVICE_NAME: Final = "contentd.services.fsck.v1.Fsck"
#: ``jobs`` when the request leaves it 0, and the most it may ask for
DEFAULT_JOBS: Final = 2
MAX_JOBS: Final = 64


def report_to_pb(report: FsckReport) -> pb.CheckResponse:
    response = pb.CheckResponse(
        clean=report.clean,
        repair=report.repair,
        blobs=report.blobs,
        bytes=report.bytes,
        records=report.records,
        ingests=report.ingests,
    )
    for f in report.findings:
        response.findings.add(
            kind=f.kind,
            detail=f.detail,
            digest=f.digest,
            namespace=f.namespace,
            ref=f.ref,
            path=f.path,
            repair=f.repair,
            fixed=f.fixed,
            problem=f.problem,
        )
    response.duration.FromNanoseconds(int(report.duration * 1e9))
    return response


class FsckService(pb_grpc.FsckServicer):
    SERVICE_NAME = SERVICE_NAME

    def __init__(self, db: MetadataDB, scrubber: Scrubber | None = None) -> None:
        self.db = db
        self.scrubber = scrubber

    def register(self, server: grpc.Server) -> None:
        pb_grpc.add_FsckServicer_to_server(self, server)

    def close(self) -> None:
        if self.scrubber is not None:
            self.scrubber.stop()

    def Check(self, request: pb.CheckRequest, context: grpc.ServicerContext) -> pb.CheckResponse:
        try:
            if request.namespace:
                validate_namespace(request.namespace)
            if request.jobs < 0 or request.jobs > MAX_JOBS:
                raise InvalidArgument(f"jobs must be between 0 and {MAX_JOBS}")
            if request.bytes_per_second < 0:
                raise InvalidArgument("bytes_per_second must not be negative")
            report = self.db.fsck(
                FsckOptions(
                    repair=request.repair,
                    namespace=request.namespace or None,
                    jobs=request.jobs or DEFAULT_JOBS,
                    bytes_per_second=request.bytes_per_second,
                )
            )
        except Exception as err:
            _fail(context, err, "Check")
        for f in report.findings:
            if f.problem and not f.fixed:
                log.warning(
                    "fsck: %s %s: %s",
                    f.kind,
                    f.digest or f.ref or f.path,
                    f.detail,
                    extra={"fields": {"namespace": f.namespace, "repair": f.repair}},
                )
        return report_to_pb(report)

    def Status(self, request: pb.StatusRequest, context: grpc.ServicerContext) -> pb.StatusResponse:
        try:
            response = pb.StatusResponse()
            if self.scrubber is not None:
                status = self.scrubber.status()
                response.scrub_enabled = status.enabled
                response.interval.FromNanoseconds(int(status.interval * 1e9))
                response.bytes_per_second = status.bytes_per_second
                response.blobs = status.blobs
                response.verified = status.verified
                if status.oldest_verified_ns is not None:
                    fill_timestamp(response.oldest_verified, from_ns(status.oldest_verified_ns))
                response.scrubbed_blobs = status.scrubbed_blobs
                response.scrubbed_bytes = status.scrubbed_bytes
                response.corrupt_found = status.corrupt_found
            for q in self.db.quarantined():
                item = response.quarantined.add(digest=q.digest, reason=q.reason)
                fill_timestamp(item.quarantined_at, from_ns(q.at_ns))
        except Exception as err:
            _fail(context, err, "Status")
        return response


def _fail(context: grpc.ServicerContext, err: Exception, method: str) -> NoReturn:
    fail(context, err, f"Fsck/{method}", log)
