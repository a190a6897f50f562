"""Archive and Media jobs: ZIP layout and DICOMDIR against the real Orthanc, job documents,
outputs and MediaArchiveSize, streaming, transcoding, pause/cancel of a 500-instance archive."""

from __future__ import annotations

import hashlib
import io
import re
import struct
import subprocess
import time
import zipfile
import zlib
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pydicom
import pytest
import requests
from pydicom.fileset import FileSet

from conftest import ON_POSTGRESQL, Isengard, Orthanc, Server, dcmtk, dicom_files, sample
from helpers import orthanc_error, wait_job

#: Orthanc 1.10.1 crashes (stack overflow in dcmtk) on this file.
CRASHES_ORTHANC = "2026-05-06-Deeply-Nested-Sequence.dcm"
EXPLICIT_LITTLE = "1.2.840.10008.1.2.1"
IMPLICIT_LITTLE = "1.2.840.10008.1.2"
JPEG_BASELINE = "1.2.840.10008.1.2.4.50"
#: Fields of ``/jobs/{id}`` that differ between any two runs.
VOLATILE = {"ID", "CreationTime", "CompletionTime", "Timestamp", "EffectiveRuntime"}
BULK_FILE = sample("TransferSyntaxes/1.2.840.10008.1.2.1.dcm")


def _members(answer: requests.Response) -> zipfile.ZipFile:
    assert answer.status_code == 200, answer.text
    assert answer.headers["Content-Type"] == "application/zip"
    return zipfile.ZipFile(io.BytesIO(answer.content))


def _submit(server: Server, path: str, body: dict | list) -> str:
    answer = server.post(path, json=body)
    assert answer.status_code == 200, answer.text
    return answer.json()["ID"]


def _error(answer: requests.Response) -> tuple[int, int, str | None]:
    body = answer.json()
    return answer.status_code, body["OrthancStatus"], body.get("Details")


def _zip_files(server: Isengard) -> list[Path]:
    return sorted((server.workdir / "storage" / "jobs").glob("*.zip"))


@pytest.fixture(scope="module")
def both(isengard: Isengard, orthanc: Orthanc) -> tuple[Isengard, Orthanc, list[str]]:
    """Every test file both servers accept, uploaded in the same order to both; the patients."""
    isengard.clear()
    orthanc.clear()
    patients: list[str] = []
    for path in dicom_files():
        if path.name == CRASHES_ORTHANC:
            continue
        data = path.read_bytes()
        theirs = orthanc.post("/instances", data)
        if theirs.status_code != 200:
            continue
        mine = isengard.post("/instances", data)
        if mine.status_code != 200:
            orthanc.delete(f"/instances/{theirs.json()['ID']}")
            continue
        assert mine.json()["ParentPatient"] == theirs.json()["ParentPatient"]
        if mine.json()["ParentPatient"] not in patients:
            patients.append(mine.json()["ParentPatient"])
    assert len(patients) > 50
    return isengard, orthanc, patients


def test_archive_layout_and_names_equal_orthanc(both) -> None:
    isengard, orthanc, patients = both
    mine = _members(isengard.post("/tools/create-archive", json={"Resources": patients}))
    theirs = _members(orthanc.post("/tools/create-archive", json={"Resources": patients}))
    assert mine.namelist() == theirs.namelist()
    names = mine.namelist()
    assert any(re.search(r"/Unknown Study-\d/", n) for n in names)
    assert any("/Unknown Series/00000000.dcm" in n for n in names)
    assert "FromGDCM BRAINIX/0 IRM crbrale neurocrne-2/MR T2WFEEPI/MR000000.dcm" in names
    assert all(n.isascii() and "^" not in n for n in names)
    assert mine.comment == theirs.comment


