"""``POST /tools/create-dicom`` and ``/instances/{id}/pdf``, side by side with the real Orthanc 1.10.1."""

from __future__ import annotations

import base64
import io
import re
import struct
import subprocess
import zlib
from pathlib import Path
from typing import Any

import pydicom
import pytest
from PIL import Image

from conftest import Isengard, Orthanc, Server, dcmtk, sample

DICTIONARY = {
    "0405,0010": ["LO", "PrivateCreatorForMyCompany", 1, 1, "My Company"],
    "0405,1001": ["ST", "MyPrivateXMLTag", 1, 1, "My Company"],
    "0405,1002": ["US", "MyPrivateUS", 1, 2, "My Company"],
    "0405,1003": ["DS", "MyPrivateDS", 1, 3, "My Company"],
    "0010,0abc": ["LO", "MyPublicThing", 1, 0],
    "0021,1001": ["LO", "OddNoCreator", 1],
}

#: Tags whose values are generated (UIDs, patient ID) or depend on the clock.
GENERATED = {"0008,0012", "0008,0013", "0008,0018", "0008,0020", "0008,0021", "0008,0022", "0008,0023",
             "0008,0030", "0008,0031", "0008,0032", "0008,0033", "0010,0020", "0020,000d", "0020,000e"}
DATE_TAGS = {"0008,0012", "0008,0020", "0008,0021", "0008,0022", "0008,0023"}
TIME_TAGS = {"0008,0013", "0008,0030", "0008,0031", "0008,0032", "0008,0033"}


def data_uri(name: str, mime: str) -> str:
    return f"data:{mime};base64," + base64.b64encode(sample(name).read_bytes()).decode()


@pytest.fixture(scope="module")
def both(tmp_path_factory: pytest.TempPathFactory):
    isengard = Isengard(tmp_path_factory.mktemp("create-isengard"), Dictionary=DICTIONARY).start()
    orthanc = Orthanc(tmp_path_factory.mktemp("create-orthanc"), Dictionary=DICTIONARY).start()
    yield isengard, orthanc
    isengard.stop()
    orthanc.stop()


def create(server: Server, body: Any) -> dict:
    answer = server.post("/tools/create-dicom", json=body)
    assert answer.status_code == 200, answer.text
    return answer.json()


def file_of(server: Server, instance: str) -> pydicom.Dataset:
    return pydicom.dcmread(io.BytesIO(server.get(f"/instances/{instance}/file").content))


def stable_tags(server: Server, instance: str, parent: str | None = None) -> dict:
    """/tags with the generated values (UIDs, patient ID, "now") replaced by a marker; the
    "now" of a ``parent`` instance too (what a child inherits may be a second older)."""
    tags = server.json(f"/instances/{instance}/tags")
    now = {tags[key]["Value"] for key in ("0008,0012", "0008,0013") if key in tags}
    if parent is not None:
        parent_tags = server.json(f"/instances/{parent}/tags")
        now |= {parent_tags[key]["Value"] for key in ("0008,0012", "0008,0013") if key in parent_tags}
    for key in DATE_TAGS & tags.keys():
        assert re.fullmatch(r"\d{8}", tags[key]["Value"])
    for key in TIME_TAGS & tags.keys():
        assert re.fullmatch(r"\d{6}(\.000000)?", tags[key]["Value"])
    return {key: ("generated" if key in GENERATED and _generated(value["Value"], now) else value)
            for key, value in tags.items()}


def _generated(value: str, now: set[str]) -> bool:
    return (value in now or value.startswith("1.2.276.0.7230010.3.1.")
            or re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}", value) is not None)


def stable_header(server: Server, instance: str) -> dict:
    header = server.json(f"/instances/{instance}/header")
    return {key: value for key, value in header.items() if key not in ("0002,0000", "0002,0003")}


