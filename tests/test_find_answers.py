"""C-FIND answer keys are written already encoded (server/net/query_retrieve.py ``_put``):
the bytes pynetdicom sends must be those pydicom wrote from its own elements before."""

from __future__ import annotations

import pytest
from pydicom import config
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pynetdicom.dsutils import encode

from server.dicom.charset import pydicom_value, specific_character_set
from server.dicom.raw_dataset import character_set, write_raw
from server.find import vr_of
from server.net.query_retrieve import _NUMERIC_VRS, _layout, _put

LAYOUTS = {"implicit little": "1.2.840.10008.1.2", "explicit little": "1.2.840.10008.1.2.1",
           "explicit big": "1.2.840.10008.1.2.2", "deflated": "1.2.840.10008.1.2.1.99"}

#: (tag, text, VR of the query's key) covering each kind of VR an answer key can have.
KEYS = [
    ((0x0010, 0x0010), "Müller^Jürgen", None),       # PN, non-ASCII
    ((0x0010, 0x0010), "Doe^J", None),                # PN, odd length
    ((0x0010, 0x0020), "", None),                     # LO, empty
    ((0x0008, 0x0020), "20200101", None),             # DA
    ((0x0008, 0x0030), "120000.5", None),             # TM, odd
    ((0x0008, 0x0050), "ACC1", None),                 # SH
    ((0x0008, 0x0061), "CT\\MR", None),               # CS, two values
    ((0x0020, 0x000D), "1.2.840.113619.2.55", None),  # UI, odd: padded with \0
    ((0x0020, 0x1208), "12", None),                   # IS
    ((0x0018, 0x0050), "1.5\\2.25", None),            # DS, two values
    ((0x0008, 0x1030), "Étude ÇŒ", None),             # LO, characters Latin-1 lacks
    ((0x0028, 0x0010), "512", None),                  # US
    ((0x0028, 0x0010), "1\\2", None),                 # US, two values
    ((0x0028, 0x0010), "", None),                     # US, empty
    ((0x0018, 0x9219), "-3", None),                   # SS
    ((0x0028, 0x0008), "7", None),                    # IS (NumberOfFrames)
    ((0x0018, 0x6020), "-70000", None),               # SL
    ((0x0018, 0x9087), "1.25", None),                 # FD
    ((0x0018, 0x9306), "0.5", None),                  # FD
    ((0x0028, 0x1050), "40", None),                   # DS
    ((0x0008, 0x1140), "", None),                     # SQ, empty
    ((0x0011, 0x1010), "private", "LO"),              # unknown: the query's VR
    ((0x0011, 0x1011), "abc", None),                  # unknown, the query's VR unknown too: UN
    ((0x0008, 0x0000), "", None),                     # a group length: never written
    ((0x0009, 0x0010), "", "LO"),                     # a private creator
]


def _reference(tag: tuple[int, int], text: str, query_vr: str | None, encoding: str) -> DataElement | None:
    """The element as the answers were built before: pydicom's, from the text."""
    vr = vr_of(tag)
    if vr == "UN" and query_vr and query_vr not in ("UN", "SQ"):
        vr = query_vr
    if vr in _NUMERIC_VRS:
        try:
            value = [_NUMERIC_VRS[vr](v) for v in text.split("\\")] if text else None
        except ValueError:
            return None
        if isinstance(value, list) and len(value) == 1:
            value = value[0]
    elif vr in ("OB", "OW", "OD", "OF", "OL", "OV", "UN", "SQ"):
        value = None if vr != "SQ" else []
    else:
        value = pydicom_value(text, encoding, vr)
    return DataElement((tag[0] << 16) | tag[1], vr, value, validation_mode=config.IGNORE)


def _answers(encoding: str, syntax: str, keys: list) -> tuple[Dataset, Dataset]:
    new, old = Dataset(), Dataset()
    term = specific_character_set(encoding)
    if term is not None:
        old.SpecificCharacterSet = term
    old.QueryRetrieveLevel = "STUDY"
    old.RetrieveAETitle = "ORTHANC"
    raw = True
    for tag, text in ((0x00080005, term), (0x00080052, "STUDY"), (0x00080054, "ORTHANC")):
        if text is not None:
            raw &= _put(new, (tag >> 16, tag & 0xFFFF), text, None, "Latin1", _layout(syntax))
    for tag, text, query_vr in keys:
        raw &= _put(new, tag, text, query_vr, encoding, _layout(syntax))
        element = _reference(tag, text, query_vr, encoding)
        if element is not None:
            old.add(element)
    if raw:
        new.set_original_encoding(*_layout(syntax), character_set(term))
    return new, old


@pytest.mark.parametrize("encoding", ["Latin1", "Utf8", "Ascii", "Japanese"])
@pytest.mark.parametrize("layout", LAYOUTS)
def test_answer_keys_are_the_bytes_pydicom_wrote(encoding: str, layout: str) -> None:
    syntax = LAYOUTS[layout]
    new, old = _answers(encoding, syntax, KEYS)
    assert new.original_encoding == _layout(syntax)  # written raw
    implicit, little = _layout(syntax)
    deflated = layout == "deflated"
    expected = encode(old, implicit, little, deflated)
    if not deflated:
        assert write_raw(new, implicit, little) == expected
    assert encode(new, implicit, little, deflated) == expected


def test_an_ambiguous_vr_leaves_the_answer_to_pydicom() -> None:
    """dcmtk's "xs" (US or SS): pydicom resolves it over the whole answer, as before."""
    keys = [*KEYS[:6], ((0x0028, 0x0106), "3", None)]
    new, old = _answers("Latin1", LAYOUTS["explicit little"], keys)
    assert new.original_encoding == (None, None)
    assert write_raw(new, False, True) is None
    assert encode(new, False, True, False) == encode(old, False, True, False)


def test_a_key_that_is_no_number_is_left_out() -> None:
    new, _ = _answers("Latin1", LAYOUTS["explicit little"], [((0x0028, 0x0010), "abc", None)])
    assert 0x00280010 not in new


@pytest.mark.parametrize("key", [((0x0028, 0x0010), "70000", None), ((0x7FE0, 0x0010), "", None)])
def test_what_pydicom_cannot_write_still_fails_as_before(key: tuple) -> None:
    """A number out of range, dcmtk's pseudo-VR of PixelData ("px"): pydicom's elements and
    pydicom's failure (pynetdicom then answers "unable to process")."""
    new, old = _answers("Latin1", LAYOUTS["explicit little"], [key])
    assert encode(new, False, True, False) is None
    assert encode(old, False, True, False) is None
