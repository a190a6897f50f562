"""The ``Archive`` and ``Media`` job types: ZIP files of instances, laid out as Orthanc does.

Orthanc's ``ArchiveJob`` (1.10.1): the request's resources are gathered into a
tree (patients, studies and series sorted by Orthanc ID, instances in index
order), which becomes a list of commands: open a folder, write an instance,
close a folder.  A step writes one instance (after the folders to open or close
before it), so pause and cancel take effect between two instances; a last step
adds the DICOMDIR (Media) and closes the ZIP.

Archive names (Orthanc 1.10.1): ``{PatientID} {PatientName}/{AccessionNumber}
{StudyDescription}/{Modality} {SeriesDescription}/{MO}{NNNNNN}.dcm``, reduced to
printable ASCII, ``^`` as a space, keeping only letters, digits, ``.``, ``_`` and
single spaces, ``Unknown Patient|Study|Series`` when empty, ``-2``, ``-3``... for
duplicates, instances numbered from 0 in each series.  Newer levels, each from its
``ApiVersion``: the patient folder of a study or series archive follows the study's
patient tags (1.12.2); files are numbered by their ``IndexInSeries`` (InstanceNumber)
when these are unique in the series (1.12.6); names keep every character but the few
that break file systems, and may be UTF-8 (``Utf8``, ``ZipUseUtf8``, 1.12.11); folders
join the non-empty tags with `` - `` and the series folder starts with SeriesNumber
(1.13).
Media names: ``IMAGES/IM0``, ``IMAGES/IM1``... and ``DICOMDIR`` at the root.

The ZIP is written to a temporary file under ``StorageDirectory/jobs``, never in
memory.  Unlike Orthanc, the jobs are persisted: after a restart an unfinished
one starts again from its first step in a fresh file, a finished asynchronous
one keeps its output, and a failed one can be resubmitted.  ``MediaArchiveSize``
bounds the outputs of finished asynchronous jobs (least recently used removed
first; the job stays ``Success`` and ``/jobs/{id}/archive`` answers 404).

Synchronous callers follow the ZIP while it grows: :attr:`ArchiveJob.on_bytes` is
called after every step with the number of bytes that will not change any more.
"""

from __future__ import annotations

import logging
import re
import threading
import time
import uuid
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import server
from server.dicom.charset import FollowsDefaultEncoding
from server.dicom.json_format import dataset_decoder
from server.dicom.main_tags import Level
from server.dicom.parse import read_dataset
from server.dicom.transcode import Settings, transcode_or_keep
from server.errors import ErrorCode, OrthancError
from server.jobs.dicomdir import DicomDirWriter
from server.jobs.job import Job, Output, StepResult, StopReason
from server.storage.index import ATTACHMENT_DICOM, Metadata, Resource

if TYPE_CHECKING:
    from server.config import Configuration
    from server.storage.index import Index
    from server.store import Store

log = logging.getLogger("isengard.jobs")

MEGA_BYTES = 1024 * 1024
MEDIA_IMAGES_FOLDER = "IMAGES"
OUTPUT_KEY = "archive"
ZIP_MIME = "application/zip"
#: The download name of an asynchronous job's ZIP when the request names none (Orthanc 1.10.1).
DEFAULT_OUTPUT_FILENAME = "archive.zip"
#: Orthanc's ZIP comment, kept so that archives (and ``ArchiveSize``) are the same as Orthanc's.
ZIP_COMMENT = b"Created by Orthanc"

PATIENT_ID, PATIENT_NAME = (0x0010, 0x0020), (0x0010, 0x0010)
ACCESSION_NUMBER, STUDY_DESCRIPTION = (0x0008, 0x0050), (0x0008, 0x1030)
MODALITY, SERIES_DESCRIPTION = (0x0008, 0x0060), (0x0008, 0x103E)
SERIES_NUMBER = (0x0020, 0x0011)

#: The ``ApiVersion`` of each change of the archive layout (see the module's docstring).
API_PATIENT_FROM_STUDY = 22  # Orthanc 1.12.2
API_INDEX_IN_SERIES = 27  # Orthanc 1.12.6
API_NORMALIZED_PATHS = 30  # Orthanc 1.12.11
API_DASHED_FOLDERS = 31  # Orthanc 1.13.0


