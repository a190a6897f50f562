"""The jobs of a cluster in PostgreSQL: one queue for every node that shares the database.

A row per job (:data:`SCHEMA`): its saved document (the engine's, as the single-node
``Jobs`` table holds it) and the columns the nodes coordinate with: ``state`` and
``priority`` (the queue), ``owner`` and ``lease_until`` (the node running or holding the
job, until when), ``requested`` (a pause or cancel asked on another node, which the runner
reads when it renews its lease), ``retry_at``, ``finished_at`` (the history's order), and
``home``: the node of a job that cannot be serialized, the only one that can run it, which
keeps its lease whatever its state (once that lease ends, the next node fails the job).
A node takes the next job with ``FOR UPDATE SKIP LOCKED``, so two nodes never take the
same one; a job whose owner stopped renewing its lease is taken by the next node asking.

A lease ends early when its node is known dead: each node holds a session advisory lock
(:data:`NODES_KEY`, its number in ``ClusterNodes``) on a connection of its own, which
PostgreSQL releases as soon as that connection closes, as it does when the node's process
ends (``kill -9`` included).  A node whose lock is free and which has not renewed its
leases for :data:`DEAD_AFTER_SECONDS` is dead: a node restarted after a crash, or another
node, takes its jobs within seconds, not half a minute later.  The delay spares a node whose
connection was only cut: it opens it again at its next renewal.  For the same reason no node
is taken for dead in the first seconds of the database's own run (after a restart of
PostgreSQL, every node's lock is free until it reconnects).  A node that is alive but
silent (frozen, or cut off from the database with its connection still open) keeps its
leases until they end.

Times are the database's clock (``clock_timestamp()``), never a node's, so the nodes'
clocks may differ.  Events (``/jobs/events`` of the whole cluster) go through the small
``ClusterJobEvents`` table, inserted under an advisory lock so that their sequence
numbers commit in order and a reader that polls ``seq > last`` misses none.

This store has its own small pool: the jobs' frequent small writes never wait for the
index's cluster-wide writer lock (:mod:`server.storage.postgresql`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool

from server.jobs.cluster import Change, Claimed, Stored, StoredEvent

log = logging.getLogger("isengard.jobs")

#: Advisory lock held while inserting events, so that their ``seq`` commit in order.
EVENTS_KEY = 0x15E9A4D2
#: First key of the nodes' liveness locks: a node holds (NODES_KEY, its number) while it lives.
NODES_KEY = 0x15E9A4D3
#: A node whose liveness lock is free is dead once it has not renewed its leases for this
#: long (it renews them every second), and never in the database's first seconds.
DEAD_AFTER_SECONDS = 3.0

SCHEMA = """
CREATE TABLE IF NOT EXISTS ClusterJobs(
    id TEXT PRIMARY KEY, seq BIGSERIAL, state TEXT NOT NULL, priority INTEGER NOT NULL,
    document TEXT NOT NULL, owner TEXT, lease_until DOUBLE PRECISION,
    requested TEXT, retry_at DOUBLE PRECISION, finished_at DOUBLE PRECISION, home TEXT);
CREATE INDEX IF NOT EXISTS ClusterJobsQueue ON ClusterJobs(state, priority DESC, seq);
CREATE TABLE IF NOT EXISTS ClusterNodes(node TEXT PRIMARY KEY, number SERIAL UNIQUE,
                                        seen DOUBLE PRECISION NOT NULL);
CREATE TABLE IF NOT EXISTS ClusterJobEvents(
    seq BIGSERIAL PRIMARY KEY, node TEXT NOT NULL, kind TEXT NOT NULL, jobId TEXT NOT NULL,
    progress INTEGER, at DOUBLE PRECISION NOT NULL);
