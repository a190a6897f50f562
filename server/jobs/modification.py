"""ResourceModification jobs, and the staged publication shared by every job that rewrites instances.

Modify and anonymize (``/{patients,studies,series}/{id}/{modify,anonymize}``, ``/tools/bulk-*``)
are ``ResourceModification`` jobs; split and merge (:mod:`server.jobs.split_merge`) reuse
:class:`PublishingJob`.

Consistency of the index when a job is paused, canceled, fails or the server dies
---------------------------------------------------------------------------------
Orthanc stores each rewritten instance as soon as it is produced, so a paused or canceled job
leaves a half-built copy in the index, which even becomes "stable" after ``StableAge`` (and
auto-routing scripts then send it).  Isengard publishes a job's results all together instead:

* each instance step writes the rewritten file into a staging folder of the job, under the
  jobs directory, and nothing in the index: while the job runs or is paused, no new resource
  is visible;
* the trailing step publishes the staged files through the one ingest path
  (:meth:`server.store.Store.ingest`, so filters, Lua callbacks and ``/changes`` see ordinary
  arrivals), then deletes the originals if ``KeepSource`` is false;
* cancel or failure before that step deletes the staging folder: the index is untouched;
  a failure while publishing deletes what the job had already published;
* pause keeps the staging folder and resume continues where it stopped; after a restart the
  job resumes the same way (its UID map is saved with it, so the staged files agree), and a
  publication cut short by a crash is replayed from a manifest written before it began
  (instances already published are then simply "AlreadyStored").

What a user sees: the modified study appears when the job ends (as if uploaded at once), never
half-built; the staging folder briefly holds a copy of the rewritten files.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import uuid
from abc import abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydicom.dataset import Dataset

import server
from server.dicom import main_tags
from server.dicom.charset import FollowsDefaultEncoding
from server.dicom.encode import format_tag
from server.dicom.main_tags import Level
from server.dicom.modify import (
    API_FORCED_IDENTIFIERS,
    PATIENT_ID,
    SERIES_INSTANCE_UID,
    SOP_INSTANCE_UID,
    STUDY_INSTANCE_UID,
    Modification,
    detect_level,
    identifiers,
    modify_dataset,
    modify_file,
    write_file,
)
from server.dicom.parse import read_dataset
from server.dicom.transcode import CannotTranscode, Settings
from server.errors import ErrorCode, OrthancError
from server.jobs.instances import SetOfInstancesJob
from server.jobs.job import StopReason
from server.reconstruct import reconstruct_instance
from server.storage import ids
from server.storage.index import PROPERTY_ANONYMIZATION_SEQUENCE, Metadata, Resource
from server.store import Origin, StoreResult, overwrite_mode

if TYPE_CHECKING:
    from server.config import Configuration
    from server.labels import Labels
    from server.storage.index import Index
    from server.store import Store

log = logging.getLogger("isengard.jobs")

MANIFEST = "manifest.json"
#: Orthanc 1.12.11: ``Content.Resources`` lists the resources asked for, with their levels.
API_TYPED_RESOURCES = 30


@dataclass(frozen=True)
class ModificationServices(FollowsDefaultEncoding):
    """What the jobs rewriting instances (modification, split, merge) and the one-instance
    modifications use."""

    config: Configuration
    index: Index
    store: Store
    labels: Labels
    #: Where the jobs stage the files they publish at the end.
    jobs_directory: Path
    #: The current ``DefaultEncoding`` (``PUT /tools/default-encoding`` changes it at run time).
    encoding: Callable[[], str]


# -- helpers shared by the jobs that rewrite instances ------------------------------------


def public_ids(values: dict[Level, str]) -> dict[Level, str]:
    """Orthanc IDs of the four levels, from PatientID and the three UIDs."""
    patient, study, series, sop = (values[level] for level in Level)
    return {Level.PATIENT: ids.patient_id(patient), Level.STUDY: ids.study_id(patient, study),
            Level.SERIES: ids.series_id(patient, study, series),
            Level.INSTANCE: ids.instance_id(patient, study, series, sop)}


def origin_to_json(origin: Origin) -> dict[str, Any]:
    return {"Kind": origin.kind, "RemoteIp": origin.remote_ip, "RemoteAet": origin.remote_aet,
            "CalledAet": origin.called_aet, "Username": origin.http_username}


def origin_from_json(data: dict[str, Any]) -> Origin:
    return Origin(data["Kind"], data["RemoteIp"], data["RemoteAet"], data["CalledAet"], data["Username"])


def child_instances(services: ModificationServices, public_id: str) -> list[str]:
    """The instances of a resource of any level (``ServerContext::AddChildInstances``)."""
    resource = services.index.lookup(public_id)
    if resource is None:
        raise OrthancError(ErrorCode.UNKNOWN_RESOURCE)
    return [r.public_id for r in services.index.descendants(resource.internal_id, Level.INSTANCE)]


def read_instance(services: ModificationServices, instance_id: str) -> tuple[Resource, Dataset]:
    resource = services.index.lookup(instance_id, Level.INSTANCE)
    if resource is None:
        raise OrthancError(ErrorCode.UNKNOWN_RESOURCE)
    ds, _ = read_dataset(services.store.read_dicom(resource))
    return resource, ds


# -- staged publication ------------------------------------------------------------------


@dataclass
class Staged:
    """A rewritten instance waiting for publication, with the metadata it will carry."""

    data: bytes
    provenance: dict[Level, dict[int, str]]


class PublishingJob(SetOfInstancesJob):
    """Rewrites each instance into a staging folder; the trailing step publishes them all."""

    #: The syntax the job transcodes to: its files then skip ``IngestTranscoding``, as in Orthanc.
    transcode: str | None = None

    def __init__(self, services: ModificationServices, instances: list[str], origin: Origin, keep_source: bool,
                 description: str = "REST API", permissive: bool = False, staging: str | None = None) -> None:
        super().__init__(list(dict.fromkeys(instances)), description, permissive, trailing_step=True)
        self.services = services
        self.origin = origin
        self.keep_source = keep_source
        self.staging = staging or uuid.uuid4().hex
        self.folder: Path = services.jobs_directory / f"staging-{self.staging}"

    @abstractmethod
    def rewrite(self, instance_id: str) -> Staged:
        """The new version of one instance; raise :class:`OrthancError` when it cannot be made."""

    def handle_instance(self, instance_id: str) -> None:
        staged = self.rewrite(instance_id)
        self.folder.mkdir(parents=True, exist_ok=True)
        name = f"{self.position:08d}"
        sidecar = {"Source": instance_id,
                   "Provenance": {str(int(level)): {str(int(k)): v for k, v in values.items()}
                                  for level, values in staged.provenance.items()}}
        _write_atomically(self.folder / f"{name}.json", json.dumps(sidecar).encode())
        _write_atomically(self.folder / f"{name}.dcm", staged.data)

    def handle_trailing_step(self) -> None:
        """Publish every staged instance, then remove the originals unless ``KeepSource``."""
        if self.folder.exists():
            _write_atomically(self.folder / MANIFEST, json.dumps(self.serialize()).encode())
        published: list[str] = []
        outputs: set[str] = set()
        sources: list[str] = []
        try:
            for position in range(len(self.instances)):
                result, source = self._publish(position)
                if result is None:
                    continue
                if result.status == "Success":
                    published.append(result.ids[Level.INSTANCE])
                outputs.add(result.ids[Level.INSTANCE])
                sources.append(source)
        except BaseException:
            self._rollback(published)
            raise
        if not self.keep_source:
            self._delete_sources([s for s in sources if s not in outputs])
        self._discard_staging()

    def _publish(self, position: int) -> tuple[StoreResult | None, str]:
        name = f"{position:08d}"
        path = self.folder / f"{name}.dcm"
        if not path.exists():
            return None, ""  # an instance that failed in a Permissive job
        sidecar = json.loads((self.folder / f"{name}.json").read_text())
        provenance = {Level(int(level)): {int(k): v for k, v in values.items()}
                      for level, values in sidecar["Provenance"].items()}
        origin = Origin(self.origin.kind, self.origin.remote_ip, self.origin.remote_aet,
                        self.origin.called_aet, self.origin.http_username, provenance,
                        skip_ingest_transcoding=bool(self.transcode))
        result = self.services.store.ingest(path.read_bytes(), origin)
        if result.status == "FilteredOut":
            raise OrthancError(ErrorCode.CANNOT_STORE_INSTANCE,
                               f"Error while storing a modified instance {sidecar['Source']}")
        return result, sidecar["Source"]

    def _rollback(self, published: list[str]) -> None:
        for instance_id in published:
            resource = self.services.index.lookup(instance_id, Level.INSTANCE)
            if resource is not None:
                self.services.store.delete(resource)
        self._discard_staging()

    def _delete_sources(self, sources: list[str]) -> None:
        for instance_id in sources:
            resource = self.services.index.lookup(instance_id, Level.INSTANCE)
            if resource is not None:
                self.services.store.delete(resource)

    def _discard_staging(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)

    def stop(self, reason: StopReason) -> None:
        if reason in (StopReason.CANCELED, StopReason.FAILURE):
            self._discard_staging()

    def reset(self) -> None:
        super().reset()
        self._discard_staging()

    def serialize(self) -> dict[str, Any]:
        return {**super().serialize(), "Origin": origin_to_json(self.origin), "KeepSource": self.keep_source,
                "Staging": self.staging}

    @staticmethod
    def publishing_arguments(data: dict[str, Any]) -> dict[str, Any]:
        """Constructor arguments of :class:`PublishingJob`, from :meth:`serialize`'s output."""
        return {"instances": data["Instances"], "origin": origin_from_json(data["Origin"]),
                "keep_source": data["KeepSource"], "description": data.get("Description", "REST API"),
                "permissive": data.get("Permissive", False), "staging": data["Staging"]}

    @staticmethod
    def saved_state(services: ModificationServices, data: dict[str, Any]) -> dict[str, Any]:
        """The state to restore: the manifest if a publication was under way, else ``data``."""
        manifest = services.jobs_directory / f"staging-{data['Staging']}" / MANIFEST
        if manifest.exists():
            state: dict[str, Any] = json.loads(manifest.read_text())
            return state
        return data