CASES: dict[str, Any] = {
    "plain": {"Tags": {"PatientName": "Hello^World", "StudyDescription": "Créé", "Modality": "CT"}},
    "empty": {"Tags": {}},
    "legacy": {"PatientName": "Legacy", "PatientID": "L1", "StudyDescription": "Old format"},
    "png-rgb": {"Tags": {"PatientName": "Png"}, "Content": data_uri("Lena.png", "image/png")},
    "png-small-rgb": {"Tags": {}, "Content": data_uri("ColorTestMalaterre.png", "image/png")},
    "png-gray8": {"Tags": {}, "Content": data_uri("LenaGrayscale.png", "IMAGE/PNG")},
    "png-gray16-monochrome1": {"Tags": {"PhotometricInterpretation": "MONOCHROME1"},
                               "Content": data_uri("Formats/Brainix.png", "image/png")},
    "jpeg": {"Tags": {"PatientName": "Jpg", "Rows": "1"}, "Content": data_uri("Lena.jpg", "image/jpeg")},
    "pdf": {"Tags": {"PatientName": "Pdf", "Modality": "CT"},
            "Content": data_uri("HelloWorld.pdf", "application/pdf")},
    "raw-pixels": {"Tags": {}, "Content": "data:application/octet-stream;base64,AAECAw=="},
    "private-tags": {"PrivateCreator": "My Company", "Tags": {
        "PatientName": "Love^Sarah", "PatientID": "7", "PrivateCreatorForMyCompany": "My Company",
        "MyPrivateXMLTag": "<xml><test>Testing</test></xml>", "MyPrivateUS": "12", "MyPrivateDS": "1.5\\2\\3"}},
    "private-without-creator": {"Tags": {"MyPrivateXMLTag": "abc", "OddNoCreator": "zz", "MyPublicThing": "x\\y"}},
    "private-other-creator": {"PrivateCreator": "Other", "Tags": {"MyPrivateXMLTag": "abc"}},
    "numbers": {"Tags": {"Rows": "-5", "Columns": "+7", "SimpleFrameList": "-1", "TagAngleSecondAxis": "-32768",
                         "RecommendedDisplayFrameRateInFloat": "0.1", "SmallestImagePixelValue": "1\\-2",
                         "FrameIncrementPointer": "PatientName", "WindowCenter": "40\\50",
                         "ImagePositionPatient": "1\\2\\3", "BitsAllocated": ""}},
    "sequences": {"Tags": {"ReferencedStudySequence": [
        {"ReferencedSOPClassUID": "1.2", "ReferencedSOPInstanceUID": "1.3"}, {}, []],
        "OtherPatientIDsSequence": [], "PatientName": None}},
    "binary": {"Tags": {"RedPaletteColorLookupTableData": "data:application/octet-stream;base64,AAECAw==",
                        "OverlayData": "abcd", "0013,1010": "data:application/octet-stream;base64,AAECAw==",
                        "0010,0abd": "abcdé"}},
    "binary-not-interpreted": {"InterpretBinaryTags": False, "Tags": {
        "0013,1010": "data:application/octet-stream;base64,AAECAw=="}},
    "encapsulated-document-uri": {"Tags": {
        "EncapsulatedDocument": data_uri("HelloWorld.pdf", "application/pdf")}},
    "utf8": {"Tags": {"PatientName": "Ünïcode^中文", "SpecificCharacterSet": "ISO_IR 192"}},
    "latin1-drops-cjk": {"Tags": {"PatientName": "Ünïcode^中文"}},
    "overridable-dates": {"Tags": {"SeriesDate": "19990101", "ContentTime": "101010", "PatientID": "P"}},
    "forced-uid": {"Force": True, "Tags": {"SOPInstanceUID": "1.2.3.4", "SOPClassUID": "1.2.840.10008.5.1.4.1.1.7"}},
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_created_instance_matches_orthanc(both, case: str) -> None:
    isengard, orthanc = both
    body = CASES[case]
    mine, theirs = create(isengard, body)["ID"], create(orthanc, body)["ID"]
    assert stable_tags(isengard, mine) == stable_tags(orthanc, theirs)
    assert stable_header(isengard, mine) == stable_header(orthanc, theirs)
    ours, reference = file_of(isengard, mine), file_of(orthanc, theirs)
    assert ours.get("PixelData") == reference.get("PixelData")
    assert ours.get("EncapsulatedDocument") == reference.get("EncapsulatedDocument")
    metadata = isengard.json(f"/instances/{mine}/metadata?expand")
    assert metadata["Origin"] == "RestApi"
    assert metadata["TransferSyntax"] == "1.2.840.10008.1.2.1"


def test_answer_is_that_of_an_upload(both) -> None:
    isengard, _ = both
    answer = create(isengard, {"Tags": {"PatientID": "ANSWER", "StudyInstanceUID": "1.2.3"}, "Force": True})
    assert sorted(answer) == ["ID", "ParentPatient", "ParentSeries", "ParentStudy", "Path", "Status"]
    assert answer["Path"] == f"/instances/{answer['ID']}" and answer["Status"] == "Success"
    study = isengard.json(f"/studies/{answer['ParentStudy']}")
    assert study["MainDicomTags"]["StudyInstanceUID"] == "1.2.3"
    assert study["ParentPatient"] == answer["ParentPatient"]


@pytest.mark.parametrize(("name", "mime"), [("Lena.png", "image/png"), ("Lena.jpg", "image/jpeg"),
                                            ("LenaGrayscale.png", "image/png"),
                                            ("Formats/Brainix.png", "image/png")])
def test_pixels_are_the_decoded_image(both, name: str, mime: str) -> None:
    isengard, _ = both
    instance = create(isengard, {"Tags": {}, "Content": data_uri(name, mime)})["ID"]
    ds = file_of(isengard, instance)
    image = Image.open(sample(name))
    assert (ds.Columns, ds.Rows) == image.size
    assert ds.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.1"
    if image.mode == "RGB":
        assert (ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PlanarConfiguration) == (3, "RGB", 0)
        assert ds.PixelData == image.tobytes()
    else:
        bits = 16 if image.mode.startswith("I;16") else 8
        assert (ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.BitsAllocated) == (1, "MONOCHROME2", bits)
        expected = image.tobytes() if bits == 8 else image.tobytes("raw", "I;16")
        assert ds.PixelData == expected


def _png_rgba64_as_rgb48(path: Path) -> tuple[int, int, bytes]:
    """An independent decoder of 16-bit RGBA PNGs (no interlace): zlib, unfiltering, alpha dropped."""
    data = path.read_bytes()
    position, chunks = 8, b""
    while position < len(data):
        length, kind = struct.unpack(">I4s", data[position:position + 8])
        body = data[position + 8:position + 8 + length]
        if kind == b"IHDR":
            width, height, depth, color, _, _, interlace = struct.unpack(">IIBBBBB", body)
            assert (depth, color, interlace) == (16, 6, 0)
        elif kind == b"IDAT":
            chunks += body
        position += 12 + length
    raw, stride, bpp = zlib.decompress(chunks), width * 8, 8
    previous, pixels = bytearray(stride), bytearray()
    for row in range(height):
        kind, line = raw[row * (stride + 1)], bytearray(raw[row * (stride + 1) + 1:(row + 1) * (stride + 1)])
        for i in range(stride):
            left = line[i - bpp] if i >= bpp else 0
            up, corner = previous[i], previous[i - bpp] if i >= bpp else 0
            if kind == 1:
                line[i] = (line[i] + left) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + up) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 0xFF
            elif kind == 4:
                p = left + up - corner
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
                line[i] = (line[i] + (left if pa <= pb and pa <= pc else up if pb <= pc else corner)) & 0xFF
        for x in range(width):
            for channel in range(3):
                high, low = line[x * 8 + channel * 2], line[x * 8 + channel * 2 + 1]
                pixels += bytes((low, high))
        previous = line
    return width, height, bytes(pixels)


