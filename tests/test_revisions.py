"""Revisions of metadata and attachments (ETag, If-None-Match, If-Match, CheckRevisions),
user attachments, compression of attachments, method faking and PixelDataOffset, as
Orthanc 1.10.1 answers them (compared with the real server where it stores the same)."""

from __future__ import annotations

import hashlib
import http.client
import json
from pathlib import Path
from typing import Any

import pytest
import requests

from conftest import ORTHANC_BINARY, Isengard, Orthanc, sample
from helpers import orthanc_error

DICOM = sample("ColorTestMalaterre.dcm")
USER_CONTENT_TYPES = {"sample": 1025, "pdf": [1026, "application/pdf"]}
OPTIONS: dict[str, Any] = {"CheckRevisions": True, "UserContentType": USER_CONTENT_TYPES,
                           "UserMetadata": {"my-metadata": 1098}}


def md5(data: str | bytes) -> str:
    return hashlib.md5(data.encode() if isinstance(data, str) else data).hexdigest()


def etag(revision: int, content: str | bytes) -> str:
    return f'"{revision}-{md5(content)}"'


@pytest.fixture
def checked(make_isengard) -> Isengard:
    """Isengard with CheckRevisions, user content types and user metadata."""
    return make_isengard(**OPTIONS)


def upload(server: Isengard | Orthanc, path: Path = DICOM) -> str:
    return server.upload(path)["ID"]


# -- metadata ------------------------------------------------------------------------


def test_metadata_etag_and_conditional_get(checked: Isengard) -> None:
    path = f"/instances/{upload(checked)}/metadata/TransferSyntax"
    answer = checked.get(path)
    assert answer.text == "1.2.840.10008.1.2"
    assert answer.headers["ETag"] == etag(0, "1.2.840.10008.1.2")
    same = checked.get(path, headers={"If-None-Match": answer.headers["ETag"]})
    assert same.status_code == 304 and same.content == b""
    assert same.headers["ETag"] == answer.headers["ETag"]
    for other in (f'"1-{md5("1.2.840.10008.1.2")}"', '"0-aaa"', "0-aaa"):
        assert checked.get(path, headers={"If-None-Match": other}).status_code == 200
    bad = checked.get(path, headers={"If-None-Match": '"aaa-bbb"'})
    assert orthanc_error(bad) == (400, 3, 'The "If-None-Match" HTTP header should contain the '
                                 "ETag (revision followed by MD5 hash), but found: aaa-bbb")
    assert bad.headers["ETag"] == answer.headers["ETag"]


def test_metadata_revisions_with_check_revisions(checked: Isengard) -> None:
    path = f"/instances/{upload(checked)}/metadata/1024"
    first = checked.put(path, "hello")
    assert (first.status_code, first.text, first.headers["ETag"]) == (200, "", etag(0, "hello"))
    assert orthanc_error(checked.put(path, "hello")) == (409, 43, "")
    assert orthanc_error(checked.put(path, "x", headers={"If-Match": etag(3, "hello")}))[:2] == (409, 43)
    second = checked.put(path, "hello2", headers={"If-Match": first.headers["ETag"]})
    assert second.headers["ETag"] == etag(1, "hello2")
    assert checked.get(path).headers["ETag"] == etag(1, "hello2")
    assert checked.get(path, headers={"If-None-Match": etag(1, "hello2")}).status_code == 304
    assert orthanc_error(checked.put(path, "x", headers={"If-Match": etag(0, "hello")}))[:2] == (409, 43)
    assert orthanc_error(checked.delete(path)) == (
        409, 43, 'HTTP header "If-Match" is missing, as "CheckRevisions" is "true"')
    assert orthanc_error(checked.delete(path, headers={"If-Match": "abc"})) == (
        400, 3, 'The "if-match" HTTP header should contain the ETag (revision followed by MD5 '
        "hash), but found: abc")
    assert checked.delete(path, headers={"If-Match": "1-" + md5("hello2")}).status_code == 200
    assert orthanc_error(checked.delete(path, headers={"If-Match": etag(1, "hello2")}))[:2] == (404, 17)
    again = checked.put(path, "again")
    assert again.headers["ETag"] == etag(0, "again")


