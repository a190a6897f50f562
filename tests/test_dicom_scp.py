"""The DICOM server: C-ECHO and C-STORE with dcmtk and pynetdicom, and its authorization rules."""

from __future__ import annotations

import io
import subprocess

import pydicom
import pytest
from pynetdicom import AE
from pynetdicom.sop_class import Verification

from conftest import Isengard, dcmtk, dcmtk_env, sample

UNCOMPRESSED = [sample("Issue143.dcm"), sample("PatientIdsCollision/Image1.dcm"),
                sample("PatientIdsCollision/Image2.dcm")]


def _run(*command: str) -> subprocess.CompletedProcess:
    return subprocess.run(command, capture_output=True, text=True, timeout=60, env=dcmtk_env())


@pytest.fixture
def server(isengard: Isengard) -> Isengard:
    isengard.clear()
    return isengard


def test_echoscu(server: Isengard) -> None:
    result = _run(dcmtk("echoscu"), "-aec", server.aet, "127.0.0.1", str(server.dicom_port))
    assert result.returncode == 0, result.stderr


def test_storescu_stores_with_dicom_origin(server: Isengard) -> None:
    result = _run(dcmtk("storescu"), "-aet", "MYSCU", "-aec", server.aet, "127.0.0.1",
                  str(server.dicom_port), *map(str, UNCOMPRESSED))
    assert result.returncode == 0, result.stderr
    instances = server.json("/instances")
    assert len(instances) == 3
    metadata = server.json(f"/instances/{instances[0]}/metadata?expand")
    assert metadata["Origin"] == "DicomProtocol"
    assert metadata["RemoteAET"] == "MYSCU"
    assert metadata["CalledAET"] == server.aet
    assert metadata["RemoteIP"] == "127.0.0.1"
    stored = {server.get(f"/instances/{i}/file").content for i in instances}
    assert {pydicom.dcmread(p).SOPInstanceUID for p in UNCOMPRESSED} == {
        pydicom.dcmread(io.BytesIO(b)).SOPInstanceUID for b in stored}


def test_storescu_compressed_transfer_syntax(server: Isengard) -> None:
    jpeg = sample("Formats/Jpeg.dcm")
    result = _run(dcmtk("storescu"), "-xs", "-aec", server.aet, "127.0.0.1",
                  str(server.dicom_port), str(jpeg))
    assert result.returncode == 0, result.stderr
    instance = server.json("/instances")[0]
    assert server.get(f"/instances/{instance}/metadata/TransferSyntax").text == \
        "1.2.840.10008.1.2.4.70"
    stored = pydicom.dcmread(io.BytesIO(server.get(f"/instances/{instance}/file").content))
    original = pydicom.dcmread(jpeg)
    assert stored.PixelData == original.PixelData
    assert stored.SOPInstanceUID == original.SOPInstanceUID


def test_pynetdicom_store_on_one_association(server: Isengard) -> None:
    datasets = [pydicom.dcmread(p) for p in UNCOMPRESSED]
    ae = AE(ae_title="PYSCU")
    for uid in {ds.SOPClassUID for ds in datasets}:
        ae.add_requested_context(uid)
    ae.add_requested_context(Verification)
    assoc = ae.associate("127.0.0.1", server.dicom_port, ae_title=server.aet)
    assert assoc.is_established
    statuses = [assoc.send_c_store(ds).Status for ds in datasets]
    assert assoc.send_c_echo().Status == 0
    assoc.release()
    assert statuses and all(s == 0 for s in statuses)
    assert len(server.json("/instances")) == len(statuses)


def test_called_aet_checked_when_asked(make_isengard) -> None:
    server = make_isengard(DicomCheckCalledAet=True)
    wrong = _run(dcmtk("echoscu"), "-aec", "WRONGAET", "127.0.0.1", str(server.dicom_port))
    assert wrong.returncode != 0
    right = _run(dcmtk("echoscu"), "-aec", server.aet, "127.0.0.1", str(server.dicom_port))
    assert right.returncode == 0, right.stderr


def test_called_aet_not_checked_by_default(server: Isengard) -> None:
    result = _run(dcmtk("echoscu"), "-aec", "WRONGAET", "127.0.0.1", str(server.dicom_port))
    assert result.returncode == 0, result.stderr


def test_store_permissions_per_modality(make_isengard) -> None:
    server = make_isengard(
        DicomAlwaysAllowStore=False, DicomAlwaysAllowEcho=False,
        DicomModalities={"allowed": ["GOODSCU", "127.0.0.1", 104],
                         "readonly": {"AET": "NOSTORE", "Host": "127.0.0.1", "Port": 105,
                                      "AllowStore": False}})

    def store(aet: str) -> subprocess.CompletedProcess:
        return _run(dcmtk("storescu"), "-aet", aet, "-aec", server.aet, "127.0.0.1",
                    str(server.dicom_port), str(UNCOMPRESSED[0]))

    assert store("RANDOMSCU").returncode != 0
    assert store("NOSTORE").returncode != 0
    assert server.json("/instances") == []
    assert store("GOODSCU").returncode == 0
    assert len(server.json("/instances")) == 1
    echo = _run(dcmtk("echoscu"), "-aet", "NOSTORE", "-aec", server.aet, "127.0.0.1",
                str(server.dicom_port))
    assert echo.returncode == 0, echo.stderr


def test_a_c_store_cut_short_leaves_no_file(make_isengard, tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A dataset past the in-memory limit goes to a temporary file as it arrives; an abort
    before its last fragment removes that file with the association (it used to stay)."""
    import time
    from io import BytesIO

    from pydicom.dataset import Dataset
    from pynetdicom.dimse_messages import C_STORE_RQ
    from pynetdicom.dimse_primitives import C_STORE
    from pynetdicom.dsutils import encode
    from pynetdicom.sop_class import CTImageStorage

    spool = tmp_path / "tmp"
    spool.mkdir()
    monkeypatch.setenv("TMPDIR", str(spool))
    server = make_isengard()
    ds = Dataset()
    ds.SOPClassUID, ds.SOPInstanceUID, ds.PatientID = CTImageStorage, "1.2.3.4.5.6.7", "CUT"
    ds.StudyInstanceUID, ds.SeriesInstanceUID = "1.2.3.4.5", "1.2.3.4.5.6"
    ds.add_new(0x00091010, "OB", bytes(12 * 1024 * 1024))
    request = C_STORE()
    request.MessageID, request.AffectedSOPClassUID, request.AffectedSOPInstanceUID = 1, CTImageStorage, "1.2.3.4.5.6.7"
    request.Priority, request.DataSet = 2, BytesIO(encode(ds, False, True))
    ae = AE(ae_title="CUTTER")
    ae.add_requested_context(CTImageStorage, "1.2.840.10008.1.2.1")
    assoc = ae.associate("127.0.0.1", server.dicom_port, ae_title=server.aet)
    assert assoc.is_established
    message = C_STORE_RQ()
    message.primitive_to_message(request)
    fragments = list(message.encode_msg(assoc.accepted_contexts[0].context_id, 16384))
    for pdata in fragments[:len(fragments) * 3 // 4]:  # 9 MB of 12: past the in-memory limit
        assoc.dul.send_pdu(pdata)
    deadline = time.monotonic() + 10
    while not list(spool.glob("*.dcm")) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert list(spool.glob("*.dcm")), "the dataset spilled to a file"
    assoc.abort()
    while list(spool.glob("*.dcm")) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not list(spool.glob("*.dcm"))
    assert server.json("/instances") == []
