"""A pydicom dataset seen the way dcmtk (hence Orthanc) sees it.

pydicom and dcmtk disagree on details that show in Orthanc's answers: the VR
of an implicit-VR element (dcmtk asks its own dictionary, with the private
creator), which elements are sequences, and the private creator of a private
element (dcmtk only honours a reservation read earlier in the same item).
This module walks the elements as dcmtk would, on their raw bytes.
"""

from __future__ import annotations

import struct
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from typing import cast

from pydicom.dataelem import DataElement, RawDataElement, convert_raw_data_element
from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_data_element
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence
from pydicom.uid import DeflatedExplicitVRLittleEndian

from server.dicom.dictionary import lookup

UNDEFINED_LENGTH = 0xFFFFFFFF
PIXEL_DATA = 0x7FE00010

#: VRs whose values dcmtk reads as character strings.
STRING_VRS = frozenset(
    ("AE", "AS", "CS", "DA", "DS", "DT", "IS", "LO", "LT", "PN", "SH", "ST", "TM", "UI",
     "UT", "UC", "UR"))

PIXEL_REPRESENTATION = 0x00280103
TRANSFER_SYNTAX_UID = 0x00020010
_DEFLATED = DeflatedExplicitVRLittleEndian.encode("ascii")

#: Tags whose dictionary VR "xs" dcmtk settles as US or SS from the PixelRepresentation
#: of the same item (``DcmItem::checkAndUpdateVR``); other "xs" elements stay unreadable.
_XS_BY_PIXEL_REPRESENTATION = frozenset(
    (0x00189810, 0x00280106, 0x00280107, 0x00280108, 0x00280109, 0x00280120,
     0x00280121, 0x00283002, 0x00409211, 0x00409216, 0x00603004, 0x00603006))

#: VRs whose explicit-VR header has a 4-byte length (after 2 reserved bytes).
_LONG_HEADER_VRS = frozenset(
    ("OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV"))


@dataclass
class Element:
    """One element of an item, with what Orthanc's rendering needs.

    ``raw`` holds the value bytes as stored (file byte order, padding kept);
    a sequence has ``source`` and ``parent`` instead, to parse its items only
    when they are asked for.
    """

    group: int
    element: int
    vr: str
    raw: bytes
    little_endian: bool
    creator: str | None
    source: RawDataElement | DataElement | None = field(default=None, repr=False)
    parent: Dataset | None = field(default=None, repr=False)

    @property
    def tag(self) -> int:
        return self.group << 16 | self.element

    @property
    def items(self) -> list[Dataset] | None:
        """The items of a sequence (parsed once), None for any other element.

        Not a ``functools.cached_property``: on Python 3.11 its first access takes a lock
        shared by every instance, a tenth of converting a file's tags."""
        if self.source is None or self.parent is None:
            return None
        parsed = self.__dict__.get("_items")
        if parsed is None:
            parsed = self.__dict__["_items"] = _sequence_items(self.source, self.parent)
        return parsed


def even(raw: bytes) -> bytes:
    """The value as dcmtk holds it: an odd-length value gets a NUL appended."""
    return raw + b"\0" if len(raw) & 1 else raw


def machine_string(raw: bytes, vr: str) -> bytes:
    """A string value after dcmtk's ``makeMachineByteString``.

    dcmtk drops the trailing padding characters (spaces; for UI every space
    and the trailing NULs) of the even-length value.  Embedded NULs stay: the
    JSON text stops at the first one, the ``/content`` bytes keep them.
    """
    raw = even(raw)
    if vr == "UI":
        return raw.replace(b" ", b"").rstrip(b"\0")
    return raw.rstrip(b" ")


def string_text(raw: bytes, vr: str) -> bytes:
    """The bytes of a string value that Orthanc's JSON shows (a C string)."""
    return machine_string(raw, vr).split(b"\0", 1)[0]


