"""Conformance factories for the metadata layer over a local store, in both policies.

Registered as ``metadata-shared`` and ``metadata-isolated`` (SQLite), and
``metadata-postgres-shared`` and ``metadata-postgres-isolated`` (a database of
the session's private PostgreSQL cluster). The store under test is the
namespace ``testing`` of a MetadataDB; labels live in the database, missing
digests/refs are NotFound, and truncate is delegated to the local writer (so
only ``truncate(0)`` works).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from contentd import LocalStore, Store
from contentd.metadata import MetadataDB
from tests.conformance.harness import Harness, register

NAMESPACE = "testing"


def _metadata(
    tmp_path: Path, request: pytest.FixtureRequest, policy: str, *, postgres: bool = False
) -> Harness:
    root = tmp_path / "content"
    path = tmp_path / "meta.db"
    dsn = request.getfixturevalue("postgres_peer").create_database() if postgres else None
    db = MetadataDB(path, LocalStore(root), content_sharing_policy=policy, dsn=dsn)
    request.addfinalizer(db.close)

    def reopen() -> Store:
        other = MetadataDB(path, LocalStore(root), content_sharing_policy=policy, dsn=dsn)
        request.addfinalizer(other.close)
        return other.content_store(NAMESPACE)

    return Harness(
        store=db.content_store(NAMESPACE),
        labels=True,
        missing_ok=False,
        truncate_zero_only=True,
        reopen=reopen,
        root=None,  # backend refs are "<ns>/1/<ref>": the local layout checks do not apply
        extra={"db": db, "namespace": NAMESPACE, "policy": policy, "postgres": postgres},
    )


@register("metadata-shared")
def _metadata_shared(tmp_path: Path, request: pytest.FixtureRequest) -> Harness:
    return _metadata(tmp_path, request, "shared")


@register("metadata-isolated")
def _metadata_isolated(tmp_path: Path, request: pytest.FixtureRequest) -> Harness:
    return _metadata(tmp_path, request, "isolated")


@register("metadata-postgres-shared")
def _metadata_postgres_shared(tmp_path: Path, request: pytest.FixtureRequest) -> Harness:
    return _metadata(tmp_path, request, "shared", postgres=True)


@register("metadata-postgres-isolated")
def _metadata_postgres_isolated(tmp_path: Path, request: pytest.FixtureRequest) -> Harness:
    return _metadata(tmp_path, request, "isolated", postgres=True)
