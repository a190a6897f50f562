"""Reading just what the index needs from an incoming DICOM file.

Ingest reads only the main DICOM tags and a few identifiers (``specific_tags``),
never the whole dataset: converting every element costs more than the rest of
the store path together.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from io import BytesIO

import pydicom
from pydicom.charset import convert_encodings, decode_bytes
from pydicom.datadict import dictionary_VR
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.tag import Tag as PydicomTag

from server.dicom.main_tags import ALL_TAGS, BY_LEVEL, Level, Tag
from server.errors import ErrorCode, OrthancError
from server.storage import ids

SPECIFIC_CHARACTER_SET = (0x0008, 0x0005)
SOP_CLASS_UID = (0x0008, 0x0016)
PIXEL_DATA = (0x7FE0, 0x0010)

_WANTED = [PydicomTag(t) for t in [*ALL_TAGS, SPECIFIC_CHARACTER_SET, SOP_CLASS_UID]]

#: Orthanc's ``DefaultEncoding`` names and the Python codecs pydicom decodes them with.
ENCODINGS: dict[str, str] = {
    "Ascii": "ISO_IR 6", "Utf8": "ISO_IR 192", "Latin1": "ISO_IR 100",
    "Latin2": "ISO_IR 101", "Latin3": "ISO_IR 109", "Latin4": "ISO_IR 110",
    "Latin5": "ISO_IR 148", "Cyrillic": "ISO_IR 144", "Windows1251": "ISO_IR 144",
    "Arabic": "ISO_IR 127", "Greek": "ISO_IR 126", "Hebrew": "ISO_IR 138",
    "Thai": "ISO_IR 166", "Japanese": "ISO 2022 IR 13", "Chinese": "GB18030",
    "Korean": "ISO 2022 IR 149", "JapaneseKanji": "ISO 2022 IR 87",
    "SimplifiedChinese": "GB18030",
}

_BINARY_VRS = {"US", "SS", "UL", "SL", "FL", "FD", "AT", "UV", "SV"}
_TEXT_VRS_KEEPING_LEADING_SPACES = {"LT", "ST", "UT"}


@dataclass
class ParsedInstance:
    """The indexed view of one DICOM file."""

    data: bytes
    tags: dict[Level, dict[Tag, str]]
    patient_id: str
    study_uid: str
    series_uid: str
    sop_uid: str
    sop_class_uid: str | None
    transfer_syntax: str | None
    pixel_data_offset: int | None
    ids: dict[Level, str] = field(default_factory=dict)

    def tag(self, level: Level, tag: Tag) -> str | None:
        return self.tags[level].get(tag)


def default_encodings(default_encoding: str) -> list[str]:
    """The Python codecs for the ``DefaultEncoding`` option (files without 0008,0005)."""
    return convert_encodings(ENCODINGS.get(default_encoding, "ISO_IR 100"))


def read_dataset(data: bytes, stop_before_pixels: bool = False,
                 specific_tags: list | None = None) -> tuple[Dataset, int]:
    """Parse DICOM bytes into (dataset, offset where parsing stopped).

    Anything pydicom cannot read is Orthanc's 400 "Bad file format".  With
    ``stop_before_pixels`` the offset is where the PixelData element starts.
    """
    if len(data) == 0:
        raise OrthancError(ErrorCode.BAD_FILE_FORMAT, "Received an empty DICOM file")
    stream = BytesIO(data)
    try:
        ds = pydicom.dcmread(stream, force=True, stop_before_pixels=stop_before_pixels,
                             specific_tags=specific_tags)
    except Exception as e:  # noqa: BLE001 - pydicom raises many types on corrupt input
        raise OrthancError(ErrorCode.BAD_FILE_FORMAT,
                           f"Cannot parse an invalid DICOM file (size: {len(data)} bytes)") from e
    return ds, stream.tell()


def text_value(ds: Dataset, tag: Tag, encodings: list[str]) -> str | None:
    """The value of ``tag`` as Orthanc indexes it: decoded text, padding stripped."""
    raw = ds.get_item(tag)
    if raw is None:
        return None
    if not isinstance(raw, RawDataElement):
        value = raw.value
        return "" if value is None else _join(value)
    vr = raw.VR or _dictionary_vr(tag)
    if raw.value is None:
        return ""
    if vr in _BINARY_VRS:
        return _join(ds[tag].value)
    text = decode_bytes(raw.value, encodings, {"\\", "^", "="} if vr == "PN" else set())
    text = text.rstrip(" \x00")
    if vr not in _TEXT_VRS_KEEPING_LEADING_SPACES:
        text = text.lstrip(" ")
    return text


def _join(value: object) -> str:
    if isinstance(value, (list, tuple, pydicom.multival.MultiValue)):
        return "\\".join(str(v) for v in value)
    return str(value)


def _dictionary_vr(tag: Tag) -> str:
    try:
        return dictionary_VR(tag)
    except KeyError:
        return "UN"


def _encodings_of(ds: Dataset, default: list[str]) -> list[str]:
    raw = ds.get_item(SPECIFIC_CHARACTER_SET)
    if raw is None or not raw.value:
        return default
    value = raw.value
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    names = [v.strip() for v in (value.split("\\") if isinstance(value, str) else value)]
    try:
        return convert_encodings(names)
    except Exception:  # noqa: BLE001 - unknown charset terms: fall back like Orthanc
        return default


def parse_for_index(data: bytes, default_encoding: list[str]) -> ParsedInstance:
    """Read the identifiers and main DICOM tags of a DICOM file, refusing what Orthanc refuses."""
    ds, stopped_at = read_dataset(data, stop_before_pixels=True, specific_tags=_WANTED)
    if len(ds) == 0 and "TransferSyntaxUID" not in getattr(ds, "file_meta", {}):
        raise OrthancError(ErrorCode.BAD_FILE_FORMAT,
                           f"Cannot parse an invalid DICOM file (size: {len(data)} bytes)")
    encodings = _encodings_of(ds, default_encoding)
    tags: dict[Level, dict[Tag, str]] = {}
    for level, level_tags in BY_LEVEL.items():
        values: dict[Tag, str] = {}
        for tag in level_tags:
            value = text_value(ds, tag, encodings)
            if value is not None:
                values[tag] = value
        tags[level] = values
    patient = tags[Level.PATIENT].get((0x0010, 0x0020), "")
    study = tags[Level.STUDY].get((0x0020, 0x000D), "")
    series = tags[Level.SERIES].get((0x0020, 0x000E), "")
    sop = tags[Level.INSTANCE].get((0x0008, 0x0018), "")
    if not (study and series and sop):
        raise OrthancError(ErrorCode.INEXISTENT_TAG)
    meta = getattr(ds, "file_meta", None)
    transfer_syntax = str(meta.TransferSyntaxUID) if meta is not None and "TransferSyntaxUID" in meta else None
    sop_class = text_value(ds, SOP_CLASS_UID, encodings)
    parsed = ParsedInstance(data=data, tags=tags, patient_id=patient, study_uid=study,
                            series_uid=series, sop_uid=sop, sop_class_uid=sop_class or None,
                            transfer_syntax=transfer_syntax,
                            pixel_data_offset=stopped_at if stopped_at < len(data) else None)
    parsed.ids = {
        Level.PATIENT: ids.patient_id(patient),
        Level.STUDY: ids.study_id(patient, study),
        Level.SERIES: ids.series_id(patient, study, series),
        Level.INSTANCE: ids.instance_id(patient, study, series, sop),
    }
    return parsed
