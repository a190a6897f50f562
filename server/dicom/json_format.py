"""Orthanc 1.10.1's JSON renderings of a DICOM dataset (``/tags``, ``/header``).

The full format maps ``gggg,eeee`` to ``{"Name", "Type", "Value"}`` (plus
``PrivateCreator`` on a private leaf whose reservation is known).  ``Type`` is
``String`` (numbers too, as text, multiple values joined by a backslash),
``Sequence`` (``Value`` = list of items), ``TooLong`` (string of more than 256
UTF-8 bytes) or ``Null`` (empty numbers, binary VRs, PixelData...).  The
simplified and short formats are derived from the full one exactly as Orthanc
derives them, so that name collisions resolve the same way (the last tag wins).
"""

from __future__ import annotations

import itertools
import struct
from collections.abc import Iterable
from typing import Any

from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset, FileMetaDataset

import server
from server.dicom.charset import TextDecoder, decoder_for
from server.dicom.dictionary import lookup, tag_name
from server.dicom.elements import (
    PIXEL_DATA,
    STRING_VRS,
    Element,
    dictionary_vr,
    even,
    find_element,
    iter_elements,
    meta_overflow,
    stored_element,
    string_text,
)
from server.dicom.encode import format_tag

#: Orthanc's ``ORTHANC_MAXIMUM_TAG_LENGTH``: longer strings are ``TooLong``.
MAXIMUM_STRING_LENGTH = 256

SPECIFIC_CHARACTER_SET = 0x00080005

#: Numeric VRs -> (struct code, size); values are printed like boost::lexical_cast.
_NUMBERS: dict[str, tuple[str, int]] = {
    "US": ("H", 2), "SS": ("h", 2), "UL": ("I", 4), "SL": ("i", 4), "FL": ("f", 4),
    "FD": ("d", 8),
}

#: Orthanc 1.12.11 (API 30) shows the binary arrays of numbers as their values, like the
#: numbers (``Null`` when their text exceeds ``MAXIMUM_STRING_LENGTH``).
API_NUMBER_ARRAYS = 30
_NUMBER_ARRAYS: dict[str, tuple[str, int]] = {"OF": ("f", 4), "OD": ("d", 8), "OL": ("I", 4), "OV": ("Q", 8)}

_NULL = ("Null", None)

#: VRs of the elements Orthanc leaves out of ``/header`` (``IsBinaryTag``).
_BINARY_VRS = frozenset(("OB", "OW", "UN", "UNKNOWN"))

#: A JSON object as the REST layer serialises it.
Json = dict[str, Any]


def tags_full(ds: Dataset, default_encoding: str = "Latin1",
              ignore_length: frozenset[int] = frozenset(), whole: bool = False) -> Json:
    """``GET /instances/{id}/tags``: the dataset in Orthanc's full format.

    Elements after PixelData are left out, as Orthanc reads the file only up
    to the pixel data, unless ``whole`` (``?whole``, Orthanc 1.12.4: the file
    read to its end).  ``default_encoding`` is the ``DefaultEncoding`` option,
    used when the dataset has no SpecificCharacterSet.  The tags of
    ``ignore_length`` (``?ignore-length=``) show their value however long it is.
    """
    decoder = dataset_decoder(ds, default_encoding)
    return _dataset(iter_elements(ds, skip=set(meta_overflow(ds))), decoder, top_level=not whole,
                    ignore_length=ignore_length)


def render(full: Json, fmt: str) -> Json:
    """A full-format document in the format a client asked for: full, simplify or short."""
    if fmt == "full":
        return full
    return simplify(full, short=fmt == "short")


def tags_simplified(ds: Dataset, default_encoding: str = "Latin1") -> Json:
    """``/tags?simplify`` and ``/simplified-tags``: name -> string | null | items."""
    return simplify(tags_full(ds, default_encoding))


