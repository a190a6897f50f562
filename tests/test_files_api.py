"""Orthanc 1.11-1.13's "files" API: the ``filename`` argument that names a download
(``Content-Disposition``, sanitized as Orthanc 1.12.11 does) and HTTP ``Range`` requests on
attachments (Orthanc 1.12.5's ``StorageRange``), with requests, http.client and curl."""

from __future__ import annotations

import http.client
import io
import subprocess
import zipfile

import pydicom
import pytest

from conftest import Isengard, Orthanc, sample
from helpers import orthanc_error, wait_job

DICOM = sample("ColorTestMalaterre.dcm")


@pytest.fixture(scope="module")
def stored(tmp_path_factory: pytest.TempPathFactory) -> tuple[Isengard, dict]:
    """An Isengard holding one instance and a user attachment on its patient."""
    server = Isengard(tmp_path_factory.mktemp("files"), UserContentType={"sample": 1025}).start()
    answer = server.upload(DICOM)
    assert server.put(f"/patients/{answer['ParentPatient']}/attachments/sample", b"0123456789").status_code == 200
    yield server, answer
    server.stop()


def raw_get(server: Isengard, path: str, headers: dict[str, str] | None = None) -> http.client.HTTPResponse:
    """A GET with the path sent as is (quotes and line breaks included, as a careless client would)."""
    connection = http.client.HTTPConnection("127.0.0.1", server.http_port, timeout=60)
    connection.putrequest("GET", path, skip_accept_encoding=True)
    for name, value in (headers or {}).items():
        connection.putheader(name, value)
    connection.endheaders()
    response = connection.getresponse()
    response.read()
    connection.close()
    return response


# -- filename ----------------------------------------------------------------------------------


def test_instance_file_filename(stored: tuple[Isengard, dict]) -> None:
    server, answer = stored
    instance = answer["ID"]
    default = server.get(f"/instances/{instance}/file")
    assert default.headers["Content-Disposition"].endswith('.dcm"')
    named = server.get(f"/instances/{instance}/file", params={"filename": "toto.dcm"})
    assert named.headers["Content-Disposition"] == 'filename="toto.dcm"'
    assert named.content == DICOM.read_bytes()
    transcoded = server.get(f"/instances/{instance}/file",
                            params={"transcode": "1.2.840.10008.1.2.1", "filename": "t.dcm"})
    assert (transcoded.status_code, transcoded.headers["Content-Disposition"]) == (200, 'filename="t.dcm"')
    quoted = server.get(f"/instances/{instance}/file", params={"filename": '"toto".dcm'})
    assert quoted.headers["Content-Disposition"] == 'filename="toto.dcm"'


def test_filename_cannot_add_a_header(stored: tuple[Isengard, dict]) -> None:
    """A line break in ``filename`` is dropped: no header is injected (Orthanc 1.12.11)."""
    server, answer = stored
    response = raw_get(server, f"/instances/{answer['ID']}/file?filename=toto.dcm%22%0D%0ASet-Cookie:evil=1")
    assert response.status == 200
    assert response.getheader("Set-Cookie") is None
    assert response.getheader("Content-Disposition") == 'filename="toto.dcmSet-Cookie:evil=1"'


def test_attachment_data_filename(stored: tuple[Isengard, dict]) -> None:
    server, answer = stored
    dicom = server.get(f"/instances/{answer['ID']}/attachments/dicom/data", params={"filename": "toto.dcm"})
    assert (dicom.headers["Content-Disposition"], dicom.headers["Content-Type"]) == (
        'filename="toto.dcm"', "application/dicom")
    sample_data = server.get(f"/patients/{answer['ParentPatient']}/attachments/sample/data?filename=a.bin")
    assert (sample_data.content, sample_data.headers["Content-Disposition"]) == (b"0123456789", 'filename="a.bin"')
    stored_as_is = server.get(f"/instances/{answer['ID']}/attachments/dicom/compressed-data?filename=c.dcm")
    assert (stored_as_is.headers["Content-Type"], stored_as_is.headers["Content-Disposition"]) == (
        "application/dicom", 'filename="c.dcm"')  # not compressed: answered as data (Orthanc 1.12.5)


