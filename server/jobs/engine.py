"""The jobs engine: registry, priority queue, workers, state machine, persistence.

States and transitions are Orthanc's (spec jobs.md §2).  Beyond Orthanc, every
job is written to the index when it is submitted and at every state change
(and its position about once a second while it runs), so ``kill -9`` loses no
submitted job; Archive and Media jobs are persisted and resubmittable too.

Threads: ``ConcurrentJobs`` workers run steps; REST handlers and scripts call
the public methods from any thread.  One lock guards the in-memory state and
nothing else: a change made under it takes a snapshot of the job's document and
notes what else it implies (events, waiters to wake, outputs to delete); the
thread that made the change carries these out after releasing the lock
(:meth:`JobsEngine._settle`).  So a slow disk never holds ``/jobs`` or the other
workers, and still:

* durability: a call returns only once its snapshots are written (``submit``
  answers an ID that a ``kill -9`` right after cannot lose);
* ordering: snapshots wait in one map, job ID -> latest snapshot, and one writer
  at a time takes the whole map, so an older snapshot never overwrites a newer.

The engine knows nothing of HTTP.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import json
import logging
import os
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from server.errors import ErrorCode, OrthancError, describe
from server.events import JOB_KINDS, EventBus, JobEvent, Kind, Listener
from server.jobs.job import Job, JobRegistry, JobState, Output, StepResult, StopReason

log = logging.getLogger("isengard.jobs")

#: How often a running job's position is saved (seconds), so a restart resumes near it.
SAVE_POSITION_PERIOD = 1.0
_TIME_FORMAT = "%Y%m%dT%H%M%S.%f"


def _now() -> datetime:
    return datetime.now(UTC)


def _format(moment: datetime) -> str:
    return moment.strftime(_TIME_FORMAT)


def _parse(text: str) -> datetime:
    return datetime.strptime(text, _TIME_FORMAT).replace(tzinfo=UTC)


def timestamp() -> str:
    """Now, as a saved job's document records its times."""
    return _format(_now())


class JobsIndex(Protocol):
    """Where the engine saves its jobs: the index (:class:`~server.storage.index.Index`), or
    the cluster's job store (:mod:`server.jobs.cluster`), which writes only the jobs it holds."""

    def save_job(self, job_id: str, document: str) -> None: ...

    def delete_job(self, job_id: str) -> None: ...

    def load_jobs(self) -> list[tuple[str, str]]: ...

    def clear_jobs(self) -> None: ...


@dataclass
class JobRecord:
    """A job in the registry, with the engine's bookkeeping around it."""

    id: str
    job: Job
    priority: int
    state: JobState
    creation_time: datetime
    seq: int
    last_change: datetime = field(default_factory=_now)
    completion_time: datetime | None = None
    runtime: float = 0.0
    running_since: float | None = None
    error_code: int = ErrorCode.SUCCESS
    error_details: str = ""
    #: The failure's ``ErrorPayload`` (Orthanc 1.12.10), if it has one.
    error_payload: dict[str, Any] | None = None
    progress: float = 0.0
    content: dict[str, Any] = field(default_factory=dict)
    pause_requested: bool = False
    cancel_requested: bool = False
    #: The submitter's ``UserData`` (Orthanc 1.12.9: any JSON, shown and saved with the job).
    user_data: Any = None
    retry_at: float | None = None
    started: bool = False
    #: Another node took the job over (its lease ran out): stop stepping, save nothing.
    released: bool = False
    #: In a cluster, the number of this node's claim that made it run here.
    claim: int = 0
    waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = field(default_factory=list)

    @property
    def finished(self) -> bool:
        return self.state in (JobState.SUCCESS, JobState.FAILURE)

    def effective_runtime(self) -> float:
        extra = time.monotonic() - self.running_since if self.running_since is not None else 0.0
        return round(self.runtime + extra, 3)


