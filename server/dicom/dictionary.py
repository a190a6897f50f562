"""Tag names and VRs as Orthanc 1.10.1 finds them in dcmtk's data dictionary.

The search order is dcmtk's: the exact entry for (tag, private creator), then,
for a private tag, the entry keyed by the low byte of its element (private
dictionaries list elements relative to their reserved block), then the range
entries in their stored order.  The entries of the ``Dictionary`` option
(:mod:`server.dicom.private_dictionary`) are searched first, as dcmtk finds
the entries Orthanc adds at start-up.
"""

from __future__ import annotations

from functools import cache, lru_cache

UNKNOWN_TAG_NAME = "Unknown Tag & Data"

#: A range entry: (group low, group high, group parity, element low, element high, element
#: parity, private creator, VR, name), as :mod:`server.dicom._dcmtk_dictionary` lists them.
_Range = tuple[int, int, str, int, int, str, str | None, str, str]

#: Entries of the ``Dictionary`` option: public ones by ``group << 16 | element``,
#: private ones by (group, private creator, element); values are (VR, name).
_CUSTOM_PUBLIC: dict[int, tuple[str, str]] = {}
_CUSTOM_PRIVATE: dict[tuple[int, str, int], tuple[str, str]] = {}

#: Orthanc overrides the dictionary's names of its main tags so that they do not
#: depend on the dcmtk version (``DicomTag::GetMainTagsName``).
_MAIN_TAG_NAMES: dict[int, str] = {
    0x00080050: "AccessionNumber",
    0x00080018: "SOPInstanceUID",
    0x00100020: "PatientID",
    0x0020000E: "SeriesInstanceUID",
    0x0020000D: "StudyInstanceUID",
    0x7FE00010: "PixelData",
    0x00541330: "ImageIndex",
    0x00200013: "InstanceNumber",
    0x00540081: "NumberOfSlices",
    0x00280008: "NumberOfFrames",
    0x00181090: "CardiacNumberOfImages",
    0x00201002: "ImagesInAcquisition",
    0x00100010: "PatientName",
    0x00200032: "ImagePositionPatient",
    0x00200037: "ImageOrientationPatient",
    0x00101000: "OtherPatientIDs",
}


@cache
def _dcmtk() -> tuple[dict[int, tuple[str, str]], dict[tuple[int, str, int], tuple[str, str]], tuple[_Range, ...]]:
    """dcmtk's public, private and range entries, imported at the first look-up: ~7,800
    entries, ~6 ms of each start-up otherwise, that only the requests naming or typing tags use."""
    from server.dicom._dcmtk_dictionary import PRIVATE, PUBLIC, REPEATING

    return PUBLIC, PRIVATE, REPEATING


def _parity_ok(value: int, parity: str) -> bool:
    return parity == "u" or (value & 1) == (parity == "o")


def _in_range(group: int, element: int, creator: str | None,
              entry: _Range) -> bool:
    """dcmtk's ``DcmDictEntry::contains``: parities, creator, then the ranges."""
    g_lo, g_hi, g_par, e_lo, e_hi, e_par, e_creator, _, _ = entry
    if not (_parity_ok(group, g_par) and _parity_ok(element, e_par)):
        return False
    if e_creator != creator or not g_lo <= group <= g_hi:
        return False
    return e_lo <= element <= e_hi or (creator is not None and e_lo <= element & 0xFF <= e_hi)


@lru_cache(maxsize=16384)
def lookup(group: int, element: int, creator: str | None = None) -> tuple[str, str] | None:
    """The dictionary's (VR, name) for a tag read with ``creator``, or None."""
    public, private, ranges = _dcmtk()
    if creator is None:
        found = _CUSTOM_PUBLIC.get(group << 16 | element) or public.get(group << 16 | element)
    else:
        found = (_CUSTOM_PRIVATE.get((group, creator, element)) or private.get((group, creator, element))
                 or private.get((group, creator, element & 0xFF)))
    if found is not None:
        return found
    for entry in ranges:
        if _in_range(group, element, creator, entry):
            return entry[7], entry[8]
    return None


def tag_name(group: int, element: int, creator: str | None = None) -> str:
    """The ``Name`` Orthanc shows for a tag (``Unknown Tag & Data`` if none)."""
    main = _MAIN_TAG_NAMES.get(group << 16 | element)
    if main is not None:
        return main
    found = lookup(group, element, creator)
    return UNKNOWN_TAG_NAME if found is None else found[1]


@lru_cache(maxsize=1)
def _tags_by_name() -> dict[str, int]:
    """Name -> tag, dcmtk's ``findEntry(name)`` preference: public, then ranges, then private.

    A name of the ``Dictionary`` option wins over a built-in private or range
    entry of the same name, never over a built-in public one.
    """
    public, private, ranges = _dcmtk()
    names: dict[str, int] = {}
    for key, (_, name) in private.items():
        names[name] = key[0] << 16 | key[2]
    for key, (_, name) in _CUSTOM_PRIVATE.items():
        names[name] = key[0] << 16 | key[2]
    for entry in reversed(ranges):
        names[entry[8]] = entry[0] << 16 | entry[3]
    for tag, (_, name) in _CUSTOM_PUBLIC.items():
        names[name] = tag
    for tag, (_, name) in public.items():
        names[name] = tag
    return names


@lru_cache(maxsize=16384)
def vr_without_creator(group: int, element: int) -> str | None:
    """The VR of a tag named without its private creator (``/tools/find``, C-FIND keys).

    Public and range entries first, then the private entries of the ``Dictionary`` option.
    """
    found = lookup(group, element)
    if found is not None:
        return found[0]
    for (entry_group, _, entry_element), (vr, _) in _CUSTOM_PRIVATE.items():
        if (entry_group, entry_element) == (group, element):
            return vr
    return None


def tag_from_name(name: str) -> int | None:
    """The tag dcmtk's ``DcmTag::findTagFromName`` gives a dictionary name, or None."""
    return _tags_by_name().get(name)


def set_custom_entries(public: dict[int, tuple[str, str]],
                       private: dict[tuple[int, str, int], tuple[str, str]]) -> None:
    """Replace the entries of the ``Dictionary`` option (start-up and ``/tools/reset``)."""
    _CUSTOM_PUBLIC.clear()
    _CUSTOM_PUBLIC.update(public)
    _CUSTOM_PRIVATE.clear()
    _CUSTOM_PRIVATE.update(private)
    lookup.cache_clear()
    vr_without_creator.cache_clear()
    _tags_by_name.cache_clear()


def add_custom_entry(group: int, element: int, vr: str, name: str, creator: str | None) -> None:
    """One more entry, as a plugin's ``RegisterDictionaryTag`` / ``RegisterPrivateDictionaryTag`` adds it."""
    if creator is None:
        _CUSTOM_PUBLIC[group << 16 | element] = (vr, name)
    else:
        _CUSTOM_PRIVATE[(group, creator, element)] = (vr, name)
    lookup.cache_clear()
    vr_without_creator.cache_clear()
    _tags_by_name.cache_clear()