# -- names ---------------------------------------------------------------------------

_C_SPACES = " \t\n\v\f\r"


def convert_to_ascii(text: str) -> str:
    """Orthanc's ``Toolbox::ConvertToAscii``: printable 7-bit characters only."""
    return "".join(c for c in text if " " <= c < "\x7f")


def keep_alphanumeric(name: str) -> str:
    """``HierarchicalZipWriter::Index::KeepAlphanumeric`` on the UTF-8 bytes of ``name``."""
    result: list[str] = []
    last_space = False
    for byte in name.encode("utf-8", "surrogateescape"):
        c = " " if byte == 0x5E else chr(byte)
        if byte >= 0x80:
            continue
        if c in _C_SPACES:
            if not last_space:
                last_space = True
                result.append(" ")
        elif c.isascii() and (c.isalnum() or c in "._"):
            result.append(c)
            last_space = False
    return "".join(result).strip(_C_SPACES)


#: A run of the characters that Orthanc's ``NormalizePath`` turns into one space: C's white
#: space, the control characters, those that break some file systems, and the (back)slashes.
_PATH_BREAKERS = re.compile(r'[\x00-\x20:*?"<>|/\\]+')
#: What ``ConvertToAscii`` drops, except the new lines that then become spaces.
_NOT_PRINTABLE_ASCII = re.compile(r"[^\n\x20-\x7e]+")


def normalize_path(name: str, utf8: bool) -> str:
    """Orthanc's ``Toolbox::NormalizePath`` (1.12.11) without slashes: non-ASCII characters
    dropped unless ``utf8``, each run of breaking characters one space, stripped (with regular
    expressions, 4 times faster than a loop over the characters: a few per file of an archive)."""
    converted = name if utf8 else _NOT_PRINTABLE_ASCII.sub("", name)
    return _PATH_BREAKERS.sub(" ", converted).strip(_C_SPACES)


class ZipPaths:
    """Folder and file names inside the ZIP, unique per folder (``HierarchicalZipWriter::Index``):
    kept alphanumeric (Orthanc 1.10.1) or normalized (1.12.11, ``utf8`` keeps non-ASCII)."""

    def __init__(self, utf8: bool = False) -> None:
        self._folders: list[str] = []
        self._counts: list[dict[str, int]] = [{}]
        self._utf8 = utf8

    def _unique(self, name: str) -> str:
        if server.ORTHANC_API_VERSION >= API_NORMALIZED_PATHS:
            standardized = normalize_path(name, self._utf8)
        else:
            standardized = keep_alphanumeric(name)
        counts = self._counts[-1]
        if standardized not in counts:
            counts[standardized] = 1
            return standardized
        counts[standardized] += 1
        return f"{standardized}-{counts[standardized]}"

    def open_folder(self, name: str) -> None:
        self._folders.append(self._unique(name))
        self._counts.append({})

    def close_folder(self) -> None:
        self._folders.pop()
        self._counts.pop()

    def file(self, name: str) -> str:
        return "".join(folder + "/" for folder in self._folders) + self._unique(name)


# -- plan ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Command:
    """One step of the ZIP: open a folder, write an instance, or close the current folder."""

    kind: str  # "open", "write", "close"
    name: str = ""
    instance: Resource | None = None


def _index_in_series(services: ArchiveServices, instance: Resource) -> int:
    """The instance's ``IndexInSeries`` metadata as Orthanc reads it: 0 if absent or no uint32."""
    value = services.index.metadata(instance.internal_id).get(Metadata.IndexInSeries, "")
    return int(value) if value.isdigit() and int(value) < 2 ** 32 else 0


