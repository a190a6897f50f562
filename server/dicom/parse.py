"""Reading just what the index needs from an incoming DICOM file.

Ingest reads only the main DICOM tags and a few identifiers (``specific_tags``),
never the whole dataset: converting every element costs more than the rest of
the store path together.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from io import BytesIO

import pydicom
from pydicom.dataset import Dataset
from pydicom.tag import Tag as PydicomTag

from server.dicom.json_format import dataset_decoder, tag_text
from server.dicom.main_tags import ALL_TAGS, BY_LEVEL, Level, Tag
from server.errors import ErrorCode, OrthancError
from server.storage import ids

SPECIFIC_CHARACTER_SET = (0x0008, 0x0005)
SOP_CLASS_UID = (0x0008, 0x0016)

_WANTED = [PydicomTag(t) for t in [*ALL_TAGS, SPECIFIC_CHARACTER_SET, SOP_CLASS_UID]]


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


def parse_for_index(data: bytes, default_encoding: str) -> ParsedInstance:
    """Read the identifiers and main DICOM tags of a DICOM file, refusing what Orthanc refuses.

    Values are the strings ``/tags`` shows (same decoding and normalisation);
    a value Orthanc shows as Null or TooLong is not indexed.
    """
    ds, stopped_at = read_dataset(data, stop_before_pixels=True, specific_tags=_WANTED)
    if len(ds) == 0 and "TransferSyntaxUID" not in getattr(ds, "file_meta", {}):
        raise OrthancError(ErrorCode.BAD_FILE_FORMAT,
                           f"Cannot parse an invalid DICOM file (size: {len(data)} bytes)")
    decoder = dataset_decoder(ds, default_encoding)
    tags: dict[Level, dict[Tag, str]] = {}
    for level, level_tags in BY_LEVEL.items():
        values: dict[Tag, str] = {}
        for group, element in level_tags:
            value = tag_text(ds, (group << 16) | element, decoder)
            if value is not None:
                values[(group, element)] = value
        tags[level] = values
    identifiers = [tags[Level.STUDY].get((0x0020, 0x000D)), tags[Level.SERIES].get((0x0020, 0x000E)),
                   tags[Level.INSTANCE].get((0x0008, 0x0018))]
    if None in identifiers:
        raise OrthancError(ErrorCode.INEXISTENT_TAG)
    patient, study, series, sop = (value.strip() for value in (
        tags[Level.PATIENT].get((0x0010, 0x0020), ""), *identifiers))
    if not (study and series and sop):
        raise OrthancError(ErrorCode.BAD_FILE_FORMAT,
                           "missing StudyInstanceUID, SeriesInstanceUID or SOPInstanceUID")
    sop_class = tag_text(ds, 0x00080016, decoder)
    parsed = ParsedInstance(data=data, tags=tags, patient_id=patient, study_uid=study,
                            series_uid=series, sop_uid=sop, sop_class_uid=sop_class or None,
                            transfer_syntax=_transfer_syntax(ds),
                            pixel_data_offset=_pixel_data_offset(data, stopped_at))
    parsed.ids = {
        Level.PATIENT: ids.patient_id(patient),
        Level.STUDY: ids.study_id(patient, study),
        Level.SERIES: ids.series_id(patient, study, series),
        Level.INSTANCE: ids.instance_id(patient, study, series, sop),
    }
    return parsed


#: The transfer syntaxes a file without meta header can be in, by (implicit VR, little endian).
_HEADERLESS_SYNTAXES = {(True, True): "1.2.840.10008.1.2", (False, True): "1.2.840.10008.1.2.1",
                        (False, False): "1.2.840.10008.1.2.2"}


def _transfer_syntax(ds: Dataset) -> str | None:
    """The meta header's transfer syntax or, for a bare dataset, the encoding it was read in
    (as DCMTK reports it to Orthanc)."""
    meta = getattr(ds, "file_meta", None)
    if meta is not None and "TransferSyntaxUID" in meta:
        return str(meta.TransferSyntaxUID)
    return _HEADERLESS_SYNTAXES.get(getattr(ds, "original_encoding", (None, None)))


_PIXEL_DATA_TAGS = (b"\xe0\x7f\x10\x00", b"\x7f\xe0\x00\x10")


def _pixel_data_offset(data: bytes, stopped_at: int) -> int | None:
    """Where the PixelData element starts, as Orthanc's DicomStreamReader finds it: only in a
    file with the 128-byte preamble and "DICM", and only if the tag is really there."""
    if data[128:132] != b"DICM" or data[stopped_at:stopped_at + 4] not in _PIXEL_DATA_TAGS:
        return None
    return stopped_at
