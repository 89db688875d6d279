"""What the metadata layer needs of a SQL database, whichever engine holds it.

The content store, leases, namespaces and GC are written once, in the SQL
both SQLite (>= 3.24) and PostgreSQL understand: ``?`` placeholders, ``INSERT
... ON CONFLICT ... DO NOTHING/UPDATE``, integer nanosecond timestamps, byte
order for text (``COLLATE "C"`` on PostgreSQL). A :class:`Database` hands out
transactions as :class:`Conn` objects; sqlite3's connection is one as it is,
PostgreSQL's is adapted by :mod:`contentd.metadata.postgres`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol

__all__ = ["Conn", "Cursor", "Database"]


class Cursor(Protocol):
    """The result of one statement: rows (tuples) and, for DML, ``rowcount``."""

    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def __iter__(self) -> Iterator[Any]: ...


class Conn(Protocol):
    """A connection inside one transaction."""

    def execute(self, sql: str, parameters: Sequence[Any] = ..., /) -> Cursor: ...

    def executemany(self, sql: str, parameters: Iterable[Sequence[Any]], /) -> Cursor: ...


class Database(Protocol):
    """Transactions over one metadata database (see :class:`contentd.metadata.db.SQLiteDB`).

    ``read()`` is a consistent snapshot; ``write()`` is serialised against every
    other writer of the database (of any process or node) and commits on
    success. Nesting on one thread joins the outer transaction.
    """

    def read(self) -> AbstractContextManager[Conn]: ...

    def write(self, *, durable: bool = True) -> AbstractContextManager[Conn]: ...

    def query(self, sql: str, parameters: Sequence[Any] = (), /) -> list[Any]:
        """The rows of one read-only statement, which is its own snapshot (inside a
        transaction of this thread: in that one). Cheaper than a :meth:`read`
        transaction where the engine is across a network: one round trip."""
        ...

    def sync(self) -> None: ...

    def generation(self) -> object | None:
        """A value equal on two reads of one thread only if no transaction was committed
        in between (by anyone); None when the database cannot tell cheaply, or inside a
        transaction of this thread. Lets a thread remember what it read."""
        ...

    def generation_is_local(self) -> bool:
        """Whether :meth:`generation` answers now without asking a server."""
        ...

    def close(self) -> None: ...

    @property
    def closed(self) -> bool: ...
