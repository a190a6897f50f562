"""Custom jobs of Python scripts (``orthanc.CreateJob``): in ``/jobs``, pausable, cancellable,
resubmittable, saved and restored through the script's unserializer like the built-in jobs.

The script is ``tests/python/jobs.py``: counters that step every ``delay`` seconds.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from test_python_scripting import SCRIPTS, scripted, wait_for

from conftest import Isengard

#: orthanc.JobStopReason and the error codes of /jobs.
SUCCESS, PAUSED, FAILURE, CANCELED = 1, 2, 3, 4
PLUGIN_ERROR, CANCELED_JOB = 1, 37


def submit(server: Isengard, **spec: Any) -> str:
    answer = server.post("/counters", json=spec)
    assert answer.status_code == 200, answer.text
    return answer.text


def state(server: Isengard, job_id: str, wanted: str) -> dict[str, Any]:
    return wait_for(lambda: (lambda job: job if job["State"] == wanted else None)(server.json(f"/jobs/{job_id}")))


def events(server: Isengard, name: str) -> list[list[Any]]:
    return [event[1:] for event in server.json("/counters/events")["events"] if event[0] == name]


def test_script_jobs_live_in_the_engine_and_survive_a_restart(tmp_path: Path) -> None:
    server = scripted(tmp_path, SCRIPTS / "jobs.py").start()
    try:
        checks = server.json("/counters/events")["checks"]
        assert checks == {"construct": ["ValueError"], "no_type": ["ValueError"], "not_callable": ["ValueError"]}

        done = submit(server, name="done", total=3, priority=7)
        job = state(server, done, "Success")
        assert (job["Type"], job["Priority"], job["Progress"], job["Content"]) == (
            "PythonCounter", 7, 100, {"Name": "done", "Position": 3})
        assert done in server.json("/jobs")
        assert server.json("/counters/events")["checks"]["twice"] == ["OrthancException", 6]
        assert wait_for(lambda: events(server, "done")) == [["stop", SUCCESS]]

        failed = submit(server, name="failed", total=5, fail_at=2)
        assert state(server, failed, "Failure")["ErrorCode"] == PLUGIN_ERROR
        assert wait_for(lambda: events(server, "failed")) == [["stop", FAILURE]]

        slow = submit(server, name="slow", total=100000, delay=0.01)
        wait_for(lambda: server.json(f"/jobs/{slow}")["Content"]["Position"] > 0)
        assert server.post(f"/jobs/{slow}/pause", "").status_code == 200
        paused = state(server, slow, "Paused")["Content"]["Position"]
        assert wait_for(lambda: events(server, "slow")) == [["stop", PAUSED]]
        assert server.post(f"/jobs/{slow}/resume", "").status_code == 200
        wait_for(lambda: server.json(f"/jobs/{slow}")["Content"]["Position"] > paused)
        assert server.post(f"/jobs/{slow}/cancel", "").status_code == 200
        assert state(server, slow, "Failure")["ErrorCode"] == CANCELED_JOB
        assert server.post(f"/jobs/{slow}/resubmit", "").status_code == 200
        wait_for(lambda: server.json(f"/jobs/{slow}")["State"] == "Running")
        assert server.post(f"/jobs/{slow}/pause", "").status_code == 200
        position = state(server, slow, "Paused")["Content"]["Position"]
        happened = events(server, "slow")
        assert happened[:3] == [["stop", PAUSED], ["stop", CANCELED], ["reset", happened[2][1]]]
        assert happened[2][1] > paused and happened[3:] == [["stop", PAUSED]]

        unsaved = submit(server, name="unsaved", total=100000, delay=0.01, saved=False)
        assert server.post(f"/jobs/{unsaved}/pause", "").status_code == 200
        state(server, unsaved, "Paused")
    finally:
        server.stop()

    server.start()
    try:
        jobs = server.json("/jobs")
        assert unsaved not in jobs  # its get_serialized answers None: never saved, as in Orthanc
        restored = server.json(f"/jobs/{slow}")
        assert (restored["State"], restored["Type"], restored["Content"]) == (
            "Paused", "PythonCounter", {"Name": "slow", "Position": position})
        assert server.json(f"/jobs/{done}")["State"] == "Success"
        unserialized = events(server, "slow")[0]
        assert unserialized[0] == "unserialize" and unserialized[1]["Type"] == "PythonCounter"
        assert server.post(f"/jobs/{slow}/resume", "").status_code == 200
        wait_for(lambda: server.json(f"/jobs/{slow}")["Content"]["Position"] > position)
        assert server.post(f"/jobs/{slow}/cancel", "").status_code == 200
        state(server, slow, "Failure")
    finally:
        server.stop()
