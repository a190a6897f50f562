"""Hostile request bodies: refused from the headers, capped, streamed, never whole in memory.

Memory is the peak resident size (VmHWM) of the server process the test started.
"""

from __future__ import annotations

import base64
import gzip
import http.client
import io
import json
import socket
import subprocess
import threading
import time
import zipfile
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from conftest import Isengard, dcmtk, dcmtk_env, sample

CT = sample("ColorTestMalaterre.dcm")
MB = 1024 * 1024
#: The ceiling the issue sets for a server handling a 1 GB body.
RSS_LIMIT_KB = 400 * 1024


def peak_rss_kb(server: Isengard) -> int:
    assert server.process is not None
    for line in Path(f"/proc/{server.process.pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")


def raw_request(server: Isengard, head: str, body: bytes = b"", timeout: float = 10) -> bytes:
    """Send the request head and a body (from a thread, as the server may answer and close
    before reading it all), read what the server answers."""
    with socket.create_connection(("127.0.0.1", server.http_port), timeout=timeout) as sock:
        sender = threading.Thread(target=_send, args=(sock, head.encode("latin-1") + b"\r\n" + body))
        sender.start()
        answer = b""
        while b"\r\n\r\n" not in answer or not _complete(answer):
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
        sender.join()
        return answer


def _send(sock: socket.socket, data: bytes) -> None:
    try:
        sock.sendall(data)
    except OSError:
        pass


def _complete(answer: bytes) -> bool:
    head, _, body = answer.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return len(body) >= int(line.split(b":")[1])
    return True


