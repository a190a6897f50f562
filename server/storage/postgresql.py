"""The PostgreSQL engine of the index: several Isengard nodes can share one database.

Selected, as with Orthanc's orthanc-postgresql plugin, by a ``PostgreSQL`` section with
``"EnableIndex": true``, the plugin's option names (``Host``, ``Port``, ``Database``,
``Username``, ``Password`` or ``ConnectionUri``, ``EnableSsl``, ``Lock``,
``MaximumConnectionRetries``, ``ConnectionRetryInterval``, ``IndexConnectionsCount``).

The index's statements are SQLite's; :func:`translate` rewrites each one once (cached):
``?`` to PostgreSQL's ``$1``, ``$2``..., ``GLOB`` to an operator defined in the schema (the same
pattern, as LIKE), ``INSERT OR REPLACE/IGNORE`` to ``ON CONFLICT``, ``LIMIT -1`` to
``LIMIT ALL``, ``IS NOT ?`` to ``IS DISTINCT FROM``, a ``CAST`` of text to a number to
SQLite's lenient one (its leading number, else 0), and an insert into a table with a
generated key gets ``RETURNING`` it, for ``lastrowid``.

Writers are serialised cluster-wide by a transaction-scoped advisory lock, which is what
SQLite's single writer gave the index (a lookup then an insert cannot race another
node's; changes are numbered in the order they commit), and run in psycopg's pipeline
mode: only the statements whose answers are read wait for them, so that the lock is held
for a few round trips per ingest rather than a dozen.  An ingest batch takes it late
(``late_lock``): it looks up and prepares its rows while another node writes, then holds
the lock for its writes and its commit alone; a resource another node created or deleted
meanwhile fails a key, and the batch runs again, lock first (:class:`WriteConflict`).
Readers run in a REPEATABLE READ transaction, one snapshot however many statements.
Each thread holds at most one pooled connection: a nested ``reading`` or ``transaction``
reuses it, so a small pool cannot deadlock.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import psycopg
from psycopg.conninfo import make_conninfo
from psycopg_pool import ConnectionPool

from server.config.error import ConfigError
from server.storage.database import Connection, WriteConflict

log = logging.getLogger(__name__)


def _not_a_second_error(record: logging.LogRecord) -> bool:
    """psycopg warns of the pipeline's end failing after an error in it: the first error is
    the one raised, and handled (a :class:`WriteConflict` is routine between nodes)."""
    return not str(record.msg).startswith("error ignored terminating")


logging.getLogger("psycopg").addFilter(_not_a_second_error)

#: Advisory lock keys: the node's exclusive use (``Lock``), and the one writer at a time.
LOCK_KEY = 0x15E9A4D0
WRITER_KEY = 0x15E9A4D1

#: ``/system``'s ``DatabaseBackendPlugin`` (Orthanc shows the plugin's library there).
BACKEND_NAME = "PostgreSQL"

#: The index's tables in PostgreSQL: SQLite's, with PostgreSQL's types.  Text compares
#: in the "C" collation, byte by byte as SQLite does, whatever the database's locale
#: (so that ``ORDER BY`` and ``upper`` agree on both engines).
SCHEMA = """
CREATE TABLE IF NOT EXISTS GlobalProperties(property INTEGER PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS Resources(
    internalId BIGSERIAL PRIMARY KEY,
    resourceType INTEGER NOT NULL,
    publicId TEXT COLLATE "C" NOT NULL,
    parentId BIGINT REFERENCES Resources(internalId) ON DELETE CASCADE);
CREATE UNIQUE INDEX IF NOT EXISTS PublicIndex ON Resources(publicId);
CREATE INDEX IF NOT EXISTS ChildrenIndex ON Resources(parentId);
CREATE INDEX IF NOT EXISTS LevelIndex ON Resources(resourceType, internalId);
CREATE TABLE IF NOT EXISTS MainDicomTags(
    id BIGINT REFERENCES Resources(internalId) ON DELETE CASCADE,
    tagGroup INTEGER, tagElement INTEGER, value TEXT COLLATE "C",
    PRIMARY KEY(id, tagGroup, tagElement));
CREATE INDEX IF NOT EXISTS MainDicomTagsValues ON MainDicomTags(tagGroup, tagElement, value);
CREATE TABLE IF NOT EXISTS DicomIdentifiers(
    id BIGINT REFERENCES Resources(internalId) ON DELETE CASCADE,
    tagGroup INTEGER, tagElement INTEGER, value TEXT COLLATE "C",
    PRIMARY KEY(id, tagGroup, tagElement));
CREATE INDEX IF NOT EXISTS DicomIdentifiersValues ON DicomIdentifiers(tagGroup, tagElement, value);
CREATE TABLE IF NOT EXISTS Metadata(
    id BIGINT REFERENCES Resources(internalId) ON DELETE CASCADE,
    type INTEGER, value TEXT COLLATE "C", revision INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY(id, type));
CREATE TABLE IF NOT EXISTS AttachedFiles(
    id BIGINT REFERENCES Resources(internalId) ON DELETE CASCADE,
    fileType INTEGER, uuid TEXT COLLATE "C" NOT NULL, compressedSize BIGINT,
    uncompressedSize BIGINT, compressionType INTEGER, uncompressedMD5 TEXT, compressedMD5 TEXT,
    revision INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY(id, fileType));
CREATE UNIQUE INDEX IF NOT EXISTS AttachedFilesUuid ON AttachedFiles(uuid);
CREATE TABLE IF NOT EXISTS Changes(
    seq BIGSERIAL PRIMARY KEY, changeType INTEGER,
    internalId BIGINT REFERENCES Resources(internalId) ON DELETE CASCADE,
    resourceType INTEGER, date TEXT);
CREATE INDEX IF NOT EXISTS ChangesIndex ON Changes(internalId);
CREATE TABLE IF NOT EXISTS ExportedResources(
    seq BIGSERIAL PRIMARY KEY, resourceType INTEGER, publicId TEXT,
    remoteModality TEXT, patientId TEXT, studyInstanceUid TEXT, seriesInstanceUid TEXT,
    sopInstanceUid TEXT, date TEXT);
CREATE TABLE IF NOT EXISTS PatientRecyclingOrder(
    seq BIGSERIAL PRIMARY KEY,
    patientId BIGINT REFERENCES Resources(internalId) ON DELETE CASCADE);
CREATE INDEX IF NOT EXISTS PatientRecyclingIndex ON PatientRecyclingOrder(patientId);
CREATE TABLE IF NOT EXISTS Labels(
    id BIGINT REFERENCES Resources(internalId) ON DELETE CASCADE,
    label TEXT COLLATE "C" NOT NULL, PRIMARY KEY(id, label));
CREATE INDEX IF NOT EXISTS LabelsIndex ON Labels(label);
CREATE TABLE IF NOT EXISTS Jobs(id TEXT PRIMARY KEY, document TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS StorageCommitmentReports(
    uid TEXT PRIMARY KEY, document TEXT NOT NULL, lastAccess BIGINT NOT NULL);
CREATE TABLE IF NOT EXISTS KeyValueStores(
    storeId TEXT COLLATE "C" NOT NULL, key TEXT COLLATE "C" NOT NULL, value BYTEA NOT NULL,
    PRIMARY KEY(storeId, key));
CREATE TABLE IF NOT EXISTS Queues(
    id BIGSERIAL PRIMARY KEY, queueId TEXT COLLATE "C" NOT NULL, value BYTEA NOT NULL,
    reservedUntil BIGINT DEFAULT NULL);
CREATE INDEX IF NOT EXISTS QueuesIndex ON Queues(queueId, id);
CREATE TABLE IF NOT EXISTS UnstableResources(
    id BIGINT PRIMARY KEY REFERENCES Resources(internalId) ON DELETE CASCADE,
    resourceType INTEGER NOT NULL, lastUpdate DOUBLE PRECISION NOT NULL);
CREATE INDEX IF NOT EXISTS UnstableResourcesAge ON UnstableResources(lastUpdate);
CREATE TABLE IF NOT EXISTS GlobalIntegers(property INTEGER PRIMARY KEY, value BIGINT NOT NULL);
INSERT INTO GlobalIntegers SELECT 0, COALESCE(SUM(compressedSize), 0) FROM AttachedFiles
    ON CONFLICT DO NOTHING;
INSERT INTO GlobalIntegers SELECT 1, COALESCE(SUM(uncompressedSize), 0) FROM AttachedFiles
    ON CONFLICT DO NOTHING;

-- The totals of GlobalIntegers, kept as SQLite's triggers keep them (see index.py).
CREATE OR REPLACE FUNCTION attached_files_totals() RETURNS TRIGGER LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'INSERT' THEN
        UPDATE GlobalIntegers SET value = value - COALESCE(CASE property WHEN 0 THEN OLD.compressedSize
            ELSE OLD.uncompressedSize END, 0) WHERE property IN (0, 1);
    END IF;
    IF TG_OP <> 'DELETE' THEN
        UPDATE GlobalIntegers SET value = value + COALESCE(CASE property WHEN 0 THEN NEW.compressedSize
            ELSE NEW.uncompressedSize END, 0) WHERE property IN (0, 1);
    END IF;
    RETURN NULL;
END $$;
CREATE OR REPLACE TRIGGER AttachedFilesTotals AFTER INSERT OR DELETE
    OR UPDATE OF compressedSize, uncompressedSize ON AttachedFiles
    FOR EACH ROW EXECUTE FUNCTION attached_files_totals();

-- Orthanc's upper case with accents (one character for one): the database's ctype,
-- never the "C" collation of the columns, which would change ASCII letters only.
CREATE OR REPLACE FUNCTION orthanc_upper(value TEXT) RETURNS TEXT
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    AS $$ SELECT upper(value COLLATE "default") $$;

-- Orthanc's NormalizeIdentifier: "%" and "_" as spaces, printable ASCII only, upper case.
CREATE OR REPLACE FUNCTION normalize_identifier(value TEXT) RETURNS TEXT
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    AS $$ SELECT btrim(upper(regexp_replace(translate(value, '%_', '  '), '[^\\x20-\\x7e]', '', 'g'))) $$;

-- SQLite's GLOB as the index writes its patterns (only "*", "?" and "[[]" for "["), as LIKE.
CREATE OR REPLACE FUNCTION isengard_glob(value TEXT, pattern TEXT) RETURNS BOOLEAN
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    AS $$ SELECT value LIKE replace(replace(replace(replace(replace(replace(pattern,
        '\\', '\\\\'), '%', '\\%'), '_', '\\_'), '[[]', '['), '*', '%'), '?', '_') $$;

-- SQLite's lenient CAST of text to a number: its leading number, else 0 (never an error).
CREATE OR REPLACE FUNCTION sqlite_integer(value TEXT) RETURNS NUMERIC
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    AS $$ SELECT COALESCE(substring(value FROM '^\\s*([+-]?[0-9]+)')::NUMERIC, 0) $$;
CREATE OR REPLACE FUNCTION sqlite_real(value TEXT) RETURNS DOUBLE PRECISION
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    AS $$ SELECT COALESCE(substring(value FROM
        '^\\s*([+-]?([0-9]+[.]?[0-9]*|[.][0-9]+)([eE][+-]?[0-9]+)?)')::DOUBLE PRECISION, 0) $$;

DO $$ BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_operator WHERE oprname = '<~>'
                   AND oprleft = 'text'::regtype AND oprright = 'text'::regtype) THEN
        CREATE OPERATOR <~> (LEFTARG = TEXT, RIGHTARG = TEXT, FUNCTION = isengard_glob);
    END IF;
END $$;
"""

#: For ``INSERT OR REPLACE``: each table's key, then its other columns (all replaced).
_REPLACED = {
    "globalproperties": ("property", ("value",)),
    "metadata": ("id, type", ("value", "revision")),
    "jobs": ("id", ("document",)),
    "storagecommitmentreports": ("uid", ("document", "lastAccess")),
    "keyvaluestores": ("storeId, key", ("value",)),
}

#: The generated key of each table that has one, returned by an insert (``lastrowid``).
_GENERATED = {"resources": "internalId", "changes": "seq", "exportedresources": "seq",
              "patientrecyclingorder": "seq", "queues": "id"}

_LENIENT_CAST = re.compile(r"CAST\(([\w.]+) AS (INTEGER|REAL)\)")
_INSERT_OR = re.compile(r"^\s*INSERT OR (REPLACE|IGNORE) INTO (\w+)", re.IGNORECASE)
_INSERT = re.compile(r"^\s*INSERT INTO (\w+)", re.IGNORECASE)


@lru_cache(maxsize=4096)
def translate(sql: str) -> tuple[bytes, bool]:
    """A statement of the index in PostgreSQL's words, with its own ``$1``, ``$2``...
    placeholders (which psycopg's ``RawCursor`` sends as they are: no parsing of each
    statement on each call, which psycopg caches for 50 parameters at most); and whether
    it returns a generated key."""
    text = sql.replace("IS NOT ?", "IS DISTINCT FROM ?")
    text = text.replace(" GLOB ", " <~> ").replace("LIMIT -1", "LIMIT ALL")
    text = _LENIENT_CAST.sub(lambda m: f"sqlite_{m.group(2).lower()}({m.group(1)})", text)
    conflict = ""
    found = _INSERT_OR.match(text)
    if found is not None:
        text = "INSERT INTO " + text[found.end(1) + len(" INTO "):].lstrip()
        if found.group(1).upper() == "IGNORE":
            conflict = " ON CONFLICT DO NOTHING"
        else:
            key, others = _REPLACED[found.group(2).lower()]
            updates = ", ".join(f"{column}=EXCLUDED.{column}" for column in others)
            conflict = f" ON CONFLICT ({key}) DO UPDATE SET {updates}"
    inserted = _INSERT.match(text)
    generated = _GENERATED.get(inserted.group(1).lower()) if inserted and not conflict else None
    text += f" RETURNING {generated}" if generated else conflict
    first, *rest = text.split("?")
    return (first + "".join(f"${number}{part}" for number, part in enumerate(rest, 1))).encode(), bool(generated)


class _Cursor:
    """A psycopg cursor that answers ``lastrowid`` as sqlite3's does.  In a pipeline (a
    write transaction), its results arrive when read: fetching waits for them (psycopg
    does), and so do ``lastrowid`` and ``rowcount`` (which psycopg would answer before
    they came), only when they are read."""

    def __init__(self, cursor: psycopg.Cursor[Any], returns_key: bool,
                 pipeline: psycopg.Pipeline | None = None) -> None:
        self._cursor = cursor
        self._pipeline = pipeline
        self._returns_key = returns_key
        self._key: int | None = None

    @property
    def lastrowid(self) -> int | None:
        if self._returns_key:
            row = self._cursor.fetchone()
            self._key = None if row is None else int(row[0])
            self._returns_key = False
        return self._key

    @property
    def rowcount(self) -> int:
        if self._pipeline is not None and self._cursor.pgresult is None:
            self._pipeline.sync()
        return self._cursor.rowcount

    def fetchone(self) -> Any:
        return self._cursor.fetchone()

    def fetchall(self) -> list[Any]:
        return self._cursor.fetchall()

    def __iter__(self) -> Iterator[Any]:
        return iter(self._cursor)


class _Connection:
    """A pooled connection running the index's SQLite statements."""

    def __init__(self, connection: psycopg.Connection[Any]) -> None:
        self.raw = connection
        #: Set in a write transaction: statements go without waiting for their answers.
        self.pipeline: psycopg.Pipeline | None = None

    def execute(self, sql: str, parameters: Sequence[Any] = (), /) -> _Cursor:
        text, returns_key = translate(sql)
        return _Cursor(self.raw.execute(text, list(parameters)), returns_key, self.pipeline)

    def executemany(self, sql: str, parameters: Iterable[Sequence[Any]], /) -> _Cursor:
        text, _ = translate(sql)
        cursor = self.raw.cursor()
        rows = [list(row) for row in parameters]
        if rows:
            cursor.executemany(text, rows)
        return _Cursor(cursor, False, self.pipeline)


