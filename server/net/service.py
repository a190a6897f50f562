"""The network service: modalities, peers, queries and the operations on them, for REST and scripts.

Modalities and peers start from the configuration (or from the index when
``DicomModalitiesInDatabase`` / ``OrthancPeersInDatabase`` is set, as Orthanc
keeps them in global properties 20 and 21); REST changes replace the lists in
the configuration so that every reader (SCP authorization, storage commitment,
scripts) sees them at once.  Everything here blocks: call it from a worker
thread.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence

from server.clock import utc_now_iso
from server.dicom import uids
from server.dicom.charset import specific_character_set
from server.dicom.main_tags import BY_LEVEL, IDENTIFIER, Level, Tag
from server.errors import ErrorCode, OrthancError
from server.find import parse_tag
from server.jobs.get_scu import SOP_CLASSES_IN_STUDY, DicomGetScuJob
from server.jobs.move_scu import DicomMoveScuJob
from server.jobs.peer_store import OrthancPeerStoreJob
from server.jobs.retrieve_scu import RetrieveRequest, level_query, retrieve_item
from server.jobs.store_scu import DicomModalityStoreJob
from server.net import scu
from server.net.modalities import find_by_aet, normalize_modality, peer_settings
from server.net.peers import PeerClient
from server.net.query_retrieve import DicomServices, QueryRetrieveScp
from server.storage import ids

if TYPE_CHECKING:
    from server.config import Configuration
    from server.jobs.engine import JobsEngine
    from server.jobs.job import Job
    from server.jobs.store_scu import SendServices
    from server.net.scp import DicomServer
    from server.storage.index import Index

log = logging.getLogger("isengard.dicom")

#: Orthanc's global properties holding the lists when they live in the database.
PROPERTY_MODALITIES = 20
PROPERTY_PEERS = 21

#: Tags added to a normalized C-FIND query at each level (Orthanc's ``NormalizeFindQuery``).
COUNTER_KEYS: dict[Level, tuple[Tag, ...]] = {
    Level.PATIENT: ((0x0020, 0x1200), (0x0020, 0x1202), (0x0020, 0x1204)),
    Level.STUDY: ((0x0008, 0x0061), (0x0020, 0x1206), (0x0020, 0x1208), (0x0008, 0x0062)),
    Level.SERIES: ((0x0020, 0x1209),),
    Level.INSTANCE: (),
}
ACCESSION_NUMBER: Tag = (0x0008, 0x0050)
SPECIFIC_CHARACTER_SET: Tag = (0x0008, 0x0005)

#: The DICOM modules whose attributes a normalized C-FIND query keeps at each level and the
#: levels above (Orthanc's ``DicomTag::AddTagsForModule``, after PS 3.3 2011): not the same
#: as the main DICOM tags of the index.
MODULES: dict[Level, tuple[Tag, ...]] = {
    Level.PATIENT: (
        (0x0010, 0x0010), (0x0010, 0x0020), (0x0010, 0x0030), (0x0010, 0x0040), (0x0008, 0x1120),
        (0x0010, 0x0032), (0x0010, 0x1000), (0x0010, 0x1002), (0x0010, 0x1001), (0x0010, 0x2160),
        (0x0010, 0x4000), (0x0010, 0x2201), (0x0010, 0x2202), (0x0010, 0x2292), (0x0010, 0x2293),
        (0x0010, 0x2294), (0x0010, 0x2297), (0x0010, 0x2298), (0x0010, 0x2299), (0x0012, 0x0062),
        (0x0012, 0x0063), (0x0012, 0x0064), (0x0010, 0x0021), (0x0010, 0x0024)),
    Level.STUDY: (
        (0x0020, 0x000D), (0x0008, 0x0020), (0x0008, 0x0030), (0x0008, 0x0090), (0x0008, 0x0096),
        (0x0020, 0x0010), (0x0008, 0x0050), (0x0008, 0x0051), (0x0008, 0x1030), (0x0008, 0x1048),
        (0x0008, 0x1049), (0x0008, 0x1060), (0x0008, 0x1062), (0x0032, 0x1034), (0x0008, 0x1110),
        (0x0008, 0x1032), (0x0040, 0x1012)),
    Level.SERIES: (
        (0x0008, 0x0060), (0x0020, 0x000E), (0x0020, 0x0011), (0x0020, 0x0060), (0x0008, 0x0021),
        (0x0008, 0x0031), (0x0008, 0x1050), (0x0008, 0x1052), (0x0018, 0x1030), (0x0008, 0x103E),
        (0x0008, 0x103F), (0x0008, 0x1070), (0x0008, 0x1072), (0x0008, 0x1111), (0x0008, 0x1250),
        (0x0018, 0x0015), (0x0018, 0x5100), (0x0028, 0x0108), (0x0029, 0x0109), (0x0040, 0x0275),
        (0x0010, 0x2210), (0x0040, 0x0253), (0x0040, 0x0244), (0x0040, 0x0245), (0x0040, 0x0254),
        (0x0040, 0x0260), (0x0040, 0x0280)),
    Level.INSTANCE: (
        (0x0008, 0x0016), (0x0008, 0x0018), (0x0008, 0x0005), (0x0008, 0x0012), (0x0008, 0x0013),
        (0x0008, 0x0014), (0x0008, 0x001A), (0x0008, 0x001B), (0x0008, 0x0110), (0x0008, 0x0201),
        (0x0018, 0xA001), (0x0020, 0x0013), (0x0100, 0x0410), (0x0100, 0x0420), (0x0100, 0x0424),
        (0x0100, 0x0426), (0x0400, 0x0500), (0x0400, 0x0561), (0x0040, 0xA390), (0x0028, 0x0303),
        (0x4FFE, 0x0001), (0xFFFA, 0xFFFA)),
}
_DATE_VRS = ("DA",)


class RemoteRegistry:
    """Named modalities or peers, as the configuration spells them (arrays or objects)."""

    def __init__(self, config: Configuration, index: Index, key: str, in_database: bool,
                 property_id: int) -> None:
        self.config = config
        self.index = index
        self.key = key
        self.in_database = in_database
        self.property_id = property_id
        self._lock = threading.Lock()
        if in_database:
            stored = self.index.get_property(property_id)
            self.config.values[key] = json.loads(stored) if stored else {}

    def all(self) -> dict[str, Any]:
        return dict(self.config[self.key])

    def get(self, name: str) -> Any | None:
        return self.config[self.key].get(name)

    def put(self, name: str, params: Any) -> None:
        with self._lock:
            self._replace({**self.config[self.key], name: params})

    def delete(self, name: str) -> bool:
        with self._lock:
            current = dict(self.config[self.key])
            if current.pop(name, None) is None:
                return False
            self._replace(current)
            return True

    def _replace(self, entries: dict[str, Any]) -> None:
        if self.in_database:
            self.index.set_property(self.property_id, json.dumps(entries))
        self.config.values[self.key] = entries


class ModalityRegistry(RemoteRegistry):
    """The DICOM modalities, with the lookups the SCU and storage commitment need."""

    def __init__(self, config: Configuration, index: Index) -> None:
        super().__init__(config, index, "DicomModalities", bool(config["DicomModalitiesInDatabase"]),
                         PROPERTY_MODALITIES)

    def modality(self, name: str) -> dict[str, Any]:
        """The normalized parameters of a modality; 404 ``No modality with symbolic name``."""
        params = self.get(name)
        if params is None:
            raise OrthancError(ErrorCode.INEXISTENT_ITEM, f"No modality with symbolic name: {name}")
        return normalize_modality(params)

    def by_aet(self, aet: str) -> list[tuple[str, dict[str, Any]]]:
        normalized = {n: normalize_modality(p) for n, p in self.all().items()}
        return find_by_aet(normalized, aet, bool(self.config["StrictAetComparison"]))

    def remote(self, name: str, local_aet: str | None = None, timeout: float | None = None) -> scu.Remote:
        return scu.Remote.of(self.modality(name), self.config, local_aet, timeout)


@dataclass
class QueryRecord:
    """One ``/queries/{id}``: a C-FIND and its answers, kept for later retrieves."""

    id: str
    modality: str
    level: Level
    query: dict[Tag, str]
    normalize: bool = True
    answers: list[Dataset] = field(default_factory=list)
    #: The query's own ``LocalAet`` and ``Timeout``, inherited by its retrieves and child queries.
    local_aet: str | None = None
    timeout: float | None = None


class QueryArchive:
    """The last ``QueryRetrieveSize`` queries, oldest dropped first."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._queries: OrderedDict[str, QueryRecord] = OrderedDict()
        self._lock = threading.Lock()

    def add(self, record: QueryRecord) -> None:
        with self._lock:
            self._queries[record.id] = record
            while len(self._queries) > self.size:
                self._queries.popitem(last=False)

    def get(self, query_id: str) -> QueryRecord | None:
        with self._lock:
            return self._queries.get(query_id)

    def ids(self) -> list[str]:
        with self._lock:
            return list(self._queries)

    def delete(self, query_id: str) -> None:
        with self._lock:
            self._queries.pop(query_id, None)


