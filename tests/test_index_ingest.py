"""What one ingest asks of the index, in process: few statements (each is a round trip to
PostgreSQL, whose index runs the same SQL), and the recycling order they keep."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from pathlib import Path

import pydicom
import pytest
from pg_cluster import PostgresCluster
from test_store_batch import instance

from server.dicom.main_tags import Level
from server.events import EventBus
from server.storage.area import StorageArea
from server.storage.index import Change, Index, SqliteDatabase
from server.storage.postgresql import PostgresDatabase, Settings
from server.store import Limits, Origin, Store


def store(root: Path, limits: Limits | None = None, index: Index | None = None) -> Store:
    return Store(index or Index(root / "index.sqlite"), StorageArea(root / "storage"), EventBus(),
                 limits or Limits())


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[Limits], Store]]:
    """Stores on each index engine (PostgreSQL's reserves the ids of a batch's instances)."""
    opened: list[Index] = []

    def make(limits: Limits) -> Store:
        if request.param == "sqlite":
            index = Index(tmp_path / "index.sqlite")
        else:
            cluster: PostgresCluster = request.getfixturevalue("postgres_server")
            index = Index(PostgresDatabase(Settings.from_config(cluster.section())))
        opened.append(index)
        return store(tmp_path, limits, index)
    yield make
    for index in opened:
        index.close()


def second_instance_statements(target: Store) -> list[str]:
    """The SQL statements SQLite runs for the second instance of a series (the first stored)."""
    target.ingest(instance("1", 1), Origin())
    database = target.index.database
    assert isinstance(database, SqliteDatabase)
    statements: list[str] = []
    database._db.set_trace_callback(statements.append)
    assert target.ingest(instance("1", 2), Origin()).status == "Success"
    database._db.set_trace_callback(None)
    return statements


def test_an_instance_of_a_known_series_costs_a_dozen_statements(tmp_path: Path) -> None:
    statements = second_instance_statements(store(tmp_path))
    # A trigger's statements are traced as its statement's text again: they run inside the
    # database (on PostgreSQL too), not one round trip each.
    sent = [s for n, s in enumerate(statements) if n == 0 or s != statements[n - 1]]
    # BEGIN, the lookup (levels and the series' expected count), resource, tags,
    # identifiers, change, unstable, file, metadata, recycling order (two), COMMIT
    assert len(sent) <= 13, sent  # 29 before they were counted


def test_sqlite_looks_a_batch_up_once_whatever_it_reads_while_writing(tmp_path: Path) -> None:
    """Its one writer is this process: no lookup again under a lock taken late (with the
    recycling limits, a PostgreSQL batch takes the lock, then looks up again)."""
    statements = second_instance_statements(store(tmp_path, Limits(max_patients=5)))
    assert sum("r.publicId, r.internalId" in s for s in statements) == 1


def test_the_newest_instance_makes_its_patient_the_last_recycled(tmp_path: Path) -> None:
    target = store(tmp_path, Limits(max_patients=2))
    ids = [target.ingest(instance(p, n), Origin()).ids for p, n in (("1", 1), ("2", 1), ("1", 2))]
    patient_a, patient_b = ids[0][Level.PATIENT], ids[1][Level.PATIENT]
    assert ids[2][Level.PATIENT] == patient_a
    target.ingest(instance("3", 1), Origin())  # B is the oldest now
    assert target.index.lookup(patient_b) is None and target.index.lookup(patient_a) is not None
    target.ingest(instance("3", 2), Origin())  # 3, already the last, stays so
    target.ingest(instance("4", 1), Origin())
    assert target.index.lookup(patient_a) is None
    assert target.index.counts()[0][Level.PATIENT] == 2


def series_instance(number: int, expected: int) -> bytes:
    """An instance of one series that announces ``expected`` instances (ImagesInAcquisition)."""
    ds = pydicom.dcmread(io.BytesIO(instance("5", number)))
    ds.ImagesInAcquisition, ds.NumberOfTemporalPositions = expected, 1
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def test_a_series_is_completed_once_its_expected_instances_are_in(engine: Callable[[Limits], Store]) -> None:
    target = engine(Limits())

    def completed() -> int:
        changes, _, _ = target.index.changes(0, 100)
        return sum(1 for change in changes if change.change == Change.CompletedSeries)

    def status() -> str:
        with target.index.reading() as db:
            return target.index.series_status(db, series.internal_id)

    counts = []
    for number in (1, 2, 3):
        ids = target.ingest(series_instance(number, 3), Origin()).ids
        counts.append(completed())
    assert counts == [0, 0, 1]
    series = target.index.lookup(ids[Level.SERIES])
    assert series is not None and status() == "Complete"
    target.ingest(series_instance(3, 3), Origin())  # a fourth instance, numbered 3 again
    assert completed() == 1 and status() == "Inconsistent"


def test_a_series_of_one_expected_instance_is_completed_by_it(engine: Callable[[Limits], Store]) -> None:
    """The series is new: its ExpectedNumberOfInstances comes from the instance, not the index
    (on PostgreSQL, the instance's row waits among the batch's writes when it is counted)."""
    target = engine(Limits())
    target.ingest(series_instance(1, 1), Origin())
    changes, _, _ = target.index.changes(0, 100)
    assert [change.change for change in changes].count(Change.CompletedSeries) == 1


def _files(folder: Path, contents: list[bytes]) -> list[Path]:
    folder.mkdir()
    paths = [folder / f"{number}.dcm" for number in range(len(contents))]
    for path, data in zip(paths, contents, strict=True):
        path.write_bytes(data)
    return paths


def test_a_batch_sees_what_its_earlier_instances_did(tmp_path: Path, engine: Callable[[Limits], Store]) -> None:
    """One transaction, one lookup for all: a series created by the batch's first instance
    is known to the next ones (its expected count too), a copy later in the batch is
    AlreadyStored."""
    target = engine(Limits())
    contents = [series_instance(n, 3) for n in (1, 2, 3)]
    files = _files(tmp_path / "in", [*contents, contents[1]])
    results = target.ingest_files(files, Origin())
    assert [r.status for r in results] == ["Success", "Success", "Success", "AlreadyStored"]
    assert target.index.counts()[0][Level.SERIES] == 1 and target.index.counts()[0][Level.INSTANCE] == 3
    changes, _, _ = target.index.changes(0, 100)
    assert [change.change for change in changes].count(Change.CompletedSeries) == 1


def test_a_batch_forgets_what_it_recycled(tmp_path: Path, engine: Callable[[Limits], Store]) -> None:
    """A patient recycled by a later instance of the batch is created again by the next."""
    target = engine(Limits(max_patients=1))
    files = _files(tmp_path / "in", [instance("1", 1), instance("2", 1), instance("1", 2)])
    results = target.ingest_files(files, Origin())
    assert [r.status for r in results] == ["Success"] * 3
    assert target.index.list_ids(Level.INSTANCE) == [results[2].ids[Level.INSTANCE]]
    patient = target.index.lookup(results[2].ids[Level.PATIENT])
    assert patient is not None and target.index.counts()[0][Level.PATIENT] == 1
    assert [r.public_id for r in target.index.descendants(patient.internal_id, Level.INSTANCE)] == [
        results[2].ids[Level.INSTANCE]]


def test_a_batch_overwrites_its_own_instance(tmp_path: Path, engine: Callable[[Limits], Store]) -> None:
    target = engine(Limits(overwrite=True))
    first, second = instance("1", 1), instance("1", 2)
    files = _files(tmp_path / "in", [first, second, first])
    results = target.ingest_files(files, Origin())
    assert [r.status for r in results] == ["Success"] * 3
    assert sorted(target.index.list_ids(Level.INSTANCE)) == sorted(
        {results[0].ids[Level.INSTANCE], results[1].ids[Level.INSTANCE]})


def test_a_batch_lists_its_instances_in_their_order(tmp_path: Path, engine: Callable[[Limits], Store]) -> None:
    """Reserved ids (PostgreSQL) keep the instances in the order they were stored, across
    batches and with new series in the middle of one."""
    target = engine(Limits())
    first = target.ingest_files(_files(tmp_path / "a", [instance("1", 1), instance("2", 1)]), Origin())
    second = target.ingest_files(_files(tmp_path / "b", [instance("2", 2), instance("3", 1)]), Origin())
    assert target.index.list_ids(Level.INSTANCE) == [r.ids[Level.INSTANCE] for r in first + second]
    assert target.index.list_ids(Level.INSTANCE, since=3, limit=10) == [second[1].ids[Level.INSTANCE]]


def test_a_batch_leaves_the_patient_it_touched_last_the_most_recent(
        tmp_path: Path, engine: Callable[[Limits], Store]) -> None:
    target = engine(Limits())
    target.ingest(instance("0", 1), Origin())
    files = _files(tmp_path / "in", [instance("1", 1), instance("2", 1), instance("0", 2), instance("1", 2)])
    results = target.ingest_files(files, Origin())
    with target.index.reading() as db:
        order = [row[0] for row in db.execute(
            "SELECT r.publicId FROM PatientRecyclingOrder o JOIN Resources r "
            "ON r.internalId=o.patientId ORDER BY o.seq")]
    assert order == [results[n].ids[Level.PATIENT] for n in (1, 2, 3)]
