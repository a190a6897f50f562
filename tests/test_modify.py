"""Modification and anonymization, against the real Orthanc 1.10.1 where it has an answer.

The same synthetic study is uploaded to both servers (same UIDs, hence same Orthanc IDs);
the same requests must give the same tags, generated UIDs aside (they are compared by the
pattern they form: which original became which new one), the same hierarchy and the same
metadata.  Pause, cancel and failure are Isengard's own design: nothing half-made is visible.
"""

from __future__ import annotations

import io
import re
import time
import zipfile
from pathlib import Path
from typing import Any

import pydicom
import pytest
from pydicom.datadict import DicomDictionary
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from conftest import Isengard, Orthanc, Server
from helpers import wait_job
from server import ORTHANC_API_VERSION, ORTHANC_VERSION
from server.dicom.anonymization_profiles import PROFILES

SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"
#: UIDs and patient IDs the servers generate (dcmtk's root, or a UUID).
GENERATED = re.compile(r"1\.2\.276\.0\.7230010\.3\.1\.\d\.|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-")


def study_files(name: str, series: int = 2, per_series: int = 3) -> list[bytes]:
    """A small study holding what anonymization must handle.

    Private tags, a reference from each instance to the previous one, a frame of reference,
    and a sequence whose items repeat the study's UIDs, names and profile tags.
    """
    study_uid = generate_uid(entropy_srcs=[name, "study"])
    files: list[bytes] = []
    previous = None
    for s in range(series):
        series_uid = generate_uid(entropy_srcs=[name, "series", str(s)])
        for i in range(per_series):
            ds = Dataset()
            ds.SpecificCharacterSet = "ISO_IR 100"
            ds.SOPClassUID = SECONDARY_CAPTURE
            ds.SOPInstanceUID = generate_uid(entropy_srcs=[name, str(s), str(i)])
            ds.PatientID, ds.PatientName = f"ID-{name}", f"Doe^{name}"
            ds.PatientBirthDate, ds.PatientSex = "19700101", "F"
            ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uid, series_uid
            ds.StudyDate, ds.StudyTime, ds.AccessionNumber = "20200101", "101010", f"A-{name}"
            ds.StudyDescription, ds.SeriesDescription = f"Study {name}", f"Series {s}"
            ds.InstitutionName, ds.ReferringPhysicianName = "Hôpital", "Ref^Doc"
            ds.Modality, ds.SeriesNumber, ds.InstanceNumber = "OT", s + 1, i + 1
            ds.FrameOfReferenceUID = generate_uid(entropy_srcs=[name, "frame"])
            if previous is not None:
                reference = Dataset()
                reference.ReferencedSOPClassUID = SECONDARY_CAPTURE
                reference.ReferencedSOPInstanceUID = previous
                ds.ReferencedImageSequence = Sequence([reference])
            nested = Dataset()
            nested.StudyInstanceUID, nested.SeriesInstanceUID = study_uid, series_uid
            nested.PatientID, nested.PatientName = ds.PatientID, "Nested^Name"
            nested.AccessionNumber, nested.InstitutionName = "A-nested", "Institution"
            nested.add_new(0x00091010, "LO", "ACME")
            nested.add_new(0x00091011, "LO", "nested secret")
            ds.ReferencedStudySequence = Sequence([nested])
            ds.add_new(0x00091010, "LO", "ACME")
            ds.add_new(0x00091011, "LO", "secret")
            ds.Rows = ds.Columns = 4
            ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
            ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
            ds.PixelData = bytes(range(16))
            files.append(_encode(ds))
            previous = ds.SOPInstanceUID
    return files