def test_rgba64_png_becomes_16_bit_rgb(both) -> None:
    """Orthanc 1.10.1 answers "not implemented"; newer Orthanc drops the alpha channel, as here."""
    isengard, orthanc = both
    body = {"Tags": {}, "Content": data_uri("Png16RBGATest.png", "image/png")}
    assert orthanc.post("/tools/create-dicom", json=body).json()["OrthancStatus"] == 2
    ds = file_of(isengard, create(isengard, body)["ID"])
    width, height, pixels = _png_rgba64_as_rgb48(sample("Png16RBGATest.png"))
    assert (ds.Columns, ds.Rows, ds.SamplesPerPixel, ds.BitsAllocated, ds.BitsStored, ds.HighBit) == (
        width, height, 3, 16, 16, 15)
    assert ds.PhotometricInterpretation == "RGB" and ds.PixelRepresentation == 0
    assert ds.PixelData == pixels


def test_pdf_round_trip(both) -> None:
    isengard, orthanc = both
    pdf = sample("HelloWorld.pdf").read_bytes()
    instance = create(isengard, {"Tags": {}, "Content": data_uri("HelloWorld.pdf", "application/pdf")})["ID"]
    answer = isengard.get(f"/instances/{instance}/pdf")
    assert answer.status_code == 200
    assert answer.headers["Content-Type"] == "application/pdf"
    assert answer.content == pdf
    ds = file_of(isengard, instance)
    assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.104.1"
    assert (ds.Modality, ds.ConversionType, ds.MIMETypeOfEncapsulatedDocument) == ("OT", "WSD", "application/pdf")
    not_pdf = create(isengard, {"Tags": {}})["ID"]
    reference_not_pdf = create(orthanc, {"Tags": {}})["ID"]
    for server, other in ((isengard, not_pdf), (orthanc, reference_not_pdf)):
        missing = server.get(f"/instances/{other}/pdf")
        assert (missing.status_code, missing.content) == (404, b"")
        unknown = server.get("/instances/00000000-00000000-00000000-00000000-00000000/pdf")
        assert (unknown.status_code, unknown.json()["OrthancStatus"]) == (404, 17)


