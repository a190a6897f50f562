"""Finds (``/tools/find``, ``/tools/count-resources`` and the C-FIND SCP): Orthanc's
matching of DICOM query values against the index, its limits and its order.

A find that asks for nothing of Orthanc 1.12 (labels, a parent, metadata, an ordering) runs
as Orthanc 1.10.1's does: exact values on the level's own main tags are pushed to SQL;
wildcards, ranges, lists, tags of parent levels and ModalitiesInStudy make the rest of the
database stage; tags that are not indexed are read from the files last.  The others run as
one SQL query (filters, labels, parent, metadata, ordering and paging), with the same case
folding, only what SQL cannot tell being checked in Python.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from pydicom.datadict import tag_for_keyword

from server.dicom.dictionary import tag_from_name, vr_without_creator
from server.dicom.main_tags import (
    ALL_TAGS,
    BY_LEVEL,
    BY_NAME,
    FOLDED_IDENTIFIERS,
    Level,
    Tag,
    parse_level,
    upper_case,
)
from server.dicom.wildcards import Wildcard
from server.errors import ErrorCode, OrthancError
from server.labels import sql_filter as label_filter
from server.storage.index import Index, Resource

_RANGE_VRS = {"DA", "DT", "TM"}

#: VRs on which ``*`` and ``?`` are wildcards (DICOM PS3.4 C.2.2.2.4); elsewhere they are refused.
WILDCARD_VRS = frozenset(("AE", "CS", "LO", "LT", "PN", "SH", "ST", "UC", "UR", "UT"))

MODALITY: Tag = (0x0008, 0x0060)
MODALITIES_IN_STUDY: Tag = (0x0008, 0x0061)

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


_ASCII_UPPER = str.maketrans("abcdefghijklmnopqrstuvwxyz", "ABCDEFGHIJKLMNOPQRSTUVWXYZ")


def ascii_upper_case(text: str) -> str:
    """Upper case for ASCII letters only: SQLite's case-insensitive comparisons, which
    Orthanc 1.10.1's index applies to the other main tags (so ``é`` and ``É`` differ)."""
    return text.translate(_ASCII_UPPER)


@dataclass
class Constraint:
    """One constraint of a find: ``matches`` gets the resource's value (None when absent)."""

    tag: Tag
    matches: Callable[[str | None], bool]
    exact: str | None  # the value, when a case-sensitive equality is all there is to check
    #: The same test in SQL on a value column named ``{v}`` (None: only Python can tell).
    sql: tuple[str, list[object]] | None = None
    #: When case is ignored on a tag of ``FOLDED_IDENTIFIERS``: the test in SQL on its
    #: upper-cased value, a column named ``{v}`` of the index's ``DicomIdentifiers``, whose
    #: index serves equalities, lists and wildcards with a literal start.
    folded: tuple[str, list[object]] | None = None


