"""Isengard as a Query/Retrieve SCP: C-FIND, C-MOVE and C-GET with dcmtk and pynetdicom."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pydicom
import pytest
from pydicom.dataset import Dataset
from pynetdicom import AE
from pynetdicom.sop_class import (
    PatientRootQueryRetrieveInformationModelFind,
    PatientRootQueryRetrieveInformationModelMove,
    StudyRootQueryRetrieveInformationModelFind,
)

from conftest import Isengard, dcmtk, dcmtk_env, free_port, sample
from helpers import ct_slice, query_identifier

FILES = ["Issue143.dcm", "PatientIdsCollision/Image1.dcm", "PatientIdsCollision/Image2.dcm",
         "Issue154-d1.dcm", "MarekLatin2.dcm"]
STUDY_ROOT = StudyRootQueryRetrieveInformationModelFind
PATIENT_ROOT = PatientRootQueryRetrieveInformationModelFind
PATIENT_ROOT_MOVE = PatientRootQueryRetrieveInformationModelMove


def _run(*command: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(command, capture_output=True, text=True, timeout=60, env=dcmtk_env(), cwd=cwd)


@pytest.fixture(scope="module")
def destination(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, Path]]:
    """dcmtk's storescp (AET DEST): the target of C-MOVE."""
    folder = tmp_path_factory.mktemp("destination")
    port = free_port()
    process = subprocess.Popen([dcmtk("storescp"), "--aetitle", "DEST", "-od", str(folder), str(port)],
                               env=dcmtk_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.3)
    yield port, folder
    process.terminate()
    process.wait(timeout=10)


def _modalities(dest_port: int) -> dict:
    return {"findscu": ["FINDSCU", "127.0.0.1", 1],
            "dest": ["DEST", "127.0.0.1", dest_port],
            "readonly": {"AET": "NOMOVE", "Host": "127.0.0.1", "Port": 2, "AllowMove": False,
                         "AllowGet": False}}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, destination: tuple[int, Path]) -> Iterator[Isengard]:
    instance = Isengard(tmp_path_factory.mktemp("scp"), DicomModalities=_modalities(destination[0])).start()
    for name in FILES:
        instance.upload(sample(name))
    yield instance
    instance.stop()


def _find(server: Isengard, keys: dict, model: str = STUDY_ROOT,
          aet: str = "FINDSCU") -> tuple[list[Dataset], int | None]:
    """(answers, final status); final status None when the association was aborted."""
    identifier = query_identifier(keys)
    ae = AE(ae_title=aet)
    ae.add_requested_context(model)
    assoc = ae.associate("127.0.0.1", server.dicom_port, ae_title=server.aet)
    assert assoc.is_established
    answers, final = [], None
    for status, answer in assoc.send_c_find(identifier, model):
        if "Status" not in status:
            break
        if status.Status in (0xFF00, 0xFF01):
            answers.append(answer)
        else:
            final = status.Status
    if assoc.is_established:
        assoc.release()
    return answers, final


# -- C-FIND ----------------------------------------------------------------------------


def test_findscu_study_level_answers_with_counters(server: Isengard, tmp_path: Path) -> None:
    result = _run(dcmtk("findscu"), "-aet", "FINDSCU", "-aec", server.aet, "-S", "-X", "-od", str(tmp_path),
                  "-k", "QueryRetrieveLevel=STUDY", "-k", "PatientID=PM5644", "-k", "StudyInstanceUID",
                  "-k", "NumberOfStudyRelatedInstances", "-k", "NumberOfStudyRelatedSeries",
                  "-k", "ModalitiesInStudy", "-k", "PatientName", "-k", "StudyDate",
                  "127.0.0.1", str(server.dicom_port))
    assert result.returncode == 0, result.stderr
    answers = [pydicom.dcmread(p) for p in sorted(tmp_path.glob("rsp*.dcm"))]
    assert len(answers) == 1
    answer = answers[0]
    original = pydicom.dcmread(sample("Issue143.dcm"))
    assert answer.StudyInstanceUID == original.StudyInstanceUID
    assert answer.PatientName == "Test^Pattern" and answer.StudyDate == "20190320"
    assert (answer.NumberOfStudyRelatedInstances, answer.NumberOfStudyRelatedSeries) == (1, 1)
    assert answer.ModalitiesInStudy == "OT"
    assert answer.QueryRetrieveLevel == "STUDY" and answer.RetrieveAETitle == server.aet
    assert answer.SpecificCharacterSet == "ISO_IR 100"


def test_find_patient_root_with_counters_and_case_rules(server: Isengard) -> None:
    answers, status = _find(server, {"QueryRetrieveLevel": "PATIENT", "PatientName": "john*",
                                     "PatientID": "", "NumberOfPatientRelatedInstances": ""},
                            PATIENT_ROOT)
    assert status == 0
    assert [(a.PatientID, a.NumberOfPatientRelatedInstances) for a in answers] == [("P0001", 1)]
    answers, _ = _find(server, {"QueryRetrieveLevel": "PATIENT", "PatientID": "common"}, PATIENT_ROOT)
    assert answers == [], "LO matching is case-sensitive"
    answers, _ = _find(server, {"QueryRetrieveLevel": "PATIENT", "PatientID": "COMMON"}, PATIENT_ROOT)
    assert len(answers) == 1