"""

_NOW = "extract(epoch from clock_timestamp())"

#: The nodes known dead: registered, their liveness lock free (their connection is gone),
#: and silent for a while.  A node of an older Isengard, not registered, is never taken for dead.
_DEAD = f"""SELECT n.node FROM ClusterNodes n WHERE n.seen < {_NOW} - {DEAD_AFTER_SECONDS}
    AND extract(epoch from pg_postmaster_start_time()) < {_NOW} - {DEAD_AFTER_SECONDS}
    AND NOT EXISTS (
    SELECT 1 FROM pg_locks l WHERE l.locktype='advisory' AND l.granted AND l.objsubid=2
    AND l.database=(SELECT oid FROM pg_database WHERE datname=current_database())
    AND l.classid={NODES_KEY} AND l.objid=n.number)"""
#: A lease has ended: its time is up, or its node is dead.
_ENDED = f"(lease_until < {_NOW} OR owner IN ({_DEAD}))"

#: The jobs a node saved in the index's ``Jobs`` table before it shared them (one node's
#: ``SaveJobs``), moved into the queue once: free to take, the finished ones oldest.
_ADOPT_SAVED = """
INSERT INTO ClusterJobs(id, state, priority, document, lease_until, retry_at, finished_at)
SELECT id, document::json->>'State', COALESCE((document::json->>'Priority')::INTEGER, 0), document,
       0, 0, CASE WHEN document::json->>'State' IN ('Success', 'Failure') THEN 0 END
FROM Jobs ORDER BY COALESCE((document::json->>'Seq')::BIGINT, 0) ON CONFLICT DO NOTHING;
DELETE FROM Jobs;
"""
_FINISHED = ("Success", "Failure")

#: The next job a node may run: pending (free, its own, or of a node whose lease ended),
#: a retry that is due, or a running job whose node stopped renewing its lease or died.
_CLAIM = f"""
UPDATE ClusterJobs SET owner=%(node)s, lease_until={_NOW} + %(lease)s, state='Running',
       retry_at=NULL
WHERE id = (SELECT id FROM ClusterJobs
            WHERE (home IS NULL AND ((state='Pending' AND (owner IS NULL OR owner=%(node)s
                                                           OR {_ENDED}))
                                     OR (state='Retry' AND retry_at <= {_NOW})
                                     OR (state='Running' AND {_ENDED})))
               OR (home=%(node)s AND (state='Pending' OR (state='Retry' AND retry_at <= {_NOW})))
               OR (home<>%(node)s AND state IN ('Pending', 'Running', 'Retry', 'Paused')
                   AND (lease_until < {_NOW} OR home IN ({_DEAD})))
            ORDER BY priority DESC, seq LIMIT 1 FOR UPDATE SKIP LOCKED)
RETURNING id, document, requested"""

#: The runner's write: kept only while the node still holds the job (it may have lost it).
_SAVE = f"""
UPDATE ClusterJobs SET document=%(document)s, state=%(state)s, priority=%(priority)s,
       owner=CASE WHEN %(state)s='Running' OR home IS NOT NULL THEN owner END,
       lease_until=CASE WHEN %(state)s='Running' OR home IS NOT NULL THEN {_NOW} + %(lease)s END,
       requested=CASE WHEN %(state)s='Running' THEN requested END,
       retry_at=CASE WHEN %(state)s='Retry' THEN {_NOW} + %(retry)s END,
       finished_at=CASE WHEN %(state)s IN ('Success', 'Failure') THEN {_NOW} END