@pytest.mark.parametrize(("mime", "sop_class"), [
    ("model/stl", "1.2.840.10008.5.1.4.1.1.104.3"), ("model/obj", "1.2.840.10008.5.1.4.1.1.104.4"),
    ("model/mtl", "1.2.840.10008.5.1.4.1.1.104.5")])
def test_encapsulated_3d_models(both, mime: str, sop_class: str) -> None:
    """Orthanc 1.12.1: STL, OBJ and MTL files kept as they are (an odd length padded with a 0)."""
    isengard, _ = both
    model = b"solid cube\nendsolid"
    content = f"data:{mime.upper()};base64," + base64.b64encode(model).decode()
    ds = file_of(isengard, create(isengard, {"Tags": {"PatientName": "Jodogne"}, "Content": content})["ID"])
    assert (ds.SOPClassUID, ds.Modality, ds.MIMETypeOfEncapsulatedDocument) == (sop_class, "M3D", mime)
    assert ds.PatientName == "Jodogne" and ds.EncapsulatedDocument == model + b"\0"
    given = {"Modality": "OT", "SOPClassUID": "1.2.3", "MIMETypeOfEncapsulatedDocument": "text/plain"}
    ds = file_of(isengard, create(isengard, {"Tags": given, "Content": content, "Force": True})["ID"])
    assert (ds.SOPClassUID, ds.Modality, ds.MIMETypeOfEncapsulatedDocument) == ("1.2.3", "OT", mime)