def test_every_archived_file_is_byte_identical_to_the_stored_instance(both) -> None:
    isengard, _, patients = both
    archive = _members(isengard.post("/tools/create-archive", json=patients))
    stored = Counter(hashlib.sha256(isengard.get(f"/instances/{i}/file").content).hexdigest()
                     for i in isengard.json("/instances"))
    archived = Counter()
    for name in archive.namelist():
        data = archive.read(name)
        pydicom.dcmread(io.BytesIO(data), force=True)
        archived[hashlib.sha256(data).hexdigest()] += 1
    assert archived == stored


def _dump(path: Path) -> list[str]:
    """dcmdump of a DICOMDIR without what legitimately differs: the file meta group, the record
    offsets' base (the meta group's length), and the "now" time of studies whose files have none."""
    run = subprocess.run([dcmtk("dcmdump"), str(path)], capture_output=True, text=True, check=True)
    assert run.stderr == ""
    now = datetime.now(UTC)
    base, lines = 0, []
    for line in run.stdout.splitlines():
        if line.startswith("(0002,"):
            continue
        if first := re.match(r"\(0004,1200\) up (\d+)", line):
            base = int(first.group(1))
        line = re.sub(r"(up |offset=\$)(\d+)", lambda m, base=base: f"{m.group(1)}{max(0, int(m.group(2)) - base)}",
                      line)
        if (time_of_day := re.search(r"TM \[(\d{6})\.000000\]", line)) and _recent(time_of_day.group(1), now):
            line = line.replace(time_of_day.group(0), "TM [now]")
        lines.append(line)
    return lines


def _recent(hhmmss: str, now: datetime) -> bool:
    moment = now.replace(hour=int(hhmmss[:2]), minute=int(hhmmss[2:4]), second=int(hhmmss[4:]))
    return abs((now - moment).total_seconds()) < 120


def _complete_media(answer: requests.Response) -> bool:
    """A 200 answer whose ZIP is whole (a stream that failed midway is cut short)."""
    try:
        return answer.status_code == 200 and _members(answer).namelist()[-1] == "DICOMDIR"
    except zipfile.BadZipFile:
        return False


def _unzip(archive: zipfile.ZipFile, folder: Path) -> Path:
    archive.extractall(folder)
    return folder


@pytest.fixture(scope="module")
def accepted(both) -> list[str]:
    """The patients Orthanc makes a media of: it refuses a DICOMDIR for files without
    SOPClassUID, with UN identifiers or without file meta."""
    _, orthanc, patients = both
    found = [p for p in patients if _complete_media(orthanc.post(f"/patients/{p}/media", json={}))]
    assert 0 < len(found) < len(patients)
    return found


@pytest.fixture(scope="module")
def uncompressed(both, accepted) -> list[str]:
    """Accepted patients whose files are all little endian uncompressed."""
    isengard, _, _ = both
    found = []
    for patient in accepted:
        files = [isengard.get(f"/instances/{i['ID']}/file").content
                 for i in isengard.json(f"/patients/{patient}/instances")]
        syntaxes = {str(pydicom.dcmread(io.BytesIO(f), force=True, stop_before_pixels=True)
                        .file_meta.get("TransferSyntaxUID", "")) for f in files}
        if syntaxes <= {EXPLICIT_LITTLE, IMPLICIT_LITTLE}:
            found.append(patient)
    assert len(found) > 5
    return found


@pytest.mark.parametrize("route", ["create-media", "create-media-extended"])
def test_media_and_dicomdir_equal_orthanc(both, accepted, tmp_path: Path, route: str) -> None:
    isengard, orthanc, patients = both
    mine = _members(isengard.post(f"/tools/{route}", json={"Resources": accepted}))
    theirs = _members(orthanc.post(f"/tools/{route}", json={"Resources": accepted}))
    assert mine.namelist() == theirs.namelist()
    assert mine.namelist()[:2] == ["IMAGES/IM0", "IMAGES/IM1"] and mine.namelist()[-1] == "DICOMDIR"
    mine_dir = _unzip(mine, tmp_path / "mine")
    assert _dump(mine_dir / "DICOMDIR") == _dump(_unzip(theirs, tmp_path / "theirs") / "DICOMDIR")
    descriptions = sum("SeriesDescription" in line for line in _dump(mine_dir / "DICOMDIR"))
    assert (descriptions > 0) == (route == "create-media-extended")
    fileset = FileSet(mine_dir / "DICOMDIR")
    assert len(fileset) == len(mine.namelist()) - 1
    for instance in fileset:
        on_disk = pydicom.dcmread(instance.path, force=True)
        assert on_disk.SOPInstanceUID == instance.SOPInstanceUID
    refused = next(p for p in patients if p not in accepted and len(isengard.json(f"/patients/{p}/instances")) == 1)
    assert _error(isengard.post(f"/patients/{refused}/media", json={}))[:2] == (400, 15)


