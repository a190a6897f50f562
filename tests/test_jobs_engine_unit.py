"""The jobs engine's state machine, in-process, on dummy jobs: no server, no HTTP, a few seconds.

Every transition of Orthanc's jobs (Pending, Running, Success, Failure, Paused, Retry), the
actions (pause, resume, cancel, resubmit, delete), priorities, the history bound, outputs,
the synchronous wait and the persistence round trip.  ``test_jobs.py`` checks the same engine
over REST with real jobs; these tests reach the corners a real job makes slow or racy.

Jobs and engines are built in :func:`build` and :func:`make_engine` only.
"""

from __future__ import annotations

import asyncio
import json
import random
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from server import events
from server.errors import ErrorCode, OrthancError
from server.events import Kind
from server.jobs.engine import JobsEngine
from server.jobs.job import Job, JobRegistry, JobState, Output, StepResult, StopReason
from server.storage.index import Index

TYPE = "UnitTestJob"
#: Longest wait for a state the engine reaches at once (a worker is idle, steps are instants).
PATIENCE = 5.0


class Dummy(Job):
    """A job of ``steps`` instant steps that can be held (``gate``), fail, ask for retries, or raise."""

    TYPE = TYPE

    def __init__(self, steps: int = 2, gate: threading.Event | None = None, fail_at: int | None = None,
                 fail_times: int = 1, retries: int = 0, raise_at: int | None = None,
                 output: Path | None = None, log: list[str] | None = None, name: str = "") -> None:
        self.steps, self.position = steps, 0
        self.gate = gate
        self.fail_at, self.fail_times = fail_at, fail_times
        self.retries = retries
        self.raise_at = raise_at
        self.output = output
        self.log = log
        self.name = name
        self.starts = 0
        self.resets = 0
        self.stops: list[StopReason] = []

    def start(self) -> None:
        self.starts += 1
        if self.log is not None:
            self.log.append(self.name)

    def step(self) -> StepResult:
        if self.gate is not None and not self.gate.is_set():
            self.gate.wait(0.005)  # short: the engine looks at pause and cancel between steps
            return StepResult.next()
        if self.retries:
            self.retries -= 1
            return StepResult.retry(0.05, ErrorCode.NETWORK_PROTOCOL, "try again")
        if self.position == self.raise_at:
            raise RuntimeError("bug in the job")
        if self.position == self.fail_at and self.fail_times:
            self.fail_times -= 1
            return StepResult.failure(ErrorCode.NETWORK_PROTOCOL, "step failed")
        self.position += 1
        if self.position >= self.steps:
            if self.output is not None:
                self.output.write_bytes(b"result")
            return StepResult.success()
        return StepResult.next()

    def reset(self) -> None:
        self.resets += 1
        self.position = 0

    def stop(self, reason: StopReason) -> None:
        self.stops.append(reason)

    def progress(self) -> float:
        return self.position / self.steps

    def content(self) -> dict[str, Any]:
        return {"Position": self.position, "Steps": self.steps}

    def serialize(self) -> dict[str, Any]:
        return {"Position": self.position, "Steps": self.steps,
                "Output": str(self.output) if self.output else None}

    def outputs(self) -> dict[str, Output]:
        if self.output is None or not self.output.exists():
            return {}
        return {"archive": Output(self.output, "application/zip", "archive.zip")}


#: Restored jobs wait for this gate (tests set it to let them finish).
RESTORED_GATE = threading.Event()


def _restore(data: dict[str, Any]) -> Job:
    output = data.get("Output")
    job = make_job(steps=data["Steps"], gate=RESTORED_GATE, output=Path(output) if output else None)
    assert isinstance(job, Dummy)
    job.position = data["Position"]
    return job


D = TypeVar("D", bound=Dummy)


def build(kind: type[D], **options: Any) -> D:
    """The one place that builds a job (the engine gives it its ID)."""
    job = kind(**options)
    Job.__init__(job)
    return job


def make_job(**options: Any) -> Dummy:
    return build(Dummy, **options)


def make_engine(bus: events.EventBus, index: Any, workers: int = 1, history: int = 10) -> JobsEngine:
    """The one place that builds an engine (and tells it how to restore a dummy)."""
    return JobsEngine(JobRegistry({TYPE: _restore}), bus, index, workers, history)


