"""The ``orthanc`` module's DICOM functions and the objects of the DICOM SCP callbacks.

``CreateDicom``, ``DicomBufferToJson``, ``DicomInstanceToJson``, ``CreateFindMatcher``,
and the objects handed to ``RegisterWorklistCallback`` / ``RegisterFindCallback``
callbacks (``WorklistQuery``, ``WorklistAnswers``, ``FindQuery``, ``FindAnswers``),
with orthanc-python 4.0's names and answers.
"""

from __future__ import annotations

import json
from typing import Any

from pydicom.dataset import Dataset

from server.dicom import dictionary, json_format
from server.dicom.create import NewInstance, Raster, _inject_tags, embed_image
from server.dicom.dictionary import UNKNOWN_TAG_NAME, tag_name
from server.dicom.encode import write_file
from server.errors import ErrorCode, OrthancError
from server.net import worklists
from server.scripting.python_enums import ENUMERATIONS
from server.scripting.python_toolbox import exception

_FORMATS = ENUMERATIONS["DicomToJsonFormat"][1]
_CREATE_FLAGS = ENUMERATIONS["CreateDicomFlags"][1]
_JSON_FLAGS = ENUMERATIONS["DicomToJsonFlags"][1]
_BINARY_VRS = frozenset(("OB", "OD", "OF", "OL", "OV", "OW", "UN"))
PIXEL_DATA = 0x7FE00010


def _data(value: Any) -> bytes:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    raise TypeError("expected a bytes buffer with a DICOM file")


def _parsed(value: Any) -> Dataset:
    try:
        return worklists.parse_dicom(_data(value))
    except OrthancError as e:
        raise exception(e.code) from None


def _keep(element: Any, flags: int) -> bool:
    """Orthanc's ``DicomToJsonFlags``: private, unknown, binary and pixel data tags only when asked."""
    tag = element.tag
    if tag == PIXEL_DATA:
        return bool(flags & _JSON_FLAGS["INCLUDE_PIXEL_DATA"])
    if tag.element == 0 and flags & _JSON_FLAGS["SKIP_GROUP_LENGTHS"]:
        return False
    if tag.group % 2 == 1:
        return bool(flags & _JSON_FLAGS["INCLUDE_PRIVATE_TAGS"])
    if tag_name(tag.group, tag.element) == UNKNOWN_TAG_NAME and not flags & _JSON_FLAGS["INCLUDE_UNKNOWN_TAGS"]:
        return False
    vr = element.VR or (dictionary.lookup(tag.group, tag.element) or ("UN", ""))[0]  # implicit VR: the dictionary's
    return vr not in _BINARY_VRS or bool(flags & _JSON_FLAGS["INCLUDE_BINARY"])


def _filter(ds: Dataset, flags: int) -> None:
    """Drop what the flags leave out, reading elements raw (values keep their bytes as stored)."""
    for tag in list(ds.keys()):
        element = ds.get_item(tag)
        if not _keep(element, flags):
            del ds[tag]
        elif element.VR == "SQ":
            for item in ds[tag].value:
                _filter(item, flags)


def _cap(full: dict[str, Any], max_length: int) -> None:
    """Strings longer than ``max_length`` become ``{"Type": "TooLong", "Value": null}``, as Orthanc's."""
    for node in full.values():
        if node["Type"] == "Sequence":
            for item in node["Value"]:
                _cap(item, max_length)
        elif node["Type"] == "String" and len(node["Value"]) > max_length:
            node["Type"], node["Value"] = "TooLong", None


def dicom_json(data: bytes, json_format_value: int, flags: int, default_encoding: str,
               max_string_length: int = 0) -> str:
    """``DicomBufferToJson``: the tags in the FULL, SHORT or HUMAN format, as JSON text."""
    if json_format_value not in _FORMATS.values():
        raise exception(ErrorCode.PARAMETER_OUT_OF_RANGE)
    ds = _parsed(data)
    _filter(ds, int(flags))
    value = json_format.tags_full(ds, default_encoding)
    if max_string_length > 0:
        _cap(value, int(max_string_length))
    if json_format_value != _FORMATS["FULL"]:
        value = json_format.simplify(value, short=json_format_value == _FORMATS["SHORT"])
    return json.dumps(value, indent=3, sort_keys=True, ensure_ascii=False)


