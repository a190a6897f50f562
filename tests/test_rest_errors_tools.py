"""Orthanc's error answers, HTTP options (auth, remote access, compression) and /tools."""

from __future__ import annotations

import gzip
import zlib

import pytest
import requests

from conftest import Isengard, sample

CT = sample("Formats/Jpeg.dcm")


@pytest.fixture
def server(isengard: Isengard) -> Isengard:
    isengard.clear()
    return isengard


def _error(answer: requests.Response, status: int, code: int) -> dict:
    assert answer.status_code == status, answer.text
    body = answer.json()
    assert body["HttpStatus"] == status and body["OrthancStatus"] == code
    assert set(body) >= {"HttpError", "Message", "Method", "OrthancError", "Uri"}
    return body


def test_non_dicom_body_is_bad_file_format(server: Isengard) -> None:
    body = _error(server.post("/instances", b"hello"), 400, 15)
    assert body["Details"] == "Cannot parse an invalid DICOM file (size: 5 bytes)"
    assert body["Uri"] == "/instances" and body["Method"] == "POST"
    empty = _error(server.post("/instances", b""), 400, 15)
    assert empty["Details"] == "Received an empty DICOM file"


def test_truncated_file_is_refused_and_server_stays_up(server: Isengard) -> None:
    data = CT.read_bytes()
    answer = server.post("/instances", data[:200])
    assert answer.status_code == 400
    assert server.json("/instances") == []
    assert server.get("/system").status_code == 200


