"""A DICOM dataset as DICOMweb JSON (PS3.18 F.2) and XML (the Native DICOM Model of PS3.19), as
Orthanc answers ``GET /instances/{id}/file`` with ``Accept: application/dicom+json`` or
``application/dicom+xml`` (Orthanc's ``DicomWebJsonVisitor`` applied by ``FromDcmtkBridge::Apply``).

Keys are ``GGGGEEEE`` (upper-case hex), nodes ``{"vr", "Value"}``: person names are objects of
their ``Alphabetic``/``Ideographic``/``Phonetic`` groups, IS and binary numbers JSON numbers, DS
numbers (strings from Orthanc 1.12.5), binary values (OB, UN, the pixel data) base64
``InlineBinary``.  Group lengths are left out.  The values are what dcmtk reads, so the walk
goes through :func:`server.dicom.elements.iter_elements`, like Orthanc's own ``/tags`` format.
The details that changed over Orthanc's releases follow ``server.ORTHANC_API_VERSION``.
"""

from __future__ import annotations

import base64
import math
import re
import struct
from collections.abc import Iterable
from typing import Any
from xml.sax.saxutils import escape, quoteattr

from pydicom.dataset import Dataset

import server
from server.dicom.charset import TextDecoder
from server.dicom.dictionary import UNKNOWN_TAG_NAME, lookup, tag_name
from server.dicom.elements import (
    PIXEL_DATA,
    STRING_VRS,
    Element,
    even,
    iter_elements,
    meta_overflow,
    string_text,
)
from server.dicom.json_format import SPECIFIC_CHARACTER_SET, Json, dataset_decoder

#: Orthanc 1.12.0 (issue #214): the "xs" VR left unresolved is read as US, "lt" as OW.
API_CONTEXT_VRS = 20
#: From Orthanc 1.12.1 to 1.12.5, compressed pixel data showed as an empty ``InlineBinary``;
#: 1.12.6 leaves it out, as the Orthanc 1.10.1 of this project's reference does.
API_EMPTY_COMPRESSED_PIXELS = 21
API_NO_COMPRESSED_PIXELS = 27
#: Orthanc 1.12.5: DS values are the strings of the file (validated), no longer numbers.
API_DECIMAL_STRINGS = 26
#: Orthanc 1.12.11: every value of OF, OD and OL (dcmtk gave Orthanc only the first before).
API_ALL_ARRAY_VALUES = 30
#: Orthanc 1.13.0: OW (but the pixel data) as an array of numbers; OV, SV and UV supported.
API_WORD_ARRAYS = 31

#: VRs whose value Orthanc encodes in base64 (``VisitBinary``).
_BINARY_VRS = frozenset(("OB", "UN", "ox"))
#: Numeric VRs -> struct code and size.
_NUMBERS: dict[str, tuple[str, int]] = {
    "US": ("H", 2), "SS": ("h", 2), "UL": ("I", 4), "SL": ("i", 4), "FL": ("f", 4), "FD": ("d", 8),
    "SV": ("q", 8), "UV": ("Q", 8),
}
#: Binary arrays of numbers -> struct code and size.
_ARRAYS: dict[str, tuple[str, int]] = {
    "OF": ("f", 4), "OD": ("d", 8), "OL": ("I", 4), "OV": ("Q", 8), "OW": ("H", 2),
}
_LATE_VRS = frozenset(("SV", "UV", "OV"))

#: What ``boost::lexical_cast`` accepts as an int64 and as a double.
_INTEGER = re.compile(r"[+-]?[0-9]+")
_DOUBLE = re.compile(r"[+-]?(?:(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|inf(?:inity)?|nan)",
                     re.IGNORECASE)
_SPACES = " \t\r\n\v\f"
_INT64 = 1 << 63


def dicomweb_json(ds: Dataset, default_encoding: str = "Latin1") -> Json:
    """The dataset (file meta information excluded) as a DICOMweb JSON object.

    ``default_encoding`` is the ``DefaultEncoding`` option, for a dataset without
    SpecificCharacterSet.
    """
    walker = _Walker(dataset_decoder(ds, default_encoding), _is_encapsulated(ds))
    return walker.dataset(iter_elements(ds, skip=set(meta_overflow(ds))))


