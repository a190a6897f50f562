"""``RequestedTags`` (``/tools/find``) and ``?requested-tags=`` (listings and views): tags
a client wants beside the main ones, Orthanc 1.11+.

Values come from the counters Orthanc computes (ModalitiesInStudy, NumberOf...Related...,
InstanceAvailability), from the index when the resource or one of its ancestors indexes
the tag and, last, from the DICOM file of one instance of the resource (sequences
included).  A tag found nowhere is null, as in Orthanc 1.12.5.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from server.dicom import json_format
from server.dicom.dictionary import tag_name
from server.dicom.json_format import Json
from server.dicom.main_tags import (
    PATIENT_INSTANCES,
    PATIENT_SERIES,
    PATIENT_STUDIES,
    SERIES_INSTANCES,
    SOP_CLASSES_IN_STUDY,
    STUDY_INSTANCES,
    STUDY_SERIES,
    Level,
    Tag,
    format_tag,
)
from server.errors import ErrorCode, OrthancError
from server.find import MODALITIES_IN_STUDY, Finder, parse_tag
from server.storage.index import Index, Metadata, Resource

INSTANCE_AVAILABILITY: Tag = (0x0008, 0x0056)

#: The tags Orthanc computes, and the level whose resources they describe (only those:
#: requested elsewhere, they are left out, as by Orthanc's ``ResourceFinder``).
COMPUTED: dict[Tag, Level] = {
    INSTANCE_AVAILABILITY: Level.INSTANCE,
    MODALITIES_IN_STUDY: Level.STUDY, SOP_CLASSES_IN_STUDY: Level.STUDY,
    PATIENT_STUDIES: Level.PATIENT, PATIENT_SERIES: Level.PATIENT,
    PATIENT_INSTANCES: Level.PATIENT, STUDY_SERIES: Level.STUDY,
    STUDY_INSTANCES: Level.STUDY, SERIES_INSTANCES: Level.SERIES,
}


def parse_list(names: object) -> list[Tag]:
    """A ``RequestedTags`` array (names or ``gggg,eeee``), in the order given, once each."""
    if not isinstance(names, list):
        raise OrthancError(ErrorCode.BAD_REQUEST, 'Field "RequestedTags" must be an array')
    tags: list[Tag] = []
    for name in names:
        if not isinstance(name, str):
            raise OrthancError(ErrorCode.BAD_REQUEST, 'Field "RequestedTags" must be an array')
        tag = parse_tag(name)
        if tag not in tags:
            tags.append(tag)
    return tags


def parse_argument(text: str | None) -> list[Tag]:
    """``?requested-tags=PatientName;0008,0020``: names separated by semicolons."""
    if not text:
        return []
    return parse_list([name for name in text.split(";") if name.strip()])


class RequestedTags:
    """Reads the requested tags of resources, with as few file reads as the tags allow."""

    def __init__(self, index: Index, finder: Finder,
                 read_full: Callable[[Resource], Json]) -> None:
        self.index = index
        self.finder = finder
        self.read_full = read_full

    def full(self, resource: Resource, tags: list[Tag]) -> Json:
        """The requested tags as full-format nodes, in the order asked; a tag found nowhere
        is a null (Orthanc 1.12.5's ``SetNullValue``)."""
        nodes: dict[Tag, Json] = {}
        indexed = self._indexed(resource)
        missing: list[Tag] = []
        for tag in tags:
            if COMPUTED.get(tag) is resource.level:
                nodes[tag] = _string(tag, self._computed(resource, tag))
            elif tag in indexed:
                nodes[tag] = _string(tag, indexed[tag])
            elif tag not in COMPUTED:
                missing.append(tag)
        if missing:
            instances = self.index.descendants(resource.internal_id, Level.INSTANCE)
            from_file = self.read_full(instances[0]) if instances else {}
            for tag in missing:
                nodes[tag] = from_file.get(format_tag(tag)) or {
                    "Name": tag_name(*tag), "Type": "Null", "Value": None}
        return {format_tag(tag): nodes[tag] for tag in tags if tag in nodes}

    def add_to(self, views: list[dict[str, Any]], resources: list[Resource], tags: list[Tag],
               fmt: str = "simplify") -> list[dict[str, Any]]:
        """Each view with the ``RequestedTags`` of its resource, when tags were requested."""
        if tags:
            for view, resource in zip(views, resources, strict=True):
                view["RequestedTags"] = self.as_json(resource, tags, fmt)
        return views

    def as_json(self, resource: Resource, tags: list[Tag], fmt: str = "simplify") -> Json:
        """The ``RequestedTags`` object, in the answer's format (simplify, short, full)."""
        return json_format.render(self.full(resource, tags), fmt)

    def _indexed(self, resource: Resource) -> dict[Tag, str]:
        """The main tags of the resource and of its ancestors (the nearest wins)."""
        values: dict[Tag, str] = {}
        current: Resource | None = resource
        while current is not None:
            for tag, value in self.index.main_tags(current.internal_id).items():
                values.setdefault(tag, value)
            current = self.index.parent(current)
        return values

    def _computed(self, resource: Resource, tag: Tag) -> str:
        index = self.index
        if tag == INSTANCE_AVAILABILITY:
            return "ONLINE"
        if tag == MODALITIES_IN_STUDY:
            return self.finder.modalities_in_study(resource) or ""
        if tag == SOP_CLASSES_IN_STUDY:
            instances = index.descendants(resource.internal_id, Level.INSTANCE)
            classes = {index.metadata(i.internal_id).get(Metadata.SopClassUid) for i in instances}
            return "\\".join(sorted(c for c in classes if c))
        below = {PATIENT_STUDIES: Level.STUDY, PATIENT_SERIES: Level.SERIES,
                 PATIENT_INSTANCES: Level.INSTANCE, STUDY_SERIES: Level.SERIES,
                 STUDY_INSTANCES: Level.INSTANCE, SERIES_INSTANCES: Level.INSTANCE}[tag]
        return str(len(index.descendants(resource.internal_id, below)))


def _string(tag: Tag, value: str) -> Json:
    return {"Name": tag_name(*tag), "Type": "String", "Value": value}