def _write_atomically(path: Path, data: bytes) -> None:
    temporary = path.with_suffix(path.suffix + ".tmp")
    temporary.write_bytes(data)
    os.replace(temporary, path)


# -- ResourceModification ------------------------------------------------------------------


class ResourceModificationJob(PublishingJob):
    """Modify or anonymize the instances of one resource (or of several: the bulk routes)."""

    TYPE = "ResourceModification"

    def __init__(self, services: ModificationServices, instances: list[str], modification: Modification,
                 output_level: Level | None, transcode: str | None = None,
                 keep_labels: bool = False, parents: dict[str, Level] | None = None, **kwargs: Any) -> None:
        super().__init__(services, instances, **kwargs)
        #: The resources asked for, with their levels (Orthanc's ``parentResources_``).
        self.parents = dict(parents or {})
        self.keep_labels = keep_labels
        self.modification = modification
        self.output_level = output_level
        self.transcode = transcode
        self.output: dict[str, str] = {}
        self.resources: dict[Level, set[str]] = {level: set() for level in Level}
        #: One published instance of each series the job produced (Orthanc 1.11.3 reconstructs
        #: them once published, so that existing parents take the modified main tags).
        self.to_reconstruct: dict[str, str] = {}

    @property
    def is_anonymization(self) -> bool:
        return self.modification.is_anonymization

    def rewrite(self, instance_id: str) -> Staged:
        resource, ds = read_instance(self.services, instance_id)
        before = self._hierarchy(resource)
        encoding = self.services.default_encoding
        modify_dataset(ds, self.modification, encoding)
        after = public_ids(identifiers(ds, encoding))
        data = self._write(ds, instance_id)
        kind = Metadata.AnonymizedFrom if self.is_anonymization else Metadata.ModifiedFrom
        provenance: dict[Level, dict[int, str]] = {
            level: {int(kind): before[level]} for level in (Level.PATIENT, Level.STUDY, Level.SERIES)
            if before[level] != after[level]}
        provenance[Level.INSTANCE] = {int(kind): instance_id}
        self._record(after)
        return Staged(data, provenance)

    def _publish(self, position: int) -> tuple[StoreResult | None, str]:
        """``KeepLabels`` (Orthanc 1.12.3): each new resource gets the labels of the one it
        was made from.  They are read before publishing: an in-place modification (same
        UIDs) replaces the very resources that carried them."""
        kept = self._labels_of(position) if self.keep_labels else {}
        result, source = super()._publish(position)
        if result is not None:
            self.to_reconstruct.setdefault(result.ids[Level.SERIES], result.ids[Level.INSTANCE])
        if result is not None and kept:
            for level, labels in kept.items():
                new = self.services.index.lookup(result.ids[level], level)
                if new is not None:
                    self.services.labels.add_many(new.internal_id, labels)
        return result, source

    def handle_trailing_step(self) -> None:
        """Publish, then (Orthanc 1.11.3, API 19) re-index one instance of each series produced
        with its ancestors: a study or patient that existed before (its UIDs kept) then shows
        the modified tags, as ``ResourceModificationJob::PostProcessInstances``."""
        self.to_reconstruct = {}
        super().handle_trailing_step()
        if server.ORTHANC_API_VERSION < API_FORCED_IDENTIFIERS:
            return
        for instance_id in sorted(self.to_reconstruct.values()):
            instance = self.services.index.lookup(instance_id, Level.INSTANCE)
            if instance is not None:
                reconstruct_instance(self.services.index, self.services.store, self.services.default_encoding,
                                     instance)

    def _labels_of(self, position: int) -> dict[Level, list[str]]:
        """The labels of the source instance of a staged position and of its ancestors."""
        sidecar = self.folder / f"{position:08d}.json"
        if not sidecar.exists():
            return {}
        source = self.services.index.lookup(json.loads(sidecar.read_text())["Source"], Level.INSTANCE)
        labels: dict[Level, list[str]] = {}
        current: Resource | None = source
        while current is not None:
            labels[current.level] = self.services.labels.of(current.internal_id)
            current = self.services.index.parent(current)
        return labels

    def _hierarchy(self, instance: Resource) -> dict[Level, str]:
        """The public IDs of an instance and of its ancestors."""
        found = {Level.INSTANCE: instance.public_id}
        current: Resource | None = instance
        while current is not None and current.level is not Level.PATIENT:
            current = self.services.index.parent(current)
            if current is not None:
                found[current.level] = current.public_id
        return found

    def _write(self, ds: Dataset, instance_id: str) -> bytes:
        try:
            return write_file(ds, self.transcode, Settings.from_config(self.services.config))
        except CannotTranscode:
            log.warning("Cannot transcode instance, keeping original transfer syntax: %s", instance_id)
            return write_file(ds)

    def _record(self, new: dict[Level, str]) -> None:
        if self.output_level is None:
            for level in Level:
                self.resources[level].add(new[level])
        elif not self.output:
            level = self.output_level
            self.output = {"Type": level.title, "ID": new[level], "Path": f"/{level.plural}/{new[level]}",
                           "PatientID": new[Level.PATIENT]}

    def reset(self) -> None:
        super().reset()
        self.output = {}
        self.resources = {level: set() for level in Level}

    def content(self) -> dict[str, Any]:
        result = super().content()
        result["IsAnonymization"] = self.is_anonymization
        if self.parents and server.ORTHANC_API_VERSION >= API_FORCED_IDENTIFIERS:
            result["ParentResources"] = sorted(self.parents)  # Orthanc 1.11.3
            if server.ORTHANC_API_VERSION >= API_TYPED_RESOURCES:  # Orthanc 1.12.11
                result["Resources"] = [{"ID": public_id, "Type": self.parents[public_id].title}
                                       for public_id in sorted(self.parents)]
        if self.output_level is None:
            result["Resources"] = [{"ID": public_id, "Path": f"/{level.plural}/{public_id}", "Type": level.title}
                                   for level in reversed(Level) for public_id in sorted(self.resources[level])]
        else:
            result.update(self.output)
        if self.transcode:
            result["Transcode"] = self.transcode
        return result

    def serialize(self) -> dict[str, Any]:
        return {**super().serialize(), "Modification": self.modification.to_json(),
                "OutputLevel": self.output_level.title if self.output_level is not None else None,
                "Transcode": self.transcode, "Output": self.output, "KeepLabels": self.keep_labels,
                "Parents": {public_id: level.title for public_id, level in self.parents.items()},
                "Resources": {level.title: sorted(values) for level, values in self.resources.items()}}

    @staticmethod
    def unserialize(services: ModificationServices, data: dict[str, Any]) -> ResourceModificationJob:
        data = PublishingJob.saved_state(services, data)
        level = data["OutputLevel"]
        job = ResourceModificationJob(services, modification=Modification.from_json(data["Modification"]),
                                      output_level=Level.parse(level) if level else None,
                                      transcode=data["Transcode"], keep_labels=data.get("KeepLabels", False),
                                      parents={public_id: Level.parse(level)
                                               for public_id, level in data.get("Parents", {}).items()},
                                      **PublishingJob.publishing_arguments(data))
        job.restore(data)
        job.output = data["Output"]
        job.resources = {Level.parse(name): set(values) for name, values in data["Resources"].items()}
        return job


