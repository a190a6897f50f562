"""The index's normalized identifiers (Orthanc's ``DicomIdentifiers``): a find that ignores
case on an identifier is an indexed lookup, also in an index written before the table."""

from __future__ import annotations

from pathlib import Path

from server.dicom.main_tags import Level
from server.storage.index import Index

SOP_UID = (0x0008, 0x0018)
PATIENT_NAME = (0x0010, 0x0010)


def _store(index: Index, number: int, name: str) -> None:
    ids = {Level.PATIENT: f"p{number}", Level.STUDY: f"st{number}", Level.SERIES: f"se{number}",
           Level.INSTANCE: f"i{number}"}
    tags = {Level.PATIENT: {PATIENT_NAME: name, (0x0010, 0x0020): f"ID{number}"},
            Level.STUDY: {(0x0020, 0x000D): f"1.2.{number}"},
            Level.SERIES: {(0x0020, 0x000E): f"1.2.{number}.1"},
            Level.INSTANCE: {SOP_UID: f"1.2.{number}.1.1"}}
    with index.transaction() as db:
        index.insert_hierarchy(db, ids, tags, "20261206T000000")


def _instances(index: Index, value: str) -> list[int]:
    return list(index.candidates(Level.INSTANCE, {}, {SOP_UID: ("{v}=?", [value])}))


def test_folded_lookup_ignores_case_accents_included(tmp_path: Path) -> None:
    index = Index(tmp_path / "index.sqlite")
    for number, name in enumerate(["Émile^Zola", "emile^zola", "SMITH"]):
        _store(index, number, name)
    assert len(_instances(index, "1.2.1.1.1")) == 1
    assert _instances(index, "1.2.9.1.1") == []
    studies = index.candidates(Level.STUDY, {}, {PATIENT_NAME: ("{v}=?", ["ÉMILE^ZOLA"])})
    assert len(list(studies)) == 1       # é folds to É, e does not
    assert len(list(index.candidates(Level.STUDY, {}, {PATIENT_NAME: ("{v} IN (?, ?)", ["EMILE^ZOLA", "SMITH"])}))) == 2


def test_wildcards_with_a_literal_start_use_the_index(tmp_path: Path) -> None:
    index = Index(tmp_path / "index.sqlite")
    _store(index, 1, "Doe^John")
    with index.reading() as db:
        plan = " ".join(str(row) for row in db.execute(
            "EXPLAIN QUERY PLAN SELECT id FROM DicomIdentifiers WHERE tagGroup=16 AND tagElement=16 "
            "AND value GLOB ?", ["DOE*"]))
    assert "INDEX DicomIdentifiersValues" in plan and "value>" in plan, plan
    assert len(list(index.candidates(Level.STUDY, {}, {PATIENT_NAME: ("{v} GLOB ?", ["DOE*"])}))) == 1


def test_index_written_before_the_table_gets_it_filled(tmp_path: Path) -> None:
    index = Index(tmp_path / "index.sqlite")
    _store(index, 1, "Doe^John")
    with index.transaction() as db:
        db.execute("DROP TABLE DicomIdentifiers")
    index.close()
    reopened = Index(tmp_path / "index.sqlite")
    assert len(_instances(reopened, "1.2.1.1.1")) == 1
    assert len(list(reopened.candidates(Level.STUDY, {}, {PATIENT_NAME: ("{v}=?", ["DOE^JOHN"])}))) == 1


def test_deleting_a_resource_forgets_its_identifiers(tmp_path: Path) -> None:
    index = Index(tmp_path / "index.sqlite")
    _store(index, 1, "Doe^John")
    patient = index.lookup("p1")
    assert patient is not None
    with index.transaction() as db:
        index.delete(db, patient)
        assert db.execute("SELECT COUNT(*) FROM DicomIdentifiers").fetchone()[0] == 0
