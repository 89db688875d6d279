"""Fixtures for the metadata layer: a local backend, a fake clock, databases.

Every test that makes a database runs twice: on SQLite and on PostgreSQL
(``engine``; a database per test in the session's private cluster). Tests of
the SQLite engine itself are marked ``sqlite_only``.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from contentd import Descriptor, LocalStore, write_blob
from contentd.content.store import Ingester
from contentd.content.types import utcnow
from contentd.metadata import MetadataDB


class FakeClock:
    """A settable UTC clock for expiry tests; starts at the real now."""

    def __init__(self) -> None:
        self.now = utcnow()

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


def new_backend(root: Path) -> LocalStore:
    return LocalStore(root)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


MakeDB = Callable[..., MetadataDB]


ENGINES = ("sqlite", "postgres")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items[:] = [
        item
        for item in items
        if not (
            item.get_closest_marker("sqlite_only")
            and getattr(item, "callspec", None) is not None
            and item.callspec.params.get("engine") == "postgres"  # type: ignore[attr-defined]
        )
    ]


@pytest.fixture(params=ENGINES)
def engine(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def make_db(tmp_path: Path, engine: str, request: pytest.FixtureRequest) -> Iterator[MakeDB]:
    """``make_db(policy="shared", clock=None, name="meta.db", **kw)``; closed at teardown.

    On PostgreSQL ``name`` picks the database: the same name, the same database.
    """
    opened: list[MetadataDB] = []
    dsns: dict[str, str] = {}

    def make(policy: str = "shared", name: str = "meta.db", **kw: object) -> MetadataDB:
        backend = kw.pop("backend", None) or new_backend(tmp_path / "content")
        if engine == "postgres":
            if name not in dsns:
                dsns[name] = request.getfixturevalue("postgres_peer").create_database()
            kw["dsn"] = dsns[name]
        db = MetadataDB(tmp_path / name, backend, content_sharing_policy=policy, **kw)  # type: ignore[arg-type]
        opened.append(db)
        return db

    yield make
    for db in opened:
        db.close()


@pytest.fixture
def db(make_db: MakeDB) -> MetadataDB:
    return make_db()


@pytest.fixture
def clocked_db(make_db: MakeDB, clock: FakeClock) -> MetadataDB:
    return make_db(clock=clock)


def put(
    store: Ingester,
    data: bytes,
    ref: str | None = None,
    labels: dict[str, str] | None = None,
) -> str:
    """Write and commit ``data``; returns its digest."""
    from contentd.content.digest import digest_of

    dgst = digest_of(data)
    write_blob(
        store,
        ref or f"ref-{dgst[7:19]}",
        io.BytesIO(data),
        Descriptor(digest=dgst, size=len(data)),
        labels,
    )
    return dgst