def test_find_series_and_instances(server: Isengard) -> None:
    series, _ = _find(server, {"QueryRetrieveLevel": "SERIES", "Modality": "OT\\SR",
                               "SeriesInstanceUID": "", "NumberOfSeriesRelatedInstances": ""})
    assert sorted(s.Modality for s in series) == ["OT", "SR"]
    assert {s.NumberOfSeriesRelatedInstances for s in series} == {1}
    instances, _ = _find(server, {"QueryRetrieveLevel": "IMAGE", "SOPInstanceUID": "",
                                  "PatientID": "COMMON", "Rows": ""})
    assert len(instances) == 2
    assert all(i.QueryRetrieveLevel == "IMAGE" and "Rows" in i for i in instances)


def test_find_dicom_matching_rules(server: Isengard) -> None:
    def count(keys: dict) -> int:
        found, _ = _find(server, {"QueryRetrieveLevel": "STUDY", "StudyInstanceUID": "", **keys})
        return len(found)

    assert count({}) == 5
    assert count({"StudyDate": "20190101-20191231"}) == 1
    assert count({"ModalitiesInStudy": "SR"}) == 1
    assert count({"Modality": "OT"}) == 0, "a lower-level main tag matches nothing"
    uids = [pydicom.dcmread(sample(n)).StudyInstanceUID for n in ("Issue143.dcm", "MarekLatin2.dcm")]
    assert count({"StudyInstanceUID": "\\".join(uids)}) == 2


def test_find_errors_answer_unable_to_process(server: Isengard) -> None:
    _, status = _find(server, {"PatientID": "PM5644"})
    assert status == 0xC000, "no QueryRetrieveLevel"
    _, status = _find(server, {"QueryRetrieveLevel": "STUDY", "StudyInstanceUID": "1.2*"})
    assert status == 0xC000, "wildcard on a UID"
    _, status = _find(server, {"QueryRetrieveLevel": "NOTALEVEL"})
    assert status == 0xC000


def test_find_authorization_follows_rest_changes(server: Isengard) -> None:
    _, status = _find(server, {"QueryRetrieveLevel": "STUDY"}, aet="NEWCOMER")
    assert status is None, "unknown AETs are refused (DicomAlwaysAllowFind is false)"
    assert server.put("/modalities/newcomer", json.dumps(["NEWCOMER", "127.0.0.1", 3])).status_code == 200
    answers, status = _find(server, {"QueryRetrieveLevel": "STUDY"}, aet="NEWCOMER")
    assert status == 0 and len(answers) == 5
    assert server.delete("/modalities/newcomer").status_code == 200


# -- C-MOVE and C-GET ----------------------------------------------------------------


def test_movescu_sends_to_the_destination(server: Isengard, destination: tuple[int, Path]) -> None:
    folder = destination[1]
    before = set(folder.iterdir())
    uid = pydicom.dcmread(sample("Issue143.dcm")).StudyInstanceUID
    result = _run(dcmtk("movescu"), "-aet", "FINDSCU", "-aec", server.aet, "-aem", "DEST", "-S",
                  "-k", "QueryRetrieveLevel=STUDY", "-k", f"StudyInstanceUID={uid}",
                  "127.0.0.1", str(server.dicom_port))
    assert result.returncode == 0, result.stderr
    received = set(folder.iterdir()) - before
    assert [pydicom.dcmread(p).StudyInstanceUID for p in received] == [uid]


def test_movescu_failures(server: Isengard) -> None:
    def move(aet: str, destination_aet: str, uid: str) -> subprocess.CompletedProcess:
        return _run(dcmtk("movescu"), "-v", "-aet", aet, "-aec", server.aet, "-aem", destination_aet, "-S",
                    "-k", "QueryRetrieveLevel=STUDY", "-k", f"StudyInstanceUID={uid}",
                    "127.0.0.1", str(server.dicom_port))

    uid = pydicom.dcmread(sample("Issue143.dcm")).StudyInstanceUID
    assert "Failed: UnableToProcess" in move("FINDSCU", "UNKNOWNDEST", uid).stderr
    assert "Failed: UnableToProcess" in move("FINDSCU", "DEST", "9.9.9").stderr
    assert "Peer aborted Association" in move("NOMOVE", "DEST", uid).stderr


