"""One jobs queue for a cluster: every node sharing a PostgreSQL index, with ``SaveJobs``.

:class:`ClusterJobsEngine` is the engine of :mod:`server.jobs.engine` whose jobs live in
the database (a :class:`ClusterStore`) rather than in one node's memory:

* any node lists, describes and controls any job (its saved document, which the runner
  rewrites at each state change and about once a second while it runs);
* the workers of every node take the next job from the database (priority, then age); the
  runner holds a *lease* on it (:data:`LEASE_SECONDS`), renewed every :data:`RENEW_SECONDS`.
  A node that dies (``kill -9``) stops renewing: once its leases end, other nodes take its jobs over
  and run them from their saved position, as a restart does on a single node.  Its leases
  end within seconds when the database sees it gone (its connection closed: see
  :mod:`server.storage.pg_jobs`), so a node restarted after a crash resumes its jobs within
  seconds.  The final state is written only by the node that still holds the lease, so a job
  ends once;
* a pause or cancel asked on another node than the runner's is written in the job's row
  (``requested``), which the runner reads when it renews its lease;
* a job submitted by a synchronous REST call runs on the node that answers it (``here``),
  held by that node's lease until a worker takes it: the caller gets the object it made.
  A caller waiting for a job that runs elsewhere is woken by the cluster's events;
* the events of every node reach every node's ``/jobs/events`` through the database.  The
  bus (Lua and Python callbacks, metrics) only carries those of the node that ran or
  changed the job: a callback fires once in the cluster, on that node.

Outputs (archives) are files under ``StorageDirectory/jobs``, which the nodes share; their
paths are in the saved document.  The engine's memory holds only the jobs that this node
runs, and those it ran recently (their objects, for their synchronous callers).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from server.errors import ErrorCode, OrthancError
from server.events import JOB_KINDS, EventBus, JobEvent, Kind, Listener
from server.jobs.engine import JobRecord, JobsEngine, JobsIndex, record_from_document, resolve_waiter, timestamp
from server.jobs.job import Job, JobRegistry, JobState, Output, StepResult

log = logging.getLogger("isengard.jobs")

#: How long a node's claim on a job lasts without renewal (seconds).  The environment
#: variable ``ISENGARD_JOBS_LEASE_SECONDS`` is for the tests only, which kill nodes and
#: would otherwise wait half a minute for the takeover.
LEASE_SECONDS = float(os.environ.get("ISENGARD_JOBS_LEASE_SECONDS", "30"))
#: How often a node renews its leases and reads what other nodes asked of its jobs: a
#: pause or cancel asked on another node reaches the runner within this time.
RENEW_SECONDS = min(1.0, LEASE_SECONDS / 3)
#: How long an idle worker waits before asking the database for a job again (a job
#: submitted or resumed on any node wakes it sooner, through the events).
CLAIM_POLL_SECONDS = 1.0
#: How often the events are sent to, and read from, the database.
EVENTS_PERIOD = 0.2
#: A job's progress is published to the cluster at most this often (seconds).
PROGRESS_PERIOD = 1.0
#: Events older than this are pruned from the database (seconds).
EVENTS_KEPT_SECONDS = 600.0
#: How often a synchronous caller checks its job in the database, events aside.
WAIT_POLL_SECONDS = 2.0

_FINISHED = (JobState.SUCCESS.value, JobState.FAILURE.value)


@dataclass(frozen=True)
class Claimed:
    """A job a node just took: its saved document, and what another node asked of it."""

    job_id: str
    document: dict[str, Any]
    requested: str | None


@dataclass(frozen=True)
class Stored:
    """A job's row: its state, its saved document, and what was asked of its runner."""

    state: str
    document: dict[str, Any]
    requested: str | None


@dataclass(frozen=True)
class StoredEvent:
    seq: int
    node: str
    kind: str
    job_id: str
    progress: int | None


#: A change of a saved job, decided with its row locked: the new row, or None (unchanged).
Change = Callable[[Stored], Stored | None]