# -- building jobs from requests -------------------------------------------------------


@dataclass(frozen=True)
class ModificationRequest:
    """A ``/modify`` or ``/anonymize`` request of a resource or of the bulk routes
    (parsed by :mod:`server.rest.requests`).  ``modification`` carries the job's UID map."""

    modification: Modification
    keep_source: bool = True
    transcode: str | None = None
    permissive: bool = False
    keep_labels: bool = False


def anonymized_patient_name(services: ModificationServices) -> str:
    """``Anonymized{N}``, with Orthanc's global, persistent counter."""
    return f"Anonymized{services.index.increment_property(PROPERTY_ANONYMIZATION_SEQUENCE)}"


def modification_job(services: ModificationServices, request: ModificationRequest, resources: list[str],
                     output_level: Level | None, origin: Origin) -> ResourceModificationJob:
    """A ResourceModification job over ``resources`` (any level), as ``SubmitModificationJob`` builds it.

    ``output_level`` None means a bulk job, whose answer lists every resource produced.
    """
    instances = [instance for resource in resources for instance in child_instances(services, resource)]
    if server.ORTHANC_API_VERSION >= API_FORCED_IDENTIFIERS:
        check_model(services, request, resources)
    parents = {}
    for public_id in resources:
        resource = services.index.lookup(public_id)
        if resource is not None:
            parents[public_id] = resource.level
    return ResourceModificationJob(services, instances, request.modification, output_level, request.transcode,
                                   keep_labels=request.keep_labels, parents=parents, origin=origin,
                                   keep_source=request.keep_source, permissive=request.permissive)