ERRORS: dict[str, Any] = {
    "pixel-data-in-tags": {"Tags": {"PixelData": "x"}},
    "unknown-tag": {"Tags": {"Foo": "x"}},
    "override-generated-uid": {"Tags": {"StudyInstanceUID": "1.2.3"}},
    "not-a-data-uri": {"Tags": {}, "Content": "notadatauri"},
    "unsupported-mime": {"Tags": {}, "Content": "data:image/gif;base64,AAAA"},
    "unknown-mime": {"Tags": {}, "Content": "data:foo/bar;base64,AAAA"},
    "bad-png": {"Tags": {}, "Content": "data:image/png;base64,AAAA"},
    "not-a-pdf": {"Tags": {}, "Content": "data:application/pdf;base64,AAAAAAAA"},
    "content-not-a-string": {"Tags": {}, "Content": 12},
    "tags-not-an-object": {"Tags": "x"},
    "body-not-an-object": [1],
    "force-not-a-boolean": {"Tags": {}, "Force": "yes"},
    "creator-not-a-string": {"Tags": {}, "PrivateCreator": 1},
    "interpret-not-a-boolean": {"Tags": {}, "InterpretBinaryTags": 1},
    "unknown-parent": {"Tags": {}, "Parent": "nope"},
    "two-values-for-us": {"Tags": {"Rows": "12\\34"}},
    "us-out-of-range": {"Tags": {"Rows": "70000"}},
    "us-with-spaces": {"Tags": {"Rows": " 5"}},
    "float-out-of-range": {"Tags": {"RecommendedDisplayFrameRateInFloat": "3.4028236e38"}},
    "number-value": {"Tags": {"Rows": 12}},
    "object-value": {"Tags": {"PatientName": {"a": 1}}},
    "array-for-a-string": {"Tags": {"PatientName": ["a"]}},
    "private-two-values": {"PrivateCreator": "My Company", "Tags": {"0405,1002": "12\\34"}},
    "odd-length-ow": {"Tags": {"OverlayData": "abc"}},
    "negative-xs": {"Tags": {"SmallestImagePixelValue": "-5"}},
    "unknown-character-set": {"Tags": {"SpecificCharacterSet": "ISO_IR 999"}},
    "legacy-number": {"PatientName": 12},
    "unknown-at-value": {"Tags": {"FrameIncrementPointer": "nope"}},
}


@pytest.mark.parametrize("case", sorted(ERRORS))
def test_errors_match_orthanc(both, case: str) -> None:
    isengard, orthanc = both
    mine = isengard.post("/tools/create-dicom", json=ERRORS[case])
    theirs = orthanc.post("/tools/create-dicom", json=ERRORS[case])
    assert mine.status_code == theirs.status_code
    ours, reference = mine.json(), theirs.json()
    assert (ours["OrthancStatus"], ours.get("Details")) == (reference["OrthancStatus"], reference.get("Details"))


BASE = {"Tags": {"PatientName": "Parent^Test", "PatientID": "PARENT", "PatientBirthDate": "19800101",
                 "StudyDescription": "Study", "AccessionNumber": "A1", "ReferringPhysicianName": "",
                 "SeriesDescription": "Series", "Modality": "MR", "InstitutionName": "Hospital",
                 "ReferencedPatientSequence": [{"ReferencedSOPInstanceUID": "1.2"}]}}


