"""The DICOMDIR of a Media archive, with the records Orthanc 1.10.1 writes.

Orthanc builds it with dcmtk's ``DcmDicomDir`` (``DicomDirWriter.cpp``); the
records and their attributes below are those of a real 1.10.1 DICOMDIR dumped
with ``dcmdump``:

* PATIENT: PatientID (only if it has a value), PatientName;
* STUDY: StudyDate and StudyTime (the first of Study/Series/Acquisition/Content
  present in the file, else the current UTC date and time), StudyDescription,
  StudyInstanceUID, StudyID (only if it has a value), AccessionNumber;
* SERIES: Modality, SeriesInstanceUID, SeriesNumber (only if it has a value),
  and SeriesDescription (if present, even empty) when ``Extended`` is asked;
* IMAGE: InstanceNumber, ReferencedFileID (``IMAGES\\IM0``), the referenced SOP
  class, SOP instance and transfer syntax UIDs;
* every record: SpecificCharacterSet of the file that created it, if it has a value.

Values are decoded to Unicode then reduced to printable ASCII, as Orthanc does.
Records are keyed by PatientID / StudyInstanceUID / SeriesInstanceUID /
SOPInstanceUID: the first file of a study creates its record, a second file with
the same SOPInstanceUID adds nothing.  The file is written by hand (explicit VR
little endian, items and sequence of undefined length) because the record
offsets must point at the byte where each record starts.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

from pydicom.dataset import Dataset
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID

from server import __version__
from server.dicom import uids
from server.dicom.charset import TextDecoder
from server.dicom.elements import STRING_VRS, find_element, string_text
from server.dicom.main_tags import Level
from server.errors import ErrorCode, OrthancError

MEDIA_STORAGE_DIRECTORY_STORAGE = "1.2.840.10008.1.3.10"
EXPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2.1"
IMPLEMENTATION_VERSION_NAME = f"ISENGARD_{__version__}"[:16]
FILE_SET_ID = "ORTHANC_MEDIA"
RECORD_IN_USE = 0xFFFF

# Tags of the records (explicit VR, all with a 2-byte length).
SPECIFIC_CHARACTER_SET = 0x00080005
STUDY_DATE, SERIES_DATE, ACQUISITION_DATE, CONTENT_DATE = 0x00080020, 0x00080021, 0x00080022, 0x00080023
STUDY_TIME, SERIES_TIME, ACQUISITION_TIME, CONTENT_TIME = 0x00080030, 0x00080031, 0x00080032, 0x00080033
ACCESSION_NUMBER = 0x00080050
MODALITY = 0x00080060
SOP_CLASS_UID, SOP_INSTANCE_UID = 0x00080016, 0x00080018
STUDY_DESCRIPTION, SERIES_DESCRIPTION = 0x00081030, 0x0008103E
PATIENT_NAME, PATIENT_ID = 0x00100010, 0x00100020
STUDY_INSTANCE_UID, SERIES_INSTANCE_UID = 0x0020000D, 0x0020000E
STUDY_ID, SERIES_NUMBER, INSTANCE_NUMBER = 0x00200010, 0x00200011, 0x00200013
NEXT_RECORD, RECORD_IN_USE_FLAG, LOWER_LEVEL, RECORD_TYPE = 0x00041400, 0x00041410, 0x00041420, 0x00041430
REFERENCED_FILE_ID = 0x00041500
REFERENCED_SOP_CLASS, REFERENCED_SOP_INSTANCE, REFERENCED_TRANSFER_SYNTAX = 0x00041510, 0x00041511, 0x00041512

VRS: dict[int, str] = {
    SPECIFIC_CHARACTER_SET: "CS", STUDY_DATE: "DA", STUDY_TIME: "TM", ACCESSION_NUMBER: "SH",
    MODALITY: "CS", STUDY_DESCRIPTION: "LO", SERIES_DESCRIPTION: "LO", PATIENT_NAME: "PN",
    PATIENT_ID: "LO", STUDY_INSTANCE_UID: "UI", SERIES_INSTANCE_UID: "UI", STUDY_ID: "SH",
    SERIES_NUMBER: "IS", INSTANCE_NUMBER: "IS", NEXT_RECORD: "UL", RECORD_IN_USE_FLAG: "US",
    LOWER_LEVEL: "UL", RECORD_TYPE: "CS", REFERENCED_FILE_ID: "CS", REFERENCED_SOP_CLASS: "UI",
    REFERENCED_SOP_INSTANCE: "UI", REFERENCED_TRANSFER_SYNTAX: "UI",
}

_ITEM = 0xFFFEE000
_ITEM_END = 0xFFFEE00D
_SEQUENCE_END = 0xFFFEE0DD
_UNDEFINED = 0xFFFFFFFF


def ascii_text(text: str) -> str:
    """Orthanc's ``Toolbox::ConvertToAscii``: printable 7-bit characters only."""
    return "".join(c for c in text if " " <= c < "\x7f")