class MemoryIndex:
    """The four job methods of :class:`Index`, in a dict; ``delay`` makes writes slow."""

    def __init__(self, delay: Callable[[], float] = lambda: 0.0) -> None:
        self.documents: dict[str, dict[str, Any]] = {}
        self.delay = delay
        self.lock = threading.Lock()

    def save_job(self, job_id: str, document: str) -> None:
        time.sleep(self.delay())
        with self.lock:
            self.documents[job_id] = json.loads(document)

    def delete_job(self, job_id: str) -> None:
        time.sleep(self.delay())
        with self.lock:
            self.documents.pop(job_id, None)

    def load_jobs(self) -> list[tuple[str, str]]:
        with self.lock:
            return [(k, json.dumps(v)) for k, v in self.documents.items()]

    def clear_jobs(self) -> None:
        with self.lock:
            self.documents.clear()


class Harness:
    """Engines started for one test, their bus, and what was published on it."""

    def __init__(self) -> None:
        self.bus = events.EventBus()
        self.published: list[tuple[Kind, str]] = []
        self.engines: list[JobsEngine] = []
        for kind in JOB_EVENTS:
            self.bus.subscribe(kind, lambda event: self.published.append((event.kind, event.job_id)))

    def engine(self, index: Any = None, workers: int = 1, history: int = 10, load_saved: bool = True) -> JobsEngine:
        engine = make_engine(self.bus, index, workers, history)
        engine.start(load_saved=load_saved)
        self.engines.append(engine)
        return engine

    def kinds(self, job_id: str) -> list[Kind]:
        return [kind for kind, published in self.published if published == job_id]

    def stop(self) -> None:
        for engine in self.engines:
            engine.stop()


JOB_EVENTS = sorted(events.JOB_KINDS, key=lambda kind: kind.value)


@pytest.fixture
def harness() -> Iterator[Harness]:
    RESTORED_GATE.clear()
    made = Harness()
    yield made
    RESTORED_GATE.set()
    made.stop()


def until(condition: Callable[[], bool], what: str = "condition") -> None:
    deadline = time.monotonic() + PATIENCE
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"never reached: {what}")
        time.sleep(0.002)


def state(engine: JobsEngine, job_id: str) -> str | None:
    document = engine.describe(job_id)
    return None if document is None else document["State"]


def reach(engine: JobsEngine, job_id: str, *states: str) -> dict[str, Any]:
    until(lambda: state(engine, job_id) in states, f"{job_id} in {states}")
    document = engine.describe(job_id)
    assert document is not None
    return document


def busy(engine: JobsEngine) -> tuple[str, threading.Event]:
    """A job holding the only worker until its gate is set."""
    gate = threading.Event()
    job_id = engine.submit(make_job(gate=gate))
    reach(engine, job_id, "Running")
    return job_id, gate


# -- transitions --------------------------------------------------------------------------


def test_pending_running_success(harness: Harness) -> None:
    engine = harness.engine()
    job = make_job(steps=3)
    job_id = engine.submit(job, priority=5)
    assert job.id == job_id
    document = reach(engine, job_id, "Success")
    assert document["Progress"] == 100 and document["Priority"] == 5 and document["Type"] == TYPE
    assert document["ErrorCode"] == 0 and "CompletionTime" in document
    assert document["Content"] == {"Position": 3, "Steps": 3}
    assert job.stops == [StopReason.SUCCESS]
    until(lambda: Kind.JOB_SUCCESS in harness.kinds(job_id))
    kinds = harness.kinds(job_id)
    assert kinds[0] == Kind.JOB_SUBMITTED and kinds[1] == Kind.JOB_RUNNING and kinds[-1] == Kind.JOB_SUCCESS


def test_running_is_seen_and_a_failure_keeps_its_error(harness: Harness) -> None:
    engine = harness.engine()
    gate = threading.Event()
    job = make_job(steps=3, gate=gate, fail_at=1)
    job_id = engine.submit(job)
    assert reach(engine, job_id, "Running")["State"] == "Running"
    gate.set()
    document = reach(engine, job_id, "Failure")
    assert document["ErrorCode"] == ErrorCode.NETWORK_PROTOCOL and document["ErrorDetails"] == "step failed"
    assert job.stops == [StopReason.FAILURE]
    until(lambda: Kind.JOB_FAILURE in harness.kinds(job_id))