def test_metadata_without_check_revisions(make_isengard) -> None:
    server = make_isengard(UserMetadata={"Sample": 1024})
    path = f"/patients/{server.upload(DICOM)['ParentPatient']}/metadata/Sample"
    assert server.put(path, "a").headers["ETag"] == etag(0, "a")
    assert server.put(path, "b").headers["ETag"] == etag(1, "b")
    assert server.get(path).headers["ETag"] == etag(1, "b")
    assert orthanc_error(server.delete(path, headers={"If-Match": etag(0, "a")}))[:2] == (409, 43)
    assert server.delete(path).status_code == 200


def test_metadata_names_and_system_metadata(checked: Isengard) -> None:
    instance = upload(checked)
    base = f"/instances/{instance}/metadata"
    assert checked.put(f"{base}/my-metadata", "x").status_code == 200
    assert checked.json(f"{base}?expand")["my-metadata"] == "x"
    assert checked.get(f"{base}/1098").text == "x"
    for method in (checked.put, checked.delete):
        refused = method(f"{base}/TransferSyntax")
        assert (refused.status_code, refused.content) == (403, b"")
        assert method(f"{base}/65536").status_code == 403
    assert orthanc_error(checked.get(f"{base}/foo"))[:2] == (404, 7)
    assert orthanc_error(checked.put(f"{base}/foo", "x"))[:2] == (404, 7)
    missing = checked.get(f"{base}/1030")
    assert (missing.status_code, missing.content) == (404, b"")
    assert orthanc_error(checked.put("/instances/nonexistent/metadata/1024", "x"))[:2] == (404, 17)
    assert orthanc_error(checked.get(f"/studies/{instance}/metadata"))[:2] == (404, 17)
    assert orthanc_error(checked.get(f"/studies/{instance}/metadata/LastUpdate"))[:2] == (404, 17)
    assert orthanc_error(checked.get("/instances/nonexistent/attachments"))[:2] == (404, 17)


def test_metadata_revisions_survive_a_restart(make_isengard) -> None:
    server = make_isengard(**OPTIONS)
    path = f"/instances/{upload(server)}/metadata/1024"
    server.put(path, "a")
    server.put(path, "b", headers={"If-Match": etag(0, "a")})
    server.stop()
    server.start()
    assert server.get(path).headers["ETag"] == etag(1, "b")


# -- attachments ---------------------------------------------------------------------


def test_user_attachments(checked: Isengard) -> None:
    answer = checked.upload(DICOM)
    patient, instance = answer["ParentPatient"], answer["ID"]
    size = int(checked.json("/statistics")["TotalDiskSize"])
    base = f"/patients/{patient}/attachments"
    stored = checked.put(f"{base}/sample", "hello")
    assert (stored.status_code, stored.text, stored.headers["Content-Type"]) == (200, "{}", "application/json")
    assert stored.headers["ETag"] == etag(0, "hello")
    assert checked.put(f"{base}/1026", b"%PDF").status_code == 200
    assert checked.json(base) == ["sample", "pdf"]
    assert checked.json(f"{base}?full") == {"sample": 1025, "pdf": 1026}
    assert checked.json(f"/instances/{instance}/attachments?full") == {"dicom": 1}
    info = checked.json(f"{base}/1025/info")
    assert info["ContentType"] == 1025 and info["UncompressedMD5"] == md5("hello")
    data = checked.get(f"{base}/sample/data")
    assert (data.content, data.headers["Content-Type"]) == (b"hello", "application/octet-stream")
    assert data.headers["Content-Disposition"] == f'filename="{info["Uuid"]}"'
    assert checked.get(f"{base}/pdf/data").headers["Content-Type"] == "application/pdf"
    dicom = checked.get(f"/instances/{instance}/attachments/dicom/data")
    assert dicom.headers["Content-Type"] == "application/dicom"
    assert dicom.headers["Content-Disposition"].endswith('.dcm"')
    assert int(checked.json(f"/patients/{patient}/statistics")["DiskSize"]) == size + 9
    assert int(checked.json("/statistics")["TotalDiskSize"]) == size + 9
    changes = [c["ChangeType"] for c in checked.json("/changes?limit=100")["Changes"]]
    assert changes.count("UpdatedAttachment") == 2