def _is_encapsulated(ds: Dataset) -> bool:
    meta = getattr(ds, "file_meta", None)
    syntax = meta.get("TransferSyntaxUID") if meta is not None else None
    return bool(syntax is not None and syntax.is_encapsulated)


class _Walker:
    """One conversion: the dataset's decoder and whether its pixel data is compressed."""

    def __init__(self, decoder: TextDecoder, encapsulated: bool) -> None:
        self.decoder = decoder
        self.encapsulated = encapsulated
        self.api = server.ORTHANC_API_VERSION

    def dataset(self, elements: Iterable[Element]) -> Json:
        result: Json = {}
        for el in elements:
            if el.element == 0x0000:
                continue  # group lengths never show
            node = self.sequence(el) if el.items is not None else self.leaf(el)
            if node is not None:
                result[f"{el.group:04X}{el.element:04X}"] = node
        return result

    def sequence(self, el: Element) -> Json | None:
        """``{"vr": "SQ"}`` when empty, else its items.  An item without elements is ``{}`` (the
        fix of Orthanc 1.12.10, that used to fail the whole answer); an item whose elements all
        go unshown is skipped, as Orthanc creates an item only with its first node."""
        items = el.items or []
        if not items:
            return {"vr": "SQ"}
        values = []
        for item in items:
            converted = self.dataset(iter_elements(item))
            if converted or len(item) == 0:
                values.append(converted)
        return {"vr": "SQ", "Value": values} if values else None

    def leaf(self, el: Element) -> Json | None:
        """The node of a leaf element, None where Orthanc shows nothing (``ApplyVisitorToLeaf``)."""
        vr = self.vr(el)
        if vr in _BINARY_VRS or (vr == "OW" and (el.tag == PIXEL_DATA or self.api < API_WORD_ARRAYS)):
            return self.binary(el, "OB" if vr == "ox" else vr)
        if el.vr in STRING_VRS:
            text = string_text(el.raw, vr)
            return _strings(vr, text.decode("latin-1") if el.tag == SPECIFIC_CHARACTER_SET
                            else self.decoder.decode(text, vr), el.tag, self.api)
        if el.vr in ("UN", "UNKNOWN"):  # a string VR from the dictionary: the bytes up to a NUL
            if vr not in STRING_VRS:
                return None
            return _strings(vr, self.decoder.decode(even(el.raw).split(b"\0", 1)[0], vr), el.tag, self.api)
        if vr in _LATE_VRS and self.api < API_WORD_ARRAYS:
            return None
        if vr in _NUMBERS:
            return _node(vr, [_number(value) for value in _unpack(el, *_NUMBERS[vr])])
        if vr in _ARRAYS:
            values = _unpack(el, *_ARRAYS[vr])
            if self.api < API_ALL_ARRAY_VALUES:
                values = values[:1]
            return _node(vr, [float(v) if vr in ("OF", "OD") else v for v in values])
        if vr == "AT":
            values = _unpack(el, "H", 2)
            return _node(vr, [f"{g:04X}{e:04X}" for g, e in zip(values[::2], values[1::2], strict=False)])
        return None  # sequences read as leaves, "xs" unresolved, "na", "up"...

    def vr(self, el: Element) -> str:
        """The VR Orthanc works with: an unknown VR is UN, then the dictionary's if it knows the
        tag (Orthanc 1.9.5); the context-dependent ones settled from Orthanc 1.12.0."""
        vr = el.vr
        if vr in ("UN", "UNKNOWN"):
            found = lookup(el.group, el.element, el.creator)
            vr = found[0] if found is not None else "UN"
        if vr == "px":  # the pixel data of an implicit VR file, that dcmtk reads as OW
            vr = "OW"
        if self.api >= API_CONTEXT_VRS:
            vr = {"xs": "US", "lt": "OW"}.get(vr, vr)
        return vr

    def binary(self, el: Element, vr: str) -> Json | None:
        """``InlineBinary``: the value as dcmtk holds it (words in little endian); the pixel data
        shows even when empty, but not when compressed (see ``API_NO_COMPRESSED_PIXELS``)."""
        if el.tag == PIXEL_DATA and self.encapsulated:
            if API_EMPTY_COMPRESSED_PIXELS <= self.api < API_NO_COMPRESSED_PIXELS:
                return {"vr": vr, "InlineBinary": ""}
            return None
        raw = even(el.raw)
        if vr == "OW" and not el.little_endian:
            raw = struct.pack(f"<{len(raw) // 2}H", *struct.unpack(f">{len(raw) // 2}H", raw))
        if not raw and el.tag != PIXEL_DATA:
            return {"vr": vr}
        return {"vr": vr, "InlineBinary": base64.b64encode(raw).decode("ascii")}


