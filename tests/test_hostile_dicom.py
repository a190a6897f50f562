"""DICOM server robustness: many associations, idle ones timed out, C-STORE datasets that match their request."""

from __future__ import annotations

import time
from pathlib import Path

import pydicom
import pytest
from pydicom.dataset import FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_file_meta_info
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian, generate_uid
from pynetdicom import AE, _config
from pynetdicom.dsutils import encode
from pynetdicom.sop_class import Verification

from conftest import Isengard, sample

SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"
MR_IMAGE = "1.2.840.10008.5.1.4.1.1.4"
ULTRASOUND_RETIRED = "1.2.840.10008.5.1.4.1.1.6"


@pytest.fixture
def server(make_isengard, monkeypatch: pytest.MonkeyPatch) -> Isengard:
    # pynetdicom then sends a file's dataset bytes as they are, with the request its meta names
    monkeypatch.setattr(_config, "STORE_SEND_CHUNKED_DATASET", True)
    return _dicom_ready(make_isengard(DicomAlwaysAllowStore=True, DicomAlwaysAllowEcho=True))


def _dicom_ready(server: Isengard) -> Isengard:
    """The DICOM port opens a little after the HTTP one."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        assoc = _associate(server, [(Verification, ImplicitVRLittleEndian)])
        if assoc.is_established:
            assoc.release()
            return server
        time.sleep(0.1)
    raise AssertionError("the DICOM server did not start")


def _associate(server: Isengard, contexts: list[tuple[str, str]]):  # noqa: ANN202 - pynetdicom's Association
    ae = AE(ae_title="HOSTILE")
    ae.acse_timeout = ae.dimse_timeout = 10
    ae.network_timeout = 120
    for abstract, syntax in contexts:
        ae.add_requested_context(abstract, syntax)
    return ae.associate("127.0.0.1", server.dicom_port, ae_title=server.aet)


def _raw_store(assoc, tmp_path: Path, sop_class: str, sop_instance: str, syntax: str,  # noqa: ANN001
               data: bytes) -> int:
    """A C-STORE whose request (from the file meta) and dataset bytes are set apart."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = sop_instance
    meta.TransferSyntaxUID = syntax
    buffer = DicomBytesIO()
    buffer.write(bytes(128) + b"DICM")
    write_file_meta_info(buffer, meta)
    path = tmp_path / f"{generate_uid()}.dcm"
    path.write_bytes(buffer.getvalue() + data)
    return int(assoc.send_c_store(path).Status)


def _dataset(sop_class: str = SECONDARY_CAPTURE) -> pydicom.Dataset:
    ds = pydicom.dcmread(sample("ColorTestMalaterre.dcm"))
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = generate_uid()
    return ds


def test_fifty_simultaneous_associations_are_accepted(server: Isengard) -> None:
    associations = [_associate(server, [(Verification, ImplicitVRLittleEndian)]) for _ in range(60)]
    try:
        assert all(a.is_established for a in associations)
        assert all(a.send_c_echo().Status == 0 for a in associations[::10])
    finally:
        for assoc in associations:
            assoc.release()


def test_idle_associations_time_out_and_free_their_place(make_isengard) -> None:
    server = _dicom_ready(make_isengard(DicomAlwaysAllowEcho=True, DicomMaximumAssociations=3,
                                        DicomScpTimeout=2))
    idle = [_associate(server, [(Verification, ImplicitVRLittleEndian)]) for _ in range(3)]
    assert all(a.is_established for a in idle)
    assert not _associate(server, [(Verification, ImplicitVRLittleEndian)]).is_established
    time.sleep(3.5)
    late = _associate(server, [(Verification, ImplicitVRLittleEndian)])
    assert late.is_established
    late.release()


def test_dataset_of_another_sop_class_than_its_context_is_refused(server: Isengard, tmp_path: Path) -> None:
    assoc = _associate(server, [(MR_IMAGE, ExplicitVRLittleEndian), (SECONDARY_CAPTURE, ExplicitVRLittleEndian)])
    ds = _dataset()
    status = _raw_store(assoc, tmp_path, MR_IMAGE, ds.SOPInstanceUID, ExplicitVRLittleEndian, encode(ds, False, True))
    assoc.release()
    assert status == 0xA900
    assert server.json("/instances") == []


def test_dataset_of_another_sop_instance_than_its_request_is_refused(server: Isengard, tmp_path: Path) -> None:
    assoc = _associate(server, [(SECONDARY_CAPTURE, ExplicitVRLittleEndian)])
    ds = _dataset()
    status = _raw_store(assoc, tmp_path, SECONDARY_CAPTURE, generate_uid(), ExplicitVRLittleEndian,
                        encode(ds, False, True))
    assoc.release()
    assert status == 0xA900
    assert server.json("/instances") == []


def test_implicit_vr_bytes_on_an_explicit_vr_context_are_refused(server: Isengard, tmp_path: Path) -> None:
    assoc = _associate(server, [(SECONDARY_CAPTURE, ExplicitVRLittleEndian)])
    ds = _dataset()
    status = _raw_store(assoc, tmp_path, SECONDARY_CAPTURE, ds.SOPInstanceUID, ExplicitVRLittleEndian,
                        encode(ds, True, True))
    if assoc.is_established:
        assoc.release()
    assert status == 0xC000
    assert server.json("/instances") == []


def test_consistent_store_still_succeeds(server: Isengard, tmp_path: Path) -> None:
    assoc = _associate(server, [(SECONDARY_CAPTURE, ExplicitVRLittleEndian)])
    ds = _dataset()
    status = _raw_store(assoc, tmp_path, SECONDARY_CAPTURE, ds.SOPInstanceUID, ExplicitVRLittleEndian,
                        encode(ds, False, True))
    assoc.release()
    assert status == 0x0000
    assert len(server.json("/instances")) == 1


def test_retired_storage_sop_class_is_accepted(server: Isengard, tmp_path: Path) -> None:
    assoc = _associate(server, [(ULTRASOUND_RETIRED, ExplicitVRLittleEndian)])
    assert assoc.is_established and assoc.accepted_contexts
    ds = _dataset(ULTRASOUND_RETIRED)
    status = _raw_store(assoc, tmp_path, ULTRASOUND_RETIRED, ds.SOPInstanceUID, ExplicitVRLittleEndian,
                        encode(ds, False, True))
    assoc.release()
    assert status == 0x0000
    stored = server.json("/instances?expand")
    assert [i["MainDicomTags"]["SOPInstanceUID"] for i in stored] == [ds.SOPInstanceUID]
