"""The same files uploaded to Isengard and to the real Orthanc 1.10.1 give the same answers."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import Isengard, Orthanc, dicom_files

#: Orthanc 1.10.1 dies (stack overflow) on this file; Isengard refuses it (tested below).
CRASHES_ORTHANC = "2026-05-06-Deeply-Nested-Sequence.dcm"
FILES = [p for p in dicom_files() if p.name != CRASHES_ORTHANC]
#: Fields that depend on the moment or on random file names.
#: ``Labels`` and a patient's ``IsProtected`` are Orthanc 1.12's: 1.10.1 has no such fields.
VOLATILE = {"LastUpdate", "FileUuid", "IsStable", "Labels", "IsProtected"}


@pytest.fixture(scope="module")
def both(tmp_path_factory: pytest.TempPathFactory, orthanc: Orthanc):
    isengard = Isengard(tmp_path_factory.mktemp("differential")).start()
    orthanc.clear()
    uploads = {}
    for path in FILES:
        data = path.read_bytes()
        uploads[path] = (isengard.post("/instances", data), orthanc.post("/instances", data))
    yield isengard, orthanc, uploads
    isengard.stop()
    orthanc.clear()


def _name(path: Path) -> str:
    return str(path.relative_to(path.parents[len(path.parents) - 1]))


def test_upload_answers_match(both) -> None:
    _, _, uploads = both
    mismatches = []
    for path, (mine, theirs) in uploads.items():
        if mine.status_code != theirs.status_code:
            mismatches.append((path.name, mine.status_code, theirs.status_code))
        elif theirs.status_code == 200:
            if mine.json() != theirs.json():
                mismatches.append((path.name, mine.json(), theirs.json()))
        elif theirs.content:
            ours, ref = mine.json(), theirs.json()
            if (ours["OrthancStatus"], ours.get("Details")) != (ref["OrthancStatus"], ref.get("Details")):
                mismatches.append((path.name, ours, ref))
    assert mismatches == []
    assert sum(1 for mine, _ in uploads.values() if mine.status_code == 200) > 90


@pytest.mark.parametrize("level", ["patients", "studies", "series", "instances"])
def test_resources_match_field_by_field(both, level: str) -> None:
    isengard, orthanc, _ = both
    ours = {r["ID"]: r for r in isengard.json(f"/{level}?expand")}
    theirs = {r["ID"]: r for r in orthanc.json(f"/{level}?expand")}
    assert sorted(ours) == sorted(theirs)
    differences = []
    for public_id, ref in theirs.items():
        mine = ours[public_id]
        for key in set(ref) | set(mine):
            if key in VOLATILE:
                continue
            a, b = mine.get(key), ref.get(key)
            if isinstance(a, list) and isinstance(b, list):
                a, b = sorted(a), sorted(b)
            if a != b:
                differences.append((level, public_id, key, a, b))
    assert differences == []


def test_tags_match(both) -> None:
    isengard, orthanc, _ = both
    differences = []
    for instance in orthanc.json("/instances"):
        for route in ("/tags?simplify", "/tags", "/header"):
            mine = isengard.json(f"/instances/{instance}{route}")
            theirs = orthanc.json(f"/instances/{instance}{route}")
            if mine != theirs:
                differences.append((instance, route))
    assert differences == []


@pytest.mark.parametrize("level", ["patients", "studies", "series", "instances"])
def test_metadata_names_match(both, level: str) -> None:
    isengard, orthanc, _ = both
    for resource in orthanc.json(f"/{level}")[:20]:
        assert isengard.json(f"/{level}/{resource}/metadata") == orthanc.json(f"/{level}/{resource}/metadata")


def test_files_are_returned_byte_identical(both) -> None:
    isengard, _, uploads = both
    for path, (mine, _) in uploads.items():
        if mine.status_code == 200:
            stored = isengard.get(f"/instances/{mine.json()['ID']}/file").content
            assert stored == path.read_bytes(), path


def test_file_that_crashes_orthanc_is_refused(isengard: Isengard) -> None:
    path = next(p for p in dicom_files() if p.name == CRASHES_ORTHANC)
    answer = isengard.post("/instances", path.read_bytes())
    assert answer.status_code == 400
    assert answer.json()["OrthancStatus"] == 15
    assert isengard.get("/system").status_code == 200