class ClusterStore(JobsIndex, Protocol):
    """The database side of the cluster's queue (:mod:`server.storage.pg_jobs`).

    Its ``save_job``/``delete_job`` write a job only while this node holds it.
    """

    node: str

    def close(self) -> None: ...

    def insert(self, job_id: str, document: dict[str, Any], here: bool) -> None: ...

    def claim(self) -> Claimed | None: ...

    def renew(self) -> dict[str, str | None]: ...

    def release(self) -> None: ...

    def load(self, job_id: str) -> dict[str, Any] | None: ...

    def ids(self) -> list[str]: ...

    def counts(self) -> dict[str, int]: ...

    def modify(self, job_id: str, change: Change) -> tuple[Stored, bool] | None: ...

    def delete(self, job_id: str) -> dict[str, Any] | None: ...

    def trim(self, keep: int) -> list[tuple[str, dict[str, Any]]]: ...

    def saved_values(self, key: str) -> set[str]: ...

    def publish(self, events: list[tuple[str, str, int | None]]) -> None: ...

    def last_event(self) -> int: ...

    def events_after(self, seq: int) -> list[StoredEvent]: ...

    def prune_events(self, age: float) -> None: ...


def node_name() -> str:
    """This process's name in the cluster (host, process, and a random part: never reused)."""
    return f"{os.uname().nodename}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


class SavedJob(Job):
    """A job known by its saved document only (another node runs it): shown, never run."""

    def __init__(self, document: dict[str, Any]) -> None:
        super().__init__()
        self.TYPE = str(document.get("Type", ""))
        self._document = document

    def step(self) -> StepResult:
        raise OrthancError(ErrorCode.INTERNAL, "A job saved by another node cannot run here")

    def reset(self) -> None:
        """Nothing to forget: a resubmit rebuilds the real job."""

    def progress(self) -> float:
        return float(self._document.get("Progress", 0.0))

    def content(self) -> dict[str, Any]:
        content = self._document.get("Content")
        return content if isinstance(content, dict) else {}

    def serialize(self) -> dict[str, Any] | None:
        data = self._document.get("Job")
        return data if isinstance(data, dict) else None


def _concluded(document: dict[str, Any], state: JobState, code: int = ErrorCode.SUCCESS,
               details: str = "") -> dict[str, Any]:
    """``document`` moved to ``state`` by a node that does not run the job."""
    changed = dict(document, State=state.value, LastChangeTime=timestamp())
    if state in (JobState.SUCCESS, JobState.FAILURE):
        changed.update(CompletionTime=changed["LastChangeTime"], ErrorCode=int(code),
                       ErrorDetails=details)
    return changed


def _delete_outputs(document: dict[str, Any]) -> None:
    for path, _mime, _name in (document.get("Outputs") or {}).values():
        Path(path).unlink(missing_ok=True)


