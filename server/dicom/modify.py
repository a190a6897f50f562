"""Orthanc's modification and anonymization of DICOM datasets (``DicomModification``).

A :class:`Modification` is parsed once from a request body (by :mod:`server.rest.requests`)
and then applied to every instance of a job with :func:`modify_dataset`.  Its UID map is
shared by all those instances, which is what keeps a modified study consistent: the same
original UID always becomes the same new UID, in the identifying tags as in the references
(ReferencedSOPInstanceUID, FrameOfReferenceUID, UIDs nested in sequences...).  Nothing here
knows HTTP, the index or the jobs engine, so the REST routes, the jobs and Lua's
``ModifyInstance`` share it.

The steps and their order are those of Orthanc 1.10.1's ``DicomModification::Apply``:

1. refuse what cannot be done (removing an identifier, a level inconsistent with the
   replaced identifiers), which 1.10.1 checks here, that is inside the job;
2. anonymization: forced Study/Series/SOP UIDs enter the UID map, so references follow;
3. private tags removed (top level), then clearings, removals and replacements (top level);
4. StudyInstanceUID / SeriesInstanceUID / SOPInstanceUID regenerated down from the
   modification level, unless replaced or kept;
5. anonymization: every element, nested ones included, visited as ``RelationshipsVisitor``
   does (profile removals and clearings inside sequences, private tags inside sequences,
   UID tags mapped);
6. removals and replacements given with sequence paths (``Seq[0].Tag``, ``Seq[*].Tag``).

Values are written as raw elements already encoded in the dataset's byte order and
character set, so that elements nobody touched are written back byte for byte.
"""

from __future__ import annotations

import io
import struct
from array import array
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import pydicom
from pydicom.charset import convert_encodings, default_encoding
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_data_element
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence
from pydicom.tag import BaseTag
from pydicom.uid import DeflatedExplicitVRLittleEndian

import server
from server.dicom import uids
from server.dicom.anonymization_profiles import PROFILES
from server.dicom.charset import TextDecoder, encode_text
from server.dicom.elements import STRING_VRS, string_text
from server.dicom.encode import (
    IMPLEMENTATION_CLASS_UID,
    IMPLEMENTATION_VERSION_NAME,
    PRIVATE_GENERIC_FILE_SOP_CLASS,
    Element,
    Items,
    ValueContext,
    dictionary_vr,
    element_from_json,
    element_from_text,
    encode_items,
    format_tag,
    parse_tag,
)
from server.dicom.json_format import dataset_decoder, tag_text
from server.dicom.main_tags import Level
from server.dicom.parse import read_dataset
from server.dicom.pixels import transfer_syntax as syntax_of
from server.dicom.transcode import DEFAULT_SETTINGS, Settings, transcode_dataset
from server.errors import ErrorCode, OrthancError

PATIENT_NAME = 0x00100010
PATIENT_ID = 0x00100020
STUDY_INSTANCE_UID = 0x0020000D
SERIES_INSTANCE_UID = 0x0020000E
SOP_INSTANCE_UID = 0x00080018
SOP_CLASS_UID = 0x00080016
SPECIFIC_CHARACTER_SET = 0x00080005
PATIENT_IDENTITY_REMOVED = 0x00120062
DEIDENTIFICATION_METHOD = 0x00120063
REFERENCED_SOP_INSTANCE_UID = 0x00081155
REFERENCED_FRAME_OF_REFERENCE_SEQUENCE = 0x30060010
RT_REFERENCED_STUDY_SEQUENCE = 0x30060012

#: The tags that identify the four levels: touching them needs ``Force``.
IDENTIFIERS = frozenset({PATIENT_ID, STUDY_INSTANCE_UID, SERIES_INSTANCE_UID, SOP_INSTANCE_UID})

#: The tag each level regenerates (patients get theirs from the UID map, via PatientID).
LEVEL_UID = {Level.STUDY: STUDY_INSTANCE_UID, Level.SERIES: SERIES_INSTANCE_UID,
             Level.INSTANCE: SOP_INSTANCE_UID}

#: Orthanc writes its own version into DeidentificationMethod; Isengard reports the same API.
DEIDENTIFICATION_PREFIX = f"Orthanc {server.ORTHANC_VERSION} - "