def test_an_exception_in_a_step_fails_the_job_not_the_worker(harness: Harness) -> None:
    engine = harness.engine()
    failed = engine.submit(make_job(raise_at=0))
    document = reach(engine, failed, "Failure")
    assert document["ErrorCode"] == ErrorCode.INTERNAL and "bug in the job" in document["ErrorDetails"]
    assert reach(engine, engine.submit(make_job()), "Success")


def test_pause_and_resume_a_pending_job(harness: Harness) -> None:
    engine = harness.engine()
    blocker, gate = busy(engine)
    job = make_job()
    job_id = engine.submit(job)
    assert state(engine, job_id) == "Pending"
    assert engine.pause(job_id)
    assert state(engine, job_id) == "Paused"
    gate.set()
    reach(engine, blocker, "Success")
    time.sleep(0.05)
    assert state(engine, job_id) == "Paused" and job.starts == 0  # a paused job is not taken
    assert engine.resume(job_id)
    reach(engine, job_id, "Success")
    assert harness.kinds(job_id).count(Kind.JOB_PAUSED) == 1 and Kind.JOB_RESUMED in harness.kinds(job_id)


def test_pause_and_resume_a_running_job(harness: Harness) -> None:
    engine = harness.engine()
    gate = threading.Event()
    job = make_job(gate=gate)
    job_id = engine.submit(job)
    reach(engine, job_id, "Running")
    assert engine.pause(job_id)
    reach(engine, job_id, "Paused")
    assert job.stops == [StopReason.PAUSED]
    assert not engine.resume("no-such-job") and not engine.pause("no-such-job")
    gate.set()
    assert engine.resume(job_id)
    reach(engine, job_id, "Success")
    assert job.starts == 2  # start() again after a resume


def test_cancel_pending_paused_and_running_jobs(harness: Harness) -> None:
    engine = harness.engine()
    gate = threading.Event()
    running_job = make_job(gate=gate)
    running = engine.submit(running_job)
    reach(engine, running, "Running")
    pending = engine.submit(make_job())
    paused = engine.submit(make_job())
    engine.pause(paused)
    for job_id in (pending, paused, running):
        assert engine.cancel(job_id)
    for job_id in (pending, paused, running):
        document = reach(engine, job_id, "Failure")
        assert document["ErrorCode"] == ErrorCode.CANCELED_JOB
        until(lambda: Kind.JOB_CANCELED in harness.kinds(job_id))  # noqa: B023 - called at once
    assert running_job.stops == [StopReason.CANCELED]
    assert engine.cancel(running)  # canceling a finished job is a no-op
    assert not engine.cancel("no-such-job")


def test_resubmit_failed_and_canceled_jobs_but_not_successful_ones(harness: Harness) -> None:
    engine = harness.engine()
    failing = make_job(fail_at=1)
    failed = engine.submit(failing)
    reach(engine, failed, "Failure")
    done = engine.submit(make_job())
    reach(engine, done, "Success")
    blocker, gate = busy(engine)
    canceled = engine.submit(make_job())
    engine.cancel(canceled)
    assert not engine.resubmit(done) and not engine.resubmit(blocker) and not engine.resubmit("no-such-job")
    assert engine.resubmit(failed) and engine.resubmit(canceled)
    assert failing.resets == 1
    document = engine.describe(failed)
    assert document is not None
    assert document["State"] == "Pending" and document["ErrorCode"] == 0 and "CompletionTime" not in document
    gate.set()
    reach(engine, failed, "Success")
    reach(engine, canceled, "Success")
    assert Kind.JOB_RESUBMITTED in harness.kinds(failed)


def test_retry_then_success(harness: Harness) -> None:
    engine = harness.engine()
    job = make_job(retries=2)
    job_id = engine.submit(job)
    document = reach(engine, job_id, "Retry")
    assert document["ErrorCode"] == ErrorCode.NETWORK_PROTOCOL
    reach(engine, job_id, "Success")
    assert job.stops == [StopReason.RETRY, StopReason.RETRY, StopReason.SUCCESS]
    assert job.starts == 3
    until(lambda: Kind.JOB_SUCCESS in harness.kinds(job_id))
    assert harness.kinds(job_id).count(Kind.JOB_RETRY) == 2