def test_binary_body_labelled_as_a_form_is_stored(server: Isengard) -> None:
    """``curl --data-binary @file`` sends DICOM files as x-www-form-urlencoded."""
    data = sample("Issue124.dcm").read_bytes()
    answer = server.post("/instances", data, headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["Status"] == "Success"


def test_unknown_resources_and_routes(server: Isengard) -> None:
    missing = "00000000-00000000-00000000-00000000-00000000"
    answer = server.get(f"/instances/{missing}")
    assert answer.status_code == 404 and answer.content == b""
    assert server.delete(f"/patients/{missing}").status_code == 404
    body = _error(server.get("/nonexistent-uri"), 404, 17)
    assert body["Message"] == "Unknown resource" and "Details" not in body


def test_wrong_method_is_405_with_allow(server: Isengard) -> None:
    answer = server.put("/instances", b"")
    assert answer.status_code == 405
    assert answer.headers["Allow"] == "GET,POST"
    assert answer.content == b""


def test_invalid_json_in_find(server: Isengard) -> None:
    body = _error(server.post("/tools/find", b"notjson"), 400, 8)
    assert body["Details"] == "The body must contain a JSON object"


def test_find_matches_like_orthanc(server: Isengard) -> None:
    for path in (sample("Issue137.dcm"), sample("Issue143.dcm"), CT):
        server.upload(path)

    def find(level: str, query: dict, **extra) -> list:
        answer = server.post("/tools/find", json={"Level": level, "Query": query, **extra})
        assert answer.status_code == 200, answer.text
        return answer.json()

    names = {server.json(f"/patients/{p}")["MainDicomTags"]["PatientName"]: p
             for p in server.json("/patients")}
    assert find("Patient", {"PatientName": "John*"}) == [names["John Doe"]]
    assert find("Patient", {"PatientName": "JOHN*"}) == [names["John Doe"]]
    assert sorted(find("Patient", {"PatientName": "*"})) == sorted(names.values())
    assert sorted(find("Patient", {"PatientName": "Test^Pattern\\BRAINIX"})) == sorted(
        [names["Test^Pattern"], names["BRAINIX"]])
    study = server.json(f"/patients/{names['BRAINIX']}")["Studies"][0]
    date = server.json(f"/studies/{study}")["MainDicomTags"]["StudyDate"]
    assert study in find("Study", {"StudyDate": f"{date}-"})
    assert find("Study", {"StudyDate": f"{date}-{date}"}) == [study]
    assert study not in find("Study", {"StudyDate": f"-{int(date) - 1}"})
    assert find("Study", {"PatientName": "BRAIN?X"}) == [study]
    expanded = find("Study", {"PatientName": "BRAINIX"}, Expand=True)
    assert expanded[0]["ID"] == study
    assert len(find("Instance", {"Modality": "MR"})) == 1
    assert len(find("Patient", {}, Limit=1)) == 1
    assert find("Series", {"Modality": "mr"}, CaseSensitive=True) == []
    assert len(find("Series", {"Modality": "mr"}, CaseSensitive=False)) == 1


def test_lookup(server: Isengard) -> None:
    answer = server.upload(CT)
    uid = server.json(f"/studies/{answer['ParentStudy']}")["MainDicomTags"]["StudyInstanceUID"]
    found = server.post("/tools/lookup", uid).json()
    assert found == [{"ID": answer["ParentStudy"], "Path": f"/studies/{answer['ParentStudy']}",
                      "Type": "Study"}]


def test_small_tools(server: Isengard) -> None:
    assert len(server.get("/tools/now").text) == 15
    assert len(server.get("/tools/now-local").text) == 15
    uid = server.get("/tools/generate-uid?level=series").text
    assert uid.startswith("1.2.276.0.7230010.3.") and len(uid) <= 64
    assert server.get("/tools/generate-uid").status_code == 400
    assert server.get("/tools/default-encoding").text == "Latin1"
    assert server.put("/tools/default-encoding", "Utf8").status_code == 200
    assert server.get("/tools/default-encoding").text == "Utf8"
    server.put("/tools/default-encoding", "Latin1")
    assert server.get("/tools/log-level").text == "default"
    assert server.put("/tools/log-level", "verbose").status_code == 200
    assert server.get("/tools/log-level").text == "verbose"
    server.put("/tools/log-level", "default")
    assert server.put("/tools/log-level", "loud").status_code == 400
    conformance = server.get("/tools/dicom-conformance").text
    for accepted in ("1.2.840.10008.1.2.4.50", "Verification SOP Class", "CT Image Storage",
                     "Study Root Query/Retrieve Information Model - FIND",
                     "Storage Commitment Push Model SOP Class (SCU and SCP roles)"):
        assert accepted in conformance


def test_system(server: Isengard) -> None:
    system = server.json("/system")
    assert system["Version"] == "1.10.1" and system["ApiVersion"] == 16
    assert system["DicomAet"] == "ISENGARD" and system["HttpPort"] == server.http_port
    assert system["DicomPort"] == server.dicom_port and system["Name"] == "IsengardTest"
    assert "IsengardVersion" in system


def test_modalities_and_peers_listing(make_isengard) -> None:
    server = make_isengard(
        DicomModalities={"pacs": ["PACS", "127.0.0.1", 104], "ct": {
            "AET": "CT", "Host": "10.0.0.1", "Port": "4242", "AllowStore": False}},
        OrthancPeers={"other": ["http://127.0.0.1:8043/"]})
    assert server.json("/modalities") == ["ct", "pacs"]
    expanded = server.json("/modalities?expand")
    assert expanded["ct"]["Port"] == 4242 and expanded["ct"]["AllowStore"] is False
    assert expanded["pacs"]["Manufacturer"] == "Generic"
    assert server.json("/peers") == ["other"]


def test_authentication(make_isengard) -> None:
    server = make_isengard(AuthenticationEnabled=True, RegisteredUsers={"alice": "secret"})
    denied = server.get("/system")
    assert denied.status_code == 401
    assert denied.headers["WWW-Authenticate"] == 'Basic realm="Orthanc Secure Area"'
    assert server.get("/system", auth=("alice", "wrong")).status_code == 401
    assert server.get("/system", auth=("alice", "secret")).status_code == 200
    answer = server.post("/instances", CT.read_bytes(), auth=("alice", "secret")).json()
    metadata = server.get(f"/instances/{answer['ID']}/metadata/HttpUsername",
                          auth=("alice", "secret"))
    assert metadata.text == "alice"


def test_compression_when_asked(server: Isengard) -> None:
    for path in sorted(sample("Series").glob("*.dcm")):
        server.upload(path)
    raw = requests.get(server.url + "/instances?expand",
                       headers={"Accept-Encoding": "identity"}, stream=True)
    plain = raw.raw.read()
    assert "Content-Encoding" not in raw.headers
    zipped = requests.get(server.url + "/instances?expand",
                          headers={"Accept-Encoding": "gzip"}, stream=True)
    assert zipped.headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(zipped.raw.read()) == plain
    deflated = requests.get(server.url + "/instances?expand",
                            headers={"Accept-Encoding": "deflate"}, stream=True)
    assert deflated.headers["Content-Encoding"] == "deflate"
    assert zlib.decompress(deflated.raw.read()) == plain


def test_large_and_small_answers_are_compressed_alike(server: Isengard) -> None:
    """Large answers are compressed in a worker thread, small ones inline: same headers."""
    instance = server.upload(CT)["ID"]
    for uri, large in (("/tools/dicom-conformance", True), (f"/instances/{instance}/tags", False)):
        plain = requests.get(server.url + uri, headers={"Accept-Encoding": "identity"}).content
        assert (len(plain) >= 16 * 1024) is large and len(plain) >= 1024
        for encoding, decompress in (("gzip", gzip.decompress), ("deflate", zlib.decompress)):
            answer = requests.get(server.url + uri, headers={"Accept-Encoding": encoding}, stream=True)
            body = answer.raw.read()
            assert answer.headers["Content-Encoding"] == encoding
            assert answer.headers["Vary"] == "Accept-Encoding"
            assert int(answer.headers["Content-Length"]) == len(body)
            assert decompress(body) == plain


def test_find_star_needs_the_attribute_and_wildcards_need_a_text_vr(server: Isengard) -> None:
    """Rules checked on Orthanc 1.10.1: the same for /tools/find and for C-FIND."""
    described = server.upload(CT)["ParentStudy"]
    server.upload(sample("Issue137.dcm"))
    star = server.post("/tools/find", json={"Level": "Study", "Query": {"StudyDescription": "*"}})
    assert star.json() == [described]
    empty = server.post("/tools/find", json={"Level": "Study", "Query": {"StudyDescription": ""}})
    assert len(empty.json()) == 2
    for tag, value in (("StudyDate", "2*"), ("StudyInstanceUID", "1.2*")):
        refused = server.post("/tools/find", json={"Level": "Study", "Query": {tag: value}})
        assert refused.status_code == 400
        assert refused.json()["OrthancStatus"] == 3
        assert refused.json()["Details"].startswith("Wildcards are not allowed on tag ")


def test_answers_compressed_already_go_as_they_are(server: Isengard) -> None:
    """A PNG rendering or a JPEG-LS frame would not shrink: unlike Orthanc, it is not gzipped
    (a client that accepts gzip gets the same bytes, without the CPU spent on both sides)."""
    instance = server.upload(sample("TransferSyntaxes/1.2.840.10008.1.2.4.80.dcm"))["ID"]
    for uri in (f"/instances/{instance}/frames/0/raw", f"/instances/{instance}/preview"):
        plain = requests.get(server.url + uri, headers={"Accept-Encoding": "identity"}).content
        assert len(plain) >= 64 * 1024
        answer = requests.get(server.url + uri, headers={"Accept-Encoding": "gzip"}, stream=True)
        body = answer.raw.read()
        assert "Content-Encoding" not in answer.headers
        assert int(answer.headers["Content-Length"]) == len(body)
        assert body == plain
    ct = server.upload(sample("SignedCT.dcm"))["ID"]
    small = requests.get(server.url + f"/instances/{ct}/rendered?width=128",  # a PNG of 1-16 KiB
                         headers={"Accept-Encoding": "gzip"}, stream=True)
    body = small.raw.read()
    assert small.headers["Content-Type"] == "image/png" and 1024 <= len(body) < 16 * 1024
    assert "Content-Encoding" not in small.headers and body.startswith(b"\x89PNG")