def _is_reservation(group: int, element: int) -> bool:
    return group & 1 == 1 and 0x0010 <= element <= 0x00FF


def dictionary_vr(group: int, element: int, creator: str | None) -> str:
    """The VR dcmtk gives an implicit-VR element: its dictionary's, or UN-like."""
    found = (creator is not None and lookup(group, element, creator)) or lookup(group, element)
    return found[0] if found else "UNKNOWN"


def stored_element(ds: Dataset, tag: int) -> DataElement | RawDataElement | None:
    """The element of ``tag`` as ``ds`` holds it, raw or converted, or None: read from the
    dataset's dictionary, where pydicom's ``in`` and ``get_item`` convert the tag each time
    (~1 us a lookup, a tenth of an ingest's parse over the main tags).  pydicom types the
    keys as ``BaseTag``, an ``int`` that hashes as one."""
    return cast("dict[int, DataElement | RawDataElement]", ds._dict).get(tag)


def _pixel_representation(ds: Dataset) -> int | None:
    """The PixelRepresentation of this very item, if it holds a readable one."""
    elem = stored_element(ds, PIXEL_REPRESENTATION)
    if elem is None:
        return None
    if isinstance(elem, DataElement):
        return elem.value if isinstance(elem.value, int) else None
    raw = elem.value or b""
    if len(raw) < 2:
        return None
    value: int = struct.unpack("<H" if elem.is_little_endian else ">H", raw[:2])[0]
    return value


def _encoding(ds: Dataset) -> tuple[bool, bool]:
    """(implicit VR, little endian) of a dataset, explicit little endian if unknown."""
    implicit, little = ds.original_encoding
    return bool(implicit), little is not False


def _value_bytes(elem: DataElement, ds: Dataset) -> bytes:
    """The stored bytes of an element pydicom already converted, re-encoded."""
    if elem.is_empty:
        return b""
    if elem.VR == "CS":  # SpecificCharacterSet, converted as pydicom reads: each file has one
        text = code_string_bytes(elem.value)
        if text is not None:
            return text
    implicit, little = _encoding(ds)
    fp = DicomBytesIO()
    fp.is_little_endian = little
    fp.is_implicit_VR = implicit
    charset = ds.original_character_set
    write_data_element(fp, elem, charset if isinstance(charset, str) else list(charset))
    data = fp.getvalue()
    if implicit:
        return data[8:]
    return data[12:] if elem.VR in _LONG_HEADER_VRS else data[8:]


def code_string_bytes(value: object) -> bytes | None:
    """A CS value of ASCII strings as pydicom's ``write_data_element`` writes it (values joined
    by backslashes, a space to an even length), without its ~19 us of machinery; None for
    any other value."""
    values = [value] if isinstance(value, str) else value if isinstance(value, (list, MultiValue)) else None
    if values is None or not all(isinstance(v, str) for v in values):
        return None
    text = "\\".join(values)
    if not text.isascii():
        return None
    return (text + " " if len(text) % 2 else text).encode("ascii")


def _sequence_items(elem: RawDataElement | DataElement, ds: Dataset) -> list[Dataset]:
    """The items of a sequence element, parsing its raw bytes if needed."""
    if isinstance(elem, RawDataElement):
        elem = convert_raw_data_element(
            elem._replace(VR="SQ"), encoding=ds.original_character_set, ds=ds)
    value = elem.value
    return list(value) if isinstance(value, Sequence) else []