#: VRs whose explicit-VR header has a 4-byte length.
_LONG_HEADER_VRS = frozenset(("OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV"))
UNDEFINED_LENGTH = 0xFFFFFFFF

#: Word sizes of the VRs whose values are byte-swapped when the endianness changes.
_WORD_SIZES = {"OW": 2, "US": 2, "SS": 2, "AT": 2, "OF": 4, "OL": 4, "UL": 4, "SL": 4, "FL": 4,
               "OD": 8, "OV": 8, "FD": 8, "SV": 8, "UV": 8}
_ARRAY_CODES = {2: "H", 4: "I", 8: "Q"}


def _dictionary_vr(tag: int, creator: str = "") -> str:
    """The VR of a new element of this tag (dcmtk's "xs" becomes US, as dcmtk creates it)."""
    vr = dictionary_vr(tag, creator)
    return "US" if vr == "xs" else vr


def _is_private(tag: int) -> bool:
    return bool((tag >> 16) & 1)


# -- paths ---------------------------------------------------------------------------


@dataclass(frozen=True)
class TagPath:
    """A tag, possibly inside sequence items (Orthanc's ``DicomPath``).

    ``prefix`` lists (sequence tag, item index) pairs; an index of None is ``[*]``.
    """

    prefix: tuple[tuple[int, int | None], ...]
    tag: int

    @staticmethod
    def parse(text: str) -> TagPath:
        """``Tag``, ``Seq[1].Tag``, ``Seq[*].Other[0].Tag``; tags as names or ``gggg,eeee``."""
        tokens = text.split(".")
        prefix: list[tuple[int, int | None]] = []
        for token in tokens[:-1]:
            left, bracket, right = token.partition("[")
            left, right = left.strip(), right.strip()
            if not bracket:
                raise OrthancError(ErrorCode.PARAMETER_OUT_OF_RANGE, "Parent path doesn't contain an index")
            if not left:
                raise OrthancError(ErrorCode.PARAMETER_OUT_OF_RANGE, "Parent path doesn't contain a tag")
            if not right.endswith("]"):
                raise OrthancError(ErrorCode.PARAMETER_OUT_OF_RANGE,
                                   "Parent path doesn't contain the end of the index")
            index = right[:-1].strip()
            prefix.append((_path_tag(left), _path_index(index, right)))
        return TagPath(tuple(prefix), _path_tag(tokens[-1].strip()))

    def format(self) -> str:
        parts = [f"({format_tag(tag)})[{'*' if index is None else index}]" for tag, index in self.prefix]
        return ".".join([*parts, f"({format_tag(self.tag)})"])

    def matches(self, parents: tuple[tuple[int, int], ...], tag: int) -> bool:
        """``DicomPath::IsMatch``: the element at ``parents``/``tag`` is this path or inside it."""
        depth = len(self.prefix)
        if len(parents) < depth:
            return False
        for (pattern_tag, pattern_index), (path_tag, path_index) in zip(self.prefix, parents, strict=False):
            if pattern_tag != path_tag or (pattern_index is not None and pattern_index != path_index):
                return False
        if len(parents) == depth:
            return tag == self.tag
        return parents[depth][0] == self.tag


def _path_tag(token: str) -> int:
    if token.startswith("(") and token.endswith(")"):
        token = token[1:-1]
    return parse_tag(token)


def _path_index(index: str, right: str) -> int | None:
    if index == "*":
        return None
    try:
        value = int(index)
    except ValueError:
        raise OrthancError(ErrorCode.PARAMETER_OUT_OF_RANGE,
                           f"Not a valid index in parent path: [{right}") from None
    if value < 0:
        raise OrthancError(ErrorCode.PARAMETER_OUT_OF_RANGE, f"Negative index in parent path: {index}")
    return value


# -- the modification ----------------------------------------------------------------