def make_constraint(tag: Tag, pattern: str, case_sensitive: bool) -> Constraint | None:
    """Orthanc's ``DatabaseLookup`` rules, for ``/tools/find`` and the C-FIND SCP alike.

    None when nothing is constrained (an empty value, or a range with neither bound).
    Ranges on DA, DT and TM; ``\\`` makes a list of values (wildcards taken literally)
    the whole value must be one of; ``*`` and ``?`` are wildcards on text VRs and refused
    elsewhere (400); anything else is an equality.  Without case sensitivity, both sides are
    upper-cased first (see :func:`_case_folding`), in SQL as in Python.  A missing attribute
    never matches.
    """
    if pattern == "":
        return None
    vr = vr_of(tag)
    norm = (lambda text: text) if case_sensitive else _case_folding(tag)
    column = "{v}" if case_sensitive else _sql_case_folding(tag)
    has_wildcard = "*" in pattern or "?" in pattern
    exact = None
    folded: tuple[str, list[object]] | None = None
    sql: tuple[str, list[object]] | None = None
    check: Callable[[str], bool]
    if vr in _RANGE_VRS and "-" in pattern:
        low, _, high = (norm(bound) for bound in pattern.partition("-"))
        if "*" in low + high or "?" in low + high:
            raise _no_wildcards(tag)
        if not low and not high:
            return None
        check = _range_check(low, high)
        # Dates and times have no letters: comparing them needs no upper-casing in SQL.
        bounds = [("{v}>=?", low)] * bool(low) + [("{v}<=?", high)] * bool(high)
        sql = " AND ".join(b[0] for b in bounds), [b[1] for b in bounds]
    elif "\\" in pattern:
        options = {norm(item) for item in pattern.split("\\")}
        check = options.__contains__
        sql = f"{column} IN ({','.join('?' * len(options))})", sorted(options)
        folded = f"{{v}} IN ({','.join('?' * len(options))})", sorted(options)
    elif has_wildcard and vr in WILDCARD_VRS:
        wildcard = Wildcard(norm(pattern))
        check = wildcard.matches
        sql = f"{column} GLOB ?", [wildcard.glob()]
        folded = "{v} GLOB ?", [wildcard.glob()]
    elif has_wildcard:
        raise _no_wildcards(tag)
    else:
        reference = norm(pattern)
        check = lambda value: value == reference  # noqa: E731
        exact = pattern if case_sensitive else None
        sql = f"{column}=?", [reference]
        folded = "{v}=?", [reference]
    if case_sensitive or tag not in FOLDED_IDENTIFIERS:
        folded = None
    return Constraint(tag, _present_and(check, norm), exact, sql, folded)


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
    if tag in ALL_TAGS and tag not in FOLDED_IDENTIFIERS:
        return ascii_upper_case
    return upper_case


def _sql_case_folding(tag: Tag) -> str:
    """:func:`_case_folding` in SQL, on a value column named ``{v}``: SQLite's own ``upper``
    changes ASCII letters only, ``orthanc_upper`` is :func:`upper_case`."""
    return "upper({v})" if _case_folding(tag) is ascii_upper_case else "orthanc_upper({v})"


def _ancestor_sql(depth: int) -> str:
    """The internal id of the ancestor ``depth`` levels above the row of ``Resources``
    being filtered (0: the row itself)."""
    expression = "Resources.internalId" if depth == 0 else "Resources.parentId"
    for step in range(1, depth):
        expression = f"(SELECT a{step}.parentId FROM Resources a{step} WHERE a{step}.internalId={expression})"
    return expression


def _page(matching: Iterable[Resource], since: int, limit: int) -> tuple[list[Resource], bool]:
    """(at most ``limit`` of ``matching`` after its first ``since``; whether more were left)."""
    found: list[Resource] = []
    skipped = 0
    for resource in matching:
        if skipped < since:
            skipped += 1
        elif limit and len(found) >= limit:
            return found, True
        else:
            found.append(resource)
    return found, False


def _range_check(low: str, high: str) -> Callable[[str], bool]:
    return lambda value: (not low or value >= low) and (not high or value <= high)


def _no_wildcards(tag: Tag) -> OrthancError:
    return OrthancError(ErrorCode.PARAMETER_OUT_OF_RANGE,
                        f"Wildcards are not allowed on tag {tag[0]:04x},{tag[1]:04x}")


def database_limit(config: Any, level: Level) -> int:
    """``LimitFindInstances`` or ``LimitFindResults``: what one find may take from the
    database (0 for no limit), for ``/tools/find`` and C-FIND alike."""
    return int(config["LimitFindInstances"] if level is Level.INSTANCE else config["LimitFindResults"])


@dataclass
class Ordering:
    """One ``OrderBy`` item of ``/tools/find`` (Orthanc 1.12.5): a main tag or a metadata,
    compared as text, integer or real number."""

    tag: Tag | None
    metadata: int | None
    cast: str  # "TEXT", "INTEGER" or "REAL", as SQLite's CAST names them
    descending: bool