def test_pause_and_cancel_a_job_waiting_to_retry(harness: Harness) -> None:
    engine = harness.engine()
    job_id = engine.submit(make_job(retries=1000))
    reach(engine, job_id, "Retry")
    assert engine.pause(job_id)
    reach(engine, job_id, "Paused")  # at once, or at the end of its step if it was running again
    time.sleep(0.1)
    assert state(engine, job_id) == "Paused"  # the retry does not wake a paused job
    assert engine.cancel(job_id)
    assert reach(engine, job_id, "Failure")["ErrorCode"] == ErrorCode.CANCELED_JOB


class RetryingWhileAsked(Dummy):
    """Asks for a retry from a step during which a pause or a cancel is requested."""

    def __init__(self, action: Callable[[str], bool]) -> None:
        super().__init__()
        self.action = action

    def step(self) -> StepResult:
        if not self.stops:
            assert self.action(self.id)
            return StepResult.retry(0.01)
        return super().step()


@pytest.mark.parametrize("action, final", [("cancel", "Failure"), ("pause", "Paused")])
def test_a_step_asking_for_a_retry_does_not_lose_a_cancel_or_pause(harness: Harness, action: str,
                                                                   final: str) -> None:
    engine = harness.engine()
    job = build(RetryingWhileAsked, action=getattr(engine, action))
    job_id = engine.submit(job)
    reach(engine, job_id, final)
    time.sleep(0.05)
    assert state(engine, job_id) == final
    assert job.stops == [StopReason.CANCELED if action == "cancel" else StopReason.PAUSED]


def test_a_pause_asked_during_a_failing_step_does_not_pause_the_resubmitted_job(harness: Harness) -> None:
    engine = harness.engine()

    class PausedWhileFailing(Dummy):
        def step(self) -> StepResult:
            if self.resets == 0:
                assert engine.pause(self.id)
                return StepResult.failure(ErrorCode.NETWORK_PROTOCOL)
            return super().step()

    job = build(PausedWhileFailing)
    job_id = engine.submit(job)
    reach(engine, job_id, "Failure")
    assert engine.resubmit(job_id)
    reach(engine, job_id, "Success")


def test_higher_priority_first_then_submission_order(harness: Harness) -> None:
    engine = harness.engine(workers=1)
    order: list[str] = []
    _, gate = busy(engine)
    ids = {name: engine.submit(make_job(log=order, name=name), priority)
           for name, priority in (("low", -1), ("first", 5), ("middle", 0), ("second", 5))}
    gate.set()
    for job_id in ids.values():
        reach(engine, job_id, "Success")
    assert order == ["first", "second", "middle", "low"]


def test_several_workers_run_jobs_together(harness: Harness) -> None:
    engine = harness.engine(workers=3)
    gate = threading.Event()
    ids = [engine.submit(make_job(gate=gate)) for _ in range(3)]
    for job_id in ids:
        reach(engine, job_id, "Running")
    assert engine.counts()["Running"] == 3
    gate.set()
    for job_id in ids:
        reach(engine, job_id, "Success")


# -- history and outputs ----------------------------------------------------------------


def test_history_keeps_the_last_finished_jobs_and_deletes_the_outputs_of_the_others(
        harness: Harness, tmp_path: Path) -> None:
    index = MemoryIndex()
    engine = harness.engine(index=index, history=2)
    files = [tmp_path / f"{i}.zip" for i in range(3)]
    ids = []
    for path in files:
        ids.append(engine.submit(make_job(output=path)))
        reach(engine, ids[-1], "Success")
    until(lambda: engine.get(ids[0]) is None, "the oldest job is forgotten")
    assert engine.ids() == sorted(ids[1:])
    until(lambda: not files[0].exists(), "the output of the forgotten job is deleted")
    assert files[1].exists() and files[2].exists()
    assert sorted(index.documents) == sorted(ids[1:])
    # A pending or running job is never forgotten, whatever the history size.
    _, gate = busy(engine)
    assert len(engine.ids()) == 3
    gate.set()