def _resolve(elem: RawDataElement | DataElement, ds: Dataset,
             creator: str | None) -> tuple[str, bool, bool]:
    """(VR, is a sequence, little endian) of one element, as dcmtk reads it."""
    tag = int(elem.tag)  # compared as an int, not by BaseTag.__eq__ in Python
    group, element = tag >> 16, tag & 0xFFFF
    if isinstance(elem, RawDataElement):
        implicit, little = elem.is_implicit_VR, elem.is_little_endian
        file_vr = elem.VR
        undefined = elem.length == UNDEFINED_LENGTH
    else:
        implicit, little = _encoding(ds)
        file_vr = elem.VR
        undefined = isinstance(elem.value, Sequence)
    vr = dictionary_vr(group, element, creator) if implicit or not file_vr else file_vr
    if vr == "xs" and tag in _XS_BY_PIXEL_REPRESENTATION:
        representation = _pixel_representation(ds)
        if representation is not None:
            vr = "SS" if representation == 1 else "US"
    if tag == PIXEL_DATA:
        return vr, False, bool(little)
    is_sequence = vr == "SQ" or (undefined and vr in ("UN", "UNKNOWN"))
    return ("SQ" if is_sequence else vr), is_sequence, bool(little)


def find_element(ds: Dataset, tag: int) -> Element | None:
    """One public, non-sequence element of ``ds``, or None if absent."""
    elem = stored_element(ds, tag)
    if elem is None:
        return None
    vr, is_sequence, little = _resolve(elem, ds, None)
    if is_sequence:
        return None
    raw = (elem.value or b"") if isinstance(elem, RawDataElement) else _value_bytes(elem, ds)
    return Element(tag >> 16, tag & 0xFFFF, vr, raw, little, None)


def meta_overflow(ds: Dataset) -> list[int]:
    """Tags at the start of the dataset that dcmtk reads as part of the meta header.

    dcmtk reads the meta header up to the length announced by (0002,0000),
    so a group length too large swallows the first elements of the dataset.
    """
    meta = getattr(ds, "file_meta", None)
    if meta is None:
        return []
    group_length = stored_element(meta, 0x00020000)
    if group_length is None:
        return []
    syntax = find_element(meta, TRANSFER_SYNTAX_UID)  # read raw: pydicom's conversion of a UID costs ~20 us
    if syntax is not None and string_text(syntax.raw, "UI") == _DEFLATED:
        return []  # the dataset offsets count in the inflated stream
    value_tell: int | None
    if isinstance(group_length, RawDataElement):
        if group_length.value is None or len(group_length.value) != 4:
            return []
        value_tell = group_length.value_tell
        length = struct.unpack("<I", group_length.value)[0]
    else:
        value_tell, length = group_length.file_tell, group_length.value
    if value_tell is None or not isinstance(length, int):
        return []
    end = value_tell + 4 + length
    swallowed = []
    stored = cast("dict[int, DataElement | RawDataElement]", ds._dict)
    for tag in sorted(stored, key=int):
        elem = stored[tag]
        tell = elem.value_tell if isinstance(elem, RawDataElement) else elem.file_tell
        if tell is None or tell - 8 >= end:
            break
        swallowed.append(tag)
    return swallowed


def iter_elements(ds: Dataset, skip: Collection[int] = ()) -> Iterator[Element]:
    """The elements of one dataset or item, in tag order, the dcmtk way.

    Tags in ``skip`` are ignored (see :func:`meta_overflow`).
    """
    creators: dict[tuple[int, int], str] = {}
    stored = cast("dict[int, DataElement | RawDataElement]", ds._dict)  # as stored_element reads it
    for tag in sorted(stored, key=int):  # compared as ints, not by BaseTag.__lt__ in Python
        if tag in skip:
            continue
        elem = stored[tag]
        group, element = tag >> 16, tag & 0xFFFF
        creator = creators.get((group, element >> 8)) if group & 1 and element >= 0x1000 else None
        vr, is_sequence, little = _resolve(elem, ds, creator)
        if is_sequence:
            yield Element(group, element, vr, b"", little, creator, elem, ds)
            continue
        if isinstance(elem, RawDataElement):
            raw = elem.value or b""
        else:
            raw = _value_bytes(elem, ds)
        if raw and _is_reservation(group, element) and vr in STRING_VRS:
            creators.setdefault((group, element), string_text(raw, vr).decode("latin-1"))
        yield Element(group, element, vr, raw, little, creator)