def _tag_number(tag: tuple[int, int]) -> int:
    return (tag[0] << 16) | tag[1]


def _replacement(modification: Modification, tag: int) -> str:
    """``GetReplacementAsString``: a replaced main tag must be a string."""
    value = modification.replacements[tag]
    if not isinstance(value, str):
        raise OrthancError(ErrorCode.BAD_PARAMETER_TYPE)
    return value


def check_model(services: ModificationServices, request: ModificationRequest, resources: list[str]) -> None:
    """Orthanc 1.11.3's ``PerformSanityChecks`` (API 19), before the job is submitted.

    Keeping the three UIDs of a patient or study without a new PatientID rewrites the
    instances in place: it needs ``KeepSource`` (else the job would delete its own output)
    and ``OverwriteInstances``.  A study may take new patient tags only if it is its
    patient's only study, or if they are exactly those of another existing patient (the
    study then joins that patient)."""
    m = request.modification
    if m.level in (Level.PATIENT, Level.STUDY) and not m.is_replaced(PATIENT_ID) \
            and {STUDY_INSTANCE_UID, SERIES_INSTANCE_UID, SOP_INSTANCE_UID} <= m.kept_identifiers:
        if not request.keep_source:
            raise OrthancError(ErrorCode.BAD_REQUEST, "When keeping StudyInstanceUID, SeriesInstanceUID and "
                               "SOPInstanceUID tag, you must set KeepSource to true to avoid deleting the "
                               "modified files at the end of the process")
        if not overwrite_mode(services.config["OverwriteInstances"])[0]:
            raise OrthancError(ErrorCode.BAD_REQUEST, "When keeping StudyInstanceUID, SeriesInstanceUID and "
                               "SOPInstanceUID tag, you must have the 'OverwriteInstances' Orthanc configuration "
                               "set to true in order to replace the modified resources")
    patient_tags = sorted(_tag_number(tag) for tag in main_tags.BY_LEVEL[Level.PATIENT])
    if m.level is Level.STUDY and any(m.is_replaced(tag) for tag in patient_tags):
        for study_id in resources:
            _check_study_patient(services, m, study_id, patient_tags)


