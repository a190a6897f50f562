"""Isengard and the real Orthanc on the same network: each one's SCU against the other's SCP,
peer stores both ways, and C-FIND answers compared field by field on the same data."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator

import pydicom
import pytest
from pynetdicom import AE
from pynetdicom.sop_class import (
    PatientRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelFind,
)

from conftest import ORTHANC_BINARY, Isengard, Orthanc, Server, sample
from helpers import query_identifier

#: Uncompressed files (C-MOVE needs no transcoding), several patients, modalities and dates;
#: uploaded in this order to both servers.
FILES = ["Issue143.dcm", "2020-08-12-Christopher.dcm", "2020-11-16-SalimKanounAnonymization.dcm",
         "Issue141.dcm", "KarstenHilbertRF.dcm", "MarekLatin2.dcm", "Issue19.dcm",
         "HierarchicalAnonymization/RTH/CT01.dcm", "HierarchicalAnonymization/RTH/RT.dcm",
         "sample-pdf.dcm", "Issue154-d1.dcm", "PatientIdsCollision/Image1.dcm",
         "PatientIdsCollision/Image2.dcm", "PatientIdsCollision/Image3.dcm"]

SCU_AET = "INTEROPSCU"


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Isengard, Orthanc]]:
    """Isengard and a real Orthanc, each knowing the other as a modality and as a peer."""
    if not ORTHANC_BINARY.exists():
        pytest.skip("the real Orthanc is not installed (make test installs it)")
    root = tmp_path_factory.mktemp("interop")
    isengard = Isengard(root / "isengard")
    scu = [SCU_AET, "127.0.0.1", 1]
    orthanc = Orthanc(root / "orthanc", DicomModalities={
        "isengard": ["ISENGARD", "127.0.0.1", isengard.dicom_port], "scu": scu},
        OrthancPeers={"isengard": [isengard.url + "/"]})
    orthanc.start()
    isengard.config |= {"DicomModalities": {"orthanc": ["ORTHANCREF", "127.0.0.1", orthanc.dicom_port],
                                            "scu": scu},
                        "OrthancPeers": {"orthanc": [orthanc.url + "/"]}}
    isengard.config_path.write_text(json.dumps(isengard.config))
    isengard.start()
    yield isengard, orthanc
    isengard.stop()
    orthanc.stop()


@pytest.fixture(scope="module")
def loaded(pair: tuple[Isengard, Orthanc]) -> tuple[Isengard, Orthanc]:
    """Both servers hold the same instances, stored in the same order."""
    for server in pair:
        server.clear()
        for name in FILES:
            server.upload(sample(name))
    return pair


def _empty(server: Server) -> None:
    server.clear()
    assert server.json("/instances") == []


# -- SCU of one against the SCP of the other ------------------------------------------


def test_echo_both_ways(pair: tuple[Isengard, Orthanc]) -> None:
    isengard, orthanc = pair
    assert isengard.post("/modalities/orthanc/echo").json() == {}
    assert orthanc.post("/modalities/isengard/echo").json() == {}


def test_isengard_stores_to_orthanc(pair: tuple[Isengard, Orthanc]) -> None:
    isengard, orthanc = pair
    _empty(isengard)
    _empty(orthanc)
    study = isengard.upload(sample("Issue143.dcm"))["ParentStudy"]
    answer = isengard.post("/modalities/orthanc/store", json.dumps([study]))
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"Description": "REST API", "FailedInstancesCount": 0, "InstancesCount": 1,
                             "LocalAet": "ISENGARD", "ParentResources": [study], "RemoteAet": "ORTHANCREF"}
    instances = orthanc.json("/instances")
    assert len(instances) == 1
    metadata = orthanc.json(f"/instances/{instances[0]}/metadata?expand")
    assert metadata["RemoteAET"] == "ISENGARD" and metadata["Origin"] == "DicomProtocol"
    received, original = (pydicom.dcmread(io.BytesIO(server.get(f"/instances/{instances[0]}/file").content))
                          for server in (orthanc, isengard))
    assert received == original


def test_isengard_queries_and_retrieves_from_orthanc(pair: tuple[Isengard, Orthanc]) -> None:
    isengard, orthanc = pair
    _empty(isengard)
    _empty(orthanc)
    orthanc.upload(sample("PatientIdsCollision/Image1.dcm"))
    wanted = orthanc.upload(sample("Issue143.dcm"))["ID"]
    body = json.dumps({"Level": "Study", "Query": {"PatientID": "PM5644", "StudyDate": ""}})
    mine = isengard.post("/modalities/orthanc/query", body).json()
    theirs = orthanc.post("/modalities/isengard/query", body)  # Isengard is empty: no answer
    assert theirs.status_code == 200 and orthanc.json(f"{theirs.json()['Path']}/answers") == []
    answers = isengard.json(f"{mine['Path']}/answers?expand&simplify")
    assert answers == [{"AccessionNumber": "", "PatientID": "PM5644", "QueryRetrieveLevel": "STUDY",
                        "RetrieveAETitle": "ORTHANCREF", "SpecificCharacterSet": "ISO_IR 100",
                        "StudyDate": "20190320",
                        "StudyInstanceUID": answers[0]["StudyInstanceUID"]}]
    job = isengard.post(f"{mine['Path']}/retrieve", json.dumps({"TargetAet": "ISENGARD"}))
    assert job.status_code == 200, job.text
    assert job.json()["RemoteAet"] == "ORTHANCREF"
    assert job.json()["Query"][0]["0010,0020"] == "PM5644"
    assert isengard.json("/instances") == [wanted]


def test_orthanc_queries_and_moves_from_isengard(pair: tuple[Isengard, Orthanc]) -> None:
    isengard, orthanc = pair
    _empty(isengard)
    _empty(orthanc)
    for name in ("Issue143.dcm", "PatientIdsCollision/Image1.dcm"):
        isengard.upload(sample(name))
    query = orthanc.post("/modalities/isengard/query",
                         json.dumps({"Level": "Series", "Query": {"Modality": "OT"}})).json()
    answers = orthanc.json(f"{query['Path']}/answers?expand&simplify")
    assert [a["QueryRetrieveLevel"] for a in answers] == ["SERIES"]
    assert answers[0]["RetrieveAETitle"] == "ISENGARD" and answers[0]["PatientID"] == "PM5644"
    job = orthanc.post(f"{query['Path']}/retrieve", json.dumps({"TargetAet": "ORTHANCREF"}))
    assert job.status_code == 200, job.text
    assert len(orthanc.json("/instances")) == 1
    moved = orthanc.post("/modalities/isengard/move", json.dumps(
        {"Level": "Patient", "Resources": [{"PatientID": "COMMON"}], "TargetAet": "ORTHANCREF"}))
    assert moved.status_code == 200 and moved.json() == {}
    assert len(orthanc.json("/instances")) == 2
    missing = orthanc.post("/modalities/isengard/move", json.dumps(
        {"Level": "Study", "Resources": [{"StudyInstanceUID": "9.9.9"}], "TargetAet": "ORTHANCREF"}))
    assert missing.status_code in (422, 500)
    assert "C-MOVE SCU" in missing.json()["Details"]


def test_peer_store_both_ways(pair: tuple[Isengard, Orthanc]) -> None:
    isengard, orthanc = pair
    _empty(isengard)
    _empty(orthanc)
    sent = isengard.upload(sample("Issue143.dcm"))
    answer = isengard.post("/peers/orthanc/store", json.dumps({"Resources": [sent["ID"]], "Compress": True}))
    assert answer.status_code == 200, answer.text
    content = answer.json()
    assert content["Peer"] == [orthanc.url + "/"] and content["Compress"] is True
    assert 0 < int(content["Size"]) < len(sample("Issue143.dcm").read_bytes())
    assert orthanc.json("/instances") == [sent["ID"]]
    back = orthanc.upload(sample("PatientIdsCollision/Image1.dcm"))
    for compress in (False, True):
        answer = orthanc.post("/peers/isengard/store",
                              json.dumps({"Resources": [back["ID"]], "Compress": compress}))
        assert answer.status_code == 200, answer.text
    assert sorted(isengard.json("/instances")) == sorted([sent["ID"], back["ID"]])
    system = isengard.json("/peers/orthanc/system")
    assert system["Name"] == "OrthancRef" and system["Version"] == "1.10.1"


# -- C-FIND answers, field by field -------------------------------------------------


def _find(server: Server, model: str, keys: dict[str, object]) -> tuple[list[dict[str, str]], int]:
    identifier = query_identifier(keys)
    ae = AE(ae_title=SCU_AET)
    ae.add_requested_context(model)
    assoc = ae.associate("127.0.0.1", server.dicom_port, ae_title=server.aet)
    assert assoc.is_established
    answers, final = [], -1
    try:
        for status, answer in assoc.send_c_find(identifier, model):
            if status.Status in (0xFF00, 0xFF01):
                answers.append({el.keyword or str(el.tag): _text(el) for el in answer
                                if el.keyword != "RetrieveAETitle"})
            else:
                final = status.Status
    finally:
        assoc.release()
    return sorted(answers, key=lambda a: json.dumps(a, sort_keys=True)), final


def _text(element: object) -> str:
    value = element.value  # type: ignore[attr-defined]
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        return "\\".join(str(v) for v in value)
    return "" if value is None else str(value)


STUDY = StudyRootQueryRetrieveInformationModelFind
PATIENT = PatientRootQueryRetrieveInformationModelFind

QUERIES = {
    "patients with counters": (PATIENT, {
        "QueryRetrieveLevel": "PATIENT", "PatientID": "", "PatientName": "", "PatientSex": "",
        "NumberOfPatientRelatedStudies": "", "NumberOfPatientRelatedSeries": "",
        "NumberOfPatientRelatedInstances": ""}),
    "studies with counters": (STUDY, {
        "QueryRetrieveLevel": "STUDY", "StudyInstanceUID": "", "PatientID": "", "StudyDate": "",
        "AccessionNumber": "", "StudyDescription": "", "ModalitiesInStudy": "",
        "NumberOfStudyRelatedSeries": "", "NumberOfStudyRelatedInstances": "",
        "SOPClassesInStudy": ""}),
    "study date range": (STUDY, {"QueryRetrieveLevel": "STUDY", "StudyInstanceUID": "",
                                 "StudyDate": "20130101-20191231"}),
    "study date open range": (STUDY, {"QueryRetrieveLevel": "STUDY", "StudyDate": "-20130300"}),
    "patient name wildcard, case-insensitive": (STUDY, {"QueryRetrieveLevel": "STUDY",
                                                        "PatientName": "*a*", "PatientID": ""}),
    "patient name exact, other case": (PATIENT, {"QueryRetrieveLevel": "PATIENT",
                                                 "PatientName": "JOHN SMITH", "PatientID": ""}),
    "case-sensitive LO": (STUDY, {"QueryRetrieveLevel": "STUDY", "PatientID": "common"}),
    "modalities in study": (STUDY, {"QueryRetrieveLevel": "STUDY", "ModalitiesInStudy": "RTSTRUCT\\PT",
                                    "StudyInstanceUID": ""}),
    "modalities in study wildcard": (STUDY, {"QueryRetrieveLevel": "STUDY",
                                             "ModalitiesInStudy": "R*", "PatientID": ""}),
    "lower level key matches nothing": (STUDY, {"QueryRetrieveLevel": "STUDY", "Modality": "CT",
                                                "StudyInstanceUID": ""}),
    "universal star needs the attribute": (STUDY, {"QueryRetrieveLevel": "STUDY",
                                                   "AccessionNumber": "*", "PatientID": ""}),
    "wildcard on a date fails": (STUDY, {"QueryRetrieveLevel": "STUDY", "StudyDate": "*"}),
    "series with counters": (STUDY, {"QueryRetrieveLevel": "SERIES", "SeriesInstanceUID": "",
                                     "Modality": "CT\\SR", "SeriesDescription": "",
                                     "NumberOfSeriesRelatedInstances": "", "StudyInstanceUID": ""}),
    "instances of a modality": (STUDY, {"QueryRetrieveLevel": "IMAGE", "SOPInstanceUID": "",
                                        "Modality": "OT", "InstanceNumber": "", "Rows": "",
                                        "SOPClassUID": ""}),
    "wildcard on a UID fails": (STUDY, {"QueryRetrieveLevel": "STUDY", "StudyInstanceUID": "1.2*"}),
    "non-main tag from the files": (STUDY, {"QueryRetrieveLevel": "IMAGE", "SOPInstanceUID": "",
                                            "BitsAllocated": 16, "PhotometricInterpretation": ""}),
    "parent keys at instance level": (STUDY, {"QueryRetrieveLevel": "IMAGE", "PatientID": "P0001",
                                              "StudyDescription": "", "SeriesNumber": "",
                                              "SOPInstanceUID": ""}),
}


@pytest.mark.parametrize("name", list(QUERIES))
def test_cfind_answers_equal_orthanc(loaded: tuple[Isengard, Orthanc], name: str) -> None:
    isengard, orthanc = loaded
    model, keys = QUERIES[name]
    expected, expected_status = _find(orthanc, model, keys)
    answers, status = _find(isengard, model, keys)
    assert (status, answers) == (expected_status, expected)


def test_rest_query_answers_equal_orthanc(loaded: tuple[Isengard, Orthanc]) -> None:
    """The same ``/modalities/{id}/query`` sent by both to the real Orthanc's SCP: same answers."""
    isengard, orthanc = loaded
    orthanc.put("/modalities/self", json.dumps(["ORTHANCREF", "127.0.0.1", orthanc.dicom_port]))
    for level, query in (("Study", {"StudyDate": "20130101-", "ModalitiesInStudy": ""}),
                         ("Series", {"Modality": "CT", "SeriesDescription": "*"}),
                         ("Patient", {"PatientName": "*e*"})):
        body = json.dumps({"Level": level, "Query": query})
        mine = isengard.post("/modalities/orthanc/query", body).json()["Path"]
        theirs = orthanc.post("/modalities/self/query", body).json()["Path"]
        assert isengard.json(f"{mine}/answers?expand") == orthanc.json(f"{theirs}/answers?expand")
        assert isengard.get(f"{mine}/level").text == orthanc.get(f"{theirs}/level").text