@dataclass
class Modification:
    """What to do to each instance, and the UID map shared by all of them."""

    level: Level = Level.INSTANCE
    is_anonymization: bool = False
    remove_private_tags: bool = False
    private_creator: str = ""
    removals: set[int] = field(default_factory=set)
    clearings: set[int] = field(default_factory=set)
    uids: set[int] = field(default_factory=set)
    replacements: dict[int, Any] = field(default_factory=dict)
    private_tags_to_keep: set[int] = field(default_factory=set)
    kept_identifiers: set[int] = field(default_factory=set)
    keep_paths: list[TagPath] = field(default_factory=list)
    remove_paths: list[TagPath] = field(default_factory=list)
    replace_paths: list[tuple[TagPath, Any]] = field(default_factory=list)
    uid_map: dict[tuple[Level, str], str] = field(default_factory=dict)

    # -- building (Orthanc's Keep / Remove / Replace / Clear) ----------------------------

    def keep(self, path: TagPath) -> None:
        if not path.prefix:
            tag = path.tag
            self.removals.discard(tag)
            self.clearings.discard(tag)
            self.uids.discard(tag)
            self.replacements.pop(tag, None)
            if tag in (STUDY_INSTANCE_UID, SERIES_INSTANCE_UID, SOP_INSTANCE_UID):
                self.kept_identifiers.add(tag)
            elif _is_private(tag):
                self.private_tags_to_keep.add(tag)
        self.keep_paths.append(path)
        self.mark_not_orthanc_anonymization()

    def remove(self, path: TagPath) -> None:
        if path.prefix:
            self.remove_paths.append(path)
        else:
            self.removals.add(path.tag)
            self.clearings.discard(path.tag)
            self._forget(path.tag)
        self.mark_not_orthanc_anonymization()

    def clear(self, tag: int) -> None:
        self.removals.discard(tag)
        self.clearings.add(tag)
        self._forget(tag)
        self.mark_not_orthanc_anonymization()

    def replace(self, path: TagPath, value: Any, safe_for_anonymization: bool = False) -> None:
        if path.prefix:
            self.replace_paths.append((path, value))
        else:
            tag = path.tag
            self.clearings.discard(tag)
            self.removals.discard(tag)
            self.uids.discard(tag)
            self.private_tags_to_keep.discard(tag)
            self.replacements[tag] = value
        if not safe_for_anonymization:
            self.mark_not_orthanc_anonymization()

    def _forget(self, tag: int) -> None:
        self.uids.discard(tag)
        self.replacements.pop(tag, None)
        self.private_tags_to_keep.discard(tag)

    def set_level(self, level: Level) -> None:
        self.uid_map.clear()
        self.level = level
        if level is not Level.PATIENT:
            self.mark_not_orthanc_anonymization()

    def set_remove_private_tags(self, removed: bool) -> None:
        self.remove_private_tags = removed
        if not removed:
            self.mark_not_orthanc_anonymization()

    def mark_not_orthanc_anonymization(self) -> None:
        """A customised anonymization no longer claims to follow Orthanc's profile: the method
        is removed (Orthanc 1.10.1) or reduced to "Orthanc {version}" (Orthanc 1.12.7, API 28)."""
        value = self.replacements.get(DEIDENTIFICATION_METHOD)
        methods = {DEIDENTIFICATION_PREFIX + profile.method for profile in PROFILES.values()}
        if value in methods:
            if server.ORTHANC_API_VERSION >= 28:
                self.replacements[DEIDENTIFICATION_METHOD] = f"Orthanc {server.ORTHANC_VERSION}"
            else:
                del self.replacements[DEIDENTIFICATION_METHOD]

    def setup_anonymization(self, version: str) -> None:
        profile = PROFILES[version]
        self.is_anonymization = True
        self.level = Level.PATIENT
        self.remove_private_tags = True
        self.removals = set(profile.removals)
        self.clearings = set(profile.clearings)
        self.uids = set(profile.uids) | {PATIENT_ID, PATIENT_NAME}
        self.replacements = {DEIDENTIFICATION_METHOD: DEIDENTIFICATION_PREFIX + profile.method,
                             PATIENT_IDENTITY_REMOVED: "YES"}

    # -- queries ---------------------------------------------------------------------

    def is_replaced(self, tag: int) -> bool:
        return tag in self.replacements

    def is_removed(self, tag: int) -> bool:
        return tag in self.removals

    def is_cleared(self, tag: int) -> bool:
        return tag in self.clearings

    def manually_modified(self, tag: int) -> bool:
        return tag in self.clearings or tag in self.removals or tag in self.replacements

    def is_kept(self, parents: tuple[tuple[int, int], ...], tag: int) -> bool:
        return any(path.matches(parents, tag) for path in self.keep_paths)

    def map_identifier(self, original: str, level: Level) -> str:
        """The new value of an identifier: the same for the same original, job-wide."""
        key = (level, original.strip())
        mapped = self.uid_map.get(key)
        if mapped is None:
            mapped = self.uid_map[key] = uids.generate(level)
        return mapped

    def register_identifier(self, original: str, mapped: str, level: Level) -> None:
        self.uid_map.setdefault((level, original.strip()), mapped)

    # -- persistence (jobs are saved and restored) ------------------------------------

    def to_json(self) -> dict[str, Any]:
        uid_map: dict[str, dict[str, str]] = {level.title: {} for level in Level}
        for (level, original), mapped in self.uid_map.items():
            uid_map[level.title][original] = mapped
        return {
            "Level": self.level.title, "IsAnonymization": self.is_anonymization,
            "RemovePrivateTags": self.remove_private_tags, "PrivateCreator": self.private_creator,
            "Removals": sorted(self.removals), "Clearings": sorted(self.clearings), "Uids": sorted(self.uids),
            "Replacements": {format_tag(tag): value for tag, value in self.replacements.items()},
            "PrivateTagsToKeep": sorted(self.private_tags_to_keep),
            "KeptIdentifiers": sorted(self.kept_identifiers),
            "KeepPaths": [path.format() for path in self.keep_paths],
            "RemovePaths": [path.format() for path in self.remove_paths],
            "ReplacePaths": [[path.format(), value] for path, value in self.replace_paths],
            "UidMap": uid_map,
        }

    @staticmethod
    def from_json(data: dict[str, Any]) -> Modification:
        uid_map = {(Level.parse(level), original): mapped
                   for level, values in data["UidMap"].items() for original, mapped in values.items()}
        return Modification(
            level=Level.parse(data["Level"]), is_anonymization=data["IsAnonymization"],
            remove_private_tags=data["RemovePrivateTags"], private_creator=data["PrivateCreator"],
            removals=set(data["Removals"]), clearings=set(data["Clearings"]), uids=set(data["Uids"]),
            replacements={parse_tag(tag): value for tag, value in data["Replacements"].items()},
            private_tags_to_keep=set(data["PrivateTagsToKeep"]),
            kept_identifiers=set(data["KeptIdentifiers"]),
            keep_paths=[TagPath.parse(text) for text in data["KeepPaths"]],
            remove_paths=[TagPath.parse(text) for text in data["RemovePaths"]],
            replace_paths=[(TagPath.parse(text), value) for text, value in data["ReplacePaths"]],
            uid_map=uid_map)