@dataclass
class FindOptions:
    """What the 1.12+ ``/tools/find`` adds to the DICOM query: labels, a parent, metadata
    constraints and the ordering.  Every part of it is answered in SQL."""

    labels: list[str] = field(default_factory=list)
    labels_constraint: str = "All"
    parent: tuple[Level, str] | None = None  # ParentPatient, ParentStudy or ParentSeries
    metadata: list[tuple[int, Constraint]] = field(default_factory=list)
    order_by: list[Ordering] = field(default_factory=list)

    def extended(self) -> bool:
        """Whether anything here goes beyond Orthanc 1.10.1's find (``None`` without labels
        asks for the resources without any)."""
        return bool(self.labels or self.labels_constraint == "None" or self.parent is not None
                    or self.metadata or self.order_by)


_ORDER_CASTS = {"": "TEXT", "asint": "INTEGER", "asfloat": "REAL"}


def parse_request(body: object) -> tuple[Level, list[Constraint], dict[str, Any]]:
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


def parse_options(body: dict[str, Any], metadata_number: Callable[[str], int]) -> FindOptions:
    """The 1.12+ fields of a ``/tools/find`` or ``/tools/count-resources`` body, with
    Orthanc's messages; ``metadata_number`` resolves metadata names (UserMetadata too)."""
    options = FindOptions()
    labels = body.get("Labels", [])
    if not isinstance(labels, list):
        raise OrthancError(ErrorCode.BAD_REQUEST, 'Field "Labels" must be an array of strings')
    if not all(isinstance(label, str) for label in labels):
        raise OrthancError(ErrorCode.BAD_REQUEST, 'Field "Labels" must contain strings')
    options.labels = labels
    constraint = body.get("LabelsConstraint", "All")
    if not isinstance(constraint, str):
        raise OrthancError(ErrorCode.BAD_REQUEST,
                           'Field "LabelsConstraint" must be an array of strings')
    if constraint not in ("All", "Any", "None"):
        raise OrthancError(ErrorCode.BAD_REQUEST,
                           'Field "LabelsConstraint" must be "All", "Any", or "None"')
    options.labels_constraint = constraint
    for key, parent_level in (("ParentPatient", Level.PATIENT), ("ParentStudy", Level.STUDY),
                              ("ParentSeries", Level.SERIES)):
        if key in body and not isinstance(body[key], str):
            raise OrthancError(ErrorCode.BAD_REQUEST, f'Field "{key}" must be a string')
        if key in body and options.parent is None:
            options.parent = parent_level, body[key]
    query = body.get("MetadataQuery", {})
    if not isinstance(query, dict):
        raise OrthancError(ErrorCode.BAD_REQUEST, 'Field "MetadataQuery" must be an JSON object')
    case_sensitive = bool(body.get("CaseSensitive", False))
    for name, value in query.items():
        if not isinstance(value, str):
            raise OrthancError(ErrorCode.BAD_REQUEST,
                               f'Tag "{name}" must be associated with a string')
        number = metadata_number(name)
        if value:
            options.metadata.append((number, _metadata_constraint(value, case_sensitive)))
    order_by = body.get("OrderBy", [])
    if not isinstance(order_by, list):
        raise OrthancError(ErrorCode.BAD_REQUEST, 'Field "OrderBy" must be an array')
    options.order_by = [_parse_ordering(item, metadata_number) for item in order_by]
    return options


def _metadata_constraint(pattern: str, case_sensitive: bool) -> Constraint:
    """Orthanc's ``DatabaseMetadataConstraint``: a ``\\`` list, a wildcard, or an equality."""
    norm = (lambda text: text) if case_sensitive else upper_case
    column = "{v}" if case_sensitive else "orthanc_upper({v})"
    check: Callable[[str], bool]
    if "\\" in pattern:
        options = {norm(item) for item in pattern.split("\\")}
        check = options.__contains__
        sql: tuple[str, list[object]] = (f"{column} IN ({','.join('?' * len(options))})",
                                          sorted(options))
    elif "*" in pattern or "?" in pattern:
        wildcard = Wildcard(norm(pattern))
        check = wildcard.matches
        sql = f"{column} GLOB ?", [wildcard.glob()]
    else:
        reference = norm(pattern)
        check = lambda value: value == reference  # noqa: E731
        sql = f"{column}=?", [reference]
    return Constraint((0, 0), _present_and(check, norm), pattern if case_sensitive else None, sql)