@dataclass
class Record:
    """One directory record: its type, its attributes (tag -> text), its children."""

    kind: str
    values: dict[int, str]
    children: list[Record] = field(default_factory=list)
    offset: int = 0
    next_offset: int = 0

    def size(self) -> int:
        """Bytes of the encoded item (the offsets are 4 bytes whatever their value)."""
        return len(self.encode())

    def encode(self) -> bytes:
        lower = self.children[0].offset if self.children else 0
        values: dict[int, str | int] = {NEXT_RECORD: self.next_offset, RECORD_IN_USE_FLAG: RECORD_IN_USE,
                                        LOWER_LEVEL: lower, RECORD_TYPE: self.kind, **self.values}
        return _header(_ITEM, _UNDEFINED) + _elements(values) + _header(_ITEM_END, 0)


class _Source:
    """Text values of one instance, read the way ``DicomDirWriter`` reads them through dcmtk."""

    def __init__(self, ds: Dataset, decoder: TextDecoder) -> None:
        self.ds = ds
        self.decoder = decoder

    def get(self, tag: int) -> str | None:
        """The value as Unicode, "" for an empty one, None when absent or not a string."""
        element = find_element(self.ds, tag)
        if element is None or element.vr not in STRING_VRS:
            return None
        return self.decoder.decode(string_text(element.raw, element.vr))

    def has_value(self, tag: int) -> bool:
        element = find_element(self.ds, tag)
        return element is not None and len(element.raw) > 0

    def exists(self, tag: int) -> bool:
        return find_element(self.ds, tag) is not None


class DicomDirWriter:
    """Collects the instances of a media archive, then encodes the DICOMDIR."""

    def __init__(self, extended: bool) -> None:
        self.extended = extended
        self.patients: list[Record] = []
        self._index: dict[tuple[str, str], Record] = {}

    def add(self, ds: Dataset, decoder: TextDecoder, file_id: list[str]) -> None:
        """Add one written file (``file_id`` = its path components, e.g. ``["IMAGES", "IM0"]``)."""
        source = _Source(ds, decoder)
        instance, new = self._record("IMAGE", source.get(SOP_INSTANCE_UID), source,
                                     lambda: self._image(source, ds, file_id))
        if not new:
            return
        series, new = self._record("SERIES", source.get(SERIES_INSTANCE_UID), source,
                                   lambda: self._series(source))
        series.children.append(instance)
        if not new:
            return
        study, new = self._record("STUDY", source.get(STUDY_INSTANCE_UID), source,
                                  lambda: self._study(source))
        study.children.append(series)
        if not new:
            return
        patient, new = self._record("PATIENT", source.get(PATIENT_ID) or "", source,
                                    lambda: self._patient(source))
        patient.children.append(study)
        if new:
            self.patients.append(patient)

    def _record(self, kind: str, key: str | None, source: _Source,
                fill: Callable[[], dict[int, str]]) -> tuple[Record, bool]:
        if key is None:
            raise OrthancError(ErrorCode.BAD_FILE_FORMAT)
        key = key.split("\0", 1)[0]
        found = self._index.get((kind, key))
        if found is not None:
            return found, False
        values = fill()
        self._copy(values, source, SPECIFIC_CHARACTER_SET, optional=True, copy_empty=False)
        record = Record(kind, values)
        self._index[(kind, key)] = record
        return record, True

    @staticmethod
    def _copy(values: dict[int, str], source: _Source, tag: int, optional: bool, copy_empty: bool) -> None:
        """dcmtk's ``copyElementType1/1C/2/3``, as ``DicomDirWriter::CopyString`` applies them."""
        if optional and not source.has_value(tag) and not (copy_empty and source.exists(tag)):
            return
        values[tag] = ascii_text(source.get(tag) or "")

    def _patient(self, source: _Source) -> dict[int, str]:
        values: dict[int, str] = {}
        self._copy(values, source, PATIENT_ID, optional=True, copy_empty=False)
        self._copy(values, source, PATIENT_NAME, optional=False, copy_empty=True)
        return values

    def _study(self, source: _Source) -> dict[int, str]:
        now = datetime.now(UTC)
        date = _first(source, (STUDY_DATE, SERIES_DATE, ACQUISITION_DATE, CONTENT_DATE), now.strftime("%Y%m%d"))
        time = _first(source, (STUDY_TIME, SERIES_TIME, ACQUISITION_TIME, CONTENT_TIME), now.strftime("%H%M%S.000000"))
        values = {STUDY_DATE: ascii_text(date), STUDY_TIME: ascii_text(time)}
        self._copy(values, source, STUDY_DESCRIPTION, optional=False, copy_empty=True)
        self._copy(values, source, STUDY_INSTANCE_UID, optional=False, copy_empty=False)
        self._copy(values, source, STUDY_ID, optional=True, copy_empty=False)
        self._copy(values, source, ACCESSION_NUMBER, optional=False, copy_empty=True)
        return values

    def _series(self, source: _Source) -> dict[int, str]:
        values: dict[int, str] = {}
        self._copy(values, source, MODALITY, optional=False, copy_empty=False)
        self._copy(values, source, SERIES_INSTANCE_UID, optional=False, copy_empty=False)
        self._copy(values, source, SERIES_NUMBER, optional=True, copy_empty=False)
        if self.extended:
            self._copy(values, source, SERIES_DESCRIPTION, optional=True, copy_empty=True)
        return values

    def _image(self, source: _Source, ds: Dataset, file_id: list[str]) -> dict[int, str]:
        values: dict[int, str] = {}
        self._copy(values, source, INSTANCE_NUMBER, optional=False, copy_empty=False)
        sop_class, sop_instance = source.get(SOP_CLASS_UID), source.get(SOP_INSTANCE_UID)
        meta = getattr(ds, "file_meta", None)
        syntax = str(meta.get("TransferSyntaxUID", "")) if meta is not None else ""
        if sop_class is None or sop_instance is None or not syntax:
            raise OrthancError(ErrorCode.BAD_FILE_FORMAT)
        values[REFERENCED_FILE_ID] = ascii_text("\\".join(file_id))
        values[REFERENCED_SOP_CLASS] = ascii_text(sop_class)
        values[REFERENCED_SOP_INSTANCE] = ascii_text(sop_instance)
        values[REFERENCED_TRANSFER_SYNTAX] = ascii_text(syntax)
        return values

    # -- encoding --------------------------------------------------------------------

    def encode(self) -> bytes:
        """The DICOMDIR file: preamble, file meta group, then the directory records."""
        meta = _meta()
        records = list(_preorder(self.patients))
        position = 128 + 4 + len(meta) + len(_dataset_header(0, 0))
        for record in records:
            record.offset = position
            position += record.size()
        for siblings in [self.patients, *(record.children for record in records)]:
            for record, following in zip(siblings, siblings[1:], strict=False):
                record.next_offset = following.offset
        first = self.patients[0].offset if self.patients else 0
        last = self.patients[-1].offset if self.patients else 0
        return b"".join([b"\0" * 128, b"DICM", meta, _dataset_header(first, last),
                         *(record.encode() for record in records), _header(_SEQUENCE_END, 0)])


