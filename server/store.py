"""The one ingest path: every DICOM file that enters the server goes through :class:`Store`.

REST uploads, C-STORE, create-dicom, modification jobs and scripts all call
:meth:`Store.ingest`.  The file is staged under the storage area's ``tmp/``
folder, the index transaction commits, and only then is the file moved into
place: an instance is either fully indexed and on disk, or absent (see
:mod:`server.storage.area` for the recovery of interrupted ingests).
"""

from __future__ import annotations

import itertools
import json
import logging
import mmap
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import server
from server import events
from server.clock import utc_now_iso
from server.dicom.main_tags import Level, main_tags_signature
from server.dicom.parse import ParsedInstance, check_complete, parse_for_index
from server.dicom.pixels import read_image_dataset
from server.dicom.transcode import IngestTranscoding
from server.errors import ErrorCode, OrthancError
from server.group_commit import GroupCommit
from server.ingest_processes import IngestProcesses
from server.metrics import Metrics
from server.storage.area import Staged, StorageArea
from server.storage.database import Connection, WriteConflict
from server.storage.index import (
    ATTACHMENT_DICOM,
    Attachment,
    Change,
    Index,
    Known,
    Metadata,
    Resource,
    Writes,
    expected_count,
)

log = logging.getLogger("isengard.store")

#: How many ingests must be under way in this process for small files to go to the ingest
#: processes (see :meth:`Store._parse_and_stage`).
HAND_OVER_FROM = 2

#: Isengard's counters of the writers' lock taken late (several nodes on PostgreSQL): the
#: ingest batches that tried, and those another node's writes made run again, lock first.
#: Their ratio tells how much the nodes tread on each other's resources.
LATE_LOCK_BATCHES = "isengard_ingest_late_lock_batches_total"
LATE_LOCK_CONFLICTS = "isengard_ingest_late_lock_conflicts_total"


@dataclass
class Origin:
    """Where an instance came from; becomes the instance's automatic metadata."""

    kind: str = "RestApi"          # RestApi, DicomProtocol, Lua, Plugins
    remote_ip: str | None = None
    remote_aet: str | None = None
    called_aet: str | None = None
    http_username: str | None = None
    #: Metadata per level set in the same transaction (ModifiedFrom, AnonymizedFrom of modified copies).
    provenance: dict[Level, dict[int, str]] = field(default_factory=dict)
    #: A modification that chose its own ``Transcode`` is stored as it is (Orthanc's SkipIngestTranscoding).
    skip_ingest_transcoding: bool = False

    def as_json(self) -> dict[str, str]:
        return {"RequestOrigin": self.kind, "RemoteIp": self.remote_ip or "",
                "RemoteAet": self.remote_aet or "", "CalledAet": self.called_aet or "",
                "Username": self.http_username or ""}


@dataclass
class StoreResult:
    status: str                     # Success, AlreadyStored, FilteredOut
    ids: dict[Level, str]
    parsed: ParsedInstance

    def as_json(self) -> dict[str, str]:
        return {
            "ID": self.ids[Level.INSTANCE],
            "ParentPatient": self.ids[Level.PATIENT],
            "ParentSeries": self.ids[Level.SERIES],
            "ParentStudy": self.ids[Level.STUDY],
            "Path": f"/instances/{self.ids[Level.INSTANCE]}",
            "Status": self.status,
        }


@dataclass
class DeleteResult:
    deleted: list[Resource]
    remaining: Resource | None


@dataclass
class Limits:
    """Recycling limits: 0 means unlimited."""

    max_storage_bytes: int = 0
    max_patients: int = 0
    overwrite: bool = False
    #: ``OverwriteInstances: IfChanged`` (Orthanc 1.13): only a different file replaces.
    overwrite_if_changed: bool = False
    #: ``MaximumStorageMode: Reject`` (Orthanc 1.11.2): refuse instead of recycling.
    reject_when_full: bool = False
    default_encoding: str = "Latin1"