def detect_level(modification: Modification) -> Level:
    """The level of a single-instance modification, from the identifiers it replaces."""
    if modification.is_replaced(PATIENT_ID):
        return Level.PATIENT
    if modification.is_replaced(STUDY_INSTANCE_UID):
        return Level.STUDY
    if modification.is_replaced(SERIES_INSTANCE_UID):
        return Level.SERIES
    return Level.INSTANCE


# -- applying ------------------------------------------------------------------------


def modify_dataset(ds: Dataset, modification: Modification, default_encoding: str = "Latin1") -> Dataset:
    """Apply ``modification`` to ``ds`` in place (and return it); raises :class:`OrthancError`."""
    _Applier(ds, modification, default_encoding).apply()
    return ds


#: Orthanc 1.11.3: with ``Force``, identifiers of any level may be replaced at any level.
API_FORCED_IDENTIFIERS = 19


def check_modification(modification: Modification) -> None:
    """What Orthanc 1.10.1 refuses when it applies a modification (so: inside the job).

    From Orthanc 1.11.3 (API 19) only the removal of an identifier is refused here: the
    checks of the level moved to the parsing of a request without ``Force``, where replacing
    an identifier is refused anyway."""
    m = modification
    if any(m.is_removed(tag) for tag in IDENTIFIERS):
        raise OrthancError(ErrorCode.BAD_REQUEST)  # Orthanc 1.10.1 gives no details
    if server.ORTHANC_API_VERSION >= API_FORCED_IDENTIFIERS:
        return
    patient_id_replaced = m.is_replaced(PATIENT_ID) or PATIENT_ID in m.uids
    refusals = [
        (m.level is Level.PATIENT and not patient_id_replaced,
         "When modifying a patient, her PatientID is required to be modified"),
        (m.level is Level.STUDY and patient_id_replaced,
         "When modifying a study, the parent PatientID cannot be manually modified"),
        (m.level is Level.SERIES and patient_id_replaced,
         "When modifying a series, the parent PatientID cannot be manually modified"),
        (m.level is Level.SERIES and m.is_replaced(STUDY_INSTANCE_UID),
         "When modifying a series, the parent StudyInstanceUID cannot be manually modified"),
        (m.level is Level.INSTANCE and patient_id_replaced,
         "When modifying an instance, the parent PatientID cannot be manually modified"),
        (m.level is Level.INSTANCE and m.is_replaced(STUDY_INSTANCE_UID),
         "When modifying an instance, the parent StudyInstanceUID cannot be manually modified"),
        (m.level is Level.INSTANCE and m.is_replaced(SERIES_INSTANCE_UID),
         "When modifying an instance, the parent SeriesInstanceUID cannot be manually modified"),
    ]
    for refused, reason in refusals:
        if refused:
            raise OrthancError(ErrorCode.BAD_REQUEST, reason)


