"""What :class:`~server.storage.index.Index` needs of a database: connections that run its
SQL, transactions, and the few answers whose SQL differs between engines.

The index's SQL is written once, in SQLite's dialect (``?`` placeholders, ``GLOB``,
``INSERT OR REPLACE``); :mod:`server.storage.sqlite` runs it as is and
:mod:`server.storage.postgresql` translates each statement once (then caches it).  One
dialect in the code, rather than a query builder, keeps every query readable where it is
used, and the differences few and in one place.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol


class WriteConflict(Exception):
    """A ``late_lock`` transaction's write clashed with another writer's: run it again with
    the lock taken first."""


class Cursor(Protocol):
    """The part of a DB-API cursor the index reads (``sqlite3.Cursor`` is one)."""

    @property
    def rowcount(self) -> int: ...

    @property
    def lastrowid(self) -> int | None: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def __iter__(self) -> Iterator[Any]: ...


class Connection(Protocol):
    """A connection inside :meth:`Database.reading` or :meth:`Database.transaction`."""

    def execute(self, sql: str, parameters: Sequence[Any] = (), /) -> Cursor: ...

    def executemany(self, sql: str, parameters: Iterable[Sequence[Any]], /) -> Cursor: ...


class Database(Protocol):
    """One engine behind the index."""

    #: ``/system``'s ``DatabaseBackendPlugin``: None for the embedded SQLite, as in Orthanc.
    backend_plugin: str | None

    #: Whether ``DicomIdentifiers`` was just added to an index written before it existed.
    needs_identifiers: bool

    #: Whether writers in other processes (a cluster's nodes) share the database: only then
    #: does a ``late_lock`` transaction let one of them write while another prepares.
    several_writers: bool

    def transaction(self, late_lock: bool = False, synced: bool = True) -> AbstractContextManager[Connection]:
        """A write transaction; writers are serialised (one at a time, as in SQLite).

        ``synced=False``: its commit need not be on the disk when it returns, only safe from a
        crash of the process (the jobs' snapshots); SQLite's commits otherwise follow
        ``SyncStorageArea``, PostgreSQL's its own ``synchronous_commit``.

        ``late_lock``: where writers are several processes (PostgreSQL's nodes), the
        writers' lock is taken only by :meth:`lock_writers`, so that a transaction can read
        and prepare its writes while another one writes.  Its reads before the lock may be
        outdated by then; every write must come after it, and a write that the outdated
        reads made wrong (a resource created or deleted meanwhile) raises
        :class:`WriteConflict`, after the transaction is rolled back.  Nested in another
        transaction, it is that one."""

    def lock_writers(self, db: Connection) -> None:
        """Take the writers' lock in a ``late_lock`` transaction (a no-op where the
        transaction holds it from its start)."""

    def reading(self) -> AbstractContextManager[Connection]:
        """Reads that see one state of the index; nested calls in a thread share it."""

    def read_one(self, sql: str, parameters: Sequence[Any] = (), /) -> Any:
        """The first row of one query (or None): a :meth:`reading` of one statement, which
        needs no transaction of its own (in a thread's :meth:`reading` or
        :meth:`transaction`, it runs there)."""

    def last_change_seq(self, db: Connection) -> int:
        """The sequence number of the last change ever logged (deleted or not)."""

    def reserve_resource_ids(self, db: Connection, count: int) -> Iterator[int]:
        """Up to ``count`` internal ids for resources the transaction ``db`` is about to
        create, read when first needed: where an insert's generated id costs a round trip
        (PostgreSQL), they come with the next statement's answer.  Empty where it costs
        nothing (SQLite's ``lastrowid``)."""

    def close(self) -> None: ...