@dataclass
class Settings:
    """The ``PostgreSQL`` section, as the plugin reads it."""

    conninfo: str
    lock: bool = True
    retries: int = 10
    retry_interval: float = 5
    connections: int = 50

    @classmethod
    def from_config(cls, section: dict[str, Any]) -> Settings:
        uri = section.get("ConnectionUri")
        if uri:
            conninfo = str(uri)
        else:
            fields = {"host": section.get("Host", "localhost"), "port": section.get("Port", 5432),
                      "dbname": section.get("Database"), "user": section.get("Username"),
                      "password": section.get("Password")}
            if section.get("EnableSsl"):
                fields["sslmode"] = "require"
            conninfo = make_conninfo(**{k: v for k, v in fields.items() if v not in (None, "")})
        return cls(conninfo, bool(section.get("Lock", True)),
                   int(section.get("MaximumConnectionRetries", 10)),
                   float(section.get("ConnectionRetryInterval", 5)),
                   max(1, int(section.get("IndexConnectionsCount", 50))))


class _ThreadState(threading.local):
    connection: _Connection | None = None
    writing = False
    #: In a ``late_lock`` write that has not taken the writers' lock yet.
    unlocked = False


class PostgresDatabase:
    """The index's :class:`~server.storage.database.Database` on PostgreSQL."""

    backend_plugin: str | None = BACKEND_NAME
    needs_identifiers = False
    several_writers = True

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._state = _ThreadState()
        self._lock_connection: psycopg.Connection[Any] | None = None
        first = self._connect()
        try:
            if settings.lock:
                self._take_lock(first)
            with first.transaction():
                first.execute("SELECT pg_advisory_xact_lock(%s)", (WRITER_KEY,))
                first.execute(SCHEMA)
                first.execute("INSERT INTO GlobalProperties VALUES(1, '6') ON CONFLICT DO NOTHING")
        except BaseException:
            first.close()
            raise
        if settings.lock:
            self._lock_connection = first
        else:
            first.close()
        self._pool = ConnectionPool(settings.conninfo, min_size=1, max_size=settings.connections,
                                    kwargs={"autocommit": True, "cursor_factory": psycopg.RawCursor},
                                    open=False,
                                    name="isengard-index")
        self._pool.open(wait=True, timeout=max(30.0, settings.retries * settings.retry_interval))

    def _connect(self) -> psycopg.Connection[Any]:
        """The first connection, tried ``MaximumConnectionRetries`` more times, as the plugin."""
        attempt = 0
        while True:
            try:
                return psycopg.connect(self.settings.conninfo, autocommit=True)
            except psycopg.OperationalError as error:
                if attempt >= self.settings.retries:
                    raise ConfigError(f"Cannot connect to the PostgreSQL index: "
                                      f"{str(error).strip()}") from error
                attempt += 1
                log.warning("PostgreSQL index unreachable, retrying in %s s (%d/%d): %s",
                            self.settings.retry_interval, attempt, self.settings.retries,
                            str(error).strip())
                time.sleep(self.settings.retry_interval)

    @staticmethod
    def _take_lock(connection: psycopg.Connection[Any]) -> None:
        """``"Lock": true``: this node only, for as long as it runs (a session lock)."""
        row = connection.execute("SELECT pg_try_advisory_lock(%s)", (LOCK_KEY,)).fetchone()
        if not row or not row[0]:
            raise ConfigError('The PostgreSQL database is locked by another instance of '
                              'Isengard; set "Lock": false in the "PostgreSQL" section of every '
                              'node that shares it')

    def close(self) -> None:
        self._pool.close()
        if self._lock_connection is not None:
            self._lock_connection.close()
            self._lock_connection = None

    @contextmanager
    def _reading(self) -> Iterator[_Connection]:
        """This thread's connection in a REPEATABLE READ transaction."""
        state = self._state
        with self._pool.connection() as raw:
            state.connection = connection = _Connection(raw)
            try:
                raw.execute(self._READ)
                try:
                    yield connection
                except BaseException:
                    raw.execute("ROLLBACK")
                    raise
                raw.execute("COMMIT")
            finally:
                state.connection = None

    @contextmanager
    def _writing(self, late_lock: bool) -> Iterator[_Connection]:
        """This thread's connection in a write transaction, in psycopg's pipeline mode: a
        statement whose answer is not read (most of an ingest's inserts) does not wait
        for it, so the writers' lock is held for a few round trips instead of one per
        statement.  An error comes when the next answer is read (or at the end), and
        rolls back all; the ROLLBACK goes after the pipeline, whose statements after an
        error are not run until it ends.

        ``late_lock``: the writers' lock waits for :meth:`lock_writers`; a resource that
        another writer created or deleted meanwhile makes an insert fail on its key, which
        is a :class:`WriteConflict`."""
        state = self._state
        with self._pool.connection() as raw:
            state.connection = connection = _Connection(raw)
            try:
                with raw.pipeline() as pipeline:
                    connection.pipeline = pipeline
                    for statement in self._BEGIN_WRITE[:1] if late_lock else self._BEGIN_WRITE:
                        raw.execute(statement)
                    yield connection
                    raw.execute("COMMIT")
            except BaseException as error:
                if isinstance(error, psycopg.Error):
                    # After an error in a pipeline, psycopg may take for prepared a
                    # statement whose PREPARE was skipped, and fail at its next use: the
                    # connection is closed (which rolls back), and the pool replaces it.
                    raw.close()
                else:
                    raw.execute("ROLLBACK")
                if late_lock and isinstance(error, (psycopg.errors.UniqueViolation,
                                                    psycopg.errors.ForeignKeyViolation)):
                    raise WriteConflict(str(error).strip()) from error
                raise
            finally:
                connection.pipeline = None
                state.connection = None

    _BEGIN_WRITE = ("BEGIN ISOLATION LEVEL READ COMMITTED", f"SELECT pg_advisory_xact_lock({WRITER_KEY})")
    _WRITE = "; ".join(_BEGIN_WRITE)
    _READ = "BEGIN ISOLATION LEVEL REPEATABLE READ"

    @contextmanager
    def transaction(self, late_lock: bool = False, synced: bool = True) -> Iterator[Connection]:
        state = self._state
        current = state.connection
        if current is None:
            state.writing, state.unlocked = True, late_lock
            try:
                with self._writing(late_lock) as connection:
                    yield connection
            finally:
                state.writing = state.unlocked = False
        elif state.writing:
            if state.unlocked and not late_lock:  # a write that needs the lock from its start
                self.lock_writers(current)
            yield current
        else:
            # A write inside a read: the read's snapshot ends, the write commits, and the
            # reading goes on in a new snapshot that sees it (as SQLite's reads would).
            current.raw.execute("COMMIT")
            current.raw.execute(self._WRITE)
            state.writing = True
            try:
                yield current
            except BaseException:
                current.raw.execute("ROLLBACK")
                raise
            else:
                current.raw.execute("COMMIT")
            finally:
                state.writing = False
                current.raw.execute(self._READ)

    def lock_writers(self, db: Connection) -> None:
        """Its answer is not read: the statements after it wait, in PostgreSQL, for the lock."""
        db.execute(f"SELECT pg_advisory_xact_lock({WRITER_KEY})")
        self._state.unlocked = False

    @contextmanager
    def reading(self) -> Iterator[Connection]:
        current = self._state.connection
        if current is not None:
            yield current
            return
        with self._reading() as connection:
            yield connection

    def read_one(self, sql: str, parameters: Sequence[Any] = (), /) -> Any:
        """Outside a transaction, one statement alone (autocommit): no BEGIN and COMMIT
        round trips around it."""
        current = self._state.connection
        if current is not None:
            return current.execute(sql, parameters).fetchone()
        with self._pool.connection() as raw:
            return raw.execute(translate(sql)[0], list(parameters)).fetchone()

    def reserve_resource_ids(self, db: Connection, count: int) -> Iterator[int]:
        """Ids from the resources' own sequence (inserted explicitly, they leave it as
        it is): their answer comes with the next statement's, in the pipeline of a write."""
        rows = db.execute("SELECT nextval('resources_internalid_seq') FROM generate_series(1, ?)", (count,))
        return (int(row[0]) for row in rows)

    def last_change_seq(self, db: Connection) -> int:
        row = db.execute("SELECT CASE WHEN is_called THEN last_value ELSE 0 END "
                         "FROM changes_seq_seq").fetchone()
        return int(row[0])