class _LingeringConnections:
    """Store connections of scripts, closed after ``DicomAssociationCloseDelay`` s without use."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self._open: dict[tuple[str, str], tuple[scu.StoreConnection, float]] = {}
        self._lock = threading.Lock()
        self._reaper: threading.Thread | None = None
        self._stopping = threading.Event()

    def send(self, remote: scu.Remote, data: bytes | scu.Outgoing, transcode: bool) -> None:
        key = (remote.aet, remote.local_aet)
        with self._lock:
            connection, _ = self._open.pop(key, (None, 0.0))
        if connection is None or connection.remote != remote:
            connection = scu.StoreConnection(remote, transcode)
        try:
            connection.store(data)
        except OrthancError:
            connection.close()
            raise
        with self._lock:
            previous = self._open.get(key)
            self._open[key] = (connection, time.monotonic())
            if self._reaper is None:
                self._reaper = threading.Thread(target=self._reap, name="dicom-scu-reaper", daemon=True)
                self._reaper.start()
        if previous is not None:
            previous[0].close()

    def _reap(self) -> None:
        while not self._stopping.wait(min(1.0, self.delay or 1.0)):
            now = time.monotonic()
            with self._lock:
                expired = [k for k, (_, used) in self._open.items() if now - used >= self.delay]
                closing = [self._open.pop(k)[0] for k in expired]
            for connection in closing:
                connection.close()

    def close_all(self) -> None:
        self._stopping.set()
        with self._lock:
            closing = [c for c, _ in self._open.values()]
            self._open.clear()
        for connection in closing:
            connection.close()


class NetworkService:
    """The DICOM network and peers, for the REST layer and the scripts."""

    def __init__(self, services: DicomServices, modalities: ModalityRegistry, send: SendServices,
                 jobs: JobsEngine) -> None:
        self.services = services
        self.send = send
        self.jobs = jobs
        config = services.config
        self.modalities = modalities
        self.peers = RemoteRegistry(config, services.index, "OrthancPeers", bool(config["OrthancPeersInDatabase"]),
                                    PROPERTY_PEERS)
        self.queries = QueryArchive(int(config["QueryRetrieveSize"]))
        self.scp = QueryRetrieveScp(services, self)
        self._lingering = _LingeringConnections(float(config["DicomAssociationCloseDelay"]))

    def install(self, dicom: DicomServer) -> None:
        """Add C-FIND, C-MOVE and C-GET to the DICOM server (before it starts)."""
        self.scp.install(dicom)

    def stop(self) -> None:
        self._lingering.close_all()

    # -- lookups -----------------------------------------------------------------------

    def modality(self, name: str) -> dict[str, Any]:
        """The normalized parameters of a modality; 404 ``No modality with symbolic name``."""
        return self.modalities.modality(name)

    def modalities_by_aet(self, aet: str) -> list[tuple[str, dict[str, Any]]]:
        return self.modalities.by_aet(aet)

    def peer(self, name: str) -> Any:
        """A peer as configured (secrets included); 404 ``No peer with symbolic name``."""
        params = self.peers.get(name)
        if params is None:
            raise OrthancError(ErrorCode.UNKNOWN_RESOURCE, f"No peer with symbolic name: {name}")
        return params

    def remote(self, name: str, local_aet: str | None = None, timeout: float | None = None) -> scu.Remote:
        return self.modalities.remote(name, local_aet, timeout)

    # -- what to send ------------------------------------------------------------------

    def instances_of(self, resources: list[str], remote_name: str | None = None) -> list[str]:
        """The instances below Orthanc IDs of any level, as Orthanc's ``GetInstancesToExport``.

        With ``LogExportedResources``, each resource is recorded at ``/exports``
        under ``remote_name``.
        """
        instances: list[str] = []
        for public_id in resources:
            resource = self.services.index.lookup(public_id.strip())
            if resource is None:
                if not ids.is_orthanc_id(public_id.strip()):
                    raise OrthancError(ErrorCode.BAD_FILE_FORMAT,
                                       f"This string is not a valid Orthanc identifier: {public_id}")
                raise OrthancError(ErrorCode.UNKNOWN_RESOURCE)
            instances += [i.public_id for i in self.services.index.descendants(resource.internal_id,
                                                                          Level.INSTANCE)]
            if remote_name is not None and self.services.config["LogExportedResources"]:
                self._log_export(resource, remote_name)
        return instances

    def _log_export(self, resource: Any, remote_name: str) -> None:
        index = self.services.index
        identifiers: dict[str, str] = {}
        current = resource
        while current is not None:
            tag = IDENTIFIER[current.level]
            identifiers[BY_LEVEL[current.level][tag]] = index.main_tags(current.internal_id).get(tag, "")
            current = index.parent(current)
        index.log_export(resource.level, resource.public_id, remote_name, identifiers, utc_now_iso())

    # -- jobs (for REST and scripts) ---------------------------------------------------

    def store_job(self, instances: list[str], modality_name: str, *, local_aet: str | None = None,
                  timeout: float | None = None, move_originator_aet: str = "",
                  move_originator_id: int | None = None, storage_commitment: bool = False,
                  description: str = "REST API", permissive: bool = False,
                  parent_resources: list[str] | None = None, overrides: dict[str, Any] | None = None) -> Job:
        """A DicomModalityStore job, not yet submitted; ``overrides`` replace some of the
        modality's parameters for this job only (``CalledAet``, ``Host``, ``Port``)."""
        return DicomModalityStoreJob(
            self.send, instances, {**self.modality(modality_name), **(overrides or {})}, local_aet=local_aet,
            timeout=timeout,
            move_originator_aet=move_originator_aet, move_originator_id=move_originator_id,
            storage_commitment=storage_commitment, modality_name=modality_name,
            description=description, permissive=permissive, parent_resources=parent_resources)

    def store_to_modality(self, instances: list[str], modality_name: str, *, local_aet: str | None = None,
                          description: str = "Lua", priority: int = 0, **options: Any) -> str:
        """Submit a C-STORE of ``instances`` (Orthanc IDs of instances) to a modality; the job ID."""
        job = self.store_job(instances, modality_name, local_aet=local_aet, description=description,
                             **options)
        return self.jobs.submit(job, priority)

    def peer_job(self, instances: list[str], peer_name: str, *, compress: bool = False,
                 transcode: str | None = None, description: str = "REST API", permissive: bool = False,
                 parent_resources: list[str] | None = None) -> Job:
        """An OrthancPeerStore job, not yet submitted."""
        return OrthancPeerStoreJob(self.send, instances, self.peer(peer_name), peer_name=peer_name,
                                   compress=compress, transcode=transcode, description=description,
                                   permissive=permissive, parent_resources=parent_resources)

    def get_job(self, modality_name: str, request: RetrieveRequest) -> Job:
        """A DicomGetScu job (``/modalities/{id}/get``), not yet submitted: one C-GET per
        resource, the received instances stored here."""
        queries = [level_query(request.level, resource) for resource in request.resources]
        return DicomGetScuJob(self.send, self.modality(modality_name), queries, local_aet=request.local_aet,
                              timeout=request.timeout, permissive=request.permissive)

    def move_job(self, modality_name: str, request: RetrieveRequest) -> Job:
        """A DicomMoveScu job (``/modalities/{id}/move``), not yet submitted: one C-MOVE per
        resource, to ``TargetAet``, by default this server (``DicomAet``)."""
        queries = [level_query(request.level, resource) for resource in request.resources]
        target = request.target_aet or self.services.config["DicomAet"]
        return DicomMoveScuJob(self.services.config, self.modality(modality_name), target, queries,
                               local_aet=request.local_aet, timeout=request.timeout,
                               permissive=request.permissive)

    def send_instance_to_modality(self, instance_id: str, modality_name: str,
                                  local_aet: str | None = None) -> None:
        """C-STORE one instance now, on an association kept open ``DicomAssociationCloseDelay`` s
        (unless an ``OutgoingCStoreInstanceFilter`` skips it)."""
        instance = self.services.index.lookup(instance_id, Level.INSTANCE)
        if instance is None:
            raise OrthancError(ErrorCode.UNKNOWN_RESOURCE)
        remote = self.remote(modality_name, local_aet)
        item = scu.Outgoing.stored(self.services.store.read_dicom(instance))
        if scu.outgoing_accepted(self.services.store.interventions.outgoing_store, item,
                                 remote.aet, remote.host):
            self._lingering.send(remote, item, bool(self.services.config["TranscodeDicomProtocol"]))

    def send_instance_to_peer(self, instance_id: str, peer_name: str) -> None:
        """``POST /instances`` of one instance to a peer, now."""
        instance = self.services.index.lookup(instance_id, Level.INSTANCE)
        if instance is None:
            raise OrthancError(ErrorCode.UNKNOWN_RESOURCE)
        client = PeerClient(peer_name, peer_settings(self.peer(peer_name)), self.services.config)
        try:
            client.store(self.services.store.read_dicom(instance), compress=False)
        finally:
            client.close()

    # -- synchronous operations --------------------------------------------------------

    def echo(self, remote: scu.Remote, check_find: bool | None = None) -> None:
        scu.echo(remote)
        if self.services.config["DicomEchoChecksFind"] if check_find is None else check_find:
            # A random study, so that a modality that knows us answers quickly with nothing.
            query = {IDENTIFIER[Level.STUDY]: uids.generate(Level.STUDY)}
            scu.find(remote, Level.STUDY, self._identifier(Level.STUDY, query, remote.manufacturer,
                                                           False))

    def store_straight(self, name: str, data: bytes, local_aet: str | None = None,
                       timeout: float | None = None) -> dict[str, str]:
        connection = scu.StoreConnection(self.remote(name, local_aet, timeout),
                                         bool(self.services.config["TranscodeDicomProtocol"]))
        try:
            sent = connection.store(data)
        finally:
            connection.close()
        return {"SOPClassUID": sent.sop_class, "SOPInstanceUID": sent.sop_instance}

    def find(self, remote: scu.Remote, level: Level, query: dict[Tag, str],
             normalize: bool = True) -> list[Dataset]:
        return scu.find(remote, level, self._identifier(level, query, remote.manufacturer, normalize))

    def find_worklist(self, remote: scu.Remote, query: dict[str, Any]) -> list[Dataset]:
        """Modality worklist C-FIND; ``query`` maps tags to strings or to arrays of such objects."""
        identifier = _dataset_from_json(query)
        _set_character_set(identifier, self.services.default_encoding)
        return scu.find_worklist(remote, identifier)

    def query(self, name: str, level: Level, query: dict[Tag, str], normalize: bool = True,
              local_aet: str | None = None, timeout: float | None = None) -> QueryRecord:
        """``/modalities/{id}/query``: a C-FIND whose answers are kept at ``/queries/{id}``."""
        remote = self.remote(name, local_aet, timeout)
        answers = [_with_meta_uids(a) for a in self.find(remote, level, query, normalize)]
        record = QueryRecord(str(uuid.uuid4()), name, level, dict(query), normalize, answers,
                             local_aet, timeout)
        self.queries.add(record)
        return record

    def retrieve_job(self, record: QueryRecord, answers: list[Dataset], target_aet: str | None,
                     timeout: float | None = None, query_format: str = "Short",
                     method: str | None = None, permissive: bool = False) -> Job:
        """The job retrieving ``answers`` of ``record``: by ``method`` (the request's), else the
        modality's ``RetrieveMethod``, else ``DicomDefaultRetrieveMethod`` (Orthanc 1.12.6).

        A DicomMoveScu job moves them to ``target_aet`` (by default the modality's
        ``LocalAet``, else ours, as Orthanc); a DicomGetScu job gets them over its own
        association, proposing the answers' ``SOPClassesInStudy`` when they name some, and
        going on past a failed C-GET when ``permissive``.
        """
        items = [retrieve_item(_answer_tags(a)) for a in answers]
        modality = self.modality(record.modality)
        config = self.services.config
        timeout = timeout if timeout is not None else record.timeout
        chosen = method or modality["RetrieveMethod"]
        if chosen == "SystemDefault":
            chosen = config["DicomDefaultRetrieveMethod"]
        if chosen == "C-GET":
            classes = sorted({c for a in answers for c in _answer_values(a, SOP_CLASSES_IN_STUDY)})
            return DicomGetScuJob(self.send, modality, items, local_aet=record.local_aet, timeout=timeout,
                                  query_format=query_format, permissive=permissive, sop_classes=classes)
        target = target_aet or modality.get("LocalAet") or config["DicomAet"]
        return DicomMoveScuJob(config, modality, target, items, local_aet=record.local_aet,
                               timeout=timeout, query_format=query_format)

    def _identifier(self, level: Level, query: dict[Tag, str], manufacturer: str,
                    normalize: bool) -> Dataset:
        """The C-FIND identifier Orthanc sends for ``query``."""
        fields = dict(query)
        if normalize:
            allowed = {t for lv in Level if lv <= level for t in MODULES[lv]}
            allowed |= set(COUNTER_KEYS[level]) | {SPECIFIC_CHARACTER_SET}
            for tag in [t for t in fields if t not in allowed]:
                log.warning("Tag not allowed for this C-Find level, will be ignored: (%04x,%04x)", *tag)
                del fields[tag]
            if manufacturer in ("GenericNoWildcardInDates", "GenericNoUniversalWildcard"):
                for tag, value in fields.items():
                    if value == "*" and (manufacturer == "GenericNoUniversalWildcard" or
                                         scu.tag_vr(tag) in _DATE_VRS):
                        fields[tag] = ""
        for tag in _identifying_keys(level):
            fields.setdefault(tag, "")
        identifier = Dataset()
        _set_character_set(identifier, self.services.default_encoding)
        for tag, value in sorted(fields.items()):
            if tag != SPECIFIC_CHARACTER_SET:
                identifier.add(scu.element(tag, value))
        return identifier


