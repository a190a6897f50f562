"""The REST API on resources: upload, listing, views, metadata, attachments, deletion."""

from __future__ import annotations

import io
import time
import zipfile
from pathlib import Path

import pydicom
import pytest

from conftest import Isengard, sample

KNEE_LIKE = sample("Formats/Jpeg.dcm")
SERIES = sorted(sample("Series").glob("*.dcm"))


@pytest.fixture
def server(isengard: Isengard) -> Isengard:
    isengard.clear()
    return isengard


def test_upload_answers_ids_and_status(server: Isengard) -> None:
    first = server.upload(KNEE_LIKE)
    assert first["Status"] == "Success"
    assert first["Path"] == f"/instances/{first['ID']}"
    assert set(first) == {"ID", "ParentPatient", "ParentSeries", "ParentStudy", "Path", "Status"}
    again = server.upload(KNEE_LIKE)
    assert again["Status"] == "AlreadyStored"
    assert again["ID"] == first["ID"]


def test_file_is_returned_byte_identical(server: Isengard) -> None:
    answer = server.upload(KNEE_LIKE)
    file = server.get(f"/instances/{answer['ID']}/file")
    assert file.status_code == 200
    assert file.headers["Content-Type"] == "application/dicom"
    assert file.content == KNEE_LIKE.read_bytes()


def test_hierarchy_views_link_up_and_down(server: Isengard) -> None:
    ids = [server.upload(path) for path in SERIES]
    patient, study, series = ids[0]["ParentPatient"], ids[0]["ParentStudy"], ids[0]["ParentSeries"]
    assert server.json("/patients") == [patient]
    p = server.json(f"/patients/{patient}")
    assert p["Type"] == "Patient" and p["Studies"] == [study]
    s = server.json(f"/studies/{study}")
    assert s["ParentPatient"] == patient and s["Series"] == [series]
    assert "PatientMainDicomTags" in s
    se = server.json(f"/series/{series}")
    assert se["ParentStudy"] == study
    assert sorted(se["Instances"]) == sorted(i["ID"] for i in ids)
    assert se["Status"] == "Inconsistent" and se["ExpectedNumberOfInstances"] == 4  # as Orthanc
    inst = server.json(f"/instances/{ids[0]['ID']}")
    assert inst["ParentSeries"] == series and inst["Type"] == "Instance"
    assert inst["FileSize"] == SERIES[0].stat().st_size
    assert server.json(f"/instances/{ids[0]['ID']}/patient")["ID"] == patient
    assert server.json(f"/series/{series}/study")["ID"] == study
    assert len(server.json(f"/patients/{patient}/instances")) == len(SERIES)
    assert [x["ID"] for x in server.json(f"/studies/{study}/series")] == [series]


def test_listing_expand_since_limit(server: Isengard) -> None:
    for path in SERIES:
        server.upload(path)
    everything = server.json("/instances")
    assert len(everything) == len(SERIES)
    assert server.json("/instances?since=1&limit=2") == everything[1:3]
    expanded = server.json("/instances?expand")
    assert [x["ID"] for x in expanded] == everything
    missing = server.get("/instances?since=1")
    assert missing.status_code == 400
    assert missing.json()["OrthancStatus"] == 8


def test_views_read_together_equal_each_resources_own(server: Isengard) -> None:
    """Listings (``?expand``), ``/tools/find`` with ``Expand`` and ``/{level}/{id}/{children}``
    read the facts of all their resources together: each view must be the resource's own."""
    for path in SERIES:
        server.upload(path)
    knee = server.upload(KNEE_LIKE)
    assert server.put(f"/patients/{knee['ParentPatient']}/protected", "1").status_code == 200
    assert server.put(f"/studies/{knee['ParentStudy']}/labels/beta").status_code == 200
    assert server.put(f"/studies/{knee['ParentStudy']}/labels/alpha").status_code == 200
    assert server.put(f"/instances/{knee['ID']}/labels/gamma").status_code == 200
    for plural, level in (("patients", "Patient"), ("studies", "Study"), ("series", "Series"),
                          ("instances", "Instance")):
        listed = server.json(f"/{plural}?expand")
        assert len(listed) >= 2
        assert listed == [server.json(f"/{plural}/{view['ID']}") for view in listed]
        found = server.post("/tools/find", json={"Level": level, "Query": {}, "Expand": True}).json()
        assert sorted(found, key=lambda view: view["ID"]) == sorted(listed, key=lambda view: view["ID"])
    study = server.json(f"/studies/{knee['ParentStudy']}")
    assert study["Labels"] == ["alpha", "beta"]
    assert server.json(f"/patients/{knee['ParentPatient']}")["IsProtected"] is True
    below = server.json(f"/patients/{knee['ParentPatient']}/instances")
    assert below == [server.json(f"/instances/{view['ID']}") for view in below]