def test_archive_filename(stored: tuple[Isengard, dict]) -> None:
    server, answer = stored
    study = answer["ParentStudy"]
    default = server.get(f"/studies/{study}/archive")
    assert default.headers["Content-Disposition"] == f'filename="{study}.zip"'
    for kind in ("archive", "media"):
        named = server.get(f"/studies/{study}/{kind}", params={"filename": '"toto".zip'})
        assert named.headers["Content-Disposition"] == 'filename="toto.zip"'
        assert zipfile.ZipFile(io.BytesIO(named.content)).namelist()
    posted = server.post(f"/series/{answer['ParentSeries']}/archive", json={"Filename": "s.zip"})
    assert posted.headers["Content-Disposition"] == 'filename="s.zip"'
    ignored = server.post(f"/series/{answer['ParentSeries']}/archive", json={"Filename": 3})
    assert ignored.headers["Content-Disposition"] == f'filename="{answer["ParentSeries"]}.zip"'
    tools = server.post("/tools/create-media", json={"Resources": [study], "Filename": "m.zip"})
    assert tools.headers["Content-Disposition"] == 'filename="m.zip"'


def test_archive_job_output_filename(stored: tuple[Isengard, dict]) -> None:
    """An asynchronous job keeps its ``Filename`` for its output (saved with the job)."""
    server, answer = stored
    job = server.post(f"/series/{answer['ParentSeries']}/archive",
                      json={"Synchronous": False, "Filename": 'tot"o.zip'}).json()["ID"]
    wait_job(server, job, {"Success"})
    download = server.get(f"/jobs/{job}/archive")
    assert download.headers["Content-Disposition"] == 'filename="toto.zip"'
    unnamed = server.post("/tools/create-archive", json={"Resources": [answer["ParentStudy"]],
                                                          "Asynchronous": True}).json()["ID"]
    wait_job(server, unnamed, {"Success"})
    assert server.get(f"/jobs/{unnamed}/archive").headers["Content-Disposition"] == 'filename="archive.zip"'


# -- Range ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("header", "content", "content_range"), [
    ("bytes=2-4", b"234", "bytes 2-4/10"),
    ("bytes=7-", b"789", "bytes 7-9/10"),
    ("bytes=-2", b"012", "bytes 0-2/10"),  # Orthanc's reading: bytes 0 to 2, not the last two
    ("bytes=-", b"0123456789", "bytes 0-9/10"),
    ("bytes=9-9", b"9", "bytes 9-9/10"),
])
def test_range_on_attachment(stored: tuple[Isengard, dict], header: str, content: bytes,
                             content_range: str) -> None:
    server, answer = stored
    for operation in ("data", "compressed-data"):
        part = server.get(f"/patients/{answer['ParentPatient']}/attachments/sample/{operation}",
                          headers={"Range": header, "Accept-Encoding": "gzip"})
        assert part.status_code == 206
        assert (part.content, part.headers["Content-Range"]) == (content, content_range)
        assert part.headers["Content-Type"] == "application/octet-stream"
        assert part.headers["Content-Length"] == str(len(content))
        assert "Content-Disposition" not in part.headers and "Content-Encoding" not in part.headers


@pytest.mark.parametrize("header", ["bytes=10-", "bytes=3-10", "bytes=5-2", "bytes=", "bytes=1-2,4-5",
                                    "bytes=-1-3", "items=1-2", "bytes=a-b", "bytes=0-1, 3-4"])
def test_unsatisfiable_range(stored: tuple[Isengard, dict], header: str) -> None:
    server, answer = stored
    refused = server.get(f"/patients/{answer['ParentPatient']}/attachments/sample/data", headers={"Range": header})
    assert orthanc_error(refused)[:2] == (416, 41)


def test_range_read_before_the_lookup(stored: tuple[Isengard, dict]) -> None:
    """As in Orthanc, the header is read first: a bad range on an unknown attachment is 416."""
    server, _ = stored
    unknown = "/patients/00000000-00000000-00000000-00000000-00000000/attachments/sample/data"
    assert server.get(unknown, headers={"Range": "x"}).status_code == 416
    assert server.get(unknown, headers={"Range": "bytes=0-1"}).status_code == 404


def test_range_of_dicom_file_with_curl(stored: tuple[Isengard, dict]) -> None:
    server, answer = stored
    url = f"{server.url}/instances/{answer['ID']}/attachments/dicom/data"
    run = subprocess.run(["curl", "-s", "-D", "-", "-r", "128-131", url], capture_output=True, check=True, timeout=60)
    head, _, body = run.stdout.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 206")
    size = DICOM.stat().st_size
    assert f"Content-Range: bytes 128-131/{size}".encode() in head
    assert body == b"DICM"


