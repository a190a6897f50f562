"""``tag_text`` reads most main tags without the general path (``find_element`` then
``_leaf``): on every DICOM file of the tests, in its own encoding and in implicit VR, both
give each main tag the same text."""

from __future__ import annotations

import io
from pathlib import Path

import pydicom
import pytest
from pydicom.uid import ImplicitVRLittleEndian

from server.dicom.elements import find_element
from server.dicom.json_format import _leaf, dataset_decoder, tag_text
from server.dicom.main_tags import BY_LEVEL
from server.dicom.parse import _read_indexed
from server.errors import OrthancError

DATA = Path(__file__).parent / "data"
FILES = sorted(path for path in DATA.rglob("*.dcm"))
TAGS = sorted({(group << 16) | element for tags in BY_LEVEL.values() for group, element in tags}
              | {0x00080005, 0x00080016})


def general_text(ds: pydicom.Dataset, tag: int, decoder) -> str | None:
    element = find_element(ds, tag)
    if element is None:
        return None
    kind, value = _leaf(element, decoder)
    return value if kind == "String" else None


def implicit(data: bytes) -> bytes | None:
    """The file rewritten in implicit VR little endian, if pydicom can."""
    try:
        ds = pydicom.dcmread(io.BytesIO(data))
        if ds.file_meta.TransferSyntaxUID.is_compressed:
            return None
        ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
        out = io.BytesIO()
        ds.save_as(out, implicit_vr=True, little_endian=True, enforce_file_format=True)
    except Exception:  # noqa: BLE001 - a file pydicom cannot write is left out
        return None
    return out.getvalue()


def crafted() -> bytes:
    """Main tags at the edges: too long (over Orthanc's 256 bytes, in characters or in
    UTF-8 bytes), empty, padded, a UI with its NUL, a VR not a string."""
    ds = pydicom.Dataset()
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.PatientName, ds.PatientID = "Ünïcode^Ñame", " padded  "
    ds.StudyDescription = "x" * 257
    ds.SeriesDescription = "é" * 200  # 400 bytes in UTF-8
    ds.InstitutionName = ""
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID = "1.2.3", "1.2.3.4", "1.2.3.4.5"
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    ds.add_new(0x00200013, "UN", b"12")  # InstanceNumber, as an unknown VR
    ds.file_meta = pydicom.dataset.FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID, ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPClassUID, "1.2.3.4.5"
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


@pytest.mark.filterwarnings("ignore::UserWarning")  # pydicom on the crafted values, as meant
@pytest.mark.parametrize("path", [*FILES, None], ids=[*(str(p.relative_to(DATA)) for p in FILES), "crafted"])
def test_main_tags_read_as_the_general_path_reads_them(path: Path | None) -> None:
    data = path.read_bytes() if path is not None else crafted()
    for variant in (data, implicit(data)):
        if variant is None:
            continue
        try:
            ds = _read_indexed(variant)[0]
        except OrthancError:
            continue
        for encoding in ("Latin1", "Utf8"):
            decoder = dataset_decoder(ds, encoding)
            for tag in TAGS:
                if tag in ds._dict:
                    assert tag_text(ds, tag, decoder) == general_text(ds, tag, decoder), (hex(tag), encoding)