def test_attachment_errors(checked: Isengard) -> None:
    instance = upload(checked)
    base = f"/instances/{instance}/attachments"
    for method in (checked.put, checked.delete):
        refused = method(f"{base}/dicom")
        assert (refused.status_code, refused.content) == (403, b"")
    assert checked.put(f"{base}/22", "x").status_code == 403
    assert orthanc_error(checked.get(f"{base}/foo"))[:2] == (404, 7)
    assert orthanc_error(checked.get(f"{base}/1030/data"))[:2] == (404, 17)
    assert orthanc_error(checked.get(f"{base}/dicom/foo"))[:2] == (404, 17)
    assert orthanc_error(checked.get(f"{base}/dicom/uuid"))[:2] == (404, 17)
    not_allowed = checked.post(f"{base}/dicom/data")
    assert (not_allowed.status_code, not_allowed.headers["Allow"]) == (405, "GET")
    missing = checked.post(f"{base}/1030/verify-md5")
    assert (missing.status_code, missing.content) == (400, b"")
    assert orthanc_error(checked.post(f"{base}/1030/compress"))[:2] == (404, 17)
    assert orthanc_error(checked.delete(f"{base}/1030", headers={"If-Match": "0-x"}))[:2] == (404, 17)


def test_attachment_revisions(checked: Isengard) -> None:
    instance = upload(checked)
    base = f"/instances/{instance}/attachments"
    dicom_etag = etag(0, DICOM.read_bytes())
    for suffix in ("", "/data", "/compressed-data", "/md5", "/size", "/info", "/is-compressed"):
        answer = checked.get(f"{base}/dicom{suffix}")
        assert (answer.status_code, answer.headers["ETag"]) == (200, dicom_etag)
        same = checked.get(f"{base}/dicom{suffix}", headers={"If-None-Match": dicom_etag})
        assert (same.status_code, same.content, same.headers["ETag"]) == (304, b"", dicom_etag)
        bad = checked.get(f"{base}/dicom{suffix}", headers={"If-None-Match": "tata"})
        assert (bad.status_code, bad.headers["ETag"]) == (400, dicom_etag)
    path = f"{base}/1024"
    assert checked.put(path, "hello").headers["ETag"] == etag(0, "hello")
    assert orthanc_error(checked.put(path, "hello"))[:2] == (409, 43)
    assert orthanc_error(checked.delete(path))[:2] == (409, 43)
    assert orthanc_error(checked.delete(path, headers={"If-Match": "0-tata"}))[:2] == (409, 43)
    second = checked.put(path, "hello2", headers={"If-Match": etag(0, "hello")})
    assert (second.text, second.headers["ETag"]) == ("{}", etag(1, "hello2"))
    assert checked.get(f"{path}/data", headers={"If-None-Match": etag(1, "hello2")}).status_code == 304
    assert checked.delete(path, headers={"If-Match": etag(1, "hello2")}).status_code == 200
    assert orthanc_error(checked.get(f"{path}/data"))[:2] == (404, 17)


def test_compress_and_uncompress(checked: Isengard) -> None:
    instance = upload(checked)
    base = f"/instances/{instance}/attachments/dicom"
    original = DICOM.read_bytes()
    disk = int(checked.json("/statistics")["TotalDiskSize"])
    assert "compress" in checked.json(base) and "uncompress" in checked.json(base)
    compressed = checked.post(f"{base}/compress")
    assert (compressed.status_code, compressed.text) == (200, "{}")
    assert checked.get(f"{base}/is-compressed").text == "1"
    assert checked.get(f"{base}/data").content == original
    assert len(checked.get(f"{base}/compressed-data").content) < len(original)
    assert checked.get(f"{base}/md5").text == md5(original)
    assert checked.get(f"{base}/compressed-md5").text != md5(original)
    assert int(checked.json("/statistics")["TotalDiskSize"]) < disk
    assert checked.get(base).headers["ETag"] == etag(1, original)
    assert checked.post(f"{base}/verify-md5").text == "{}"
    assert checked.post(f"{base}/compress").status_code == 200  # already compressed: nothing to do
    assert checked.post(f"{base}/uncompress").status_code == 200
    assert checked.get(f"{base}/compressed-data").content == original
    assert int(checked.json("/statistics")["TotalDiskSize"]) == disk
    assert checked.get(base).headers["ETag"] == etag(2, original)
    assert checked.get(f"/instances/{instance}/file").content == original
    files = [p for p in (checked.workdir / "storage").rglob("*") if len(p.name) == 36]
    assert len(files) == 1  # the replaced files are gone