WHERE id=%(id)s AND owner=%(node)s"""


class PostgresJobStore:
    """:class:`~server.jobs.cluster.ClusterStore` on the index's PostgreSQL database."""

    def __init__(self, conninfo: str, node: str, lease: float) -> None:
        self.node = node
        self.lease = lease
        self._conninfo = conninfo
        self._pool = ConnectionPool(conninfo, min_size=1, max_size=8, kwargs={"autocommit": True},
                                    open=False, name="isengard-jobs")
        self._pool.open(wait=True, timeout=30)
        with self._pool.connection() as connection, connection.transaction():
            connection.execute("SELECT pg_advisory_xact_lock(%s)", (EVENTS_KEY,))
            connection.execute(SCHEMA)
            connection.execute(_ADOPT_SAVED)
            connection.execute(f"DELETE FROM ClusterNodes c WHERE c.node IN ({_DEAD}) AND NOT EXISTS "
                               f"(SELECT 1 FROM ClusterJobs j WHERE j.owner=c.node OR j.home=c.node)")
        self._alive = self._register()

    def _register(self) -> psycopg.Connection[Any]:
        """This node's own connection, holding its liveness lock for as long as it is open.
        The row and the lock commit together: no node ever sees this one registered and
        unlocked, which would read as dead."""
        connection = psycopg.connect(self._conninfo, autocommit=True)
        try:
            with connection.transaction():
                row = connection.execute(
                    f"INSERT INTO ClusterNodes(node, seen) VALUES(%s, {_NOW}) ON CONFLICT(node) DO UPDATE "
                    f"SET seen=EXCLUDED.seen RETURNING number", (self.node,)).fetchone()
                assert row is not None  # an upsert's RETURNING always has its row
                connection.execute("SELECT pg_advisory_lock(%s, %s)", (NODES_KEY, row[0]))
        except BaseException:
            connection.close()
            raise
        return connection

    def _keep_alive(self) -> None:
        """Say this node was seen now, on its liveness connection; open that again if it was
        lost (the database restarted, the network cut it): meanwhile other nodes may have
        taken this node's jobs, which its renewal then no longer returns, as when a lease
        runs out."""
        try:
            self._alive.execute(f"UPDATE ClusterNodes SET seen={_NOW} WHERE node=%s", (self.node,))
        except psycopg.Error:
            log.warning("The jobs' liveness connection to PostgreSQL was lost: opening it again")
            self._alive.close()
            self._alive = self._register()

    def close(self) -> None:
        self._pool.close()
        self._alive.close()

    @contextmanager
    def _transaction(self) -> Iterator[psycopg.Connection[Any]]:
        with self._pool.connection() as connection, connection.transaction():
            yield connection

    # -- the engine's saves (JobsIndex) --------------------------------------------------

    def save_job(self, job_id: str, document: str) -> None:
        doc = json.loads(document)
        with self._transaction() as db:
            db.execute(_SAVE, {"document": document, "state": doc["State"],
                               "priority": int(doc.get("Priority", 0)),
                               "retry": float(doc.get("RetryAfter") or 0.0),
                               "lease": self.lease, "id": job_id, "node": self.node})

    def delete_job(self, job_id: str) -> None:
        with self._transaction() as db:
            db.execute("DELETE FROM ClusterJobs WHERE id=%s AND owner=%s", (job_id, self.node))

    def load_jobs(self) -> list[tuple[str, str]]:
        """Nothing to restore: the cluster's jobs stay in the database, taken one by one."""
        return []

    def clear_jobs(self) -> None:
        """Drop the jobs that no live node holds (those of the others are theirs)."""
        with self._transaction() as db:
            db.execute(f"DELETE FROM ClusterJobs WHERE owner IS NULL OR {_ENDED}")

    # -- the queue -----------------------------------------------------------------------

    def insert(self, job_id: str, document: dict[str, Any], here: bool) -> None:
        """A new job; ``here``: held by this node (until one of its workers takes it), and
        for good if it cannot be serialized."""
        home = self.node if document.get("Job") is None else None
        with self._transaction() as db:
            db.execute(f"INSERT INTO ClusterJobs(id, state, priority, document, owner, lease_until, home) "
                       f"VALUES(%s, %s, %s, %s, %s, CASE WHEN %s THEN {_NOW} + %s END, %s)",
                       (job_id, document["State"], int(document.get("Priority", 0)),
                        json.dumps(document), self.node if here else None, here, self.lease, home))

    def claim(self) -> Claimed | None:
        with self._transaction() as db:
            row = db.execute(_CLAIM, {"node": self.node, "lease": self.lease}).fetchone()
        if row is None:
            return None
        return Claimed(row[0], json.loads(row[1]), row[2])

    def renew(self) -> dict[str, str | None]:
        """Extend the leases of this node's jobs: job ID -> what another node asked of it."""
        self._keep_alive()
        with self._transaction() as db:
            rows = db.execute(f"UPDATE ClusterJobs SET lease_until={_NOW} + %s "
                              f"WHERE owner=%s AND (state IN ('Pending', 'Running') OR home IS NOT NULL) "
                              f"RETURNING id, requested", (self.lease, self.node)).fetchall()
        return {job_id: requested for job_id, requested in rows}

    def release(self) -> None:
        """This node stops: its jobs are free for the others at once, and those that cannot
        be serialized end with it."""
        with self._transaction() as db:  # a lease at 0 has ended: a running job is taken at once
            db.execute("DELETE FROM ClusterJobs WHERE home=%s", (self.node,))
            db.execute("UPDATE ClusterJobs SET owner=NULL, lease_until=0 WHERE owner=%s",
                       (self.node,))
            db.execute("DELETE FROM ClusterNodes WHERE node=%s", (self.node,))

    # -- reading and changing any job ----------------------------------------------------

    def load(self, job_id: str) -> dict[str, Any] | None:
        with self._pool.connection() as db:
            row = db.execute("SELECT document FROM ClusterJobs WHERE id=%s", (job_id,)).fetchone()
        return None if row is None else json.loads(row[0])

    def ids(self) -> list[str]:
        with self._pool.connection() as db:
            return [row[0] for row in db.execute("SELECT id FROM ClusterJobs ORDER BY id")]

    def counts(self) -> dict[str, int]:
        with self._pool.connection() as db:
            rows = db.execute("SELECT state, count(*) FROM ClusterJobs GROUP BY state").fetchall()
        return {state: int(count) for state, count in rows}

    def modify(self, job_id: str, change: Change) -> tuple[Stored, bool] | None:
        """Apply ``change`` to the job, its row locked meanwhile: the row after, and whether
        it changed; None when there is no such job.  A job that leaves ``Running`` leaves
        its node, and what was asked of it."""
        with self._transaction() as db:
            row = db.execute("SELECT state, document, requested FROM ClusterJobs WHERE id=%s FOR UPDATE",
                             (job_id,)).fetchone()
            if row is None:
                return None
            current = Stored(row[0], json.loads(row[1]), row[2])
            updated = change(current)
            if updated is None:
                return current, False
            state = updated.document["State"]
            running = state == "Running"
            db.execute(f"UPDATE ClusterJobs SET state=%s, priority=%s, document=%s, "
                       f"requested=CASE WHEN %s THEN %s END, "
                       f"owner=CASE WHEN %s OR home IS NOT NULL THEN owner END, "
                       f"lease_until=CASE WHEN %s OR home IS NOT NULL THEN lease_until END, retry_at=NULL, "
                       f"finished_at=CASE WHEN %s THEN {_NOW} END WHERE id=%s",
                       (state, int(updated.document.get("Priority", 0)),
                        json.dumps(updated.document), running, updated.requested, running,
                        running, state in _FINISHED, job_id))
            return updated, True

    def delete(self, job_id: str) -> dict[str, Any] | None:
        """Remove a finished job; its document, None if it is not (or no longer) finished."""
        with self._transaction() as db:
            row = db.execute("DELETE FROM ClusterJobs WHERE id=%s AND state IN ('Success', 'Failure') "
                             "RETURNING document", (job_id,)).fetchone()
        return None if row is None else json.loads(row[0])

    def trim(self, keep: int) -> list[tuple[str, dict[str, Any]]]:
        """Keep the ``keep`` most recently finished jobs (``JobsHistorySize``); the IDs and
        documents of those removed."""
        with self._transaction() as db:
            rows = db.execute("DELETE FROM ClusterJobs WHERE id IN (SELECT id FROM ClusterJobs "
                              "WHERE state IN ('Success', 'Failure') ORDER BY finished_at DESC, seq "
                              "DESC OFFSET %s FOR UPDATE SKIP LOCKED) RETURNING id, document",
                              (keep,)).fetchall()
        return [(row[0], json.loads(row[1])) for row in rows]

    def saved_values(self, key: str) -> set[str]:
        """The values of ``key`` in the saved jobs' own documents (their ``Job``), every node's:
        the output files they name, for the sweep of orphaned files in the shared folder."""
        with self._pool.connection() as db:
            rows = db.execute("SELECT DISTINCT document::json->'Job'->>%s FROM ClusterJobs", (key,)).fetchall()
        return {row[0] for row in rows if row[0] is not None}

    # -- events --------------------------------------------------------------------------

    def publish(self, events: list[tuple[str, str, int | None]]) -> None:
        with self._transaction() as db:
            db.execute("SELECT pg_advisory_xact_lock(%s)", (EVENTS_KEY,))
            db.cursor().executemany(
                f"INSERT INTO ClusterJobEvents(node, kind, jobId, progress, at) "
                f"VALUES(%s, %s, %s, %s, {_NOW})",
                [(self.node, kind, job_id, progress) for kind, job_id, progress in events])

    def last_event(self) -> int:
        with self._pool.connection() as db:
            row = db.execute("SELECT COALESCE(max(seq), 0) FROM ClusterJobEvents").fetchone()
        return int(row[0]) if row else 0

    def events_after(self, seq: int) -> list[StoredEvent]:
        with self._pool.connection() as db:
            rows = db.execute("SELECT seq, node, kind, jobId, progress FROM ClusterJobEvents "
                              "WHERE seq > %s ORDER BY seq", (seq,)).fetchall()
        return [StoredEvent(*row) for row in rows]

    def prune_events(self, age: float) -> None:
        with self._transaction() as db:
            db.execute(f"DELETE FROM ClusterJobEvents WHERE at < {_NOW} - %s", (age,))