class _Node:
    """Orthanc's ``ArchiveIndex``: one level of the tree of requested resources.

    Above the instance level, children are keyed by Orthanc ID (walked in sorted
    order); a child of ``None`` is a resource asked for as a whole, to be expanded
    into all its children.  ``key_level`` is the level whose resources key this node:
    the study for the patient folders of a study or series archive (Orthanc's
    ``PatientInfoFromStudy``), so that they show the patient tags of the study.
    """

    def __init__(self, level: Level, key_level: Level | None = None) -> None:
        self.level = level
        self.key_level = level if key_level is None else key_level
        self.resources: dict[str, tuple[Resource, _Node | None]] = {}
        #: (instance, number in its series, size of its DICOM file)
        self.instances: list[tuple[Resource, int, int]] = []

    def add(self, services: ArchiveServices, chain: dict[Level, Resource], requested: Level) -> None:
        resource = chain[self.key_level]
        if self.level is Level.INSTANCE:
            self._add_instance(services, resource, _index_in_series(services, resource))
            return
        previous = self.resources.get(resource.public_id)
        if requested == self.level:
            self.resources[resource.public_id] = (resource, None)
        elif previous is None:
            child = _Node(Level(self.level + 1))
            child.add(services, chain, requested)
            self.resources[resource.public_id] = (resource, child)
        elif previous[1] is not None:
            previous[1].add(services, chain, requested)

    def _add_instance(self, services: ArchiveServices, resource: Resource, number: int) -> None:
        attachment = services.index.attachments(resource.internal_id).get(ATTACHMENT_DICOM)
        if attachment is not None:
            self.instances.append((resource, number, attachment.uncompressed_size))

    def _expand_series(self, services: ArchiveServices, series: Resource) -> None:
        """The instances of a series: in index order numbered from 0 (Orthanc 1.10.1), or
        (1.12.6, ``SimpleInstanceOrdering``) sorted by IndexInSeries and numbered by it when
        no two share one, else numbered from 0 in that order."""
        instances = services.index.children(series.internal_id)
        if server.ORTHANC_API_VERSION < API_INDEX_IN_SERIES:
            for instance in instances:
                self._add_instance(services, instance, 0)
            return
        ordered = sorted(((_index_in_series(services, i), i) for i in instances), key=lambda pair: pair[0])
        unique = len({number for number, _ in ordered}) == len(ordered)
        for position, (number, instance) in enumerate(ordered):
            self._add_instance(services, instance, number if unique else position)

    def expand(self, services: ArchiveServices) -> None:
        for public_id, (resource, child) in list(self.resources.items()):
            if child is None:
                child = _Node(Level(self.level + 1))
                if child.level is Level.INSTANCE:
                    child._expand_series(services, resource)
                else:
                    for grandchild in services.index.children(resource.internal_id):
                        child.resources[grandchild.public_id] = (grandchild, None)
                self.resources[public_id] = (resource, child)
            child.expand(services)

    def folder_ids(self) -> list[int]:
        """The internal IDs of the resources that name a folder (every one above the instances)."""
        if self.level is Level.INSTANCE:
            return []
        ids = []
        for resource, child in self.resources.values():
            ids.append(resource.internal_id)
            if child is not None:
                ids += child.folder_ids()
        return ids

    def apply(self, visitor: _Visitor) -> None:
        if self.level is Level.INSTANCE:
            for resource, number, size in self.instances:
                visitor.add_instance(resource, number, size)
            return
        for public_id in sorted(self.resources):
            resource, child = self.resources[public_id]
            visitor.open(self.level, resource)
            assert child is not None
            child.apply(visitor)
            visitor.close()


def _tag(tags: dict[tuple[int, int], str], tag: tuple[int, int]) -> str:
    return tags.get(tag, "")


