"""DICOM elements from Orthanc's JSON values, and files written the way dcmtk writes them.

``/tools/create-dicom`` turns strings into elements exactly as Orthanc 1.10.1
does (``FromDcmtkBridge::FromJson`` and ``FillElementWithString``): the VR comes
from the dcmtk dictionary (with the request's private creator for a private
tag, ``UN`` when the dictionary has no entry), numbers are parsed as
``boost::lexical_cast`` parses them (one value, unsigned types wrap negative
values), binary VRs take the bytes of the text or of a
``data:application/octet-stream`` URI, and strings are converted to the
dataset's character set.  Files are Explicit VR Little Endian with explicit
lengths and the meta header dcmtk writes, so that ``/header`` and ``/tags``
read like Orthanc's.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
import struct
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import server
from server.dicom.charset import encode_text
from server.dicom.dictionary import lookup, tag_from_name
from server.dicom.elements import STRING_VRS
from server.errors import ErrorCode, OrthancError

EXPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2.1"

#: dcmtk's ``UID_PrivateGenericFileSOPClass``: the meta header's SOP class when the
#: dataset has no SOPClassUID.
PRIVATE_GENERIC_FILE_SOP_CLASS = "1.2.276.0.7230010.3.1.0.1"

#: The implementation Orthanc 1.10.1 (through dcmtk 3.6.7) writes in the meta header;
#: created files carry the same, so that their ``/header`` matches Orthanc's.
IMPLEMENTATION_CLASS_UID = "1.2.276.0.7230010.3.0.3.6.7"
IMPLEMENTATION_VERSION_NAME = "OFFIS_DCMTK_367"

DATA_URI_BINARY_PREFIX = "data:application/octet-stream;base64,"

_DATA_URI = re.compile(r"data:([^;]+);base64,([a-zA-Z0-9=+/]*)", re.DOTALL)

#: Binary VRs (``FromDcmtkBridge::IsBinaryTag``): the value is the bytes as given.
_BINARY_VRS = frozenset(("OB", "OF", "OW", "UN"))

#: dcmtk's internal VRs of the dictionary, as the element it creates for them.
_INTERNAL_VRS = {"ox": "OW", "px": "OW", "lt": "OW", "up": "UL"}

#: Single binary numbers: struct code, and for integers the number of bits and signedness.
_NUMBERS: dict[str, tuple[str, int, bool]] = {
    "US": ("H", 16, False), "SS": ("h", 16, True), "UL": ("I", 32, False), "OL": ("I", 32, False),
    "SL": ("i", 32, True), "FL": ("f", 0, True), "FD": ("d", 0, True), "OD": ("d", 0, True),
}

_INTEGER = re.compile(r"[+-]?[0-9]+")
_FLOAT = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?|[+-]?(nan|inf|infinity)", re.IGNORECASE)
_FLOAT32_MAX = 3.4028234663852886e38

#: VRs whose explicit-VR header has a 4-byte length.
_UNDEFINED_LENGTH = 0xFFFFFFFF
_SEQUENCE_DELIMITER = struct.pack("<HHI", 0xFFFE, 0xE0DD, 0)
_LONG_HEADER_VRS = frozenset(("OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV"))

#: Orthanc's names of its main tags, which dcmtk 3.6.7 names otherwise or not at all.
_MAIN_TAG_NAMES = {"OtherPatientIDs": 0x00101000}


@dataclass
class Element:
    """One element: ``raw`` holds the value bytes, ``items`` the items of a sequence.
    ``encapsulated``: ``raw`` is the items of encapsulated pixel data (offset table, then
    fragments), written with an undefined length and closed by a sequence delimiter."""

    vr: str
    raw: bytes = b""
    items: list[Items] | None = None
    encapsulated: bool = False

    def copy(self) -> Element:
        if self.items is None:
            return Element(self.vr, self.raw, encapsulated=self.encapsulated)
        return Element(self.vr, items=[copy_items(item) for item in self.items])


#: A dataset or sequence item: tag (``group << 16 | element``) -> element.
Items = dict[int, Element]


def copy_items(items: Items) -> Items:
    return {tag: element.copy() for tag, element in items.items()}


@lru_cache(maxsize=8192)
def format_tag(tag: int) -> str:
    """``gggg,eeee``: a tag as Orthanc's documents key it (formatted once per tag, not once per
    element of every document: ~0.5 us each, a twentieth of converting a file's tags)."""
    return f"{tag >> 16:04x},{tag & 0xFFFF:04x}"


def parse_tag(name: str) -> int:
    """Orthanc's ``FromDcmtkBridge::ParseTag``: ``gggg,eeee``, ``gggg-eeee``, ``ggggeeee`` or a name."""
    match = re.fullmatch(r"([0-9a-fA-F]{4})[,-]?([0-9a-fA-F]{4})", name)
    if match:
        return int(match.group(1), 16) << 16 | int(match.group(2), 16)
    tag = _MAIN_TAG_NAMES.get(name)
    if tag is None:
        tag = tag_from_name(name)
    if tag is None:
        raise OrthancError(ErrorCode.UNKNOWN_DICOM_TAG)
    return tag