@pytest.mark.parametrize("level", ["Patient", "Study", "Series"])
def test_parent_modules_are_inherited_as_orthanc(both, level: str) -> None:
    isengard, orthanc = both
    results = []
    for server in (isengard, orthanc):
        base = create(server, BASE)
        parent = {"Patient": base["ParentPatient"], "Study": base["ParentStudy"],
                  "Series": base["ParentSeries"]}[level]
        child = create(server, {"Parent": parent, "Tags": {"InstanceNumber": "2"}})
        assert child["ParentPatient"] == base["ParentPatient"]
        assert (child["ParentStudy"] == base["ParentStudy"]) == (level != "Patient")
        assert (child["ParentSeries"] == base["ParentSeries"]) == (level == "Series")
        base_tags = server.json(f"/instances/{base['ID']}/tags?short")
        child_tags = server.json(f"/instances/{child['ID']}/tags?short")
        inherited = {key for key in base_tags if child_tags.get(key) == base_tags[key]}
        results.append((stable_tags(server, child["ID"], base["ID"]), inherited - DATE_TAGS - TIME_TAGS))
        refused = server.post("/tools/create-dicom", json={"Parent": parent, "Tags": {"PatientName": "X"}})
        assert (refused.status_code, refused.json()["OrthancStatus"]) == (400, 2020)
        assert refused.json()["Details"] == "PatientName"
        forced = create(server, {"Parent": parent, "Force": True, "Tags": {"PatientName": "Parent^Test"}})
        assert forced["ParentPatient"] == base["ParentPatient"]
        on_instance = server.post("/tools/create-dicom", json={"Parent": base["ID"], "Tags": {}})
        assert on_instance.json()["OrthancStatus"] == 2025
    assert results[0] == results[1]


def test_content_array_makes_a_series(both) -> None:
    isengard, _ = both
    png = data_uri("LenaGrayscale.png", "image/png")
    answer = create(isengard, {"Tags": {"PatientName": "Series^Of^Two"}, "Content": [
        png, {"Content": png, "Tags": {"SeriesDescription": "ignored?", "ImageComments": "second"}}]})
    assert sorted(answer) == ["ID", "Path", "Status"]
    assert answer["Path"] == f"/series/{answer['ID']}" and answer["Status"] == "Success"
    instances = isengard.json(f"/series/{answer['ID']}/instances")
    tags = sorted((isengard.json(f"/instances/{i['ID']}/simplified-tags") for i in instances),
                  key=lambda t: int(t["InstanceNumber"]))
    assert [t["InstanceNumber"] for t in tags] == ["1", "2"]
    assert [t["ImageIndex"] for t in tags] == ["1", "2"]
    assert {t["ImagesInAcquisition"] for t in tags} == {"2"}
    assert tags[1]["ImageComments"] == "second" and "ImageComments" not in tags[0]
    assert len({t["SOPInstanceUID"] for t in tags}) == 2
    assert isengard.json(f"/series/{answer['ID']}")["ExpectedNumberOfInstances"] == 2


def test_failing_series_leaves_nothing(both) -> None:
    isengard, _ = both
    before = isengard.json("/patients")
    png = data_uri("LenaGrayscale.png", "image/png")
    failed = isengard.post("/tools/create-dicom", json={"Tags": {"PatientID": "NEVER"}, "Content": [png, "bad"]})
    assert (failed.status_code, failed.json()["OrthancStatus"]) == (400, 15)
    no_payload = isengard.post("/tools/create-dicom", json={"Tags": {}, "Content": [{"Tags": {}}]})
    assert no_payload.json()["OrthancStatus"] == 2022
    assert isengard.json("/patients") == before


def test_private_tags_round_trip_through_tags(both) -> None:
    isengard, _ = both
    instance = create(isengard, CASES["private-tags"])["ID"]
    tags = isengard.json(f"/instances/{instance}/tags")
    assert tags["0405,0010"] == {"Name": "PrivateCreator", "Type": "String", "Value": "My Company"}
    assert tags["0405,1001"] == {"Name": "MyPrivateXMLTag", "PrivateCreator": "My Company", "Type": "String",
                                 "Value": "<xml><test>Testing</test></xml>"}
    assert tags["0405,1002"] == {"Name": "MyPrivateUS", "PrivateCreator": "My Company", "Type": "String",
                                 "Value": "12"}
    simplified = isengard.json(f"/instances/{instance}/simplified-tags")
    assert simplified["MyPrivateXMLTag"] == "<xml><test>Testing</test></xml>"
    ds = file_of(isengard, instance)
    assert ds[0x04051001].VR == "ST" and ds[0x04051002].VR == "US" and ds[0x04051002].value == 12