class _Visitor:
    """Turns the tree into commands (Orthanc's ``ArchiveIndexVisitor``); ``tags``: the main tags
    of the resources that name folders (:meth:`_Node.folder_ids`), read in one query."""

    def __init__(self, services: ArchiveServices, tags: dict[int, dict[tuple[int, int], str]]) -> None:
        self.services = services
        self._tags = tags
        self.commands: list[Command] = []
        self.instances_count = 0
        self.uncompressed_size = 0
        self._prefix = b""
        self._digits = 8
        self._counter = 0

    def open(self, level: Level, resource: Resource) -> None:
        tags = self._tags[resource.internal_id]
        if level is Level.SERIES:
            modality = _tag(tags, MODALITY)
            self._prefix = bytes(b - 32 if 0x61 <= b <= 0x7A else b for b in modality.encode()[:2])
            self._digits = 8 - len(self._prefix)
            self._counter = 0
        if level is Level.PATIENT:
            parts = [_tag(tags, PATIENT_ID), _tag(tags, PATIENT_NAME)]
        elif level is Level.STUDY:
            parts = [_tag(tags, ACCESSION_NUMBER), _tag(tags, STUDY_DESCRIPTION)]
        else:
            parts = [_tag(tags, MODALITY), _tag(tags, SERIES_DESCRIPTION)]
        api = server.ORTHANC_API_VERSION
        if api >= API_DASHED_FOLDERS:
            if level is Level.SERIES:
                parts.insert(0, _tag(tags, SERIES_NUMBER))
            path = " - ".join(parts[:1] + [part for part in parts[1:] if part]
                              if level is Level.PATIENT else [part for part in parts if part])
        else:
            path = " ".join(parts)
        path = path.strip(_C_SPACES) if api >= API_NORMALIZED_PATHS else convert_to_ascii(path).strip(_C_SPACES)
        if not path or (api >= API_PATIENT_FROM_STUDY and path.count("^") == len(path)):
            path = f"Unknown {level.title}"
        self.commands.append(Command("open", path))

    def close(self) -> None:
        self.commands.append(Command("close"))

    def add_instance(self, resource: Resource, number: int, size: int) -> None:
        """``number``: the instance's number in its series (Orthanc 1.12.6); before, a counter."""
        if server.ORTHANC_API_VERSION < API_INDEX_IN_SERIES:
            number = self._counter
            self._counter += 1
        self._write(self._prefix.decode("latin-1") + f"{number:0{self._digits}d}.dcm", resource, size)

    def _write(self, name: str, resource: Resource, size: int) -> None:
        self.commands.append(Command("write", name, resource))
        self.instances_count += 1
        self.uncompressed_size += size


class _MediaVisitor(_Visitor):
    """``IMAGES/IM0``, ``IMAGES/IM1``... whatever the hierarchy (Orthanc's ``MediaIndexVisitor``)."""

    def open(self, level: Level, resource: Resource) -> None:
        return

    def close(self) -> None:
        return

    def add_instance(self, resource: Resource, number: int, size: int) -> None:
        self._write(f"IM{self._counter}", resource, size)
        self._counter += 1


def _chain(services: ArchiveServices, public_id: str) -> tuple[dict[Level, Resource], Level]:
    """The resource and its ancestors (Orthanc's ``ResourceIdentifiers``); 404 if unknown."""
    resource = services.index.lookup(public_id)
    if resource is None:
        raise OrthancError(ErrorCode.UNKNOWN_RESOURCE)
    chain = {resource.level: resource}
    current: Resource | None = resource
    while current is not None and current.level > Level.PATIENT:
        current = services.index.parent(current)
        if current is None:
            raise OrthancError(ErrorCode.UNKNOWN_RESOURCE)
        chain[current.level] = current
    return chain, resource.level


def build_plan(services: ArchiveServices, resources: list[str], media: bool,
               patient_from_study: bool = False) -> _Visitor:
    """The commands that build the ZIP of ``resources``, with the instance count and size;
    ``patient_from_study``: name the patient folders after the patient tags of the studies
    (the archive of one study or series, from Orthanc 1.12.2)."""
    from_study = patient_from_study and server.ORTHANC_API_VERSION >= API_PATIENT_FROM_STUDY
    root = _Node(Level.PATIENT, Level.STUDY if from_study else None)
    for public_id in resources:
        chain, level = _chain(services, public_id)
        if from_study and level is Level.PATIENT:
            raise OrthancError(ErrorCode.INEXISTENT_ITEM, f"Missing resource while creating an archive: {public_id}")
        root.add(services, chain, level)
    root.expand(services)
    visitor: _Visitor
    if media:
        visitor = _MediaVisitor(services, {})
        visitor.commands.append(Command("open", MEDIA_IMAGES_FOLDER))
        root.apply(visitor)
        visitor.commands.append(Command("close"))
    else:
        visitor = _Visitor(services, services.index.main_tags_many(root.folder_ids()))
        root.apply(visitor)
    return visitor


# -- the files of the archive jobs -------------------------------------------------------

ZIP_PATTERNS = ("archive-*.zip", "media-*.zip")


