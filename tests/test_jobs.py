"""The jobs engine seen over REST: states, priorities, history, outputs, persistence, SSE."""

from __future__ import annotations

import io
import threading
import time
import zipfile
from pathlib import Path

import pydicom
import pytest
import requests

from conftest import Isengard, free_port, sample
from helpers import wait_job

BASE = sample("PatientIdsCollision/Image1.dcm")


def _study_zip(count: int, study_uid: str) -> bytes:
    """A ZIP of ``count`` instances of one new study, built from one small real file."""
    ds = pydicom.dcmread(BASE)
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = study_uid + ".1"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for i in range(count):
            ds.SOPInstanceUID = f"{study_uid}.1.{i + 1}"
            ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
            ds.InstanceNumber = i + 1
            one = io.BytesIO()
            ds.save_as(one, enforce_file_format=True)
            archive.writestr(f"{i}.dcm", one.getvalue())
    return buffer.getvalue()


def _upload_study(server: Isengard, count: int, study_uid: str) -> str:
    answers = server.post("/instances", _study_zip(count, study_uid)).json()
    assert len(answers) == count
    return answers[0]["ParentStudy"]


def _submit(server: Isengard, study: str, priority: int = 0) -> str:
    answer = server.post(f"/studies/{study}/archive", json={"Asynchronous": True, "Priority": priority})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["Path"] == f"/jobs/{body['ID']}"
    return body["ID"]


def _block(server: Isengard, study: str) -> str:
    """A slow job that keeps the single worker busy until it is canceled (it publishes nothing
    before its last step, so canceling it leaves the index as it was)."""
    answer = server.post(f"/studies/{study}/modify", json={"Asynchronous": True,
                                                           "Replace": {"StudyDescription": "Busy"}})
    job = answer.json()["ID"]
    wait_job(server, job, {"Running"})
    return job


def _action(server: Isengard, job: str, action: str) -> requests.Response:
    return server.post(f"/jobs/{job}/{action}")


@pytest.fixture(scope="module")
def busy(tmp_path_factory: pytest.TempPathFactory):
    """One worker, a 500-instance study (slow archive) and a 2-instance one (fast archive)."""
    server = Isengard(tmp_path_factory.mktemp("jobs"), ConcurrentJobs=1, MediaArchiveSize=20).start()
    big = _upload_study(server, 500, "1.2.826.0.1.3680043.99.1")
    small = _upload_study(server, 2, "1.2.826.0.1.3680043.99.2")
    yield server, big, small
    server.stop()


def _idle(server: Isengard) -> None:
    for job in server.json("/jobs"):
        _action(server, job, "cancel")


def test_async_job_document(busy) -> None:
    server, _, small = busy
    _idle(server)
    job = _submit(server, small)
    document = wait_job(server, job, {"Success"})
    assert set(document) >= {"CompletionTime", "Content", "CreationTime", "EffectiveRuntime", "ErrorCode",
                             "ErrorDescription", "ErrorDetails", "ID", "Priority", "Progress", "State",
                             "Timestamp", "Type"}
    assert document["ErrorCode"] == 0 and document["ErrorDescription"] == "Success"
    assert document["ErrorDetails"] == "" and document["Progress"] == 100 and document["Type"] == "Archive"
    assert len(document["CreationTime"]) == len("20261122T041017.007453")
    assert job in server.json("/jobs")
    assert job in [d["ID"] for d in server.json("/jobs?expand")]
    assert server.get("/jobs/nonexistent").status_code == 404


def test_pause_resume_cancel_resubmit_transitions(busy) -> None:
    server, big, small = busy
    _idle(server)
    blocker = _block(server, big)
    job = _submit(server, small)
    assert server.json(f"/jobs/{job}")["State"] == "Pending"
    paused = _action(server, job, "pause")
    assert paused.status_code == 200 and paused.json() == {}
    assert server.json(f"/jobs/{job}")["State"] == "Paused"
    assert _action(server, job, "pause").status_code == 200
    assert _action(server, job, "resubmit").status_code == 400
    assert _action(server, job, "resume").status_code == 200
    assert server.json(f"/jobs/{job}")["State"] == "Pending"
    refused = _action(server, job, "resume")
    assert refused.status_code == 400 and refused.content == b""
    assert _action(server, job, "cancel").status_code == 200
    canceled = server.json(f"/jobs/{job}")
    assert (canceled["State"], canceled["ErrorCode"], canceled["ErrorDescription"], canceled["ErrorDetails"]) == (
        "Failure", 37, "This job was canceled", "")
    assert "CompletionTime" in canceled
    assert _action(server, job, "resubmit").status_code == 200
    assert server.json(f"/jobs/{job}")["State"] == "Pending"
    _action(server, blocker, "cancel")
    wait_job(server, job, {"Success"})
    assert _action(server, job, "resubmit").status_code == 400
    assert _action(server, job, "cancel").status_code == 200
    assert _action(server, job, "pause").status_code == 200
    assert server.json(f"/jobs/{job}")["State"] == "Success"
    for action in ("pause", "resume", "cancel", "resubmit"):
        assert _action(server, "nonexistent", action).status_code == 400