# -- Encapsulate (Orthanc 1.12.7) ------------------------------------------------------------


def _jpeg(mode: str) -> bytes:
    image = Image.new(mode, (33, 21))
    for x in range(33):
        for y in range(21):
            image.putpixel((x, y), (x * 7, y * 11, 90) if mode == "RGB" else x * 7)
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


@pytest.mark.parametrize(("mode", "photometric", "samples"), [("RGB", "YBR_FULL_422", 3), ("L", "MONOCHROME2", 1)])
def test_encapsulated_jpeg_is_stored_as_is(both, tmp_path: Path, mode: str, photometric: str, samples: int) -> None:
    """The JPEG becomes the one fragment of JPEG Baseline pixel data, untouched: dcmdump and
    pydicom read it, and pydicom decodes it to the image Pillow decodes."""
    isengard, _ = both
    jpeg = _jpeg(mode)
    uri = "data:image/jpeg;base64," + base64.b64encode(jpeg).decode()
    instance = create(isengard, {"Tags": {"PatientName": "Encapsulated"}, "Content": uri, "Encapsulate": True})["ID"]
    data = isengard.get(f"/instances/{instance}/file").content
    ds = pydicom.dcmread(io.BytesIO(data))
    assert ds.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.4.50"
    assert (ds.Rows, ds.Columns, ds.SamplesPerPixel, ds.BitsAllocated, ds.BitsStored, ds.HighBit) == (
        21, 33, samples, 8, 8, 7)
    assert (ds.PhotometricInterpretation, ds.PixelRepresentation) == (photometric, 0)
    assert "NumberOfFrames" not in ds
    frames = list(pydicom.encaps.generate_frames(ds.PixelData, number_of_frames=1))
    assert frames[0].rstrip(b"\0") == jpeg.rstrip(b"\0")
    reference = Image.open(io.BytesIO(jpeg))
    decoded = ds.pixel_array
    assert decoded.shape == ((21, 33, 3) if samples == 3 else (21, 33))
    expected = reference.convert("RGB") if samples == 3 else reference
    assert abs(int(decoded.astype(int).sum()) - sum(expected.tobytes())) <= decoded.size * 2
    path = tmp_path / "created.dcm"
    path.write_bytes(data)
    dump = subprocess.run([dcmtk("dcmdump"), "+P", "0002,0010", "+P", "7fe0,0010", str(path)],
                          capture_output=True, text=True, check=True, timeout=60).stdout
    assert "JPEGBaseline" in dump and "PixelSequence" in dump
    assert isengard.get(f"/instances/{instance}/preview").status_code == 200
    assert isengard.json(f"/instances/{instance}/metadata?expand")["TransferSyntax"] == "1.2.840.10008.1.2.4.50"


@pytest.mark.parametrize(("body", "status", "code"), [
    ({"Content": data_uri("Lena.png", "image/png"), "Encapsulate": True}, 500, 2),  # NotImplemented
    ({"Content": "not a data URI", "Encapsulate": True}, 400, 15),
    ({"Content": [data_uri("Lena.jpg", "image/jpeg")], "Encapsulate": True}, 500, 2),
    ({"Content": "data:image/jpeg;base64,AAAA", "Encapsulate": True}, 400, 15),
    ({"Content": data_uri("Lena.jpg", "image/jpeg"), "Encapsulate": "yes"}, 400, 8),
])
def test_encapsulate_refusals(both, body: dict, status: int, code: int) -> None:
    isengard, _ = both
    refused = isengard.post("/tools/create-dicom", json={"Tags": {}, **body})
    assert (refused.status_code, refused.json()["OrthancStatus"]) == (status, code)
