"""The cluster's jobs engine in process, on a store in memory: a lease renewal that did not
see a job this node claimed meanwhile does not take the job for lost (the PostgreSQL side is
tested in ``test_cluster_jobs.py``)."""

from __future__ import annotations

from typing import Any

from server import events
from server.jobs.cluster import Claimed, ClusterJobsEngine
from server.jobs.engine import timestamp
from server.jobs.job import Job, JobRegistry, JobState, StepResult

TYPE = "ClusterUnitJob"


class Counter(Job):
    TYPE = TYPE

    def step(self) -> StepResult:
        return StepResult.success()

    def reset(self) -> None:
        pass

    def progress(self) -> float:
        return 0.0

    def content(self) -> dict[str, Any]:
        return {}

    def serialize(self) -> dict[str, Any] | None:
        return {}


def _claimed(job_id: str) -> Claimed:
    now = timestamp()
    return Claimed(job_id, {"Type": TYPE, "State": "Pending", "CreationTime": now, "LastChangeTime": now,
                            "Job": {}}, None)


class Store:
    """The few calls of a ``ClusterStore`` the claim and the renewal make; ``during_renewal``
    runs while the renewal's query would run, whose answer is ``leased``."""

    node = "unit"

    def __init__(self) -> None:
        self.leased: dict[str, str | None] = {}
        self.during_renewal = lambda: None

    def renew(self) -> dict[str, str | None]:
        answer = dict(self.leased)
        self.during_renewal()
        return answer

    def save_job(self, job_id: str, document: str) -> None:
        pass

    def delete_job(self, job_id: str) -> None:
        pass


def test_a_job_claimed_during_the_renewal_is_not_taken_for_lost() -> None:
    store = Store()
    engine = ClusterJobsEngine(JobRegistry({TYPE: lambda data: Counter()}), events.EventBus(), store,  # type: ignore[arg-type]
                               1, 10)
    before = engine._adopt(_claimed("before"))  # claimed, then lost to another node
    assert before is not None
    store.during_renewal = lambda: engine._adopt(_claimed("during"))  # a worker claims meanwhile
    engine._renew()
    during = engine._jobs["during"]
    assert during.state is JobState.RUNNING and not during.released
    assert before.released  # absent from a renewal that began after its claim: taken over
    store.during_renewal = lambda: None
    store.leased = {"during": "cancel"}
    engine._renew()
    assert not during.released and during.cancel_requested