def overwrite_mode(value: bool | str) -> tuple[bool, bool]:
    """``OverwriteInstances`` as (overwrite, only if changed): Booleans, or Orthanc 1.13's
    ``Never``, ``Always``, ``IfChanged``."""
    if isinstance(value, bool):
        return value, False
    return value != "Never", value == "IfChanged"


@dataclass
class _AfterCommit:
    """What a committed batch deleted (recycled, overwritten): announced and removed after."""

    deleted: list[Resource]
    obsolete: list[str]
    journal: Path | None


_NOTHING_AFTER = _AfterCommit([], [], None)


@dataclass
class _Batch:
    """What the ingests of one transaction share: what they know of the index, the ids
    reserved for their instances, the rows they write together."""

    known: Known
    reserved: Iterator[int]
    writes: Writes

#: An ingest's index work (parsed, origin, staged file), and its outcome: (status, the levels
#: it created, what to do after the commit).
_Commit = tuple["ParsedInstance", Origin, Staged]
_Committed = tuple[str, list[Level], _AfterCommit]


class Store:
    def __init__(self, index: Index, area: StorageArea, bus: events.EventBus,
                 limits: Limits, metrics: Metrics | None = None) -> None:
        self.index = index
        self.area = area
        self.bus = bus
        self.limits = limits
        self.metrics = metrics or Metrics(enabled=False)
        if index.several_writers:  # shown from the first scrape, as counters are
            for counter in (LATE_LOCK_BATCHES, LATE_LOCK_CONFLICTS):
                self.metrics.increment(counter, 0)
        #: The scripts' say on each instance (``RECEIVED_INSTANCE``, then ``STORE_INSTANCE``).
        self.interventions = bus.interventions
        #: ``IngestTranscoding``, applied after the receivers and before the filters, as in Orthanc.
        self.transcoding: IngestTranscoding | None = None
        #: Where small files are parsed and staged when nothing in this process needs a say
        #: on them first (see :meth:`_parse_and_stage`); ``None``: here, by the caller.
        self.processes: IngestProcesses | None = None
        #: Ingests under way in this process (see :data:`HAND_OVER_FROM`).
        self._ingesting = 0
        self._ingesting_lock = threading.Lock()
        #: Concurrent ingests commit together (one transaction, one wait for the index's lock).
        self._commits: GroupCommit[_Commit, _Committed] = GroupCommit(self._commit_batch)

    def ingest(self, data: bytes | mmap.mmap, origin: Origin) -> StoreResult:
        """Store one DICOM file; raises :class:`OrthancError` for what Orthanc refuses."""
        with self._ingesting_lock:
            self._ingesting += 1
        try:
            with self.metrics.timer("orthanc_store_dicom_duration_ms"):
                return self._ingest(data, origin)
        finally:
            with self._ingesting_lock:
                self._ingesting -= 1

    def _ingest(self, data: bytes | mmap.mmap, origin: Origin) -> StoreResult:
        done = self._parse_and_stage(data)
        if done is not None:
            parsed, staged = done
            return self._commit(parsed, origin, staged)
        if self.interventions.received_instance:
            check_complete(data)  # scripts see complete files only, as DCMTK parsed them first
        for receive in self.interventions.received_instance:
            received = receive(data, origin)
            if received is None:
                # Orthanc answers the parents of a discarded instance but no instance ID
                # (nor a Path to it): it never got as far as naming the instance.
                parsed = parse_for_index(data, self.limits.default_encoding)
                return StoreResult("FilteredOut", {**parsed.ids, Level.INSTANCE: ""}, parsed)
            data = received
        parsed = parse_for_index(data, self.limits.default_encoding)
        if self.transcoding is not None and not origin.skip_ingest_transcoding and self.transcoding.applies(
                parsed.transfer_syntax, lambda: has_pixel_data(parsed)):
            transcoded = self.transcoding.transcode(data)
            if transcoded is not data:
                data = transcoded
                parsed = parse_for_index(data, self.limits.default_encoding)
        for accept in self.interventions.store_instance:
            if not accept(parsed, origin):
                return StoreResult("FilteredOut", parsed.ids, parsed)
        # A copy already stored is found by the commit's own transaction (and its staged file
        # dropped), as Orthanc writes the file before its index says AlreadyStored: a lookup
        # beforehand took the index's lock twice per instance, the most contended wait when
        # several associations or clients store at once.
        return self._commit(parsed, origin, self.area.stage(data))

    def _parse_and_stage(self, data: bytes | mmap.mmap) -> tuple[ParsedInstance, Staged] | None:
        """The file parsed and staged by an ingest process, when that is all that comes
        before its commit: no script's nor ``IngestTranscoding``'s say (nor a Python
        script's storage area: ``app.py`` gives the store no processes then); ``None``
        otherwise, or when the processes could not (the caller then does it).

        Only while other ingests are under way: the hand-over costs more CPU in all (the
        pipe, two wake-ups) than it saves this process, and a lone client (one association,
        one uploader) waits for it; it pays where several ingests share this process's one
        thread of Python and another core is free."""
        if (self.processes is None or self._ingesting < HAND_OVER_FROM or self.interventions.received_instance
                or self.interventions.store_instance or self.transcoding is not None
                or not isinstance(data, bytes)):
            return None
        area = self.area
        done = self.processes.parse_and_stage(data, self.limits.default_encoding, area.staging_folder, area.compress,
                                              area.sync)
        if done is None:
            return None
        parsed, staged, seconds = done
        area.count_staged(staged, seconds)
        return parsed, staged

    def _commit(self, parsed: ParsedInstance, origin: Origin, staged: Staged) -> StoreResult:
        """Index a staged file (with the concurrent ingests'), then publish or drop it."""
        try:
            status, created, after = self._commits.submit((parsed, origin, staged))
        except BaseException:
            self.area.discard(staged.uuid)
            raise
        self._after_commit(after)
        return self._announce(parsed, origin, staged, status, created)

    def _announce(self, parsed: ParsedInstance, origin: Origin, staged: Staged, status: str,
                  created: list[Level]) -> StoreResult:
        """After the index committed: the file into place (or away), then the events."""
        if status == "AlreadyStored":
            self.area.discard(staged.uuid)
        else:
            self.area.publish(staged.uuid)
        for level in created:
            self.bus.publish(events.ResourceEvent(events.Kind.NEW_RESOURCE, level, parsed.ids[level]))
        self.bus.publish(events.InstanceStored(parsed.ids[Level.INSTANCE], origin, parsed, status))
        return StoreResult(status, parsed.ids, parsed)

    def ingest_files(self, paths: list[Path], origin: Origin) -> list[StoreResult]:
        """Store DICOM files that the caller hands over (a transfer's download area): each
        file is moved into the storage area rather than copied, and all are indexed in one
        transaction, which makes a transfer's commit much cheaper per instance than one
        :meth:`ingest` each.

        The outcome is that of :meth:`ingest` on each file in turn: where scripts or
        ``IngestTranscoding`` have a say on each instance, or when the batch fails (a bad
        file, a full storage...), each file goes through :meth:`ingest` and gets its own
        answer or error.  Files not moved stay the caller's to remove."""
        if (self.interventions.received_instance or self.interventions.store_instance
                or self.transcoding is not None):
            return [self.ingest(path.read_bytes(), origin) for path in paths]
        contents = [path.read_bytes() for path in paths]
        try:
            parsed = [parse_for_index(data, self.limits.default_encoding) for data in contents]
        except OrthancError:
            return [self.ingest(data, origin) for data in contents]
        staged = [self.area.adopt(path, data) for path, data in zip(paths, contents, strict=True)]
        try:
            outcomes = self._commit_together([(one, origin, file) for one, file in zip(parsed, staged, strict=True)])
        except OrthancError:
            return self._one_by_one(staged, contents, origin)
        except BaseException:
            for file in staged:
                self.area.discard(file.uuid)
            raise
        for _, _, after in outcomes[:1]:
            self._after_commit(after)
        return [self._announce(one, origin, file, status, created)
                for one, file, (status, created, _) in zip(parsed, staged, outcomes, strict=True)]

    def _one_by_one(self, staged: list[Staged], contents: list[bytes], origin: Origin) -> list[StoreResult]:
        """A failed batch: its adopted files are dropped, each instance is ingested alone."""
        for file in staged:
            self.area.discard(file.uuid)
        return [self.ingest(data, origin) for data in contents]

    def _commit_batch(self, batch: list[_Commit],
                      more: Callable[[], list[_Commit]]) -> list[_Committed | BaseException]:
        """Index concurrent ingests (:class:`~server.group_commit.GroupCommit`): all in one
        transaction (with those that came while it waited for the writers' lock), each in
        its own when that fails (a full storage, a refused patient...) so that each caller
        gets its own answer or error.  What the batch deletes (recycled, overwritten) goes
        with the first outcome, for its caller to announce and remove."""
        try:
            return list(self._commit_together(batch, more))
        except OrthancError as error:
            if len(batch) == 1:
                return [error]
        outcomes: list[_Committed | BaseException] = []
        for work in batch:
            try:
                outcomes.extend(self._commit_together([work]))
            except Exception as error:  # noqa: BLE001 - that caller's error, raised in its thread
                outcomes.append(error)
        return outcomes

    def _commit_together(self, batch: list[_Commit],
                         more: Callable[[], list[_Commit]] | None = None) -> list[_Committed]:
        """Index instances in one transaction, with those ``more()`` adds to ``batch`` once
        the index has answered the lookup; files they make obsolete (overwritten,
        recycled) are journaled for removal in the same transaction (see :meth:`delete`).

        Where several nodes write (PostgreSQL), the writers' lock is taken late: another
        node writes while this one looks up and prepares its rows, and the lock is held for
        the writes and the commit alone.  That needs the lookup to stay true until the
        writes; when another node created or deleted one of the batch's resources
        meanwhile, the writes fail (:class:`WriteConflict`) and the batch runs again, lock
        first.  (SQLite's one writer is this process: its batches hold the lock throughout.)"""
        if not self.index.several_writers:
            return self._commit_in(batch, more, late_lock=False)
        self.metrics.increment(LATE_LOCK_BATCHES, 1)
        try:
            return self._commit_in(batch, more, late_lock=True)
        except WriteConflict as conflict:
            log.debug("Ingest batch of %d run again, lock first: %s", len(batch), conflict)
            self.metrics.increment(LATE_LOCK_CONFLICTS, 1)
            return self._commit_in(batch, None, late_lock=False)

    def _commit_in(self, batch: list[_Commit], more: Callable[[], list[_Commit]] | None,
                   late_lock: bool) -> list[_Committed]:
        obsolete: list[str] = []
        deleted: list[Resource] = []
        writes = Writes()
        with self.index.transaction(late_lock) as db:
            reserved = self.index.reserve_resource_ids(db, len(batch))  # one id per instance
            known = self.index.ingest_lookup(db, [parsed.ids for parsed, _, _ in batch])
            extra = more() if more is not None else []
            if extra:
                reserved = itertools.chain(reserved, self.index.reserve_resource_ids(db, len(extra)))
                known.update(self.index.ingest_lookup(db, [parsed.ids for parsed, _, _ in extra]))
            if late_lock and self._reads_while_writing(batch, known):
                self.index.lock_writers(db)
                late_lock = False
                known = self.index.ingest_lookup(db, [parsed.ids for parsed, _, _ in batch])
            new_parents = {public_id for parsed, _, _ in batch for level, public_id in parsed.ids.items()
                           if level is not Level.INSTANCE and public_id not in known.ids}
            if new_parents:
                reserved = itertools.chain(reserved, self.index.reserve_resource_ids(db, len(new_parents)))
            shared = _Batch(known, reserved, writes)
            indexed = [self._index_in(db, parsed, origin, staged, shared, deleted, obsolete)
                       for parsed, origin, staged in batch]
            if late_lock:
                self.index.lock_writers(db)
            writes.flush(db)
            journal = self.area.journal_removals(obsolete)
        after = _AfterCommit(deleted, obsolete, journal)
        return [(status, created, after if number == 0 else _NOTHING_AFTER)
                for number, (status, created) in enumerate(indexed)]

    def _after_commit(self, after: _AfterCommit) -> None:
        """Outside the writers' lock: the deleted resources announced, their files removed."""
        for resource in after.deleted:
            self.bus.publish(events.ResourceEvent(events.Kind.DELETED, resource.level, resource.public_id))
        self.area.remove_journaled(after.journal, after.obsolete)

    def _reads_while_writing(self, batch: list[_Commit], known: Known) -> bool:
        """Whether indexing ``batch`` reads the index between its writes (recycling, an
        overwritten instance, a series' completeness): those reads need the writers'
        lock, and a lookup made under it."""
        if self.limits.max_storage_bytes or self.limits.max_patients:
            return True
        return any((self.limits.overwrite and parsed.ids[Level.INSTANCE] in known.ids)
                   or known.expected.get(parsed.ids[Level.SERIES]) or expected_instances(parsed) is not None
                   for parsed, _, _ in batch)

    def _index_in(self, db: Connection, parsed: ParsedInstance, origin: Origin, staged: Staged, batch: _Batch,
                  deleted: list[Resource], obsolete: list[str]) -> tuple[str, list[Level]]:
        """Index one instance in the transaction ``db``, a part of ``batch``: its status and
        the levels it created; what it deletes (overwritten, recycled) is added to
        ``deleted`` and its files to ``obsolete``.  The batch's writes are flushed before
        whatever reads them (the files and totals of recycling, an overwritten instance)."""
        now = utc_now_iso()
        known, writes = batch.known, batch.writes
        existing = known.ids.get(parsed.ids[Level.INSTANCE])
        if existing is not None:
            if not self.limits.overwrite:
                return "AlreadyStored", []
            writes.flush(db)
            if self.limits.overwrite_if_changed and self._same_file(db, existing, staged.uncompressed_md5):
                return "AlreadyStored", []
            resource = self.index.lookup_in(db, parsed.ids[Level.INSTANCE])
            assert resource is not None  # the lookup of this transaction found it
            gone, uuids, _ = self.index.delete(db, resource)
            known.deleted(gone)
            deleted += gone
            obsolete += uuids
        if self.limits.max_storage_bytes or self.limits.max_patients:
            writes.flush(db)  # the totals and the recycling order as they are now
            recycled, recycled_files = self._recycle(db, parsed, staged.size)
            known.deleted(recycled)
            deleted += recycled
            obsolete += recycled_files
        internal, created = self.index.insert_hierarchy(db, parsed.ids, parsed.tags, now, known,
                                                        batch.reserved, writes)
        writes.touch_unstable([(internal[level], level) for level in (Level.SERIES, Level.STUDY, Level.PATIENT)])
        writes.attach(internal[Level.INSTANCE], Attachment(
            ATTACHMENT_DICOM, staged.uuid, staged.size, staged.uncompressed_size,
            staged.compression, staged.uncompressed_md5, staged.md5))
        metadata = writes.metadata
        metadata.update({(internal[level], Metadata.LastUpdate): now
                         for level in (Level.PATIENT, Level.STUDY, Level.SERIES)})
        metadata.update({(internal[Level.INSTANCE], kind): value
                         for kind, value in self._instance_metadata(parsed, origin, now).items()})
        for level, values in origin.provenance.items():
            metadata.update({(internal[level], kind): value for kind, value in values.items()})
        for level in created:
            metadata.update({(internal[level], kind): value
                             for kind, value in main_tags_metadata(parsed, level).items()
                             if value is not None})
        if Level.SERIES in created:
            metadata[internal[Level.SERIES], Metadata.RemoteAET] = origin.remote_aet or ""
            expected_text = expected_instances(parsed)
            if expected_text is not None:
                metadata[internal[Level.SERIES], Metadata.ExpectedNumberOfInstances] = expected_text
                known.expected[parsed.ids[Level.SERIES]] = expected_count(expected_text)
        if Level.PATIENT not in created:
            writes.patient_used(internal[Level.PATIENT])
        if self.index.series_complete(db, internal[Level.SERIES],
                                      known.expected.get(parsed.ids[Level.SERIES], 0), writes):
            writes.change(Change.CompletedSeries, internal[Level.SERIES], Level.SERIES, now)
        return "Success", created

    @staticmethod
    def _same_file(db: Connection, instance: int, md5: str) -> bool:
        """Whether the stored DICOM file of ``instance`` has this MD5."""
        row = db.execute("SELECT uncompressedMD5 FROM AttachedFiles WHERE id=? AND fileType=?",
                         (instance, ATTACHMENT_DICOM)).fetchone()
        return row is not None and row[0] == md5

    @staticmethod
    def _instance_metadata(parsed: ParsedInstance, origin: Origin, now: str) -> dict[int, str]:
        values: dict[int, str] = {
            Metadata.ReceptionDate: now,
            Metadata.RemoteAET: origin.remote_aet or "",
            Metadata.Origin: origin.kind,
        }
        if parsed.transfer_syntax:
            values[Metadata.TransferSyntax] = parsed.transfer_syntax
        if parsed.sop_class_uid:
            values[Metadata.SopClassUid] = parsed.sop_class_uid
        if origin.remote_ip is not None:
            values[Metadata.RemoteIP] = origin.remote_ip
        if origin.called_aet is not None:
            values[Metadata.CalledAET] = origin.called_aet
        if origin.kind == "RestApi":
            values[Metadata.HttpUsername] = origin.http_username or ""
        index = (parsed.tags[Level.INSTANCE].get((0x0020, 0x0013))
                 or parsed.tags[Level.INSTANCE].get((0x0054, 0x1330)))
        if index:
            values[Metadata.IndexInSeries] = index.strip()
        if parsed.pixel_data_offset is not None:
            values[Metadata.PixelDataOffset] = str(parsed.pixel_data_offset)
        if parsed.odd_pixel_vr is not None and server.ORTHANC_API_VERSION >= 21:  # Orthanc 1.12.1
            values[Metadata.PixelDataVR] = parsed.odd_pixel_vr
        return values

    def _recycle(self, db: Connection, parsed: ParsedInstance, size: int) -> tuple[list[Resource], list[str]]:
        """Delete the oldest unprotected patients until the new instance fits the limits
        (``MaximumStorageSize``, ``MaximumPatientCount``: called when either is set)."""
        limits = self.limits
        own = self.index.lookup_in(db, parsed.ids[Level.PATIENT])
        own_id = own.internal_id if own else None
        deleted: list[Resource] = []
        files: list[str] = []
        while self._over_limits(db, size, own is None):
            if limits.reject_when_full:
                raise OrthancError(ErrorCode.FULL_STORAGE)
            victim = self.index.oldest_unprotected_patient(db, own_id)
            if victim is None:
                raise OrthancError(ErrorCode.FULL_STORAGE)
            log.info("Recycling patient %s to make room", victim.public_id)
            gone, uuids, _ = self.index.delete(db, victim)
            deleted += gone
            files += uuids
        return deleted, files

    def _over_limits(self, db: Connection, size: int, new_patient: bool) -> bool:
        limits = self.limits
        if limits.max_storage_bytes:
            used, _ = self.index.totals(db)
            if used + size > limits.max_storage_bytes:
                return True
        if limits.max_patients and new_patient:
            count = db.execute("SELECT COUNT(*) FROM Resources WHERE resourceType=0").fetchone()[0]
            if count + 1 > limits.max_patients:
                return True
        return False

    def delete(self, resource: Resource) -> DeleteResult:
        """Forget ``resource`` in the index, then remove its files (journaled: see
        :mod:`server.storage.area`, a crash in between leaves no orphan file)."""
        with self.index.transaction() as db:
            deleted, uuids, remaining = self.index.delete(db, resource)
            if remaining is not None and server.ORTHANC_API_VERSION >= 21:
                self._touch_ancestors(db, remaining)
            journal = self.area.journal_removals(uuids)
        self.area.remove_journaled(journal, uuids)
        for gone in deleted:
            self.bus.publish(events.ResourceEvent(events.Kind.DELETED, gone.level, gone.public_id))
        return DeleteResult(deleted, remaining)

    def _touch_ancestors(self, db: Connection, remaining: Resource) -> None:
        """Orthanc 1.12.1: a deletion updates the ``LastUpdate`` of the parents that remain."""
        now = utc_now_iso()
        current: int | None = remaining.internal_id
        while current is not None:
            self.index.set_metadata_in(db, current, {Metadata.LastUpdate: now})
            row = db.execute("SELECT parentId FROM Resources WHERE internalId=?", (current,)).fetchone()
            current = row[0] if row else None

    def dicom_attachment(self, instance: Resource) -> Attachment:
        attachment = self.index.attachments(instance.internal_id).get(ATTACHMENT_DICOM)
        if attachment is None:
            raise OrthancError(ErrorCode.INEXISTENT_FILE)
        return attachment

    def read_dicom(self, instance: Resource, attachment: Attachment | None = None) -> bytes:
        """The instance's DICOM file; ``attachment`` is its DICOM attachment when looked up
        already (with others': :meth:`Index.attachments_many`), looked up again when its file
        is gone (the attachment was replaced since, by a compression say)."""
        if attachment is not None:
            try:
                return self.area.read(attachment.uuid, attachment.compression)
            except OrthancError:
                pass
        attachment = self.dicom_attachment(instance)
        return self.area.read(attachment.uuid, attachment.compression)