# -- method faking -------------------------------------------------------------------


def test_method_faking(make_isengard) -> None:
    server = make_isengard()
    answer = server.upload(DICOM)
    protected = f"/patients/{answer['ParentPatient']}/protected"
    assert server.post(protected, "1", headers={"X-HTTP-Method-Override": "PUT"}).status_code == 200
    assert server.get(protected).text == "1"
    assert server.get(protected, params={"_method": "put"}, data="0").status_code == 200
    assert server.get(protected).text == "0"
    bad = server.post(protected, "1", headers={"X-HTTP-Method-Override": "PATCH"})
    assert (bad.status_code, bad.content) == (400, b"")
    # A POST's "_method" argument fakes nothing (Orthanc only reads it on GET).
    assert server.post(f"/instances/{answer['ID']}?_method=DELETE").status_code == 405
    assert server.get(f"/instances/{answer['ID']}", params={"_method": "DELETE"}).status_code == 200
    assert server.json("/instances") == []


def test_method_faking_with_http_client(make_isengard) -> None:
    """A raw client, as old proxies send it: POST with the header and no body."""
    server = make_isengard()
    answer = server.upload(DICOM)
    connection = http.client.HTTPConnection("127.0.0.1", server.http_port, timeout=30)
    connection.request("POST", f"/patients/{answer['ParentPatient']}",
                       headers={"X-HTTP-Method-Override": "delete", "Content-Length": "0"})
    response = connection.getresponse()
    assert response.status == 200
    assert json.loads(response.read()) == {"RemainingAncestor": None}
    connection.close()


# -- what ingest records -------------------------------------------------------------


def test_pixel_data_offset_and_headerless_transfer_syntax(make_isengard) -> None:
    server = make_isengard()
    with_preamble = upload(server, sample("TransferSyntaxes/1.2.840.10008.1.2.2.dcm"))
    assert server.get(f"/instances/{with_preamble}/metadata/PixelDataOffset").text == str(0x03E8)
    headerless = upload(server, sample("TransferSyntaxes/1.2.840.10008.1.2.dcm"))
    metadata = server.json(f"/instances/{headerless}/metadata?expand")
    assert "PixelDataOffset" not in metadata
    assert metadata["TransferSyntax"] == "1.2.840.10008.1.2"
    deflated = upload(server, sample("TransferSyntaxes/1.2.840.10008.1.2.1.99.dcm"))
    assert "PixelDataOffset" not in server.json(f"/instances/{deflated}/metadata")


# -- the real Orthanc ----------------------------------------------------------------


