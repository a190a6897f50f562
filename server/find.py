"""Finds (``/tools/find`` and the C-FIND SCP): Orthanc 1.10.1's matching of DICOM query
values against the index, its limits and its order.

Exact values on the level's own main tags are pushed to SQL; wildcards, ranges,
lists, tags of parent levels and ModalitiesInStudy make the rest of the database stage;
tags that are not indexed are read from the files last, as Orthanc does.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydicom.datadict import tag_for_keyword

from server.dicom.dictionary import tag_from_name, vr_without_creator
from server.dicom.main_tags import ALL_TAGS, BY_LEVEL, BY_NAME, Level, Tag
from server.errors import ErrorCode, OrthancError
from server.storage.index import Index, Resource

_RANGE_VRS = {"DA", "DT", "TM"}

#: VRs on which ``*`` and ``?`` are wildcards (DICOM PS3.4 C.2.2.2.4); elsewhere they are refused.
WILDCARD_VRS = frozenset(("AE", "CS", "LO", "LT", "PN", "SH", "ST", "UC", "UR", "UT"))

MODALITY: Tag = (0x0008, 0x0060)
MODALITIES_IN_STUDY: Tag = (0x0008, 0x0061)

#: Orthanc's ``StringToResourceType``: the spellings a find or a C-FIND may give a level.
_LEVEL_NAMES = {"PATIENT": Level.PATIENT, "PATIENTS": Level.PATIENT, "STUDY": Level.STUDY,
                "STUDIES": Level.STUDY, "SERIES": Level.SERIES, "INSTANCE": Level.INSTANCE,
                "IMAGE": Level.INSTANCE, "INSTANCES": Level.INSTANCE, "IMAGES": Level.INSTANCE}


def parse_level(text: str) -> Level:
    """A resource level as Orthanc reads it (any case, singular or plural, IMAGE for instances)."""
    level = _LEVEL_NAMES.get(text.upper())
    if level is None:
        raise OrthancError(ErrorCode.PARAMETER_OUT_OF_RANGE, f"Invalid resource type '{text}'")
    return level


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


#: The tags Orthanc 1.10.1 also indexes normalized (its ``DicomIdentifiers``): they match
#: without case the way files do, accents included.
_IDENTIFIERS = frozenset({(0x0010, 0x0020), (0x0010, 0x0010), (0x0010, 0x0030), (0x0020, 0x000D),
                          (0x0008, 0x0050), (0x0008, 0x1030), (0x0008, 0x0020), (0x0020, 0x000E),
                          (0x0008, 0x0018)})

_ASCII_UPPER = str.maketrans("abcdefghijklmnopqrstuvwxyz", "ABCDEFGHIJKLMNOPQRSTUVWXYZ")


def ascii_upper_case(text: str) -> str:
    """Upper case for ASCII letters only: SQLite's case-insensitive comparisons, which
    Orthanc 1.10.1's index applies to the other main tags (so ``é`` and ``É`` differ)."""
    return text.translate(_ASCII_UPPER)


def upper_case(text: str) -> str:
    """Orthanc's ``ToUpperCaseWithAccents``: each character to its upper case, accents kept
    (one character for one, so ``ß`` stays ``ß``)."""
    if text.isascii():
        return text.upper()
    return "".join(u if len(u := c.upper()) == 1 else c for c in text)


@dataclass
class Constraint:
    """One constraint of a find: ``matches`` gets the resource's value (None when absent)."""

    tag: Tag
    matches: Callable[[str | None], bool]
    exact: str | None  # the value, when a case-sensitive equality is all there is to check


def make_constraint(tag: Tag, pattern: str, case_sensitive: bool) -> Constraint | None:
    """Orthanc's ``DatabaseLookup`` rules, for ``/tools/find`` and the C-FIND SCP alike.

    None when nothing is constrained (an empty value, or a range with neither bound).
    Ranges on DA, DT and TM; ``\\`` makes a list of values (wildcards taken literally)
    the whole value must be one of; ``*`` and ``?`` are wildcards on text VRs and refused
    elsewhere (400); anything else is an equality.  Without case sensitivity, both sides are
    upper-cased first (see :func:`_case_folding`).  A missing attribute never matches.
    """
    if pattern == "":
        return None
    vr = vr_of(tag)
    norm = (lambda text: text) if case_sensitive else _case_folding(tag)
    has_wildcard = "*" in pattern or "?" in pattern
    exact = None
    check: Callable[[str], bool]
    if vr in _RANGE_VRS and "-" in pattern:
        low, _, high = (norm(bound) for bound in pattern.partition("-"))
        if "*" in low + high or "?" in low + high:
            raise _no_wildcards(tag)
        if not low and not high:
            return None
        check = _range_check(low, high)
    elif "\\" in pattern:
        check = {norm(item) for item in pattern.split("\\")}.__contains__
    elif has_wildcard and vr in WILDCARD_VRS:
        regex = re.compile("".join(".*" if c == "*" else "." if c == "?" else re.escape(c)
                                   for c in norm(pattern)), re.DOTALL)
        check = lambda value: regex.fullmatch(value) is not None  # noqa: E731
    elif has_wildcard:
        raise _no_wildcards(tag)
    else:
        reference = norm(pattern)
        check = lambda value: value == reference  # noqa: E731
        exact = pattern if case_sensitive else None
    return Constraint(tag, _present_and(check, norm), exact)