class ClusterJobsEngine(JobsEngine):
    def __init__(self, registry: JobRegistry, bus: EventBus, store: ClusterStore, workers: int,
                 history_size: int) -> None:
        super().__init__(registry, bus, store, workers, history_size)
        self.store = store
        #: Jobs submitted here that no node took yet: run as this very object if taken here.
        self._offered: dict[str, JobRecord] = {}
        #: Synchronous callers: job ID -> futures woken by its events.
        self._callers: dict[str, list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]]] = {}
        self._watchers: list[Listener] = []
        self._outbox: list[tuple[str, str, int | None]] = []
        self._progress_sent: dict[str, float] = {}
        self._poked = False
        #: Jobs this node claimed so far (see :meth:`_renew`).
        self._claims = 0
        self._halt = threading.Event()
        self._helpers: list[threading.Thread] = []

    # -- life cycle ------------------------------------------------------------------

    def start(self, load_saved: bool) -> None:
        """Start the workers, which take the cluster's jobs from the database.  Without
        ``load_saved`` (``--no-jobs``), the jobs that no live node holds are dropped first."""
        if not load_saved:
            self.store.clear_jobs()
        for kind in JOB_KINDS:
            self.bus.subscribe(kind, self._record_event)
        last = self.store.last_event()
        for target, name, args in ((self._renew_loop, "job-leases", ()),
                                   (self._events_loop, "job-events", (last,))):
            thread = threading.Thread(target=target, args=args, name=name, daemon=True)
            thread.start()
            self._helpers.append(thread)
        self._start_workers()
        log.warning("Jobs shared by the cluster, this node being %s", self.store.node)

    def stop(self) -> None:
        """Stop the workers, then hand this node's jobs to the others at once."""
        super().stop()
        self._halt.set()
        for thread in self._helpers:
            thread.join(timeout=10)
        self._flush_events()
        try:
            self.store.release()
        except Exception:  # noqa: BLE001 - the leases end anyway
            log.exception("Cannot release this node's jobs")
        self.store.close()

    # -- submission and queries ------------------------------------------------------

    def submit(self, job: Job, priority: int = 0, user_data: Any = None, here: bool = False) -> str:
        """Write the job in the cluster's queue; a job that cannot be serialized runs here only."""
        record = JobRecord(id=str(uuid.uuid4()), job=job, priority=priority,
                           state=JobState.PENDING, creation_time=datetime.now(UTC), seq=0,
                           user_data=user_data)
        job.id = record.id
        record.progress = job.progress()
        record.content = job.content()
        data = self._serialized(record)
        with self._lock:
            document = self._document(record, data)
            self._offered[record.id] = record
        try:
            self.store.insert(record.id, document, here or data is None)
        except Exception:
            with self._lock:
                self._offered.pop(record.id, None)
            raise
        log.info("New job submitted with priority %d: %s (%s)", priority, record.id, job.TYPE)
        self.bus.publish(JobEvent(Kind.JOB_SUBMITTED, record.id))
        self._poke()
        return record.id

    def ids(self) -> list[str]:
        return self.store.ids()

    def counts(self) -> dict[str, int]:
        result = dict.fromkeys((s.value for s in JobState), 0)
        result.update(self.store.counts())
        return result

    def describe(self, job_id: str) -> dict[str, Any] | None:
        with self._lock:
            record = self._held(job_id)
            if record is not None:
                return self._describe(record)
        document = self.store.load(job_id)
        return None if document is None else self._describe(self._saved_record(job_id, document))

    @staticmethod
    def _saved_record(job_id: str, document: dict[str, Any]) -> JobRecord:
        record = record_from_document(job_id, document, SavedJob(document))
        record.runtime = float(document.get("EffectiveRuntime", record.runtime))
        return record

    def _held(self, job_id: str) -> JobRecord | None:
        """With the lock held: the job if this node runs it now."""
        record = self._jobs.get(job_id)
        if record is None or record.state is not JobState.RUNNING or record.released:
            return None
        return record

    async def wait(self, job_id: str) -> JobRecord:
        """Until the job ends, on whichever node: woken by its events, checked now and then."""
        loop = asyncio.get_running_loop()
        while True:
            future: asyncio.Future[None] = loop.create_future()
            caller = (loop, future)
            with self._lock:
                self._callers.setdefault(job_id, []).append(caller)
            try:
                record = await loop.run_in_executor(None, self._outcome, job_id)
                if record is not None:
                    return record
                await asyncio.wait({future}, timeout=WAIT_POLL_SECONDS)
            finally:
                with self._lock:
                    callers = self._callers.get(job_id, [])
                    if caller in callers:
                        callers.remove(caller)
                    if not callers:
                        self._callers.pop(job_id, None)

    def _outcome(self, job_id: str) -> JobRecord | None:
        """The finished job; None while it runs.  The object that ran it if it ran here, else
        its saved document, whose ``Content`` is what a job answers a synchronous call."""
        document = self.store.load(job_id)
        if document is None:
            raise OrthancError(ErrorCode.INEXISTENT_ITEM, f"Unknown job: {job_id}")
        if document.get("State") not in _FINISHED:
            return None
        with self._lock:
            local = self._jobs.get(job_id)
        if local is not None and local.finished:
            return local
        return record_from_document(job_id, document, SavedJob(document))

    def watch(self, listener: Listener) -> None:
        super().watch(listener)
        with self._lock:
            self._watchers.append(listener)

    def unwatch(self, listener: Listener) -> None:
        super().unwatch(listener)
        with self._lock:
            if listener in self._watchers:
                self._watchers.remove(listener)

    # -- actions, on whichever node runs the job ---------------------------------------

    def _ask_runner(self, job_id: str, request: str) -> bool:
        """Pause or cancel a job this node runs: at its next step, as on a single node."""
        with self._lock:
            record = self._held(job_id)
            if record is None:
                return False
            if request == "pause":
                record.pause_requested = True
            else:
                record.cancel_requested = True
            return True

    def pause(self, job_id: str) -> bool:
        if self._ask_runner(job_id, "pause"):
            return True

        def change(stored: Stored) -> Stored | None:
            if stored.state == JobState.RUNNING.value:  # its runner reads it at its next renewal
                return replace(stored, requested="pause")
            if stored.state in (JobState.PENDING.value, JobState.RETRY.value):
                return replace(stored, document=_concluded(stored.document, JobState.PAUSED))
            return None

        return self._change(job_id, change, Kind.JOB_PAUSED, JobState.PAUSED)

    def resume(self, job_id: str) -> bool:
        def change(stored: Stored) -> Stored | None:
            if stored.state != JobState.PAUSED.value:
                return None
            return replace(stored, document=_concluded(stored.document, JobState.PENDING))

        done = self._change(job_id, change, Kind.JOB_RESUMED, JobState.PENDING, refused=True)
        self._poke()
        return done

    def cancel(self, job_id: str) -> bool:
        if self._ask_runner(job_id, "cancel"):
            return True

        def change(stored: Stored) -> Stored | None:
            if stored.state == JobState.RUNNING.value:
                return replace(stored, requested="cancel")
            if stored.state in (JobState.PENDING.value, JobState.PAUSED.value, JobState.RETRY.value):
                document = _concluded(stored.document, JobState.FAILURE, ErrorCode.CANCELED_JOB)
                return replace(stored, document=document)
            return None

        done = self._change(job_id, change, Kind.JOB_CANCELED, JobState.FAILURE)
        self._trim()
        return done

    def resubmit(self, job_id: str) -> bool:
        """Start a failed job again: the object that ran it if it ran here, else rebuilt."""
        def change(stored: Stored) -> Stored | None:
            if stored.state != JobState.FAILURE.value:
                return None
            document = stored.document
            with self._lock:
                local = self._jobs.pop(job_id, None) or self._offered.get(job_id)
            job = local.job if local is not None else self.registry.restore(document["Type"], document["Job"])
            job.reset()
            record = record_from_document(job_id, document, job)
            record.state, record.runtime, record.completion_time = JobState.PENDING, 0.0, None
            record.error_code, record.error_details, record.error_payload = ErrorCode.SUCCESS, "", None
            with self._lock:
                self._offered[job_id] = record
            return replace(stored, document=self._document(record, job.serialize()))

        try:
            done = self._change(job_id, change, Kind.JOB_RESUBMITTED, JobState.PENDING, refused=True)
        except (KeyError, TypeError):  # a type this node cannot rebuild
            return False
        self._poke()
        return done

    def _change(self, job_id: str, change: Change, event: Kind, state: JobState,
                refused: bool = False) -> bool:
        """Apply ``change`` to the saved job; publish ``event`` if it reached ``state``.
        False when there is no such job or, with ``refused``, when ``change`` declined."""
        outcome = self.store.modify(job_id, change)
        if outcome is None:
            return False
        stored, changed = outcome
        if changed and stored.document["State"] == state.value:
            self.bus.publish(JobEvent(event, job_id))
        return changed or not refused

    def delete(self, job_id: str) -> bool:
        document = self.store.load(job_id)
        if document is None:
            return False
        if document.get("State") not in _FINISHED:
            return self.cancel(job_id)
        deleted = self.store.delete(job_id)
        if deleted is not None:
            _delete_outputs(deleted)
        return True

    def output(self, job_id: str, key: str) -> Output | None:
        with self._lock:
            local = self._jobs.get(job_id)
        if local is not None and local.finished:
            local.job.outputs()  # this node's archives: now its most recently used
        document = self.store.load(job_id)
        if document is None or document.get("State") != JobState.SUCCESS.value:
            return None
        found = (document.get("Outputs") or {}).get(key)
        if found is None or not Path(found[0]).exists():
            return None
        return Output(Path(found[0]), found[1], found[2])

    def delete_output(self, job_id: str, key: str) -> bool:
        removed: list[str] = []

        def change(stored: Stored) -> Stored | None:
            outputs = dict(stored.document.get("Outputs") or {})
            found = outputs.pop(key, None)
            if stored.state != JobState.SUCCESS.value or found is None or not Path(found[0]).exists():
                return None
            removed.append(found[0])
            return replace(stored, document=dict(stored.document, Outputs=outputs))

        self.store.modify(job_id, change)
        for path in removed:
            Path(path).unlink(missing_ok=True)
        return bool(removed)

    # -- workers ---------------------------------------------------------------------

    def _next(self) -> tuple[bool, JobRecord | None]:
        """The next job from the database, or ``(True, None)`` when the engine stops."""
        while True:
            with self._lock:
                if self._stopping:
                    return True, None
                self._poked = False
            record = self._take()
            if record is not None:
                return False, record
            with self._lock:
                if self._stopping:
                    return True, None
                if not self._poked:
                    self._lock.wait(timeout=CLAIM_POLL_SECONDS)

    def _take(self) -> JobRecord | None:
        while True:
            try:
                claimed = self.store.claim()
            except Exception:  # noqa: BLE001 - the database may come back
                log.exception("Cannot take a job from the database")
                return None
            if claimed is None:
                return None
            record = self._adopt(claimed)
            if record is not None:
                return record

    def _adopt(self, claimed: Claimed) -> JobRecord | None:
        """Run a claimed job here: the object submitted here if no one ran it yet, else the
        job rebuilt from its saved position.  One that cannot be rebuilt fails."""
        job_id, document = claimed.job_id, claimed.document
        with self._lock:  # one that cannot be serialized stays offered: it runs here only
            record = (self._offered.get(job_id) if document.get("Job") is None
                      else self._offered.pop(job_id, None))
        if record is None:
            try:
                job = self.registry.restore(document["Type"], document["Job"])
            except Exception:  # noqa: BLE001 - a type or a script this node does not have
                self._drop_unrunnable(job_id, document)
                return None
            record = record_from_document(job_id, document, job)
        with self._lock:
            self._claims += 1
            record.claim = self._claims
            self._set_state(record, JobState.RUNNING)
            record.running_since = time.monotonic()
            record.error_code, record.error_details, record.error_payload = ErrorCode.SUCCESS, "", None
            record.started = record.released = False
            record.pause_requested = claimed.requested == "pause"
            record.cancel_requested = claimed.requested == "cancel"
            self._jobs[job_id] = record
            self._save(record)
        return record

    def _drop_unrunnable(self, job_id: str, document: dict[str, Any]) -> None:
        """A job this node cannot rebuild: gone with its node if it could not be serialized
        (as on a single node, it does not outlive its process), else failed."""
        if document.get("Job") is None:
            log.warning("Job %s (%s) ended with its node", job_id, document.get("Type"))
            self.store.delete_job(job_id)
            return
        log.warning("Job %s (%s) cannot be run on this node: failed", job_id, document.get("Type"))

        def change(stored: Stored) -> Stored:
            details = "This job cannot be resumed by another node than the one that submitted it"
            return replace(stored, requested=None,
                           document=_concluded(stored.document, JobState.FAILURE, ErrorCode.INTERNAL, details))

        self._change(job_id, change, Kind.JOB_FAILURE, JobState.FAILURE)

    def _run(self, record: JobRecord) -> None:
        super()._run(record)
        with self._lock:
            if not record.finished:  # paused, retrying, taken over or stopping: the database has it
                self._jobs.pop(record.id, None)
                self._retrying.discard(record.id)
                if not record.released:  # the freshest object, if this node takes it again
                    self._offered[record.id] = record
        if record.finished:
            if self._serialized(record) is not None:  # else kept for a resubmit, until trimmed
                with self._lock:
                    self._offered.pop(record.id, None)
            self._trim()
            self._wake_callers(record.id)

    def _conclude(self, record: JobRecord, result: StepResult | None) -> None:
        """As on a single node, unless another node took the job over meanwhile (this node
        stalled beyond its lease): then nothing of this run is saved or announced."""
        with self._lock:
            released = record.released
            if released:
                record.running_since = None
        if not released:
            super()._conclude(record, result)

    def _forget(self, record: JobRecord) -> None:
        """Out of this node's memory only: the cluster's history is trimmed in the database."""
        self._jobs.pop(record.id, None)

    def _trim(self) -> None:
        try:
            for job_id, document in self.store.trim(self.history_size):
                with self._lock:
                    self._offered.pop(job_id, None)
                _delete_outputs(document)
        except Exception:  # noqa: BLE001 - trimmed at the next job's end
            log.exception("Cannot trim the jobs history")

    def _document(self, record: JobRecord, data: dict[str, Any] | None) -> dict[str, Any]:
        """The single node's document, with what the other nodes show and serve of it."""
        document = super()._document(record, data)
        document.update(Progress=record.progress, Content=record.content,
                        EffectiveRuntime=record.effective_runtime())
        if record.retry_at is not None and record.state is JobState.RETRY:
            document["RetryAfter"] = max(0.0, record.retry_at - time.monotonic())
        if record.state is JobState.SUCCESS:
            document["Outputs"] = {key: [str(output.path), output.mime, output.filename]
                                   for key, output in record.job.outputs().items()}
        return document

    def _save(self, record: JobRecord) -> None:
        """With the lock held: snapshot the job, even one that cannot be serialized (shown
        to the other nodes, never run by them)."""
        self._unsaved[record.id] = json.dumps(self._document(record, self._serialized(record)))

    # -- leases and events -----------------------------------------------------------

    def _poke(self) -> None:
        with self._lock:
            self._poked = True
            self._lock.notify_all()

    def _renew_loop(self) -> None:
        while not self._halt.wait(RENEW_SECONDS):
            self._renew()

    def _renew(self) -> None:
        """Renew this node's leases; note what other nodes asked, and the jobs taken over.

        A job claimed while the renewal's query ran is not in its answer, though this node
        holds it: only the jobs claimed before the query began can have been taken over.
        Taken for lost, such a job would stop running here while this node went on renewing
        its lease: Running for ever (seen once in ``test_cluster_jobs``).
        """
        with self._lock:
            claimed_before = self._claims
        try:
            asked = self.store.renew()
        except Exception:  # noqa: BLE001 - the database may come back before the leases end
            log.exception("Cannot renew the leases of this node's jobs")
            return
        with self._lock:
            for record in self._jobs.values():
                if record.state is not JobState.RUNNING or record.released or record.claim > claimed_before:
                    continue
                if record.id not in asked:
                    log.warning("Job %s was taken over by another node", record.id)
                    record.released = True
                elif asked[record.id] == "pause":
                    record.pause_requested = True
                elif asked[record.id] == "cancel":
                    record.cancel_requested = True

    def _record_event(self, event: JobEvent) -> None:
        """A bus listener: this node's events, for the other nodes (progress at most once a
        second per job)."""
        now = time.monotonic()
        with self._lock:
            if event.kind is Kind.JOB_PROGRESS:
                if now - self._progress_sent.get(event.job_id, 0.0) < PROGRESS_PERIOD:
                    return
                self._progress_sent[event.job_id] = now
            elif event.kind in (Kind.JOB_SUCCESS, Kind.JOB_FAILURE, Kind.JOB_CANCELED):
                self._progress_sent.pop(event.job_id, None)
            self._outbox.append((event.kind.value, event.job_id, event.progress))

    def _flush_events(self) -> None:
        with self._lock:
            outbox, self._outbox = self._outbox, []
        if outbox:
            try:
                self.store.publish(outbox)
            except Exception:  # noqa: BLE001 - the other nodes miss them; the states are saved
                log.exception("Cannot publish %d job events to the cluster", len(outbox))

    def _events_loop(self, last: int) -> None:
        pruned = time.monotonic()
        while not self._halt.wait(EVENTS_PERIOD):
            self._flush_events()
            try:
                events = self.store.events_after(last)
                if time.monotonic() - pruned > EVENTS_KEPT_SECONDS / 10:
                    self.store.prune_events(EVENTS_KEPT_SECONDS)
                    pruned = time.monotonic()
            except Exception:  # noqa: BLE001 - read again at the next period
                log.exception("Cannot read the cluster's job events")
                continue
            for stored in events:
                last = stored.seq
                self._deliver(stored)

    def _deliver(self, stored: StoredEvent) -> None:
        """An event of the cluster: to the watchers if another node's, to the callers."""
        kind = Kind(stored.kind)
        if kind in (Kind.JOB_SUCCESS, Kind.JOB_FAILURE, Kind.JOB_CANCELED):
            self._wake_callers(stored.job_id)
        if stored.node == self.store.node:
            return
        with self._lock:
            if kind in (Kind.JOB_RUNNING, Kind.JOB_SUCCESS, Kind.JOB_FAILURE, Kind.JOB_CANCELED):
                self._offered.pop(stored.job_id, None)  # another node ran it: its object is stale
                local = self._jobs.get(stored.job_id)
                if local is not None and local.finished:  # as this node's former run ended
                    self._jobs.pop(stored.job_id)
            watchers = list(self._watchers)
        if kind in (Kind.JOB_SUBMITTED, Kind.JOB_RESUMED, Kind.JOB_RESUBMITTED, Kind.JOB_RETRY,
                    Kind.JOB_PAUSED):
            self._poke()
        event = JobEvent(kind, stored.job_id, stored.progress)
        for listener in watchers:
            try:
                listener(event)
            except Exception:  # noqa: BLE001 - one watcher must not stop the others
                log.exception("A job events listener failed")

    def _wake_callers(self, job_id: str) -> None:
        with self._lock:
            callers = list(self._callers.get(job_id, ()))
        for loop, future in callers:
            loop.call_soon_threadsafe(resolve_waiter, future)