def test_each_state_change_is_written_once_and_a_forgotten_job_stays_deleted(harness: Harness) -> None:
    """Submitted, then Success: two writes (Running is not saved, nor each step); with no history
    the finished job is deleted from the index, never written back after."""
    index = MemoryIndex()
    writes: list[tuple[str, str]] = []
    save = index.save_job

    def counted(job_id: str, document: str) -> None:
        writes.append((job_id, json.loads(document)["State"]))
        save(job_id, document)

    index.save_job = counted  # type: ignore[method-assign]
    engine = harness.engine(index=index)
    job_id = engine.submit(make_job(steps=5))
    reach(engine, job_id, "Success")
    until(lambda: len(writes) == 2, "two writes")
    assert writes == [(job_id, "Pending"), (job_id, "Success")]
    forgetful = harness.engine(index=index, history=0)
    forgotten = forgetful.submit(make_job(steps=2))
    until(lambda: forgetful.get(forgotten) is None, "the finished job is forgotten at once")
    until(lambda: forgotten not in index.documents, "and deleted from the index")
    assert [state for written, state in writes if written == forgotten] == ["Pending"]  # then deleted


def test_outputs_are_served_only_on_success_and_deleted_on_demand(harness: Harness, tmp_path: Path) -> None:
    engine = harness.engine()
    path = tmp_path / "out.zip"
    job_id = engine.submit(make_job(output=path))
    reach(engine, job_id, "Success")
    output = engine.output(job_id, "archive")
    assert output is not None and output.path == path and output.filename == "archive.zip"
    assert engine.output(job_id, "other") is None
    assert engine.delete_output(job_id, "archive") and not path.exists()
    assert engine.output(job_id, "archive") is None and not engine.delete_output(job_id, "archive")
    failed = engine.submit(make_job(fail_at=0))
    reach(engine, failed, "Failure")
    assert engine.output(failed, "archive") is None and not engine.delete_output(failed, "archive")


def test_delete_forgets_a_finished_job_and_cancels_a_live_one(harness: Harness, tmp_path: Path) -> None:
    index = MemoryIndex()
    engine = harness.engine(index=index)
    path = tmp_path / "out.zip"
    done = engine.submit(make_job(output=path))
    reach(engine, done, "Success")
    assert engine.delete(done)
    assert engine.get(done) is None and done not in index.documents and not path.exists()
    live, _ = busy(engine)
    assert engine.delete(live)
    assert reach(engine, live, "Failure")["ErrorCode"] == ErrorCode.CANCELED_JOB
    assert not engine.delete("no-such-job")


# -- synchronous wait -------------------------------------------------------------------


def test_wait_returns_when_the_job_ends(harness: Harness) -> None:
    engine = harness.engine()

    async def scenario() -> None:
        gate = threading.Event()
        job_id = engine.submit(make_job(gate=gate))
        waiting = asyncio.ensure_future(engine.wait(job_id))
        await asyncio.sleep(0.02)
        assert not waiting.done()
        gate.set()
        record = await asyncio.wait_for(waiting, PATIENCE)
        assert record.state is JobState.SUCCESS
        assert (await engine.wait(job_id)).state is JobState.SUCCESS  # already finished
        failed = engine.submit(make_job(fail_at=0))
        assert (await asyncio.wait_for(engine.wait(failed), PATIENCE)).state is JobState.FAILURE
        with pytest.raises(OrthancError):
            await engine.wait("no-such-job")

    asyncio.run(scenario())


# -- persistence ------------------------------------------------------------------------


def test_saved_jobs_come_back_after_a_restart(harness: Harness, tmp_path: Path) -> None:
    index = Index(tmp_path / "index.sqlite")
    first = harness.engine(index=index)
    succeeded = first.submit(make_job(), priority=3)
    reach(first, succeeded, "Success")
    failed = first.submit(make_job(fail_at=0))
    reach(first, failed, "Failure")
    gate = threading.Event()
    running = first.submit(make_job(steps=3, gate=gate), priority=1)
    reach(first, running, "Running")
    pending = first.submit(make_job(), priority=2)
    paused = first.submit(make_job())
    first.pause(paused)
    first.stop()  # as at shutdown: the running job stays saved as Running
    saved = {job_id: json.loads(text)["State"] for job_id, text in index.load_jobs()}
    assert saved == {succeeded: "Success", failed: "Failure", running: "Running", pending: "Pending",
                     paused: "Paused"}

    second = harness.engine(index=index)
    assert sorted(second.ids()) == sorted(saved)
    reach(second, pending, "Running")  # the higher priority goes first, as before the restart
    assert state(second, running) == "Pending"  # a job running at shutdown comes back Pending
    assert state(second, paused) == "Paused"
    assert state(second, succeeded) == "Success" and state(second, failed) == "Failure"
    restored_failure = second.describe(failed)
    assert restored_failure is not None and restored_failure["ErrorCode"] == ErrorCode.NETWORK_PROTOCOL
    original = first.describe(succeeded)
    restored = second.describe(succeeded)
    assert original is not None and restored is not None
    assert restored["CreationTime"] == original["CreationTime"] and restored["Priority"] == 3
    RESTORED_GATE.set()
    reach(second, running, "Success")
    assert second.resume(paused)
    reach(second, paused, "Success")
    index.close()