def _present_and(check: Callable[[str], bool],
                 norm: Callable[[str], str]) -> Callable[[str | None], bool]:
    """A missing attribute never matches (Orthanc's constraints are all mandatory)."""
    return lambda value: value is not None and check(norm(value))


def _lower_level_tag(tag: Tag, level: Level) -> bool:
    """A main tag that only levels below ``level`` index: Orthanc 1.10.1 matches nothing on it."""
    if tag not in ALL_TAGS:
        return False
    return not any(tag in BY_LEVEL[upper] for upper in Level if upper <= level)


def _case_folding(tag: Tag) -> Callable[[str], str]:
    """How a tag ignores case: ASCII letters only for the main tags Orthanc 1.10.1 matches
    in SQLite, every letter for the identifiers and the tags read from the files."""
    if tag in ALL_TAGS and tag not in _IDENTIFIERS:
        return ascii_upper_case
    return upper_case


def _range_check(low: str, high: str) -> Callable[[str], bool]:
    return lambda value: (not low or value >= low) and (not high or value <= high)


def _no_wildcards(tag: Tag) -> OrthancError:
    return OrthancError(ErrorCode.PARAMETER_OUT_OF_RANGE,
                        f"Wildcards are not allowed on tag {tag[0]:04x},{tag[1]:04x}")


def database_limit(config: Any, level: Level) -> int:
    """``LimitFindInstances`` or ``LimitFindResults``: what one find may take from the
    database (0 for no limit), for ``/tools/find`` and C-FIND alike."""
    return int(config["LimitFindInstances"] if level is Level.INSTANCE else config["LimitFindResults"])


def parse_request(body: object) -> tuple[Level, list[Constraint], dict]:
    """A ``/tools/find`` body, checked as Orthanc 1.10.1 does (its messages too);
    ``CaseSensitive`` (default false) applies to every tag."""
    if not isinstance(body, dict):
        raise OrthancError(ErrorCode.BAD_REQUEST, "The body must contain a JSON object")
    if not isinstance(body.get("Level"), str):
        raise OrthancError(ErrorCode.BAD_REQUEST, 'Field "Level" is missing, or should be a string')
    if not isinstance(body.get("Query"), dict):
        raise OrthancError(ErrorCode.BAD_REQUEST,
                           'Field "Query" is missing, or should be a JSON object')
    if not isinstance(body.get("CaseSensitive", False), bool):
        raise OrthancError(ErrorCode.BAD_REQUEST, 'Field "CaseSensitive" should be a Boolean')
    for key in ("Limit", "Since"):
        value = body.get(key, 0)
        if not isinstance(value, int) or isinstance(value, bool):
            raise OrthancError(ErrorCode.BAD_REQUEST, f'Field "{key}" should be an integer')
        if value < 0:
            raise OrthancError(ErrorCode.BAD_REQUEST, f'Field "{key}" should be a positive integer')
    level = parse_level(body["Level"])
    constraints = []
    for name, value in body["Query"].items():
        if not isinstance(value, str):
            raise OrthancError(ErrorCode.BAD_REQUEST,
                               f'Tag "{name}" should be associated with a string')
        constraint = make_constraint(parse_tag(name), value, body.get("CaseSensitive", False))
        if constraint is not None:
            constraints.append(constraint)
    return level, constraints, body