def test_statistics_count_and_size(server: Isengard) -> None:
    answer = server.upload(KNEE_LIKE)
    size = KNEE_LIKE.stat().st_size
    total = server.json("/statistics")
    assert total["CountInstances"] == 1 and total["CountPatients"] == 1
    assert total["TotalDiskSize"] == str(size)
    stats = server.json(f"/studies/{answer['ParentStudy']}/statistics")
    assert stats["CountInstances"] == 1 and stats["CountSeries"] == 1
    assert stats["DiskSize"] == str(size) and stats["DiskSizeMB"] == 0


def test_instance_metadata_from_rest_upload(server: Isengard) -> None:
    answer = server.upload(KNEE_LIKE)
    metadata = server.json(f"/instances/{answer['ID']}/metadata?expand")
    assert metadata["Origin"] == "RestApi"
    assert metadata["RemoteIP"] == "127.0.0.1"
    assert metadata["TransferSyntax"] == "1.2.840.10008.1.2.4.70"
    assert metadata["SopClassUid"] == "1.2.840.10008.5.1.4.1.1.4"
    assert metadata["PixelDataOffset"] == "3456"
    assert metadata["IndexInSeries"] == "1"
    assert len(metadata["ReceptionDate"]) == 15
    assert "Origin" in server.json(f"/instances/{answer['ID']}/metadata")
    one = server.get(f"/instances/{answer['ID']}/metadata/Origin")
    assert one.text == "RestApi" and one.headers["Content-Type"].startswith("text/plain")


def test_metadata_writes(make_isengard) -> None:
    server = make_isengard(UserMetadata={"Sample": 1024})
    answer = server.upload(KNEE_LIKE)
    path = f"/studies/{answer['ParentStudy']}/metadata"
    assert server.put(f"{path}/Sample", "hello").status_code == 200
    assert server.get(f"{path}/Sample").text == "hello"
    assert server.put(f"{path}/1025", "numbered").status_code == 200
    last_update = server.get(f"{path}/LastUpdate").text
    assert server.json(f"{path}?expand") == {"LastUpdate": last_update, "Sample": "hello",
                                             "1025": "numbered"}
    assert server.put(f"{path}/LastUpdate", "x").status_code == 403
    assert server.delete(f"{path}/Sample").status_code == 200
    assert server.get(f"{path}/Sample").status_code == 404
    changes = server.json("/changes?limit=1000")["Changes"]
    assert "UpdatedMetadata" in [c["ChangeType"] for c in changes]


def test_attachments(server: Isengard) -> None:
    answer = server.upload(KNEE_LIKE)
    base = f"/instances/{answer['ID']}/attachments"
    assert server.json(base) == ["dicom"]
    assert server.get(f"{base}/dicom/data").content == KNEE_LIKE.read_bytes()
    assert server.get(f"{base}/dicom/size").text == str(KNEE_LIKE.stat().st_size)
    assert server.get(f"{base}/dicom/is-compressed").text == "0"
    assert len(server.get(f"{base}/dicom/md5").text) == 32


def test_storage_compression_keeps_files_identical(make_isengard) -> None:
    server = make_isengard(StorageCompression=True)
    answer = server.upload(KNEE_LIKE)
    assert server.get(f"/instances/{answer['ID']}/file").content == KNEE_LIKE.read_bytes()
    base = f"/instances/{answer['ID']}/attachments/dicom"
    assert server.get(f"{base}/is-compressed").text == "1"
    assert int(server.get(f"{base}/compressed-size").text) != KNEE_LIKE.stat().st_size