def every_tag_file() -> bytes:
    """One instance holding every public tag of the dictionary, each with a plausible value."""
    values = {"AE": "AETITLE", "AS": "030Y", "AT": 0x00100010, "CS": "CODE", "DA": "20200101", "DS": "1.5",
              "DT": "20200101120000", "FL": 1.0, "FD": 1.0, "IS": "12", "LO": "text", "LT": "text",
              "SH": "text", "ST": "text", "UT": "text", "UC": "text", "PN": "Doe^John", "SL": 1, "SS": 1,
              "SV": 1, "UL": 1, "US": 1, "UV": 1, "TM": "120000", "UR": "http://x", "OB": b"\1\2",
              "OD": bytes(8), "OF": bytes(4), "OL": bytes(4), "OV": bytes(8), "OW": b"\1\2", "UN": b"\1\2"}
    ds = Dataset()
    for number, (tag, (vr, *_)) in enumerate(sorted(DicomDictionary.items())):
        group, vr = tag >> 16, vr.split(" or ")[0]
        if group in (0x0000, 0x0002, 0x7FE0, 0xFFFE) or group & 1:
            continue
        if vr == "SQ":
            item = Dataset()
            item.CodeValue = "X"
            item.ReferencedSOPInstanceUID = f"1.2.3.9.{number}"
            ds.add_new(tag, "SQ", Sequence([item]))
        elif vr == "UI":
            ds.add_new(tag, "UI", f"1.2.3.4.{number}")
        elif vr in values:
            ds.add_new(tag, vr, values[vr])
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.PatientID, ds.PatientName = "EVERY", "Every^Tag"
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID = "1.2.3.100", "1.2.3.101", "1.2.3.102"
    ds.SOPClassUID = SECONDARY_CAPTURE
    ds.add_new(0x00090010, "LO", "ACME")
    ds.add_new(0x00091001, "LO", "private value")
    return _encode(ds)