class Finder:
    """Runs a find over the index; non-indexed tags are read from the DICOM files."""

    def __init__(self, index: Index, read_tags: Callable[[Resource], dict[Tag, str]]) -> None:
        self.index = index
        self.read_tags = read_tags

    def find(self, level: Level, constraints: list[Constraint], since: int = 0,
             limit: int = 0, database_limit: int = 0) -> tuple[list[Resource], bool]:
        """(matches after the first ``since``, at most ``limit``; complete).

        As Orthanc 1.10.1 does it: the database stage (the indexed tags) yields at most
        ``database_limit`` + 1 candidates (``LimitFindResults``/``LimitFindInstances``,
        0 for none), the first to have arrived; those are then taken in the order of their
        identifiers (of arrival for instances), filtered by the tags read from the files,
        ``since`` and ``limit``.
        Not complete when either limit cut the list.
        """
        if any(_lower_level_tag(c.tag, level) for c in constraints):
            return [], True
        owners = self._owners(level, constraints)
        indexed = [c for c in constraints if owners[c.tag] is not None
                   or (c.tag == MODALITIES_IN_STUDY and level is Level.STUDY)]
        others = [c for c in constraints if c not in indexed]
        selected, tags = self._database_stage(level, indexed, owners, database_limit)
        complete = not database_limit or len(selected) <= database_limit
        found: list[Resource] = []
        skipped = 0
        selected.sort(key=self._order(level, constraints))
        for resource in selected:
            if not self._matches(resource, tags[resource.internal_id], others, owners, {}):
                continue
            if skipped < since:
                skipped += 1
            elif limit and len(found) >= limit:
                return found, False
            else:
                found.append(resource)
        return found, complete

    def _database_stage(self, level: Level, indexed: list[Constraint],
                        owners: dict[Tag, Level | None], database_limit: int
                        ) -> tuple[list[Resource], dict[int, dict[Tag, str]]]:
        """The first ``database_limit`` + 1 resources (all with 0) that match the indexed
        constraints, with their main tags."""
        in_sql = {c.tag: c.exact for c in indexed if c.exact is not None
                  and c.tag in BY_LEVEL[level] and c.tag not in BY_LEVEL[Level.PATIENT]}
        remaining = [c for c in indexed if c.exact is None or in_sql.get(c.tag) != c.exact]
        candidate_ids = list(self.index.candidates(level, in_sql))
        tags = self.index.main_tags_many(candidate_ids) if candidate_ids else {}
        cache: dict[int, dict[Tag, str]] = {}
        selected: list[Resource] = []
        for internal_id in candidate_ids:
            resource = self._resource(internal_id, level)
            if self._matches(resource, tags[internal_id], remaining, owners, cache):
                selected.append(resource)
                if database_limit and len(selected) > database_limit:
                    break
        return selected, tags

    def _order(self, level: Level, constraints: list[Constraint]) -> Callable[[Resource], Any]:
        """How Orthanc 1.10.1 orders what its database stage found: by identifier (it groups
        them so), but instances in the order of arrival, and studies looked up through their
        series (ModalitiesInStudy) in the order of the index of modalities: by the Modality,
        then the identifier, of their first matching series (as observed on 1.10.1)."""
        modalities = [c for c in constraints if c.tag == MODALITIES_IN_STUDY]
        if level is Level.INSTANCE:
            return lambda resource: 0
        if level is Level.STUDY and modalities:
            return lambda study: min(self._matching_series(study, modalities[0]))
        return lambda resource: resource.public_id

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
            if c.tag == MODALITIES_IN_STUDY and resource.level is Level.STUDY:
                if not self._matching_series(resource, c):
                    return False
                continue
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

    def modalities_in_study(self, study: Resource) -> str:
        """ModalitiesInStudy as Orthanc answers it: the distinct Modality values of the
        study's series, sorted, joined by backslashes."""
        modalities = {self.index.main_tags(series.internal_id).get(MODALITY)
                      for series in self.index.children(study.internal_id)}
        return "\\".join(sorted(m for m in modalities if m is not None))

    def _matching_series(self, study: Resource, constraint: Constraint) -> list[tuple[str, str]]:
        """(Modality, identifier) of the series of a study whose Modality matches a
        constraint on ModalitiesInStudy: Orthanc 1.10.1 looks such a study up through them."""
        found = []
        for series in self.index.children(study.internal_id):
            modality = self.index.main_tags(series.internal_id).get(MODALITY)
            if constraint.matches(modality):
                found.append((modality or "", series.public_id))
        return found

    def _ancestor_tags(self, resource: Resource, level: Level,
                       cache: dict[int, dict[Tag, str]]) -> dict[Tag, str]:
        ancestor = self.index.ancestor(resource, level)
        if ancestor.internal_id not in cache:
            cache[ancestor.internal_id] = self.index.main_tags(ancestor.internal_id)
        return cache[ancestor.internal_id]

    def _file_tags(self, resource: Resource) -> dict[Tag, str]:
        instances = self.index.descendants(resource.internal_id, Level.INSTANCE)
        return self.read_tags(instances[0]) if instances else {}