def _first(source: _Source, tags: tuple[int, ...], default: str) -> str:
    for tag in tags:
        value = source.get(tag)
        if value is not None:
            return value
    return default


def _preorder(records: list[Record]) -> Iterator[Record]:
    for record in records:
        yield record
        yield from _preorder(record.children)


def _header(tag: int, length: int) -> bytes:
    return struct.pack("<HHI", tag >> 16, tag & 0xFFFF, length)


def _padded(value: str, vr: str) -> bytes:
    raw = value.encode("ascii")
    if len(raw) & 1:
        raw += b"\0" if vr == "UI" else b" "
    return raw


def _element(tag: int, vr: str, value: str | int) -> bytes:
    if vr == "UL":
        raw = struct.pack("<I", int(value))
    elif vr == "US":
        raw = struct.pack("<H", int(value))
    else:
        raw = _padded(str(value), vr)
    return struct.pack("<HH2sH", tag >> 16, tag & 0xFFFF, vr.encode(), len(raw)) + raw


def _elements(values: dict[int, str | int]) -> bytes:
    return b"".join(_element(tag, VRS[tag], values[tag]) for tag in sorted(values))


def _dataset_header(first: int, last: int) -> bytes:
    """The top-level elements before the records, and the sequence header."""
    return (_element(0x00041130, "CS", FILE_SET_ID)
            + _element(0x00041200, "UL", first)
            + _element(0x00041202, "UL", last)
            + _element(0x00041212, "US", 0)
            + struct.pack("<HH2sHI", 0x0004, 0x1220, b"SQ", 0, _UNDEFINED))


def _meta() -> bytes:
    """File meta group 0002, its group length first."""
    body = (struct.pack("<HH2sHI", 0x0002, 0x0001, b"OB", 0, 2) + b"\x00\x01"
            + _element(0x00020002, "UI", MEDIA_STORAGE_DIRECTORY_STORAGE)
            + _element(0x00020003, "UI", uids.generate(Level.INSTANCE))
            + _element(0x00020010, "UI", EXPLICIT_VR_LITTLE_ENDIAN)
            + _element(0x00020012, "UI", PYDICOM_IMPLEMENTATION_UID)
            + _element(0x00020013, "SH", IMPLEMENTATION_VERSION_NAME))
    return _element(0x00020000, "UL", len(body)) + body
