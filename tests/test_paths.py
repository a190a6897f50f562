"""URIs as Orthanc accepts them, and the DICOM server's settings changed over REST.

The requests go through ``http.client``, which sends the path exactly as written
(``requests`` would normalise some of it away).
"""

from __future__ import annotations

import http.client
import json

import pytest
from pydicom import dcmread
from pynetdicom import AE

from conftest import Isengard, sample

JPEG_LOSSLESS = "1.2.840.10008.1.2.4.70"


def _raw(server: Isengard, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", server.http_port, timeout=30)
    try:
        connection.request(method, path, body=body)
        answer = connection.getresponse()
        return answer.status, answer.read()
    finally:
        connection.close()


@pytest.fixture
def server(isengard: Isengard) -> Isengard:
    isengard.clear()
    return isengard


def test_repeated_and_trailing_slashes(server: Isengard) -> None:
    instance = server.upload(sample("Formats/Jpeg.dcm"))["ID"]
    assert _raw(server, "GET", "//system")[0] == 200
    status, body = _raw(server, "GET", "/patients/")
    assert status == 200 and len(json.loads(body)) == 1
    status, body = _raw(server, "GET", f"//instances//{instance}/")
    assert status == 200 and json.loads(body)["ID"] == instance
    status, body = _raw(server, "POST", "//tools//find/", b'{"Level":"Instance","Query":{}}')
    assert status == 200 and json.loads(body) == [instance]


def test_percent_encoded_segments(server: Isengard) -> None:
    instance = server.upload(sample("Formats/Jpeg.dcm"))["ID"]
    assert _raw(server, "GET", "/%70atients")[0] == 200
    assert _raw(server, "PUT", f"/instances/{instance}/metadata/%31%30%32%34", b"hello")[0] == 200
    status, body = _raw(server, "GET", f"/instances/{instance}/metadata/1024")
    assert status == 200 and body == b"hello"
    # Escapes of reserved characters stay inside their segment: no such route.
    assert _raw(server, "GET", "/patients%2Fx")[0] == 404


def test_unknown_path_with_slashes_is_still_404(server: Isengard) -> None:
    status, body = _raw(server, "GET", "//nonexistent//")
    assert status == 404 and json.loads(body)["OrthancStatus"] == 17


def _store_jpeg_lossless(server: Isengard) -> int | None:
    """C-STORE a JPEG lossless file on its own transfer syntax; the status, None if refused."""
    dataset = dcmread(sample("Formats/Jpeg.dcm"))
    assert dataset.file_meta.TransferSyntaxUID == JPEG_LOSSLESS
    ae = AE(ae_title="STORESCU")
    ae.add_requested_context(dataset.SOPClassUID, JPEG_LOSSLESS)
    assoc = ae.associate("127.0.0.1", server.dicom_port, ae_title=server.aet)
    try:
        if not assoc.is_established or not assoc.accepted_contexts:
            return None
        return int(assoc.send_c_store(dataset).Status)
    finally:
        assoc.release()


def test_accepted_transfer_syntaxes_govern_the_dicom_server(server: Isengard) -> None:
    answer = server.put("/tools/accepted-transfer-syntaxes",
                        json.dumps(["1.2.840.10008.1.2", "1.2.840.10008.1.2.1"]))
    assert answer.status_code == 200 and answer.json() == ["1.2.840.10008.1.2", "1.2.840.10008.1.2.1"]
    assert _store_jpeg_lossless(server) is None
    everything = server.put("/tools/accepted-transfer-syntaxes", "*",
                            headers={"Content-Type": "text/plain"}).json()
    assert len(everything) >= 42 and JPEG_LOSSLESS in everything
    assert server.json("/tools/accepted-transfer-syntaxes") == everything
    assert _store_jpeg_lossless(server) == 0
    assert len(server.json("/instances")) == 1
    assert server.put("/tools/accepted-transfer-syntaxes", "{}").status_code == 400


def test_unknown_sop_class_accepted(server: Isengard) -> None:
    assert server.put("/tools/unknown-sop-class-accepted", "nope").status_code == 400
    assert server.put("/tools/unknown-sop-class-accepted", "true").status_code == 200
    assert server.get("/tools/unknown-sop-class-accepted").text == "1"
    assert server.put("/tools/unknown-sop-class-accepted", "0").status_code == 200
    assert server.get("/tools/unknown-sop-class-accepted").text == "0"