def main_tags_metadata(parsed: ParsedInstance, level: Level) -> dict[int, str | None]:
    """The metadata that record how a level was indexed: the signature of the main tags
    (from API 17, Orthanc 1.11), and the main tags that are sequences (``MainDicomSequences``,
    Orthanc 1.11.1; ``None`` when the file has none of them)."""
    nodes = parsed.sequences.get(level)
    values: dict[int, str | None] = {
        Metadata.MainDicomSequences: json.dumps({"Version": 1, "Sequences": nodes}) if nodes else None}
    if server.ORTHANC_API_VERSION >= 17:  # Orthanc 1.11
        values[Metadata.MainDicomTagsSignature] = main_tags_signature(level)
    return values


def has_pixel_data(parsed: ParsedInstance) -> bool:
    """Whether the file has pixels: where the index found them, else (a file without
    preamble) from the whole dataset."""
    return parsed.pixel_data_offset is not None or "PixelData" in read_image_dataset(parsed.data)


def expected_instances(parsed: ParsedInstance) -> str | None:
    """Orthanc 1.10.1's ExpectedNumberOfInstances of a series, from its first instance.

    Only ImagesInAcquisition x NumberOfTemporalPositions counts: the real server
    leaves it null for series that carry NumberOfSlices or CardiacNumberOfImages alone.
    """
    tags = parsed.tags[Level.SERIES]
    images = tags.get((0x0020, 0x1002), "")
    temporal = tags.get((0x0020, 0x0105), "")
    if images.isdigit() and temporal.isdigit():
        return str(int(images) * int(temporal))
    return None