def test_async_archive_job_document_equals_orthanc(both) -> None:
    isengard, orthanc, patients = both
    study = isengard.json(f"/patients/{patients[0]}")["Studies"][0]
    documents = []
    for server in (isengard, orthanc):
        job = _submit(server, f"/studies/{study}/archive", {"Asynchronous": True, "Priority": 3})
        documents.append(wait_job(server, job, {"Success"}))
        download = server.get(f"/jobs/{job}/archive")
        assert download.headers["Content-Disposition"] == 'filename="archive.zip"'
        assert str(len(download.content)) == documents[-1]["Content"]["ArchiveSize"]
    mine, theirs = ({k: v for k, v in d.items() if k not in VOLATILE} for d in documents)
    for document in (mine, theirs):  # deflated at 1 and at 6: see the next test
        document["Content"].pop("ArchiveSize")
    assert mine == theirs
    assert set(documents[0]) == set(documents[1])
    assert mine["Type"] == "Archive" and mine["Priority"] == 3


def test_archive_at_orthancs_level_has_orthancs_size(both, make_isengard) -> None:
    """With ``"ZipCompressionLevel": 6`` (Orthanc's, whose minizip uses the same zlib), an
    archive is byte for byte the size of Orthanc's."""
    isengard, orthanc, patients = both
    study = isengard.json(f"/patients/{patients[0]}")["Studies"][0]
    level6 = make_isengard(ZipCompressionLevel=6)
    for instance in isengard.json(f"/studies/{study}/instances"):
        level6.upload(isengard.get(f"/instances/{instance['ID']}/file").content)
    sizes = []
    for server in (level6, orthanc):
        job = _submit(server, f"/studies/{study}/archive", {"Asynchronous": True})
        sizes.append(wait_job(server, job, {"Success"})["Content"]["ArchiveSize"])
    assert sizes[0] == sizes[1]


def test_async_media_job_document_equals_orthanc(both, uncompressed) -> None:
    isengard, orthanc, _ = both
    body = {"Resources": uncompressed[:4], "Asynchronous": True, "Transcode": EXPLICIT_LITTLE}
    documents = [wait_job(server, _submit(server, "/tools/create-media", body), {"Success"})
                 for server in (isengard, orthanc)]
    mine, theirs = ({k: v for k, v in d.items() if k not in VOLATILE} for d in documents)
    for document in (mine, theirs):  # the DICOMDIR's file meta differs (implementation UID)
        document["Content"].pop("ArchiveSize")
    assert mine == theirs
    assert mine["Type"] == "Media" and mine["Content"]["Transcode"] == EXPLICIT_LITTLE