def test_delete_cascades_to_empty_parents(server: Isengard) -> None:
    a = server.upload(SERIES[0])
    b = server.upload(SERIES[1])
    answer = server.delete(f"/instances/{a['ID']}").json()
    assert answer == {"RemainingAncestor": {"ID": a["ParentSeries"], "Path":
                                            f"/series/{a['ParentSeries']}", "Type": "Series"}}
    assert server.get(f"/instances/{a['ID']}").status_code == 404
    last = server.delete(f"/instances/{b['ID']}").json()
    assert last == {"RemainingAncestor": None}
    assert server.json("/patients") == []
    assert server.delete(f"/instances/{b['ID']}").status_code == 404


def test_zip_upload_stores_every_member(server: Isengard) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path in SERIES[:3]:
            archive.write(path, path.name)
        archive.writestr("readme.txt", "not dicom")
    answer = server.post("/instances", buffer.getvalue())
    assert answer.status_code == 200
    assert [a["Status"] for a in answer.json()] == ["Success"] * 3


def test_protection(server: Isengard) -> None:
    answer = server.upload(KNEE_LIKE)
    path = f"/patients/{answer['ParentPatient']}/protected"
    assert server.get(path).text == "0"
    assert server.put(path, "1").status_code == 200
    assert server.get(path).text == "1"
    assert server.put(path, "maybe").status_code == 400


def test_recycling_keeps_protected_and_newest_patients(make_isengard) -> None:
    server = make_isengard(MaximumPatientCount=2)
    patients = [server.upload(p)["ParentPatient"]
                for p in (sample("Issue137.dcm"), sample("Issue143.dcm"))]
    server.put(f"/patients/{patients[0]}/protected", "1")
    third = server.upload(KNEE_LIKE)["ParentPatient"]
    assert sorted(server.json("/patients")) == sorted([patients[0], third])


def test_changes_log(make_isengard) -> None:
    server = make_isengard(StableAge=1)
    answer = server.upload(KNEE_LIKE)
    changes = server.json("/changes")
    assert [c["ChangeType"] for c in changes["Changes"]] == [
        "NewInstance", "NewSeries", "NewStudy", "NewPatient"]
    assert changes["Done"] is True and changes["Last"] == 4
    assert changes["Changes"][0]["Path"] == f"/instances/{answer['ID']}"
    paged = server.json("/changes?since=1&limit=2")
    assert [c["Seq"] for c in paged["Changes"]] == [2, 3] and paged["Done"] is False
    assert server.json(f"/studies/{answer['ParentStudy']}")["IsStable"] is False
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        kinds = [c["ChangeType"] for c in server.json("/changes")["Changes"]]
        if "StablePatient" in kinds:
            break
        time.sleep(0.3)
    assert kinds[4:] == ["StableSeries", "StableStudy", "StablePatient"]
    assert server.json(f"/studies/{answer['ParentStudy']}")["IsStable"] is True
    last = server.json("/changes?last")
    assert [c["ChangeType"] for c in last["Changes"]] == ["StablePatient"]
    assert server.delete("/changes").status_code == 200
    assert server.json("/changes")["Changes"] == []


def _announcing(path: Path, expected: int | None) -> bytes:
    """A file of the sample series, announcing ``expected`` instances (or none)."""
    ds = pydicom.dcmread(path)
    for keyword in ("ImagesInAcquisition", "NumberOfTemporalPositions"):
        if keyword in ds:
            delattr(ds, keyword)
    if expected is not None:
        ds.ImagesInAcquisition, ds.NumberOfTemporalPositions = expected, 1
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


@pytest.mark.parametrize(("expected", "statuses"), [(None, ["Unknown", "Unknown"]), (2, ["Missing", "Complete"]),
                                                    (1, ["Complete", "Inconsistent"])])
def test_a_series_status_follows_its_expected_instances(server: Isengard, expected: int | None,
                                                        statuses: list[str]) -> None:
    """As Orthanc: Unknown without ImagesInAcquisition, then Missing, Complete or
    Inconsistent as the instances come (numbered by InstanceNumber); in a listing too."""
    seen = []
    for path in SERIES[:2]:
        series = server.post("/instances", data=_announcing(path, expected)).json()["ParentSeries"]
        seen.append(server.json(f"/series/{series}")["Status"])
        assert [s["Status"] for s in server.json("/series?expand")] == seen[-1:]
    assert seen == statuses