def test_higher_priority_runs_first(busy) -> None:
    server, big, small = busy
    _idle(server)
    blocker = _block(server, big)
    low = [_submit(server, small, priority=0) for _ in range(3)]
    high = _submit(server, small, priority=10)
    _action(server, blocker, "cancel")
    finished = {job: wait_job(server, job, {"Success"})["CompletionTime"] for job in [*low, high]}
    assert min(finished, key=finished.get) == high
    assert sorted(low, key=finished.get) == low


def test_outputs_download_and_delete(busy) -> None:
    server, _, small = busy
    _idle(server)
    job = _submit(server, small)
    wait_job(server, job, {"Success"})
    archive = server.get(f"/jobs/{job}/archive")
    assert archive.status_code == 200 and archive.headers["Content-Type"] == "application/zip"
    assert len(zipfile.ZipFile(io.BytesIO(archive.content)).namelist()) == 2
    missing = server.get(f"/jobs/{job}/nonexistent")
    assert missing.status_code == 404
    assert missing.json()["Details"] == "Job has no such output: nonexistent"
    assert server.delete(f"/jobs/{job}/archive").status_code == 200
    assert server.get(f"/jobs/{job}/archive").status_code == 404
    assert server.json(f"/jobs/{job}")["State"] == "Success"


def test_delete_job_removes_finished_and_cancels_live(busy) -> None:
    server, big, small = busy
    _idle(server)
    done = _submit(server, small)
    wait_job(server, done, {"Success"})
    assert server.delete(f"/jobs/{done}").status_code == 200
    assert server.get(f"/jobs/{done}").status_code == 404
    live = _block(server, big)
    assert server.delete(f"/jobs/{live}").status_code == 200
    assert wait_job(server, live, {"Failure"})["ErrorCode"] == 37


def test_synchronous_caller_that_disconnects_does_not_cancel_its_job(busy) -> None:
    server, big, _ = busy
    _idle(server)
    with pytest.raises(requests.exceptions.ReadTimeout):
        requests.post(f"{server.url}/studies/{big}/modify", timeout=0.05,
                      json={"Replace": {"StudyDescription": "Disconnected"}})
    live = [j for j in server.json("/jobs?expand") if j["State"] in ("Pending", "Running")]
    assert [j["Type"] for j in live] == ["ResourceModification"]
    assert wait_job(server, live[0]["ID"], {"Success"}, timeout=120)["Progress"] == 100


def test_events_stream(busy) -> None:
    server, _, small = busy
    _idle(server)
    lines: list[str] = []
    ready = threading.Event()

    def listen() -> None:
        with requests.get(f"{server.url}/jobs/events", stream=True, timeout=20) as stream:
            assert stream.headers["Content-Type"] == "text/event-stream"
            for line in stream.iter_lines(decode_unicode=True):
                ready.set()
                lines.append(line)
                if line == "event: success":
                    return

    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    assert ready.wait(10)
    job = _submit(server, small)
    listener.join(20)
    kinds = [line.split(": ", 1)[1] for line in lines if line.startswith("event: ")]
    assert kinds[0] == "submitted" and kinds[-1] == "success" and "running" in kinds
    assert any(job in line for line in lines if line.startswith("data: "))


def test_history_is_bounded(make_isengard) -> None:
    server = make_isengard(JobsHistorySize=2, ConcurrentJobs=1)  # jobs end in submission order
    study = _upload_study(server, 1, "1.2.826.0.1.3680043.99.3")
    jobs = [_submit(server, study) for _ in range(3)]
    for job in jobs[1:]:
        wait_job(server, job, {"Success"})
    deadline = time.monotonic() + 10
    while server.get(f"/jobs/{jobs[0]}").status_code != 404 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.get(f"/jobs/{jobs[0]}").status_code == 404
    assert sorted(server.json("/jobs")) == sorted(jobs[1:])