def zeros(total: int, chunk: int = MB) -> Iterator[bytes]:
    block = bytes(chunk)
    for _ in range(total // chunk):
        yield block


def gzip_bomb(size: int) -> bytes:
    compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = bytes(MB)
    return b"".join(compressor.compress(block) for _ in range(size // MB)) + compressor.flush()


@pytest.fixture
def secured(make_isengard) -> Isengard:
    return make_isengard(AuthenticationEnabled=True, RegisteredUsers={"alice": "secret"})


def test_unauthenticated_request_is_refused_before_its_body(secured: Isengard) -> None:
    """A 1 GiB body announced, none sent: the 401 comes from the headers alone."""
    answer = raw_request(secured, "POST /instances HTTP/1.1\r\nHost: x\r\n"
                                  "Content-Length: 1073741824\r\n", timeout=5)
    assert answer.startswith(b"HTTP/1.1 401"), answer[:100]
    assert b"www-authenticate" in answer.lower()


def test_unauthenticated_gzip_bomb_costs_nothing(secured: Isengard) -> None:
    bomb = gzip_bomb(1024 * MB)
    answer = secured.post("/tools/lookup", bomb, headers={"Content-Encoding": "gzip"})
    assert answer.status_code == 401
    assert peak_rss_kb(secured) < 200 * 1024


def test_body_past_maximum_size_is_413_from_its_length(make_isengard) -> None:
    server = make_isengard(MaximumRequestBodySizeMB=1)
    answer = raw_request(server, "POST /tools/lookup HTTP/1.1\r\nHost: x\r\n"
                                 f"Content-Length: {2 * MB}\r\n", timeout=5)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:100]
    assert b'"HttpStatus" : 413' in answer
    assert server.post("/tools/lookup", b"1.2.3").status_code == 200


def test_chunked_body_past_maximum_size_is_413(make_isengard) -> None:
    server = make_isengard(MaximumRequestBodySizeMB=1)
    chunk = b"%x\r\n%s\r\n" % (64 * 1024, bytes(64 * 1024))
    answer = raw_request(server, "POST /instances HTTP/1.1\r\nHost: x\r\n"
                                 "Transfer-Encoding: chunked\r\n", chunk * 40)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:100]
    assert b'"HttpStatus" : 413' in answer
    assert server.json("/system")["Name"]


def test_gzip_body_is_inflated_with_a_cap(make_isengard) -> None:
    server = make_isengard(MaximumFileSizeInArchiveMB=16)
    answer = server.post("/instances", gzip.compress(CT.read_bytes()),
                         headers={"Content-Encoding": "gzip"})
    assert answer.status_code == 200 and answer.json()["Status"] == "Success"
    answer = server.post("/tools/lookup", gzip_bomb(64 * MB), headers={"Content-Encoding": "gzip"})
    assert answer.status_code == 413
    assert "MaximumFileSizeInArchiveMB" in answer.json()["Details"]
    answer = server.post("/tools/lookup", b"not gzip", headers={"Content-Encoding": "gzip"})
    assert answer.status_code == 400


def test_authenticated_gzip_bomb_to_a_json_route_is_refused_in_bounded_memory(secured: Isengard) -> None:
    answer = secured.post("/tools/find", gzip_bomb(1024 * MB), headers={"Content-Encoding": "gzip"},
                          auth=("alice", "secret"))
    assert answer.status_code == 413
    assert peak_rss_kb(secured) < RSS_LIMIT_KB


def test_one_gigabyte_upload_stays_on_disk(isengard: Isengard) -> None:
    answer = isengard.post("/instances", zeros(1024 * MB))
    assert answer.status_code == 404 and answer.json()["OrthancStatus"] == 21
    assert peak_rss_kb(isengard) < RSS_LIMIT_KB
    assert isengard.json("/system")["Name"]


def _zip(members: dict[str, bytes], compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def test_zip_bomb_is_refused_in_bounded_memory(make_isengard) -> None:
    server = make_isengard()
    bomb = _zip({"a.dcm": CT.read_bytes(), "bomb.dcm": bytes(1024 * MB)})
    answer = server.post("/instances", bomb)
    assert answer.status_code == 200, answer.text
    assert [a["Status"] for a in answer.json()] == ["Success"]
    assert peak_rss_kb(server) < RSS_LIMIT_KB


def test_zip_member_past_maximum_file_size_is_refused(make_isengard) -> None:
    server = make_isengard(MaximumFileSizeInArchiveMB=1)
    answer = server.post("/instances", _zip({"big.dcm": bytes(2 * MB)}))
    assert answer.status_code == 400
    assert "MaximumFileSizeInArchiveMB" in answer.json()["Details"]
    assert server.json("/instances") == []


def test_zip_member_with_a_bad_crc_is_400(isengard: Isengard) -> None:
    data = bytearray(_zip({"a.dcm": CT.read_bytes()}, zipfile.ZIP_STORED))
    middle = 30 + len("a.dcm") + 1000
    data[middle] ^= 0xFF
    answer = isengard.post("/instances", bytes(data))
    assert answer.status_code == 400
    assert answer.json()["OrthancStatus"] == 15


def test_upload_answering_a_401_challenge_on_the_same_connection(secured: Isengard) -> None:
    """httplib2 (Orthanc's integration suite) sends without credentials first, then retries
    on the same connection: a refused body of a few MB is read, and the connection stays usable."""
    data = sample("ColorTestImageJ.dcm").read_bytes()
    connection = http.client.HTTPConnection("127.0.0.1", secured.http_port, timeout=20)
    connection.request("POST", "/instances", data)
    refused = connection.getresponse()
    refused.read()
    assert refused.status == 401
    credentials = base64.b64encode(b"alice:secret").decode()
    connection.request("POST", "/instances", data, {"Authorization": f"Basic {credentials}"})
    stored = connection.getresponse()
    assert stored.status == 200 and json.loads(stored.read())["Status"] == "Success"


def test_body_refused_unread_says_the_connection_closes(secured: Isengard) -> None:
    answer = raw_request(secured, "POST /instances HTTP/1.1\r\nHost: x\r\n"
                                  f"Content-Length: {1024 * MB}\r\n", timeout=5)
    assert answer.startswith(b"HTTP/1.1 401")
    assert b"connection: close" in answer.lower()


def test_stalled_body_is_dropped_after_http_request_timeout(make_isengard) -> None:
    server = make_isengard(HttpRequestTimeout=1)
    with socket.create_connection(("127.0.0.1", server.http_port), timeout=10) as sock:
        sock.sendall(b"POST /tools/lookup HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789")
        began = time.monotonic()
        assert sock.recv(1024) == b""
        assert time.monotonic() - began < 5
    assert server.json("/system")["Name"]


@pytest.mark.parametrize("where", ["url", "header"])
def test_oversized_request_head_is_400_as_orthanc(isengard: Isengard, where: str) -> None:
    """CivetWeb's limit (16 KiB of request line and headers): Orthanc answers 400, not a reset."""
    filler = "a" * 17000
    head = (f"GET /instances?x={filler} HTTP/1.1\r\nHost: x\r\n" if where == "url"
            else f"POST /instances HTTP/1.1\r\nHost: x\r\nX-Filler: {filler}\r\nContent-Length: {1024 * MB}\r\n")
    answer = raw_request(isengard, head, timeout=5)
    assert answer.startswith(b"HTTP/1.1 400")
    assert answer.endswith(b"Malformed message")
    fitting = raw_request(isengard, f"GET /system?x={'a' * 15000} HTTP/1.1\r\nHost: x\r\n")
    assert fitting.startswith(b"HTTP/1.1 200")


def _large_dicom(path: Path, frames: int) -> Path:
    """A valid multi-frame 8-bit file of ``frames`` MiB of pixel data, written piece by piece."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID = generate_uid()
    ds.PatientID, ds.PatientName = "LARGE", "Large^File"
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.Modality = "OT"
    ds.Rows = ds.Columns = 1024
    ds.NumberOfFrames = frames
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    header = io.BytesIO()
    ds.save_as(header, enforce_file_format=True)
    size = frames * MB
    with open(path, "wb") as f:
        f.write(header.getvalue())
        f.write(b"\xe0\x7f\x10\x00OB\x00\x00" + size.to_bytes(4, "little"))
        block = bytes(range(256)) * (MB // 256)
        for _ in range(frames):
            f.write(block)
    return path


def test_one_gigabyte_dicom_file_is_stored_in_bounded_memory(isengard: Isengard, tmp_path: Path) -> None:
    """A valid 1 GiB DICOM file goes from the request to the storage area without being in memory."""
    path = _large_dicom(tmp_path / "large.dcm", 1024)
    with open(path, "rb") as f:
        answer = isengard.post("/instances", f)
    path.unlink()
    assert answer.status_code == 200, answer.text
    assert answer.json()["Status"] == "Success"
    assert peak_rss_kb(isengard) < RSS_LIMIT_KB
    instance = answer.json()["ID"]
    assert isengard.json(f"/instances/{instance}/attachments/dicom/size") > 1024 * MB
    assert isengard.json(f"/instances/{instance}")["MainDicomTags"]["NumberOfFrames"] == "1024"
    assert isengard.post(f"/instances/{instance}/attachments/dicom/verify-md5", b"").status_code == 200


def test_one_gigabyte_c_store_is_stored_in_bounded_memory(make_isengard: Callable[..., Isengard],
                                                          tmp_path: Path) -> None:
    """The same file over DICOM (dcmtk's storescu): the dataset goes to a file as its
    fragments arrive, never into the server's memory, and is stored intact.  A server of
    its own: the peak memory is the process's whole life's."""
    isengard = make_isengard()
    path = _large_dicom(tmp_path / "large.dcm", 1024)
    result = subprocess.run([dcmtk("storescu"), "-aec", isengard.aet, "127.0.0.1", str(isengard.dicom_port),
                             str(path)], capture_output=True, text=True, timeout=300, env=dcmtk_env())
    path.unlink()
    assert result.returncode == 0, result.stderr
    assert peak_rss_kb(isengard) < RSS_LIMIT_KB
    [instance] = isengard.json("/instances")
    assert isengard.json(f"/instances/{instance}/attachments/dicom/size") > 1024 * MB
    assert isengard.json(f"/instances/{instance}")["MainDicomTags"]["NumberOfFrames"] == "1024"
    assert isengard.post(f"/instances/{instance}/attachments/dicom/verify-md5", b"").status_code == 200