class Editor:
    """Writes elements into one dataset the way dcmtk would: its byte order, its charset.

    New values are raw elements already encoded, so pydicom writes them (and every
    element nobody touched) without decoding and re-encoding anything.
    """

    def __init__(self, ds: Dataset, default_encoding: str = "Latin1", private_creator: str = "") -> None:
        self.ds = ds
        self.default_encoding = default_encoding
        self.private_creator = private_creator
        implicit, little = ds.original_encoding
        self.implicit = bool(implicit)
        self.little = little is not False
        self.decoder = dataset_decoder(ds, default_encoding)

    def vr(self, elem: RawDataElement | DataElement) -> str:
        """The VR dcmtk sees: the file's (explicit VR) or the dictionary's (implicit VR)."""
        vr = elem.VR
        if vr is None or (isinstance(elem, RawDataElement) and elem.is_implicit_VR):
            vr = dictionary_vr(elem.tag, "")
        if vr == "UN" and isinstance(elem, RawDataElement) and elem.length == 0xFFFFFFFF:
            return "SQ"  # dcmtk reads an undefined-length UN element as a sequence
        return vr

    def text(self, elem: RawDataElement | DataElement) -> str:
        """The value of a string element as Orthanc reads it (dataset charset, padding gone)."""
        if isinstance(elem, RawDataElement):
            return self.decoder.decode(string_text(elem.value or b"", self.vr(elem))).strip()
        value = elem.value
        if isinstance(value, MultiValue):
            return "\\".join(str(v) for v in value).strip()
        return "" if value is None else str(value).strip()

    def set_json(self, item: Dataset, tag: int, value: Any) -> None:
        """Orthanc's ``FromJson`` (shared with create-dicom): a string, null, or sequence items."""
        context = ValueContext(self.decoder.encoding, self.private_creator)
        item[tag] = self._converted(tag, element_from_json(tag, value, context))
        if tag == SPECIFIC_CHARACTER_SET and item is self.ds:
            self._charset_changed()

    def set_plain(self, tag: int, text: str) -> None:
        """Orthanc's ``ReplacePlainString``: a top-level value, no data URI decoding."""
        context = ValueContext(self.decoder.encoding, self.private_creator)
        self.ds[tag] = self._converted(tag, element_from_text(tag, text, context, decode=False))
        if tag == SPECIFIC_CHARACTER_SET:
            self._charset_changed()

    def set_string(self, item: Dataset, tag: int, vr: str, text: str) -> None:
        """A string element keeping ``vr`` (UIDs in ASCII, other strings in the dataset's charset)."""
        data = text.encode("ascii", "ignore") if vr == "UI" else encode_text(text, self.decoder.encoding)
        item[tag] = self._raw(tag, vr, _pad(data, b"\0" if vr == "UI" else b" "))

    def clear(self, item: Dataset, tag: int, vr: str | None = None) -> None:
        """An empty value; a new element gets the dictionary's VR (an empty sequence for SQ)."""
        vr = vr or _dictionary_vr(tag, self.private_creator)
        item[tag] = DataElement(tag, "SQ", Sequence()) if vr == "SQ" else self._raw(tag, vr, b"")

    def _charset_changed(self) -> None:
        """Later strings use the new charset; the elements already there keep their bytes."""
        self.decoder = dataset_decoder(self.ds, self.default_encoding)
        self.ds.set_original_encoding(self.implicit, self.little, _python_encodings(self.ds))

    def _raw(self, tag: int, vr: str, value: bytes) -> RawDataElement:
        return RawDataElement(BaseTag(tag), vr, len(value), value, 0, self.implicit, self.little)

    def _converted(self, tag: int, element: Element) -> RawDataElement | DataElement:
        if element.items is not None:
            return DataElement(tag, "SQ", Sequence([self._item(items) for items in element.items]))
        raw = _pad(element.raw, b" " if element.vr in STRING_VRS and element.vr != "UI" else b"\0")
        if not self.little and element.vr in _WORD_SIZES:
            raw = _swapped(raw, _WORD_SIZES[element.vr])
        return self._raw(tag, element.vr, raw)

    def _item(self, items: Items) -> Dataset:
        item = Dataset()
        item.set_original_encoding(self.implicit, self.little, _python_encodings(self.ds))
        for tag in sorted(items):
            item[tag] = self._converted(tag, items[tag])
        return item


