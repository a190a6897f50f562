"""``GET /instances/{id}/content/...``: browsing the raw dataset like Orthanc 1.10.1.

The path alternates tags and item indexes.  An even number of components
names an item (answer: its tags as ``gggg-eeee``), an odd number an element
(a sequence answers its item indexes, any other element its value bytes).
PixelData at the top level is special: its "items" are the fragments of an
encapsulated image (basic offset table included), or one block for a native one.
Whatever Orthanc cannot find gives no answer at all, i.e. a 404 with an empty
body, except an unknown tag name, which is an "Unknown DICOM tag" error.
"""

from __future__ import annotations

import re
import struct

from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset

from server.dicom.dictionary import tag_from_name
from server.dicom.elements import (
    PIXEL_DATA,
    STRING_VRS,
    UNDEFINED_LENGTH,
    Element,
    even,
    iter_elements,
    machine_string,
    meta_overflow,
)
from server.errors import ErrorCode, OrthancError

#: Word size of the VRs whose values dcmtk hands out in little endian.
_WORD_SIZES: dict[str, int] = {
    "US": 2, "SS": 2, "OW": 2, "AT": 2, "UL": 4, "SL": 4, "FL": 4, "OF": 4, "OL": 4,
    "FD": 8, "OD": 8, "OV": 8, "SV": 8, "UV": 8,
}

_HEX_TAG = re.compile(r"([0-9a-fA-F]{4})[-,]?([0-9a-fA-F]{4})")
#: dcmtk's ``findTagFromName`` also takes whatever ``sscanf("%x,%x")`` reads.
_SCANF_TAG = re.compile(r"\s*(?:0[xX])?([0-9a-fA-F]+),\s*(?:0[xX])?([0-9a-fA-F]+)")

_ITEM = 0xFFFEE000


class NoSuchContent(OrthancError):
    """Orthanc has nothing to answer: the REST layer must send 404 with an empty body."""

    def __init__(self) -> None:
        super().__init__(ErrorCode.INEXISTENT_ITEM)


def content_children(ds: Dataset, path: list[str]) -> list[str] | bytes:
    """The answer to ``/content/{path...}``: a JSON list of strings, or raw bytes."""
    if len(path) in (1, 2) and parse_tag(path[0]) == PIXEL_DATA:
        return _pixel_data(ds, path[1] if len(path) == 2 else None)
    skip: set[int] = set(meta_overflow(ds))
    for position in range(len(path) // 2):
        index = _item_index(path[2 * position + 1])
        sequence = _find(ds, parse_tag(path[2 * position]), skip)
        if sequence is None or not sequence.items or index >= len(sequence.items):
            raise NoSuchContent()
        ds, skip = sequence.items[index], set()
    if len(path) % 2 == 0:
        return [f"{el.group:04x}-{el.element:04x}" for el in iter_elements(ds, skip)]
    el = _find(ds, parse_tag(path[-1]), skip)
    if el is None:
        raise NoSuchContent()
    if el.items is not None:
        return [str(i) for i in range(len(el.items))]
    return value_bytes(el)


def parse_tag(text: str) -> int:
    """A tag as Orthanc's ``ParseTag`` reads it: hexadecimal or a dictionary name.

    ``gggg-eeee``, ``gggg,eeee`` and ``ggggeeee`` are Orthanc's own forms; a
    name or anything else goes to dcmtk.  Unknown: "Unknown DICOM tag" (500).
    """
    match = _HEX_TAG.fullmatch(text) or _SCANF_TAG.match(text)
    if match:
        return (int(match[1], 16) & 0xFFFF) << 16 | int(match[2], 16) & 0xFFFF
    tag = tag_from_name(text)
    if tag is None:
        raise OrthancError(ErrorCode.UNKNOWN_DICOM_TAG)
    return tag


def value_bytes(el: Element) -> bytes:
    """The bytes dcmtk streams for an element: strings in their DICOM form (trailing
    padding normalised), numbers and words in little endian, odd lengths NUL-padded."""
    if el.vr in STRING_VRS:
        text = machine_string(el.raw, el.vr)
        if len(text) & 1:
            text += b"\0" if el.vr == "UI" else b" "
        return text
    raw = even(el.raw)
    size = _WORD_SIZES.get(el.vr)
    if el.little_endian or size is None or len(raw) % size:
        return raw
    count = len(raw) // size
    code = {2: "H", 4: "I", 8: "Q"}[size]
    return struct.pack(f"<{count}{code}", *struct.unpack(f">{count}{code}", raw))


def _unsigned(text: str, bits: int) -> int:
    """``boost::lexical_cast`` to an unsigned type: a sign is accepted, "-n" wraps."""
    if not re.fullmatch(r"[+-]?[0-9]+", text):
        raise NoSuchContent()
    return int(text) % (1 << bits)


def _item_index(text: str) -> int:
    """An item index; dcmtk reads the index that wraps to -1 as "the last item"."""
    index = _unsigned(text, 64)
    return -1 if index == (1 << 64) - 1 else index


def _find(ds: Dataset, tag: int, skip: set[int]) -> Element | None:
    """The element ``tag`` of this item (not of its sub-items), or None."""
    if tag not in ds or tag in skip:
        return None
    for el in iter_elements(ds, skip):
        if el.tag == tag:
            return el
    return None


def _pixel_data(ds: Dataset, block: str | None) -> list[str] | bytes:
    """``/content/7fe0-0010[/block]``: the fragments of the top-level PixelData."""
    el = _find(ds, PIXEL_DATA, set())
    if el is None or el.items is not None:
        raise NoSuchContent()
    fragments = _fragments(ds.get_item(PIXEL_DATA))
    count = 1 if fragments is None else len(fragments)
    if block is None:
        return [str(i) for i in range(count)]
    index = _unsigned(block, 32)
    if index >= count:
        raise NoSuchContent()
    return value_bytes(el) if fragments is None else fragments[index]


def _fragments(elem: RawDataElement | DataElement) -> list[bytes] | None:
    """The items of an encapsulated PixelData, or None for a native one."""
    if isinstance(elem, RawDataElement):
        encapsulated = elem.length == UNDEFINED_LENGTH
    else:
        encapsulated = elem.is_undefined_length
    raw = elem.value
    if not encapsulated or not isinstance(raw, bytes):
        return None
    fragments = []
    offset = 0
    while offset + 8 <= len(raw):
        group, element, length = struct.unpack_from("<HHI", raw, offset)
        offset += 8
        if (group << 16 | element) != _ITEM:
            break
        fragments.append(raw[offset:offset + length])
        offset += length
    return fragments
