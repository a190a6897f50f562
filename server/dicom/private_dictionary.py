"""The ``Dictionary`` option: custom and private tags registered at start-up.

Each entry ``"gggg,eeee": [VR, Name, MinMultiplicity, MaxMultiplicity, PrivateCreator]``
goes into the dcmtk-like dictionary of :mod:`server.dicom.dictionary` (so that
``/tags`` names it and requests can use its name) and into pydicom's dictionary
(so that pydicom-based code reads and writes it with the right VR).  The rules
are Orthanc 1.10.1's, except that ``[VR, Name]`` means a multiplicity of 1 (the
real server refuses to start on it): a private creator needs a private group,
a tag cannot be registered twice, and the maximum multiplicity is 0 (any) or
at least the minimum.  Any violation stops start-up with a one-line
:class:`ConfigError`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydicom import datadict

# The tables pydicom's datadict edits in place (it imports them from these modules).
from pydicom._dicom_dict import DicomDictionary
from pydicom._private_dict import private_dictionaries

from server.config import ConfigError
from server.dicom import dictionary

log = logging.getLogger("isengard.dicom")

#: The value representations the option accepts (Orthanc 1.10.1's, with dcmtk 3.6.7).
VALID_VRS = frozenset((
    "AE", "AS", "AT", "CS", "DA", "DS", "DT", "FD", "FL", "IS", "LO", "LT", "OB", "OD",
    "OF", "OL", "OW", "PN", "SH", "SL", "SQ", "SS", "ST", "TM", "UC", "UI", "UL", "UN",
    "UR", "US", "UT"))

#: Odd groups that are not private ("Private Data Elements have an odd Group Number
#: that is not (0001,eeee), (0003,eeee), (0005,eeee), (0007,eeee), or (FFFF,eeee)").
_NOT_PRIVATE_ODD_GROUPS = frozenset((0x0001, 0x0003, 0x0005, 0x0007, 0xFFFF))


@dataclass(frozen=True)
class DictionaryEntry:
    group: int
    element: int
    vr: str
    name: str
    minimum: int
    maximum: int                    # 0: any number of values
    creator: str | None

    @property
    def tag(self) -> int:
        return self.group << 16 | self.element

    @property
    def multiplicity(self) -> str:
        """The VM as dcmtk logs it and pydicom stores it: "1", "1-2", "1-n"."""
        if self.maximum == 0:
            return f"{self.minimum}-n"
        if self.maximum == self.minimum:
            return str(self.minimum)
        return f"{self.minimum}-{self.maximum}"


def is_private_group(group: int) -> bool:
    return group % 2 == 1 and group not in _NOT_PRIVATE_ODD_GROUPS


def parse_entries(option: Mapping[str, Any], where: str = "") -> list[DictionaryEntry]:
    """The entries of the option, checked; ``where`` names the configuration in errors."""
    entries: list[DictionaryEntry] = []
    seen: set[tuple[int, int, str | None]] = set()
    for key, value in option.items():
        entry = _parse_entry(key, value, where)
        identity = (entry.group, entry.element, entry.creator)
        known = dictionary.lookup(entry.group, entry.element, entry.creator)
        if identity in seen or known is not None:
            existing = f", already named {known[1]}" if known is not None else ""
            raise _invalid(key, value, where, "a tag that is not registered twice "
                           f"(({entry.group:04x},{entry.element:04x}){existing})")
        seen.add(identity)
        entries.append(entry)
    return entries


def _parse_entry(key: str, value: Any, where: str) -> DictionaryEntry:
    group_text, _, element_text = key.partition(",")
    try:
        group, element = int(group_text, 16), int(element_text, 16)
    except ValueError:
        raise _invalid(key, value, where, 'a tag written "gggg,eeee" in hexadecimal') from None
    if not _well_formed(value):
        raise _invalid(key, value, where,
                       "an array [VR, Name, MinMultiplicity?, MaxMultiplicity?, PrivateCreator?]")
    vr, name = value[0], value[1]
    minimum = value[2] if len(value) > 2 else 1
    maximum = value[3] if len(value) > 3 else (0 if len(value) > 2 else 1)
    creator = value[4] if len(value) > 4 and value[4] else None
    if vr not in VALID_VRS:
        raise _invalid(key, value, where, "a DICOM value representation such as \"LO\"")
    if minimum < 1 or maximum < 0 or (maximum and maximum < minimum):
        raise _invalid(key, value, where, "a minimum multiplicity of at least 1 and a maximum "
                       "of 0 (any) or at least the minimum")
    if creator is not None and not is_private_group(group):
        raise _invalid(key, value, where, "a private creator only for a private tag "
                       "(odd group other than 0001, 0003, 0005, 0007 and ffff)")
    return DictionaryEntry(group, element, vr, name, minimum, maximum, creator)


def _well_formed(value: Any) -> bool:
    """Orthanc's shape check: 2 to 5 items, string, string, int, int, string."""
    if not isinstance(value, list) or not 2 <= len(value) <= 5:
        return False
    kinds = (str, str, int, int, str)
    return all(isinstance(item, kind) and not isinstance(item, bool)
               for item, kind in zip(value, kinds, strict=False)) and bool(value[1])