def test_a_destination_that_dies_midway_fails_the_rest_at_once(make_isengard, tmp_path: Path) -> None:
    """Each sub-operation has its pending response with the counts; once the destination is
    gone, the remaining ones fail without waiting for a timeout each."""
    port = free_port()
    storescp = subprocess.Popen([dcmtk("storescp"), "--aetitle", "DEST", "--ignore", str(port)],
                                env=dcmtk_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        server = make_isengard(DicomModalities=_modalities(port), DicomScuTimeout=30)
        for n in range(60):
            server.upload(ct_slice("1.2.3.60", "1.2.3.60.1", n, patient="DYING"))
        time.sleep(0.3)
        ae = AE(ae_title="FINDSCU")
        ae.add_requested_context(PATIENT_ROOT_MOVE)
        assoc = ae.associate("127.0.0.1", server.dicom_port, ae_title=server.aet)
        identifier = Dataset()
        identifier.QueryRetrieveLevel, identifier.PatientID = "PATIENT", "DYING"
        counts, started = [], time.monotonic()
        for status, _ in assoc.send_c_move(identifier, "DEST", PATIENT_ROOT_MOVE):
            counts.append((status.Status, status.NumberOfCompletedSuboperations, status.NumberOfFailedSuboperations,
                           status.get("NumberOfRemainingSuboperations")))
            if len(counts) == 20:
                storescp.kill()
        assoc.release()
    finally:
        storescp.kill()
        storescp.wait()
    assert time.monotonic() - started < 10
    assert [remaining for _, _, _, remaining in counts[:-1]] == list(range(59, -1, -1))
    assert all(completed + failed == 60 - remaining for _, completed, failed, remaining in counts[:-1])
    final, completed, failed, _ = counts[-1]
    assert final == 0xB000 and completed + failed == 60 and 20 <= completed < 60


def test_getscu_retrieves_over_the_same_association(server: Isengard, tmp_path: Path) -> None:
    uid = pydicom.dcmread(sample("PatientIdsCollision/Image1.dcm")).SeriesInstanceUID
    result = _run(dcmtk("getscu"), "-aet", "FINDSCU", "-aec", server.aet, "-od", str(tmp_path), "-S",
                  "-k", "QueryRetrieveLevel=SERIES", "-k", f"SeriesInstanceUID={uid}",
                  "127.0.0.1", str(server.dicom_port))
    assert result.returncode == 0, result.stderr
    received = [pydicom.dcmread(p) for p in tmp_path.iterdir()]
    assert [r.SeriesInstanceUID for r in received] == [uid] * len(received) and received
    refused = _run(dcmtk("getscu"), "-aet", "NOMOVE", "-aec", server.aet, "-od", str(tmp_path), "-S",
                   "-k", "QueryRetrieveLevel=SERIES", "-k", f"SeriesInstanceUID={uid}",
                   "127.0.0.1", str(server.dicom_port))
    assert "Peer aborted Association" in refused.stderr


# -- options: limits, asynchronous C-MOVE, the Lua hook --------------------------------

LUA = """
function IncomingFindRequestFilter(source, origin)
  if source['0010,0020'] == 'ALIAS' and origin['RemoteAet'] == 'FINDSCU' then
    source['0010,0020'] = 'PM5644'
  end
  return source
end
"""


def test_limits_asynchronous_move_and_lua_filter(make_isengard, destination: tuple[int, Path],
                                                 tmp_path: Path) -> None:
    script = tmp_path / "filter.lua"
    script.write_text(LUA)
    server = make_isengard(DicomModalities=_modalities(destination[0]), LimitFindResults=2,
                           LimitFindInstances=1, SynchronousCMove=False, LuaScripts=[str(script)])
    for name in FILES:
        server.upload(sample(name))
    answers, status = _find(server, {"QueryRetrieveLevel": "STUDY", "StudyInstanceUID": ""})
    assert (len(answers), status) == (2, 0xFE00), "cut by LimitFindResults: final status Cancel"
    answers, status = _find(server, {"QueryRetrieveLevel": "IMAGE", "SOPInstanceUID": ""})
    assert (len(answers), status) == (1, 0xFE00)
    answers, status = _find(server, {"QueryRetrieveLevel": "STUDY", "PatientID": "ALIAS"})
    assert status == 0 and [a.PatientID for a in answers] == ["PM5644"]

    uid = pydicom.dcmread(sample("Issue143.dcm")).StudyInstanceUID
    result = _run(dcmtk("movescu"), "-aet", "FINDSCU", "-aec", server.aet, "-aem", "DEST", "-S",
                  "-k", "QueryRetrieveLevel=STUDY", "-k", f"StudyInstanceUID={uid}",
                  "127.0.0.1", str(server.dicom_port))
    assert result.returncode == 0, result.stderr
    deadline = time.monotonic() + 20
    jobs: list[dict] = []
    while time.monotonic() < deadline:
        jobs = server.json("/jobs?expand")
        if jobs and jobs[0]["State"] == "Success":
            break
        time.sleep(0.1)
    assert [(j["Type"], j["State"]) for j in jobs] == [("DicomModalityStore", "Success")]
    content = jobs[0]["Content"]
    assert content["Description"] == "C-MOVE" and content["RemoteAet"] == "DEST"
    assert content["MoveOriginatorAET"] == "FINDSCU" and content["InstancesCount"] == 1