class ArchiveFiles:
    """The ZIP files of one server's archive jobs.

    Finished asynchronous outputs are kept at most ``MediaArchiveSize`` at a time, as
    Orthanc's LRU cache (``SharedArchive``): adding one beyond the capacity removes the
    least recently used, and a download makes it the most recent.  Files that no job
    claims (left by a crash, or by a restart with ``SaveJobs: false``) are deleted when
    the first archive job starts, that is once the saved jobs are all restored.  In a
    cluster (``shared``), whose nodes share the folder, the capacity bounds the outputs of
    the jobs each node ran, and a file is an orphan when no job of the cluster's queue
    names it either (:attr:`saved_files`).
    """

    def __init__(self, folder: Path, capacity: int, shared: bool = False) -> None:
        self.folder = folder
        self.capacity = max(1, capacity)
        self.shared = shared
        #: In a cluster: the files that the jobs saved by every node name (their ``File``),
        #: given by the composition root once the cluster's queue exists.  Until then a
        #: cluster node does not sweep.
        self.saved_files: Callable[[], set[str]] | None = None
        self._lock = threading.Lock()
        self._entries: list[tuple[float, ArchiveJob]] = []
        #: The files of the jobs known so far; None once swept.
        self._claimed: set[str] | None = set()
        self._sweeping = False

    def claim(self, path: Path) -> None:
        with self._lock:
            if self._claimed is not None:
                self._claimed.add(path.name)

    def sweep(self) -> None:
        """Delete the ZIPs no job claims, once.  The claims are read after the folder is
        listed: another worker may submit and start a job meanwhile, and a job claims its
        file before making it, so a listed file that no claim names is an orphan.  Claims
        made after the sweep are not kept: those jobs' files did not exist when it listed."""
        with self._lock:
            if self._claimed is None or self._sweeping or (self.shared and self.saved_files is None):
                return
            self._sweeping = True
        try:
            found = [path for pattern in ZIP_PATTERNS for path in self.folder.glob(pattern)]
            # In a cluster, a job's row also names its file before the file is made and until
            # it is deleted: the rows are read after the listing too.
            saved = self.saved_files() if self.saved_files is not None else set()
        except Exception:  # noqa: BLE001 - the folder or the database: the next job's start tries again
            log.exception("Cannot sweep the orphaned archives")
            with self._lock:
                self._sweeping = False
            return
        with self._lock:
            claimed, self._claimed = self._claimed or set(), None
        for path in found:
            if path.name not in claimed and path.name not in saved:
                log.warning("Removing the orphaned archive %s", path)
                path.unlink(missing_ok=True)

    def add(self, job: ArchiveJob, when: float) -> None:
        with self._lock:
            self._entries = [e for e in self._entries if e[1] is not job]
            self._entries.append((when, job))
            self._entries.sort(key=lambda entry: entry[0])
            evicted = []
            while len(self._entries) > self.capacity:
                evicted.append(self._entries.pop(0)[1])
        for job_evicted in evicted:
            job_evicted.evict_output()

    def touch(self, job: ArchiveJob) -> None:
        with self._lock:
            if any(entry[1] is job for entry in self._entries):
                self._entries = [e for e in self._entries if e[1] is not job]
                self._entries.append((time.time(), job))

    def remove(self, job: ArchiveJob) -> None:
        with self._lock:
            self._entries = [e for e in self._entries if e[1] is not job]


@dataclass(frozen=True)
class ArchiveServices(FollowsDefaultEncoding):
    """What the archive and media jobs use."""

    config: Configuration
    index: Index
    store: Store
    #: The ZIPs of this server's archive jobs (in ``StorageDirectory/jobs``).
    files: ArchiveFiles
    #: The current ``DefaultEncoding`` (``PUT /tools/default-encoding`` changes it at run time).
    encoding: Callable[[], str]


# -- the jobs ----------------------------------------------------------------------------

