"""Conformance factories for the metadata layer over a local store, in both policies.

Registered as ``metadata-shared`` and ``metadata-isolated``. The store under
test is the namespace ``testing`` of a MetadataDB on SQLite; labels live in
the database, missing digests/refs are NotFound, and truncate is delegated
to the local writer (so only ``truncate(0)`` works).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from contentd import LocalStore, Store
from contentd.metadata import MetadataDB
from tests.conformance.harness import Harness, register

NAMESPACE = "testing"


def _metadata(tmp_path: Path, request: pytest.FixtureRequest, policy: str) -> Harness:
    root = tmp_path / "content"
    path = tmp_path / "meta.db"
    db = MetadataDB(path, LocalStore(root), content_sharing_policy=policy)
    request.addfinalizer(db.close)

    def reopen() -> Store:
        other = MetadataDB(path, LocalStore(root), content_sharing_policy=policy)
        request.addfinalizer(other.close)
        return other.content_store(NAMESPACE)

    return Harness(
        store=db.content_store(NAMESPACE),
        labels=True,
        missing_ok=False,
        truncate_zero_only=True,
        reopen=reopen,
        root=None,  # backend refs are "<ns>/1/<ref>": the local layout checks do not apply
        extra={"db": db, "namespace": NAMESPACE, "policy": policy},
    )


@register("metadata-shared")
def _metadata_shared(tmp_path: Path, request: pytest.FixtureRequest) -> Harness:
    return _metadata(tmp_path, request, "shared")


@register("metadata-isolated")
def _metadata_isolated(tmp_path: Path, request: pytest.FixtureRequest) -> Harness:
    return _metadata(tmp_path, request, "isolated")
