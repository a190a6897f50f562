"""Modifications at the Orthanc 1.11.3+ API levels, on a real Isengard reporting 1.13.0.

Orthanc 1.11.3 (API 19): with ``Force`` the identifiers of any level may be replaced at any
level; a study may take new patient tags only as its patient's only study, or to join an
existing patient with exactly that patient's tags; keeping the three UIDs in place needs
``KeepSource``; the resources that existed before are re-indexed from the modified files
when the job ends; the job lists ``ParentResources`` (and, 1.12.11, typed ``Resources``).
The 1.10.1 behaviour is compared with the real Orthanc in test_modify.py.
"""

from __future__ import annotations

import pytest
import requests

from conftest import Isengard
from helpers import IsengardAtLevel, orthanc_error, wait_job


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    started = IsengardAtLevel(tmp_path_factory.mktemp("level"), "1.13.0", 31,
                              OverwriteInstances=True).start()
    yield started
    started.stop()
    started.assert_loop_never_blocked()


@pytest.fixture
def isengard_13(server: Isengard) -> Isengard:
    for patient in server.json("/patients"):
        server.delete(f"/patients/{patient}")
    return server


def _create(server: Isengard, patient: str, name: str, study: str, series: str, **tags: str) -> dict:
    answer = server.post("/tools/create-dicom", json={"Tags": {
        "PatientID": patient, "PatientName": name, "PatientSex": "M", "StudyInstanceUID": study,
        "SeriesInstanceUID": series, "StudyDescription": "before", "SeriesDescription": "before",
        "Modality": "CT", **tags}, "Force": True})
    answer.raise_for_status()
    return answer.json()


def _modify(server: Isengard, level: str, public_id: str, **body) -> requests.Response:
    return server.post(f"/{level}/{public_id}/modify", json=body)


def test_force_replaces_identifiers_of_any_level(isengard_13: Isengard) -> None:
    instance = _create(isengard_13, "P", "N", "1.2.3", "1.2.3.4")
    cases = [("studies", instance["ParentStudy"], {"PatientID": "NEW"}),
             ("series", instance["ParentSeries"], {"StudyInstanceUID": "1.3"}),
             ("instances", instance["ID"], {"SeriesInstanceUID": "1.4"})]
    for level, public_id, replace in cases:
        assert orthanc_error(_modify(isengard_13, level, public_id, Replace=replace))[:2] == (400, 8)
        answer = _modify(isengard_13, level, public_id, Replace=replace, Force=True)
        assert answer.status_code == 200, answer.text
        if level == "studies":
            moved = answer.json()["PatientID"]
            assert isengard_13.json(f"/patients/{moved}")["MainDicomTags"]["PatientID"] == "NEW"


def test_kept_parents_are_reconstructed_when_the_job_ends(isengard_13: Isengard) -> None:
    instance = _create(isengard_13, "P", "N", "1.2.3", "1.2.3.4")
    job = _modify(isengard_13, "studies", instance["ParentStudy"], Force=True, Keep=["StudyInstanceUID"],
                  Replace={"StudyDescription": "after", "PatientName": "RENAMED"}, Asynchronous=True).json()["ID"]
    content = wait_job(isengard_13, job)["Content"]
    assert content["ParentResources"] == [instance["ParentStudy"]]
    assert content["Resources"] == [{"ID": instance["ParentStudy"], "Type": "Study"}]
    answer = {"ID": content["ID"]}
    assert answer["ID"] == instance["ParentStudy"]
    study = isengard_13.json(f"/studies/{answer['ID']}")
    assert study["MainDicomTags"]["StudyDescription"] == "after"
    assert study["PatientMainDicomTags"]["PatientName"] == "RENAMED"
    assert isengard_13.json(f"/patients/{instance['ParentPatient']}")["MainDicomTags"]["PatientName"] == "RENAMED"


def test_a_study_joins_another_patient_only_with_all_its_tags(isengard_13: Isengard) -> None:
    first = _create(isengard_13, "P1", "ONE", "1.1", "1.1.1", PatientBirthDate="19000101")
    _create(isengard_13, "P1", "ONE", "1.2", "1.2.1", PatientBirthDate="19000101")
    other = _create(isengard_13, "P2", "TWO", "2.1", "2.1.1")
    refused = [
        (first["ParentStudy"], {"PatientName": "RENAMED"}, "Failing tag: 0010,0010"),
        (other["ParentStudy"], {"PatientID": "P1"}, "Missing tag in the 'Replace' tags: 0010,0010"),
        (other["ParentStudy"], {"PatientID": "P1", "PatientName": "ONE", "PatientBirthDate": "19000101",
                                "PatientSex": "F"}, "Failing tag: 0010,0040"),
        (other["ParentStudy"], {"PatientID": "P1", "PatientName": "ONE", "PatientBirthDate": "19000101",
                                "PatientSex": "M", "OtherPatientIDs": "X"},
         "not defined yet in this patient. Try using /patients/../modify instead to modify the patient. "
         "Failing tag: 0010,1000"),
    ]
    for study, replace, detail in refused:
        status, code, details = orthanc_error(_modify(isengard_13, "studies", study, Replace=replace, Force=True))
        assert (status, code) == (400, 8) and details.endswith(detail), details
    joined = _modify(isengard_13, "studies", other["ParentStudy"], Force=True, KeepSource=False, Replace={
        "PatientID": "P1", "PatientName": "ONE", "PatientBirthDate": "19000101", "PatientSex": "M"}).json()
    assert joined["PatientID"] == first["ParentPatient"]
    assert len(isengard_13.json(f"/patients/{first['ParentPatient']}")["Studies"]) == 3


def test_keeping_every_uid_needs_keep_source(isengard_13: Isengard) -> None:
    instance = _create(isengard_13, "P", "N", "1.2.3", "1.2.3.4")
    keep = ["StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"]
    status, code, details = orthanc_error(_modify(isengard_13, "studies", instance["ParentStudy"], Force=True,
                                                  Keep=keep, KeepSource=False, Replace={"StudyDescription": "x"}))
    assert (status, code) == (400, 8) and "you must set KeepSource to true" in details
    answer = _modify(isengard_13, "studies", instance["ParentStudy"], Force=True, Keep=keep,
                     Replace={"StudyDescription": "in place"})
    assert answer.status_code == 200
    assert isengard_13.json("/instances") == [instance["ID"]]
    assert isengard_13.json(f"/studies/{instance['ParentStudy']}")["MainDicomTags"]["StudyDescription"] == "in place"
