"""The ``Dictionary`` option: custom and private tags named in /tags, usable in requests, checked at start-up."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ImplicitVRLittleEndian

from conftest import REPO, Isengard, Orthanc, free_port

DICTIONARY = {
    "0405,0010": ["LO", "PrivateCreatorForMyCompany", 1, 1, "My Company"],
    "0405,1001": ["ST", "MyPrivateXMLTag", 1, 1, "My Company"],
    "0405,1002": ["US", "MyPrivateUS", 1, 2, "My Company"],
    "0010,0abc": ["LO", "MyPublicThing"],
}
#: Orthanc 1.10.1 refuses to start on a two-item entry (it reads a minimum multiplicity of 0).
ORTHANC_DICTIONARY = {**DICTIONARY, "0010,0abc": ["LO", "MyPublicThing", 1, 1]}


def _implicit_vr_file() -> bytes:
    """A file whose private elements have no VR on disk: only the dictionary can type them."""
    ds = Dataset()
    ds.PatientID = "DICT"
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID = "1.2.3", "1.2.3.4", "1.2.3.4.5"
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    ds.add_new(0x00100ABC, "LO", "public custom")
    ds.add_new(0x04050010, "LO", "My Company")
    ds.add_new(0x04051001, "ST", "<xml/>")
    ds.add_new(0x04051002, "US", 7)
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True, implicit_vr=True, little_endian=True)
    return out.getvalue()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    isengard = Isengard(tmp_path_factory.mktemp("dictionary"), Dictionary=DICTIONARY).start("--verbose")
    yield isengard
    isengard.stop()


def test_entries_are_logged_as_orthanc_logs_them(server) -> None:
    log = server.log()
    assert "Registering tag in dictionary: (0405,1002) US MyPrivateUS (multiplicity: 1-2)" in log
    assert "Registering tag in dictionary: (0010,0abc) LO MyPublicThing (multiplicity: 1-1)" in log


def test_tags_of_an_implicit_vr_file_match_orthanc(server, tmp_path: Path) -> None:
    orthanc = Orthanc(tmp_path / "orthanc", Dictionary=ORTHANC_DICTIONARY).start()
    try:
        data = _implicit_vr_file()
        mine, theirs = server.upload(data)["ID"], orthanc.upload(data)["ID"]
        ours = server.json(f"/instances/{mine}/tags")
        assert ours == orthanc.json(f"/instances/{theirs}/tags")
    finally:
        orthanc.stop()
    assert ours["0405,1001"] == {"Name": "MyPrivateXMLTag", "PrivateCreator": "My Company",
                                 "Type": "String", "Value": "<xml/>"}
    assert ours["0405,1002"]["Value"] == "7"
    assert ours["0010,0abc"] == {"Name": "MyPublicThing", "Type": "String", "Value": "public custom"}


def test_names_work_in_create_dicom_and_find(server) -> None:
    created = server.post("/tools/create-dicom", json={"PrivateCreator": "My Company", "Tags": {
        "PatientID": "FIND-ME", "PrivateCreatorForMyCompany": "My Company",
        "MyPrivateXMLTag": "searchable", "MyPublicThing": "public value"}})
    assert created.status_code == 200, created.text
    instance = created.json()["ID"]
    simplified = server.json(f"/instances/{instance}/simplified-tags")
    assert simplified["MyPrivateXMLTag"] == "searchable"
    assert simplified["MyPublicThing"] == "public value"
    for query in ({"MyPrivateXMLTag": "search*"}, {"MyPublicThing": "public value"}):
        found = server.post("/tools/find", json={"Level": "Instance", "Query": {"PatientID": "FIND-ME", **query}})
        assert found.status_code == 200, found.text
        assert found.json() == [instance]


def _reset(server: Isengard, dictionary: dict) -> None:
    config = json.loads(server.config_path.read_text())
    config["Dictionary"] = dictionary
    server.config_path.write_text(json.dumps(config))
    server.post("/tools/reset")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if requests.get(server.url + "/system", timeout=1).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.1)
    raise AssertionError("no restart")


def test_reset_replaces_the_entries(server) -> None:
    body = {"Tags": {"MyPublicThing": "x"}}
    try:
        _reset(server, {"0010,0abd": ["LO", "AnotherThing", 1, 1]})
        assert server.post("/tools/create-dicom", json=body).json()["OrthancStatus"] == 27
        again = server.post("/tools/create-dicom", json={"Tags": {"AnotherThing": "y"}})
        assert again.status_code == 200
    finally:
        _reset(server, DICTIONARY)
    assert server.post("/tools/create-dicom", json=body).status_code == 200


@pytest.mark.parametrize(("entry", "message"), [
    ({"0405,1001": ["XX", "Name"]}, '"Dictionary.0405,1001" is ["XX", "Name"], expected a DICOM value '
                                    'representation'),
    ({"0405,1001": ["LO", "Name", 3, 2, "Me"]}, "expected a minimum multiplicity of at least 1 and a maximum"),
    ({"0010,0abc": ["LO", "Name", 1, 1, "Me"]}, "expected a private creator only for a private tag"),
    ({"0014,1020": ["DA", "ValidationExpiryDate", 1, 1]}, "(0014,1020), already named ExpiryDate"),
    ({"405,1001": ["LO", "A", 1, 1, "Me"], "0405,1001": ["LO", "B", 1, 1, "Me"]}, "not registered twice"),
])
def test_invalid_entry_stops_startup(tmp_path: Path, entry: dict, message: str) -> None:
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"HttpPort": free_port(), "DicomPort": free_port(), "Dictionary": entry,
                                  "StorageDirectory": str(tmp_path / "storage"), "ListenAddress": "127.0.0.1"}))
    result = subprocess.run([sys.executable, "-m", "server", str(config)], cwd=REPO, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("E")]
    assert len(errors) == 1
    assert message in errors[0] and str(config) in errors[0]