class _Applier:
    """One application of a modification to one dataset."""

    def __init__(self, ds: Dataset, modification: Modification, default_encoding: str) -> None:
        self.ds = ds
        self.m = modification
        self.editor = Editor(ds, default_encoding, modification.private_creator)

    def apply(self) -> None:
        m, ds, editor = self.m, self.ds, self.editor
        tag: int
        check_modification(m)
        if m.is_anonymization:
            self._register_forced_identifiers()
        if m.remove_private_tags:
            for tag in [t for t in ds.keys() if _is_private(t) and t not in m.private_tags_to_keep]:
                del ds[tag]
        for tag in sorted(m.clearings.intersection(ds.keys())):
            editor.clear(ds, tag)
        for tag in [t for t in ds.keys() if t in m.removals]:
            del ds[tag]
        for tag in sorted(m.replacements):
            editor.set_json(ds, tag, m.replacements[tag])
        for level, tag in LEVEL_UID.items():
            if m.level <= level and not m.is_replaced(tag) and tag not in m.kept_identifiers:
                original = editor.text(ds.get_item(tag)) if tag in ds else ""
                editor.set_string(ds, tag, "UI", m.map_identifier(original, level))
        if m.is_anonymization:
            self._visit(ds, ())
        for path in m.remove_paths:
            for item in self._items(path):
                item.pop(path.tag, None)
        for path, value in m.replace_paths:
            for item in self._items(path):
                editor.set_json(item, path.tag, value)

    def _register_forced_identifiers(self) -> None:
        """Anonymization with a forced UID: references to the old UID follow it."""
        for level, tag in LEVEL_UID.items():
            if self.m.is_replaced(tag) and isinstance(self.m.replacements[tag], str) and tag in self.ds:
                original = self.editor.text(self.ds.get_item(tag))
                self.m.register_identifier(original, self.m.replacements[tag], level)

    def _visit(self, item: Dataset, parents: tuple[tuple[int, int], ...]) -> None:
        """Orthanc's ``RelationshipsVisitor`` over one item (the dataset itself at the top)."""
        m = self.m
        for tag in list(item.keys()):
            elem = item.get_item(tag)
            vr = self.editor.vr(elem)
            if not parents:
                if vr in STRING_VRS and tag in m.uids and not m.manually_modified(tag):
                    self._map(item, tag, elem, vr, parents)
                elif vr == "SQ":
                    self._visit_items(item, tag, parents)
                continue
            if m.is_kept(parents, tag):
                continue
            if (m.remove_private_tags and _is_private(tag)) or m.is_removed(tag):
                del item[tag]
            elif m.is_cleared(tag):
                if vr in STRING_VRS:
                    self.editor.clear(item, tag, vr)
                else:
                    del item[tag]
            elif vr in STRING_VRS:
                if tag in LEVEL_UID.values() or tag in m.uids:
                    self._map(item, tag, elem, vr, parents)
            elif vr == "SQ":
                self._visit_items(item, tag, parents)

    def _visit_items(self, item: Dataset, tag: int, parents: tuple[tuple[int, int], ...]) -> None:
        value = item[tag].value
        if isinstance(value, Sequence):
            for index, child in enumerate(value):
                self._visit(child, (*parents, (tag, index)))

    def _map(self, item: Dataset, tag: int, elem: RawDataElement | DataElement, vr: str,
             parents: tuple[tuple[int, int], ...]) -> None:
        original = self.editor.text(elem)
        if tag in (PATIENT_ID, PATIENT_NAME):
            level = Level.PATIENT
        elif tag == STUDY_INSTANCE_UID or (
                tag == REFERENCED_SOP_INSTANCE_UID and [p[0] for p in parents] ==
                [REFERENCED_FRAME_OF_REFERENCE_SEQUENCE, RT_REFERENCED_STUDY_SEQUENCE]):
            level = Level.STUDY  # in RT structures, this "SOP instance" is a study (Orthanc's rule)
        elif tag == SERIES_INSTANCE_UID:
            level = Level.SERIES
        else:
            level = Level.INSTANCE
        self.editor.set_string(item, tag, vr, self.m.map_identifier(original, level))

    def _items(self, path: TagPath) -> Iterable[Dataset]:
        """The items a sequence path designates (``[*]`` = all), those that exist."""
        items = [self.ds]
        for tag, index in path.prefix:
            found: list[Dataset] = []
            for item in items:
                if tag not in item or not isinstance(item[tag].value, Sequence):
                    continue
                sequence = list(item[tag].value)
                found += sequence if index is None else sequence[index:index + 1]
            items = found
        return items