def _set_character_set(identifier: Dataset, encoding: str) -> None:
    """The SpecificCharacterSet of ``DefaultEncoding``, as Orthanc writes it (none for Windows1251)."""
    term = specific_character_set(encoding)
    if term is not None:
        identifier.SpecificCharacterSet = term


def _identifying_keys(level: Level) -> list[Tag]:
    """Orthanc makes sure the identifiers of the level and its parents are asked for."""
    keys = [IDENTIFIER[Level.PATIENT]]
    if level >= Level.STUDY:
        keys += [ACCESSION_NUMBER, IDENTIFIER[Level.STUDY]]
    if level >= Level.SERIES:
        keys.append(IDENTIFIER[Level.SERIES])
    if level >= Level.INSTANCE:
        keys.append(IDENTIFIER[Level.INSTANCE])
    return keys


def _dataset_from_json(query: dict[str, Any]) -> Dataset:
    """A query dataset from ``{tag: string | [item, ...]}`` (items are objects of the same kind)."""
    result = Dataset()
    for name, value in query.items():
        group, element = parse_tag(name)
        number = (group << 16) | element
        if isinstance(value, list):
            items = [_dataset_from_json(v) for v in value if isinstance(v, dict)]
            result.add(DataElement(number, "SQ", Sequence(items)))
        elif isinstance(value, str):
            result.add(scu.element((group, element), value))
        else:
            raise OrthancError(ErrorCode.BAD_FILE_FORMAT,
                               f'The value of tag "{name}" must be a string or an array of objects')
    return result