def decode_data_uri(text: str) -> tuple[str, bytes] | None:
    """(MIME type in lower case, content) of a ``data:...;base64,...`` URI, None if it is not one."""
    match = _DATA_URI.fullmatch(text)
    if match is None:
        return None
    payload = match.group(2).rstrip("=")
    try:
        content = base64.b64decode(payload + "=" * (-len(payload) % 4), validate=True)
    except (binascii.Error, ValueError):
        return None
    return match.group(1).lower(), content


@dataclass
class ValueContext:
    """What turning JSON values into elements depends on, besides the tag."""

    encoding: str                   # the dataset's character set (Orthanc's Encoding name)
    private_creator: str = ""
    decode_binary: bool = True      # InterpretBinaryTags


def dictionary_vr(tag: int, private_creator: str) -> str:
    """The VR dcmtk gives a new element: a private tag is looked up with the creator."""
    group, element = tag >> 16, tag & 0xFFFF
    creator = private_creator if group % 2 == 1 else None
    found = lookup(group, element, creator)
    if found is None:
        return "UN"
    return _INTERNAL_VRS.get(found[0], found[0])


def element_from_json(tag: int, value: Any, context: ValueContext) -> Element:
    """``FromDcmtkBridge::FromJson``: a string, null, or the items of a sequence."""
    if isinstance(value, str):
        return element_from_text(tag, value, context, decode=context.decode_binary)
    if value is None:
        return element_from_text(tag, "", context, decode=context.decode_binary)
    if isinstance(value, list):
        if dictionary_vr(tag, context.private_creator) != "SQ":
            raise OrthancError(ErrorCode.BAD_PARAMETER_TYPE, f"Bad Parameter type for tag {format_tag(tag)}")
        return Element("SQ", items=[_item_from_json(item, context) for item in value])
    raise OrthancError(ErrorCode.BAD_PARAMETER_TYPE, f"Bad Parameter type for tag {format_tag(tag)}")


def _item_from_json(item: Any, context: ValueContext) -> Items:
    if isinstance(item, dict):
        children: Items = {}
        for name, value in item.items():
            tag = parse_tag(name)
            children[tag] = element_from_json(tag, value, context)
        return children
    if isinstance(item, list) and not item:
        return {}                   # Lua cannot tell an empty table from an empty array
    raise OrthancError(ErrorCode.BAD_PARAMETER_TYPE)


def element_from_text(tag: int, text: str, context: ValueContext, decode: bool) -> Element:
    """``FillElementWithString``: the element of ``tag`` holding ``text``."""
    vr = dictionary_vr(tag, context.private_creator)
    data = _text_bytes(text, context.encoding, decode)
    if not data and (vr in _BINARY_VRS or vr in STRING_VRS or vr in _NUMBERS or vr in ("AT", "xs")):
        return Element("US" if vr == "xs" else vr)
    # Orthanc 1.12.11: an OF value is written as floats, like FL (it was binary before).
    number_vr = "FL" if vr == "OF" and server.ORTHANC_API_VERSION >= API_FLOAT_ARRAYS else vr
    if vr in _BINARY_VRS and number_vr == vr:
        if vr == "OW" and len(data) % 2:
            raise OrthancError(ErrorCode.INTERNAL)
        return Element(vr, data)
    if vr in STRING_VRS:
        return Element(vr, data)
    value = data.decode("latin-1")
    if number_vr in _NUMBERS:
        if "\\" in value and server.ORTHANC_API_VERSION >= API_MULTIPLE_NUMBERS:
            parts = [_number(number_vr, part) for part in value.split("\\")]
            if any(part is None for part in parts):
                return _out_of_range(tag, value)
            return Element(vr, b"".join(part for part in parts if part is not None))
        packed = _number(number_vr, value)
        return Element(vr, packed) if packed is not None else _out_of_range(tag, value)
    if vr == "xs":
        return _us_or_ss(tag, value)
    if vr == "AT":
        target = parse_tag(text)
        return Element("AT", struct.pack("<HH", target >> 16, target & 0xFFFF))
    return _out_of_range(tag, value)


#: Orthanc 1.12.5: a number tag takes several values separated by backslashes.
API_MULTIPLE_NUMBERS = 26
#: Orthanc 1.12.11: OF values are numbers.
API_FLOAT_ARRAYS = 30


def _text_bytes(text: str, encoding: str, decode: bool) -> bytes:
    if decode and text.startswith(DATA_URI_BINARY_PREFIX):
        decoded = decode_data_uri(text)
        if decoded is None:
            raise OrthancError(ErrorCode.BAD_FILE_FORMAT)
        return decoded[1]
    return encode_text(text, encoding)