def test_synchronous_answers_stream_the_zip(both) -> None:
    isengard, orthanc, patients = both
    study = isengard.json(f"/patients/{patients[1]}")["Studies"][0]
    before = set(isengard.json("/jobs"))
    for method in ("GET", "POST"):
        answers = [server.session.request(method, f"{server.url}/studies/{study}/archive",
                                          headers={"Accept-Encoding": "gzip"}, timeout=60,
                                          data=b"{}" if method == "POST" else None)
                   for server in (isengard, orthanc)]
        for answer in answers:
            assert answer.status_code == 200
            assert answer.headers["Content-Type"] == "application/zip"
            assert answer.headers["Content-Disposition"] == f'filename="{study}.zip"'
            assert "Content-Length" not in answer.headers and "Content-Encoding" not in answer.headers
        assert _members(answers[0]).namelist() == _members(answers[1]).namelist()
    media = isengard.get(f"/studies/{study}/media?extended")
    assert _members(media).namelist()[-1] == "DICOMDIR"
    jobs = [isengard.json(f"/jobs/{j}") for j in set(isengard.json("/jobs")) - before]
    assert sorted(j["Type"] for j in jobs) == ["Archive", "Archive", "Media"]
    assert all(j["State"] == "Success" for j in jobs)
    assert all(isengard.get(f"/jobs/{j['ID']}/archive").status_code == 404 for j in jobs)
    _only_outputs_on_disk(isengard)


def _only_outputs_on_disk(server: Isengard, timeout: float = 5) -> None:
    """Only the outputs of finished asynchronous jobs stay on disk: the ZIPs of synchronous jobs
    (once sent) and of failed or canceled ones are deleted."""
    outputs = {j for j in server.json("/jobs") if server.get(f"/jobs/{j}/archive").status_code == 200}
    deadline = time.monotonic() + timeout
    while len(_zip_files(server)) != len(outputs) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(_zip_files(server)) == len(outputs)


def test_request_errors_equal_orthanc(both) -> None:
    isengard, orthanc, patients = both
    study = isengard.json(f"/patients/{patients[0]}")["Studies"][0]
    unknown = "0" * 8 + "-" + "-".join(["0" * 8] * 4)
    cases = [
        ("POST", f"/studies/{unknown}/archive", b"{}"),
        ("GET", f"/series/{unknown}/media", None),
        ("POST", f"/studies/{study}/archive", b"not json"),
        ("POST", f"/studies/{study}/archive", b'{"Transcode": 5}'),
        ("POST", f"/studies/{study}/archive", b'{"Transcode": "1.2.3"}'),
        ("GET", f"/studies/{study}/archive?transcode=1.2.3", None),
        ("POST", f"/studies/{study}/media", b'{"Extended": "yes"}'),
        ("POST", "/tools/create-archive", b"{}"),
        ("POST", "/tools/create-archive", b"[1]"),
        ("POST", "/tools/create-media", b'{"Resources": "x"}'),
        ("POST", "/tools/create-archive", f'["{unknown}"]'.encode()),
        ("POST", "/tools/create-archive", f'{{"Resources": ["{unknown}"], "Asynchronous": true}}'.encode()),
        ("POST", f"/studies/{unknown}/archive", b'{"Asynchronous": true}'),
    ]
    for method, path, body in cases:
        answers = [server.session.request(method, server.url + path, data=body, timeout=60)
                   for server in (isengard, orthanc)]
        assert _error(answers[0]) == _error(answers[1]), (method, path)
    # Orthanc 1.12.2 answers GET too (405 in 1.10.1): resources are then mandatory
    assert orthanc_error(isengard.get("/tools/create-archive")) == (400, 8, "Missing resources argument")


def test_transcoding_to_uncompressed_syntaxes(both, uncompressed, tmp_path: Path) -> None:
    isengard, _, _ = both
    for target in (EXPLICIT_LITTLE, IMPLICIT_LITTLE):
        archive = _members(isengard.post("/tools/create-media", json={"Resources": uncompressed, "Transcode": target}))
        folder = _unzip(archive, tmp_path / target)
        for instance in FileSet(folder / "DICOMDIR"):
            assert instance.ReferencedTransferSyntaxUIDInFile == target
            ds = pydicom.dcmread(instance.path)
            assert ds.file_meta.TransferSyntaxUID == target
            found = isengard.post("/tools/lookup", data=ds.SOPInstanceUID).json()[0]["ID"]
            original = pydicom.dcmread(io.BytesIO(isengard.get(f"/instances/{found}/file").content), force=True)
            assert _values(ds) == _values(original)


