"""One jobs queue for a cluster (:mod:`server.jobs.cluster`): nodes sharing a PostgreSQL
index and a storage folder see, control and serve each other's jobs, and a node killed
with ``kill -9`` has its jobs finished by the others, each once.

The lease is shortened (``ISENGARD_JOBS_LEASE_SECONDS``, for the tests only) so that a
takeover takes seconds, not half a minute."""

from __future__ import annotations

import io
import json
import signal
import threading
import time
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from pg_cluster import PostgresCluster
from test_jobs import _upload_study
from test_python_scripting import SCRIPTS

from conftest import Isengard
from helpers import wait_job

LEASE_SECONDS = 2
CANCELED_JOB = 37
#: orthanc.JobStopReason, as the script's callbacks record it.
SUCCESS, PAUSED, CANCELED = 1, 2, 4

Node = Callable[..., Isengard]


@pytest.fixture
def cluster(postgres_server: PostgresCluster, tmp_path: Path,
            monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Node, PostgresCluster, str]]:
    """A factory of nodes on one fresh database and one storage folder."""
    monkeypatch.setenv("ISENGARD_JOBS_LEASE_SECONDS", str(LEASE_SECONDS))
    database = postgres_server.create_database()
    started: list[Isengard] = []

    def node(name: str, **options: Any) -> Isengard:
        server = Isengard(tmp_path / name, PostgreSQL=postgres_server.section(database, Lock=False),
                          StorageDirectory=str(tmp_path / "storage"), JobsHistorySize=100,
                          MediaArchiveSize=100, **options)
        started.append(server)
        return server.start()

    yield node, postgres_server, database
    for server in started:
        if server.process is not None and server.process.poll() is None:
            server.stop()
            server.assert_loop_never_blocked()


