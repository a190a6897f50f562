"""The ZIP layout of archives at each Orthanc API level (``server.ORTHANC_API_VERSION``).

The plan of an archive depends only on the index, so these tests build it from a
small in-memory index and set the API level the way the server reads it; the
layout at the current level is compared with the real Orthanc in test_archive.py.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest

import server
from server.dicom.main_tags import Level
from server.jobs.archive import ZipPaths, build_plan, normalize_path
from server.storage.index import ATTACHMENT_DICOM, Attachment, Metadata, Resource

PATIENT_ID, PATIENT_NAME = (0x0010, 0x0020), (0x0010, 0x0010)
ACCESSION, STUDY_DESCRIPTION = (0x0008, 0x0050), (0x0008, 0x1030)
MODALITY, SERIES_DESCRIPTION, SERIES_NUMBER = (0x0008, 0x0060), (0x0008, 0x103E), (0x0020, 0x0011)


class TreeIndex:
    """The few index reads of an archive plan, over a fixed tree of resources."""

    def __init__(self) -> None:
        self.resources: dict[int, Resource] = {}
        self.tags: dict[int, dict] = {}
        self.meta: dict[int, dict[int, str]] = {}
        self.tag_reads = 0

    def add(self, level: Level, public_id: str, parent: int | None, tags: dict | None = None,
            meta: dict[int, str] | None = None) -> int:
        internal = len(self.resources) + 1
        self.resources[internal] = Resource(internal, level, public_id, parent)
        self.tags[internal] = tags or {}
        self.meta[internal] = meta or {}
        return internal

    def lookup(self, public_id: str) -> Resource | None:
        return next((r for r in self.resources.values() if r.public_id == public_id), None)

    def parent(self, resource: Resource) -> Resource | None:
        return self.resources.get(resource.parent_internal_id or 0)

    def children(self, internal_id: int) -> list[Resource]:
        return [r for r in self.resources.values() if r.parent_internal_id == internal_id]

    def main_tags_many(self, internal_ids: list[int]) -> dict[int, dict]:
        self.tag_reads += 1
        return {internal_id: self.tags[internal_id] for internal_id in internal_ids}

    def metadata(self, internal_id: int) -> dict[int, str]:
        return self.meta[internal_id]

    def attachments(self, internal_id: int) -> dict[int, Attachment]:
        return {ATTACHMENT_DICOM: Attachment(ATTACHMENT_DICOM, "u", 10, 10, 1, "", "")}


def _knee() -> TreeIndex:
    """Patient 887 KNEE with one study of two series; two studies share the PatientID."""
    index = TreeIndex()
    patient = index.add(Level.PATIENT, "p", None, {PATIENT_ID: "887", PATIENT_NAME: "KNEE^R"})
    study = index.add(Level.STUDY, "s", patient, {ACCESSION: "A1", STUDY_DESCRIPTION: "IRM du genou, droit",
                                                 PATIENT_ID: "887", PATIENT_NAME: "OTHER^NAME"})
    t1 = index.add(Level.SERIES, "t1", study, {MODALITY: "mr", SERIES_DESCRIPTION: "T1W/aTSE",
                                               SERIES_NUMBER: "301"})
    for name, number in (("i3", "3"), ("i1", "1"), ("i2", "2")):
        index.add(Level.INSTANCE, name, t1, meta={Metadata.IndexInSeries: number})
    t2 = index.add(Level.SERIES, "t2", study, {SERIES_DESCRIPTION: "T2"})
    for name, number in (("j1", "7"), ("j2", "7"), ("j3", "")):
        index.add(Level.INSTANCE, name, t2, meta={Metadata.IndexInSeries: number} if number else {})
    return index


def _names(index: TreeIndex, resources: list[str], *, patient_from_study: bool = False,
           utf8: bool = False) -> list[str]:
    """The paths inside the ZIP, as the archive job writes them."""
    visitor = build_plan(SimpleNamespace(index=index), resources, False, patient_from_study)  # type: ignore[arg-type]
    paths = ZipPaths(utf8)
    names = []
    for command in visitor.commands:
        if command.kind == "open":
            paths.open_folder(command.name)
        elif command.kind == "close":
            paths.close_folder()
        else:
            names.append(paths.file(command.name))
    return names


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch):
    """Set the Orthanc API level for one test."""
    return lambda level: monkeypatch.setattr(server, "ORTHANC_API_VERSION", level)


def test_orthanc_1_10_layout(api) -> None:
    api(16)
    assert _names(_knee(), ["s"], patient_from_study=True) == [
        "887 KNEE R/A1 IRM du genou droit/mr T1WaTSE/MR000000.dcm",
        "887 KNEE R/A1 IRM du genou droit/mr T1WaTSE/MR000001.dcm",
        "887 KNEE R/A1 IRM du genou droit/mr T1WaTSE/MR000002.dcm",
        "887 KNEE R/A1 IRM du genou droit/T2/00000000.dcm",
        "887 KNEE R/A1 IRM du genou droit/T2/00000001.dcm",
        "887 KNEE R/A1 IRM du genou droit/T2/00000002.dcm",
    ]


def test_the_folder_tags_are_read_in_one_query() -> None:
    """A plan reads the main tags of all its patients, studies and series at once."""
    index = _knee()
    assert len(_names(index, ["p"])) == 6
    assert index.tag_reads == 1


def test_study_archive_names_the_patient_after_the_study_from_1_12_2(api) -> None:
    api(22)
    assert _names(_knee(), ["t1"], patient_from_study=True)[0].startswith("887 OTHER NAME/")
    assert _names(_knee(), ["p"])[0].startswith("887 KNEE R/")


def test_files_follow_index_in_series_from_1_12_6(api) -> None:
    """Unique IndexInSeries: numbered by it, in its order; duplicates: numbered from 0 in that
    order (absent counts as 0); a single instance keeps its own IndexInSeries."""
    api(27)
    names = [name.rsplit("/", 1)[1] for name in _names(_knee(), ["s"])]
    assert names == ["MR000001.dcm", "MR000002.dcm", "MR000003.dcm",
                     "00000000.dcm", "00000001.dcm", "00000002.dcm"]
    assert _names(_knee(), ["i2"])[0].endswith("/MR000002.dcm")


def test_normalized_and_utf8_names_from_1_12_11(api) -> None:
    api(30)
    index = _knee()
    index.tags[2][STUDY_DESCRIPTION] = "IRM cérébrale, neuro-crâne"
    assert _names(index, ["t1"])[0] == "887 KNEE^R/A1 IRM crbrale, neuro-crne/mr T1W aTSE/MR000001.dcm"
    assert _names(index, ["t1"], utf8=True)[0] == "887 KNEE^R/A1 IRM cérébrale, neuro-crâne/mr T1W aTSE/MR000001.dcm"


def test_dashed_folders_with_series_number_from_1_13(api) -> None:
    api(31)
    names = _names(_knee(), ["p"])
    assert names[0] == "887 - KNEE^R/A1 - IRM du genou, droit/301 - mr - T1W aTSE/MR000001.dcm"
    assert names[3] == "887 - KNEE^R/A1 - IRM du genou, droit/T2/00000000.dcm"


def test_empty_and_caret_only_folders_are_unknown(api) -> None:
    """A folder left empty or only carets (a non-ASCII name) is "Unknown ..." (1.12.2); from
    1.13 the PatientID is always a part of the patient folder, even empty."""
    index = TreeIndex()
    patient = index.add(Level.PATIENT, "p", None, {PATIENT_NAME: "É^É"})
    study = index.add(Level.STUDY, "s", patient)
    series = index.add(Level.SERIES, "r", study)
    index.add(Level.INSTANCE, "i", series)
    api(22)
    assert _names(index, ["p"]) == ["Unknown Patient/Unknown Study/Unknown Series/00000000.dcm"]
    api(31)
    assert _names(index, ["p"]) == ["- ^/Unknown Study/Unknown Series/00000000.dcm"]


def test_normalize_path() -> None:
    assert normalize_path(' a:*?"<>|b\\/c\n\nd\te ', False) == "a b c de"  # a tab is a control: dropped
    assert normalize_path("é\x01x\x7f", False) == "x"
    assert normalize_path("é\x01x", True) == "é x"