def _values(ds: pydicom.Dataset) -> list:
    """Public element values, recursively, without the retired group lengths (pydicom drops them).
    Private elements of an implicit VR file become UN in explicit VR (as with dcmtk), and pydicom
    reads an implicit "US or OW" element as OW: 16-bit values are compared as bytes."""
    def value(e: pydicom.DataElement) -> object:
        if e.VR == "SQ":
            return [_values(item) for item in e.value]
        if e.VR in ("US", "SS") and e.value is not None:
            numbers = e.value if isinstance(e.value, list | pydicom.multival.MultiValue) else [e.value]
            return struct.pack(f"<{len(numbers)}{'H' if e.VR == 'US' else 'h'}", *numbers)
        return e.value
    public = [tag for tag in ds.keys() if not tag.is_private and tag.element != 0]
    return [(tag, value(ds[tag])) for tag in public]


def test_untranscodable_instances_are_archived_as_they_are(both) -> None:
    """As Orthanc's archive job: an instance the transcoder cannot convert (here 16-bit pixels to
    baseline JPEG) goes into the archive in its own syntax; the two servers agree file by file."""
    isengard, orthanc, patients = both
    syntaxes = []
    for server, patient in ((isengard, patients[0]), (orthanc, orthanc.json("/patients")[0])):
        study = server.json(f"/patients/{patient}")["Studies"][0]
        answer = server.post(f"/studies/{study}/archive", json={"Transcode": JPEG_BASELINE})
        assert answer.status_code == 200
        members = _members(answer)
        syntaxes.append(sorted(str(pydicom.dcmread(io.BytesIO(members.read(n)), force=True,
                                                   stop_before_pixels=True).file_meta.TransferSyntaxUID)
                               for n in members.namelist()))
    assert syntaxes[0] == syntaxes[1], syntaxes
    _only_outputs_on_disk(isengard)


def test_stream_broken_by_a_late_failure(both) -> None:
    """Bytes already sent cannot become an error document: the connection is cut instead (here
    a stored file, damaged on disk, cannot be transcoded, after ten that could)."""
    isengard, _, patients = both
    archive = _members(isengard.post("/tools/create-archive", json=patients))
    order = [pydicom.dcmread(io.BytesIO(archive.read(n)), force=True, stop_before_pixels=True)
             for n in archive.namelist()]
    syntaxes = [str(ds.file_meta.get("TransferSyntaxUID", "")) for ds in order]
    plain = [i for i, syntax in enumerate(syntaxes) if syntax in (EXPLICIT_LITTLE, IMPLICIT_LITTLE)]
    chosen = plain[:11]
    ids = [isengard.post("/tools/lookup", data=order[i].SOPInstanceUID).json()[0]["ID"] for i in chosen]
    damaged = isengard.json(f"/instances/{ids[-1]}/attachments/dicom/info")["Uuid"]
    path = isengard.workdir / "storage" / damaged[0:2] / damaged[2:4] / damaged
    original = path.read_bytes()
    path.write_bytes(b"damaged" * 100)
    try:
        with pytest.raises(requests.exceptions.ChunkedEncodingError):
            isengard.post("/tools/create-archive", json={"Resources": ids, "Transcode": JPEG_BASELINE})
    finally:
        path.write_bytes(original)


# -- a dedicated server with 500 instances --------------------------------------------------

def _bulk_study(server: Isengard, count: int) -> str:
    """``count`` instances of one new study, made from one small file by changing its UIDs."""
    ds = pydicom.dcmread(BULK_FILE)
    ds.PatientID, ds.StudyInstanceUID, ds.SeriesInstanceUID = "BULK", pydicom.uid.generate_uid(), \
        pydicom.uid.generate_uid()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as upload:
        for number in range(count):
            ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = pydicom.uid.generate_uid()
            one = io.BytesIO()
            ds.save_as(one)
            upload.writestr(f"{number}.dcm", one.getvalue())
    answers = server.post("/instances", buffer.getvalue()).json()
    assert len(answers) == count
    return answers[0]["ParentStudy"]


