"""What one ingest asks of the index, in process: few statements (each is a round trip to
PostgreSQL, whose index runs the same SQL), and the recycling order they keep."""

from __future__ import annotations

import io
from pathlib import Path

import pydicom
from test_store_batch import instance

from server.dicom.main_tags import Level
from server.events import EventBus
from server.storage.area import StorageArea
from server.storage.index import Change, Index, SqliteDatabase
from server.store import Limits, Origin, Store


def store(root: Path, limits: Limits | None = None) -> Store:
    return Store(Index(root / "index.sqlite"), StorageArea(root / "storage"), EventBus(), limits or Limits())


def test_an_instance_of_a_known_series_costs_a_dozen_statements(tmp_path: Path) -> None:
    target = store(tmp_path)
    target.ingest(instance("1", 1), Origin())
    database = target.index.database
    assert isinstance(database, SqliteDatabase)
    statements: list[str] = []
    database._db.set_trace_callback(statements.append)
    assert target.ingest(instance("1", 2), Origin()).status == "Success"
    database._db.set_trace_callback(None)
    # A trigger's statements are traced as its statement's text again: they run inside the
    # database (on PostgreSQL too), not one round trip each.
    sent = [s for n, s in enumerate(statements) if n == 0 or s != statements[n - 1]]
    # lookup, BEGIN, the four levels, resource, tags, identifiers, change, unstable, file,
    # metadata, recycling order, series status, COMMIT
    assert len(sent) <= 13, sent  # 29 before they were counted


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
    assert target.index.count(Level.PATIENT) == 2


def series_instance(number: int, expected: int) -> bytes:
    """An instance of one series that announces ``expected`` instances (ImagesInAcquisition)."""
    ds = pydicom.dcmread(io.BytesIO(instance("5", number)))
    ds.ImagesInAcquisition, ds.NumberOfTemporalPositions = expected, 1
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def test_a_series_is_completed_once_its_expected_instances_are_in(tmp_path: Path) -> None:
    target = store(tmp_path)

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


def test_a_series_of_one_expected_instance_is_completed_by_it(tmp_path: Path) -> None:
    """The series is new: its ExpectedNumberOfInstances comes from the instance, not the index."""
    target = store(tmp_path)
    target.ingest(series_instance(1, 1), Origin())
    changes, _, _ = target.index.changes(0, 100)
    assert [change.change for change in changes].count(Change.CompletedSeries) == 1
