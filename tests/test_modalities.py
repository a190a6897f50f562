"""``/modalities`` and ``/queries``: Isengard as a DICOM client of another Isengard, and its failures."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator

import pydicom
import pytest
from pydicom.uid import ImplicitVRLittleEndian
from pynetdicom import AE, evt
from pynetdicom.presentation import AllStoragePresentationContexts

from conftest import Isengard, free_port, sample
from helpers import orthanc_error, wait_job


@pytest.fixture(scope="module")
def silent_port() -> Iterator[int]:
    """A port that accepts TCP connections and never answers (a hung peer)."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        yield listener.getsockname()[1]


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory, silent_port: int) -> Iterator[tuple[Isengard, Isengard]]:
    """Isengard A (the client under test) and Isengard B (its remote), each knowing the other."""
    root = tmp_path_factory.mktemp("modalities")
    a = Isengard(root / "a", DicomAet="ISENA", LogExportedResources=True, JobsMaxRetries=2,
                 StoreJobRetryDelay=0.2)
    b = Isengard(root / "b", DicomAet="ISENB", DicomCheckCalledAet=True,
                 DicomModalities={"a": ["ISENA", "127.0.0.1", a.dicom_port]})
    a.config["DicomModalities"] = {
        "b": ["ISENB", "127.0.0.1", b.dicom_port],
        "dead": ["DEAD", "127.0.0.1", free_port()],
        "wrongaet": ["WRONGAET", "127.0.0.1", b.dicom_port],
        "silent": {"AET": "SILENT", "Host": "127.0.0.1", "Port": silent_port, "Timeout": 1},
    }
    a.config_path.write_text(json.dumps(a.config))
    a.start()
    b.start()
    yield a, b
    a.stop()
    b.stop()


@pytest.fixture
def clean(pair: tuple[Isengard, Isengard]) -> tuple[Isengard, Isengard]:
    for server in pair:
        server.clear()
    return pair


# -- the list of modalities ------------------------------------------------------------


def test_list_put_delete(pair: tuple[Isengard, Isengard]) -> None:
    a, _ = pair
    assert a.json("/modalities") == ["b", "dead", "silent", "wrongaet"]
    assert a.json("/modalities?expand")["b"] == a.json("/modalities/b/configuration") == {
        "AET": "ISENB", "AllowEcho": True, "AllowEventReport": True, "AllowFind": True,
        "AllowFindWorklist": True, "AllowGet": True, "AllowMove": True, "AllowNAction": True,
        "AllowStore": True, "AllowTranscoding": True, "Host": "127.0.0.1", "LocalAet": "",
        "Manufacturer": "Generic", "Port": pair[1].dicom_port, "RetrieveMethod": "SystemDefault", "Timeout": 0,
        "UseDicomTls": False}
    assert "store" in a.json("/modalities/b") and "query" in a.json("/modalities/b")

    answer = a.put("/modalities/new", json.dumps({"AET": "NEW", "Host": "h", "Port": "104",
                                                  "AllowStorageCommitment": False}))
    assert (answer.status_code, answer.text, answer.headers["Content-Type"]) == (200, "", "text/plain")
    config = a.json("/modalities/new/configuration")
    assert (config["Port"], config["AllowNAction"], config["AllowEventReport"], config["AllowEcho"]) == \
        (104, False, False, True)
    assert a.delete("/modalities/new").status_code == 200
    assert "new" not in a.json("/modalities")

    assert a.get("/modalities/nope").status_code == 404
    assert orthanc_error(a.get("/modalities/nope/configuration")) == \
        (404, 7, "No modality with symbolic name: nope")
    assert orthanc_error(a.delete("/modalities/nope")) == \
        (404, 7, "Unknown DICOM modality with symbolic name: nope")
    assert orthanc_error(a.put("/modalities/bad.name", '["X", "h", 1]')) == (
        400, 15, "Only alphanumeric, dash characters and underscores are allowed in the names of "
                 "modalities/peers, but found: bad.name")
    assert orthanc_error(a.put("/modalities/x", '["X", "h", 1, "Bad"]')) == \
        (400, 3, 'Unknown modality manufacturer: "Bad"')
    assert orthanc_error(a.put("/modalities/x", '{"AET": "X", "Host": "h", "Port": 70000}')) == \
        (400, 3, "A TCP port number must be in range [1..65534], but found: 70000")
    assert orthanc_error(a.put("/modalities/x", '{"Host": "h", "Port": 1}')) == \
        (400, 15, "String value expected in field: AET")
    assert orthanc_error(a.put("/modalities/x", '{"AET": "X", "Host": "h", "Port": 1, "RetrieveMethod": "C-FIND"}')) \
        == (400, 3, 'RetrieveMethod can be "C-MOVE", "C-GET" or "SystemDefault": C-FIND')
    assert a.put("/modalities/x", '{"AET": "X", "Host": "h", "Port": 1, "RetrieveMethod": "C-GET"}').status_code == 200
    assert a.json("/modalities?expand")["x"]["RetrieveMethod"] == "C-GET"
    assert a.delete("/modalities/x").status_code == 200