@pytest.fixture(scope="module")
def bulk(tmp_path_factory: pytest.TempPathFactory):
    server = Isengard(tmp_path_factory.mktemp("bulk"), MediaArchiveSize=2).start()
    yield server, _bulk_study(server, 500)
    if server.process is not None and server.process.poll() is None:
        server.stop()


def test_500_instance_archive_pauses_and_cancels_within_a_second(bulk) -> None:
    server, study = bulk
    job = _submit(server, f"/studies/{study}/archive", {"Asynchronous": True})
    wait_job(server, job, {"Running"})
    deadline = time.monotonic() + 30  # on a loaded machine a running job may not have stepped yet
    while server.json(f"/jobs/{job}")["Progress"] == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    asked = time.monotonic()
    assert server.post(f"/jobs/{job}/pause").status_code == 200
    paused = wait_job(server, job, {"Paused"}, timeout=1)
    assert time.monotonic() - asked < 1 and 0 < paused["Progress"] < 100
    assert server.post(f"/jobs/{job}/resume").status_code == 200
    wait_job(server, job, {"Running"})
    asked = time.monotonic()
    assert server.post(f"/jobs/{job}/cancel").status_code == 200
    canceled = wait_job(server, job, {"Failure"}, timeout=1)
    assert time.monotonic() - asked < 1 and canceled["ErrorCode"] == 37
    assert _zip_files(server) == []
    assert server.post(f"/jobs/{job}/resubmit").status_code == 200
    done = wait_job(server, job, {"Success"}, timeout=60)
    assert done["Content"]["InstancesCount"] == 500
    archive = _members(server.get(f"/jobs/{job}/archive"))
    assert len(archive.namelist()) == 500 and archive.namelist()[-1].endswith("/US000499.dcm")


def test_media_archive_size_keeps_the_most_recently_used_outputs(bulk) -> None:
    server, study = bulk
    series = server.json(f"/studies/{study}")["Series"][0]
    instance = server.json(f"/series/{series}")["Instances"][0]
    jobs = []
    for _ in range(2):
        jobs.append(_submit(server, "/tools/create-archive", {"Resources": [instance], "Asynchronous": True}))
        wait_job(server, jobs[-1], {"Success"})
    assert server.get(f"/jobs/{jobs[0]}/archive").status_code == 200  # now the most recently used
    jobs.append(_submit(server, "/tools/create-media", {"Resources": [instance], "Asynchronous": True}))
    wait_job(server, jobs[-1], {"Success"})
    evicted = server.get(f"/jobs/{jobs[1]}/archive")
    assert _error(evicted) == (404, 7, "Job has no such output: archive")
    assert server.json(f"/jobs/{jobs[1]}")["State"] == "Success"
    assert server.get(f"/jobs/{jobs[0]}/archive").status_code == 200
    assert server.get(f"/jobs/{jobs[2]}/archive").status_code == 200
    assert len(_zip_files(server)) == 2


def test_default_media_archive_size_keeps_one_output(make_isengard) -> None:
    server = make_isengard()
    study = server.upload(sample("Series/Lena-1.dcm"))["ParentStudy"]
    first = _submit(server, f"/studies/{study}/archive", {"Asynchronous": True})
    wait_job(server, first, {"Success"})
    second = _submit(server, f"/studies/{study}/media", {"Asynchronous": True})
    wait_job(server, second, {"Success"})
    assert server.get(f"/jobs/{first}/archive").status_code == 404
    assert server.json(f"/jobs/{first}")["State"] == "Success"
    assert _members(server.get(f"/jobs/{second}/archive")).namelist() == ["IMAGES/IM0", "DICOMDIR"]


