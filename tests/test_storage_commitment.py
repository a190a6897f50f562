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


def test_isengard_scp_against_a_pynetdicom_modality(make_isengard) -> None:
    listen_port = free_port()
    server = make_isengard(DicomModalities={"modality": _modality("MODALITY", listen_port)})
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
