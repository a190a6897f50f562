"""``/tools/find``: Orthanc's matching of DICOM query values against the index.

Exact values on the level's own main tags are pushed to SQL; wildcards, ranges,
lists, tags of parent levels and (as a last resort) tags that are not indexed are
checked here, in that order of cost.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from pydicom.datadict import tag_for_keyword

from server.dicom.dictionary import tag_from_name, vr_without_creator
from server.dicom.main_tags import BY_LEVEL, BY_NAME, Level, Tag
from server.errors import ErrorCode, OrthancError
from server.storage.index import Index, Resource

_RANGE_VRS = {"DA", "DT", "TM"}

#: VRs on which ``*`` and ``?`` are wildcards (DICOM PS3.4 C.2.2.2.4); elsewhere they are refused.
WILDCARD_VRS = frozenset(("AE", "CS", "LO", "LT", "PN", "SH", "ST", "UC", "UR", "UT"))


def parse_tag(name: str) -> Tag:
    """A tag given as a keyword or dictionary name, ``gggg,eeee`` or ``gggg-eeee``."""
    text = name.strip()
    if text in BY_NAME:
        return BY_NAME[text]
    match = re.fullmatch(r"([0-9a-fA-F]{4})[,-]([0-9a-fA-F]{4})", text)
    if match:
        return int(match.group(1), 16), int(match.group(2), 16)
    number = tag_for_keyword(text)
    if number is None:
        number = tag_from_name(text)    # dcmtk names, and those of the Dictionary option
    if number is None:
        raise OrthancError(ErrorCode.UNKNOWN_DICOM_TAG, f"Unknown DICOM tag: \"{name}\"")
    return number >> 16, number & 0xFFFF


def vr_of(tag: Tag) -> str:
    """The tag's VR from the server's dictionary (``Dictionary`` entries included)."""
    return vr_without_creator(tag[0], tag[1]) or "UN"


@dataclass
class Constraint:
    tag: Tag
    matches: Callable[[str | None], bool]
    exact: str | None  # the value, when an equality is all there is to check


def make_constraint(tag: Tag, pattern: str, case_sensitive: bool) -> Constraint | None:
    """Orthanc's rules, for ``/tools/find`` and the C-FIND SCP alike (checked on 1.10.1).

    None for universal matching (an empty value); ``*`` alone matches resources that
    have the attribute; ``*`` and ``?`` are wildcards only on text VRs, and a 400 elsewhere.
    """
    if pattern == "":
        return None
    vr = vr_of(tag)
    if pattern == "*" and vr in WILDCARD_VRS:
        return Constraint(tag, lambda v: v is not None, None)
    is_range = vr in _RANGE_VRS and "-" in pattern
    if vr not in WILDCARD_VRS and not is_range and "\\" not in pattern and ("*" in pattern or "?" in pattern):
        raise OrthancError(ErrorCode.PARAMETER_OUT_OF_RANGE,
                           f"Wildcards are not allowed on tag {tag[0]:04x},{tag[1]:04x}")
    sensitive = case_sensitive and vr != "PN"
    if is_range:
        low, _, high = pattern.partition("-")
        return Constraint(tag, lambda v: v is not None and v != "" and
                          (not low or v >= low) and (not high or v <= high), None)
    if "\\" in pattern:
        options = [_matcher(p, sensitive) for p in pattern.split("\\")]
        return Constraint(tag, lambda v: any(m(v) for m in options), None)
    if "*" in pattern or "?" in pattern:
        return Constraint(tag, _matcher(pattern, sensitive), None)
    return Constraint(tag, _matcher(pattern, sensitive), pattern if sensitive else None)


def _matcher(pattern: str, sensitive: bool) -> Callable[[str | None], bool]:
    regex = re.compile("".join(".*" if c == "*" else "." if c == "?" else re.escape(c)
                               for c in pattern), 0 if sensitive else re.IGNORECASE)
    return lambda value: value is not None and regex.fullmatch(value) is not None


def parse_request(body: object) -> tuple[Level, list[Constraint], dict]:
    if not isinstance(body, dict):
        raise OrthancError(ErrorCode.BAD_REQUEST, "The body must contain a JSON object")
    level_text = body.get("Level")
    query = body.get("Query", {})
    if not isinstance(level_text, str) or not isinstance(query, dict):
        raise OrthancError(ErrorCode.BAD_REQUEST,
                           'Field "Level" and "Query" are mandatory in the request')
    try:
        level = Level.parse(level_text)
    except ValueError:
        raise OrthancError(ErrorCode.PARAMETER_OUT_OF_RANGE,
                           f"Unknown resource level: {level_text}") from None
    case_sensitive = body.get("CaseSensitive", True)
    if not isinstance(case_sensitive, bool):
        raise OrthancError(ErrorCode.BAD_REQUEST,
                           'Field "CaseSensitive" must be a Boolean')
    constraints = []
    for name, value in query.items():
        if not isinstance(value, str):
            raise OrthancError(ErrorCode.BAD_REQUEST,
                               "Tag \"" + name + "\" must be associated with a string")
        constraint = make_constraint(parse_tag(name), value, case_sensitive)
        if constraint is not None:
            constraints.append(constraint)
    for key in ("Limit", "Since"):
        if key in body and (not isinstance(body[key], int) or body[key] < 0):
            raise OrthancError(ErrorCode.BAD_REQUEST,
                               f'Field "{key}" must be a positive integer')
    return level, constraints, body


class Finder:
    """Runs a find over the index; non-indexed tags are read from the DICOM files."""

    def __init__(self, index: Index, read_tags: Callable[[Resource], dict[Tag, str]]) -> None:
        self.index = index
        self.read_tags = read_tags

    def find(self, level: Level, constraints: list[Constraint], since: int = 0,
             limit: int = 0) -> list[Resource]:
        exact = {c.tag: c.exact for c in constraints
                 if c.exact is not None and c.tag in BY_LEVEL[level]
                 and c.tag not in BY_LEVEL[Level.PATIENT]}
        candidate_ids = list(self.index.candidates(level, exact))
        remaining = [c for c in constraints if c.tag not in exact]
        owners = self._owners(level, remaining)
        tags = self.index.main_tags_many(candidate_ids) if candidate_ids else {}
        found: list[Resource] = []
        skipped = 0
        ancestors_cache: dict[int, dict[Tag, str]] = {}
        for internal_id in candidate_ids:
            resource = self._resource(internal_id, level)
            if not self._matches(resource, tags[internal_id], remaining, owners, ancestors_cache):
                continue
            if skipped < since:
                skipped += 1
                continue
            found.append(resource)
            if limit and len(found) >= limit:
                break
        return found

    def _resource(self, internal_id: int, level: Level) -> Resource:
        with self.index.reading() as db:
            row = db.execute("SELECT publicId, parentId FROM Resources WHERE internalId=?",
                             (internal_id,)).fetchone()
        return Resource(internal_id, level, row[0], row[1])

    @staticmethod
    def _owners(level: Level, constraints: list[Constraint]) -> dict[Tag, Level | None]:
        """Which level indexes each constrained tag (None: only the DICOM file has it)."""
        owners: dict[Tag, Level | None] = {}
        for c in constraints:
            owner = None
            for candidate in (level, *reversed(list(Level)[:level])):
                if c.tag in BY_LEVEL[candidate] or (
                        candidate is Level.STUDY and c.tag in BY_LEVEL[Level.PATIENT]):
                    owner = candidate
                    break
            owners[c.tag] = owner
        return owners

    def _matches(self, resource: Resource, own: dict[Tag, str], constraints: list[Constraint],
                 owners: dict[Tag, Level | None], cache: dict[int, dict[Tag, str]]) -> bool:
        file_tags: dict[Tag, str] | None = None
        for c in constraints:
            owner = owners[c.tag]
            if owner is resource.level:
                value = own.get(c.tag)
            elif owner is not None:
                value = self._ancestor_tags(resource, owner, cache).get(c.tag)
            else:
                if file_tags is None:
                    file_tags = self._file_tags(resource)
                value = file_tags.get(c.tag)
            if not c.matches(value):
                return False
        return True

    def _ancestor_tags(self, resource: Resource, level: Level,
                       cache: dict[int, dict[Tag, str]]) -> dict[Tag, str]:
        ancestor = self.index.ancestor(resource, level)
        if ancestor.internal_id not in cache:
            cache[ancestor.internal_id] = self.index.main_tags(ancestor.internal_id)
        return cache[ancestor.internal_id]

    def _file_tags(self, resource: Resource) -> dict[Tag, str]:
        instances = self.index.descendants(resource.internal_id, Level.INSTANCE)
        return self.read_tags(instances[0]) if instances else {}