def _check_study_patient(services: ModificationServices, m: Modification, study_id: str,
                         patient_tags: list[int]) -> None:
    """The patient tags given to one study must match its target patient if that one has
    other studies (Orthanc's messages)."""
    if m.is_replaced(PATIENT_ID):
        target = _replacement(m, PATIENT_ID)
    else:
        study = services.index.lookup(study_id, Level.STUDY)
        if study is None:
            raise OrthancError(ErrorCode.UNKNOWN_RESOURCE, "Study not found")
        target = services.index.main_tags(study.internal_id).get((0x0010, 0x0020), "")
    patient = services.index.lookup(ids.patient_id(target), Level.PATIENT)
    if patient is None:
        return
    studies = services.index.children_ids(patient.internal_id)
    if not [other for other in studies if other != study_id]:
        return
    existing = {_tag_number(tag): value for tag, value in services.index.main_tags(patient.internal_id).items()}
    prefix = ("Trying to change patient tags in a study.  The Patient already exists and has other studies.  ")
    advice = "Try using /patients/../modify instead to modify the patient. "
    for tag in patient_tags:
        name = format_tag(tag)
        if tag in existing:
            if not m.is_replaced(tag):
                if existing[tag]:
                    raise OrthancError(ErrorCode.BAD_REQUEST, prefix + "All the 'Replace' tags should match the "
                                       "existing patient main dicom tags and you should specify all Patient "
                                       f"MainDicomTags in your query.  {advice}Missing tag in the 'Replace' tags: "
                                       + name)
            elif _replacement(m, tag) != existing[tag]:
                raise OrthancError(ErrorCode.BAD_REQUEST, prefix + "All the 'Replace' tags should match the "
                                   "existing patient main dicom tags and you should specify all Patient "
                                   f"MainDicomTags in your query.  {advice}Failing tag: {name}")
        elif m.is_replaced(tag):
            raise OrthancError(ErrorCode.BAD_REQUEST, prefix + "You are trying to replace a tag that is not "
                               f"defined yet in this patient. {advice}Failing tag: {name}")