def tags_short(ds: Dataset, default_encoding: str = "Latin1") -> Json:
    """``/tags?short``: ``gggg,eeee`` -> string | null | items."""
    return simplify(tags_full(ds, default_encoding), short=True)


def header_full(ds: Dataset | FileMetaDataset) -> Json:
    """``GET /instances/{id}/header``: the file meta information, full format.

    Pass the whole dataset rather than its ``file_meta``, so that elements
    dcmtk reads into the meta header (a (0002,0000) too large) show here, as
    in Orthanc.  Orthanc decodes the header as ASCII and leaves out its
    binary elements (FileMetaInformationVersion...).
    """
    if isinstance(ds, FileMetaDataset):
        elements: Iterable[Element] = iter_elements(ds)
    else:
        elements = iter_elements(getattr(ds, "file_meta", FileMetaDataset()))
        overflow = meta_overflow(ds)
        if overflow:
            swallowed = iter_elements(ds, skip={int(tag) for tag in ds.keys()}.difference(overflow))
            elements = itertools.chain(elements, swallowed)
    kept = (el for el in elements if el.vr not in _BINARY_VRS)
    return _dataset(kept, TextDecoder("Ascii"), top_level=False)


def header_simplified(ds: Dataset | FileMetaDataset) -> Json:
    """``/header?simplify``."""
    return simplify(header_full(ds))


def header_short(ds: Dataset | FileMetaDataset) -> Json:
    """``/header?short``."""
    return simplify(header_full(ds), short=True)


def simplify(full: Json, short: bool = False) -> Json:
    """Orthanc's ``SimplifyDicomAsJson`` of a full-format document.

    Keys are names (or tags with ``short``), visited in tag order so that a
    later tag with the same name overwrites an earlier one; the result is
    sorted like Orthanc's JSON objects.
    """
    result: Json = {}
    for key, node in full.items():
        name = key if short else node["Name"]
        if node["Type"] == "Sequence":
            result[name] = [simplify(item, short) for item in node["Value"]]
        else:
            result[name] = node["Value"]
    return dict(sorted(result.items()))


def dataset_decoder(ds: Dataset, default_encoding: str) -> TextDecoder:
    """The dataset-wide decoder, from the top level SpecificCharacterSet."""
    el = find_element(ds, SPECIFIC_CHARACTER_SET)
    if el is None or el.vr not in STRING_VRS:
        return decoder_for(None, default_encoding)
    return decoder_for(string_text(el.raw, el.vr), default_encoding)


def _dataset(elements: Iterable[Element], decoder: TextDecoder, top_level: bool,
             ignore_length: frozenset[int] = frozenset()) -> Json:
    result: Json = {}
    for el in elements:
        if top_level and el.tag > PIXEL_DATA:
            break
        key = format_tag(el.tag)
        name = tag_name(el.group, el.element, el.creator)
        if el.items is not None:
            items = [_dataset(iter_elements(item), decoder, False, ignore_length)
                     for item in el.items]
            result[key] = {"Name": name, "Type": "Sequence", "Value": items}
            continue
        kind, value = _leaf(el, decoder, el.tag in ignore_length)
        node: Json = {"Name": name}
        if el.creator is not None:
            node["PrivateCreator"] = el.creator
        node["Type"] = kind
        node["Value"] = value
        result[key] = node
    return result


def sequences_full(ds: Dataset, tags: Iterable[int], decoder: TextDecoder) -> Json:
    """The top-level sequences of ``tags`` present in ``ds``, as full-format nodes (what
    Orthanc keeps of the main tags that are sequences)."""
    wanted = frozenset(tag for tag in tags if tag in ds._dict)
    if not wanted:  # the common case: no walk over every element (a third of an ingest)
        return {}
    return _dataset((el for el in iter_elements(ds) if el.tag in wanted and el.items is not None),
                    decoder, top_level=False)