def _parse_ordering(item: object, metadata_number: Callable[[str], int]) -> Ordering:
    if not isinstance(item, dict):
        raise OrthancError(ErrorCode.BAD_REQUEST, 'Field "OrderBy" must contain objects')
    key, direction, kind = item.get("Key"), item.get("Direction"), item.get("Type")
    if not isinstance(key, str):
        raise OrthancError(ErrorCode.BAD_REQUEST, 'Field "Key" must be a string')
    if not isinstance(direction, str) or direction.lower() not in ("asc", "desc"):
        raise OrthancError(ErrorCode.BAD_REQUEST, 'Field "Direction" must be "ASC" or "DESC"')
    if not isinstance(kind, str):
        raise OrthancError(ErrorCode.BAD_REQUEST,
                           'Field "Type" must be "DicomTag" or "Metadata"')
    descending = direction.lower() == "desc"
    lowered = kind.lower()
    if lowered.startswith("dicomtag"):
        cast = _ORDER_CASTS.get(lowered[len("dicomtag"):], "TEXT")
        return Ordering(parse_tag(key), None, cast, descending)
    if lowered.startswith("metadata"):
        cast = _ORDER_CASTS.get(lowered[len("metadata"):], "TEXT")
        return Ordering(None, metadata_number(key), cast, descending)
    raise OrthancError(ErrorCode.BAD_REQUEST,
                       'Field "Type" must be "DicomTag", "DicomTagAsInt", "DicomTagAsFloat" or '
                       '"Metadata", "MetadataAsInt", "MetadataAsFloat"')