def _encode(ds: Dataset) -> bytes:
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def as_zip(files: list[bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for number, data in enumerate(files):
            archive.writestr(f"{number}.dcm", data)
    return buffer.getvalue()


def upload(server: Server, files: list[bytes]) -> dict:
    """Upload files; the answer of the last one (its Parent* IDs)."""
    answers = server.post("/instances", as_zip(files)).json()
    assert len(answers) == len(files), answers
    return answers[-1]


def canonical(data: bytes) -> dict[str, Any]:
    """The dataset of a DICOM file as a tree, generated identifiers replaced by labels.

    Labels follow the first appearance of each generated value, so two files compare equal
    when the same original UIDs became the same new ones, wherever they appear.
    """
    labels: dict[str, str] = {}

    def walk(ds: Dataset) -> dict[str, Any]:
        tree: dict[str, Any] = {}
        for elem in ds:
            key = f"{elem.tag.group:04x},{elem.tag.element:04x}"
            if elem.VR == "SQ":
                tree[key] = [walk(item) for item in elem.value]
                continue
            value = elem.value.rstrip(b"\0 ").hex() if isinstance(elem.value, bytes) else str(elem.value)
            if GENERATED.match(value):
                value = labels.setdefault(value, f"generated-{len(labels)}")
            value = re.sub(r"^Anonymized\d+$", "AnonymizedN", value)
            tree[key] = value
        return tree

    return walk(pydicom.dcmread(io.BytesIO(data)))


def counts(server: Server) -> dict[str, int]:
    return {level: len(server.json(f"/{level}")) for level in ("patients", "studies", "series", "instances")}


def last_change(server: Server) -> int:
    return server.json("/changes?last")["Last"]


def change_types(server: Server, since: int) -> list[str]:
    return sorted({c["ChangeType"] for c in server.json(f"/changes?since={since}&limit=10000")["Changes"]})


def hierarchy(server: Server, study: str) -> list[tuple]:
    """A study as (series description, instance count, provenance metadata), sorted."""
    shape = []
    for series in server.json(f"/studies/{study}/series"):
        metadata = server.json(f"/instances/{series['Instances'][0]}/metadata?expand")
        provenance = {name: value for name, value in metadata.items() if name in ("AnonymizedFrom", "ModifiedFrom")}
        shape.append((series["MainDicomTags"].get("SeriesDescription"), len(series["Instances"]),
                      sorted(provenance), series.get("ModifiedFrom") or series.get("AnonymizedFrom")))
    return sorted(shape, key=repr)


@pytest.fixture(scope="module")
def both(tmp_path_factory: pytest.TempPathFactory, orthanc: Orthanc):
    isengard = Isengard(tmp_path_factory.mktemp("modify")).start()
    orthanc.clear()
    yield isengard, orthanc
    isengard.stop()
    orthanc.clear()


@pytest.fixture
def fresh(both):
    isengard, orthanc = both
    isengard.clear()
    orthanc.clear()
    return isengard, orthanc


INSTANCE_REQUESTS = [
    ("modify", {"Replace": {"StudyDescription": "Été", "ReferencedImageSequence[0].ReferencedSOPClassUID": "1.2.3",
                            "ReferencedStudySequence[*].AccessionNumber": "A-new"},
                "Remove": ["InstitutionName", "ReferencedStudySequence[0].PatientName"]}),
    ("modify", {"Replace": {"StudyInstanceUID": "1.2.3.4", "ImageType": "A\\B", "Rows": "12"}, "Force": True}),
    ("modify", {"RemovePrivateTags": True, "Keep": ["SOPInstanceUID"], "Force": True}),
    ("modify", {"Replace": {"ReferencedImageSequence": [{"ReferencedSOPInstanceUID": "4.5.6"}],
                            "PatientComments": "data:application/octet-stream;base64,SGVsbG8="}}),
    ("anonymize", {}),
    ("anonymize", {"DicomVersion": "2008"}),
    ("anonymize", {"DicomVersion": "2017c"}),
    ("anonymize", {"Keep": ["StudyDescription", "ReferencedStudySequence"], "KeepPrivateTags": True}),
    ("anonymize", {"Replace": {"PatientName": "Foo", "StudyInstanceUID": "1.2.3.5"}, "Remove": ["Modality"],
                   "Force": True}),
]


@pytest.mark.parametrize(("action", "body"), INSTANCE_REQUESTS)
def test_instance_modification_gives_orthancs_file(fresh, action: str, body: dict) -> None:
    isengard, orthanc = fresh
    files = study_files("inst")
    answers = [upload(server, files) for server in (isengard, orthanc)]
    assert answers[0]["ID"] == answers[1]["ID"]
    mine, theirs = (server.post(f"/instances/{answers[0]['ID']}/{action}", json=body) for server in fresh)
    assert (mine.status_code, mine.headers["Content-Type"]) == (200, "application/dicom")
    assert theirs.status_code == 200
    assert canonical(mine.content) == canonical(theirs.content)
    assert counts(isengard) == {"patients": 1, "studies": 1, "series": 2, "instances": 6}


@pytest.mark.parametrize("version", ["2008", "2017c", "2021b"])
def test_profiles_change_the_same_tags_as_orthanc(fresh, version: str) -> None:
    isengard, orthanc = fresh
    data = every_tag_file()
    instance = upload(isengard, [data])["ID"]
    assert upload(orthanc, [data])["ID"] == instance
    body = {"DicomVersion": version}
    mine = isengard.post(f"/instances/{instance}/anonymize", json=body).content
    assert canonical(mine) == canonical(orthanc.post(f"/instances/{instance}/anonymize", json=body).content)
    original, anonymized = pydicom.dcmread(io.BytesIO(data)), pydicom.dcmread(io.BytesIO(mine))
    profile = PROFILES[version]
    assert not [t for t in profile.removals if t in original and t in anonymized]
    assert all(not anonymized[t].value for t in profile.clearings if t in original)
    assert all(anonymized[t].value != original[t].value for t in profile.uids if t in original)
    assert anonymized.DeidentificationMethod.endswith(profile.method)


def _all_tags(ds: Dataset) -> list[tuple[int, Any]]:
    found = []
    for elem in ds:
        found.append((int(elem.tag), elem.value))
        if elem.VR == "SQ":
            for item in elem.value:
                found += _all_tags(item)
    return found


def test_anonymized_study_holds_nothing_the_profile_removes(fresh) -> None:
    isengard, _ = fresh
    files = study_files("anon", 2, 2)
    study = upload(isengard, files)["ParentStudy"]
    answer = isengard.post(f"/studies/{study}/anonymize", json={})
    assert answer.status_code == 200, answer.text
    result = answer.json()
    originals = [pydicom.dcmread(io.BytesIO(data)) for data in files]
    old_uids = {str(v) for ds in originals for tag, v in _all_tags(ds) if tag in PROFILES["2021b"].uids} | {
        str(ds[t].value) for ds in originals for t in (0x0020000D, 0x0020000E, 0x00080018)}
    profile = PROFILES["2021b"]
    instances = isengard.json(f"/studies/{result['ID']}/instances")
    assert len(instances) == 4
    for instance in instances:
        ds = pydicom.dcmread(io.BytesIO(isengard.get(f"/instances/{instance['ID']}/file").content))
        tags = _all_tags(ds)
        assert not [hex(t) for t, _ in tags if t in profile.removals]
        assert not [hex(t) for t, value in tags if t in profile.clearings and value]
        assert not [hex(t) for t, _ in tags if (t >> 16) & 1], "private tags remain"
        assert not [str(v) for t, v in tags if str(v) in old_uids]
        assert re.fullmatch(r"Anonymized\d+", str(ds.PatientName))
        assert ds.PatientIdentityRemoved == "YES"
        referenced = ds.get("ReferencedImageSequence")
        if referenced:
            target = referenced[0].ReferencedSOPInstanceUID
            assert isengard.post("/tools/lookup", target).json(), "reference to an unmapped instance"


@pytest.mark.parametrize(("url", "body"), [
    ("/studies/{study}/modify", {"Replace": {"StudyDescription": "Modified"}}),
    ("/studies/{study}/anonymize", {"DicomVersion": "2017c"}),
    ("/series/{series}/modify", {"Replace": {"SeriesDescription": "Modified"}, "Remove": ["InstitutionName"]}),
    ("/series/{series}/anonymize", {"Keep": ["SeriesDescription"]}),
    ("/patients/{patient}/modify", {"Replace": {"PatientID": "NEW"}, "Force": True}),
    ("/patients/{patient}/anonymize", {}),
])
def test_resource_modification_matches_orthanc(fresh, url: str, body: dict) -> None:
    results = []
    for server in fresh:
        answer = upload(server, study_files("res"))
        since = last_change(server)
        path = url.format(study=answer["ParentStudy"], series=answer["ParentSeries"],
                          patient=answer["ParentPatient"])
        reply = server.post(path, json=body)
        assert reply.status_code == 200, reply.text
        content = reply.json()
        level = content["Type"]
        new = server.json(content["Path"])
        study = new["ID"] if level == "Study" else new.get("ParentStudy") or new["Studies"][0]
        patient = server.json(f"/patients/{content['PatientID']}")
        results.append({
            "keys": sorted(content), "type": level, "counts": counts(server), "changes": change_types(server, since),
            "new": {k: v for k, v in new.items() if k in ("AnonymizedFrom", "ModifiedFrom", "Type")},
            "hierarchy": hierarchy(server, study),
            "patient": {k: v for k, v in patient.items() if k in ("AnonymizedFrom", "ModifiedFrom")},
        })
    assert results[0] == results[1]


def test_bulk_modification_lists_what_it_made(fresh) -> None:
    answers = []
    for server in fresh:
        first = upload(server, study_files("bulk1", 1, 2))
        second = upload(server, study_files("bulk2", 1, 1))
        reply = server.post("/tools/bulk-modify", json={"Resources": [first["ID"], second["ParentSeries"]],
                                                         "Level": "Series", "Replace": {"SeriesDescription": "B"}})
        assert reply.status_code == 200, reply.text
        content = reply.json()
        answers.append(([r["Type"] for r in content["Resources"]], content["InstancesCount"], counts(server)))
    assert answers[0] == answers[1]
    assert answers[0][0] == ["Instance", "Instance", "Series", "Series", "Study", "Study", "Patient", "Patient"]


def test_keep_source_false_removes_the_originals(fresh) -> None:
    isengard, orthanc = fresh
    states = []
    for server in fresh:
        answer = upload(server, study_files("keep"))
        reply = server.post(f"/studies/{answer['ParentStudy']}/modify",
                            json={"Replace": {"StudyDescription": "Moved"}, "KeepSource": False})
        assert reply.status_code == 200, reply.text
        new = reply.json()["ID"]
        states.append((server.get(f"/studies/{answer['ParentStudy']}").status_code,
                       server.get(f"/instances/{answer['ID']}").status_code, counts(server),
                       server.json(f"/studies/{new}")["MainDicomTags"]["StudyDescription"]))
    assert states[0] == states[1] == (404, 404, {"patients": 1, "studies": 1, "series": 2, "instances": 6}, "Moved")


def test_asynchronous_modification(fresh) -> None:
    isengard, orthanc = fresh
    documents = []
    for server in fresh:
        answer = upload(server, study_files("async"))
        reply = server.post(f"/series/{answer['ParentSeries']}/anonymize", json={"Asynchronous": True, "Priority": 3})
        assert reply.status_code == 200
        job = reply.json()
        assert set(job) == {"ID", "Path"} and job["Path"] == f"/jobs/{job['ID']}"
        documents.append(wait_job(server, job["ID"]))
    mine, theirs = documents
    for key in ("State", "Type", "Priority", "Progress", "ErrorCode"):
        assert mine[key] == theirs[key], key
    assert sorted(mine["Content"]) == sorted(theirs["Content"])
    assert mine["Content"]["InstancesCount"] == theirs["Content"]["InstancesCount"] == 3
    assert isengard.json(mine["Content"]["Path"])["AnonymizedFrom"] == orthanc.json(
        theirs["Content"]["Path"])["AnonymizedFrom"]


@pytest.mark.parametrize(("url", "body"), [
    ("/studies/{study}/modify", {"Replace": {"PatientID": "X"}, "Force": True}),
    ("/patients/{patient}/modify", {"Replace": {"PatientName": "X"}}),
    ("/series/{series}/modify", {"Replace": {"StudyDescription": 5}}),
    ("/studies/{study}/modify", {"Remove": ["StudyInstanceUID"], "Force": True}),
])
def test_refused_inside_the_job_as_orthanc_does(fresh, url: str, body: dict) -> None:
    """Orthanc 1.10.1 checks these when it applies the modification: the job fails."""
    answers = []
    for server in fresh:
        answer = upload(server, study_files("refused", 1, 1))
        path = url.format(study=answer["ParentStudy"], series=answer["ParentSeries"], patient=answer["ParentPatient"])
        reply = server.post(path, json=body)
        details = reply.json().get("Details")
        failed = [j for j in server.json("/jobs?expand")
                  if j["State"] == "Failure" and j["ErrorDetails"] == (details or "")]
        answers.append((reply.status_code, details, reply.json()["OrthancStatus"], bool(failed), counts(server)))
    assert answers[0] == answers[1]
    assert answers[0][3], "the refusal comes from a failed job"


@pytest.mark.parametrize(("url", "body"), [
    ("/instances/{instance}/modify", {"Replace": {"PatientID": "X"}}),
    ("/instances/{instance}/modify", {"Keep": ["SeriesInstanceUID"]}),
    ("/instances/{instance}/modify", {"Force": "yes"}),
    ("/instances/{instance}/modify", {"Replace": {"NoSuchTag": "x"}}),
    ("/instances/{instance}/modify", {"Remove": ["ReferencedImageSequence.ReferencedSOPInstanceUID"]}),
    ("/instances/{instance}/modify", {"Transcode": "1.2.3"}),
    ("/instances/{instance}/anonymize", {"DicomVersion": "2019"}),
    ("/series/{series}/modify", {"KeepSource": "no"}),
    ("/series/{series}/modify", {"Transcode": "1.2.3"}),
    ("/tools/bulk-anonymize", {}),
    ("/series/ffffffff-ffffffff-ffffffff-ffffffff-ffffffff/modify", {}),
    ("/instances/{instance}/anonymize", "not json"),
])
def test_request_errors_match_orthanc(fresh, url: str, body: Any) -> None:
    answers = []
    for server in fresh:
        answer = upload(server, study_files("errors", 1, 1))
        path = url.format(instance=answer["ID"], series=answer["ParentSeries"])
        reply = server.post(path, json=body) if isinstance(body, dict) else server.post(path, body)
        answers.append((reply.status_code, reply.json()["OrthancStatus"], reply.json().get("Details")))
    assert answers[0] == answers[1]


def test_transcoding_between_uncompressed_syntaxes(fresh) -> None:
    isengard, _ = fresh
    answer = upload(isengard, study_files("transcode", 1, 2))
    for syntax in ("1.2.840.10008.1.2", "1.2.840.10008.1.2.2", "1.2.840.10008.1.2.1.99"):
        reply = isengard.post(f"/instances/{answer['ID']}/modify", json={"Transcode": syntax})
        ds = pydicom.dcmread(io.BytesIO(reply.content))
        assert ds.file_meta.TransferSyntaxUID == syntax
        assert ds.PixelData == bytes(range(16)) and ds.Rows == 4
    reply = isengard.post(f"/series/{answer['ParentSeries']}/modify",
                          json={"Replace": {"SeriesDescription": "T"}, "Transcode": "1.2.840.10008.1.2"}).json()
    assert reply["Transcode"] == "1.2.840.10008.1.2"
    instance = isengard.json(f"{reply['Path']}/instances")[0]["ID"]
    assert isengard.get(f"/instances/{instance}/metadata/TransferSyntax").text == "1.2.840.10008.1.2"


# -- pause, cancel, failure: nothing half-made is visible -------------------------------------


@pytest.fixture(scope="module")
def slow(tmp_path_factory: pytest.TempPathFactory):
    """One job at a time and a 300-instance study: long enough to act on a job mid-way."""
    server = Isengard(tmp_path_factory.mktemp("modify-slow"), ConcurrentJobs=1).start()
    study = upload(server, study_files("slow", 1, 300))["ParentStudy"]
    yield server, study
    server.stop()


def _staging(server: Isengard) -> list[Path]:
    return list((server.workdir / "storage" / "jobs").glob("staging-*"))


def _midway(server: Isengard, study: str, body: dict) -> str:
    job = server.post(f"/studies/{study}/anonymize", json={**body, "Asynchronous": True}).json()["ID"]
    deadline = time.monotonic() + 30
    while server.json(f"/jobs/{job}")["Progress"] < 10:
        assert time.monotonic() < deadline
        time.sleep(0.005)
    return job


def test_paused_job_shows_nothing_then_resumes(slow) -> None:
    server, study = slow
    before = counts(server)
    job = _midway(server, study, {})
    assert server.post(f"/jobs/{job}/pause").status_code == 200
    paused = wait_job(server, job, ("Paused",))
    assert 0 < paused["Progress"] < 100
    time.sleep(0.2)
    assert counts(server) == before, "a paused job must not show a half-made study"
    assert _staging(server)
    assert server.post(f"/jobs/{job}/resume").status_code == 200
    done = wait_job(server, job)
    assert done["State"] == "Success"
    assert len(server.json(f"/studies/{done['Content']['ID']}/instances")) == 300
    assert not _staging(server)
    server.delete(f"/patients/{done['Content']['PatientID']}")


def test_canceled_job_leaves_the_index_as_it_was(slow) -> None:
    server, study = slow
    before, since = counts(server), last_change(server)
    job = _midway(server, study, {"KeepSource": False})
    assert server.post(f"/jobs/{job}/cancel").status_code == 200
    canceled = wait_job(server, job)
    assert (canceled["State"], canceled["ErrorCode"]) == ("Failure", 37)
    assert counts(server) == before
    assert change_types(server, since) == []
    assert not _staging(server)


def test_job_failing_mid_way_leaves_the_index_as_it_was(slow) -> None:
    """The last instance vanishes while the job waits: it fails after staging the others."""
    server, study = slow
    victim = upload(server, study_files("victim", 1, 3))
    blocker = server.post(f"/studies/{study}/anonymize", json={"Asynchronous": True}).json()["ID"]
    job = server.post(f"/patients/{victim['ParentPatient']}/anonymize", json={"Asynchronous": True}).json()["ID"]
    assert server.post(f"/jobs/{job}/pause").status_code == 200
    server.post(f"/jobs/{blocker}/cancel")
    wait_job(server, blocker)
    server.delete(f"/instances/{victim['ID']}")
    before, since = counts(server), last_change(server)
    server.post(f"/jobs/{job}/resume")
    failed = wait_job(server, job)
    assert (failed["State"], failed["Progress"]) == ("Failure", 50)
    assert counts(server) == before
    assert change_types(server, since) == []
    assert not _staging(server)


def _assert_references_inside(server: Isengard, study: str, count: int) -> None:
    instances = server.json(f"/studies/{study}/instances")
    assert len(instances) == count
    new_uids = {i["MainDicomTags"]["SOPInstanceUID"] for i in instances}
    for instance in instances[1:20]:
        tags = server.json(f"/instances/{instance['ID']}/simplified-tags")
        assert tags["ReferencedImageSequence"][0]["ReferencedSOPInstanceUID"] in new_uids


def test_paused_job_resumes_after_a_restart_with_consistent_uids(make_isengard) -> None:
    """The UID map and the staged files survive a restart: references still point inside the study."""
    server = make_isengard(ConcurrentJobs=1)
    study = upload(server, study_files("restart", 1, 200))["ParentStudy"]
    job = _midway(server, study, {})
    server.post(f"/jobs/{job}/pause")
    assert wait_job(server, job, ("Paused", "Success"))["State"] == "Paused"
    server.stop()
    server.start()
    assert server.json(f"/jobs/{job}")["State"] == "Paused"
    server.post(f"/jobs/{job}/resume")
    done = wait_job(server, job)
    assert done["State"] == "Success", done
    _assert_references_inside(server, done["Content"]["ID"], 200)


def test_job_killed_mid_way_completes_once_after_restart(make_isengard) -> None:
    server = make_isengard(ConcurrentJobs=1)
    study = upload(server, study_files("killed", 1, 200))["ParentStudy"]
    job = _midway(server, study, {})
    server.kill()
    server.start()
    done = wait_job(server, job)
    assert done["State"] == "Success", done
    assert counts(server) == {"patients": 2, "studies": 2, "series": 2, "instances": 400}
    _assert_references_inside(server, done["Content"]["ID"], 200)
    assert not _staging(server)


def test_profile_2023b_and_the_default_follow_the_api_level(fresh) -> None:
    """Orthanc 1.12.1 (API 21) added the PS 3.15-2023b profile and made it the default;
    Orthanc 1.12.7 (API 28) writes "Orthanc {version}" as the method of a customised one."""
    isengard, _ = fresh
    data = every_tag_file()
    instance = upload(isengard, [data])["ID"]
    answer = isengard.post(f"/instances/{instance}/anonymize", json={"DicomVersion": "2023b"})
    if ORTHANC_API_VERSION < 21:
        assert answer.status_code == 400
        return
    original, anonymized = pydicom.dcmread(io.BytesIO(data)), pydicom.dcmread(io.BytesIO(answer.content))
    profile = PROFILES["2023b"]
    assert 0x00080012 in profile.removals and 0x00080012 not in PROFILES["2021b"].removals
    assert not [t for t in profile.removals if t in original and t in anonymized]
    assert all(not anonymized[t].value for t in profile.clearings if t in original)
    method = f"Orthanc {ORTHANC_VERSION} - PS 3.15-2023b Table E.1-1 Basic Profile"
    assert anonymized.DeidentificationMethod == method
    default = isengard.post(f"/instances/{instance}/anonymize", json={}).content
    assert pydicom.dcmread(io.BytesIO(default)).DeidentificationMethod == method
    custom = isengard.post(f"/instances/{instance}/anonymize",
                           json={"Replace": {"StationName": "tutu"}}).content
    expected = f"Orthanc {ORTHANC_VERSION}" if ORTHANC_API_VERSION >= 28 else None
    assert pydicom.dcmread(io.BytesIO(custom)).get("DeidentificationMethod") == expected