def test_an_unknown_saved_job_is_dropped_and_no_jobs_forgets_them_all(harness: Harness) -> None:
    index = MemoryIndex()
    engine = harness.engine(index=index)
    kept = engine.submit(make_job())
    reach(engine, kept, "Success")
    engine.stop()
    document = dict(index.documents[kept], Type="NoSuchJobType")
    index.documents["stray"] = document
    restarted = harness.engine(index=index)
    assert restarted.ids() == [kept] and "stray" not in index.documents
    restarted.stop()
    assert harness.engine(index=index, load_saved=False).ids() == [] and index.documents == {}


# -- persistence outside the lock (issue 14 B) ------------------------------------------


class BlockingIndex(MemoryIndex):
    """Writes wait for ``release`` once ``hold`` is set; ``entered`` tells a write is waiting."""

    def __init__(self) -> None:
        super().__init__()
        self.hold = threading.Event()
        self.entered = threading.Event()
        self.release = threading.Event()

    def save_job(self, job_id: str, document: str) -> None:
        if self.hold.is_set():
            self.entered.set()
            self.release.wait(PATIENCE)
        super().save_job(job_id, document)


def test_a_slow_write_never_holds_the_engine_and_submit_returns_once_written(harness: Harness) -> None:
    index = BlockingIndex()
    engine = harness.engine(index=index)
    index.hold.set()
    submitted: list[str] = []
    submitter = threading.Thread(target=lambda: submitted.append(engine.submit(make_job())))
    submitter.start()
    assert index.entered.wait(PATIENCE)
    started = time.monotonic()
    job_id = next(iter(engine.ids()))  # the registry answers while the write waits
    assert engine.describe(job_id) is not None and engine.counts()["Pending"] == 1
    assert time.monotonic() - started < 0.5
    assert submitter.is_alive() and not submitted  # not acknowledged before it is written
    index.hold.clear()
    index.release.set()
    submitter.join(PATIENCE)
    assert submitted == [job_id] and job_id in index.documents
    reach(engine, job_id, "Success")
    until(lambda: index.documents[job_id]["State"] == "Success")


