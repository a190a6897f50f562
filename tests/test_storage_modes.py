"""``OverwriteInstances`` as Orthanc 1.13 spells it (Never, Always, IfChanged) and
``MaximumStorageMode`` (Recycle, Reject) from Orthanc 1.11.2.

The real Orthanc here is 1.10.1, which has neither: expected answers follow Orthanc's
``ServerContext::StoreAfterTranscoding`` and ``StatelessDatabaseOperations::Store``."""

from __future__ import annotations

import json
from io import BytesIO
from typing import Any

import pydicom
import pytest

from conftest import sample

CT = sample("HierarchicalAnonymization/RTH/CT01.dcm")
OTHER = sample("ColorTestImageJ.dcm")


def _changed_copy() -> bytes:
    """The same instance (same UIDs), with another file content."""
    ds = pydicom.dcmread(CT)
    ds.StudyDescription = "changed"
    out = BytesIO()
    ds.save_as(out)
    return out.getvalue()


@pytest.mark.parametrize("mode, same, changed", [
    ("Never", "AlreadyStored", "AlreadyStored"),
    (False, "AlreadyStored", "AlreadyStored"),
    ("Always", "Success", "Success"),
    (True, "Success", "Success"),
    ("IfChanged", "AlreadyStored", "Success"),
])
def test_overwrite_modes(make_isengard: Any, mode: Any, same: str, changed: str) -> None:
    server = make_isengard(OverwriteInstances=mode)
    first = server.upload(CT)
    assert server.upload(CT)["Status"] == same
    again = server.post("/instances", _changed_copy()).json()
    assert (again["Status"], again["ID"]) == (changed, first["ID"])
    description = server.json(f"/studies/{first['ParentStudy']}")["MainDicomTags"].get(
        "StudyDescription")
    assert (description == "changed") == (changed == "Success")


def test_bad_overwrite_mode_stops_startup(make_isengard: Any) -> None:
    with pytest.raises(Exception):  # noqa: B017 - any failure to start will do
        make_isengard(OverwriteInstances="Sometimes")


def test_maximum_storage_mode_reject(make_isengard: Any) -> None:
    server = make_isengard(MaximumPatientCount=1, MaximumStorageMode="Reject")
    kept = server.upload(CT)["ParentPatient"]
    refused = server.post("/instances", OTHER.read_bytes())
    assert refused.status_code == 507
    assert server.json("/patients") == [kept]


def test_maximum_storage_mode_recycle(make_isengard: Any) -> None:
    server = make_isengard(MaximumPatientCount=1, MaximumStorageMode="Recycle")
    server.upload(CT)
    newest = server.upload(OTHER)["ParentPatient"]
    assert server.json("/patients") == [newest]


def test_system_reports_the_storage_configuration(make_isengard: Any) -> None:
    server = make_isengard(OverwriteInstances="IfChanged", MaximumStorageMode="Reject",
                           MaximumPatientCount=3, UserMetadata={"my-metadata": 1098})
    system = server.json("/system")
    assert system["OverwriteInstances"] is True
    assert system["OverwriteInstancesMode"] == "IfChanged"
    assert (system["MaximumStorageMode"], system["MaximumPatientCount"]) == ("Reject", 3)
    assert system["UserMetadata"] == {"my-metadata": 1098}
    assert set(system["MainDicomTags"]) == {"Patient", "Study", "Series", "Instance"}
    assert "0010,0020" in system["MainDicomTags"]["Patient"].split(";")


def test_read_only_serves_but_never_writes(make_isengard: Any) -> None:
    server = make_isengard()
    instance = server.upload(CT)["ID"]
    server.stop()
    server.config["ReadOnly"] = True
    server.config_path.write_text(json.dumps(server.config))
    server.start()
    assert server.json("/instances") == [instance]
    assert server.json("/system")["ReadOnly"] is True
    refused = [server.post("/instances", OTHER.read_bytes()),
               server.put(f"/instances/{instance}/labels/a"),
               server.put(f"/instances/{instance}/metadata/1024", data="x"),
               server.delete(f"/instances/{instance}")]
    for answer in refused:
        assert answer.status_code == 500, answer.text
        assert answer.json()["OrthancError"] == "Cannot modify a read-only data structure"
    assert server.json("/instances") == [instance]