class Finder:
    """Runs a find over the index: Orthanc 1.10.1's stages for a DICOM query alone, one SQL
    query (filters, labels, parent, ordering, paging) for the 1.12+ options; what SQL cannot
    tell (tags no level indexes, ModalitiesInStudy) is checked here, reading the DICOM files
    as a last resort."""

    def __init__(self, index: Index, read_tags: Callable[[Resource], dict[Tag, str]]) -> None:
        self.index = index
        self.read_tags = read_tags

    def find(self, level: Level, constraints: list[Constraint], since: int = 0, limit: int = 0,
             options: FindOptions | None = None,
             database_limit: int = 0) -> tuple[list[Resource], bool]:
        """(matches after the first ``since``, at most ``limit``; complete).

        Without 1.12 ``options``, as Orthanc 1.10.1 does it: the database stage (the indexed
        tags) yields at most ``database_limit`` + 1 candidates (``LimitFindResults``/
        ``LimitFindInstances``, 0 for none), the first to have arrived; those are then taken
        in the order of their identifiers (of arrival for instances), filtered by the tags
        read from the files, ``since`` and ``limit``.  With them, in the order they ask
        (then of arrival), ``database_limit`` bounding the answer when ``limit`` does not.
        Not complete when a limit cut the list.
        """
        if options is not None and options.extended():
            return self._find_in_sql(level, constraints, since, limit, options, database_limit)
        if any(_lower_level_tag(c.tag, level) for c in constraints):
            return [], True
        owners = self._owners(level, constraints)
        indexed = [c for c in constraints if owners[c.tag] is not None
                   or (c.tag == MODALITIES_IN_STUDY and level is Level.STUDY)]
        others = [c for c in constraints if c not in indexed]
        with self.index.reading():  # one snapshot: a delete must not land between the stage's reads
            selected, tags = self._database_stage(level, indexed, owners, database_limit)
        complete = not database_limit or len(selected) <= database_limit
        selected.sort(key=self._order(level, constraints))
        found, cut = _page((r for r in selected
                            if self._matches(r, tags[r.internal_id], others, owners, {})), since, limit)
        return found, complete and not cut

    def _database_stage(self, level: Level, indexed: list[Constraint],
                        owners: dict[Tag, Level | None], database_limit: int
                        ) -> tuple[list[Resource], dict[int, dict[Tag, str]]]:
        """The first ``database_limit`` + 1 resources (all with 0) that match the indexed
        constraints, with their main tags."""
        own = [c for c in indexed if owners[c.tag] is level]  # what _matches reads in the resource's own tags
        in_sql = {c.tag: c.exact for c in own if c.exact is not None}
        folded = {c.tag: c.folded for c in own if c.folded is not None}
        # the others that SQL can test too (ranges...): fewer candidates to read and match
        tested = {c.tag: c.sql for c in own if c.exact is None and c.folded is None and c.sql is not None}
        remaining = [c for c in indexed if c.exact is None or in_sql.get(c.tag) != c.exact]
        candidate_ids = list(self.index.candidates(level, in_sql, folded, tested))
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

    def _find_in_sql(self, level: Level, constraints: list[Constraint], since: int, limit: int,
                     options: FindOptions, database_limit: int) -> tuple[list[Resource], bool]:
        """A find with 1.12 options: one SQL query, paged in SQL when Python has nothing
        left to check."""
        query = self._query(level, constraints, options)
        if query is None:
            return [], True
        sql, args, remaining = query
        bound = limit or database_limit
        select = "SELECT internalId, publicId, parentId FROM Resources " + sql
        if not remaining:
            if bound:
                select += " LIMIT ? OFFSET ?"
                args = [*args, bound + 1, since]
            elif since:
                select += " LIMIT -1 OFFSET ?"
                args = [*args, since]
            with self.index.reading() as db:
                rows = db.execute(select, args).fetchall()
            found = [Resource(r[0], level, r[1], r[2]) for r in rows]
            return (found[:bound], False) if bound and len(found) > bound else (found, True)
        with self.index.reading() as db:
            rows = db.execute(select, args).fetchall()
        owners = self._owners(level, remaining)
        tags = self.index.main_tags_many([r[0] for r in rows]) if rows else {}
        ancestors_cache: dict[int, dict[Tag, str]] = {}
        candidates = (Resource(internal_id, level, public_id, parent_id)
                      for internal_id, public_id, parent_id in rows)
        found, cut = _page((r for r in candidates
                            if self._matches(r, tags[r.internal_id], remaining, owners, ancestors_cache)),
                           since, bound)
        return found, not cut

    def fully_in_index(self, level: Level, constraints: list[Constraint]) -> bool:
        """Orthanc's ``CanBeFullyPerformedInDb``: no constraint needs the DICOM files."""
        owners = self._owners(level, constraints)
        return all(owners[c.tag] is not None or (
            c.tag == MODALITIES_IN_STUDY and level is Level.STUDY) for c in constraints)

    def count(self, level: Level, constraints: list[Constraint],
              options: FindOptions | None = None) -> int:
        """``/tools/count-resources``: a ``COUNT(*)``, refused (as Orthanc does) when the
        files would have to be read."""
        if not self.fully_in_index(level, constraints):
            raise OrthancError(ErrorCode.BAD_REQUEST,
                               "Unable to count resources when querying tags that are not stored "
                               "as MainDicomTags in the Database or when using case sensitive "
                               "queries.")
        options = options or FindOptions()
        query = self._query(level, constraints, FindOptions(
            options.labels, options.labels_constraint, options.parent, options.metadata))
        if query is None:
            return 0
        sql, args, remaining = query
        if remaining:
            return len(self.find(level, constraints, options=options)[0])
        with self.index.reading() as db:
            return int(db.execute("SELECT COUNT(*) FROM (SELECT internalId FROM Resources "
                                  f"{sql}) AS found", args).fetchone()[0])

    def _query(self, level: Level, constraints: list[Constraint],
               options: FindOptions) -> tuple[str, list[object], list[Constraint]] | None:
        """The ``WHERE ... ORDER BY`` of a find, its arguments and the constraints left to
        Python; None when nothing can match."""
        if any(_lower_level_tag(c.tag, level) for c in constraints):
            return None
        owners = self._owners(level, constraints)
        where = ["resourceType=?"]
        args: list[object] = [int(level)]
        remaining: list[Constraint] = []
        for c in constraints:
            owner = owners[c.tag]
            if c.sql is None or owner is None or (
                    c.tag == MODALITIES_IN_STUDY and level is Level.STUDY):
                remaining.append(c)
            elif owner is level and c.folded is not None:
                condition, values = c.folded
                where.append(f"internalId IN (SELECT f.id FROM DicomIdentifiers f WHERE f.tagGroup=? "
                             f"AND f.tagElement=? AND {condition.format(v='f.value')})")
                args += [c.tag[0], c.tag[1], *values]
            elif owner is level:  # the index on (tag, value) serves equalities and ranges
                condition, values = c.sql
                where.append(f"internalId IN (SELECT m.id FROM MainDicomTags m WHERE "
                             f"m.tagGroup=? AND m.tagElement=? AND {condition.format(v='m.value')})")
                args += [c.tag[0], c.tag[1], *values]
            else:
                condition, values = c.sql
                where.append(f"EXISTS (SELECT 1 FROM MainDicomTags m WHERE "
                             f"m.id={_ancestor_sql(level - owner)} AND m.tagGroup=? AND "
                             f"m.tagElement=? AND {condition.format(v='m.value')})")
                args += [c.tag[0], c.tag[1], *values]
        labels_sql, labels_args = label_filter(options.labels, options.labels_constraint)
        if labels_sql:
            where.append(labels_sql)
            args += labels_args
        for kind, constraint in options.metadata:
            assert constraint.sql is not None
            condition, values = constraint.sql
            where.append(f"EXISTS (SELECT 1 FROM Metadata d WHERE d.id=Resources.internalId "
                         f"AND d.type=? AND {condition.format(v='d.value')})")
            args += [kind, *values]
        if options.parent is not None:
            parent = self.index.lookup(options.parent[1], options.parent[0])
            if parent is None or parent.level > level:
                return None
            where.append(f"{_ancestor_sql(level - parent.level)}=?")
            args.append(parent.internal_id)
        joins: list[str] = []
        join_args: list[object] = []
        order = []
        for number, ordering in enumerate(options.order_by):
            found = self._order_join(level, ordering, f"o{number}")
            if found is not None:  # missing values last, whatever the direction
                join, values, expression = found
                joins.append(join)
                join_args += values
                order.append(f"{expression} IS NULL, {expression}"
                             + (" DESC" if ordering.descending else ""))
        order.append("internalId")
        return (f"{' '.join(joins)} WHERE {' AND '.join(where)} ORDER BY {', '.join(order)}",
                join_args + args, remaining)

    def _order_join(self, level: Level, ordering: Ordering,
                    alias: str) -> tuple[str, list[object], str] | None:
        """The ``LEFT JOIN`` bringing the value an ``OrderBy`` item sorts on, its arguments
        and the expression to sort on; None for a tag no level indexes (Orthanc sorts on
        what its database holds)."""
        if ordering.metadata is not None:
            join = (f"LEFT JOIN Metadata {alias} ON {alias}.id=Resources.internalId "
                    f"AND {alias}.type=?")
            args: list[object] = [ordering.metadata]
        else:
            assert ordering.tag is not None
            owner = self._owners(level, [Constraint(ordering.tag, bool, None)])[ordering.tag]
            if owner is None:
                return None
            join = (f"LEFT JOIN MainDicomTags {alias} ON {alias}.id={_ancestor_sql(level - owner)} "
                    f"AND {alias}.tagGroup=? AND {alias}.tagElement=?")
            args = [ordering.tag[0], ordering.tag[1]]
        value = f"{alias}.value"
        return join, args, value if ordering.cast == "TEXT" else f"CAST({value} AS {ordering.cast})"

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