def test_jobs_survive_a_clean_restart_and_no_jobs_forgets_them(tmp_path: Path) -> None:
    server = Isengard(tmp_path / "node", ConcurrentJobs=1).start()
    big = _upload_study(server, 300, "1.2.826.0.1.3680043.99.4")
    small = _upload_study(server, 1, "1.2.826.0.1.3680043.99.5")
    done = _submit(server, small)
    wait_job(server, done, {"Success"})
    modify = server.post(f"/studies/{big}/modify", json={"Asynchronous": True,
                                                         "Replace": {"StudyDescription": "Restarted"}})
    running = modify.json()["ID"]
    wait_job(server, running, {"Running"})
    paused = _submit(server, small)
    _action(server, paused, "pause")
    assert server.json(f"/jobs/{running}")["State"] == "Running"
    assert server.stop() == 0
    server.start()
    assert server.json(f"/jobs/{done}")["State"] == "Success"
    assert server.json(f"/jobs/{paused}")["State"] == "Paused"
    assert wait_job(server, running, {"Success"}, timeout=60)["Progress"] == 100
    assert server.stop() == 0
    server.start("--no-jobs")
    assert server.json("/jobs") == []
    assert server.stop() == 0
    server.start()
    assert server.json("/jobs") == []
    assert server.stop() == 0


def test_kill_9_loses_no_submitted_job(tmp_path: Path) -> None:
    server = Isengard(tmp_path / "node", ConcurrentJobs=2, MediaArchiveSize=100, JobsHistorySize=100).start()
    study = _upload_study(server, 20, "1.2.826.0.1.3680043.99.6")
    jobs = [_submit(server, study) for _ in range(50)]
    time.sleep(0.3)
    server.kill()
    server.start()
    for job in jobs:
        wait_job(server, job, {"Success"}, timeout=120)
    listed = server.json("/jobs")
    assert sorted(listed) == sorted(jobs)
    for job in jobs:
        archive = server.get(f"/jobs/{job}/archive")
        assert archive.status_code == 200
        assert len(zipfile.ZipFile(io.BytesIO(archive.content)).namelist()) == 20
    assert server.stop() == 0


def test_events_tell_retry_and_resubmit(make_isengard) -> None:
    """A live jobs page sees a job enter Retry and come back after a resubmit, without polling."""
    server = make_isengard(JobsMaxRetries=5, StoreJobRetryDelay=60,
                           DicomModalities={"nowhere": ["NOWHERE", "127.0.0.1", free_port()]})
    instance = server.upload(sample("Issue143.dcm"))["ID"]
    lines: list[str] = []
    ready = threading.Event()

    def listen() -> None:
        with requests.get(f"{server.url}/jobs/events", stream=True, timeout=20) as stream:
            for line in stream.iter_lines(decode_unicode=True):
                ready.set()
                lines.append(line)
                if line == "event: resubmitted":
                    return

    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    assert ready.wait(10)
    job = server.post("/modalities/nowhere/store", json={"Resources": [instance], "Asynchronous": True}).json()["ID"]
    wait_job(server, job, states=("Retry",))
    assert server.post(f"/jobs/{job}/cancel", data="").status_code == 200
    assert server.post(f"/jobs/{job}/resubmit", data="").status_code == 200
    listener.join(20)
    kinds = [line.split(": ", 1)[1] for line in lines if line.startswith("event: ")]
    assert kinds[:2] == ["submitted", "running"]
    assert kinds.index("retry") < kinds.index("canceled") and kinds[-2:] == ["canceled", "resubmitted"]
    assert '"State": "Retry"' in lines[lines.index("event: retry") + 1]
    server.post(f"/jobs/{job}/cancel", data="")


def test_user_data_is_echoed_and_survives_a_restart(tmp_path: Path) -> None:
    """Orthanc 1.12.9: any job-creating payload takes ``UserData`` (any JSON), which
    ``/jobs/{id}`` shows and the saved job keeps; a job without it shows none."""
    server = Isengard(tmp_path / "node", ConcurrentJobs=1).start()
    study = _upload_study(server, 1, "1.2.826.0.1.3680043.99.7")
    user_data = {"Requester": "ward 4", "Tags": [1, 2.5, None, True]}
    archive = server.post(f"/studies/{study}/archive", json={"Asynchronous": True, "UserData": user_data})
    modify = server.post(f"/studies/{study}/modify", json={"Asynchronous": True, "UserData": "just text",
                                                           "Replace": {"StudyDescription": "U"}})
    plain = _submit(server, study)
    jobs = {archive.json()["ID"]: user_data, modify.json()["ID"]: "just text"}
    for job, expected in jobs.items():
        assert wait_job(server, job, {"Success"})["UserData"] == expected
    assert "UserData" not in wait_job(server, plain, {"Success"})
    assert server.stop() == 0
    server.start()
    for job, expected in jobs.items():
        assert server.json(f"/jobs/{job}")["UserData"] == expected
    assert "UserData" not in server.json(f"/jobs/{plain}")
    assert server.stop() == 0