def _rows(postgres: PostgresCluster, database: str, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    with postgres.connect(database) as connection:
        return connection.execute(sql, args).fetchall()


def _runner(postgres: PostgresCluster, database: str, job: str, nodes: list[Isengard]) -> Isengard:
    """The node whose worker runs ``job`` (its name in the cluster holds its process ID)."""
    owner = _rows(postgres, database, "SELECT owner FROM ClusterJobs WHERE id=%s", job)[0][0]
    assert owner, job
    return next(n for n in nodes if n.process is not None and f"-{n.process.pid}-" in owner)


def _archive(node: Isengard, study: str) -> str:
    answer = node.post(f"/studies/{study}/archive", json={"Asynchronous": True})
    assert answer.status_code == 200, answer.text
    return answer.json()["ID"]


def _listen(node: Isengard, seen: list[tuple[str, dict[str, Any]]], stop: threading.Event) -> None:
    """Collect ``/jobs/events`` (the Server-Sent Events) until ``stop``."""
    with requests.get(node.url + "/jobs/events", stream=True, timeout=60) as answer:
        name = ""
        for line in answer.iter_lines(decode_unicode=True):
            if stop.is_set():
                return
            if line.startswith("event: "):
                name = line[len("event: "):]
            elif line.startswith("data: "):
                seen.append((name, json.loads(line[len("data: "):])))


def test_a_job_is_seen_controlled_and_served_by_every_node(cluster: tuple[Node, PostgresCluster, str],
                                                          tmp_path: Path) -> None:
    node, _, _ = cluster
    script = tmp_path / "callbacks.lua"
    script.write_text("function OnJobSubmitted(id) print('submitted ' .. id) end\n"
                      "function OnJobSuccess(id) print('success ' .. id) end\n")
    a, b = node("a", LuaScripts=[str(script)]), node("b", LuaScripts=[str(script)])
    study = _upload_study(a, 3, "1.2.826.0.1.3680043.77.1")
    seen: list[tuple[str, dict[str, Any]]] = []
    stop = threading.Event()
    threading.Thread(target=_listen, args=(b, seen, stop), daemon=True).start()
    time.sleep(0.5)

    job = _archive(a, study)
    assert job in b.json("/jobs")
    done = wait_job(b, job)
    assert done["State"] == "Success" and done["Type"] == "Archive"
    on_a = a.json(f"/jobs/{job}")
    assert {k: v for k, v in on_a.items() if k != "Timestamp"} == {
        k: v for k, v in done.items() if k != "Timestamp"}
    assert b.json("/jobs?expand")[0]["ID"] == job
    served = b.get(f"/jobs/{job}/archive")
    assert served.status_code == 200 and served.content == a.get(f"/jobs/{job}/archive").content
    assert len(zipfile.ZipFile(io.BytesIO(served.content)).namelist()) == 3

    deadline = time.monotonic() + 10
    while not {"submitted", "success"} <= {name for name, data in seen if data["ID"] == job}:
        assert time.monotonic() < deadline, seen
        time.sleep(0.05)
    stop.set()
    # The script's callbacks run once in the cluster: on the node that submitted, that ran the job.
    deadline = time.monotonic() + 5
    while sum(f"Lua says: success {job}" in n.log() for n in (a, b)) < 1:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert f"Lua says: submitted {job}" in a.log() and f"Lua says: submitted {job}" not in b.log()
    assert sum(f"Lua says: success {job}" in n.log() for n in (a, b)) == 1

    assert b.delete(f"/jobs/{job}/archive").status_code == 200
    assert a.get(f"/jobs/{job}/archive").status_code == 404
    assert b.delete(f"/jobs/{job}").status_code == 200
    assert a.get(f"/jobs/{job}").status_code == 404

    # A synchronous call answers from its node, whichever node the other jobs run on.
    synchronous = b.post(f"/studies/{study}/archive", json={})
    assert synchronous.status_code == 200
    assert len(zipfile.ZipFile(io.BytesIO(synchronous.content)).namelist()) == 3
    counts = {d["State"] for d in a.json("/jobs?expand")}
    assert counts <= {"Success"}


def test_pause_resume_and_cancel_from_another_node_reach_the_runner(
        cluster: tuple[Node, PostgresCluster, str]) -> None:
    """With a script's job that counts until it is stopped (``tests/python/jobs.py``, loaded by
    both nodes, so that either can rebuild it); its callbacks run on the node running it."""
    node, postgres, database = cluster
    nodes = [node(name, PythonScript=str(SCRIPTS / "jobs.py")) for name in ("a", "b")]

    def other_than_runner(job: str) -> tuple[Isengard, Isengard]:
        runner = _runner(postgres, database, job, nodes)
        return runner, nodes[1] if runner is nodes[0] else nodes[0]

    answer = nodes[0].post("/counters", json={"name": "endless", "total": 10**9, "delay": 0.01})
    job = answer.text
    wait_job(nodes[1], job, {"Running"})
    runner, other = other_than_runner(job)
    assert other.post(f"/jobs/{job}/pause").status_code == 200
    position = wait_job(other, job, {"Paused"}, timeout=10)["Content"]["Position"]
    assert position > 0 and ["endless", "stop", PAUSED] in runner.json("/counters/events")["events"]
    assert other.post(f"/jobs/{job}/resume").status_code == 200
    wait_job(other, job, {"Running"})
    runner, other = other_than_runner(job)
    deadline = time.monotonic() + 10
    while other.json(f"/jobs/{job}")["Content"]["Position"] <= position:  # the runner's progress
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert other.post(f"/jobs/{job}/cancel").status_code == 200
    canceled = wait_job(other, job, timeout=10)
    assert (canceled["State"], canceled["ErrorCode"]) == ("Failure", CANCELED_JOB)
    assert ["endless", "stop", CANCELED] in runner.json("/counters/events")["events"]
    assert other.post(f"/jobs/{job}/resubmit").status_code == 200
    wait_job(runner, job, {"Running"})
    runner, other = other_than_runner(job)
    assert other.post(f"/jobs/{job}/cancel").status_code == 200
    assert wait_job(other, job, timeout=10)["ErrorCode"] == CANCELED_JOB


def test_a_killed_node_s_jobs_end_once_on_the_others(cluster: tuple[Node, PostgresCluster, str]) -> None:
    """A killed node's jobs, running and pending, end on the two others, each once.

    One of A's two workers runs a script's counter of 5 s (``tests/python/jobs.py``) while
    the other archives: the kill lands while a job runs, whenever the archives end."""
    node, postgres, database = cluster
    script = str(SCRIPTS / "jobs.py")
    a = node("a", ConcurrentJobs=2, PythonScript=script)
    study = _upload_study(a, 200, "1.2.826.0.1.3680043.77.3")
    counter = a.post("/counters", json={"name": "killed", "total": 500, "delay": 0.01}).text
    jobs = [counter, *(_archive(a, study) for _ in range(20))]

    def states() -> dict[str, int]:
        return dict(_rows(postgres, database, "SELECT state, count(*) FROM ClusterJobs GROUP BY state"))

    deadline = time.monotonic() + 30
    while not (states().get("Success", 0) >= 2
               and _rows(postgres, database, "SELECT 1 FROM ClusterJobs WHERE id=%s AND state='Running'", counter)):
        assert time.monotonic() < deadline, states()
        time.sleep(0.01)
    a.kill()
    left = states()
    assert left.get("Running", 0) >= 1 and left.get("Success", 0) < len(jobs), left  # killed mid-run

    b, c = node("b", PythonScript=script), node("c", PythonScript=script)
    for job in jobs:
        assert wait_job(b, job, timeout=40)["State"] == "Success"
    # Once each: no job succeeded twice (A's last events may be lost with it: it sends them
    # every 0.2 s), none failed, and B and C ran every job A had not finished (their last
    # events reach the database within 0.2 s of the jobs' ends).
    deadline = time.monotonic() + 5
    while True:
        successes = dict(_rows(postgres, database, "SELECT jobId, count(*) FROM ClusterJobEvents "
                                                   "WHERE kind='job_success' GROUP BY jobId"))
        if len(successes) >= len(jobs) - left.get("Success", 0) or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert set(successes.values()) == {1} and len(successes) >= len(jobs) - left.get("Success", 0)
    assert not _rows(postgres, database, "SELECT 1 FROM ClusterJobEvents WHERE kind='job_failure'")
    for job in jobs[1:]:
        for server in (b, c):
            answer = server.get(f"/jobs/{job}/archive")
            assert answer.status_code == 200, (job, answer.text)
        assert len(zipfile.ZipFile(io.BytesIO(answer.content)).namelist()) == 200
    assert "taken over" not in b.log() + c.log()  # A is dead: no lease was lost by a live node


def test_a_node_killed_and_started_again_resumes_its_jobs_within_seconds(
        cluster: tuple[Node, PostgresCluster, str], monkeypatch: pytest.MonkeyPatch) -> None:
    """A single node on PostgreSQL, killed mid-job: its new process is another node, and the
    old one's leases (10 minutes here) end seconds after PostgreSQL saw its connections close,
    so the restarted node finishes the jobs within seconds, each once.

    The job killed is a script's counter of 3 s (``tests/python/jobs.py``), so that the kill
    lands while it runs: between two short archives, no job may be running."""
    monkeypatch.setenv("ISENGARD_JOBS_LEASE_SECONDS", "600")
    node, postgres, database = cluster
    a = node("a", ConcurrentJobs=1, PythonScript=str(SCRIPTS / "jobs.py"))
    study = _upload_study(a, 100, "1.2.826.0.1.3680043.77.6")
    counter = a.post("/counters", json={"name": "killed", "total": 300, "delay": 0.01}).text
    archives = [_archive(a, study) for _ in range(3)]
    deadline = time.monotonic() + 30
    while not _rows(postgres, database, "SELECT 1 FROM ClusterJobs WHERE id=%s AND state='Running'", counter):
        assert time.monotonic() < deadline
        time.sleep(0.01)
    a.kill()
    left = dict(_rows(postgres, database, "SELECT state, count(*) FROM ClusterJobs GROUP BY state"))
    assert left == {"Running": 1, "Pending": 3}, left
    started = time.monotonic()
    a.start()
    for job in [counter, *archives]:
        assert wait_job(a, job, timeout=60)["State"] == "Success"
    assert time.monotonic() - started < 30  # far from the lease
    successes = dict(_rows(postgres, database, "SELECT jobId, count(*) FROM ClusterJobEvents "
                                               "WHERE kind='job_success' GROUP BY jobId"))
    assert set(successes.values()) == {1}
    for job in archives:
        archive = a.get(f"/jobs/{job}/archive")
        assert archive.status_code == 200 and len(zipfile.ZipFile(io.BytesIO(archive.content)).namelist()) == 100


def test_a_node_sweeps_the_shared_folder_of_the_zips_no_job_of_the_cluster_names(
        cluster: tuple[Node, PostgresCluster, str], tmp_path: Path) -> None:
    """The orphans (here, a ZIP left by a job that ``--no-jobs`` dropped with its row) go when
    a node starts its first archive job; the outputs of every node's saved jobs stay."""
    node, postgres, database = cluster
    a = node("a")
    study = _upload_study(a, 3, "1.2.826.0.1.3680043.77.7")
    kept = _archive(a, study)
    wait_job(a, kept)
    dropped = _archive(a, study)
    wait_job(a, dropped)
    a.stop()
    (orphan,) = _rows(postgres, database, "SELECT document::json->'Job'->>'File' FROM ClusterJobs WHERE id=%s",
                      dropped)[0]
    with postgres.connect(database) as connection:
        connection.execute("DELETE FROM ClusterJobs WHERE id=%s", (dropped,))
    folder = tmp_path / "storage" / "jobs"
    assert (folder / orphan).exists()
    b = node("b")
    assert (folder / orphan).exists()  # swept when the node's first archive job starts
    wait_job(b, _archive(b, study))
    assert not (folder / orphan).exists()
    assert "Removing the orphaned archive" in b.log()
    archive = b.get(f"/jobs/{kept}/archive")
    assert archive.status_code == 200 and len(zipfile.ZipFile(io.BytesIO(archive.content)).namelist()) == 3


def test_a_synchronous_caller_is_answered_when_another_node_ran_its_job(
        cluster: tuple[Node, PostgresCluster, str]) -> None:
    """A synchronous job runs on its caller's node, unless it was paused and resumed: then the
    first free worker of the cluster takes it, here the other node's (the caller's only one is
    busy), and the caller is answered when that node ends it."""
    node, postgres, database = cluster
    nodes = [node(name, ConcurrentJobs=1, PythonScript=str(SCRIPTS / "jobs.py")) for name in ("a", "b")]
    study = _upload_study(nodes[0], 2, "1.2.826.0.1.3680043.77.4")
    endless = nodes[0].post("/counters", json={"name": "busy", "total": 10**9, "delay": 0.01}).text
    wait_job(nodes[0], endless, {"Running"})
    caller = _runner(postgres, database, endless, nodes)
    other = nodes[1] if caller is nodes[0] else nodes[0]
    answers: list[requests.Response] = []
    call = threading.Thread(target=lambda: answers.append(caller.post(
        f"/studies/{study}/modify", json={"Replace": {"StudyDescription": "Elsewhere"}})))
    call.start()
    deadline = time.monotonic() + 10
    while not (waiting := [d["ID"] for d in other.json("/jobs?expand") if d["Type"] == "ResourceModification"]):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    job = waiting[0]
    assert other.json(f"/jobs/{job}")["State"] == "Pending"  # held for the caller's busy node
    assert other.post(f"/jobs/{job}/pause").status_code == 200
    wait_job(other, job, {"Paused"})
    assert other.post(f"/jobs/{job}/resume").status_code == 200
    call.join(timeout=30)
    assert answers and answers[0].status_code == 200, answers
    answer = answers[0].json()
    assert answer["Type"] == "Study" and answer["Path"] == f"/studies/{answer['ID']}"
    assert caller.json(f"/studies/{answer['ID']}")["MainDicomTags"]["StudyDescription"] == "Elsewhere"
    assert other.process is not None
    deadline = time.monotonic() + 5
    while not (ran := _rows(postgres, database, "SELECT node FROM ClusterJobEvents WHERE jobId=%s "
                                                "AND kind='job_running'", job)):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert [f"-{other.process.pid}-" in name for (name,) in ran] == [True]
    assert other.post(f"/jobs/{endless}/cancel").status_code == 200


def test_a_stalled_runner_loses_its_job_to_another_node_which_ends_it_once(
        cluster: tuple[Node, PostgresCluster, str]) -> None:
    """A node frozen (SIGSTOP) beyond its lease: another node takes its job over from the saved
    position; woken up, the first node drops its run without saving or announcing it."""
    node, postgres, database = cluster
    nodes = [node(name, PythonScript=str(SCRIPTS / "jobs.py")) for name in ("a", "b")]
    job = nodes[0].post("/counters", json={"name": "frozen", "total": 400, "delay": 0.01}).text
    wait_job(nodes[0], job, {"Running"})
    stalled = _runner(postgres, database, job, nodes)
    other = nodes[1] if stalled is nodes[0] else nodes[0]
    assert stalled.process is not None
    stalled.process.send_signal(signal.SIGSTOP)
    try:
        deadline = time.monotonic() + 15
        while _runner(postgres, database, job, nodes) is stalled:
            assert time.monotonic() < deadline
            time.sleep(0.1)
    finally:
        stalled.process.send_signal(signal.SIGCONT)
    done = wait_job(other, job, timeout=30)
    assert (done["State"], done["Content"]["Position"]) == ("Success", 400)
    deadline = time.monotonic() + 5
    while "was taken over by another node" not in stalled.log():
        assert time.monotonic() < deadline
        time.sleep(0.1)
    time.sleep(0.5)  # the events of both nodes are in the database
    successes = _rows(postgres, database, "SELECT node FROM ClusterJobEvents WHERE jobId=%s "
                                          "AND kind='job_success'", job)
    assert len(successes) == 1 and f"-{other.process.pid}-" in successes[0][0]
    assert ["frozen", "stop", SUCCESS] not in stalled.json("/counters/events")["events"]


def test_jobs_a_node_saved_before_the_cluster_join_its_queue(cluster: tuple[Node, PostgresCluster, str]) -> None:
    """The ``Jobs`` table of a single node's ``SaveJobs`` (an index written before the cluster
    queue) is moved into the queue at start-up: its pending jobs run, its finished ones show."""
    node, postgres, database = cluster
    a = node("a")
    study = _upload_study(a, 2, "1.2.826.0.1.3680043.77.5")
    finished = _archive(a, study)
    wait_job(a, finished)
    a.stop()
    saved = json.loads(_rows(postgres, database, "SELECT document FROM ClusterJobs WHERE id=%s", finished)[0][0])
    legacy = {k: v for k, v in saved.items() if k not in ("Outputs", "Progress", "Content", "EffectiveRuntime")}
    pending = dict(legacy, State="Pending", CompletionTime=None, Job=dict(legacy["Job"], Complete=False))
    with postgres.connect(database) as connection:
        connection.execute("DELETE FROM ClusterJobs")
        connection.execute("INSERT INTO Jobs VALUES(%s, %s), (%s, %s)", (
            "saved-finished", json.dumps(legacy), "saved-pending", json.dumps(pending)))
    a.start()
    assert a.json("/jobs/saved-finished")["State"] == "Success"
    assert wait_job(a, "saved-pending")["State"] == "Success"
    assert len(zipfile.ZipFile(io.BytesIO(a.get("/jobs/saved-pending/archive").content)).namelist()) == 2
    assert _rows(postgres, database, "SELECT count(*) FROM Jobs") == [(0,)]