def _exchange(server: Isengard | Orthanc, instance: str, patient: str) -> list[tuple]:
    """The same requests on either server; only what 1.10.1 answers without stored revisions
    (its SQLite index always reports revision 0), so that both must agree."""
    base = f"/instances/{instance}"
    hello = etag(0, "hello")[1:-1]
    requests_: list[tuple[str, str, dict, bytes | None]] = [
        ("GET", f"{base}/metadata/TransferSyntax", {}, None),
        ("GET", "/instances/nonexistent/metadata", {}, None),
        ("GET", "/instances/nonexistent/attachments", {}, None),
        ("GET", f"/series/{instance}/metadata/RemoteAET", {}, None),
        ("GET", f"{base}/metadata/TransferSyntax", {"If-None-Match": etag(0, "1.2.840.10008.1.2")}, None),
        ("GET", f"{base}/metadata/TransferSyntax", {"If-None-Match": "abc"}, None),
        ("PUT", f"{base}/metadata/1024", {}, b"hello"),
        ("PUT", f"{base}/metadata/1024", {}, b"hello"),
        ("PUT", f"{base}/metadata/my-metadata", {}, b"mine"),
        ("PUT", f"{base}/metadata/TransferSyntax", {}, b"x"),
        ("PUT", f"{base}/metadata/foo", {}, b"x"),
        ("DELETE", f"{base}/metadata/1024", {}, None),
        ("DELETE", f"{base}/metadata/1024", {"If-Match": "abc"}, None),
        ("DELETE", f"{base}/metadata/1024", {"If-Match": "7-abc"}, None),
        ("DELETE", f"{base}/metadata/1024", {"If-Match": hello}, None),
        ("DELETE", f"{base}/metadata/1024", {"If-Match": hello}, None),
        ("GET", f"{base}/metadata/1024", {}, None),
        ("GET", f"{base}/attachments/dicom", {}, None),
        ("GET", f"{base}/attachments/dicom/size", {"If-None-Match": '"0-tata"'}, None),
        ("GET", f"{base}/attachments/dicom/md5", {"If-None-Match": "tata"}, None),
        ("PUT", f"/patients/{patient}/attachments/sample", {}, b"hello"),
        ("PUT", f"/patients/{patient}/attachments/sample", {"If-Match": "3-x"}, b"hello"),
        ("PUT", f"/patients/{patient}/attachments/pdf", {}, b"%PDF"),
        ("GET", f"/patients/{patient}/attachments?full", {}, None),
        ("GET", f"/patients/{patient}/attachments/sample/data", {"If-None-Match": f'"{hello}"'}, None),
        ("GET", f"/patients/{patient}/attachments/1025/size", {}, None),
        ("PUT", f"/patients/{patient}/attachments/22", {}, b"x"),
        ("PUT", f"/patients/{patient}/attachments/foo", {}, b"x"),
        ("DELETE", f"/patients/{patient}/attachments/sample", {}, None),
        ("DELETE", f"/patients/{patient}/attachments/sample", {"If-Match": hello}, None),
        ("DELETE", f"/patients/{patient}/attachments/sample", {"If-Match": hello}, None),
        ("DELETE", f"{base}/attachments/dicom", {}, None),
        ("GET", f"{base}/attachments/1030/data", {}, None),
        ("POST", f"{base}/attachments/dicom/verify-md5", {}, None),
        ("POST", f"{base}/attachments/dicom/compress", {}, None),
        ("POST", f"{base}/attachments/dicom/uncompress", {}, None),
        ("POST", f"{base}/attachments/1030/verify-md5", {}, None),
        ("POST", f"/patients/{patient}/protected", {"X-HTTP-Method-Override": "PUT"}, b"1"),
        ("GET", f"/patients/{patient}/protected", {}, None),
    ]
    answers = []
    for method, path, headers, body in requests_:
        answer = requests.request(method, server.url + path, headers=headers, data=body, timeout=30)
        content: Any = answer.content
        if content[:1] in (b"{", b"["):
            content = answer.json()
        # Success only: Orthanc's error answers have no Content-Type (Isengard's are JSON).
        content_type = answer.headers.get("Content-Type") if answer.ok else None
        answers.append((method, path.replace(instance, "I").replace(patient, "P"),
                        answer.status_code, answer.headers.get("ETag"), content_type, content))
    return answers


@pytest.mark.skipif(not ORTHANC_BINARY.exists(), reason="the real Orthanc is not installed")
@pytest.mark.parametrize("compression", [False, True])
def test_same_answers_as_orthanc(make_isengard, tmp_path: Path, compression: bool) -> None:
    options = {**OPTIONS, "StorageCompression": compression}
    orthanc = Orthanc(tmp_path / "orthanc", **options).start()
    try:
        isengard = make_isengard(**options)
        stored = [server.upload(DICOM) for server in (orthanc, isengard)]
        assert stored[0] == stored[1]
        instance, patient = stored[0]["ID"], stored[0]["ParentPatient"]
        assert _exchange(isengard, instance, patient) == _exchange(orthanc, instance, patient)
    finally:
        orthanc.stop()
