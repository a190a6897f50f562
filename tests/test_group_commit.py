"""Group commit (server/group_commit.py), and concurrent ingests through it (in process):
batches form under load, each caller gets its own outcome, nothing is lost or doubled."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from test_store_batch import Setup, instance

from server.dicom.main_tags import Level
from server.errors import ErrorCode, OrthancError
from server.group_commit import BATCH_LIMIT, GroupCommit
from server.store import Limits, Origin


def test_a_lone_caller_runs_at_once() -> None:
    batches: list[list[int]] = []
    commits = GroupCommit(lambda batch, more: (batches.append(batch), [n * 10 for n in batch])[1])
    assert commits.submit(4) == 40
    assert commits.submit(5) == 50
    assert batches == [[4], [5]]


def test_callers_arriving_during_a_batch_commit_together() -> None:
    batches: list[list[int]] = []
    started = threading.Event()

    def run(batch: list[int], more: Callable[[], list[int]]) -> list[int | BaseException]:
        batches.append(batch)
        started.set()
        time.sleep(0.2)  # the first batch holds the writers' lock while the others queue
        return [n * 10 for n in batch]

    commits = GroupCommit(run)
    with ThreadPoolExecutor(12) as pool:
        first = pool.submit(commits.submit, 0)
        started.wait(5)
        rest = [pool.submit(commits.submit, n) for n in range(1, 12)]
        time.sleep(0.05)
        assert first.result() == 0
        assert [f.result() for f in rest] == [n * 10 for n in range(1, 12)]
    assert batches[0] == [0]
    assert sorted(n for batch in batches[1:] for n in batch) == list(range(1, 12))
    assert len(batches) < 12 and all(len(batch) <= BATCH_LIMIT for batch in batches)


def test_a_batch_takes_the_callers_that_came_while_it_waited() -> None:
    """As a node's batch does once it holds PostgreSQL's writers' lock: ``more()`` adds the
    work queued meanwhile, whose callers get their outcomes from this batch."""
    batches: list[list[int]] = []
    started, queued = threading.Event(), threading.Event()

    def run(batch: list[int], more: Callable[[], list[int]]) -> list[int | BaseException]:
        started.set()
        if batch == [0]:
            queued.wait(5)  # waiting for the lock, while the others queue
            assert more() == list(range(1, 6))
        batches.append(list(batch))
        return [n * 10 for n in batch]

    commits = GroupCommit(run)
    with ThreadPoolExecutor(6) as pool:
        first = pool.submit(commits.submit, 0)
        started.wait(5)
        rest = [pool.submit(commits.submit, n) for n in range(1, 6)]
        while len(commits._queued) < 5:
            time.sleep(0.01)
        queued.set()
        assert first.result() == 0 and [f.result() for f in rest] == [10, 20, 30, 40, 50]
    assert batches == [list(range(6))]


def test_each_caller_gets_its_own_error() -> None:
    def run(batch: list[int], more: Callable[[], list[int]]) -> list[int | BaseException]:
        return [ValueError(n) if n % 2 else n for n in batch]

    commits = GroupCommit(run)
    with ThreadPoolExecutor(6) as pool:
        futures = {n: pool.submit(commits.submit, n) for n in range(6)}
    for n, future in futures.items():
        if n % 2:
            with pytest.raises(ValueError):
                future.result()
        else:
            assert future.result() == n


def test_a_failed_batch_fails_each_of_its_callers() -> None:
    def run(batch: list[int], more: Callable[[], list[int]]) -> list[int | BaseException]:
        raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError):
        GroupCommit(run).submit(1)


def test_concurrent_ingests_store_each_instance_once(tmp_path: Path) -> None:
    """Eight threads store 40 instances, each twice: one Success and one AlreadyStored per
    instance, one file each, nothing left staged."""
    setup = Setup(tmp_path)
    files = [instance(f"{n % 5}", n) for n in range(40)]
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda data: setup.store.ingest(data, Origin()), files + files))
    by_instance: dict[str, list[str]] = {}
    for result in results:
        by_instance.setdefault(result.ids[Level.INSTANCE], []).append(result.status)
    assert len(by_instance) == 40
    assert all(sorted(statuses) == ["AlreadyStored", "Success"] for statuses in by_instance.values())
    assert setup.index.counts()[0][Level.INSTANCE] == 40
    assert len(setup.stored_files()) == 40
    assert setup.staged_files() == []


def test_a_refused_ingest_in_a_batch_fails_alone(tmp_path: Path) -> None:
    """MaximumPatientCount 2 with "Reject": the third patient's instances are refused with
    FullStorage, every other one of the same batches is stored."""
    setup = Setup(tmp_path, Limits(max_patients=2, reject_when_full=True))
    setup.store.ingest(instance("7", 0), Origin())
    setup.store.ingest(instance("8", 0), Origin())
    files = [instance(("7", "8", "9")[n % 3], n + 1) for n in range(30)]

    def ingest(data: bytes) -> str:
        try:
            return setup.store.ingest(data, Origin()).status
        except OrthancError as error:
            assert error.code == ErrorCode.FULL_STORAGE
            return "Refused"

    with ThreadPoolExecutor(8) as pool:
        outcomes = list(pool.map(ingest, files))
    assert outcomes == [("Success", "Success", "Refused")[n % 3] for n in range(30)]
    assert setup.staged_files() == []