def test_get_streams_while_the_job_runs(bulk) -> None:
    server, study = bulk
    with server.session.get(f"{server.url}/studies/{study}/archive", stream=True, timeout=60) as answer:
        assert answer.headers.get("Transfer-Encoding") == "chunked"
        assert "Content-Length" not in answer.headers
        chunks = answer.iter_content(64 * 1024)
        first = next(chunks)
        assert first.startswith(b"PK\x03\x04")
        running = [j for j in server.json("/jobs?expand") if j["State"] == "Running"]
        assert len(running) == 1 and running[0]["Progress"] < 100
        rest = b"".join(chunks)
    assert len(zipfile.ZipFile(io.BytesIO(first + rest)).namelist()) == 500
    wait_job(server, running[0]["ID"], {"Success"})
    assert server.get(f"/jobs/{running[0]['ID']}/archive").status_code == 404


def test_synchronous_zip_without_stream_has_a_content_length(make_isengard) -> None:
    server = make_isengard(SynchronousZipStream=False)
    study = server.upload(sample("Series/Lena-1.dcm"))["ParentStudy"]
    server.upload(sample("Series/Lena-2.dcm"))
    answer = server.get(f"/studies/{study}/archive", headers={"Accept-Encoding": "gzip"})
    archive = _members(answer)
    assert int(answer.headers["Content-Length"]) == len(answer.content)
    assert "Content-Encoding" not in answer.headers
    assert answer.headers["Content-Disposition"] == f'filename="{study}.zip"'
    assert len(archive.namelist()) == 2
    assert _zip_files(server) == []


@pytest.mark.parametrize("level", [None, 0, 9])
def test_zip_compression_level(make_isengard, level: int | None) -> None:
    """Isengard's ``ZipCompressionLevel`` (default 1; Orthanc always deflates at 6, for files
    about 5 % smaller at 2 to 7 times the CPU): each file deflated at that level, or stored at 0,
    in synchronous, asynchronous and media archives alike."""
    server = make_isengard() if level is None else make_isengard(ZipCompressionLevel=level)
    expected = 1 if level is None else level
    uploaded = server.upload(sample("Series/Lena-1.dcm"))
    original = server.get(f"/instances/{uploaded['ID']}/file").content
    job = _submit(server, "/tools/create-media", {"Resources": [uploaded["ParentStudy"]], "Asynchronous": True})
    wait_job(server, job, {"Success"})
    for archive in (_members(server.get(f"/studies/{uploaded['ParentStudy']}/archive")),
                    _members(server.get(f"/jobs/{job}/archive"))):
        members = [info for info in archive.infolist() if not info.is_dir()]
        assert original in [archive.read(info) for info in members]
        for info in members:
            data = archive.read(info)
            if expected == 0:
                assert (info.compress_type, info.compress_size) == (zipfile.ZIP_STORED, len(data))
            else:
                deflate = zlib.compressobj(expected, zlib.DEFLATED, -zlib.MAX_WBITS)
                assert info.compress_type == zipfile.ZIP_DEFLATED
                assert info.compress_size == len(deflate.compress(data) + deflate.flush())


def test_archive_jobs_survive_a_restart(bulk) -> None:
    """Beyond Orthanc: a finished output stays downloadable, an interrupted archive starts over."""
    server, study = bulk
    small = server.json(f"/studies/{study}")["Series"][0]
    done = _submit(server, "/tools/create-archive", {"Resources": [small], "Asynchronous": True})
    wait_job(server, done, {"Success"}, timeout=60)
    expected = server.get(f"/jobs/{done}/archive").content
    running = _submit(server, f"/studies/{study}/archive", {"Asynchronous": True})
    wait_job(server, running, {"Running"})
    server.kill()
    server.start()
    assert server.get(f"/jobs/{done}/archive").content == expected
    finished = wait_job(server, running, {"Success"}, timeout=60)
    assert finished["Content"]["InstancesCount"] == 500
    assert len(_members(server.get(f"/jobs/{running}/archive")).namelist()) == 500
    # The outputs of other tests' jobs went at the restart (MediaArchiveSize is 2), except in
    # a cluster: there the capacity bounds the outputs of the jobs a node ran since it
    # started, and a saved job's output stays while the job is in the history (ArchiveFiles).
    kept = len(_zip_files(server))
    assert kept == 2 or (ON_POSTGRESQL and kept > 2)