def tag_text(ds: Dataset, tag: int, decoder: TextDecoder) -> str | None:
    """The text Orthanc indexes for a top-level tag: None when absent, Null or TooLong."""
    raw = stored_element(ds, tag)
    if type(raw) is RawDataElement:
        # Most main tags of a file: a string, read as find_element and _leaf would,
        # without them (a fifth of an ingest's parse).
        vr = raw.VR if raw.VR and not raw.is_implicit_VR else dictionary_vr(tag >> 16, tag & 0xFFFF, None)
        if vr in STRING_VRS:
            return string_value_text(raw.value or b"", vr, decoder)
    el = find_element(ds, tag)
    if el is None:
        return None
    kind, value = _leaf(el, decoder)
    return value if kind == "String" else None


def string_value_text(raw: bytes, vr: str, decoder: TextDecoder) -> str | None:
    """The text Orthanc indexes for the raw value of a string VR: None when TooLong."""
    text = decoder.decode(string_text(raw, vr), vr)
    return None if text is None or len(text.encode()) > MAXIMUM_STRING_LENGTH else text


def _leaf(el: Element, decoder: TextDecoder, any_length: bool = False) -> tuple[str, str | None]:
    """(Type, Value) of a leaf element, following ``ConvertLeafElement``."""
    vr = el.vr
    text: str | None
    if vr in STRING_VRS:
        text = decoder.decode(string_text(el.raw, vr), vr)
    elif vr == "UN":
        text = _unknown_as_text(el, decoder)
    elif vr in _NUMBERS:
        text = _numbers(el)
    elif vr == "AT":
        text = _attribute_tag(el)
    elif vr in _NUMBER_ARRAYS and server.ORTHANC_API_VERSION >= API_NUMBER_ARRAYS:
        text = _number_array(el)
        if text is not None and len(text.encode()) > MAXIMUM_STRING_LENGTH:
            return _NULL
    else:
        return _NULL
    if text is None:
        return _NULL
    if not any_length and len(text.encode()) > MAXIMUM_STRING_LENGTH:
        return "TooLong", None
    return "String", text


def _unknown_as_text(el: Element, decoder: TextDecoder) -> str | None:
    """A UN value whose tag the dictionary knows as a string is shown as text.

    Orthanc takes the whole (even-length) value minus one trailing NUL, so
    embedded NULs, control characters and padding spaces all stay.
    """
    found = lookup(el.group, el.element, el.creator)
    if found is None or found[0] not in STRING_VRS:
        return None
    raw = even(el.raw)
    return decoder.decode(raw[:-1] if raw.endswith(b"\0") else raw)


def _numbers(el: Element) -> str | None:
    """All the values of a binary number element, or its first one if the length is off."""
    code, size = _NUMBERS[el.vr]
    raw = even(el.raw)
    count = len(raw) // size
    if count == 0:
        return None
    if len(raw) > size and len(raw) % size != 0:
        count = 1
    values = struct.unpack(("<" if el.little_endian else ">") + code * count, raw[:count * size])
    if code in "fd":
        return "\\".join(map(_float_text, values))
    return "\\".join(map(str, values))


def _number_array(el: Element) -> str | None:
    """Every whole value of an OF, OD, OL or OV element (``ILeafElementArrayReader``)."""
    code, size = _NUMBER_ARRAYS[el.vr]
    count = len(el.raw) // size
    if count == 0:
        return None
    values = struct.unpack(("<" if el.little_endian else ">") + code * count, el.raw[:count * size])
    return "\\".join(map(_float_text, values)) if code in "fd" else "\\".join(map(str, values))


def _float_text(value: float) -> str:
    """Orthanc prints FL and FD values alike, with 17 significant digits (``%.17g``)."""
    if value != value:
        return "nan"
    return f"{value:.17g}"


def _attribute_tag(el: Element) -> str | None:
    """Orthanc shows only the first tag of an AT element, as ``gggg,eeee``."""
    raw = even(el.raw)
    if len(raw) < 4:
        return None
    group, element = struct.unpack("<HH" if el.little_endian else ">HH", raw[:4])
    return f"{group:04x},{element:04x}"