class ArchiveJob(Job):
    """A ZIP of instances (``Archive``); :class:`MediaJob` adds the DICOMDIR."""

    TYPE = "Archive"
    MEDIA = False

    def __init__(self, services: ArchiveServices, resources: list[str], description: str = "REST API",
                 transcode: str | None = None, extended: bool = False, asynchronous: bool = True,
                 filename: str = DEFAULT_OUTPUT_FILENAME, lossy_quality: int | None = None,
                 utf8: bool = False, patient_from_study: bool = False) -> None:
        super().__init__()
        self.services = services
        self.resources = list(resources)
        self.description = description
        self.transcode = transcode
        #: The request's ``LossyQuality`` (Orthanc 1.12.7), else ``DicomLossyTranscodingQuality``.
        self.lossy_quality = lossy_quality
        self.extended = extended
        self.asynchronous = asynchronous
        #: The download name of the output (the body's ``Filename``, Orthanc 1.12.7).
        self.filename = filename
        #: UTF-8 names in the ZIP (the body's ``Utf8`` or ``ZipUseUtf8``, Orthanc 1.12.11).
        self.utf8 = utf8
        #: The patient folders show the studies' patient tags (one study or series, 1.12.2).
        self.patient_from_study = patient_from_study
        self.instances_count = 0
        self.uncompressed_size = 0
        self.archive_size = 0
        self.position = 0
        self.complete = False
        #: Where the ZIP is written, fixed for the job's whole life (saved, so that a restart
        #: finds an interrupted one); :attr:`file` is set while the file exists.
        self.path = services.files.folder / f"{self.TYPE.lower()}-{uuid.uuid4()}.zip"
        self.file: Path | None = None
        self.output_time: float | None = None
        #: Called from the worker with the number of bytes of :attr:`file` that are final.
        self.on_bytes: Callable[[int], None] | None = None
        self._commands: list[Command] | None = None
        self._stream: IO[bytes] | None = None
        self._zip: zipfile.ZipFile | None = None
        #: ``ZipCompressionLevel`` (Isengard's; Orthanc's minizip always deflates at 6).
        self._level = int(services.config["ZipCompressionLevel"])
        self._paths = ZipPaths()
        self._dicomdir: DicomDirWriter | None = None
        self._lock = threading.Lock()
        services.files.claim(self.path)

    # -- preparation -------------------------------------------------------------------

    def plan(self) -> None:
        """Resolve the resources into the list of steps (404 if one is unknown)."""
        visitor = build_plan(self.services, self.resources, self.MEDIA, self.patient_from_study)
        self._commands = visitor.commands
        self.instances_count = visitor.instances_count
        self.uncompressed_size = visitor.uncompressed_size

    def start(self) -> None:
        if self.complete or self._zip is not None:
            return
        self.services.files.sweep()
        if self._commands is None:
            self.plan()
        # No unlink nor mkdir first (two system calls per job): opening truncates a ZIP left by
        # an earlier run, and the folder is made when missing.
        try:
            self._stream = open(self.path, "w+b")  # noqa: SIM115 - closed in _close_zip
        except FileNotFoundError:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._stream = open(self.path, "w+b")  # noqa: SIM115 - closed in _close_zip
        self.file = self.path
        self._zip = zipfile.ZipFile(self._stream, "w", zipfile.ZIP_DEFLATED)
        self._zip.comment = ZIP_COMMENT
        self._paths = ZipPaths(self.utf8)
        self._dicomdir = DicomDirWriter(self.extended) if self.MEDIA else None
        self.position = 0
        self.archive_size = 0

    # -- steps -------------------------------------------------------------------------

    def step(self) -> StepResult:
        """The folders to open or close (names only, no file work), then one instance; the
        last step closes the folders left and the ZIP.  An archive of one instance takes 2
        steps rather than 8: each step costs the engine a round of locks, snapshots, events."""
        if self.complete:
            return StepResult.success()
        commands = self._commands
        assert commands is not None and self._zip is not None and self._stream is not None
        while self.position < len(commands):
            command = commands[self.position]
            self._apply(command)
            self.position += 1
            if command.kind == "write":
                self._committed(self._stream.tell())
                return StepResult.next()
        self._finish()
        return StepResult.success()

    def _apply(self, command: Command) -> None:
        if command.kind == "open":
            self._paths.open_folder(command.name)
        elif command.kind == "close":
            self._paths.close_folder()
        else:
            assert command.instance is not None
            self._write(command.name, command.instance)

    def _write(self, name: str, instance: Resource) -> None:
        assert self._zip is not None
        try:
            data = self.services.store.read_dicom(instance)
        except (OrthancError, OSError):
            log.warning("An instance was removed after the job was issued: %s", instance.public_id)
            return
        path = self._paths.file(name)
        if self.transcode is not None:
            data = transcode_or_keep(data, self.transcode,
                                     Settings.from_config(self.services.config, self.lossy_quality))
        self._add(path, data)
        if self._dicomdir is not None:
            ds, _ = read_dataset(data, stop_before_pixels=True)
            self._dicomdir.add(ds, dataset_decoder(ds, self.services.default_encoding), [MEDIA_IMAGES_FOLDER, name])

    def _add(self, path: str, data: bytes) -> None:
        """One file into the ZIP, at the ``ZipCompressionLevel`` of this run of the server."""
        assert self._zip is not None
        self._zip.writestr(_zip_info(path, self._level), data, compresslevel=self._level)

    def _finish(self) -> None:
        """Last step: the DICOMDIR of a media, the ZIP's central directory, the output."""
        assert self._zip is not None
        if self._dicomdir is not None:
            self._add(self._paths.file("DICOMDIR"), self._dicomdir.encode())
        self._close_zip()
        assert self.file is not None
        self.archive_size = self.file.stat().st_size
        self.complete = True
        self.output_time = time.time()
        if self.asynchronous:
            self.services.files.add(self, self.output_time)
        self._committed(self.archive_size)

    def _committed(self, size: int) -> None:
        self.archive_size = size
        listener = self.on_bytes
        if listener is not None:
            listener(size)

    def _close_zip(self) -> None:
        """Write the ZIP's central directory and close the file."""
        with self._lock:
            archive, stream = self._zip, self._stream
            self._zip = self._stream = None
        if archive is not None:
            archive.close()
        if stream is not None:
            stream.close()

    def _discard_file(self) -> None:
        """Forget the ZIP, finished or not, and delete it (the engine's worker and the
        synchronous caller may both do so at the end of a job: hence the lock)."""
        with self._lock:
            archive, stream = self._zip, self._stream
            self._zip = self._stream = None
            self.file = None
        if archive is not None:
            try:
                archive.close()
            except (ValueError, OSError):
                log.debug("Abandoned ZIP %s could not be closed cleanly", self.path)
        if stream is not None:
            stream.close()
        self.path.unlink(missing_ok=True)

    def stop(self, reason: StopReason) -> None:
        if reason in (StopReason.CANCELED, StopReason.FAILURE, StopReason.RETRY):
            self._discard_file()
            self.position = 0
            self.archive_size = 0

    def reset(self) -> None:
        """Resubmit (refused by Orthanc): start again from the first step, with a fresh plan."""
        self.services.files.remove(self)
        self._discard_file()
        self._commands = None
        self.position = 0
        self.archive_size = 0
        self.complete = False
        self.output_time = None

    def discard(self) -> None:
        """Drop the file of a synchronous job once its caller has it (or is gone)."""
        self._discard_file()

    # -- status ------------------------------------------------------------------------

    def progress(self) -> float:
        if self.complete:
            return 1.0
        if not self._commands:
            return 0.0
        return self.position / len(self._commands)

    def content(self) -> dict[str, Any]:
        result: dict[str, Any] = {
            "ArchiveSize": str(self.archive_size),
            "ArchiveSizeMB": self.archive_size // MEGA_BYTES,
            "Description": self.description,
            "InstancesCount": self.instances_count,
            "UncompressedSize": str(self.uncompressed_size),
            "UncompressedSizeMB": self.uncompressed_size // MEGA_BYTES,
        }
        if self.transcode is not None:
            result["Transcode"] = self.transcode
        if self.lossy_quality is not None:
            result["LossyQuality"] = self.lossy_quality
        return result

    def outputs(self) -> dict[str, Output]:
        """The ZIP of a finished asynchronous job; asking for it makes it the most recently used."""
        if not (self.asynchronous and self.complete and self.file is not None):
            return {}
        self.services.files.touch(self)
        return {OUTPUT_KEY: Output(self.file, ZIP_MIME, self.filename)}

    def delete_output(self, key: str) -> bool:
        if key != OUTPUT_KEY or not self.outputs():
            return False
        self.services.files.remove(self)
        self._discard_file()
        return True

    def evict_output(self) -> None:
        """``MediaArchiveSize`` exceeded: this job keeps its status, not its file."""
        self._discard_file()

    def serialize(self) -> dict[str, Any]:
        return {
            "Resources": self.resources, "Description": self.description, "Transcode": self.transcode,
            "LossyQuality": self.lossy_quality,
            "Extended": self.extended, "Asynchronous": self.asynchronous, "Filename": self.filename,
            "Utf8": self.utf8, "PatientFromStudy": self.patient_from_study,
            "File": self.path.name, "Complete": self.complete,
            "OutputTime": self.output_time, "InstancesCount": self.instances_count,
            "UncompressedSize": self.uncompressed_size, "ArchiveSize": self.archive_size,
        }

    @classmethod
    def unserialize(cls, services: ArchiveServices, data: dict[str, Any]) -> ArchiveJob:
        """Rebuild after a restart.  Every restored job is asynchronous (its synchronous caller
        is gone), so its archive becomes an output; an unfinished ZIP is dropped and built again."""
        job = cls(services, list(data["Resources"]), description=data.get("Description", "REST API"),
                  transcode=data.get("Transcode"), extended=bool(data.get("Extended", False)),
                  filename=str(data.get("Filename", DEFAULT_OUTPUT_FILENAME)),
                  lossy_quality=data.get("LossyQuality"), utf8=bool(data.get("Utf8", False)),
                  patient_from_study=bool(data.get("PatientFromStudy", False)))
        job.instances_count = int(data.get("InstancesCount", 0))
        job.uncompressed_size = int(data.get("UncompressedSize", 0))
        job.complete = bool(data.get("Complete", False))
        if data.get("File"):
            job.path = services.files.folder / data["File"]
            services.files.claim(job.path)
        if job.complete:
            job.archive_size = int(data.get("ArchiveSize", 0))
            job.output_time = data.get("OutputTime") or time.time()
        if job.complete and data.get("Asynchronous") and job.path.exists():
            job.file = job.path
            services.files.add(job, float(job.output_time or 0.0))
        else:
            job.path.unlink(missing_ok=True)
        return job