def test_lists_kept_in_the_database(make_isengard) -> None:
    server = make_isengard(DicomModalitiesInDatabase=True, OrthancPeersInDatabase=True,
                           DicomModalities={"fromfile": ["FILE", "127.0.0.1", 104]})
    assert server.json("/modalities") == [], "the database, not the file, holds the list"
    assert server.put("/modalities/kept", '["KEPT", "127.0.0.1", 104]').status_code == 200
    assert server.put("/peers/kept", '["http://127.0.0.1:1/"]').status_code == 200
    server.stop()
    server.start()
    assert server.json("/modalities") == ["kept"]
    assert server.json("/peers") == ["kept"]


# -- C-ECHO and its failures -----------------------------------------------------------


def test_echo_and_its_failures(pair: tuple[Isengard, Isengard]) -> None:
    a, b = pair
    assert a.post("/modalities/b/echo").json() == {}
    assert a.post("/tools/dicom-echo", json.dumps({"AET": "ISENB", "Host": "127.0.0.1",
                                                   "Port": b.dicom_port})).json() == {}
    assert orthanc_error(a.post("/modalities/nope/echo")) == (404, 7, "No modality with symbolic name: nope")
    assert orthanc_error(a.post("/modalities/dead/echo")) == (
        500, 9, 'DicomAssociation - connecting to AET "DEAD": TCP Initialization Error: Connection refused')
    assert orthanc_error(a.post("/modalities/wrongaet/echo")) == (
        500, 9, 'DicomAssociation - connecting to AET "WRONGAET": DUL Association Rejected')
    started = time.monotonic()
    assert orthanc_error(a.post("/modalities/silent/echo")) == (
        500, 9, 'DicomAssociation - connecting to AET "SILENT": DUL network read timeout')
    assert time.monotonic() - started < 5, "the modality's Timeout (1 s) bounds the wait"


# -- C-STORE jobs ------------------------------------------------------------------------


def test_store_synchronous_and_asynchronous(clean: tuple[Isengard, Isengard]) -> None:
    a, b = clean
    sent = a.upload(sample("Issue143.dcm"))
    answer = a.post("/modalities/b/store", json.dumps({"Resources": [sent["ParentPatient"]],
                                                       "MoveOriginatorAet": "ORIGIN",
                                                       "MoveOriginatorID": 7}))
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"Description": "REST API", "FailedInstancesCount": 0, "InstancesCount": 1,
                             "LocalAet": "ISENA", "MoveOriginatorAET": "ORIGIN", "MoveOriginatorID": 7,
                             "ParentResources": [sent["ParentPatient"]], "RemoteAet": "ISENB"}
    assert b.json("/instances") == [sent["ID"]]
    assert b.get(f"/instances/{sent['ID']}/metadata/RemoteAET").text == "ISENA"
    exported = a.json("/exports")["Exports"][-1]
    assert (exported["ID"], exported["RemoteModality"], exported["PatientID"]) == \
        (sent["ParentPatient"], "b", "PM5644")

    committed = a.post("/modalities/b/store", json.dumps({"Resources": [sent["ID"]],
                                                          "StorageCommitment": True})).json()
    uid = committed["StorageCommitmentTransactionUID"]
    deadline = time.monotonic() + 10
    while a.json(f"/storage-commitment/{uid}")["Status"] == "Pending" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert a.json(f"/storage-commitment/{uid}")["Status"] == "Success"

    job = a.post("/modalities/b/store", json.dumps({"Resources": [sent["ID"]], "Asynchronous": True,
                                                    "Priority": 3})).json()
    assert job["Path"] == f"/jobs/{job['ID']}"
    state = wait_job(a, job["ID"])
    assert (state["State"], state["Type"], state["Priority"]) == ("Success", "DicomModalityStore", 3)


