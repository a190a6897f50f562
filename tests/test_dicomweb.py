"""``GET /instances/{id}/file`` with ``Accept: application/dicom+json`` or ``+xml``: DICOMweb
JSON and XML, compared with the real Orthanc 1.10.1 field by field (JSON) and byte by byte (XML),
and the details of newer Orthanc releases at their API levels."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import server
from conftest import Isengard, Orthanc, sample
from server.dicom.dicomweb import dicomweb_json, dicomweb_xml
from server.dicom.parse import read_dataset

JSON = "application/dicom+json"
XML = "application/dicom+xml"

#: Compressed with sequences, DS, OF/OD/OL; PN with three groups and code extensions; private
#: tags and UN; implicit VR (OW pixel data); OB pixel data; empty PN components; SL/FD/FL and
#: OW/OB outside the pixel data; AT; JPEG.
FILES = ["2026-03-16-OD-OF-OL.dcm", "Encodings/DavidClunie/SCSH31", "PrivateMDNTags.dcm", "Issue94.dcm",
         "TransferSyntaxes/1.2.840.10008.1.2.1.dcm", "2021-02-19-MalaterreCP246.dcm",
         "2019-06-17-VedranZdesic.dcm", "Issue16.dcm", "Formats/Jpeg.dcm", "Issue195.dcm"]


@pytest.fixture(scope="module")
def both(isengard: Isengard, orthanc: Orthanc) -> Iterator[tuple[Isengard, Orthanc, dict[str, str]]]:
    isengard.clear()
    orthanc.clear()
    ids = {}
    for name in FILES:
        data = sample(name).read_bytes()
        ids[name] = isengard.upload(data)["ID"]
        assert orthanc.upload(data)["ID"] == ids[name]
    yield isengard, orthanc, ids
    isengard.clear()
    orthanc.clear()


@pytest.mark.parametrize("name", FILES)
def test_json_and_xml_match_orthanc(both, name: str) -> None:
    isengard, orthanc, ids = both
    path = f"/instances/{ids[name]}/file"
    for mime in (JSON, XML):
        ours, theirs = isengard.get(path, headers={"Accept": mime}), orthanc.get(path, headers={"Accept": mime})
        assert (ours.status_code, ours.headers["Content-Type"]) == (200, mime)
        assert theirs.headers["Content-Type"] == mime
        if mime == JSON:
            assert ours.json() == theirs.json()
        else:
            assert ours.content == theirs.content


def test_other_accept_values_get_the_file(both) -> None:
    isengard, _, ids = both
    data = sample(FILES[0]).read_bytes()
    for accept in (f"{JSON}, */*", "application/dicom", "application/json", JSON.upper()):
        answer = isengard.get(f"/instances/{ids[FILES[0]]}/file", headers={"Accept": accept})
        assert (answer.headers["Content-Type"], answer.content) == ("application/dicom", data)


def test_formats(both) -> None:
    """A few values spelled out: keys, PN groups, numbers, binary, sequences."""
    isengard, _, ids = both
    doc = isengard.get(f"/instances/{ids['Encodings/DavidClunie/SCSH31']}/file", headers={"Accept": JSON}).json()
    assert doc["00100010"] == {"vr": "PN", "Value": [
        {"Alphabetic": "Yamada^Tarou", "Ideographic": "山田^太郎", "Phonetic": "やまだ^たろう"}]}
    assert doc["00080005"] == {"vr": "CS", "Value": ["ISO 2022 IR 87"]}  # the implied first term dropped
    doc = isengard.get(f"/instances/{ids['2026-03-16-OD-OF-OL.dcm']}/file", headers={"Accept": JSON}).json()
    assert doc["00181310"] == {"vr": "US", "Value": [0, 384, 224, 0]}
    assert doc["00180081"] == {"vr": "DS", "Value": [27.524]}
    assert doc["00180050"] == {"vr": "DS", "Value": [4]}
    assert doc["00660016"] == {"vr": "OF", "Value": [pytest.approx(10.1)]}  # dcmtk's first value only
    assert doc["00081140"]["vr"] == "SQ" and len(doc["00081140"]["Value"]) == 2
    doc = isengard.get(f"/instances/{ids['Formats/Jpeg.dcm']}/file", headers={"Accept": JSON}).json()
    assert "7FE00010" not in doc  # compressed pixel data
    doc = isengard.get(f"/instances/{ids['Issue94.dcm']}/file", headers={"Accept": JSON}).json()
    assert doc["7FE00010"]["vr"] == "OW" and doc["7FE00010"]["InlineBinary"].startswith("AAAAAA")


def _document(name: str) -> dict:
    ds, _ = read_dataset(sample(name).read_bytes())
    return dicomweb_json(ds)


def test_empty_items_are_kept() -> None:
    """Orthanc 1.10.1 loses a sequence of empty items (or fails the answer when an empty item
    comes between others, falling back to the file); Orthanc 1.12.10 keeps them as ``{}``."""
    doc = _document("LenaTwiceWithFragments.dcm")
    assert doc["52009230"] == {"vr": "SQ", "Value": [{}, {}]}
    xml = dicomweb_xml(doc)
    assert '<Item number="1" />\n    <Value number="1" />' in xml


def test_newer_api_levels(monkeypatch: pytest.MonkeyPatch) -> None:
    """DS as strings (1.12.5), compressed pixel data as an empty value (1.12.1 to 1.12.5) then
    left out (1.12.6), every value of OF/OD/OL (1.12.11), OW as numbers (1.13.0)."""
    monkeypatch.setattr(server, "ORTHANC_API_VERSION", 26)
    doc = _document("2026-03-16-OD-OF-OL.dcm")
    assert doc["00180081"] == {"vr": "DS", "Value": ["27.524"]}
    assert doc["00200032"]["Value"] == ["-149.033", "-118.499", "-61.0464"]
    assert _document("Formats/Jpeg.dcm")["7FE00010"] == {"vr": "OB", "InlineBinary": ""}
    monkeypatch.setattr(server, "ORTHANC_API_VERSION", 27)
    assert "7FE00010" not in _document("Formats/Jpeg.dcm")
    monkeypatch.setattr(server, "ORTHANC_API_VERSION", 30)
    doc = _document("2026-03-16-OD-OF-OL.dcm")
    assert doc["00660016"]["Value"] == pytest.approx([10.1, 20.2, 30.3])
    assert doc["0070150D"]["Value"] == pytest.approx([1.1, 2.2, 3.3])
    assert doc["00660041"] == {"vr": "OL", "Value": [42, 0, 15]}
    assert "InlineBinary" in _document("2020-09-12-ELSCINT1-PMSCT_RLE1.dcm")["01F71017"]
    monkeypatch.setattr(server, "ORTHANC_API_VERSION", 31)
    words = _document("2020-09-12-ELSCINT1-PMSCT_RLE1.dcm")["01F71017"]
    assert words["vr"] == "OW" and len(words["Value"]) == 4 and all(isinstance(v, int) for v in words["Value"])


def test_unit_and_rest_agree(both) -> None:
    """The REST answer is this module's document, served as is."""
    isengard, _, ids = both
    name = "PrivateMDNTags.dcm"
    answer = isengard.get(f"/instances/{ids[name]}/file", headers={"Accept": JSON}).json()
    assert answer == _document(name)