#: (answer tag, meta header tag) that Orthanc's kept answers repeat: it holds each answer as a
#: DICOM file, whose meta header takes the SOP class and instance UIDs of the dataset.
_META_UIDS = ((0x00080016, 0x00020002), (0x00080018, 0x00020003))


def _with_meta_uids(answer: Dataset) -> Dataset:
    """A C-FIND answer as ``/queries/{id}/answers`` shows it: with ``MediaStorageSOPClassUID``
    and ``MediaStorageSOPInstanceUID`` when it has a SOP class or instance UID."""
    for tag, meta in _META_UIDS:
        value = value_text(answer[tag].value) if tag in answer else ""
        if value:
            answer.add_new(meta, "UI", value)
    return answer


def _answer_tags(answer: Dataset) -> dict[Tag, str]:
    return {(el.tag.group, el.tag.element): value_text(el.value) for el in answer if el.VR != "SQ"}


def _answer_values(answer: Dataset, tag: Tag) -> list[str]:
    """The values of a (possibly multi-valued) text element of an answer; none when absent."""
    number = (tag[0] << 16) | tag[1]
    text = value_text(answer[number].value) if number in answer else ""
    return [v.strip() for v in text.split("\\") if v.strip()]


def value_text(value: Any) -> str:
    """A pydicom value as DICOM text (multiple values joined by a backslash)."""
    if value is None:
        return ""
    if isinstance(value, (list, tuple, MultiValue)):
        return "\\".join(str(v) for v in value)
    return str(value)