def test_store_bad_requests(pair: tuple[Isengard, Isengard]) -> None:
    a, _ = pair
    assert orthanc_error(a.post("/modalities/b/store", '"nonexistent"')) == \
        (400, 15, "This string is not a valid Orthanc identifier: nonexistent")
    assert orthanc_error(a.post("/modalities/b/store", "xx")) == (400, 15, "Must provide a JSON value")
    assert orthanc_error(a.post("/modalities/b/store", "{}")) == (400, 15, 'Missing field in JSON: "Resources"')
    unknown = a.post("/modalities/b/store", '["0123abcd-0123abcd-0123abcd-0123abcd-0123abcd"]')
    assert (unknown.status_code, unknown.json()["OrthancStatus"]) == (404, 17)
    assert orthanc_error(a.post("/modalities/nope/store", "[]")) == (404, 7, "No modality with symbolic name: nope")


def test_store_retries_transient_failures(clean: tuple[Isengard, Isengard]) -> None:
    """Refused connections go through Retry (StoreJobRetryDelay, JobsMaxRetries), then fail clearly."""
    a, _ = clean
    sent = a.upload(sample("Issue143.dcm"))
    started = time.monotonic()
    answer = a.post("/modalities/dead/store", json.dumps([sent["ID"]]))
    assert orthanc_error(answer) == (500, 9, 'DicomAssociation - connecting to AET "DEAD": '
                                      "TCP Initialization Error: Connection refused")
    assert 0.4 <= time.monotonic() - started < 5, "two retries 0.2 s apart, then the failure"

    port = free_port()
    assert a.put("/modalities/late", json.dumps(["LATE", "127.0.0.1", port])).status_code == 200
    job = a.post("/modalities/late/store", json.dumps({"Resources": [sent["ID"]],
                                                       "Asynchronous": True})).json()["ID"]
    wait_job(a, job, states=("Retry",))
    received: list[str] = []
    scp = AE(ae_title="LATE")
    scp.supported_contexts = AllStoragePresentationContexts
    server = scp.start_server(("127.0.0.1", port), block=False, evt_handlers=[
        (evt.EVT_C_STORE, lambda event: received.append(event.dataset.SOPInstanceUID) or 0)])
    try:
        assert wait_job(a, job)["State"] == "Success", "the job goes on once the peer is up"
    finally:
        server.shutdown()
        a.delete("/modalities/late")
    assert received == [pydicom.dcmread(sample("Issue143.dcm")).SOPInstanceUID]


def test_store_transcodes_to_what_the_scp_accepts(clean: tuple[Isengard, Isengard]) -> None:
    """An SCP accepting Implicit VR Little Endian only gets the files converted, a JPEG one
    decompressed (TranscodeDicomProtocol, as Orthanc)."""
    a, _ = clean
    plain = a.upload(sample("Issue143.dcm"))["ID"]
    jpeg = a.upload(sample("Formats/Jpeg.dcm"))["ID"]
    port = free_port()
    received: list[str] = []
    scp = AE(ae_title="IMPLICIT")
    for context in AllStoragePresentationContexts:
        scp.add_supported_context(context.abstract_syntax, ImplicitVRLittleEndian)
    server = scp.start_server(("127.0.0.1", port), block=False, evt_handlers=[
        (evt.EVT_C_STORE, lambda event: received.append(str(event.context.transfer_syntax)) or 0)])
    a.put("/modalities/implicit", json.dumps(["IMPLICIT", "127.0.0.1", port]))
    try:
        assert a.post("/modalities/implicit/store", json.dumps([plain])).status_code == 200
        assert received == [ImplicitVRLittleEndian]
        assert a.post("/modalities/implicit/store", json.dumps([jpeg])).status_code == 200
        assert received == [ImplicitVRLittleEndian, ImplicitVRLittleEndian]
    finally:
        server.shutdown()
        a.delete("/modalities/implicit")


def test_store_refused_association_fails_at_once(clean: tuple[Isengard, Isengard]) -> None:
    a, _ = clean
    sent = a.upload(sample("Issue143.dcm"))
    job = a.post("/modalities/wrongaet/store", json.dumps({"Resources": [sent["ID"]],
                                                           "Asynchronous": True})).json()["ID"]
    state = wait_job(a, job)
    assert (state["State"], state["ErrorCode"], state["ErrorDescription"]) == \
        ("Failure", 9, "Error in the network protocol")
    assert state["ErrorDetails"] == 'DicomAssociation - connecting to AET "WRONGAET": DUL Association Rejected'


