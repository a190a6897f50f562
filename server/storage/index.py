"""The index: the patient/study/series/instance hierarchy and what hangs on it.

Its SQL is written once and runs on SQLite (embedded, the default, here) or on
PostgreSQL (:mod:`server.storage.postgresql`, several nodes sharing one database), both
behind :class:`~server.storage.database.Database`.  The schema follows Orthanc's (resources,
main DICOM tags, metadata, attached files, changes, exports, recycling order,
global properties) so that the same questions are cheap to answer.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import os
import re
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path
from typing import Any

from server.clock import utc_now_iso
from server.config.error import ConfigError
from server.dicom.main_tags import FOLDED_IDENTIFIERS, Level, Tag, upper_case
from server.errors import ErrorCode, OrthancError
from server.loop_guard import check as check_off_loop
from server.storage.database import Connection, Database

SCHEMA_VERSION = 6

#: The tables an ingest writes rows of, keyed by their resource (main tags, identifiers,
#: metadata, attachments), are ``WITHOUT ROWID``: each is then the one B-tree of its primary
#: key, where a rowid table is two (its rows, and the key's index), and a replaced row stays in
#: place instead of moving to the end.  An ingest so writes ~4 fewer pages to the WAL (28 of
#: 32 for a CT slice) and ~0.1 ms less CPU.  An index made before keeps its rowid tables: the
#: same statements run on both.
SCHEMA = """
CREATE TABLE IF NOT EXISTS GlobalProperties(property INTEGER PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS Resources(
    internalId INTEGER PRIMARY KEY AUTOINCREMENT,
    resourceType INTEGER NOT NULL,
    publicId TEXT NOT NULL,
    parentId INTEGER REFERENCES Resources(internalId) ON DELETE CASCADE);
CREATE UNIQUE INDEX IF NOT EXISTS PublicIndex ON Resources(publicId);
CREATE INDEX IF NOT EXISTS ChildrenIndex ON Resources(parentId);
CREATE INDEX IF NOT EXISTS LevelIndex ON Resources(resourceType, internalId);
CREATE TABLE IF NOT EXISTS MainDicomTags(
    id INTEGER REFERENCES Resources(internalId) ON DELETE CASCADE,
    tagGroup INTEGER, tagElement INTEGER, value TEXT,
    PRIMARY KEY(id, tagGroup, tagElement)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS MainDicomTagsValues ON MainDicomTags(tagGroup, tagElement, value);
CREATE TABLE IF NOT EXISTS DicomIdentifiers(
    id INTEGER REFERENCES Resources(internalId) ON DELETE CASCADE,
    tagGroup INTEGER, tagElement INTEGER, value TEXT,
    PRIMARY KEY(id, tagGroup, tagElement)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS DicomIdentifiersValues ON DicomIdentifiers(tagGroup, tagElement, value);
CREATE TABLE IF NOT EXISTS Metadata(
    id INTEGER REFERENCES Resources(internalId) ON DELETE CASCADE,
    type INTEGER, value TEXT, revision INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY(id, type)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS AttachedFiles(
    id INTEGER REFERENCES Resources(internalId) ON DELETE CASCADE,
    fileType INTEGER, uuid TEXT NOT NULL, compressedSize INTEGER, uncompressedSize INTEGER,
    compressionType INTEGER, uncompressedMD5 TEXT, compressedMD5 TEXT,
    revision INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY(id, fileType)) WITHOUT ROWID;
CREATE UNIQUE INDEX IF NOT EXISTS AttachedFilesUuid ON AttachedFiles(uuid);
CREATE TABLE IF NOT EXISTS Changes(
    seq INTEGER PRIMARY KEY AUTOINCREMENT, changeType INTEGER,
    internalId INTEGER REFERENCES Resources(internalId) ON DELETE CASCADE,
    resourceType INTEGER, date TEXT);
CREATE INDEX IF NOT EXISTS ChangesIndex ON Changes(internalId);
CREATE TABLE IF NOT EXISTS ExportedResources(
    seq INTEGER PRIMARY KEY AUTOINCREMENT, resourceType INTEGER, publicId TEXT,
    remoteModality TEXT, patientId TEXT, studyInstanceUid TEXT, seriesInstanceUid TEXT,
    sopInstanceUid TEXT, date TEXT);
CREATE TABLE IF NOT EXISTS PatientRecyclingOrder(
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    patientId INTEGER REFERENCES Resources(internalId) ON DELETE CASCADE);
CREATE INDEX IF NOT EXISTS PatientRecyclingIndex ON PatientRecyclingOrder(patientId);
CREATE TABLE IF NOT EXISTS Labels(
    id INTEGER REFERENCES Resources(internalId) ON DELETE CASCADE,
    label TEXT NOT NULL, PRIMARY KEY(id, label));
CREATE INDEX IF NOT EXISTS LabelsIndex ON Labels(label);
CREATE TABLE IF NOT EXISTS Jobs(id TEXT PRIMARY KEY, document TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS StorageCommitmentReports(
    uid TEXT PRIMARY KEY, document TEXT NOT NULL, lastAccess INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS KeyValueStores(
    storeId TEXT NOT NULL, key TEXT NOT NULL, value BLOB NOT NULL, PRIMARY KEY(storeId, key));
CREATE TABLE IF NOT EXISTS Queues(
    id INTEGER PRIMARY KEY AUTOINCREMENT, queueId TEXT NOT NULL, value BLOB NOT NULL,
    reservedUntil INTEGER DEFAULT NULL);
CREATE INDEX IF NOT EXISTS QueuesIndex ON Queues(queueId, id);
CREATE TABLE IF NOT EXISTS UnstableResources(
    id INTEGER PRIMARY KEY REFERENCES Resources(internalId) ON DELETE CASCADE,
    resourceType INTEGER NOT NULL, lastUpdate REAL NOT NULL);
CREATE INDEX IF NOT EXISTS UnstableResourcesAge ON UnstableResources(lastUpdate);
-- The total sizes of the attachments (0: stored, 1: uncompressed), kept by triggers in the
-- transaction that changes them: /statistics, the metrics and MaximumStorageSize read them
-- at once, not by summing the whole table (which grew with the archive, at each ingest).
CREATE TABLE IF NOT EXISTS GlobalIntegers(property INTEGER PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO GlobalIntegers SELECT 0, COALESCE(SUM(compressedSize), 0) FROM AttachedFiles;
INSERT OR IGNORE INTO GlobalIntegers SELECT 1, COALESCE(SUM(uncompressedSize), 0) FROM AttachedFiles;
CREATE TRIGGER IF NOT EXISTS AttachedFileAdded AFTER INSERT ON AttachedFiles BEGIN
    UPDATE GlobalIntegers SET value = value + COALESCE(CASE property WHEN 0 THEN new.compressedSize
        ELSE new.uncompressedSize END, 0) WHERE property IN (0, 1);
END;
CREATE TRIGGER IF NOT EXISTS AttachedFileRemoved AFTER DELETE ON AttachedFiles BEGIN
    UPDATE GlobalIntegers SET value = value - COALESCE(CASE property WHEN 0 THEN old.compressedSize
        ELSE old.uncompressedSize END, 0) WHERE property IN (0, 1);
END;
CREATE TRIGGER IF NOT EXISTS AttachedFileResized AFTER UPDATE OF compressedSize, uncompressedSize
        ON AttachedFiles BEGIN
    UPDATE GlobalIntegers SET value = value + COALESCE(CASE property WHEN 0 THEN new.compressedSize
        ELSE new.uncompressedSize END, 0) - COALESCE(CASE property WHEN 0 THEN old.compressedSize
        ELSE old.uncompressedSize END, 0) WHERE property IN (0, 1);
END;
"""


class Metadata(IntEnum):
    """Orthanc's MetadataType numbering (stored as integers, named in the REST API)."""

    IndexInSeries = 1
    ReceptionDate = 2
    RemoteAET = 3
    ExpectedNumberOfInstances = 4
    ModifiedFrom = 5
    AnonymizedFrom = 6
    LastUpdate = 7
    Origin = 8
    TransferSyntax = 9
    SopClassUid = 10
    RemoteIP = 11
    CalledAET = 12
    HttpUsername = 13
    PixelDataOffset = 14
    MainDicomTagsSignature = 15
    MainDicomSequences = 16
    PixelDataVR = 17


class Change(IntEnum):
    """Orthanc's ChangeType numbering; the names are those of ``/changes``."""

    CompletedSeries = 1
    Deleted = 2
    NewChildInstance = 3
    NewInstance = 4
    NewPatient = 5
    NewSeries = 6
    NewStudy = 7
    AnonymizedStudy = 8
    AnonymizedSeries = 9
    ModifiedStudy = 10
    ModifiedSeries = 11
    AnonymizedPatient = 12
    ModifiedPatient = 13
    StablePatient = 14
    StableStudy = 15
    StableSeries = 16
    UpdatedAttachment = 17
    UpdatedMetadata = 18


#: The change logged when a resource of a level is created.
_NEW_CHANGE = {Level.PATIENT: Change.NewPatient, Level.STUDY: Change.NewStudy,
               Level.SERIES: Change.NewSeries, Level.INSTANCE: Change.NewInstance}

#: The change logged when a resource of a level becomes stable.
STABLE_CHANGE = {Level.PATIENT: Change.StablePatient, Level.STUDY: Change.StableStudy,
                 Level.SERIES: Change.StableSeries}

#: Orthanc's FileContentType for the DICOM file itself.
ATTACHMENT_DICOM = 1
ATTACHMENT_NAMES = {1: "dicom", 2: "dicom-as-json", 3: "dicom-until-pixel-data"}

#: User-defined metadata and attachments (Orthanc's MetadataType/FileContentType StartUser..EndUser).
USER_START = 1024
USER_END = 65535

#: A revision a writer expects an item to have: (revision, MD5 of its content), as in an ETag.
Revision = tuple[int, str]

#: What a writer that gave no If-Match expects when CheckRevisions is on: that the item is
#: new.  An existing item never matches it, so overwriting or deleting it is a conflict.
EXPECT_NEW: Revision = (-1, "")


def is_user_type(number: int) -> bool:
    """Whether a metadata or attachment number is the user's (writable through REST)."""
    return USER_START <= number <= USER_END


def md5_hex(data: bytes | str) -> str:
    """Orthanc's MD5 of a content, as ETags and attachment infos show it."""
    return hashlib.md5(data.encode("utf-8") if isinstance(data, str) else data).hexdigest()


def check_revision(expected: Revision | None, revision: int, md5: str) -> None:
    """Orthanc's optimistic concurrency: a writer naming the wrong revision gets 409."""
    if expected is not None and expected != (revision, md5):
        raise OrthancError(ErrorCode.REVISION)


#: GlobalProperties keys used here (Orthanc's numbering where it has one).
PROPERTY_DATABASE_VERSION = 1
PROPERTY_ANONYMIZATION_SEQUENCE = 3
PROPERTY_MODALITIES = 20
PROPERTY_PEERS = 21


@dataclass
class Attachment:
    file_type: int
    uuid: str
    compressed_size: int
    uncompressed_size: int
    compression: int
    uncompressed_md5: str
    compressed_md5: str
    revision: int = 0


@dataclass
class Resource:
    internal_id: int
    level: Level
    public_id: str
    parent_internal_id: int | None


@dataclass
class Known:
    """What an ingest batch knows of the index (:meth:`Index.ingest_lookup`), kept true by
    the batch as it creates and deletes resources: internal ids by public id, and the
    series' ExpectedNumberOfInstances by public id (absent: unknown)."""

    ids: dict[str, int]
    expected: dict[str, int]

    def created(self, public_id: str, internal_id: int) -> None:
        self.ids[public_id] = internal_id

    def update(self, other: Known) -> None:
        """What another lookup of the same transaction found."""
        self.ids.update(other.ids)
        self.expected.update(other.expected)

    def deleted(self, resources: Iterable[Resource]) -> None:
        for resource in resources:
            self.ids.pop(resource.public_id, None)
            self.expected.pop(resource.public_id, None)


_INSERT_ATTACHMENTS = ("INSERT INTO AttachedFiles(id, fileType, uuid, compressedSize, uncompressedSize, "
                       "compressionType, uncompressedMD5, compressedMD5, revision)")


def _attachment_row(internal_id: int, att: Attachment) -> tuple[Any, ...]:
    return (internal_id, att.file_type, att.uuid, att.compressed_size, att.uncompressed_size,
            att.compression, att.uncompressed_md5, att.compressed_md5, att.revision)


class Writes:
    """The rows an ingest batch adds, written one statement a table (on PostgreSQL, while
    the writers' lock is held, each statement costs the node a send): at the end of the
    batch, or before a read that needs them (:meth:`flush`).  Rows of one key are written
    once, the later wins, as each ingest's would have replaced the one before."""

    def __init__(self) -> None:
        #: New resources whose ids were reserved (parents before their children).
        self.resources: list[tuple[int, int, str, int | None]] = []
        self.tags: list[tuple[int, int, int, str]] = []
        self.changes: list[tuple[int, int, int, str]] = []
        self.unstable: dict[int, tuple[int, float]] = {}
        self.attachments: list[tuple[Any, ...]] = []
        self.metadata: dict[tuple[int, int], str] = {}
        #: Patients to put at the end of the recycling order, the last touched last: whether
        #: each is new (then not in the order yet).
        self.recent_patients: dict[int, bool] = {}

    def touch_unstable(self, resources: list[tuple[int, Level]]) -> None:
        """These resources got an instance now (see :class:`~server.stability.StabilityMonitor`)."""
        now = time.time()
        self.unstable.update((rid, (int(level), now)) for rid, level in resources)

    def attach(self, internal_id: int, att: Attachment) -> None:
        self.attachments.append(_attachment_row(internal_id, att))

    def change(self, change: Change, internal_id: int, level: Level, date: str) -> None:
        self.changes.append((int(change), internal_id, int(level), date))

    def patient_used(self, patient: int, new: bool = False) -> None:
        """The patient got an instance: the most recent in the recycling order."""
        self.recent_patients[patient] = self.recent_patients.pop(patient, False) or new

    def flush(self, db: Connection) -> None:
        insert_rows(db, "INSERT INTO Resources(internalId, resourceType, publicId, parentId)", self.resources)
        insert_rows(db, "INSERT INTO MainDicomTags", self.tags)
        insert_rows(db, "INSERT INTO DicomIdentifiers", _identifier_rows(self.tags))
        insert_rows(db, "INSERT INTO Changes(changeType, internalId, resourceType, date)", self.changes)
        insert_rows(db, "INSERT INTO UnstableResources",
                    [(rid, level, when) for rid, (level, when) in self.unstable.items()],
                    " ON CONFLICT(id) DO UPDATE SET lastUpdate=excluded.lastUpdate")
        insert_rows(db, _INSERT_ATTACHMENTS, self.attachments)
        Index.set_metadata_many(db, self.metadata)
        for patient, new in self.recent_patients.items():
            if new:
                db.execute("INSERT INTO PatientRecyclingOrder(patientId) VALUES(?)", (patient,))
            else:
                Index.tag_most_recent_patient(db, patient)
        for written in (self.resources, self.tags, self.changes, self.unstable, self.attachments,
                        self.metadata, self.recent_patients):
            written.clear()


@dataclass
class ChangeRecord:
    seq: int
    change: Change
    level: Level
    public_id: str
    date: str


_NOT_IN_IDENTIFIERS = re.compile(r"[^\x20-\x7e]")


def expected_count(value: str | None) -> int:
    """A series' ExpectedNumberOfInstances metadata as a number (0: unknown)."""
    try:
        return int(value) if value else 0
    except ValueError:
        return 0


def normalize_identifier(value: str | None) -> str | None:
    """Orthanc's ``NormalizeIdentifier``, the form identifiers are looked up in: ``%`` and
    ``_`` become spaces, all but printable ASCII is dropped, then upper case, stripped."""
    if value is None:
        return None
    text = _NOT_IN_IDENTIFIERS.sub("", value.replace("%", " ").replace("_", " "))
    return text.upper().strip()


def insert_rows(db: Connection, insert: str, rows: list[tuple[Any, ...]], suffix: str = "") -> None:
    """``insert`` VALUES(...), (...) ``suffix``: all the rows in one statement (on PostgreSQL
    one round trip and one statement's work, where ``executemany`` costs one statement a
    row), by chunks within SQLite's number of parameters."""
    for start in range(0, len(rows), _ROWS_A_STATEMENT):
        chunk = rows[start:start + _ROWS_A_STATEMENT]
        marks = "(" + ", ".join("?" * len(chunk[0])) + ")"
        db.execute(f"{insert} VALUES{', '.join([marks] * len(chunk))}{suffix}",
                   [value for row in chunk for value in row])


def select_in(db: Connection, select: str, values: Sequence[Any], *after: Any) -> Iterator[Any]:
    """The rows of ``select`` whose ``{}`` is the list of an ``IN`` of many ``values`` (then
    the parameters ``after``), a statement per chunk within SQLite's number of parameters;
    none for no values (``IN ()`` is no SQL for PostgreSQL)."""
    if len(values) <= _ROWS_A_STATEMENT:  # nearly always: the cursor itself, no generator
        return iter(db.execute(select.format(_marks(len(values))), [*values, *after]) if values else ())
    return itertools.chain.from_iterable(select_in(db, select, values[start:start + _ROWS_A_STATEMENT], *after)
                                         for start in range(0, len(values), _ROWS_A_STATEMENT))


@functools.lru_cache(maxsize=64)
def _marks(count: int) -> str:
    return ", ".join("?" * count)


#: Rows of one :func:`insert_rows` statement: few parameters (SQLite's limit is 32766).
_ROWS_A_STATEMENT = 500


def _identifier_rows(rows: Iterable[tuple[int, int, int, str]]) -> list[tuple[int, int, int, str]]:
    """The ``DicomIdentifiers`` rows of ``MainDicomTags`` rows: the values of the identifiers
    upper-cased, so that a find ignoring case is an indexed lookup, as in Orthanc 1.10.1."""
    return [(rid, g, e, upper_case(v)) for rid, g, e, v in rows if (g, e) in FOLDED_IDENTIFIERS]


class SqliteDatabase:
    """The embedded engine: one connection, serialised by a lock (SQLite has one writer at
    a time anyway, and every transaction here is short), in WAL mode.

    As Orthanc's index, the file is opened in SQLite's exclusive locking mode: this process
    alone uses it, for as long as it runs, so a transaction takes no file lock (four to six
    ``fcntl`` calls each) and the WAL's index lives in memory rather than in a shared file.
    A second server on the same ``IndexDirectory`` is refused at start-up.

    With ``sync`` (``SyncStorageArea``), each commit is on the disk before it returns: the
    WAL is synced after the commit, once the writers' lock is let go (see :meth:`_sync_wal`);
    without, only the checkpoints are synced, as in Orthanc, whose commits a power cut can
    undo."""

    backend_plugin: str | None = None
    several_writers = False

    def __init__(self, path: Path, sync: bool = True) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._lock = threading.RLock()
        self._db.execute("PRAGMA locking_mode=EXCLUSIVE")  # before WAL: its index in memory
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
        except sqlite3.OperationalError as error:
            self._db.close()
            if "locked" not in str(error):
                raise
            raise ConfigError(f'The SQLite index {path} is used by another process (an Isengard or '
                              f'Orthanc with the same "IndexDirectory"); stop it, or give this server '
                              f'its own "IndexDirectory"') from None
        self.sync = sync
        # The commits themselves are not synced (see _sync_wal); the checkpoints are.
        self._db.execute("PRAGMA synchronous=NORMAL")
        #: Commits made, and those known to be on the disk (see :meth:`_sync_wal`).
        self._commits = 0
        self._synced_commits = 0
        self._sync_lock = threading.Lock()
        self._wal: int | None = None
        self._db.execute("PRAGMA foreign_keys=ON")
        self._db.create_function("normalize_identifier", 1, normalize_identifier,
                                 deterministic=True)
        self._db.create_function("orthanc_upper", 1, _sql_upper, deterministic=True)
        self.needs_identifiers = self._db.execute(
            "SELECT 1 FROM sqlite_master WHERE type='table' AND name='DicomIdentifiers'"
        ).fetchone() is None
        # One transaction: a new index is made with one commit, not one per statement (~3 ms).
        self._db.executescript(f"BEGIN; {SCHEMA} COMMIT;")
        self._db.execute("INSERT OR IGNORE INTO GlobalProperties VALUES(?, ?)",
                         (PROPERTY_DATABASE_VERSION, str(SCHEMA_VERSION)))

    def close(self) -> None:
        with self._lock, self._sync_lock:
            self._db.close()
            if self._wal is not None:
                os.close(self._wal)
                self._wal = None

    @contextmanager
    def transaction(self, late_lock: bool = False, synced: bool = True) -> Iterator[Connection]:
        """One writer: this process's (``late_lock`` changes nothing)."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
            self._commits += 1
            commit = self._commits
        if self.sync and synced:
            self._sync_wal(commit)

    def _sync_wal(self, commit: int) -> None:
        """Return once the commit numbered ``commit`` is on the disk.

        A commit in WAL mode is on the disk once the WAL's frames are: syncing them is what
        ``synchronous=FULL`` does inside the commit, while the writers' lock is held, where
        it took most of a commit's time on a disk (~0.8 of ~1 ms per C-STORE batch on this
        machine's ext4, against 0.2 on tmpfs); readers and writers waited for it.  Here
        they go on meanwhile (the ingests' group commit still waits for it before its next
        batch), and one ``fdatasync`` covers every commit made before it began: a caller
        whose commit an earlier sync covered returns at once."""
        with self._sync_lock:
            if self._synced_commits >= commit:
                return
            made = self._commits
            if self._wal is None:
                self._wal = os.open(f"{self.path}-wal", os.O_RDONLY | os.O_CLOEXEC)
            os.fdatasync(self._wal)
            self._synced_commits = made

    @contextmanager
    def reading(self) -> Iterator[Connection]:
        with self._lock:
            yield self._db

    def read_one(self, sql: str, parameters: Sequence[Any] = (), /) -> Any:
        with self._lock:
            return self._db.execute(sql, parameters).fetchone()

    def last_change_seq(self, db: Connection) -> int:
        row = db.execute("SELECT seq FROM sqlite_sequence WHERE name='Changes'").fetchone()
        return int(row[0]) if row else 0

    @staticmethod
    def lock_writers(db: Connection) -> None:
        """Held since ``BEGIN IMMEDIATE``."""

    @staticmethod
    def reserve_resource_ids(db: Connection, count: int) -> Iterator[int]:
        return iter(())


def _sql_upper(value: str | None) -> str | None:
    """:func:`upper_case` for SQL (SQLite's ``upper`` leaves non-ASCII letters alone)."""
    return None if value is None else upper_case(value)


class Index:
    """The database behind every REST answer about resources: the same SQL on SQLite (a
    path) or on another :class:`~server.storage.database.Database` (PostgreSQL)."""

    def __init__(self, database: Path | Database, sync: bool = True) -> None:
        """``sync`` is for SQLite (see :class:`SqliteDatabase`): PostgreSQL's own settings
        say whether its commits are synced (``synchronous_commit``, on by default)."""
        self.database: Database = SqliteDatabase(database, sync) if isinstance(database, Path) else database
        if self.database.needs_identifiers:
            self._fill_identifiers()

    def _fill_identifiers(self) -> None:
        """The ``DicomIdentifiers`` of an index written before the table existed."""
        with self.transaction() as db:
            rows = db.execute("SELECT id, tagGroup, tagElement, value FROM MainDicomTags").fetchall()
            db.executemany("INSERT INTO DicomIdentifiers VALUES(?, ?, ?, ?)",
                           _identifier_rows(rows))

    def close(self) -> None:
        check_off_loop("Index.close")
        self.database.close()

    #: ``ReadOnly`` (Orthanc 1.12.5): every write transaction is refused.
    read_only = False

    @property
    def several_writers(self) -> bool:
        """See :attr:`Database.several_writers`."""
        return self.database.several_writers

    @contextmanager
    def transaction(self, late_lock: bool = False, synced: bool = True) -> Iterator[Connection]:
        """A write transaction; other writers wait until it commits (see
        :meth:`Database.transaction` for ``late_lock`` and ``synced``)."""
        if self.read_only:
            raise OrthancError(ErrorCode.READ_ONLY, "The DB is trying to execute a ReadWrite "
                               "transaction while Orthanc has been started in ReadOnly mode.")
        check_off_loop("Index.transaction")
        with self.database.transaction(late_lock, synced) as db:
            yield db

    def lock_writers(self, db: Connection) -> None:
        """See :meth:`Database.lock_writers`."""
        self.database.lock_writers(db)

    @contextmanager
    def reading(self) -> Iterator[Connection]:
        check_off_loop("Index.reading")
        with self.database.reading() as db:
            yield db

    # -- resources -------------------------------------------------------------------

    def lookup(self, public_id: str, level: Level | None = None) -> Resource | None:
        check_off_loop("Index.lookup")
        row = self.database.read_one("SELECT internalId, resourceType, parentId FROM Resources "
                                     "WHERE publicId=?", (public_id,))
        if row is None or (level is not None and row[1] != level):
            return None
        return Resource(row[0], Level(row[1]), public_id, row[2])

    @staticmethod
    def lookup_in(db: Connection, public_id: str) -> Resource | None:
        """:meth:`lookup` inside a transaction already held."""
        row = db.execute("SELECT internalId, resourceType, parentId FROM Resources "
                         "WHERE publicId=?", (public_id,)).fetchone()
        return None if row is None else Resource(row[0], Level(row[1]), public_id, row[2])

    def public_id(self, internal_id: int) -> str:
        with self.reading() as db:
            return str(db.execute("SELECT publicId FROM Resources WHERE internalId=?",
                                  (internal_id,)).fetchone()[0])

    def parent(self, resource: Resource) -> Resource | None:
        if resource.parent_internal_id is None:
            return None
        with self.reading() as db:
            row = db.execute("SELECT internalId, resourceType, publicId, parentId FROM Resources "
                             "WHERE internalId=?", (resource.parent_internal_id,)).fetchone()
        return Resource(row[0], Level(row[1]), row[2], row[3])

    def ancestor(self, resource: Resource, level: Level) -> Resource:
        current: Resource | None = resource
        while current is not None and current.level > level:
            current = self.parent(current)
        assert current is not None
        return current

    def public_ids_many(self, internal_ids: list[int]) -> dict[int, str]:
        with self.reading() as db:
            return dict(select_in(db, "SELECT internalId, publicId FROM Resources WHERE internalId IN ({})",
                                  internal_ids))

    def children_ids_many(self, internal_ids: list[int]) -> dict[int, list[str]]:
        """:meth:`children_ids` of many resources in few queries."""
        result: dict[int, list[str]] = {i: [] for i in internal_ids}
        with self.reading() as db:
            for parent, child in select_in(db, "SELECT parentId, publicId FROM Resources WHERE parentId IN ({}) "
                                           "ORDER BY internalId", internal_ids):
                result[parent].append(child)
        return result

    def children_ids(self, internal_id: int) -> list[str]:
        with self.reading() as db:
            return [r[0] for r in db.execute(
                "SELECT publicId FROM Resources WHERE parentId=? ORDER BY internalId",
                (internal_id,))]

    def children(self, internal_id: int) -> list[Resource]:
        with self.reading() as db:
            rows = db.execute("SELECT internalId, resourceType, publicId, parentId FROM Resources "
                              "WHERE parentId=? ORDER BY internalId", (internal_id,)).fetchall()
        return [Resource(r[0], Level(r[1]), r[2], r[3]) for r in rows]

    def descendants(self, internal_id: int, level: Level) -> list[Resource]:
        """Every resource of ``level`` below (or equal to) ``internal_id``, in insertion order."""
        with self.reading() as db:
            rows = db.execute(
                "WITH RECURSIVE tree(id) AS (SELECT CAST(? AS BIGINT) UNION ALL "
                "SELECT r.internalId FROM Resources r JOIN tree ON r.parentId=tree.id) "
                "SELECT r.internalId, r.resourceType, r.publicId, r.parentId FROM Resources r "
                "JOIN tree ON r.internalId=tree.id WHERE r.resourceType=? ORDER BY r.internalId",
                (internal_id, int(level))).fetchall()
        return [Resource(r[0], Level(r[1]), r[2], r[3]) for r in rows]

    def first_child(self, internal_id: int) -> Resource | None:
        """The child that arrived first (Orthanc's ``LookupOneChild``)."""
        with self.reading() as db:
            row = db.execute("SELECT internalId, resourceType, publicId, parentId FROM Resources "
                             "WHERE parentId=? ORDER BY internalId LIMIT 1", (internal_id,)).fetchone()
        return None if row is None else Resource(row[0], Level(row[1]), row[2], row[3])

    def count_descendants(self, internal_id: int, level: Level) -> int:
        """How many resources of ``level`` are below (or equal to) ``internal_id``."""
        with self.reading() as db:
            return int(db.execute(
                "WITH RECURSIVE tree(id) AS (SELECT CAST(? AS BIGINT) UNION ALL "
                "SELECT r.internalId FROM Resources r JOIN tree ON r.parentId=tree.id) "
                "SELECT COUNT(*) FROM Resources r JOIN tree ON r.internalId=tree.id "
                "WHERE r.resourceType=?", (internal_id, int(level))).fetchone()[0])

    def list_ids(self, level: Level, since: int = 0, limit: int = 0) -> list[str]:
        return [public_id for public_id, in self._listing("publicId", level, since, limit)]

    def list_resources(self, level: Level, since: int = 0, limit: int = 0) -> list[Resource]:
        """The resources of :meth:`list_ids`, read in the same query (an expanded listing
        looked each one up after it: one query per resource)."""
        return [Resource(internal_id, level, public_id, parent) for internal_id, public_id, parent
                in self._listing("internalId, publicId, parentId", level, since, limit)]

    def _listing(self, columns: str, level: Level, since: int, limit: int) -> list[Any]:
        sql = f"SELECT {columns} FROM Resources WHERE resourceType=? ORDER BY internalId"
        args: list[int] = [int(level)]
        if limit:
            sql += " LIMIT ? OFFSET ?"
            args += [limit, since]
        elif since:
            sql += " LIMIT -1 OFFSET ?"
            args.append(since)
        with self.reading() as db:
            return db.execute(sql, args).fetchall()

    def counts(self) -> tuple[dict[Level, int], tuple[int, int]]:
        """How many resources of each level, and :meth:`totals`, read together (``/statistics``,
        the metrics): one read of the index (one turn of the lock, or one PostgreSQL
        transaction) for all five, where there were five.  A count a level: SQLite counts a
        range of ``LevelIndex`` faster than it groups the whole of it (14 against 20-32 ms
        over 244,000 resources)."""
        with self.reading() as db:
            counts = {level: int(db.execute("SELECT COUNT(*) FROM Resources WHERE resourceType=?",
                                            (int(level),)).fetchone()[0]) for level in Level}
            return counts, self.totals(db)

    def main_tags(self, internal_id: int) -> dict[Tag, str]:
        with self.reading() as db:
            rows = db.execute("SELECT tagGroup, tagElement, value FROM MainDicomTags WHERE id=?",
                              (internal_id,)).fetchall()
        return {(g, e): v for g, e, v in rows}

    # -- metadata --------------------------------------------------------------------

    def metadata(self, internal_id: int) -> dict[int, str]:
        with self.reading() as db:
            rows = db.execute("SELECT type, value FROM Metadata WHERE id=? ORDER BY type",
                              (internal_id,)).fetchall()
        return dict(rows)

    def metadata_many(self, internal_ids: list[int], kinds: tuple[int, ...] | None = None
                      ) -> dict[int, dict[int, str]]:
        """The metadata (of these ``kinds``, else all) of many resources in few queries (a
        C-MOVE's presentation contexts need the SOP class and syntax of each instance; a
        listing, each resource's whole metadata)."""
        result: dict[int, dict[int, str]] = {i: {} for i in internal_ids}
        only = "" if kinds is None else f" AND type IN ({','.join(str(int(kind)) for kind in kinds)})"
        with self.reading() as db:
            for rid, kind, value in select_in(
                    db, f"SELECT id, type, value FROM Metadata WHERE id IN ({{}}){only} ORDER BY type",
                    internal_ids):
                result[rid][kind] = value
        return result

    def metadata_revision(self, internal_id: int, kind: int) -> tuple[str, int] | None:
        with self.reading() as db:
            row = db.execute("SELECT value, revision FROM Metadata WHERE id=? AND type=?",
                             (internal_id, kind)).fetchone()
        return None if row is None else (row[0], row[1])

    def set_metadata(self, internal_id: int, kind: int, value: str,
                     expected: Revision | None = None) -> int:
        """Set a metadata and log UpdatedMetadata; returns the new revision.

        An existing value must match ``expected`` (when given); a new one starts at
        revision 0 whatever was expected, as Orthanc does.
        """
        with self.transaction() as db:
            self._require_resource(db, internal_id)
            row = db.execute("SELECT value, revision FROM Metadata WHERE id=? AND type=?",
                             (internal_id, kind)).fetchone()
            revision = 0
            if row is not None:
                check_revision(expected, row[1], md5_hex(row[0]))
                revision = row[1] + 1
            db.execute("INSERT OR REPLACE INTO Metadata VALUES(?, ?, ?, ?)",
                       (internal_id, kind, value, revision))
            self._log_change(db, Change.UpdatedMetadata, internal_id)
        return revision

    def delete_metadata(self, internal_id: int, kind: int,
                        expected: Revision | None = None) -> bool:
        """Delete a metadata that matches ``expected`` (when given); False when absent."""
        with self.transaction() as db:
            row = db.execute("SELECT value, revision FROM Metadata WHERE id=? AND type=?",
                             (internal_id, kind)).fetchone()
            if row is None:
                return False
            check_revision(expected, row[1], md5_hex(row[0]))
            db.execute("DELETE FROM Metadata WHERE id=? AND type=?", (internal_id, kind))
            self._log_change(db, Change.UpdatedMetadata, internal_id)
            return True

    @staticmethod
    def _require_resource(db: Connection, internal_id: int) -> None:
        """A write on a resource deleted meanwhile is Orthanc's 404, not a constraint error."""
        if db.execute("SELECT 1 FROM Resources WHERE internalId=?", (internal_id,)).fetchone() is None:
            raise OrthancError(ErrorCode.UNKNOWN_RESOURCE)

    # -- attachments -----------------------------------------------------------------

    _ATTACHMENT_COLUMNS = ("fileType, uuid, compressedSize, uncompressedSize, compressionType, "
                           "uncompressedMD5, compressedMD5, revision")

    def attachments(self, internal_id: int) -> dict[int, Attachment]:
        with self.reading() as db:
            rows = db.execute(
                f"SELECT {self._ATTACHMENT_COLUMNS} FROM AttachedFiles WHERE id=? ORDER BY fileType",
                (internal_id,)).fetchall()
        return {r[0]: Attachment(*r) for r in rows}

    def attachments_many(self, internal_ids: list[int], file_type: int) -> dict[int, Attachment]:
        """The attachment of ``file_type`` of many resources (those that have one) in few
        queries: a C-MOVE reads a file per sub-operation."""
        result: dict[int, Attachment] = {}
        with self.reading() as db:
            for rid, *row in select_in(db, f"SELECT id, {self._ATTACHMENT_COLUMNS} FROM AttachedFiles "
                                       "WHERE id IN ({}) AND fileType=?", internal_ids, file_type):
                result[rid] = Attachment(*row)
        return result

    def attachment(self, internal_id: int, file_type: int) -> Attachment | None:
        with self.reading() as db:
            return self._attachment_in(db, internal_id, file_type)

    def _attachment_in(self, db: Connection, internal_id: int,
                       file_type: int) -> Attachment | None:
        row = db.execute(f"SELECT {self._ATTACHMENT_COLUMNS} FROM AttachedFiles "
                         "WHERE id=? AND fileType=?", (internal_id, file_type)).fetchone()
        return None if row is None else Attachment(*row)

    def replace_attachment(self, internal_id: int, attachment: Attachment,
                           expected: Revision | None) -> tuple[int, str | None]:
        """Attach a file (replacing the one of the same type); returns (new revision, uuid of
        the replaced file, to remove once committed).

        A replaced attachment must match ``expected`` (when given); a new one starts
        at revision 0.  Changes to the user's attachments are logged as UpdatedAttachment.
        """
        with self.transaction() as db:
            self._require_resource(db, internal_id)
            old = self._attachment_in(db, internal_id, attachment.file_type)
            attachment.revision = 0
            if old is not None:
                check_revision(expected, old.revision, old.uncompressed_md5)
                attachment.revision = old.revision + 1
                db.execute("DELETE FROM AttachedFiles WHERE id=? AND fileType=?",
                           (internal_id, attachment.file_type))
            self.add_attachment(db, internal_id, attachment)
            if is_user_type(attachment.file_type):
                self._log_change(db, Change.UpdatedAttachment, internal_id)
        return attachment.revision, None if old is None else old.uuid

    def delete_attachment(self, internal_id: int, file_type: int,
                          expected: Revision | None) -> str | None:
        """Detach a file that matches ``expected`` (when given); returns its uuid, None when absent."""
        with self.transaction() as db:
            old = self._attachment_in(db, internal_id, file_type)
            if old is None:
                return None
            check_revision(expected, old.revision, old.uncompressed_md5)
            db.execute("DELETE FROM AttachedFiles WHERE id=? AND fileType=?", (internal_id, file_type))
            if is_user_type(file_type):
                self._log_change(db, Change.UpdatedAttachment, internal_id)
        return old.uuid

    def has_attachment_uuid(self, file_uuid: str) -> bool:
        with self.reading() as db:
            return db.execute("SELECT 1 FROM AttachedFiles WHERE uuid=?",
                              (file_uuid,)).fetchone() is not None

    # -- storing ---------------------------------------------------------------------

    def reserve_resource_ids(self, db: Connection, count: int) -> Iterator[int]:
        """See :meth:`Database.reserve_resource_ids`; ask before :meth:`ingest_lookup`."""
        return self.database.reserve_resource_ids(db, count)

    @staticmethod
    def ingest_lookup(db: Connection, instances: Iterable[dict[Level, str]]) -> Known:
        """What a batch of ingests needs of the index before it writes, in one statement
        for the whole batch (one round trip to PostgreSQL, while the writers' lock is held,
        where there were two per instance): which of their resources exist, and the
        ExpectedNumberOfInstances of the series among them."""
        wanted = list(dict.fromkeys(public_id for ids in instances for public_id in ids.values()))
        known = Known({}, {})
        for public_id, internal_id, expected in select_in(
                db, "SELECT r.publicId, r.internalId, m.value FROM Resources r LEFT JOIN Metadata m "
                f"ON m.id=r.internalId AND m.type={int(Metadata.ExpectedNumberOfInstances)} "
                "WHERE r.publicId IN ({})", wanted):
            known.ids[public_id] = internal_id
            if expected is not None:
                known.expected[public_id] = expected_count(expected)
        return known

    def insert_hierarchy(self, db: Connection, ids: dict[Level, str], tags: dict[Level, dict[Tag, str]],
                         now: str, known: Known | None = None, reserved: Iterator[int] | None = None,
                         writes: Writes | None = None) -> tuple[dict[Level, int], list[Level]]:
        """Create the missing resources for an instance; returns internal ids and new levels.

        Must run inside :meth:`transaction`; ``known`` is what the caller knows of the
        index (:meth:`ingest_lookup`), and learns the resources created.  A new resource
        takes its internal id from ``reserved`` if any is left there
        (:meth:`reserve_resource_ids`) and is then written with the caller's ``writes``
        (if given), as are the tags and changes.  Patient tags are also indexed at the
        study level, as Orthanc does, so that study queries on patient tags stay local.
        """
        if writes is None:
            writes = Writes()
            try:
                return self.insert_hierarchy(db, ids, tags, now, known, reserved, writes)
            finally:
                writes.flush(db)
        internal: dict[Level, int] = {}
        created: list[Level] = []
        parent: int | None = None
        if known is None:
            known = self.ingest_lookup(db, [ids])
        for level in Level:
            existing = known.ids.get(ids[level])
            if existing is not None:
                internal[level] = parent = existing
                continue
            new_id = next(reserved, None) if reserved is not None else None
            if new_id is not None:
                writes.resources.append((new_id, int(level), ids[level], parent))
            else:
                if writes.resources:  # its parent may be waiting there
                    writes.flush(db)
                new_id = db.execute("INSERT INTO Resources(resourceType, publicId, parentId) VALUES(?, ?, ?)",
                                    (int(level), ids[level], parent)).lastrowid
                assert new_id is not None
            internal[level] = parent = new_id
            known.created(ids[level], new_id)
            created.append(level)
            if level is Level.PATIENT:
                writes.patient_used(new_id, new=True)
            values = dict(tags[level])
            if level is Level.STUDY:
                values.update(tags[Level.PATIENT])
            writes.tags += [(new_id, g, e, v) for (g, e), v in values.items()]
        for level in reversed(created):
            writes.change(_NEW_CHANGE[level], internal[level], level, now)
        return internal, created

    @staticmethod
    def add_attachment(db: Connection, internal_id: int, att: Attachment) -> None:
        insert_rows(db, _INSERT_ATTACHMENTS, [_attachment_row(internal_id, att)])

    def set_metadata_in(self, db: Connection, internal_id: int,
                        values: dict[int, str]) -> None:
        self.set_metadata_many(db, {(internal_id, kind): value for kind, value in values.items()})

    @staticmethod
    def set_metadata_many(db: Connection, values: dict[tuple[int, int], str]) -> None:
        """Metadata of several resources, keyed by (internal id, type), in one statement."""
        insert_rows(db, "INSERT OR REPLACE INTO Metadata(id, type, value)",
                    [(internal_id, int(kind), value) for (internal_id, kind), value in values.items()])

    @staticmethod
    def tag_most_recent_patient(db: Connection, patient: int) -> None:
        """Move a patient to the end of the recycling order; protected ones are not in it,
        and the last one already is at the end.  A new row at the end, then the older one
        away: two statements whose answers need not be read (no round trip to PostgreSQL
        waits for them)."""
        moved = "patientId=? AND seq<(SELECT MAX(seq) FROM PatientRecyclingOrder)"
        db.execute("INSERT INTO PatientRecyclingOrder(patientId) SELECT ? WHERE EXISTS "
                   f"(SELECT 1 FROM PatientRecyclingOrder WHERE {moved})", (patient, patient))
        db.execute(f"DELETE FROM PatientRecyclingOrder WHERE {moved}", (patient,))

    def series_status(self, db: Connection, series: int, expected: int | None = None) -> str:
        """Orthanc's series Status: Unknown, Missing, Inconsistent or Complete (``expected``:
        its ExpectedNumberOfInstances, when the caller has read it)."""
        if expected is None:
            expected = self._expected_instances(db, series)
        if expected <= 0:
            return "Unknown"
        seen: set[int] = set()
        for (value,) in db.execute(
                "SELECT m.value FROM Resources r LEFT JOIN Metadata m ON m.id=r.internalId "
                "AND m.type=? WHERE r.parentId=?", (Metadata.IndexInSeries, series)):
            try:
                position = int(value)
            except (TypeError, ValueError):
                return "Unknown"
            if position <= 0 or position > expected or position in seen:
                return "Inconsistent"
            seen.add(position)
        return "Complete" if len(seen) == expected else "Missing"

    def series_status_of(self, series: int, expected: int) -> str:
        """:meth:`series_status` of a series whose expected count the caller has read (a
        view, from its metadata): without one it is Unknown, with no query."""
        if expected <= 0:
            return "Unknown"
        with self.reading() as db:
            return self.series_status(db, series, expected)

    def series_complete(self, db: Connection, series: int, expected: int, writes: Writes) -> bool:
        """Whether :meth:`series_status` is Complete, asked at each ingest with the series'
        ExpectedNumberOfInstances: the children are counted first (a Complete series has
        exactly the expected number), so a series still filling does not read every
        child's metadata at each of its instances (its new instances with reserved ids are
        written first: they are among the batch's ``writes``)."""
        if expected <= 0:
            return False
        if writes.resources:
            writes.flush(db)
        children = db.execute("SELECT COUNT(*) FROM Resources WHERE parentId=?", (series,)).fetchone()[0]
        if children != expected:
            return False
        writes.flush(db)
        return self.series_status(db, series, expected) == "Complete"

    @staticmethod
    def _expected_instances(db: Connection, series: int) -> int:
        row = db.execute("SELECT value FROM Metadata WHERE id=? AND type=?",
                         (series, Metadata.ExpectedNumberOfInstances)).fetchone()
        return expected_count(row[0] if row else None)

    def reconstruct_instance(self, instance: Resource, tags: dict[Level, dict[Tag, str]],
                             metadata: dict[int, str],
                             level_metadata: dict[Level, dict[int, str | None]]) -> bool:
        """Replace the main DICOM tags of an instance and its ancestors by ``tags``
        (re-read from its file), the given instance metadata and the metadata of each
        level (``None`` removes one), each replaced value at revision + 1.

        False when the instance vanished meanwhile.  As at ingest, the study also
        indexes the patient tags."""
        with self.transaction() as db:
            chain: dict[Level, int] = {}
            current: int | None = instance.internal_id
            while current is not None:
                row = db.execute("SELECT resourceType, parentId FROM Resources WHERE internalId=?",
                                 (current,)).fetchone()
                if row is None:
                    return False
                chain[Level(row[0])] = current
                current = row[1]
            for level, internal_id in chain.items():
                values = dict(tags[level])
                if level is Level.STUDY:
                    values.update(tags[Level.PATIENT])
                db.execute("DELETE FROM MainDicomTags WHERE id=?", (internal_id,))
                db.execute("DELETE FROM DicomIdentifiers WHERE id=?", (internal_id,))
                rows = [(internal_id, g, e, v) for (g, e), v in values.items()]
                db.executemany("INSERT INTO MainDicomTags VALUES(?, ?, ?, ?)", rows)
                db.executemany("INSERT INTO DicomIdentifiers VALUES(?, ?, ?, ?)", _identifier_rows(rows))
            updates: list[tuple[int, int, str | None]] = [
                (instance.internal_id, kind, value) for kind, value in metadata.items()]
            updates += [(chain[level], kind, value) for level, values in level_metadata.items()
                        if level in chain for kind, value in values.items()]
            for internal_id, kind, value in updates:
                if value is None:
                    db.execute("DELETE FROM Metadata WHERE id=? AND type=?", (internal_id, kind))
                    continue
                db.execute("INSERT INTO Metadata(id, type, value, revision) VALUES(?, ?, ?, 0) "
                           "ON CONFLICT(id, type) DO UPDATE SET value=excluded.value, "
                           "revision=Metadata.revision+1", (internal_id, kind, value))
        return True

    # -- stability -------------------------------------------------------------------
    # The unstable resources and the time (seconds since the epoch, the nodes' clocks) of
    # their last instance live in the index, so that every node sharing it sees them and
    # they survive a restart; a deleted resource's row goes with it (ON DELETE CASCADE).

    def is_unstable(self, internal_id: int) -> bool:
        with self.reading() as db:
            return db.execute("SELECT 1 FROM UnstableResources WHERE id=?",
                              (internal_id,)).fetchone() is not None

    def unstable_many(self, internal_ids: list[int]) -> set[int]:
        """Those of these resources that are not stable yet."""
        with self.reading() as db:
            return {r[0] for r in select_in(db, "SELECT id FROM UnstableResources WHERE id IN ({})", internal_ids)}

    def set_unstable(self, resource: Resource) -> bool:
        """Restart the stability period of ``resource``; whether it was stable."""
        with self.transaction() as db:
            was_stable = db.execute("SELECT 1 FROM UnstableResources WHERE id=?",
                                    (resource.internal_id,)).fetchone() is None
            writes = Writes()
            writes.touch_unstable([(resource.internal_id, resource.level)])
            writes.flush(db)
        return was_stable

    def due_unstable(self, before: float) -> list[Resource]:
        """The unstable resources whose last instance came before ``before``: series, then
        study, then patient for the same instance, as they became unstable together."""
        with self.reading() as db:
            rows = db.execute(
                "SELECT r.internalId, r.resourceType, r.publicId, r.parentId FROM UnstableResources u "
                "JOIN Resources r ON r.internalId=u.id WHERE u.lastUpdate<=? "
                "ORDER BY u.lastUpdate, u.resourceType DESC", (before,)).fetchall()
        return [Resource(r[0], Level(r[1]), r[2], r[3]) for r in rows]

    def claim_stable(self, resources: list[Resource], before: float | None) -> list[Resource]:
        """Make stable those of ``resources`` still unstable (and, with ``before``, with no
        instance since): each one's Stable* change is logged in the same transaction.

        The DELETE is the claim: among nodes sharing the index, only the one whose DELETE
        removed the row answers the resource, so a resource becomes stable once."""
        if not resources:
            return []
        claimed: list[Resource] = []
        with self.transaction() as db:
            now = utc_now_iso()
            for resource in resources:
                if before is None:
                    cursor = db.execute("DELETE FROM UnstableResources WHERE id=?",
                                        (resource.internal_id,))
                else:
                    cursor = db.execute("DELETE FROM UnstableResources WHERE id=? AND lastUpdate<=?",
                                        (resource.internal_id, before))
                if cursor.rowcount == 1:
                    self._log_change(db, STABLE_CHANGE[resource.level], resource.internal_id, now)
                    claimed.append(resource)
        return claimed

    # -- deleting --------------------------------------------------------------------

    def delete(self, db: Connection, resource: Resource) -> tuple[list[Resource], list[str], Resource | None]:
        """Delete a resource, its descendants and the ancestors it leaves empty.

        Returns (deleted resources, file uuids to remove, remaining ancestor).
        Must run inside :meth:`transaction`.
        """
        rows = db.execute(
            "WITH RECURSIVE tree(id) AS (SELECT CAST(? AS BIGINT) UNION ALL "
            "SELECT r.internalId FROM Resources r JOIN tree ON r.parentId=tree.id) "
            "SELECT r.internalId, r.resourceType, r.publicId, r.parentId FROM Resources r "
            "JOIN tree ON r.internalId=tree.id", (resource.internal_id,)).fetchall()
        deleted = [Resource(r[0], Level(r[1]), r[2], r[3]) for r in rows]
        ids = [r.internal_id for r in deleted]
        uuids = self._attachment_uuids(db, ids)
        db.execute("DELETE FROM Resources WHERE internalId=?", (resource.internal_id,))
        remaining: Resource | None = None
        parent_id = resource.parent_internal_id
        while parent_id is not None:
            row = db.execute("SELECT internalId, resourceType, publicId, parentId FROM Resources "
                             "WHERE internalId=?", (parent_id,)).fetchone()
            parent = Resource(row[0], Level(row[1]), row[2], row[3])
            if db.execute("SELECT 1 FROM Resources WHERE parentId=? LIMIT 1",
                          (parent_id,)).fetchone() is not None:
                remaining = parent
                break
            uuids += self._attachment_uuids(db, [parent_id])
            deleted.append(parent)
            db.execute("DELETE FROM Resources WHERE internalId=?", (parent_id,))
            parent_id = parent.parent_internal_id
        return deleted, uuids, remaining

    @staticmethod
    def _attachment_uuids(db: Connection, ids: list[int]) -> list[str]:
        return [r[0] for r in select_in(db, "SELECT uuid FROM AttachedFiles WHERE id IN ({})", ids)]

    # -- recycling -------------------------------------------------------------------

    def is_protected(self, patient: int) -> bool:
        with self.reading() as db:
            return db.execute("SELECT 1 FROM PatientRecyclingOrder WHERE patientId=?",
                              (patient,)).fetchone() is None

    def protected_many(self, patients: list[int]) -> set[int]:
        """Those of these patients that are protected (not in the recycling order)."""
        with self.reading() as db:
            recycled = {r[0] for r in select_in(
                db, "SELECT patientId FROM PatientRecyclingOrder WHERE patientId IN ({})", patients)}
        return set(patients) - recycled

    def set_protected(self, patient: int, protected: bool) -> None:
        with self.transaction() as db:
            db.execute("DELETE FROM PatientRecyclingOrder WHERE patientId=?", (patient,))
            if not protected:
                db.execute("INSERT INTO PatientRecyclingOrder(patientId) VALUES(?)", (patient,))

    def oldest_unprotected_patient(self, db: Connection, avoid: int | None) -> Resource | None:
        row = db.execute(
            "SELECT r.internalId, r.publicId FROM PatientRecyclingOrder o JOIN Resources r "
            "ON r.internalId=o.patientId WHERE o.patientId IS NOT ? ORDER BY o.seq LIMIT 1",
            (avoid,)).fetchone()
        return None if row is None else Resource(row[0], Level.PATIENT, row[1], None)

    # -- statistics ------------------------------------------------------------------

    def totals(self, db: Connection | None = None) -> tuple[int, int]:
        """(compressed, uncompressed) bytes over every attachment."""
        if db is None:
            with self.reading() as conn:
                return self.totals(conn)
        rows = dict(db.execute("SELECT property, value FROM GlobalIntegers WHERE property IN (0, 1)"))
        return int(rows.get(0, 0)), int(rows.get(1, 0))

    def resource_sizes(self, internal_id: int) -> dict[str, int]:
        """Counts of descendants and sizes of their files, for ``/{level}/{id}/statistics``."""
        with self.reading() as db:
            rows = db.execute(
                "WITH RECURSIVE tree(id) AS (SELECT CAST(? AS BIGINT) UNION ALL "
                "SELECT r.internalId FROM Resources r JOIN tree ON r.parentId=tree.id) "
                "SELECT r.resourceType, COUNT(*) FROM Resources r JOIN tree "
                "ON r.internalId=tree.id GROUP BY r.resourceType", (internal_id,)).fetchall()
            sizes = db.execute(
                "WITH RECURSIVE tree(id) AS (SELECT CAST(? AS BIGINT) UNION ALL "
                "SELECT r.internalId FROM Resources r JOIN tree ON r.parentId=tree.id) "
                "SELECT a.fileType, COALESCE(SUM(a.compressedSize), 0), "
                "COALESCE(SUM(a.uncompressedSize), 0) FROM AttachedFiles a JOIN tree "
                "ON a.id=tree.id GROUP BY a.fileType", (internal_id,)).fetchall()
        counts = {Level(t).name: n for t, n in rows}
        result = {"PATIENT": 0, "STUDY": 0, "SERIES": 0, "INSTANCE": 0}
        result.update(counts)
        result["disk"] = sum(int(s[1]) for s in sizes)
        result["uncompressed"] = sum(int(s[2]) for s in sizes)
        result["dicom_disk"] = sum(int(s[1]) for s in sizes if s[0] == ATTACHMENT_DICOM)
        result["dicom_uncompressed"] = sum(int(s[2]) for s in sizes if s[0] == ATTACHMENT_DICOM)
        return result

    # -- changes ---------------------------------------------------------------------

    def _log_change(self, db: Connection, change: Change, internal_id: int,
                    date: str | None = None) -> None:
        db.execute("INSERT INTO Changes(changeType, internalId, resourceType, date) "
                   "SELECT ?, internalId, resourceType, ? FROM Resources WHERE internalId=?",
                   (int(change), date or utc_now_iso(), internal_id))

    def log_change(self, change: Change, internal_id: int) -> None:
        with self.transaction() as db:
            if db.execute("SELECT 1 FROM Resources WHERE internalId=?",
                          (internal_id,)).fetchone() is not None:
                self._log_change(db, change, internal_id)

    def changes(self, since: int, limit: int) -> tuple[list[ChangeRecord], bool, int]:
        """(at most ``limit`` changes after ``since``, done, index of the last change ever logged).

        ``limit`` is an unsigned 32-bit count, as in Orthanc, where the one extra row
        fetched to know whether the log is done wraps to none for the largest count.
        """
        with self.reading() as db:
            rows = db.execute(
                "SELECT c.seq, c.changeType, c.resourceType, r.publicId, c.date FROM Changes c "
                "JOIN Resources r ON r.internalId=c.internalId WHERE c.seq>? ORDER BY c.seq "
                "LIMIT ?", (since, (limit + 1) & 0xFFFFFFFF)).fetchall()
            last = self._last_change_seq(db)
        done = len(rows) <= limit
        records = [ChangeRecord(r[0], Change(r[1]), Level(r[2]), r[3], r[4]) for r in rows[:limit]]
        return records, done, last

    def changes_extended(self, since: int, to: int | None, limit: int,
                         types: set[Change]) -> tuple[list[ChangeRecord], bool, int]:
        """Orthanc 1.12.5's ExtendedChanges: :meth:`changes` filtered by ``types`` and
        bounded by ``to`` (included).  With ``to`` and no ``since``, the page is the last
        ``limit`` changes up to ``to`` (to browse backwards), still in ascending order."""
        where, args = ["TRUE"], []
        if since > 0:
            where.append("c.seq>?")
            args.append(since)
        if to is not None:
            where.append("c.seq<=?")
            args.append(to)
        if types:
            where.append(f"c.changeType IN ({','.join(str(int(t)) for t in types)})")
        backwards = to is not None and since <= 0
        select = ("SELECT c.seq, c.changeType, c.resourceType, r.publicId, c.date FROM Changes c "
                  f"JOIN Resources r ON r.internalId=c.internalId WHERE {' AND '.join(where)} "
                  f"ORDER BY c.seq {'DESC' if backwards else ''} LIMIT ?")
        with self.reading() as db:
            rows = db.execute(select, [*args, (limit + 1) & 0xFFFFFFFF]).fetchall()
            last = self._last_change_seq(db)
        done = len(rows) <= limit
        rows = sorted(rows[:limit])
        return [ChangeRecord(r[0], Change(r[1]), Level(r[2]), r[3], r[4]) for r in rows], done, last

    def last_change(self) -> tuple[list[ChangeRecord], int]:
        with self.reading() as db:
            row = db.execute(
                "SELECT c.seq, c.changeType, c.resourceType, r.publicId, c.date FROM Changes c "
                "JOIN Resources r ON r.internalId=c.internalId ORDER BY c.seq DESC LIMIT 1"
            ).fetchone()
            last = self._last_change_seq(db)
        records = [] if row is None else [ChangeRecord(row[0], Change(row[1]), Level(row[2]),
                                                        row[3], row[4])]
        return records, last

    def _last_change_seq(self, db: Connection) -> int:
        """The sequence number of the last change ever logged, even if it was deleted since
        (with its resource) or cleared: Orthanc's ``GetLastChangeIndex``."""
        return self.database.last_change_seq(db)

    def clear_changes(self) -> None:
        with self.transaction() as db:
            db.execute("DELETE FROM Changes")

    # -- exports ---------------------------------------------------------------------

    def log_export(self, level: Level, public_id: str, modality: str,
                   identifiers: dict[str, str], date: str) -> None:
        with self.transaction() as db:
            db.execute("INSERT INTO ExportedResources(resourceType, publicId, remoteModality, "
                       "patientId, studyInstanceUid, seriesInstanceUid, sopInstanceUid, date) "
                       "VALUES(?, ?, ?, ?, ?, ?, ?, ?)",
                       (int(level), public_id, modality, identifiers.get("PatientID", ""),
                        identifiers.get("StudyInstanceUID", ""),
                        identifiers.get("SeriesInstanceUID", ""),
                        identifiers.get("SOPInstanceUID", ""), date))

    def exports(self, since: int, limit: int) -> tuple[list[tuple[Any, ...]], bool]:
        """(at most ``limit`` exports after ``since``, done), ``limit`` as in :meth:`changes`."""
        with self.reading() as db:
            rows = db.execute("SELECT seq, resourceType, publicId, remoteModality, patientId, "
                              "studyInstanceUid, seriesInstanceUid, sopInstanceUid, date "
                              "FROM ExportedResources WHERE seq>? ORDER BY seq LIMIT ?",
                              (since, (limit + 1) & 0xFFFFFFFF)).fetchall()
        return rows[:limit], len(rows) <= limit

    def last_export(self) -> list[tuple[Any, ...]]:
        """The last export, as :meth:`exports` rows (``/exports?last``)."""
        with self.reading() as db:
            return db.execute("SELECT seq, resourceType, publicId, remoteModality, patientId, "
                              "studyInstanceUid, seriesInstanceUid, sopInstanceUid, date "
                              "FROM ExportedResources ORDER BY seq DESC LIMIT 1").fetchall()

    def clear_exports(self) -> None:
        with self.transaction() as db:
            db.execute("DELETE FROM ExportedResources")

    # -- lookups ---------------------------------------------------------------------

    def lookup_identifier(self, value: str) -> list[Resource]:
        """Resources whose identifying tag (PatientID or a UID) is ``value`` once both are
        normalized as Orthanc's ``NormalizeIdentifier`` does (so case does not matter)."""
        identifiers = [((0x0010, 0x0020), Level.PATIENT), ((0x0020, 0x000D), Level.STUDY),
                       ((0x0020, 0x000E), Level.SERIES), ((0x0008, 0x0018), Level.INSTANCE)]
        wanted = normalize_identifier(value)
        # Orthanc 1.12.11: "_" and "%" (which normalizing turns to spaces) make the lookup an
        # exact, case-insensitive one, so that "_5Yp0E" no longer finds "5Yp0E".
        compared = "normalize_identifier(t.value)"
        if "_" in value or "%" in value:
            compared, wanted = "upper(t.value)", value.strip().upper()
        found: list[Resource] = []
        with self.reading() as db:
            for (group, element), level in identifiers:
                rows = db.execute(
                    "SELECT r.internalId, r.publicId, r.parentId FROM MainDicomTags t "
                    "JOIN Resources r ON r.internalId=t.id WHERE t.tagGroup=? AND t.tagElement=? "
                    f"AND {compared}=? AND r.resourceType=? "
                    "ORDER BY r.internalId", (group, element, wanted, int(level))).fetchall()
                found += [Resource(r[0], level, r[1], r[2]) for r in rows]
        return found

    def candidates(self, level: Level, exact: dict[Tag, str],
                   folded: dict[Tag, tuple[str, list[object]]] | None = None,
                   tested: dict[Tag, tuple[str, list[object]]] | None = None) -> Iterable[int]:
        """Internal ids at ``level`` whose indexed tags equal ``exact`` (all of them), whose
        upper-cased identifiers pass ``folded``'s SQL conditions (on a column ``{v}``), and
        whose indexed tags pass ``tested``'s (a range of dates...)."""
        sql = "SELECT internalId FROM Resources WHERE resourceType=?"
        args: list[object] = [int(level)]
        for (group, element), value in exact.items():
            sql += (" AND internalId IN (SELECT id FROM MainDicomTags WHERE tagGroup=? "
                    "AND tagElement=? AND value=?)")
            args += [group, element, value]
        for table, conditions in (("DicomIdentifiers", folded), ("MainDicomTags", tested)):
            for (group, element), (condition, values) in (conditions or {}).items():
                sql += (f" AND internalId IN (SELECT id FROM {table} WHERE tagGroup=? "
                        f"AND tagElement=? AND {condition.format(v='value')})")
                args += [group, element, *values]
        sql += " ORDER BY internalId"
        with self.reading() as db:
            return [r[0] for r in db.execute(sql, args)]

    def main_tags_many(self, internal_ids: list[int]) -> dict[int, dict[Tag, str]]:
        result: dict[int, dict[Tag, str]] = {i: {} for i in internal_ids}
        with self.reading() as db:
            for rid, g, e, v in select_in(
                    db, "SELECT id, tagGroup, tagElement, value FROM MainDicomTags WHERE id IN ({})", internal_ids):
                result[rid][(g, e)] = v
        return result

    # -- jobs ------------------------------------------------------------------------

    # The jobs' snapshots are promised to survive a crash of the process (``kill -9``), not a
    # power cut: their commits are not synced (``synced=False``), which cost a small job two
    # waits for the disk.

    def save_job(self, job_id: str, document: str) -> None:
        with self.transaction(synced=False) as db:
            db.execute("INSERT OR REPLACE INTO Jobs VALUES(?, ?)", (job_id, document))

    def delete_job(self, job_id: str) -> None:
        with self.transaction(synced=False) as db:
            db.execute("DELETE FROM Jobs WHERE id=?", (job_id,))

    def save_jobs(self, changes: list[tuple[str, str | None]]) -> None:
        """Several jobs' documents (None: delete the job) in one transaction: the jobs engine's
        snapshots taken while another was being written share one commit."""
        with self.transaction(synced=False) as db:
            db.executemany("DELETE FROM Jobs WHERE id=?", [(i,) for i, d in changes if d is None])
            db.executemany("INSERT OR REPLACE INTO Jobs VALUES(?, ?)",
                           [(i, d) for i, d in changes if d is not None])

    def load_jobs(self) -> list[tuple[str, str]]:
        with self.reading() as db:
            return db.execute("SELECT id, document FROM Jobs").fetchall()

    def clear_jobs(self) -> None:
        with self.transaction() as db:
            db.execute("DELETE FROM Jobs")

    # -- storage commitment reports ----------------------------------------------------

    def save_commitment_report(self, uid: str, document: str, limit: int) -> None:
        """Insert or update a report; beyond ``limit``, the least recently used go."""
        with self.transaction() as db:
            self._touch_report(db, uid, document)
            db.execute("DELETE FROM StorageCommitmentReports WHERE uid NOT IN (SELECT uid FROM "
                       "StorageCommitmentReports ORDER BY lastAccess DESC LIMIT ?)", (limit,))

    def get_commitment_report(self, uid: str) -> str | None:
        with self.transaction() as db:
            row = db.execute("SELECT document FROM StorageCommitmentReports WHERE uid=?", (uid,)).fetchone()
            if row is not None:
                self._touch_report(db, uid, row[0])
        return None if row is None else row[0]

    @staticmethod
    def _touch_report(db: Connection, uid: str, document: str) -> None:
        last = db.execute("SELECT COALESCE(MAX(lastAccess), 0) FROM StorageCommitmentReports").fetchone()[0]
        db.execute("INSERT OR REPLACE INTO StorageCommitmentReports VALUES(?, ?, ?)", (uid, document, last + 1))

    # -- key-value stores and queues (Orthanc 1.12.8) -----------------------------------
    # The tables are created when missing, so that an index written before them opens as is.

    def store_key_value(self, store_id: str, key: str, value: bytes) -> None:
        with self.transaction() as db:
            db.execute("INSERT OR REPLACE INTO KeyValueStores VALUES(?, ?, ?)", (store_id, key, value))

    def get_key_value(self, store_id: str, key: str) -> bytes | None:
        with self.reading() as db:
            row = db.execute("SELECT value FROM KeyValueStores WHERE storeId=? AND key=?",
                             (store_id, key)).fetchone()
        return None if row is None else bytes(row[0])

    def delete_key_value(self, store_id: str, key: str) -> None:
        with self.transaction() as db:
            db.execute("DELETE FROM KeyValueStores WHERE storeId=? AND key=?", (store_id, key))

    def list_keys_values(self, store_id: str, after: str | None, limit: int) -> list[tuple[str, bytes]]:
        """The pairs of a store in the keys' order, from the first key past ``after``."""
        sql = "SELECT key, value FROM KeyValueStores WHERE storeId=?"
        arguments: tuple[Any, ...] = (store_id,)
        if after is not None:
            sql, arguments = sql + " AND key>?", (store_id, after)
        with self.reading() as db:
            rows = db.execute(sql + " ORDER BY key LIMIT ?", (*arguments, limit)).fetchall()
        return [(key, bytes(value)) for key, value in rows]

    def enqueue_value(self, queue_id: str, value: bytes) -> None:
        with self.transaction() as db:
            db.execute("INSERT INTO Queues(queueId, value) VALUES(?, ?)", (queue_id, value))

    def dequeue_value(self, queue_id: str, from_back: bool, now: int) -> bytes | None:
        """Remove and answer the oldest (or newest) value that no one holds a live reservation of."""
        with self.transaction() as db:
            found = self._available_in_queue(db, queue_id, from_back, now)
            if found is not None:
                db.execute("DELETE FROM Queues WHERE id=?", (found[0],))
        return None if found is None else found[1]

    def reserve_queue_value(self, queue_id: str, from_back: bool, now: int,
                            until: int) -> tuple[int, bytes] | None:
        """Hide a value from the other consumers until ``until`` (seconds since the epoch) or
        its acknowledgement; answers its ID and the value."""
        with self.transaction() as db:
            found = self._available_in_queue(db, queue_id, from_back, now)
            if found is not None:
                db.execute("UPDATE Queues SET reservedUntil=? WHERE id=?", (until, found[0]))
        return found

    def acknowledge_queue_value(self, queue_id: str, value_id: int, now: int) -> bool:
        """Remove a reserved value; False when its reservation has expired (or it is unknown)."""
        with self.transaction() as db:
            cursor = db.execute("DELETE FROM Queues WHERE queueId=? AND id=? AND reservedUntil IS NOT NULL "
                                "AND ? < reservedUntil", (queue_id, value_id, now))
        return cursor.rowcount == 1

    def queue_size(self, queue_id: str) -> int:
        """Every value of the queue, the reserved ones included (as Orthanc counts)."""
        with self.reading() as db:
            return int(db.execute("SELECT COUNT(*) FROM Queues WHERE queueId=?", (queue_id,)).fetchone()[0])

    @staticmethod
    def _available_in_queue(db: Connection, queue_id: str, from_back: bool,
                            now: int) -> tuple[int, bytes] | None:
        order = "DESC" if from_back else "ASC"
        row = db.execute("SELECT id, value FROM Queues WHERE queueId=? AND (reservedUntil IS NULL OR "
                         f"reservedUntil <= ?) ORDER BY id {order} LIMIT 1", (queue_id, now)).fetchone()
        return None if row is None else (int(row[0]), bytes(row[1]))

    # -- global properties -----------------------------------------------------------

    def get_property(self, key: int) -> str | None:
        with self.reading() as db:
            row = db.execute("SELECT value FROM GlobalProperties WHERE property=?",
                             (key,)).fetchone()
        return None if row is None else row[0]

    def set_property(self, key: int, value: str) -> None:
        with self.transaction() as db:
            db.execute("INSERT OR REPLACE INTO GlobalProperties VALUES(?, ?)", (key, value))

    def increment_property(self, key: int) -> int:
        with self.transaction() as db:
            row = db.execute("SELECT value FROM GlobalProperties WHERE property=?",
                             (key,)).fetchone()
            value = (int(row[0]) if row else 0) + 1
            db.execute("INSERT OR REPLACE INTO GlobalProperties VALUES(?, ?)", (key, str(value)))
        return value