def _out_of_range(tag: int, value: str) -> Element:
    raise OrthancError(ErrorCode.BAD_FILE_FORMAT, f"While creating a DICOM instance, tag ({format_tag(tag)}) "
                       f'has out-of-range value: "{value}"')


def _number(vr: str, text: str) -> bytes | None:
    """One number as ``boost::lexical_cast`` reads it, packed little-endian; None if refused."""
    code, bits, signed = _NUMBERS[vr]
    if bits == 0:
        if not _FLOAT.fullmatch(text):
            return None
        number = float(text)
        overflow = math.isinf(number) and "inf" not in text.lower()
        if overflow or (code == "f" and math.isfinite(number) and abs(number) > _FLOAT32_MAX):
            return None
        return struct.pack("<" + code, number)
    integer = _integer(text, bits, signed)
    return None if integer is None else struct.pack("<" + code, integer)


def _integer(text: str, bits: int, signed: bool) -> int | None:
    if not _INTEGER.fullmatch(text):
        return None
    number = int(text)
    if signed:
        return number if -(1 << (bits - 1)) <= number < (1 << (bits - 1)) else None
    if abs(number) >= 1 << bits:
        return None
    return number % (1 << bits)


def _us_or_ss(tag: int, text: str) -> Element:
    """dcmtk's "xs" (US or SS): several values are read as US, one negative value is refused."""
    if "\\" not in text and "-" in text:
        return _out_of_range(tag, text)
    values = [_integer(part, 16, False) for part in text.split("\\")]
    if any(value is None for value in values):
        return _out_of_range(tag, text)
    return Element("US", struct.pack(f"<{len(values)}H", *values))


# -- writing -------------------------------------------------------------------------

def _padded(element: Element) -> bytes:
    raw = element.raw
    if len(raw) % 2 == 0:
        return raw
    if element.vr == "UI" or element.vr not in STRING_VRS:
        return raw + b"\0"
    return raw + b" "


def _header(tag: int, vr: str, length: int) -> bytes:
    group, number = tag >> 16, tag & 0xFFFF
    if vr in _LONG_HEADER_VRS:
        return struct.pack("<HH2s2xI", group, number, vr.encode(), length)
    return struct.pack("<HH2sH", group, number, vr.encode(), length)


def encode_items(items: Items) -> bytes:
    """The elements of a dataset or item, in tag order, Explicit VR Little Endian."""
    out = bytearray()
    for tag in sorted(items):
        element = items[tag]
        if element.items is not None:
            body = b"".join(_item(item) for item in element.items)
            out += _header(tag, "SQ", len(body)) + body
            continue
        if element.encapsulated:
            out += _header(tag, element.vr, _UNDEFINED_LENGTH) + element.raw + _SEQUENCE_DELIMITER
            continue
        value = _padded(element)
        vr = element.vr
        if vr not in _LONG_HEADER_VRS and len(value) > 0xFFFF:
            vr = "UN"               # too long for a 16-bit length: dcmtk falls back to UN as well
        out += _header(tag, vr, len(value)) + value
    return bytes(out)


def _item(item: Items) -> bytes:
    body = encode_items(item)
    return struct.pack("<HHI", 0xFFFE, 0xE000, len(body)) + body


def text_value(items: Items, tag: int) -> str | None:
    """A string element's value without its padding (None if absent or not a string)."""
    element = items.get(tag)
    if element is None or element.vr not in STRING_VRS:
        return None
    return element.raw.decode("latin-1").rstrip(" \0")


def file_meta(sop_class: str, sop_instance: str, transfer_syntax: str) -> bytes:
    """The preamble, ``DICM`` and the file meta group Orthanc (its DCMTK) writes before a
    dataset: the one writer of file headers, also for every received C-STORE."""
    meta: Items = {
        0x00020001: Element("OB", b"\x00\x01"),
        0x00020002: Element("UI", sop_class.encode()),
        0x00020003: Element("UI", sop_instance.encode()),
        0x00020010: Element("UI", transfer_syntax.encode()),
        0x00020012: Element("UI", IMPLEMENTATION_CLASS_UID.encode()),
        0x00020013: Element("SH", IMPLEMENTATION_VERSION_NAME.encode()),
    }
    body = encode_items(meta)
    group_length = encode_items({0x00020000: Element("UL", struct.pack("<I", len(body)))})
    return b"\0" * 128 + b"DICM" + group_length + body


def write_file(dataset: Items, transfer_syntax: str = EXPLICIT_VR_LITTLE_ENDIAN) -> bytes:
    """A DICOM file (preamble, meta header, dataset) holding ``dataset``; a compressed
    ``transfer_syntax`` is for a dataset whose pixel data is encapsulated already."""
    sop_class = text_value(dataset, 0x00080016) or PRIVATE_GENERIC_FILE_SOP_CLASS
    sop_instance = text_value(dataset, 0x00080018) or ""
    return file_meta(sop_class, sop_instance, transfer_syntax) + encode_items(dataset)
