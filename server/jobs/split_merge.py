"""SplitStudy and MergeStudy jobs (``POST /studies/{id}/split`` and ``/studies/{id}/merge``).

Both move instances into another study by rewriting them (new SeriesInstanceUID per source
series, new SOPInstanceUID, the target's study and patient tags) and, unless ``KeepSource``,
delete the originals.  They publish their results all at once, with the consistency
guarantees described in :mod:`server.jobs.modification`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from server.dicom import uids
from server.dicom.dictionary import tag_name
from server.dicom.encode import format_tag, parse_tag
from server.dicom.json_format import dataset_decoder, tag_text
from server.dicom.main_tags import Level
from server.dicom.modify import (
    SERIES_INSTANCE_UID,
    SOP_INSTANCE_UID,
    STUDY_INSTANCE_UID,
    Editor,
    identifiers,
    write_file,
)
from server.errors import ErrorCode, OrthancError
from server.jobs.modification import ModificationServices, PublishingJob, Staged, public_ids, read_instance
from server.storage.index import Resource
from server.store import Origin

if TYPE_CHECKING:
    from pydicom.dataset import Dataset

#: Orthanc's ``DicomModule_Patient`` (PS 3.3 2011, Table C.7-1 and the Issuer of Patient ID macro).
PATIENT_MODULE = frozenset({
    0x00100010, 0x00100020, 0x00100030, 0x00100040, 0x00081120, 0x00100032, 0x00101000, 0x00101002,
    0x00101001, 0x00102160, 0x00104000, 0x00102201, 0x00102202, 0x00102292, 0x00102293, 0x00102294,
    0x00102297, 0x00102298, 0x00102299, 0x00120062, 0x00120063, 0x00120064, 0x00100021, 0x00100024,
})

#: Orthanc's ``DicomModule_Study`` (PS 3.3 2011, Table C.7-3).
STUDY_MODULE = frozenset({
    0x0020000D, 0x00080020, 0x00080030, 0x00080090, 0x00080096, 0x00200010, 0x00080050, 0x00080051,
    0x00081030, 0x00081048, 0x00081049, 0x00081060, 0x00081062, 0x00321034, 0x00081110, 0x00081032,
    0x00401012,
})

#: What a split may replace or remove in the new study.
SPLIT_TAGS = (PATIENT_MODULE | STUDY_MODULE) - {STUDY_INSTANCE_UID, SERIES_INSTANCE_UID}


class StudyRewriteJob(PublishingJob):
    """Rewrites instances into another study: removals, plain replacements, new series/SOP UIDs."""

    def __init__(self, services: ModificationServices, instances: list[str], replacements: dict[int, str],
                 removals: list[int], series_uids: dict[str, str], **kwargs: Any) -> None:
        super().__init__(services, instances, **kwargs)
        self.replacements = replacements
        self.removals = removals
        self.series_uids = series_uids

    def rewritten(self, instance_id: str, study_uid: str | None) -> Dataset:
        try:
            resource, ds = read_instance(self.services, instance_id)
        except OrthancError:
            raise OrthancError(ErrorCode.INTERNAL,
                               f"An instance was removed after the job was issued: {instance_id}") from None
        parent = self.services.index.parent(resource)
        target_series = self.series_uids.get(parent.public_id if parent else "")
        if target_series is None:
            raise OrthancError(ErrorCode.BAD_FILE_FORMAT)
        editor = Editor(ds, self.services.default_encoding)
        for tag in self.removals:
            ds.pop(tag, None)
        for tag in sorted(self.replacements):
            editor.set_plain(tag, self.replacements[tag])
        if study_uid is not None:
            editor.set_string(ds, STUDY_INSTANCE_UID, "UI", study_uid)
        editor.set_string(ds, SERIES_INSTANCE_UID, "UI", target_series)
        editor.set_string(ds, SOP_INSTANCE_UID, "UI", uids.generate(Level.INSTANCE))
        return ds

    def serialize(self) -> dict[str, Any]:
        return {**super().serialize(), "Removals": self.removals, "SeriesUIDMap": self.series_uids,
                "Replacements": {format_tag(tag): value for tag, value in self.replacements.items()}}

    @staticmethod
    def rewrite_arguments(data: dict[str, Any]) -> dict[str, Any]:
        return {**PublishingJob.publishing_arguments(data), "removals": data["Removals"],
                "series_uids": data["SeriesUIDMap"],
                "replacements": {parse_tag(tag): value for tag, value in data["Replacements"].items()}}


class SplitStudyJob(StudyRewriteJob):
    TYPE = "SplitStudy"

    def __init__(self, services: ModificationServices, instances: list[str], source_study: str, target_study_uid: str,
                 target_study: str = "", **kwargs: Any) -> None:
        super().__init__(services, instances, **kwargs)
        self.source_study = source_study
        self.target_study_uid = target_study_uid
        self.target_study = target_study

    def rewrite(self, instance_id: str) -> Staged:
        ds = self.rewritten(instance_id, self.target_study_uid)
        if not self.target_study:
            self.target_study = public_ids(identifiers(ds, self.services.default_encoding))[Level.STUDY]
        return Staged(write_file(ds), {})

    def content(self) -> dict[str, Any]:
        result = super().content()
        if self.target_study:
            result["TargetStudy"] = self.target_study
        result["TargetStudyUID"] = self.target_study_uid
        return result

    def serialize(self) -> dict[str, Any]:
        return {**super().serialize(), "SourceStudy": self.source_study, "TargetStudy": self.target_study,
                "TargetStudyUID": self.target_study_uid}

    @staticmethod
    def unserialize(services: ModificationServices, data: dict[str, Any]) -> SplitStudyJob:
        data = PublishingJob.saved_state(services, data)
        job = SplitStudyJob(services, source_study=data["SourceStudy"], target_study_uid=data["TargetStudyUID"],
                            target_study=data["TargetStudy"], **StudyRewriteJob.rewrite_arguments(data))
        job.restore(data)
        return job


class MergeStudyJob(StudyRewriteJob):
    TYPE = "MergeStudy"

    def __init__(self, services: ModificationServices, instances: list[str], target_study: str, **kwargs: Any) -> None:
        super().__init__(services, instances, **kwargs)
        self.target_study = target_study

    def rewrite(self, instance_id: str) -> Staged:
        return Staged(write_file(self.rewritten(instance_id, None)), {})

    def content(self) -> dict[str, Any]:
        return {**super().content(), "TargetStudy": self.target_study}

    def serialize(self) -> dict[str, Any]:
        return {**super().serialize(), "TargetStudy": self.target_study}

    @staticmethod
    def unserialize(services: ModificationServices, data: dict[str, Any]) -> MergeStudyJob:
        data = PublishingJob.saved_state(services, data)
        job = MergeStudyJob(services, target_study=data["TargetStudy"], **StudyRewriteJob.rewrite_arguments(data))
        job.restore(data)
        return job


# -- building the jobs from requests (Orthanc's checks, in Orthanc's order) --------------------


@dataclass(frozen=True)
class SplitRequest:
    """A ``/studies/{id}/split`` request (parsed by :mod:`server.rest.requests`); ``removals`` and
    ``replacements`` are already checked against :data:`SPLIT_TAGS`."""

    series: tuple[str, ...] = ()
    instances: tuple[str, ...] = ()
    keep_source: bool = False
    removals: tuple[int, ...] = ()
    replacements: dict[int, str] = field(default_factory=dict)
    permissive: bool = False


@dataclass(frozen=True)
class MergeRequest:
    """A ``/studies/{id}/merge`` request (parsed by :mod:`server.rest.requests`)."""

    resources: tuple[str, ...]
    keep_source: bool = False
    permissive: bool = False


def existing_study(services: ModificationServices, study_id: str, merge: bool) -> Resource:
    """The study a split or merge is about: Orthanc looks it up before it reads the request."""
    study = services.index.lookup(study_id, Level.STUDY)
    if study is None:
        raise OrthancError(ErrorCode.UNKNOWN_RESOURCE, f"Cannot merge into an unknown study: {study_id}" if merge
                           else f"Cannot split unknown study {study_id}")
    return study


def _split_series(services: ModificationServices, study: Resource, series_id: str) -> Resource:
    series = services.index.lookup(series_id, Level.SERIES)
    if series is None or series.parent_internal_id != study.internal_id:
        raise OrthancError(ErrorCode.UNKNOWN_RESOURCE,
                           f"This series does not belong to the study to be split: {series_id}")
    return series


def _split_instance_series(services: ModificationServices, study: Resource, instance_id: str) -> Resource:
    series = _parent(services, services.index.lookup(instance_id, Level.INSTANCE))
    if series is None or series.parent_internal_id != study.internal_id:
        raise OrthancError(ErrorCode.UNKNOWN_RESOURCE,
                           f"This instance does not belong to the study to be split: {instance_id}")
    return series


def check_split_sources(services: ModificationServices, study_id: str, field: str, public_ids: list[str]) -> None:
    """The ``Series`` or ``Instances`` of a split request must belong to the study: Orthanc checks
    them as it reads the request (:func:`server.rest.requests.split_request` calls this)."""
    study = existing_study(services, study_id, merge=False)
    check = _split_series if field == "Series" else _split_instance_series
    for public_id in public_ids:
        check(services, study, public_id)


def check_merge_sources(services: ModificationServices, study_id: str, public_ids: list[str]) -> None:
    """The ``Resources`` of a merge request must exist outside the target: Orthanc checks them as
    it reads the request (:func:`server.rest.requests.merge_request` calls this)."""
    for public_id in public_ids:
        _merge_source(services, study_id, public_id)


def split_job(services: ModificationServices, study_id: str, request: SplitRequest, origin: Origin) -> SplitStudyJob:
    study = existing_study(services, study_id, merge=False)
    instances: list[str] = []
    series_uids: dict[str, str] = {}
    for series_id in request.series:
        series = _split_series(services, study, series_id)
        series_uids.setdefault(series_id, uids.generate(Level.SERIES))
        instances += services.index.children_ids(series.internal_id)
    for instance_id in request.instances:
        series = _split_instance_series(services, study, instance_id)
        series_uids.setdefault(series.public_id, uids.generate(Level.SERIES))
        instances.append(instance_id)
    return SplitStudyJob(services, instances, source_study=study_id,
                         target_study_uid=uids.generate(Level.STUDY), replacements=dict(request.replacements),
                         removals=list(request.removals), series_uids=series_uids, origin=origin,
                         keep_source=request.keep_source, permissive=request.permissive)


def merge_job(services: ModificationServices, study_id: str, request: MergeRequest, origin: Origin) -> MergeStudyJob:
    target = existing_study(services, study_id, merge=True)
    replacements, removals = _target_module_tags(services, target)
    instances: list[str] = []
    series_uids: dict[str, str] = {}
    for public_id in request.resources:
        for series_id, children in _merge_source(services, study_id, public_id):
            series_uids.setdefault(series_id, uids.generate(Level.SERIES))
            instances += children
    return MergeStudyJob(services, instances, target_study=study_id, replacements=replacements, removals=removals,
                         series_uids=series_uids, origin=origin, keep_source=request.keep_source,
                         permissive=request.permissive)


def _parent(services: ModificationServices, resource: Resource | None) -> Resource | None:
    return None if resource is None else services.index.parent(resource)


def _merge_source(services: ModificationServices, study_id: str, public_id: str) -> list[tuple[str, list[str]]]:
    """(source series, its instances to move) for one resource of a merge request."""
    resource = services.index.lookup(public_id)
    if resource is None:
        raise OrthancError(ErrorCode.UNKNOWN_RESOURCE, f"Cannot find this resource: {public_id}")
    if resource.level is Level.STUDY:
        if public_id == study_id:
            raise OrthancError(ErrorCode.UNKNOWN_RESOURCE, f"Cannot merge a study into the same study: {study_id}")
        return [(series.public_id, services.index.children_ids(series.internal_id))
                for series in services.index.children(resource.internal_id)]
    if resource.level is Level.SERIES:
        study = _parent(services, resource)
        if study is not None and study.public_id == study_id:
            raise OrthancError(ErrorCode.UNKNOWN_RESOURCE,
                               f"Cannot merge series {public_id} into its parent study {study_id}")
        return [(public_id, services.index.children_ids(resource.internal_id))]
    if resource.level is Level.INSTANCE:
        series = _parent(services, resource)
        study = _parent(services, series)
        if series is None or (study is not None and study.public_id == study_id):
            raise OrthancError(ErrorCode.UNKNOWN_RESOURCE,
                               f"Cannot merge instance {public_id} into its parent study {study_id}")
        return [(series.public_id, [public_id])]
    raise OrthancError(ErrorCode.UNKNOWN_RESOURCE, "This resource is neither a study, nor a series, nor an "
                       f"instance: {public_id} is a {resource.level.title}")


def _target_module_tags(services: ModificationServices, target: Resource) -> tuple[dict[int, str], list[int]]:
    """The target's patient and study module tags: copied when they hold text, else removed."""
    instances = services.index.descendants(target.internal_id, Level.INSTANCE)
    if not instances:
        raise OrthancError(ErrorCode.UNKNOWN_RESOURCE)
    _, ds = read_instance(services, instances[0].public_id)
    decoder = dataset_decoder(ds, services.default_encoding)
    replacements: dict[int, str] = {}
    removals: list[int] = []
    for tag in sorted(PATIENT_MODULE | STUDY_MODULE):
        value = tag_text(ds, tag, decoder)
        if value is None:
            removals.append(tag)
        else:
            replacements[tag] = value
    return replacements, removals


def split_tag(name: str) -> int:
    """A tag a split may remove or replace (a request's ``Remove`` and ``Replace`` names)."""
    tag = parse_tag(name)
    if tag not in SPLIT_TAGS:
        raise OrthancError(ErrorCode.PARAMETER_OUT_OF_RANGE, "Cannot modify the following tag while splitting a "
                           f"study (not in the patient/study modules): {tag_name(tag >> 16, tag & 0xFFFF)} "
                           f"({format_tag(tag)})")
    return tag
