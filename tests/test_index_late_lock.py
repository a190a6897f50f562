"""Two nodes on one PostgreSQL index, in process: an ingest batch looks up and prepares its
rows before it takes the writers' lock, and another node's write in between (the same new
series, a deleted patient) makes it run again, lock first, with the right outcome."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from pg_cluster import PostgresCluster
from test_store_batch import instance

from server.dicom.main_tags import Level
from server.events import EventBus
from server.metrics import Metrics
from server.storage.area import StorageArea
from server.storage.database import Connection
from server.storage.index import Change, Index
from server.storage.postgresql import WRITER_KEY, PostgresDatabase, Settings
from server.store import LATE_LOCK_BATCHES, LATE_LOCK_CONFLICTS, Limits, Origin, Store


@pytest.fixture
def nodes(postgres_server: PostgresCluster, tmp_path: Path) -> Iterator[tuple[Store, Store]]:
    """Two stores on one fresh database and one storage folder, as two nodes."""
    section = postgres_server.section(Lock=False)
    made = [Store(Index(PostgresDatabase(Settings.from_config(section))), StorageArea(tmp_path / "storage"),
                  EventBus(), Limits(), Metrics(enabled=True)) for _ in range(2)]
    yield made[0], made[1]
    for store in made:
        store.index.close()


def counters(store: Store) -> tuple[int | float, int | float]:
    """The store's ingest batches that took the lock late, and those that ran again."""
    values = store.metrics.snapshot()
    return values[LATE_LOCK_BATCHES][0], values[LATE_LOCK_CONFLICTS][0]


def before_the_lock(store: Store, meanwhile: Callable[[], None]) -> None:
    """Run ``meanwhile`` when ``store``'s next late-lock batch is about to take the lock."""
    take = store.index.lock_writers

    def lock_writers(db: Connection) -> None:
        store.index.lock_writers = take  # type: ignore[method-assign]
        meanwhile()
        take(db)

    store.index.lock_writers = lock_writers  # type: ignore[method-assign]


def test_a_series_another_node_created_meanwhile_is_not_created_twice(nodes: tuple[Store, Store]) -> None:
    a, b = nodes
    sibling: list[str] = []
    before_the_lock(a, lambda: sibling.append(b.ingest(instance("7", 2), Origin()).status))
    result = a.ingest(instance("7", 1), Origin())
    assert sibling == ["Success"] and result.status == "Success"
    for level in (Level.PATIENT, Level.STUDY, Level.SERIES):
        assert a.index.counts()[0][level] == 1
    assert a.index.counts()[0][Level.INSTANCE] == 2
    changes, _, _ = a.index.changes(0, 100)
    assert [c.change for c in changes].count(Change.NewSeries) == 1
    assert counters(a) == (1, 1) and counters(b) == (1, 0)  # counted on the node that ran again


def test_a_patient_another_node_deleted_meanwhile_is_created_again(nodes: tuple[Store, Store]) -> None:
    a, b = nodes
    first = b.ingest(instance("8", 1), Origin())
    patient = b.index.lookup(first.ids[Level.PATIENT])
    assert patient is not None
    before_the_lock(a, lambda: b.delete(patient))
    result = a.ingest(instance("8", 2), Origin())
    assert result.status == "Success" and result.ids[Level.PATIENT] == first.ids[Level.PATIENT]
    assert [a.index.counts()[0][level] for level in Level] == [1, 1, 1, 1]
    assert b.index.lookup(first.ids[Level.INSTANCE]) is None


def test_an_instance_another_node_stored_meanwhile_is_already_stored(nodes: tuple[Store, Store]) -> None:
    a, b = nodes
    b.ingest(instance("9", 1), Origin())
    data, other = instance("9", 2), []
    before_the_lock(a, lambda: other.append(b.ingest(data, Origin()).status))
    assert a.ingest(data, Origin()).status == "AlreadyStored"
    assert other == ["Success"] and a.index.counts()[0][Level.INSTANCE] == 2


def test_conflicts_leave_the_connections_usable(nodes: tuple[Store, Store]) -> None:
    """After an error in a pipeline, psycopg could take for prepared a statement that is
    not: many conflicts in a row, then ingests as usual."""
    a, b = nodes
    for series in range(12):
        before_the_lock(a, lambda series=series: b.ingest(instance(f"10{series}", 2), Origin()))
        assert a.ingest(instance(f"10{series}", 1), Origin()).status == "Success"
    for number in range(3, 13):
        assert a.ingest(instance("100", number), Origin()).status == "Success"
        assert b.ingest(instance("101", number), Origin()).status == "Success"
    assert a.index.counts()[0][Level.INSTANCE] == 12 * 2 + 2 * 10
    assert counters(a) == (12 + 10, 12)


def test_a_write_nested_in_a_late_lock_transaction_takes_the_lock(postgres_server: PostgresCluster) -> None:
    section = postgres_server.section(Lock=False)
    database = PostgresDatabase(Settings.from_config(section))

    def lock_held() -> bool:
        with postgres_server.connect(section["Database"]) as other:
            row = other.execute("SELECT COUNT(*) FROM pg_locks WHERE locktype='advisory' AND objid=%s "
                                "AND granted", (WRITER_KEY,)).fetchone()
        return bool(row and row[0])

    try:
        with database.transaction(late_lock=True) as db:
            db.execute("SELECT 1").fetchone()
            assert not lock_held()
            with database.transaction() as nested:
                nested.execute("SELECT 1").fetchone()
                assert lock_held()
        assert not lock_held()
    finally:
        database.close()
