"""Storage commitment (Push Model): Isengard as SCU and SCP, with pynetdicom and the real Orthanc."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pydicom
import pytest
from pydicom.dataset import Dataset
from pynetdicom import AE, build_role, evt
from pynetdicom.sop_class import StorageCommitmentPushModel

from conftest import Isengard, Orthanc, free_port, sample

PRESENT = sample("Formats/Jpeg.dcm")
MR = "1.2.840.10008.5.1.4.1.1.4"
CT = "1.2.840.10008.5.1.4.1.1.2"


def _uids(path: Path) -> tuple[str, str]:
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    return str(ds.SOPClassUID), str(ds.SOPInstanceUID)


def _wait_report(server: Isengard, uid: str, timeout: float = 20) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        report = server.json(f"/storage-commitment/{uid}")
        if report["Status"] != "Pending":
            return report
        time.sleep(0.1)
    raise AssertionError(f"no report for {uid}")


def _modality(aet: str, port: int) -> dict:
    return {"AET": aet, "Host": "127.0.0.1", "Port": port}


@pytest.fixture
def pair(tmp_path: Path):
    """Two Isengards that know each other: A (the SCU) and B (the SCP)."""
    a_port, b_port = free_port(), free_port()
    a = Isengard(tmp_path / "a", DicomAet="ISENA", DicomPort=a_port,
                 DicomModalities={"b": _modality("ISENB", b_port)}).start()
    b = Isengard(tmp_path / "b", DicomAet="ISENB", DicomPort=b_port,
                 DicomModalities={"a": _modality("ISENA", a_port)}).start()
    yield a, b
    a.stop()
    b.stop()


def test_isengard_scu_and_scp(pair) -> None:
    a, b = pair
    b.upload(PRESENT)
    a.upload(PRESENT)
    present_class, present_uid = _uids(PRESENT)
    answer = a.post("/modalities/b/storage-commitment", json={"DicomInstances": [
        [present_class, present_uid],
        {"SOPClassUID": MR, "SOPInstanceUID": "1.2.3.4.5.405"},
        [CT, present_uid]]})
    assert answer.status_code == 200, answer.text
    uid = answer.json()["ID"]
    assert uid.startswith("2.25.") and answer.json()["Path"] == f"/storage-commitment/{uid}"
    report = _wait_report(a, uid)
    assert report["Status"] == "Failure" and report["RemoteAET"] == "ISENB"
    assert report["Success"] == [{"SOPClassUID": present_class, "SOPInstanceUID": present_uid}]
    reasons = {f["SOPInstanceUID"] + f["SOPClassUID"]: (f["FailureReason"], f["Description"])
               for f in report["Failures"]}
    assert reasons["1.2.3.4.5.405" + MR] == (
        274, "One or more of the elements in the Referenced SOP Instance Sequence was not available")
    assert reasons[present_uid + CT][0] == 281
    jobs = b.json("/jobs?expand")
    assert [j["Type"] for j in jobs] == ["StorageCommitmentScp"]
    assert jobs[0]["Content"] == {"CalledAet": "ISENB", "Description": "", "RemoteAet": "ISENA",
                                  "TransactionUid": uid}
    refused = a.post(f"/storage-commitment/{uid}/remove")
    assert refused.status_code == 500 and refused.json()["OrthancStatus"] == 6


def test_remove_after_success_and_reports_survive_restart(pair) -> None:
    a, b = pair
    b.upload(PRESENT)
    local = a.upload(PRESENT)
    answer = a.post("/modalities/b/storage-commitment", json={"Resources": [local["ParentStudy"]]})
    uid = answer.json()["ID"]
    assert _wait_report(a, uid)["Status"] == "Success"
    a.stop()
    a.start()
    assert a.json(f"/storage-commitment/{uid}")["Status"] == "Success"
    assert a.post(f"/storage-commitment/{uid}/remove").json() == {}
    assert a.json("/instances") == []
    missing = a.get("/storage-commitment/1.2.3")
    assert missing.status_code == 404
    assert missing.json()["Details"] == "No storage commitment transaction with UID: 1.2.3"


def test_empty_request_is_refused(pair) -> None:
    a, _ = pair
    answer = a.post("/modalities/b/storage-commitment", json={})
    assert answer.status_code == 400
    assert "Resources" in answer.json()["Details"]


@pytest.mark.parametrize("declared", ["in the configuration", "over REST, in the database"])
def test_isengard_scp_against_a_pynetdicom_modality(make_isengard, declared: str) -> None:
    listen_port = free_port()
    if declared == "in the configuration":
        server = make_isengard(DicomModalities={"modality": _modality("MODALITY", listen_port)})
    else:
        server = make_isengard(DicomModalitiesInDatabase=True)
        assert server.put("/modalities/modality", json=_modality("MODALITY", listen_port)).status_code == 200
    server.upload(PRESENT)
    present_class, present_uid = _uids(PRESENT)
    received: list[tuple[int, Dataset]] = []
    done = threading.Event()

    def on_report(event: evt.Event) -> tuple[int, None]:
        received.append((event.request.EventTypeID, event.event_information))
        done.set()
        return 0x0000, None

    modality = AE(ae_title="MODALITY")
    modality.add_supported_context(StorageCommitmentPushModel, scu_role=True, scp_role=True)
    modality.add_requested_context(StorageCommitmentPushModel)
    listener = modality.start_server(("127.0.0.1", listen_port), block=False,
                                     evt_handlers=[(evt.EVT_N_EVENT_REPORT, on_report)])
    try:
        request = Dataset()
        request.TransactionUID = "1.2.3.4.999"
        item = Dataset()
        item.ReferencedSOPClassUID = present_class
        item.ReferencedSOPInstanceUID = present_uid
        missing = Dataset()
        missing.ReferencedSOPClassUID = MR
        missing.ReferencedSOPInstanceUID = "1.2.3.4.5.404"
        request.ReferencedSOPSequence = [item, missing]
        assoc = modality.associate("127.0.0.1", server.dicom_port, ae_title=server.aet,
                                   ext_neg=[build_role(StorageCommitmentPushModel, scu_role=True)])
        assert assoc.is_established
        status, _ = assoc.send_n_action(request, 1, StorageCommitmentPushModel, "1.2.840.10008.1.20.1.1")
        assoc.release()
        assert status.Status == 0
        assert done.wait(20)
    finally:
        listener.shutdown()
    event_type, report = received[0]
    assert event_type == 2
    assert report.TransactionUID == "1.2.3.4.999"
    assert [i.ReferencedSOPInstanceUID for i in report.ReferencedSOPSequence] == [present_uid]
    assert [(i.ReferencedSOPInstanceUID, i.FailureReason) for i in report.FailedSOPSequence] == [
        ("1.2.3.4.5.404", 0x0112)]


def test_isengard_scu_against_the_real_orthanc(tmp_path: Path) -> None:
    isengard_port = free_port()
    orthanc = Orthanc(tmp_path / "orthanc", DicomModalities={"isengard": ["ISENGARD", "127.0.0.1", isengard_port]})
    isengard = Isengard(tmp_path / "isengard", DicomPort=isengard_port,
                        DicomModalities={"orthanc": _modality("ORTHANCREF", orthanc.dicom_port)})
    orthanc.start()
    isengard.start()
    try:
        orthanc.upload(PRESENT)
        present_class, present_uid = _uids(PRESENT)
        answer = isengard.post("/modalities/orthanc/storage-commitment", json={"DicomInstances": [
            [present_class, present_uid], [MR, "1.2.3.4.5.405"]]})
        assert answer.status_code == 200, answer.text
        report = _wait_report(isengard, answer.json()["ID"])
        assert report["RemoteAET"] == "ORTHANCREF"
        assert report["Success"] == [{"SOPClassUID": present_class, "SOPInstanceUID": present_uid}]
        assert [(f["SOPInstanceUID"], f["FailureReason"]) for f in report["Failures"]] == [
            ("1.2.3.4.5.405", 274)]
    finally:
        isengard.stop()
        orthanc.stop()


LUA_HOOK = Path(__file__).parent / "lua" / "storage_commitment.lua"


@pytest.fixture
def scripted_pair(tmp_path: Path):
    """A (SCU) and B (SCP whose lookup is the Lua hook of tests/lua/storage_commitment.lua)."""
    a_port, b_port = free_port(), free_port()
    a = Isengard(tmp_path / "a", DicomAet="ISENA", DicomPort=a_port,
                 DicomModalities={"b": _modality("ISENB", b_port)}).start()
    b = Isengard(tmp_path / "b", DicomAet="ISENB", DicomPort=b_port, LuaScripts=[str(LUA_HOOK)],
                 DicomModalities={"a": _modality("ISENA", a_port)}).start()
    yield a, b
    a.stop()
    b.stop()


def _lua_lines(server: Isengard, word: str) -> list[str]:
    return [line.split("Lua says: ", 1)[1] for line in server.log().splitlines()
            if f"Lua says: {word}" in line]


def test_lua_hook_decides_every_reason(scripted_pair) -> None:
    a, b = scripted_pair
    uids = [f"1.2.3.4.{n}" for n in (0, 1, 2, 3, 4, 5, 6, 97, 98, 99)]
    answer = a.post("/modalities/b/storage-commitment", json={"DicomInstances": [[MR, u] for u in uids]})
    report = _wait_report(a, answer.json()["ID"])
    assert report["Success"] == [{"SOPClassUID": MR, "SOPInstanceUID": "1.2.3.4.0"}]
    assert {f["SOPInstanceUID"]: f["FailureReason"] for f in report["Failures"]} == {
        "1.2.3.4.1": 0x0110, "1.2.3.4.2": 0x0112, "1.2.3.4.3": 0x0213, "1.2.3.4.4": 0x0122,
        "1.2.3.4.5": 0x0119, "1.2.3.4.6": 0x0131, "1.2.3.4.97": 0x0119, "1.2.3.4.98": 0x0110,
        "1.2.3.4.99": 0x0110}
    job = b.json("/jobs")[0]
    assert _lua_lines(b, "factory") == ["factory 10 ISENA ISENB"]
    assert _lua_lines(b, "destructor") == [f"destructor 10 {job}"]


def test_lua_factory_returning_nil_keeps_the_default_lookup(scripted_pair) -> None:
    a, b = scripted_pair
    b.upload(PRESENT)
    present_class, present_uid = _uids(PRESENT)
    answer = a.post("/modalities/b/storage-commitment", json={"DicomInstances": [
        [MR, "1.2.3.4.77"], [present_class, present_uid]]})
    report = _wait_report(a, answer.json()["ID"])
    assert report["Success"] == [{"SOPClassUID": present_class, "SOPInstanceUID": present_uid}]
    assert [f["FailureReason"] for f in report["Failures"]] == [0x0112]
    assert _lua_lines(b, "factory") == [] and _lua_lines(b, "destructor") == []


def test_canceled_job_calls_the_destructor_once_and_sends_no_report(scripted_pair) -> None:
    a, b = scripted_pair
    answer = a.post("/modalities/b/storage-commitment",
                    json={"DicomInstances": [[MR, "1.2.3.4.50"]] * 20})
    deadline = time.monotonic() + 20
    while not b.json("/jobs") and time.monotonic() < deadline:
        time.sleep(0.05)
    job = b.json("/jobs")[0]
    assert b.post(f"/jobs/{job}/cancel").status_code == 200
    while b.json(f"/jobs/{job}")["State"] != "Failure" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert b.json(f"/jobs/{job}")["ErrorCode"] == 37
    time.sleep(0.5)
    assert _lua_lines(b, "destructor") == [f"destructor 20 {job}"]
    assert a.json(f"/storage-commitment/{answer.json()['ID']}")["Status"] == "Pending"


def test_shipped_script_commits_only_what_the_backup_peer_also_has(tmp_path: Path) -> None:
    a_port, b_port = free_port(), free_port()
    backup = Isengard(tmp_path / "backup").start()
    a = Isengard(tmp_path / "a", DicomAet="ISENA", DicomPort=a_port,
                 DicomModalities={"b": _modality("ISENB", b_port)}).start()
    b = Isengard(tmp_path / "b", DicomAet="ISENB", DicomPort=b_port,
                 LuaScripts=[str(Path(__file__).parent.parent / "scripts" / "storage-commitment.lua")],
                 OrthancPeers={"backup": [backup.url]},
                 DicomModalities={"a": _modality("ISENA", a_port)}).start()
    try:
        both, only_here = PRESENT, sample("Formats/JpegLossless.dcm")
        b.upload(both)
        b.upload(only_here)
        backup.upload(both)
        pairs = [list(_uids(both)), list(_uids(only_here)), [MR, "1.2.3.4.5.405"]]
        answer = a.post("/modalities/b/storage-commitment", json={"DicomInstances": pairs})
        report = _wait_report(a, answer.json()["ID"])
        assert report["Success"] == [{"SOPClassUID": pairs[0][0], "SOPInstanceUID": pairs[0][1]}]
        assert {f["SOPInstanceUID"]: f["FailureReason"] for f in report["Failures"]} == {
            pairs[1][1]: 0x0213, "1.2.3.4.5.405": 0x0112}
    finally:
        for server in (a, b, backup):
            server.stop()
