"""The total sizes of the attachments, kept by triggers (``GlobalIntegers``) rather than
summed over the whole table at each ingest and each ``/statistics``: they must always
equal the sums, on SQLite and on PostgreSQL, whatever adds, replaces or deletes files."""

from __future__ import annotations

import io
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from conftest import postgres_cluster
from server.dicom.main_tags import Level
from server.events import EventBus
from server.storage.area import StorageArea
from server.storage.index import Attachment, Index
from server.store import Limits, Origin, Store


def instance(patient: str, size: int) -> bytes:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID = generate_uid()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.PatientID, ds.StudyInstanceUID, ds.SeriesInstanceUID = patient, generate_uid(), generate_uid()
    ds.ImageComments = "x" * size
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def summed(index: Index) -> tuple[int, int]:
    with index.reading() as db:
        row = db.execute("SELECT COALESCE(SUM(compressedSize), 0), COALESCE(SUM(uncompressedSize), 0) "
                         "FROM AttachedFiles").fetchone()
    return int(row[0]), int(row[1])


@pytest.fixture(params=["sqlite", "postgresql"])
def index(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Index]:
    if request.param == "sqlite":
        opened = Index(tmp_path / "index.sqlite")
    else:
        from server.storage.postgresql import PostgresDatabase, Settings

        cluster = postgres_cluster()
        opened = Index(PostgresDatabase(Settings.from_config(cluster.section())))
    yield opened
    opened.close()


def test_totals_follow_every_change(index: Index, tmp_path: Path) -> None:
    store = Store(index, StorageArea(tmp_path / "storage", compress=True), EventBus(),
                  Limits(max_storage_bytes=10 ** 9))
    assert index.totals() == (0, 0)
    results = [store.ingest(instance(f"P{n % 3}", 1000 * n), Origin()) for n in range(9)]
    assert index.totals() == summed(index) and index.totals()[1] > 9000
    one = index.lookup(results[0].ids[Level.INSTANCE])
    assert one is not None
    # a user's attachment added, then replaced by a larger one, then deleted
    index.replace_attachment(one.internal_id, Attachment(1025, "a" * 36, 10, 20, 1, "m", "m"), None)
    index.replace_attachment(one.internal_id, Attachment(1025, "b" * 36, 100, 200, 1, "n", "n"), None)
    assert index.totals() == summed(index)
    index.delete_attachment(one.internal_id, 1025, None)
    assert index.totals() == summed(index)
    # a patient deleted: its attachments go by cascade
    patient = index.lookup(results[1].ids[Level.PATIENT])
    assert patient is not None
    store.delete(patient)
    assert index.totals() == summed(index) != (0, 0)
    for result in results:
        remaining = index.lookup(result.ids[Level.PATIENT])
        if remaining is not None:
            store.delete(remaining)
    assert index.totals() == summed(index) == (0, 0)


def test_an_index_written_before_the_totals_gets_them(tmp_path: Path) -> None:
    path = tmp_path / "index.sqlite"
    index = Index(path)
    store = Store(index, StorageArea(tmp_path / "storage"), EventBus(), Limits())
    for n in range(3):
        store.ingest(instance("P", 500 * n), Origin())
    expected = summed(index)
    index.close()
    with closing(sqlite3.connect(path)) as db, db:  # as an index of the version before the totals
        db.executescript("DROP TRIGGER AttachedFileAdded; DROP TRIGGER AttachedFileRemoved; "
                         "DROP TRIGGER AttachedFileResized; DROP TABLE GlobalIntegers;")
    reopened = Index(path)
    assert reopened.totals() == expected != (0, 0)
    reopened.close()
