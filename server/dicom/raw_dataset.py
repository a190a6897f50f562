"""Datasets of raw elements written by concatenation, as pydicom writes them.

pydicom writes a raw element (``RawDataElement``) as it is when the dataset was read in
the layout being written, but still through its per-element machinery (a buffer per
element, encoding checks, tag and length writers): for a C-FIND answer of a dozen keys
that was ~40 % of the answer's time.  :func:`write_raw` writes such a dataset in one
pass, byte for byte what pydicom writes (``tests/test_find_answers.py`` compares), and
declines (None) whatever pydicom would have to convert or resolve.
"""

from __future__ import annotations

import struct

from pydicom.charset import convert_encodings, default_encoding
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset

#: Explicit VRs with a 4-byte length (after two reserved bytes).
_LONG_VRS = frozenset(("OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV"))
_UNDEFINED = 0xFFFFFFFF


def write_raw(dataset: Dataset, implicit: bool, little: bool) -> bytes | None:
    """``dataset`` encoded in the (``implicit``, ``little``) layout, or None unless it is
    made of raw elements of known VRs and defined lengths, read in that layout and that
    character set (what pydicom writes unchanged)."""
    elements = dict(dataset._dict)  # before pydicom's charset lookup converts (0008,0005)
    if dataset.original_encoding != (implicit, little) \
            or dataset.original_character_set != dataset._character_set:
        return None
    order = "<" if little else ">"
    short, long, implicit_header = (struct.Struct(order + "HH2sH"), struct.Struct(order + "HH2s2xI"),
                                    struct.Struct(order + "HHI"))
    pieces: list[bytes] = []
    for tag in sorted(elements):
        element = elements[tag]
        if not isinstance(element, RawDataElement) or element.VR is None or element.length == _UNDEFINED:
            return None
        if tag & 0xFFFF == 0 and tag >> 16 > 6:  # retired group lengths: pydicom drops them
            continue
        value: bytes = element.value or b""
        if implicit:
            pieces.append(implicit_header.pack(tag >> 16, tag & 0xFFFF, len(value)))
        elif element.VR in _LONG_VRS:
            pieces.append(long.pack(tag >> 16, tag & 0xFFFF, element.VR.encode(), len(value)))
        elif len(element.VR) == 2 and len(value) <= 0xFFFF:
            pieces.append(short.pack(tag >> 16, tag & 0xFFFF, element.VR.encode(), len(value)))
        else:
            return None
        pieces.append(value)
    return b"".join(pieces)


def character_set(term: str | None) -> str | list[str]:
    """What pydicom makes of a SpecificCharacterSet value (its default without one): the
    character set to declare a dataset of raw elements read in (``set_original_encoding``)."""
    if not term:
        return default_encoding
    return convert_encodings(term.split("\\") if "\\" in term else term)