def test_refused_c_store_answers_its_dimse_status(clean: tuple[Isengard, Isengard]) -> None:
    """Orthanc 1.12.10: ``ErrorPayload`` of a C-STORE failure, synchronous or in a job."""
    a, _ = clean
    sent = a.upload(sample("Issue143.dcm"))["ID"]
    port = free_port()
    scp = AE(ae_title="FULL")
    scp.supported_contexts = AllStoragePresentationContexts
    server = scp.start_server(("127.0.0.1", port), block=False,
                              evt_handlers=[(evt.EVT_C_STORE, lambda event: 0xA700)])
    a.put("/modalities/full", json.dumps(["FULL", "127.0.0.1", port]))
    payload = {"Type": "Dimse", "Content": {"DimseErrorStatus": 0xA700}}
    try:
        straight = a.post("/modalities/full/store-straight", sample("Issue143.dcm").read_bytes())
        assert orthanc_error(straight) == (500, 9, 'C-STORE SCU to AET "FULL" has failed with DIMSE status 0xA700')
        assert straight.json()["ErrorPayload"] == payload
        job = a.post("/modalities/full/store", json.dumps({"Resources": [sent], "Asynchronous": True})).json()
        assert wait_job(a, job["ID"])["ErrorPayload"] == payload
        assert a.post("/modalities/full/store", json.dumps([sent])).json()["ErrorPayload"] == payload
    finally:
        server.shutdown()
        a.delete("/modalities/full")


def test_store_straight(clean: tuple[Isengard, Isengard]) -> None:
    a, b = clean
    data = sample("PatientIdsCollision/Image1.dcm").read_bytes()
    original = pydicom.dcmread(sample("PatientIdsCollision/Image1.dcm"))
    assert a.post("/modalities/b/store-straight", data).json() == {
        "SOPClassUID": original.SOPClassUID, "SOPInstanceUID": original.SOPInstanceUID}
    assert a.json("/instances") == [] and len(b.json("/instances")) == 1


# -- C-FIND (queries) and C-MOVE -----------------------------------------------------------


def test_query_answers_and_retrieve(clean: tuple[Isengard, Isengard]) -> None:
    a, b = clean
    for name in ("Issue143.dcm", "PatientIdsCollision/Image1.dcm", "PatientIdsCollision/Image2.dcm"):
        b.upload(sample(name))
    query = a.post("/modalities/b/query", json.dumps({"Level": "Study", "Query": {"PatientID": "COMMON"}}))
    assert query.status_code == 200, query.text
    path = query.json()["Path"]
    assert query.json()["ID"] in a.json("/queries")
    assert a.json(path) == ["answers", "level", "modality", "query", "retrieve"]
    assert (a.get(f"{path}/level").text, a.get(f"{path}/modality").text) == ("Study", "b")
    assert a.json(f"{path}/query?simplify") == {"PatientID": "COMMON"}
    assert a.json(f"{path}/query") == {"0010,0020": {"Name": "PatientID", "Type": "String", "Value": "COMMON"}}
    assert a.json(f"{path}/answers") == ["0", "1"]
    answers = a.json(f"{path}/answers?expand&simplify")
    assert {(x["PatientID"], x["QueryRetrieveLevel"], x["RetrieveAETitle"], x["SpecificCharacterSet"])
            for x in answers} == {("COMMON", "STUDY", "ISENB", "ISO_IR 100")}
    assert set(answers[0]) == {"AccessionNumber", "PatientID", "QueryRetrieveLevel", "RetrieveAETitle",
                               "SpecificCharacterSet", "StudyInstanceUID"}
    assert a.json(f"{path}/answers/0") == ["content", "retrieve", "query-series", "query-instances"]
    assert a.json(f"{path}/answers/0/content?simplify") == answers[0]
    assert orthanc_error(a.post(f"{path}/answers/5/retrieve", "ISENA"))[:2] == (400, 3)

    series = a.post(f"{path}/answers/0/query-series", "{}").json()["Path"]
    assert a.get(f"{series}/level").text == "Series"
    assert [x["StudyInstanceUID"] for x in a.json(f"{series}/answers?expand&simplify")] == \
        [answers[0]["StudyInstanceUID"]]

    retrieved = a.post(f"{path}/answers/0/retrieve", "ISENA")
    assert retrieved.status_code == 200, retrieved.text
    kept = {"0008,0050": answers[0]["AccessionNumber"], "0008,0052": "STUDY", "0010,0020": "COMMON",
            "0020,000d": answers[0]["StudyInstanceUID"]}
    # ReceivedInstancesIds stays empty: B (pynetdicom's C-MOVE SCP) names itself as the move originator
    assert retrieved.json() == {"Description": "REST API", "LocalAet": "ISENA", "RemoteAet": "ISENB",
                                "TargetAet": "ISENA", "Query": [kept],
                                "Details": [{"DimseErrorStatus": 0, "Query": kept, "ReceivedInstancesIds": []}]}
    assert len(a.json("/instances")) == 1
    job = a.post(f"{path}/retrieve", json.dumps({"TargetAet": "ISENA", "Asynchronous": True})).json()
    assert wait_job(a, job["ID"])["Type"] == "DicomMoveScu"
    assert len(a.json("/instances")) == 2
    assert (a.delete(path).status_code, a.delete(path).text) == (200, "")
    assert a.get(path).status_code == 404


