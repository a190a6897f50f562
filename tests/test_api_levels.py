"""Behaviours of newer Orthanc releases, each keyed on its ``ApiVersion``, on a real Isengard
reporting Orthanc 1.13.0 (the current level's behaviour is compared with the real Orthanc
1.10.1 elsewhere)."""

from __future__ import annotations

import gzip
import io
import zipfile
from pathlib import Path

import pytest
import requests

from conftest import Isengard, sample
from helpers import IsengardAtLevel


@pytest.fixture(scope="module")
def isengard_13(tmp_path_factory: pytest.TempPathFactory):
    started = IsengardAtLevel(tmp_path_factory.mktemp("api"), "1.13.0", 31).start()
    yield started
    started.stop()
    started.assert_loop_never_blocked()


def _upload(server: Isengard, name: str) -> str:
    return server.post("/instances", data=sample(name).read_bytes()).json()["ID"]


def test_error_documents_are_text_and_every_answer_says_nosniff(isengard_13: Isengard) -> None:
    """Orthanc 1.12.2."""
    missing = isengard_13.get("/no-such-route")
    assert missing.status_code == 404 and missing.headers["Content-Type"] == "text/plain"
    assert isengard_13.get("/system").headers["X-Content-Type-Options"] == "nosniff"
    assert isengard_13.json("/system")["ApiVersion"] == 31


def test_number_tags_take_several_values(isengard_13: Isengard) -> None:
    """Orthanc 1.12.5 (numbers) and 1.12.11 (OF is numbers, not bytes)."""
    created = isengard_13.post("/tools/create-dicom", json={"Tags": {
        "TimeRange": "3.12\\4.12", "PointCoordinatesData": "1.5\\2.5"}}).json()["ID"]
    tags = isengard_13.json(f"/instances/{created}/tags?simplify")
    assert [float(v) for v in tags["TimeRange"].split("\\")] == [3.12, 4.12]
    assert tags["PointCoordinatesData"] == "1.5\\2.5"


def test_od_of_ol_values_are_shown(isengard_13: Isengard) -> None:
    """Orthanc 1.12.11: OF, OD and OL are listed as numbers in ``/tags``."""
    tags = isengard_13.json(f"/instances/{_upload(isengard_13, '2026-03-16-OD-OF-OL.dcm')}/tags")
    assert [round(float(v), 4) for v in tags["0066,0016"]["Value"].split("\\")] == [10.1, 20.2, 30.3]
    assert tags["0070,150d"] == {"Name": "VolumetricCurvePoints", "Type": "String",
                                 "Value": "1.1000000000000001\\2.2000000000000002\\3.2999999999999998"}
    assert tags["0066,0041"]["Value"] == "42\\0\\15"


def test_japanese_backslashes_separate_values(isengard_13: Isengard) -> None:
    """Orthanc 1.12.9: in ISO_IR 13, 0x5C of a multi-valued string is the separator."""
    tags = isengard_13.json(f"/instances/{_upload(isengard_13, 'Encodings/ISO_IR13.dcm')}/tags?simplify")
    assert tags["ImageType"] == "ORIGINAL\\PRIMARY\\M\\NORM\\DIS2D\\FM\\FIL"


def test_archive_utf8_names(isengard_13: Isengard) -> None:
    """Orthanc 1.12.11 (``Utf8``) and 1.13 (folders joined by " - ")."""
    created = isengard_13.post("/tools/create-dicom", json={"Tags": {
        "PatientID": "P", "PatientName": "Gérard", "StudyDescription": "Étude", "Modality": "CT",
        "SeriesNumber": "7"}}).json()
    names = {}
    for utf8 in (False, True):
        answer = isengard_13.post("/tools/create-archive", json={"Resources": [created["ID"]], "Utf8": utf8})
        names[utf8] = zipfile.ZipFile(io.BytesIO(answer.content)).namelist()
    assert names[False] == ["P - Grard/tude/7 - CT/CT000000.dcm"]
    assert names[True] == ["P - Gérard/Étude/7 - CT/CT000000.dcm"]


@pytest.mark.parametrize("name, kept", [
    ("Issue143.dcm", "OW"),                     # explicit little endian, 8 bits in OW: kept
    ("KarstenHilbertRF.dcm", "OW"),
    ("ColorTestMalaterre.dcm", None),           # implicit: OW is what the standard says
    ("TransferSyntaxes/1.2.840.10008.1.2.1.dcm", None),  # explicit, 8 bits in OB
    ("MarekLatin2.dcm", None),                  # no pixel data
])
def test_pixel_data_vr_kept_when_it_is_not_the_standard_one(isengard_13: Isengard, name: str,
                                                             kept: str | None) -> None:
    """Orthanc 1.12.1: the ``PixelDataVR`` metadata."""
    metadata = isengard_13.json(f"/instances/{_upload(isengard_13, name)}/metadata?expand")
    assert metadata.get("PixelDataVR") == kept


def _raw(server: Isengard, uri: str) -> tuple[requests.Response, bytes]:
    """``uri`` asked for gzip, and its body as it came (``answer.content`` would inflate it)."""
    answer = requests.get(server.url + uri, headers={"Accept-Encoding": "gzip, deflate"}, stream=True, timeout=60)
    return answer, answer.raw.read()


def test_http_compression_is_off_by_default(isengard_13: Isengard) -> None:
    """Orthanc 1.12.2: ``HttpCompressionEnabled`` defaults to false."""
    instance = _upload(isengard_13, "Issue143.dcm")
    for uri in ("/tools/dicom-conformance", f"/instances/{instance}/tags", f"/instances/{instance}/file"):
        answer, body = _raw(isengard_13, uri)
        assert answer.status_code == 200 and len(body) >= 2048
        assert "Content-Encoding" not in answer.headers


def test_http_compression_only_of_compressible_types_from_2_kib(tmp_path: Path) -> None:
    """Orthanc 1.12.2: when enabled, JSON, XML, text and the like are compressed, never DICOM,
    and no whole answer under 2 KiB."""
    server = IsengardAtLevel(tmp_path, "1.13.0", 31, HttpCompressionEnabled=True).start()
    try:
        instance = _upload(server, "Issue143.dcm")
        plain = {uri: server.get(uri, headers={"Accept-Encoding": "identity"}).content
                 for uri in ("/tools/dicom-conformance", f"/instances/{instance}/tags", "/system")}
        for uri in ("/tools/dicom-conformance", f"/instances/{instance}/tags"):  # large, small answers
            answer, body = _raw(server, uri)
            assert answer.headers["Content-Encoding"] == "gzip"
            assert gzip.decompress(body) == plain[uri]
        assert 1024 <= len(plain["/system"]) < 2048
        assert "Content-Encoding" not in _raw(server, "/system")[0].headers
        for uri in (f"/instances/{instance}/file", f"/instances/{instance}/attachments/dicom/data"):
            answer, body = _raw(server, uri)
            assert len(body) >= 2048 and "Content-Encoding" not in answer.headers
    finally:
        server.stop()
