"""C-GET as an SCU (Orthanc 1.12.6): ``/modalities/{id}/get`` and the ``DicomGetScu`` job, with the
real Orthanc 1.10.1 as the C-GET SCP that sends the instances over the same association; and
``/modalities/{id}/move`` as a ``DicomMoveScu`` job (Orthanc 1.11.1) with the same peer."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import ORTHANC_BINARY, Isengard, Orthanc, free_port, sample
from helpers import orthanc_error, wait_job
from server.config import ConfigError, load_configuration

STUDY_143 = "1.3.6.1.4.1.34261.90254037371867.41912.1553085024.2"
SERIES_143 = "1.3.6.1.4.1.34261.90254037371867.41912.1553085024.3"
STUDY_IMAGE1 = "1.2.276.0.7230010.3.1.2.2831176407.9838.1444138856.248789"
SERIES_IMAGE1 = "1.2.276.0.7230010.3.1.3.2831176407.9838.1444138856.248790"


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Isengard, Orthanc]]:
    """Isengard and the real Orthanc, each knowing the other; Orthanc holds three instances."""
    if not ORTHANC_BINARY.exists():
        pytest.skip("the real Orthanc is not installed (make test installs it)")
    root = tmp_path_factory.mktemp("get-scu")
    isengard = Isengard(root / "isengard", DicomAet="ISENGET", ConcurrentJobs=1)
    orthanc = Orthanc(root / "orthanc", DicomModalities={
        "isengard": ["ISENGET", "127.0.0.1", isengard.dicom_port],
        "other": ["OTHERAET", "127.0.0.1", isengard.dicom_port]})
    isengard.config["DicomModalities"] = {
        "orthanc": ["ORTHANCREF", "127.0.0.1", orthanc.dicom_port],
        "dead": ["DEAD", "127.0.0.1", free_port()],
    }
    isengard.config_path.write_text(json.dumps(isengard.config))
    orthanc.start()
    isengard.start()
    for name in ("Issue143.dcm", "PatientIdsCollision/Image1.dcm", "PatientIdsCollision/Image2.dcm"):
        orthanc.upload(sample(name))
    yield isengard, orthanc
    isengard.stop()
    orthanc.stop()
    isengard.assert_loop_never_blocked()


@pytest.fixture
def clean(pair: tuple[Isengard, Orthanc]) -> tuple[Isengard, Orthanc]:
    pair[0].clear()
    return pair


def test_get_is_listed_among_the_operations(pair: tuple[Isengard, Orthanc]) -> None:
    isengard, _ = pair
    assert "get" in isengard.json("/modalities/orthanc")
    assert isengard.json("/system")["DicomDefaultRetrieveMethod"] == "C-MOVE"


def test_synchronous_get_stores_the_instances_with_their_dicom_origin(clean: tuple[Isengard, Orthanc]) -> None:
    isengard, _ = clean
    answer = isengard.post("/modalities/orthanc/get", json={"Level": "Study",
                                                            "Resources": [{"StudyInstanceUID": STUDY_143}]})
    assert answer.status_code == 200, answer.text
    instances = isengard.json("/instances")
    assert len(instances) == 1
    query = {"0008,0052": "STUDY", "0020,000d": STUDY_143}
    assert answer.json() == {
        "Description": "REST API", "LocalAet": "ISENGET", "RemoteAet": "ORTHANCREF", "Query": [query],
        "Details": [{"DimseErrorStatus": 0, "Query": query, "ReceivedInstancesIds": instances}]}
    metadata = isengard.json(f"/instances/{instances[0]}/metadata?expand")
    assert (metadata["Origin"], metadata["RemoteAET"], metadata["CalledAET"]) == \
        ("DicomProtocol", "ORTHANCREF", "ISENGET")
    assert metadata["RemoteIP"] == "127.0.0.1"


def test_asynchronous_get_job_survives_a_restart(clean: tuple[Isengard, Orthanc]) -> None:
    isengard, _ = clean
    body = {"Level": "Series", "Asynchronous": True, "Priority": 3, "LocalAet": "OTHERAET", "Timeout": 20,
            "UserData": {"Ticket": 42},
            "Resources": [{"StudyInstanceUID": STUDY_143, "SeriesInstanceUID": SERIES_143},
                          {"StudyInstanceUID": STUDY_IMAGE1, "SeriesInstanceUID": SERIES_IMAGE1}]}
    submitted = isengard.post("/modalities/orthanc/get", json=body)
    assert submitted.status_code == 200, submitted.text
    job = submitted.json()["ID"]
    assert submitted.json()["Path"] == f"/jobs/{job}"
    document = wait_job(isengard, job)
    assert (document["State"], document["Type"], document["Priority"], document["Progress"]) == \
        ("Success", "DicomGetScu", 3, 100)
    assert document["UserData"] == {"Ticket": 42}
    content = document["Content"]
    assert content["LocalAet"] == "OTHERAET"
    received = [d["ReceivedInstancesIds"] for d in content["Details"]]
    assert [len(ids) for ids in received] == [1, 1]
    assert sorted(received[0] + received[1]) == sorted(isengard.json("/instances"))
    assert isengard.stop() == 0
    isengard.start()
    assert isengard.json(f"/jobs/{job}") | {"Timestamp": None} == document | {"Timestamp": None}


def test_failed_get_and_permissive_get(clean: tuple[Isengard, Orthanc]) -> None:
    isengard, _ = clean
    wrong = {"Level": "Series", "Resources": [{"StudyInstanceUID": STUDY_IMAGE1},
                                              {"StudyInstanceUID": STUDY_143, "SeriesInstanceUID": SERIES_143}]}
    failed = isengard.post("/modalities/orthanc/get", json=wrong | {"Asynchronous": True})
    document = wait_job(isengard, failed.json()["ID"])
    assert document["State"] == "Failure"
    assert document["ErrorDetails"].startswith('C-GET SCU to AET "ORTHANCREF" has failed with DIMSE status 0x')
    assert isengard.json("/instances") == []
    permissive = isengard.post("/modalities/orthanc/get", json=wrong | {"Permissive": True})
    assert permissive.status_code == 200, permissive.text
    details = permissive.json()["Details"]
    assert details[0]["DimseErrorStatus"] != 0 and details[0]["ReceivedInstancesIds"] == []
    assert details[1]["DimseErrorStatus"] == 0 and details[1]["ReceivedInstancesIds"] == isengard.json("/instances")


def test_failed_synchronous_get_answers_its_details_as_error_payload(clean: tuple[Isengard, Orthanc]) -> None:
    isengard, _ = clean
    failed = isengard.post("/modalities/orthanc/get", json={"Level": "Series",
                                                            "Resources": [{"StudyInstanceUID": STUDY_IMAGE1}]})
    error = failed.json()
    assert (failed.status_code, error["OrthancStatus"]) == (500, 9)
    [details] = error["ErrorPayload"]["Content"]
    assert error["ErrorPayload"]["Type"] == "RetrieveJob" and details["DimseErrorStatus"] != 0
    assert details["Query"] == {"0008,0052": "SERIES", "0020,000d": STUDY_IMAGE1}


# -- C-MOVE: /modalities/{id}/move ----------------------------------------------------------


def test_synchronous_move_lists_the_instances_received(clean: tuple[Isengard, Orthanc]) -> None:
    """Orthanc's C-STOREs name Isengard's C-MOVE as their originator: the job knows what it got."""
    isengard, _ = clean
    moved = isengard.post("/modalities/orthanc/move", json={
        "Level": "Series", "Resources": [{"PatientID": "COMMON", "StudyInstanceUID": STUDY_IMAGE1,
                                          "SeriesInstanceUID": SERIES_IMAGE1}]})
    assert moved.status_code == 200, moved.text
    query = {"0008,0052": "SERIES", "0010,0020": "COMMON", "0020,000d": STUDY_IMAGE1,
             "0020,000e": SERIES_IMAGE1}
    assert moved.json() == {
        "Description": "REST API", "LocalAet": "ISENGET", "RemoteAet": "ORTHANCREF", "TargetAet": "ISENGET",
        "Query": [query],
        "Details": [{"DimseErrorStatus": 0, "Query": query, "ReceivedInstancesIds": isengard.json("/instances")}]}
    assert len(isengard.json("/instances")) == 1


def test_asynchronous_move_job_survives_a_restart(clean: tuple[Isengard, Orthanc]) -> None:
    isengard, _ = clean
    body = {"Level": "Study", "Asynchronous": True, "Priority": 2, "UserData": "u", "Permissive": True,
            "Timeout": 20, "Resources": [{"StudyInstanceUID": "9.9.9"}, {"StudyInstanceUID": STUDY_143}]}
    submitted = isengard.post("/modalities/orthanc/move", json=body)
    assert submitted.status_code == 200, submitted.text
    job = submitted.json()["ID"]
    assert submitted.json() == {"ID": job, "Path": f"/jobs/{job}"}
    document = wait_job(isengard, job)
    assert (document["State"], document["Type"], document["Priority"], document["UserData"]) == \
        ("Success", "DicomMoveScu", 2, "u")
    failed, moved = document["Content"]["Details"]
    assert failed["DimseErrorStatus"] != 0 and failed["ReceivedInstancesIds"] == []
    assert moved["DimseErrorStatus"] == 0 and moved["ReceivedInstancesIds"] == isengard.json("/instances")
    assert isengard.stop() == 0
    isengard.start()
    assert isengard.json(f"/jobs/{job}") | {"Timestamp": None} == document | {"Timestamp": None}


def test_failed_move_job_shows_the_dimse_status(clean: tuple[Isengard, Orthanc]) -> None:
    isengard, _ = clean
    job = isengard.post("/modalities/orthanc/move", json={
        "Level": "Study", "Synchronous": False, "TargetAet": "UNKNOWN",
        "Resources": [{"StudyInstanceUID": STUDY_143}]}).json()["ID"]
    document = wait_job(isengard, job)
    status = document["Content"]["Details"][0]["DimseErrorStatus"]
    assert document["State"] == "Failure" and status != 0
    assert document["ErrorPayload"] == {"Type": "Dimse", "Content": {"DimseErrorStatus": status}}
    assert document["ErrorDetails"].startswith(
        f'C-MOVE SCU to AET "ORTHANCREF" has failed with DIMSE status 0x{status:04X}')


def test_bad_get_requests(pair: tuple[Isengard, Orthanc]) -> None:
    isengard, _ = pair
    message = "Must provide a JSON body containing fields Resources and Level"
    assert orthanc_error(isengard.post("/modalities/orthanc/get", "{}")) == (400, 15, message)
    assert orthanc_error(isengard.post("/modalities/orthanc/get", '{"Level": "Study", "Resources": {}}')) == \
        (400, 15, message)
    assert orthanc_error(isengard.post("/modalities/orthanc/get",
                                       '{"Level": "Nope", "Resources": []}'))[:2] == (400, 3)
    assert isengard.post("/modalities/nope/get", '{"Level": "Study", "Resources": []}').status_code == 404
    dead = isengard.post("/modalities/dead/get", json={"Level": "Study", "Resources": [{"StudyInstanceUID": "1.2"}]})
    assert orthanc_error(dead)[:2] == (500, 9)


def test_saved_jobs_restore_a_get_job_unchanged(tmp_path: Path) -> None:
    """The saved form restores as it was written (the job registry lists the type)."""
    server = Isengard(tmp_path / "node", DicomModalities={"dead": ["DEAD", "127.0.0.1", free_port()]}).start()
    job = server.post("/modalities/dead/get", json={"Level": "Study", "Asynchronous": True, "Permissive": True,
                                                     "Resources": [{"StudyInstanceUID": "1.2.3"}]}).json()["ID"]
    before = wait_job(server, job)
    assert before["State"] == "Success" and before["Content"]["Details"][0]["ReceivedInstancesIds"] == []
    assert server.stop() == 0
    server.start()
    assert server.json(f"/jobs/{job}")["Content"] == before["Content"]
    assert server.stop() == 0


# -- the retrieve method of /queries/{id}/retrieve ------------------------------------------


def _query(isengard: Isengard, modality: str = "orthanc") -> str:
    """A study-level query of the two COMMON studies, asking for their SOP classes."""
    answer = isengard.post(f"/modalities/{modality}/query", json={
        "Level": "Study", "Query": {"PatientID": "COMMON", "SOPClassesInStudy": ""}})
    assert answer.status_code == 200, answer.text
    return answer.json()["Path"]


def test_retrieve_uses_c_move_by_default_and_c_get_when_asked(clean: tuple[Isengard, Orthanc]) -> None:
    isengard, _ = clean
    path = _query(isengard)
    moved = isengard.post(f"{path}/answers/0/retrieve", json={"Asynchronous": True})
    assert wait_job(isengard, moved.json()["ID"])["Type"] == "DicomMoveScu"
    assert len(isengard.json("/instances")) == 1
    isengard.clear()
    got = isengard.post(f"{path}/retrieve", json={"RetrieveMethod": "C-GET", "UserData": "q"})
    assert got.status_code == 200, got.text
    content = got.json()
    assert set(content) == {"Description", "Details", "LocalAet", "Query", "RemoteAet"}
    assert [len(d["ReceivedInstancesIds"]) for d in content["Details"]] == [1, 1]
    assert {q["0008,0052"] for q in content["Query"]} == {"STUDY"}
    assert len(isengard.json("/instances")) == 2
    assert orthanc_error(isengard.post(f"{path}/retrieve", json={"RetrieveMethod": "C-FIND"})) == \
        (400, 3, 'RetrieveMethod can be "C-MOVE", "C-GET" or "SystemDefault": C-FIND')
    assert orthanc_error(isengard.post(f"{path}/retrieve", json={"RetrieveMethod": 1}))[:2] == (400, 15)


def test_retrieve_follows_the_modality_retrieve_method(clean: tuple[Isengard, Orthanc]) -> None:
    isengard, orthanc = clean
    modality = {"AET": "ORTHANCREF", "Host": "127.0.0.1", "Port": orthanc.dicom_port, "RetrieveMethod": "C-GET"}
    assert isengard.put("/modalities/byget", json=modality).status_code == 200
    try:
        assert isengard.json("/modalities/byget/configuration")["RetrieveMethod"] == "C-GET"
        path = _query(isengard, "byget")
        job = isengard.post(f"{path}/answers/1/retrieve", json={"Asynchronous": True}).json()["ID"]
        document = wait_job(isengard, job)
        assert (document["State"], document["Type"]) == ("Success", "DicomGetScu")
        assert document["Content"]["Details"][0]["ReceivedInstancesIds"] == isengard.json("/instances")
        moved = isengard.post(f"{path}/answers/1/retrieve", json={"RetrieveMethod": "C-MOVE", "Asynchronous": True})
        assert wait_job(isengard, moved.json()["ID"])["Type"] == "DicomMoveScu"
    finally:
        isengard.delete("/modalities/byget")


def test_default_retrieve_method_option(pair: tuple[Isengard, Orthanc], make_isengard) -> None:
    _, orthanc = pair
    server = make_isengard(DicomAet="ISENGET", DicomDefaultRetrieveMethod="C-GET", DicomModalities={
        "orthanc": ["ORTHANCREF", "127.0.0.1", orthanc.dicom_port],
        "moving": {"AET": "ORTHANCREF", "Host": "127.0.0.1", "Port": orthanc.dicom_port,
                   "RetrieveMethod": "C-MOVE"}})
    assert server.json("/system")["DicomDefaultRetrieveMethod"] == "C-GET"  # as Orthanc 1.12.11
    job = server.post(f"{_query(server)}/retrieve", json={"Asynchronous": True}).json()["ID"]
    assert wait_job(server, job)["Type"] == "DicomGetScu"
    assert len(server.json("/instances")) == 2
    job = server.post(f"{_query(server, 'moving')}/retrieve", json={"Asynchronous": True}).json()["ID"]
    assert wait_job(server, job)["Type"] == "DicomMoveScu"


@pytest.mark.parametrize(("text", "expected"), [
    ('{"DicomDefaultRetrieveMethod": "C-FIND"}',
     '"DicomDefaultRetrieveMethod" is "C-FIND", expected "C-MOVE" or "C-GET"'),
    ('{"DicomModalities": {"p": {"AET": "P", "Host": "h", "Port": 1, "RetrieveMethod": "get"}}}',
     '"DicomModalities.p.RetrieveMethod" is "get", expected "C-MOVE", "C-GET" or "SystemDefault"'),
])
def test_bad_retrieve_methods_are_refused_at_start_up(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "orthanc.json"
    path.write_text(text)
    with pytest.raises(ConfigError, match=expected):
        load_configuration(path)
    (tmp_path / "ok.json").write_text("{}")
    assert load_configuration(tmp_path / "ok.json")["DicomDefaultRetrieveMethod"] == "C-MOVE"


def test_get_from_another_isengard(make_isengard) -> None:
    """Isengard's own C-GET SCP answers Isengard's C-GET SCU (instance level, two resources)."""
    source = make_isengard(DicomAet="SOURCE", DicomModalities={"sink": ["SINK", "127.0.0.1", free_port()]})
    sink = make_isengard(DicomAet="SINK", DicomModalities={"source": ["SOURCE", "127.0.0.1", source.dicom_port]})
    uploaded = [source.upload(sample(name)) for name in ("PatientIdsCollision/Image1.dcm",
                                                         "PatientIdsCollision/Image2.dcm")]
    resources = []
    for instance in uploaded:
        tags = source.json(f"/instances/{instance['ID']}/simplified-tags")
        resources.append({key: tags[key] for key in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID")})
    answer = sink.post("/modalities/source/get", json={"Level": "Instance", "Resources": resources})
    assert answer.status_code == 200, answer.text
    received = [d["ReceivedInstancesIds"] for d in answer.json()["Details"]]
    assert received == [[uploaded[0]["ID"]], [uploaded[1]["ID"]]]
    assert sorted(sink.json("/instances")) == sorted(i["ID"] for i in uploaded)