def test_query_failures(pair: tuple[Isengard, Isengard]) -> None:
    a, _ = pair
    assert orthanc_error(a.post("/modalities/b/query", "{}"))[:2] == (400, 15)
    assert orthanc_error(a.post("/modalities/b/query", '{"Level": "Nope"}'))[:2] == (400, 3)
    assert orthanc_error(a.post("/modalities/b/query", '{"Level": "Study", "Query": {"NotATag": ""}}')) == \
        (400, 15, "Associative array of DICOM tags to strings expected in field: Query")
    assert orthanc_error(a.post("/modalities/dead/query", '{"Level": "Study"}')) == (
        500, 9, 'DicomAssociation - connecting to AET "DEAD": TCP Initialization Error: Connection refused')
    bad = a.post("/modalities/b/query", json.dumps({"Level": "Study", "Query": {"StudyDate": "2019*"}}))
    assert orthanc_error(bad) == (422, 9, 'C-FIND SCU to AET "ISENB" has failed with DIMSE status 0xC000 '
                                   "(unable to process - invalid query ?)")


def test_move_route(clean: tuple[Isengard, Isengard]) -> None:
    """A DicomMoveScu job, synchronous by default (Orthanc 1.11.1): its content is the answer; a
    failure answers the DIMSE status of each C-MOVE as its ErrorPayload (Orthanc 1.12.10)."""
    a, b = clean
    b.upload(sample("Issue143.dcm"))
    moved = a.post("/modalities/b/move", json.dumps({"Level": "Patient", "Resources": [{"PatientID": "PM5644"}]}))
    query = {"0008,0052": "PATIENT", "0010,0020": "PM5644"}
    assert (moved.status_code, moved.json()) == (200, {
        "Description": "REST API", "LocalAet": "ISENA", "RemoteAet": "ISENB", "TargetAet": "ISENA",
        "Query": [query], "Details": [{"DimseErrorStatus": 0, "Query": query, "ReceivedInstancesIds": []}]})
    assert len(a.json("/instances")) == 1
    missing = a.post("/modalities/b/move", json.dumps({"Level": "Study",
                                                       "Resources": [{"StudyInstanceUID": "9.9.9"}]}))
    assert missing.status_code == 500
    error = missing.json()
    assert error["Details"].startswith('C-MOVE SCU to AET "ISENB" has failed with DIMSE status 0x')
    status = int(error["Details"].split("0x")[1][:4], 16)
    assert error["ErrorPayload"] == {"Type": "RetrieveJob", "Content": [{
        "DimseErrorStatus": status, "Query": {"0008,0052": "STUDY", "0020,000d": "9.9.9"},
        "ReceivedInstancesIds": []}]}
    assert orthanc_error(a.post("/modalities/b/move", "{}")) == \
        (400, 15, "Must provide a JSON body containing fields Resources and Level")
    assert "ErrorPayload" not in a.post("/modalities/b/move", "{}").json()


def test_legacy_find_routes(clean: tuple[Isengard, Isengard]) -> None:
    a, b = clean
    b.upload(sample("Issue143.dcm"))
    patients = a.post("/modalities/b/find-patient", json.dumps({"PatientName": "Test*"})).json()
    assert [(p["PatientID"], p["PatientName"]) for p in patients] == [("PM5644", "Test^Pattern")]
    studies = a.post("/modalities/b/find-study", json.dumps({"PatientID": "PM5644"})).json()
    assert [s["StudyDate"] for s in studies] == ["20190320"]
    assert a.post("/modalities/b/find-study", "{}").status_code == 400
    tree = a.post("/modalities/b/find", "{}").json()
    assert [len(p["Studies"]) for p in tree] == [1] and tree[0]["Studies"][0]["Series"][0]["Modality"] == "OT"