def test_the_last_state_written_wins(harness: Harness) -> None:
    """Threads change the same jobs while the writes take random times: once it is quiet, the
    index holds every job's last state (an older snapshot never overwrites a newer one)."""
    index = MemoryIndex(delay=lambda: random.uniform(0, 0.002))
    engine = harness.engine(index=index)
    _, gate = busy(engine)
    ids = [engine.submit(make_job()) for _ in range(3)]

    def toggle(seed: int) -> None:
        chooser = random.Random(seed)
        for _ in range(60):
            job_id = chooser.choice(ids)
            engine.pause(job_id)
            engine.resume(job_id)  # refused when another thread resumed it first

    threads = [threading.Thread(target=toggle, args=(seed,)) for seed in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(PATIENCE * 4)
    assert [index.documents[job_id]["State"] for job_id in ids] == [state(engine, job_id) for job_id in ids]
    for job_id in ids:
        engine.pause(job_id)
    assert {index.documents[job_id]["State"] for job_id in ids} == {"Paused"}
    for job_id in ids[:2]:
        engine.resume(job_id)
    assert [index.documents[job_id]["State"] for job_id in ids] == ["Pending", "Pending", "Paused"]
    gate.set()
    for job_id in ids[:2]:
        reach(engine, job_id, "Success")
    until(lambda: [index.documents[i]["State"] for i in ids] == ["Success", "Success", "Paused"])


def test_a_newer_snapshot_is_not_overwritten_by_an_older_one_written_late(harness: Harness) -> None:
    """A pause whose write is slow, then a resume: the resume's write waits for the pause's."""
    index = BlockingIndex()
    engine = harness.engine(index=index)
    _, gate = busy(engine)
    job_id = engine.submit(make_job())
    index.hold.set()
    pausing = threading.Thread(target=engine.pause, args=(job_id,))
    pausing.start()
    assert index.entered.wait(PATIENCE)  # the Paused snapshot is being written, slowly
    index.hold.clear()
    resuming = threading.Thread(target=engine.resume, args=(job_id,))
    resuming.start()
    until(lambda: state(engine, job_id) == "Pending")
    resuming.join(0.1)  # it took its snapshot; it may not write it before the older one
    index.release.set()
    pausing.join(PATIENCE)
    resuming.join(PATIENCE)
    assert index.documents[job_id]["State"] == "Pending"
    gate.set()


class FailingIndex(MemoryIndex):
    """The next ``failures`` writes raise, as on a full disk."""

    def __init__(self) -> None:
        super().__init__()
        self.failures = 0

    def save_job(self, job_id: str, document: str) -> None:
        if self.failures:
            self.failures -= 1
            raise OSError("disk full")
        super().save_job(job_id, document)


class BatchIndex(MemoryIndex):
    """A :class:`MemoryIndex` that writes batches too; a single write made while ``writing`` is
    clear sets it and waits for ``gate``."""

    def __init__(self) -> None:
        super().__init__()
        self.batches: list[list[str]] = []
        self.writing, self.gate = threading.Event(), threading.Event()

    def save_job(self, job_id: str, document: str) -> None:
        if not self.writing.is_set():
            self.writing.set()
            self.gate.wait(PATIENCE)
        super().save_job(job_id, document)

    def save_jobs(self, changes: list[tuple[str, str | None]]) -> None:
        self.batches.append([job_id for job_id, _ in changes])
        for job_id, document in changes:
            if document is None:
                self.delete_job(job_id)
            else:
                super().save_job(job_id, document)


def test_the_snapshots_taken_during_a_write_are_written_together(harness: Harness) -> None:
    """While one submission is being written, the others wait, then one of them writes all
    theirs in one batch (one transaction on the index); each returns once its own is written."""
    index = BatchIndex()
    engine = harness.engine(index=index)
    index.writing.set()  # not this one's write
    _, gate = busy(engine)
    index.writing.clear()  # the next write waits for the gate
    first = threading.Thread(target=engine.submit, args=(make_job(),))
    first.start()
    index.writing.wait(PATIENCE)
    ids: list[str] = []
    others = [threading.Thread(target=lambda: ids.append(engine.submit(make_job()))) for _ in range(3)]
    for thread in others:
        thread.start()
    until(lambda: len(engine.ids()) == 5, "the other submissions are waiting for the write")
    index.gate.set()
    for thread in [first, *others]:
        thread.join(PATIENCE)
    assert len(ids) == 3 and all(job_id in index.documents for job_id in ids)
    assert any(set(ids) <= set(batch) for batch in index.batches)
    gate.set()


def test_the_index_writes_and_deletes_jobs_in_one_transaction(tmp_path: Path) -> None:
    index = Index(tmp_path / "index.db")
    index.save_jobs([("a", "1"), ("b", "2"), ("c", "3")])
    index.save_jobs([("a", None), ("b", "4"), ("d", "5")])
    assert sorted(index.load_jobs()) == [("b", "4"), ("c", "3"), ("d", "5")]
    index.close()


def test_a_failed_write_refuses_the_submit_and_never_kills_a_worker(harness: Harness) -> None:
    index = FailingIndex()
    engine = harness.engine(index=index)
    index.failures = 1
    with pytest.raises(OSError):
        engine.submit(make_job())
    assert engine.ids() == [] and index.documents == {}
    gate = threading.Event()
    job_id = engine.submit(make_job(gate=gate))
    reach(engine, job_id, "Running")
    index.failures = 1  # the next write, from the worker, fails: logged, written with the next one
    gate.set()
    reach(engine, job_id, "Success")
    until(lambda: index.documents[job_id]["State"] == "Success")
    assert reach(engine, engine.submit(make_job()), "Success")  # the worker is still there