def create_dicom(tags_json: str, flags: int, default_encoding: str, private_creator: str,
                 raster: Raster | None = None) -> bytes:
    """``CreateDicom``: a DICOM file from ``{"TagName": value}`` (Orthanc's ``CreateFromJson``)."""
    try:
        tags = json.loads(tags_json)
    except (TypeError, ValueError):
        raise ValueError("Cannot create the DICOM instance") from None
    if not isinstance(tags, dict):
        raise ValueError("Cannot create the DICOM instance")
    generate = bool(flags & _CREATE_FLAGS["GENERATE_IDENTIFIERS"])
    decode = bool(flags & _CREATE_FLAGS["DECODE_DATA_URI_SCHEME"])
    instance = NewInstance.generate(default_encoding) if generate else NewInstance({}, default_encoding)
    instance.set_encoding(default_encoding)
    try:
        _inject_tags(instance, tags, instance.context(private_creator, decode), force=True)
        if raster is not None:
            embed_image(instance, raster)
        return write_file(instance.items)
    except OrthancError:
        raise ValueError("Cannot create the DICOM instance") from None


class FindMatcher:
    """``CreateFindMatcher(query)``: Orthanc's C-FIND matching of DICOM files against a query."""

    def __init__(self, matcher: worklists.HierarchicalMatcher) -> None:
        self._matcher = matcher

    def FindMatcherIsMatch(self, dicom: bytes) -> int:
        """1 or 0, as orthanc-python answers (an ``int``, not a ``bool``)."""
        return int(self._matcher.matches(_parsed(dicom)))


class WorklistQuery:
    """The C-FIND query of a worklist callback."""

    def __init__(self, query: Dataset, matcher: worklists.HierarchicalMatcher) -> None:
        self.query = query
        self.matcher = matcher

    def WorklistGetDicomQuery(self) -> bytes:
        """The query as a DICOM file."""
        return worklists.dataset_bytes(self.query)

    def WorklistIsMatch(self, dicom: bytes) -> int:
        """1 or 0, as orthanc-python answers."""
        return int(self.matcher.matches(_parsed(dicom)))


class WorklistAnswers:
    """The answers of a worklist callback: each one keeps the keys the query asks for."""

    def __init__(self, encoding: str) -> None:
        self.answers = worklists.FindAnswers()
        self._encoding = encoding

    def WorklistAddAnswer(self, query: WorklistQuery, dicom: bytes) -> None:
        if not isinstance(query, WorklistQuery):
            raise TypeError("Invalid orthanc.WorklistQuery object")
        self.answers.datasets.append(worklists.answer_of(query.matcher, _parsed(dicom), self._encoding))

    def WorklistMarkIncomplete(self) -> None:
        self.answers.complete = False


class FindQuery:
    """The C-FIND query of a find callback: its top-level keys, in tag order."""

    def __init__(self, query: Dataset) -> None:
        self._keys = [(int(element.tag), _value(element)) for element in query
                      if element.VR != "SQ" and element.tag.element != 0]

    def _key(self, index: int) -> tuple[int, str]:
        if not isinstance(index, int) or not 0 <= index < len(self._keys):
            raise ValueError("Index is out of range")
        return self._keys[index]

    def GetFindQuerySize(self) -> int:
        return len(self._keys)

    def GetFindQueryTagGroup(self, index: int) -> int:
        return self._key(index)[0] >> 16

    def GetFindQueryTagElement(self, index: int) -> int:
        return self._key(index)[0] & 0xFFFF

    def GetFindQueryTagName(self, index: int) -> str:
        tag = self._key(index)[0]
        return tag_name(tag >> 16, tag & 0xFFFF)

    def GetFindQueryValue(self, index: int) -> str:
        return self._key(index)[1]


class FindAnswers:
    """The answers of a find callback: DICOM files sent as they are."""

    def __init__(self) -> None:
        self.answers = worklists.FindAnswers()

    def FindAddAnswer(self, dicom: bytes) -> None:
        ds = _parsed(dicom)
        if hasattr(ds, "file_meta"):
            del ds.file_meta  # an answer's dataset, not a file
        self.answers.datasets.append(ds)

    def FindMarkIncomplete(self) -> None:
        self.answers.complete = False


def _value(element: Any) -> str:
    value = element.value
    if value is None or isinstance(value, bytes):
        return ""
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        return "\\".join(str(v) for v in value)
    return str(value)


for _class in (FindMatcher, WorklistQuery, WorklistAnswers, FindQuery, FindAnswers):
    _class.__module__ = "orthanc"