def _node(vr: str, values: list[Any]) -> Json:
    """A node; an empty element has no ``Value`` (PS3.18 F.2.5)."""
    return {"vr": vr, "Value": values} if values else {"vr": vr}


def _unpack(el: Element, code: str, size: int) -> list[Any]:
    """Every whole value of a binary number element (dcmtk's ``getVM``)."""
    count = len(el.raw) // size
    return list(struct.unpack(("<" if el.little_endian else ">") + code * count, el.raw[:count * size]))


def _integer(value: int) -> int:
    """Orthanc's ``FormatInteger``: a negative number as an int32, a positive one as a uint32
    (both truncated, as jsoncpp's ``Value`` holds them)."""
    if value < 0:
        value &= 0xFFFFFFFF
        return value - (1 << 32) if value & 0x80000000 else value
    return value & 0xFFFFFFFF


def _number(value: int | float) -> int | float | None:
    """An integer as ``FormatInteger``; a double as ``FormatDouble``: an integer if it is within
    100 epsilons of one (and fits a long long), else itself.  A non-finite double is null, as
    jsoncpp writes it."""
    if isinstance(value, int):
        return _integer(value) if -_INT64 <= value < _INT64 else value
    if not math.isfinite(value):
        return None
    rounded = math.floor(value + 0.5) if value >= 0 else -math.floor(-value + 0.5)
    if not -_INT64 <= rounded < _INT64:
        return value
    return _integer(rounded) if abs(value - rounded) <= 2.220446049250313e-16 * 100.0 else value


def _strings(vr: str, text: str, tag: int, api: int) -> Json:
    """``VisitString``: the values split at backslashes, each as its VR says; a value that is not
    a valid IS or DS is left out (Orthanc logs a warning)."""
    node: Json = {"vr": vr}
    if text.endswith("\0"):
        text = text[:-1]
    if not text:
        return node
    tokens = text.split("\\")
    if tag == SPECIFIC_CHARACTER_SET and len(tokens) > 1 and tokens[0] == "":
        tokens = tokens[1:]  # code extensions: the first (default) repertoire is implied
    values: list[Any] = []
    for token in tokens:
        if vr == "PN":
            groups = token.split("=") if token else []
            values.append(dict(zip(("Alphabetic", "Ideographic", "Phonetic"), groups, strict=False)))
        elif vr == "IS":
            stripped = token.strip(_SPACES)
            if not stripped:
                values.append(None)
            elif _INTEGER.fullmatch(stripped) and -_INT64 <= int(stripped) < _INT64:
                values.append(_integer(int(stripped)))
        elif vr == "DS":
            value = _decimal(token, api)
            if value is not _INVALID:
                values.append(value)
        else:
            values.append(token if token else None)
    node["Value"] = values
    return node


_INVALID = object()


def _decimal(token: str, api: int) -> Any:
    """A DS value: a number before Orthanc 1.12.5, then the file's string (a comma read as a
    dot, a trailing dot dropped); null when empty, ``_INVALID`` when not a number."""
    text = token.strip(_SPACES)
    if api >= API_DECIMAL_STRINGS:
        text = text.replace(",", ".")
        if text.endswith("."):
            text = text[:-1]
    if not text:
        return None
    if not _DOUBLE.fullmatch(text):
        return _INVALID
    return text if api >= API_DECIMAL_STRINGS else _number(float(text))