def _invalid(key: str, value: Any, where: str, expected: str) -> ConfigError:
    place = f" in {where}" if where else ""
    shown = json.dumps(value, ensure_ascii=False)
    return ConfigError(f'Invalid configuration{place}: "Dictionary.{key}" is {shown}, expected {expected}')


def register(entries: list[DictionaryEntry]) -> None:
    """Make the entries (and only them, after a reset) known to both dictionaries."""
    public: dict[int, tuple[str, str]] = {}
    private: dict[tuple[int, str, int], tuple[str, str]] = {}
    for entry in entries:
        log.info("Registering tag in dictionary: (%04x,%04x) %s %s (multiplicity: %d-%s)",
                 entry.group, entry.element, entry.vr, entry.name, entry.minimum, entry.maximum or "n")
        if entry.creator is None:
            if is_private_group(entry.group):
                log.warning("Warning: You are registering a private tag (%04x,%04x), but no "
                            "private creator was associated with it", entry.group, entry.element)
            public[entry.tag] = (entry.vr, entry.name)
        else:
            private[(entry.group, entry.creator, entry.element)] = (entry.vr, entry.name)
    dictionary.set_custom_entries(public, private)
    _PYDICOM.replace(entries)


class _PydicomEntries:
    """What was added to pydicom's process-wide dictionaries, so that a reset can undo it."""

    def __init__(self) -> None:
        self._public: dict[int, tuple[str, str, str, str, str] | None] = {}
        self._private: dict[tuple[str, str], tuple[str, str, str, str] | None] = {}

    def replace(self, entries: list[DictionaryEntry]) -> None:
        self._undo()
        for entry in entries:
            if entry.creator is not None:
                self._add_private(entry)
            elif not is_private_group(entry.group):
                self._add_public(entry)

    def _add_public(self, entry: DictionaryEntry) -> None:
        previous = DicomDictionary.get(entry.tag)
        self._public.setdefault(entry.tag, previous)
        if previous is not None:
            datadict.keyword_dict.pop(previous[4], None)
        datadict.add_dict_entries({entry.tag: (entry.vr, entry.multiplicity, entry.name, "", entry.name)})

    def _add_private(self, entry: DictionaryEntry) -> None:
        assert entry.creator is not None
        key = f"{entry.group:04X}xx{entry.element & 0xFF:02X}"
        previous = private_dictionaries.get(entry.creator, {}).get(key)
        self._private.setdefault((entry.creator, key), previous)
        datadict.add_private_dict_entries(entry.creator, {
            entry.tag: (entry.vr, entry.multiplicity, entry.name, "")})

    def _undo(self) -> None:
        for tag, previous in self._public.items():
            added = DicomDictionary.pop(tag, None)
            if added is not None:
                datadict.keyword_dict.pop(added[4], None)
            if previous is not None:
                datadict.add_dict_entries({tag: previous})
        for (creator, key), previous_private in self._private.items():
            table = private_dictionaries.get(creator, {})
            if previous_private is None:
                table.pop(key, None)
            else:
                table[key] = previous_private
        self._public.clear()
        self._private.clear()


_PYDICOM = _PydicomEntries()


def load(option: Mapping[str, Any], where: str = "") -> list[DictionaryEntry]:
    """Check and register the ``Dictionary`` option; raises :class:`ConfigError`."""
    dictionary.set_custom_entries({}, {})
    entries = parse_entries(option, where)
    register(entries)
    return entries