# -- services without a job: one instance ----------------------------------------------------


def modified_instance(services: ModificationServices, instance_id: str, modification: Modification,
                      transcode: str | None = None, lossy_quality: int | None = None) -> bytes:
    """``POST /instances/{id}/modify|anonymize``: the modified file, transcoded with ``Transcode``
    (at ``LossyQuality``, Orthanc 1.12.7); nothing is stored."""
    resource = services.index.lookup(instance_id, Level.INSTANCE)
    if resource is None:
        raise OrthancError(ErrorCode.UNKNOWN_RESOURCE)
    try:
        return modify_file(services.store.read_dicom(resource), modification, services.default_encoding, transcode,
                           Settings.from_config(services.config, lossy_quality))
    except CannotTranscode:
        raise OrthancError(ErrorCode.INTERNAL, f"Cannot transcode to transfer syntax: {transcode}") from None


def modify_and_store(services: ModificationServices, instance_id: str, modification: Modification,
                     origin: Origin) -> StoreResult:
    """Lua's ``ModifyInstance`` (``ModifyInstanceOperation``): modify, store, tag ``ModifiedFrom``.

    The level follows the identifiers the modification replaces, as for a single instance;
    one modification can serve several instances and keeps one UID map for all of them.
    """
    level = detect_level(modification)
    if modification.level is not level:
        modification.set_level(level)
    resource = services.index.lookup(instance_id, Level.INSTANCE)
    if resource is None:
        raise OrthancError(ErrorCode.UNKNOWN_RESOURCE)
    data = modify_file(services.store.read_dicom(resource), modification, services.default_encoding)
    stored = Origin(origin.kind, origin.remote_ip, origin.remote_aet, origin.called_aet, origin.http_username,
                    {Level.INSTANCE: {Metadata.ModifiedFrom: instance_id}})
    return services.store.ingest(data, stored)