def _python_encodings(ds: Dataset) -> list[str]:
    """pydicom's name for the character set the dataset now declares."""
    value = ds.get("SpecificCharacterSet")
    return convert_encodings(value) if value else [default_encoding]


def _pad(data: bytes, padding: bytes) -> bytes:
    return data + padding if len(data) & 1 else data


def _swapped(data: bytes, size: int) -> bytes:
    """``data`` with every word of ``size`` bytes byte-swapped."""
    if len(data) % size:
        return data
    words = array(_ARRAY_CODES[size], data)
    words.byteswap()
    return words.tobytes()


# -- identifiers of a dataset ----------------------------------------------------------


def identifiers(ds: Dataset, default_encoding: str = "Latin1") -> dict[Level, str]:
    """PatientID and the three UIDs of a dataset, as the index reads them (stripped)."""
    decoder: TextDecoder = dataset_decoder(ds, default_encoding)
    tags = {Level.PATIENT: PATIENT_ID, Level.STUDY: STUDY_INSTANCE_UID, Level.SERIES: SERIES_INSTANCE_UID,
            Level.INSTANCE: SOP_INSTANCE_UID}
    return {level: (tag_text(ds, tag, decoder) or "").strip() for level, tag in tags.items()}


# -- writing and transcoding -----------------------------------------------------------


def write_file(ds: Dataset, transfer_syntax: str | None = None, settings: Settings = DEFAULT_SETTINGS) -> bytes:
    """The DICOM file of ``ds``, optionally transcoded (:mod:`server.dicom.transcode`, which
    raises :class:`CannotTranscode`), with the meta header Orthanc writes.  Without
    transcoding, raw elements are copied as they are (pydicom only encodes the others).
    """
    source = syntax_of(ds)
    target = transfer_syntax or source
    if target != source:
        transcode_dataset(ds, target, settings)
    meta = _file_meta(ds, target)
    implicit, little = ds.original_encoding
    if target != source or target == DeflatedExplicitVRLittleEndian or implicit is None or little is None:
        ds.file_meta = FileMetaDataset()
        for tag in sorted(meta):
            ds.file_meta[tag] = DataElement(tag, meta[tag].vr, meta[tag].raw.decode("latin-1").rstrip("\0 ")
                                            if meta[tag].vr != "OB" else meta[tag].raw)
        buffer = io.BytesIO()
        pydicom.dcmwrite(buffer, ds, enforce_file_format=True)
        return buffer.getvalue()
    body = encode_items(meta)
    group_length = encode_items({0x00020000: Element("UL", struct.pack("<I", len(body)))})
    return b"\0" * 128 + b"DICM" + group_length + body + _dataset_bytes(ds, implicit, little)