def test_range_on_compressed_storage(make_isengard) -> None:
    """``data`` ranges over the content, ``compressed-data`` over the stored (zlib) bytes."""
    server = make_isengard(StorageCompression=True)
    instance = server.upload(DICOM)["ID"]
    base = f"/instances/{instance}/attachments/dicom"
    info = server.json(f"{base}/info")
    part = server.get(f"{base}/data", headers={"Range": "bytes=128-131"})
    assert (part.status_code, part.content) == (206, b"DICM")
    assert part.headers["Content-Range"] == f"bytes 128-131/{info['UncompressedSize']}"
    compressed = server.get(f"{base}/compressed-data?filename=c.dcm")
    assert compressed.headers["Content-Type"] == "application/octet-stream"
    assert "Content-Disposition" not in compressed.headers
    stored_bytes = compressed.content
    tail = server.get(f"{base}/compressed-data", headers={"Range": "bytes=8-"})
    assert tail.content == stored_bytes[8:]
    assert tail.headers["Content-Range"] == f"bytes 8-{info['CompressedSize'] - 1}/{info['CompressedSize']}"
    server.assert_loop_never_blocked()


# -- whole -----------------------------------------------------------------------------------------


def trailing_tags_file() -> bytes:
    """A small image (implicit VR: the private value is UN, hence null as in Orthanc) followed
    by private tags stored after its pixel data."""
    ds = pydicom.dcmread(sample("ColorTestMalaterre.dcm"))
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = "1.2.826.0.1.3680043.2.1125.7.1"
    block = ds.private_block(0x7FE1, "ISENGARD TRAILER", create=True)
    block.add_new(0x01, "LO", "after the pixels")
    buffer = io.BytesIO()
    ds.save_as(buffer)
    return buffer.getvalue()


def test_tags_after_pixel_data_only_with_whole(stored: tuple[Isengard, dict], orthanc: Orthanc) -> None:
    server, _ = stored
    data = trailing_tags_file()
    instance = server.upload(data)["ID"]
    plain = server.json(f"/instances/{instance}/tags")
    assert "7fe1,1001" not in plain and "7fe0,0010" in plain
    reference = orthanc.upload(data)["ID"]
    assert sorted(plain) == sorted(orthanc.json(f"/instances/{reference}/tags"))  # Orthanc 1.10.1 stops too
    whole = server.json(f"/instances/{instance}/tags?whole")
    assert whole["7fe1,1001"]["Type"] == "Null"
    assert whole["7fe1,0010"]["Value"] == "ISENGARD TRAILER"
    assert {k: v for k, v in whole.items() if not k.startswith("7fe1")} == plain
    assert server.json(f"/instances/{instance}/tags?whole=true&short")["7fe1,0010"] == "ISENGARD TRAILER"
    assert "7fe1,0010" not in server.json(f"/instances/{instance}/tags?whole=false&short")
    simplified = server.json(f"/instances/{instance}/simplified-tags?whole=1")
    assert "ISENGARD TRAILER" in simplified.values()
    assert "ISENGARD TRAILER" in server.json(f"/instances/{instance}/tags?simplify&whole").values()
    assert "ISENGARD TRAILER" not in server.json(f"/instances/{instance}/simplified-tags").values()
    assert orthanc_error(server.get(f"/instances/{instance}/tags?whole=yes"))[:2] == (400, 3)


def test_private_tags_after_pixel_data_of_a_real_file(stored: tuple[Isengard, dict]) -> None:
    """A file whose private block follows the pixel data (Orthanc forum, 2024): shown as
    strings with ``whole`` in every format, hidden without it."""
    server, _ = stored
    instance = server.upload(sample("2024-05-30-GuillemVela.dcm"))["ID"]
    assert "8e05,1000" not in server.json(f"/instances/{instance}/tags?full")
    full = server.json(f"/instances/{instance}/tags?full&whole")
    assert (full["8e05,0010"]["Value"], full["8e05,1000"]["Value"]) == ("XEOS_Attributes", "acquisition")
    assert server.json(f"/instances/{instance}/tags?short&whole")["8e05,1001"] == "specimen"
    assert "Unknown Tag & Data" in server.json(f"/instances/{instance}/simplified-tags?whole")
    assert "Unknown Tag & Data" not in server.json(f"/instances/{instance}/tags?simplify")


def test_archive_job_filename_survives_a_restart(make_isengard) -> None:
    server = make_isengard()
    series = server.upload(DICOM)["ParentSeries"]
    job = server.post(f"/series/{series}/archive", json={"Asynchronous": True, "Filename": "kept.zip"}).json()["ID"]
    wait_job(server, job, {"Success"})
    server.stop()
    server.start()
    download = server.get(f"/jobs/{job}/archive")
    assert (download.status_code, download.headers["Content-Disposition"]) == (200, 'filename="kept.zip"')