class JobsEngine:
    def __init__(self, registry: JobRegistry, bus: EventBus, index: JobsIndex | None, workers: int,
                 history_size: int) -> None:
        self.registry = registry
        self.bus = bus
        self.index = index
        self.workers_count = workers or os.cpu_count() or 1
        self.history_size = history_size
        self._lock = threading.Condition()
        self._jobs: dict[str, JobRecord] = {}
        self._pending: list[tuple[int, int, str]] = []
        self._history: deque[str] = deque()
        #: Jobs in Retry, so that finding the due ones does not scan the whole registry.
        self._retrying: set[str] = set()
        self._seq = itertools.count()
        self._stopping = False
        self._threads: list[threading.Thread] = []
        # What changes made under the lock leave to _settle, in the order they happened.
        self._unsaved: dict[str, str | None] = {}  # job ID -> latest document (None: deleted)
        self._later: list[tuple[Kind, str]] = []
        self._wake: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []
        self._dropped: list[Job] = []  # forgotten jobs, whose outputs are to delete
        #: Held by the one thread writing snapshots, so that they reach the index in order.
        self._writer = threading.Lock()
        #: The index's way to write several snapshots in one transaction, if it has one.
        self._save_many: Callable[[list[tuple[str, str | None]]], None] | None = \
            getattr(index, "save_jobs", None)

    # -- life cycle ------------------------------------------------------------------

    def start(self, load_saved: bool) -> None:
        if self.index is not None:
            if load_saved:
                saved = self.index.load_jobs()
                with self._lock:  # restoring enqueues, and enqueuing notifies the workers
                    self._restore(saved)
                self._settle()
            else:
                self.index.clear_jobs()
        self._start_workers()

    def _start_workers(self) -> None:
        for number in range(self.workers_count):
            thread = threading.Thread(target=self._work, name=f"job-worker-{number}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        """Stop the workers at their next step boundary; running jobs stay saved as Running."""
        with self._lock:
            self._stopping = True
            self._lock.notify_all()
        for thread in self._threads:
            thread.join(timeout=30)
        self._threads = []

    # -- submission and queries ------------------------------------------------------

    def submit(self, job: Job, priority: int = 0, user_data: Any = None, here: bool = False) -> str:
        """Register ``job``; ``user_data`` is carried along (``/jobs/{id}`` and the saved job).

        ``here``: a caller waits for this very object (a synchronous REST call); a cluster
        runs it on this node (:mod:`server.jobs.cluster`), a single node always does.
        """
        record = JobRecord(id=str(uuid.uuid4()), job=job, priority=priority,
                           state=JobState.PENDING, creation_time=_now(), seq=next(self._seq),
                           user_data=user_data)
        job.id = record.id
        record.progress = job.progress()
        record.content = job.content()
        with self._lock:
            self._jobs[record.id] = record
            self._save(record)
        try:
            self._persist()  # before answering: an acknowledged job survives a crash
        except Exception:
            with self._lock:  # refused: not run, and not restarted if it was written after all
                self._jobs.pop(record.id, None)
                self._unsaved[record.id] = None
            raise
        log.info("New job submitted with priority %d: %s (%s)", priority, record.id, job.TYPE)
        # Published before a worker can take the job, so that "submitted" precedes "success".
        self.bus.publish(JobEvent(Kind.JOB_SUBMITTED, record.id))
        with self._lock:
            heapq.heappush(self._pending, (-priority, record.seq, record.id))
            self._lock.notify()
        return record.id

    def get(self, job_id: str) -> JobRecord | None:
        with self._lock:
            return self._jobs.get(job_id)

    def ids(self) -> list[str]:
        with self._lock:
            return sorted(self._jobs)

    def counts(self) -> dict[str, int]:
        result = dict.fromkeys((s.value for s in JobState), 0)
        with self._lock:
            for record in self._jobs.values():
                result[record.state.value] += 1
        return result

    def describe(self, job_id: str) -> dict[str, Any] | None:
        """The ``/jobs/{id}`` document."""
        with self._lock:
            record = self._jobs.get(job_id)
            if record is None:
                return None
            return self._describe(record)

    @staticmethod
    def _describe(record: JobRecord) -> dict[str, Any]:
        now = _now()
        result: dict[str, Any] = {
            "Content": record.content,
            "CreationTime": _format(record.creation_time),
            "EffectiveRuntime": record.effective_runtime(),
            "ErrorCode": int(record.error_code),
            "ErrorDescription": describe(record.error_code),
            "ErrorDetails": record.error_details,
            "ID": record.id,
            "Priority": record.priority,
            "Progress": int(round(100 * min(1.0, max(0.0, record.progress)))),
            "State": record.state.value,
            "Timestamp": _format(now),
            "Type": record.job.TYPE,
        }
        if record.user_data is not None:
            result["UserData"] = record.user_data
        if record.error_payload is not None:
            result["ErrorPayload"] = record.error_payload
        if record.completion_time is not None:
            result["CompletionTime"] = _format(record.completion_time)
        if record.state is JobState.RUNNING and record.progress > 0.01:
            runtime = record.effective_runtime()
            remaining = runtime / record.progress * (1 - record.progress)
            eta = datetime.fromtimestamp(now.timestamp() + remaining, UTC)
            result["EstimatedTimeOfArrival"] = _format(eta)
        return result

    async def wait(self, job_id: str) -> JobRecord:
        """Wait (without blocking the event loop) until the job is Success or Failure."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        with self._lock:
            record = self._jobs.get(job_id)
            if record is None:
                raise OrthancError(ErrorCode.INEXISTENT_ITEM, f"Unknown job: {job_id}")
            if record.finished:
                return record
            record.waiters.append((loop, future))
        await future
        return record

    def watch(self, listener: Listener) -> None:
        """Have ``listener`` called with every job event (``/jobs/events``)."""
        for kind in JOB_KINDS:
            self.bus.subscribe(kind, listener)

    def unwatch(self, listener: Listener) -> None:
        for kind in JOB_KINDS:
            self.bus.unsubscribe(kind, listener)

    # -- actions (True: done or no-op -> 200 {}; False: refused -> 400) --------------

    def pause(self, job_id: str) -> bool:
        with self._lock:
            record = self._jobs.get(job_id)
            if record is None:
                return False
            if record.state is JobState.RUNNING:
                record.pause_requested = True
            elif record.state in (JobState.PENDING, JobState.RETRY):
                self._remove_pending(record)
                self._set_state(record, JobState.PAUSED)
                self._save(record)
                self._publish_later(Kind.JOB_PAUSED, record.id)
        self._settle()
        return True

    def resume(self, job_id: str) -> bool:
        with self._lock:
            record = self._jobs.get(job_id)
            if record is None or record.state is not JobState.PAUSED:
                return False
            self._enqueue(record)
            self._publish_later(Kind.JOB_RESUMED, record.id)
        self._settle()
        return True

    def cancel(self, job_id: str) -> bool:
        stopped: JobRecord | None = None
        with self._lock:
            record = self._jobs.get(job_id)
            if record is None:
                return False
            if record.state is JobState.RUNNING:
                record.cancel_requested = True
            elif record.state in (JobState.PENDING, JobState.PAUSED, JobState.RETRY):
                self._remove_pending(record)
                self._finish(record, JobState.FAILURE, ErrorCode.CANCELED_JOB, "")
                self._publish_later(Kind.JOB_CANCELED, record.id)
                stopped = record
        if stopped is not None:
            self._stop_job(stopped, StopReason.CANCELED)
        self._settle()
        return True

    def resubmit(self, job_id: str) -> bool:
        with self._lock:
            record = self._jobs.get(job_id)
            if record is None or record.state is not JobState.FAILURE:
                return False
            record.job.reset()
            if record.id in self._history:
                self._history.remove(record.id)
            record.runtime = 0.0
            record.completion_time = None
            record.error_code, record.error_details = ErrorCode.SUCCESS, ""
            record.error_payload = None
            record.progress = record.job.progress()
            record.content = record.job.content()
            record.started = False
            self._enqueue(record)
            self._publish_later(Kind.JOB_RESUBMITTED, record.id)
        self._settle()
        return True

    def delete(self, job_id: str) -> bool:
        """``DELETE /jobs/{id}`` (Orthanc 1.12): remove a finished job, cancel a live one."""
        with self._lock:
            record = self._jobs.get(job_id)
            if record is None:
                return False
            live = not record.finished
        if live:
            return self.cancel(job_id)
        with self._lock:
            if self._jobs.get(job_id) is record and record.finished:  # not resubmitted meanwhile
                if job_id in self._history:
                    self._history.remove(job_id)
                self._forget(record)
        self._settle()
        return True

    def output(self, job_id: str, key: str) -> Output | None:
        with self._lock:
            record = self._jobs.get(job_id)
            if record is None or record.state is not JobState.SUCCESS:
                return None
            found = record.job.outputs().get(key)
        return found if found is not None and found.path.exists() else None

    def delete_output(self, job_id: str, key: str) -> bool:
        with self._lock:
            record = self._jobs.get(job_id)
            if record is None or record.state is not JobState.SUCCESS:
                return False
        return record.job.delete_output(key)  # file work: outside the lock

    # -- workers ---------------------------------------------------------------------

    def _work(self) -> None:
        while True:
            stopping, record = self._next()
            self._settle()
            if record is not None:
                self._run(record)
            elif stopping:
                return

    def _next(self) -> tuple[bool, JobRecord | None]:
        """Block until a job is due: ``(False, job)``; ``(False, None)`` when retries woke up
        and are to be saved first; ``(True, None)`` when the engine stops."""
        with self._lock:
            while not self._stopping:
                woke = self._wake_retries()
                while self._pending:
                    _, _, job_id = heapq.heappop(self._pending)
                    record = self._jobs.get(job_id)
                    if record is not None and record.state is JobState.PENDING:
                        self._set_state(record, JobState.RUNNING)
                        record.running_since = time.monotonic()
                        record.error_code, record.error_details = ErrorCode.SUCCESS, ""
                        record.error_payload = None
                        # Not saved: a job restored as Pending or as Running is queued again alike;
                        # its first save comes at a position save or at its end (one index write less).
                        return False, record
                if woke:
                    return False, None
                self._lock.wait(timeout=self._until_next_retry())
            return True, None

    def _run(self, record: JobRecord) -> None:
        self.bus.publish(JobEvent(Kind.JOB_RUNNING, record.id))
        result: StepResult | None = None
        if not record.started:
            result = self._guarded(record.job.start)
            record.started = result is None
        last_saved = time.monotonic()
        last_progress = -1
        while result is None:
            with self._lock:
                if (record.cancel_requested or record.pause_requested or record.released
                        or self._stopping):
                    break
            outcome = self._guarded(record.job.step) or StepResult.failure(ErrorCode.INTERNAL)
            with self._lock:
                record.progress = record.job.progress()
                record.content = record.job.content()
                percent = int(round(100 * record.progress))
                due = time.monotonic() - last_saved > SAVE_POSITION_PERIOD
                if due:
                    self._save(record)
            if due:
                self._persist_quietly()
                last_saved = time.monotonic()
            if percent != last_progress:
                last_progress = percent
                self.bus.publish(JobEvent(Kind.JOB_PROGRESS, record.id, percent))
            if outcome.kind != "continue":
                result = outcome
        self._conclude(record, result)

    @staticmethod
    def _guarded(call: Any) -> StepResult | None:
        """Run ``start`` or ``step``; an exception becomes a Failure result."""
        try:
            value = call()
        except OrthancError as e:
            return StepResult.failure(e.code, e.details or "", e.payload)
        except Exception as e:  # noqa: BLE001 - a job bug fails the job, not the worker
            log.exception("Job step failed")
            return StepResult.failure(ErrorCode.INTERNAL, str(e))
        return value if isinstance(value, StepResult) else None

    def _conclude(self, record: JobRecord, result: StepResult | None) -> None:
        reason: StopReason | None = None
        event: Kind | None = None
        with self._lock:
            if record.running_since is not None:
                record.runtime += time.monotonic() - record.running_since
                record.running_since = None
            if result is not None and result.kind == "retry" and (record.cancel_requested
                                                                   or record.pause_requested):
                result = None  # asked during the step: the request wins over the retry
            if result is None and record.cancel_requested:
                result = StepResult.failure(ErrorCode.CANCELED_JOB)
                self._publish_later(Kind.JOB_CANCELED, record.id)
            if result is None and record.pause_requested:
                record.pause_requested = False
                record.started = False
                self._set_state(record, JobState.PAUSED)
                self._save(record)
                self._publish_later(Kind.JOB_PAUSED, record.id)
                reason = StopReason.PAUSED
            elif result is None:  # the engine stops: saved as Running, resumed at restart
                self._save(record)
            elif result.kind == "success":
                self._finish(record, JobState.SUCCESS, ErrorCode.SUCCESS, "")
                reason, event = StopReason.SUCCESS, Kind.JOB_SUCCESS
            elif result.kind == "retry":
                record.retry_at = time.monotonic() + result.retry_after
                record.error_code, record.error_details = result.code, result.details
                record.started = False
                self._set_state(record, JobState.RETRY)
                self._save(record)
                self._publish_later(Kind.JOB_RETRY, record.id)
                reason = StopReason.RETRY
                self._lock.notify_all()
            else:
                canceled = result.code == ErrorCode.CANCELED_JOB
                self._finish(record, JobState.FAILURE, result.code, result.details, result.payload)
                reason = StopReason.CANCELED if canceled else StopReason.FAILURE
                event = Kind.JOB_FAILURE
            # Done with, whatever the outcome (not saved: each branch above saved the job once).
            record.cancel_requested = record.pause_requested = False
        if reason is not None:
            self._stop_job(record, reason)
        self._persist_quietly()
        if event is not None:
            log.info("Job %s: %s", "has completed" if event is Kind.JOB_SUCCESS else "has failed",
                     record.id)
            self.bus.publish(JobEvent(event, record.id))
        self._settle()

    def _stop_job(self, record: JobRecord, reason: StopReason) -> None:
        try:
            record.job.stop(reason)
        except Exception:  # noqa: BLE001 - cleanup must not kill the worker
            log.exception("Job %s failed to stop cleanly", record.id)

    # -- state helpers (lock held) ---------------------------------------------------

    def _set_state(self, record: JobRecord, state: JobState) -> None:
        record.state = state
        record.last_change = _now()
        if state is JobState.RETRY:
            self._retrying.add(record.id)
        else:
            self._retrying.discard(record.id)

    def _enqueue(self, record: JobRecord) -> None:
        self._set_state(record, JobState.PENDING)
        record.retry_at = None
        heapq.heappush(self._pending, (-record.priority, record.seq, record.id))
        self._save(record)
        self._lock.notify()

    def _remove_pending(self, record: JobRecord) -> None:
        self._pending = [entry for entry in self._pending if entry[2] != record.id]
        heapq.heapify(self._pending)

    def _finish(self, record: JobRecord, state: JobState, code: int, details: str,
                payload: dict[str, Any] | None = None) -> None:
        self._set_state(record, state)
        record.completion_time = record.last_change
        record.error_code, record.error_details, record.error_payload = code, details, payload
        if state is JobState.SUCCESS:
            record.progress = 1.0
        self._save(record)
        self._wake += record.waiters
        record.waiters = []
        self._history.append(record.id)
        while len(self._history) > self.history_size:
            oldest = self._jobs.get(self._history.popleft())
            if oldest is not None:
                self._forget(oldest)

    def _forget(self, record: JobRecord) -> None:
        self._jobs.pop(record.id, None)
        self._retrying.discard(record.id)
        self._dropped.append(record.job)
        if self.index is not None:
            self._unsaved[record.id] = None

    def _wake_retries(self) -> bool:
        """Put the jobs whose retry is due back in the queue; True if there were some."""
        now = time.monotonic()
        woke = False
        for job_id in list(self._retrying):
            record = self._jobs[job_id]
            if record.retry_at is not None and record.retry_at <= now:
                self._enqueue(record)
                woke = True
        return woke

    def _until_next_retry(self) -> float:
        due = [self._jobs[i].retry_at or 0.0 for i in self._retrying]
        return max(0.01, min(due) - time.monotonic()) if due else 1.0

    # -- what a change made under the lock leaves for after it -----------------------

    def _publish_later(self, kind: Kind, job_id: str) -> None:
        self._later.append((kind, job_id))

    def _settle(self) -> None:
        """Without the lock: write the snapshots, then wake the waiters, delete the outputs of
        forgotten jobs and publish the events (listeners see states that are already saved)."""
        self._persist_quietly()
        with self._lock:
            wake, self._wake = self._wake, []
            dropped, self._dropped = self._dropped, []
            later, self._later = self._later, []
        for loop, future in wake:
            loop.call_soon_threadsafe(resolve_waiter, future)
        for job in dropped:
            for key in list(job.outputs()):
                job.delete_output(key)
        for kind, job_id in later:
            self.bus.publish(JobEvent(kind, job_id))

    # -- persistence -----------------------------------------------------------------

    def _persist(self) -> None:
        """Write every snapshot taken so far; returns once those of the caller are in the index.

        A snapshot another thread took away is written by that thread, which holds the writer
        lock meanwhile: waiting for that lock is waiting for it to be written.
        """
        if self.index is None:
            return
        with self._writer:
            with self._lock:
                batch, self._unsaved = self._unsaved, {}
            items = list(batch.items())
            if len(items) > 1 and self._save_many is not None:
                try:
                    self._save_many(items)
                except BaseException:
                    self._give_back(items)
                    raise
                return
            for position, (job_id, document) in enumerate(items):
                try:
                    if document is None:
                        self.index.delete_job(job_id)
                    else:
                        self.index.save_job(job_id, document)
                except BaseException:
                    self._give_back(items[position:])
                    raise

    def _persist_quietly(self) -> None:
        """:meth:`_persist` where the change is made already: a failed write is logged, and
        retried with the next one (the state in memory, which ``/jobs`` shows, is right)."""
        try:
            self._persist()
        except Exception:  # noqa: BLE001 - a full disk must not kill a worker or lose an event
            log.exception("Cannot save the jobs (will try again at the next change)")

    def _give_back(self, unwritten: list[tuple[str, str | None]]) -> None:
        """A write failed: put back what is unwritten, unless a newer snapshot came meanwhile."""
        with self._lock:
            for job_id, document in unwritten:
                self._unsaved.setdefault(job_id, document)

    def _save(self, record: JobRecord) -> None:
        """With the lock held: snapshot the job's document, for :meth:`_persist` to write."""
        if self.index is None:
            return
        data = self._serialized(record)
        if data is not None:  # a job that cannot be serialized is not saved (as in Orthanc)
            self._unsaved[record.id] = json.dumps(self._document(record, data))

    @staticmethod
    def _serialized(record: JobRecord) -> dict[str, Any] | None:
        try:
            return record.job.serialize()
        except Exception:  # noqa: BLE001 - an unserializable job still runs
            log.exception("Cannot serialize job %s", record.id)
            return None

    def _document(self, record: JobRecord, data: dict[str, Any] | None) -> dict[str, Any]:
        """What is saved of a job, ``data`` being its :meth:`Job.serialize`."""
        document: dict[str, Any] = {
            "Type": record.job.TYPE, "Priority": record.priority, "State": record.state.value,
            "CreationTime": _format(record.creation_time), "LastChangeTime": _format(record.last_change),
            "CompletionTime": _format(record.completion_time) if record.completion_time else None,
            "Runtime": record.runtime, "ErrorCode": int(record.error_code),
            "ErrorDetails": record.error_details, "Seq": record.seq, "Job": data,
        }
        if record.user_data is not None:
            document["UserData"] = record.user_data
        if record.error_payload is not None:
            document["ErrorPayload"] = record.error_payload
        return document

    def _restore(self, rows: list[tuple[str, str]]) -> None:
        """With the lock held: rebuild the saved jobs (``rows`` of :meth:`Index.load_jobs`)."""
        saved = sorted(((job_id, json.loads(text)) for job_id, text in rows),
                       key=lambda item: item[1].get("Seq", 0))
        base = max((doc.get("Seq", 0) for _, doc in saved), default=-1) + 1
        self._seq = itertools.count(base)
        for job_id, doc in saved:
            try:
                job = self.registry.restore(doc["Type"], doc["Job"])
            except Exception:  # noqa: BLE001 - one bad job must not prevent start-up
                log.warning("Cannot restore saved job %s (%s): skipped", job_id, doc.get("Type"))
                self._unsaved[job_id] = None
                continue
            self._restore_one(job_id, doc, job)
        while len(self._history) > self.history_size:
            oldest = self._jobs.get(self._history.popleft())
            if oldest is not None:
                self._forget(oldest)
        log.warning("Restored %d saved jobs", len(self._jobs))

    def _restore_one(self, job_id: str, doc: dict[str, Any], job: Job) -> None:
        record = record_from_document(job_id, doc, job)
        self._jobs[job_id] = record
        if record.finished:
            self._history.append(job_id)
        elif record.state in (JobState.RUNNING, JobState.PENDING, JobState.RETRY):
            self._enqueue(record)


def record_from_document(job_id: str, doc: dict[str, Any], job: Job) -> JobRecord:
    """The record of a saved job (:meth:`JobsEngine._document`), ``job`` rebuilt from it."""
    job.id = job_id
    record = JobRecord(id=job_id, job=job, priority=int(doc.get("Priority", 0)),
                       state=JobState(doc["State"]), creation_time=_parse(doc["CreationTime"]),
                       seq=int(doc.get("Seq", 0)), last_change=_parse(doc["LastChangeTime"]),
                       runtime=float(doc.get("Runtime", 0.0)),
                       error_code=int(doc.get("ErrorCode", 0)),
                       error_details=doc.get("ErrorDetails", ""), user_data=doc.get("UserData"),
                       error_payload=doc.get("ErrorPayload"))
    if doc.get("CompletionTime"):
        record.completion_time = _parse(doc["CompletionTime"])
    record.progress = job.progress()
    record.content = job.content()
    return record


def resolve_waiter(future: asyncio.Future[None]) -> None:
    """Wake a caller waiting for a job (on its event loop)."""
    if not future.done():
        future.set_result(None)