def _file_meta(ds: Dataset, transfer_syntax: str) -> Items:
    """Orthanc's (dcmtk's) meta header for the dataset as it now is."""
    sop_class = _uid_value(ds, SOP_CLASS_UID) or PRIVATE_GENERIC_FILE_SOP_CLASS
    return {
        0x00020001: Element("OB", b"\x00\x01"),
        0x00020002: Element("UI", sop_class.encode()),
        0x00020003: Element("UI", _uid_value(ds, SOP_INSTANCE_UID).encode()),
        0x00020010: Element("UI", transfer_syntax.encode()),
        0x00020012: Element("UI", IMPLEMENTATION_CLASS_UID.encode()),
        0x00020013: Element("SH", IMPLEMENTATION_VERSION_NAME.encode()),
    }


def _uid_value(ds: Dataset, tag: int) -> str:
    if tag not in ds:
        return ""
    elem = ds.get_item(tag)
    if isinstance(elem, RawDataElement):
        return (elem.value or b"").decode("latin-1").strip("\0 ")
    return str(elem.value or "").strip()


def _dataset_bytes(ds: Dataset, implicit: bool, little: bool) -> bytes:
    """The encoded dataset: raw elements copied byte for byte, the others encoded by pydicom.

    Group lengths the dataset had are recalculated, as dcmtk does when Orthanc saves a file.
    """
    order = "<" if little else ">"
    out = bytearray()
    groups: dict[int, list[int]] = {}
    tag: int
    for tag in sorted(ds.keys()):
        groups.setdefault(tag >> 16, []).append(tag)
    for group, tags in groups.items():
        fp = DicomBytesIO()
        fp.is_implicit_VR, fp.is_little_endian = implicit, little
        for tag in tags:
            if tag & 0xFFFF:
                _write_element(fp, ds, tag, implicit, order)
        body = fp.getvalue()
        if tags[0] & 0xFFFF == 0:
            out += _header(group << 16, "UL", 4, implicit, order) + struct.pack(order + "I", len(body))
        out += body
    return bytes(out)


def _write_element(fp: DicomBytesIO, ds: Dataset, tag: int, implicit: bool, order: str) -> None:
    elem = ds.get_item(tag)
    if not isinstance(elem, RawDataElement):
        write_data_element(fp, ds[tag], _python_encodings(ds))
        return
    value = elem.value or b""
    undefined = elem.length == UNDEFINED_LENGTH
    vr = elem.VR or dictionary_vr(tag, "")
    if not implicit and vr not in _LONG_HEADER_VRS and len(value) > 0xFFFF:
        vr = "UN"
    fp.write(_header(tag, vr, UNDEFINED_LENGTH if undefined else len(value), implicit, order))
    fp.write(value)
    if undefined:
        fp.write(struct.pack(order + "HHI", 0xFFFE, 0xE0DD, 0))


def _header(tag: int, vr: str, length: int, implicit: bool, order: str) -> bytes:
    group, element = tag >> 16, tag & 0xFFFF
    if implicit:
        return struct.pack(order + "HHI", group, element, length)
    if vr in _LONG_HEADER_VRS:
        return struct.pack(order + "HH2s2xI", group, element, vr.encode(), length)
    return struct.pack(order + "HH2sH", group, element, vr.encode(), length)


def modify_file(data: bytes, modification: Modification, default_encoding: str = "Latin1",
                transfer_syntax: str | None = None, settings: Settings = DEFAULT_SETTINGS) -> bytes:
    """A modified copy of a DICOM file (what ``/instances/{id}/modify`` answers)."""
    ds, _ = read_dataset(data)
    modify_dataset(ds, modification, default_encoding)
    return write_file(ds, transfer_syntax, settings)
