"""Small helpers several test files share: waiting for a job, reading an Orthanc error, building a C-FIND query,
DICOM files at the edges of the main tags' reading."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import time
from collections.abc import Collection
from pathlib import Path
from typing import Any

import pydicom
import requests
from pydicom import config
from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian, generate_uid

from conftest import _STARTED, REPO, Isengard, Server


def wait_job(server: Server, job: str, states: Collection[str] = ("Success", "Failure"),
             timeout: float = 60) -> dict:
    """The job's document once its State is one of ``states``; polled often, so that a short state
    (Running, Paused) is still seen."""
    deadline = time.monotonic() + timeout
    while True:
        document = server.json(f"/jobs/{job}")
        if document["State"] in states:
            return document
        if time.monotonic() > deadline:
            raise AssertionError(f"job {job} never reached {states}: {document}")
        time.sleep(0.01)


def orthanc_error(answer: requests.Response) -> tuple[int, int, str]:
    """(HTTP status, OrthancStatus, Details) of an error answer, Details "" when absent."""
    body = answer.json()
    return answer.status_code, body["OrthancStatus"], body.get("Details", "")


def query_identifier(keys: dict) -> Dataset:
    """A query dataset; wildcards and ranges are not valid values, so pydicom must not check them."""
    identifier = Dataset()
    for keyword, value in keys.items():
        tag = tag_for_keyword(keyword)
        vr = dictionary_VR(tag)
        identifier.add(DataElement(tag, vr, None if value == "" and vr in ("US", "UL", "SS", "SL") else value,
                                   validation_mode=config.IGNORE))
    return identifier


class IsengardAtLevel(Isengard):
    """Isengard reporting another Orthanc release and ``ApiVersion`` (``ISENGARD_ORTHANC_LEVEL``,
    see server/__init__.py), to test the behaviour of another API level in a real process."""

    def __init__(self, workdir: Path, version: str, api_version: int, **options: Any) -> None:
        super().__init__(workdir, **options)
        self.level = (version, api_version)

    def start(self, *extra_args: str) -> IsengardAtLevel:
        version, api_version = self.level
        log = open(self.log_path, "ab")  # noqa: SIM115 - the process keeps it
        self.process = subprocess.Popen([sys.executable, "-m", "server", *extra_args, str(self.config_path)],
                                        cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
                                        env={**os.environ, "ISENGARD_ORTHANC_LEVEL": f"{version}:{api_version}"})
        _STARTED.append(self.process)
        self.wait_ready(self.process)
        return self


def ct_slice(study: str, series: str, number: int, pixels: int = 16, patient: str = "TRANSFERS") -> bytes:
    """A generated CT slice of ``pixels`` x ``pixels`` 16-bit pixels, each file its own."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID, ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPClassUID, ds.file_meta.MediaStorageSOPInstanceUID
    ds.PatientID, ds.PatientName, ds.Modality = patient, "Transfers^Test", "CT"
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.InstanceNumber = study, series, number
    ds.Rows = ds.Columns = pixels
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.PixelData = bytes((number + i) % 251 for i in range(pixels * pixels * 2))
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def implicit_vr_variant(data: bytes) -> bytes | None:
    """The file rewritten in implicit VR little endian, if pydicom can."""
    try:
        ds = pydicom.dcmread(io.BytesIO(data))
        if ds.file_meta.TransferSyntaxUID.is_compressed:
            return None
        ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
        out = io.BytesIO()
        ds.save_as(out, implicit_vr=True, little_endian=True, enforce_file_format=True)
    except Exception:  # noqa: BLE001 - a file pydicom cannot write is left out
        return None
    return out.getvalue()


def crafted_main_tags() -> bytes:
    """Main tags at the edges: too long (over Orthanc's 256 bytes, in characters or in
    UTF-8 bytes), empty, padded, a UI with its NUL, a VR not a string."""
    ds = pydicom.Dataset()
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.PatientName, ds.PatientID = "Ünïcode^Ñame", " padded  "
    ds.StudyDescription = "x" * 257
    ds.SeriesDescription = "é" * 200  # 400 bytes in UTF-8
    ds.InstitutionName = ""
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID = "1.2.3", "1.2.3.4", "1.2.3.4.5"
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    ds.add_new(0x00200013, "UN", b"12")  # InstanceNumber, as an unknown VR
    ds.file_meta = pydicom.dataset.FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID, ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPClassUID, "1.2.3.4.5"
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()