def dicomweb_xml(document: Json) -> str:
    """A DICOMweb JSON document in the Native DICOM Model (``DicomWebJsonToXml``), written as
    pugixml writes it (two-space indent)."""
    lines = ['<?xml version="1.0" encoding="utf-8"?>',
             '<NativeDicomModel xmlns="http://dicom.nema.org/PS3.19/models/NativeDICOM" '
             'xsi:schemaLocation="http://dicom.nema.org/PS3.19/models/NativeDICOM" '
             'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">']
    _xml_dataset(lines, document, 1)
    lines.append("</NativeDicomModel>")
    return "\n".join(lines) + "\n"


def _xml_dataset(lines: list[str], document: Json, depth: int) -> None:
    pad = "  " * depth
    for key in sorted(document):
        node = document[key]
        vr = node["vr"]
        keyword = tag_name(int(key[:4], 16), int(key[4:], 16))
        attributes = f'tag="{key}" vr={quoteattr(vr)}'
        if keyword != UNKNOWN_TAG_NAME:
            attributes += f" keyword={quoteattr(keyword)}"
        children: list[str] = []
        if "Value" in node:
            for number, value in enumerate(node["Value"], start=1):
                _xml_value(children, vr, value, number, depth + 1)
        elif "BulkDataURI" in node:
            children.append(f'{pad}  <BulkData URI={quoteattr(node["BulkDataURI"])} />')
        elif "InlineBinary" in node:
            children.append(f"{pad}  " + _xml_text("InlineBinary", "", node["InlineBinary"]))
        if children:
            lines.append(f"{pad}<DicomAttribute {attributes}>")
            lines.extend(children)
            lines.append(f"{pad}</DicomAttribute>")
        else:
            lines.append(f"{pad}<DicomAttribute {attributes} />")


def _xml_value(lines: list[str], vr: str, value: Any, number: int, depth: int) -> None:
    """One value: an ``Item`` (followed by the empty ``Value`` Orthanc also writes for it), a
    ``PersonName`` with its groups, or a ``Value`` (floats with 9 digits, as pugixml)."""
    pad = "  " * depth
    attribute = f'number="{number}"'
    if vr == "SQ" and isinstance(value, dict):
        if value:
            lines.append(f"{pad}<Item {attribute}>")
            _xml_dataset(lines, value, depth + 1)
            lines.append(f"{pad}</Item>")
        else:
            lines.append(f"{pad}<Item {attribute} />")
    if vr == "PN":
        groups = [group for group in ("Alphabetic", "Ideographic", "Phonetic")
                  if isinstance(value, dict) and isinstance(value.get(group), str)]
        if groups:
            lines.append(f"{pad}<PersonName {attribute}>")
            for group in groups:
                lines.append(f"{pad}  <{group}>")
                for part, text in zip(("FamilyName", "GivenName", "MiddleName", "NamePrefix", "NameSuffix"),
                                      value[group].split("^"), strict=False):
                    lines.append(f"{pad}    " + _xml_text(part, "", text))
                lines.append(f"{pad}  </{group}>")
            lines.append(f"{pad}</PersonName>")
        return
    if isinstance(value, bool) or value is None or isinstance(value, dict | list):
        text = None
    elif isinstance(value, float):
        text = _float_text(value)
    else:
        text = str(value)
    lines.append(pad + _xml_text("Value", f" {attribute}", text))


def _float_text(value: float) -> str:
    """jsoncpp's ``asFloat`` (a float32) as pugixml prints it (``%.9g``)."""
    try:
        single = struct.unpack("<f", struct.pack("<f", value))[0]
    except OverflowError:
        single = math.copysign(math.inf, value)
    return f"{single:.9g}"


_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")


def _xml_text(name: str, attributes: str, text: str | None) -> str:
    """An element holding ``text`` (``<a />`` without text, ``<a></a>`` for an empty one)."""
    if text is None:
        return f"<{name}{attributes} />"
    escaped = _CONTROL.sub(lambda m: f"&#{ord(m.group()):02d};", escape(text))
    return f"<{name}{attributes}>{escaped}</{name}>"