class MediaJob(ArchiveJob):
    """A ZIP with ``IMAGES/IM0``... and a DICOMDIR (``Extended``: with the series descriptions)."""

    TYPE = "Media"
    MEDIA = True


@dataclass(frozen=True)
class ArchiveRequest:
    """What an archive or media route asks for (parsed by :mod:`server.rest.requests`)."""

    resources: tuple[str, ...]
    media: bool = False
    transcode: str | None = None
    extended: bool = False
    #: The body's ``Filename`` (Orthanc 1.12.7): the download name of the ZIP.
    filename: str | None = None
    #: ``LossyQuality`` / ``lossy-quality`` with a transcode (Orthanc 1.12.7).
    lossy_quality: int | None = None
    #: ``Utf8`` (Orthanc 1.12.11): UTF-8 names in the ZIP.
    utf8: bool = False
    #: An archive of one study or series: its patient folder follows the study's tags.
    patient_from_study: bool = False


def archive_job(services: ArchiveServices, request: ArchiveRequest) -> ArchiveJob:
    """The Archive or Media job of a request, not yet submitted."""
    kind = MediaJob if request.media else ArchiveJob
    return kind(services, list(request.resources), transcode=request.transcode, extended=request.extended,
                filename=DEFAULT_OUTPUT_FILENAME if request.filename is None else request.filename,
                lossy_quality=request.lossy_quality, utf8=request.utf8,
                patient_from_study=request.patient_from_study)


def _zip_info(path: str, level: int) -> zipfile.ZipInfo:
    """A ZIP entry as minizip writes it for Orthanc: deflated (stored at level 0), local time,
    no attributes."""
    info = zipfile.ZipInfo(path, date_time=time.localtime()[:6])
    info.compress_type = zipfile.ZIP_DEFLATED if level else zipfile.ZIP_STORED
    info.create_system = 0
    info.external_attr = 0
    return info
