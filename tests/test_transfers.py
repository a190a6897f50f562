"""The transfers accelerator between real Isengard processes: push and pull of a study of
a thousand generated instances, atomicity on the receiver (nothing before the commit,
nothing after an interrupted sender, nothing on an MD5 mismatch), and the jobs' life cycle."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from pydicom.uid import generate_uid

from conftest import Isengard
from helpers import ct_slice, orthanc_error, wait_job

SMALL = 1000
#: Small buckets, so that a few hundred small instances make many buckets and a large
#: instance is split.
TRANSFERS = {"Threads": 3, "BucketSize": 64, "PeerConnectivityTimeout": 2}


def upload_study(server: Isengard, count: int, large: int = 0) -> str:
    """A study of ``count`` small instances and ``large`` ones of ~300 KB; its Orthanc ID."""
    study, series = generate_uid(), generate_uid()
    files = [ct_slice(study, series, n) for n in range(count)]
    files += [ct_slice(study, series, count + n, pixels=390) for n in range(large)]
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(server.upload, files))
    return answers[0]["ParentStudy"]


def md5s(server: Isengard, study: str) -> dict[str, str]:
    """Each instance of the study by ID, with the MD5 of its file."""
    def md5(instance: str) -> tuple[str, str]:
        return instance, hashlib.md5(server.get(f"/instances/{instance}/file").content).hexdigest()
    with ThreadPoolExecutor(4) as pool:
        return dict(pool.map(md5, [i["ID"] for i in server.json(f"/studies/{study}/instances")]))


def peers(*servers: Isengard, **extra: Any) -> dict[str, Any]:
    return {"OrthancPeers": {f"peer{n}": {"Url": s.url + "/", **extra} for n, s in enumerate(servers)}}


def staged_files(server: Isengard) -> list[Path]:
    """What the server stages, in its node's staging folder (``os.walk`` ignores folders
    removed while it looks)."""
    return [Path(folder) / name for root in (server.workdir / "storage" / "tmp").glob("*/transfers")
            for folder, _, names in os.walk(root) for name in names]


def wait_until(condition: Callable[[], bool], timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition never met"
        time.sleep(0.05)


@pytest.fixture
def pair(make_isengard: Callable[..., Isengard]) -> tuple[Isengard, Isengard]:
    """A receiver, and a sender that knows it as ``peer0``."""
    receiver = make_isengard(Transfers=TRANSFERS)
    sender = make_isengard(Transfers=TRANSFERS, **peers(receiver))
    return sender, receiver


def test_push_moves_a_study_with_identical_files(pair: tuple[Isengard, Isengard]) -> None:
    sender, receiver = pair
    study = upload_study(sender, SMALL, large=2)
    answer = sender.post("/transfers/send", json.dumps({
        "Resources": [{"Level": "Study", "ID": study}], "Peer": "peer0", "Compression": "gzip"}))
    assert answer.status_code == 200, answer.text
    job = answer.json()
    assert job["Path"] == f"/jobs/{job['ID']}"
    document = wait_job(sender, job["ID"])
    assert document["State"] == "Success", document
    assert document["Type"] == "PushTransfer"
    content = document["Content"]
    assert content["TotalInstances"] == SMALL + 2 and content["Peer"] == "peer0"
    assert content["Compression"] == "gzip" and content["Resources"] == [{"Level": "Study", "ID": study}]
    assert content["CompletedHttpQueries"] > 10
    assert md5s(receiver, study) == md5s(sender, study)
    assert staged_files(receiver) == []


def test_pull_and_send_in_pull_mode_between_three_servers(make_isengard: Callable[..., Isengard]) -> None:
    source = make_isengard(Transfers=TRANSFERS)
    puller = make_isengard(Transfers=TRANSFERS, OrthancPeers={"source": {"Url": source.url + "/"}})
    study = upload_study(source, SMALL, large=1)
    expected = md5s(source, study)
    answer = puller.post("/transfers/pull", json.dumps({
        "Resources": [{"Level": "Study", "ID": study}], "Peer": "source", "Compression": "none",
        "Synchronous": True}))
    assert answer.status_code == 200, answer.text
    assert answer.json()["TotalInstances"] == SMALL + 1
    assert md5s(puller, study) == expected

    # Pull mode of /transfers/send: the target has the source as "back", the source knows the
    # target's name for it (RemoteSelf), so the target pulls.
    target = make_isengard(Transfers=TRANSFERS, OrthancPeers={"back": {"Url": source.url + "/"}})
    assert source.put("/peers/target", json.dumps({"Url": target.url, "RemoteSelf": "back"})).status_code == 200
    assert source.put("/peers/puller", json.dumps({"Url": puller.url})).status_code == 200
    assert source.put("/peers/nobody", json.dumps({"Url": "http://127.0.0.1:9/"})).status_code == 200
    assert source.json("/transfers/peers") == {"nobody": "disabled", "puller": "installed",
                                               "target": "bidirectional"}
    answer = source.post("/transfers/send", json.dumps({
        "Resources": [{"Level": "Series", "ID": source.json(f"/studies/{study}")["Series"][0]}],
        "Peer": "target", "Compression": "gzip"}))
    assert answer.status_code == 200, answer.text
    remote = answer.json()
    assert remote["Peer"] == "target" and remote["URL"] == f"{target.url}/jobs/{remote['RemoteJob']}"
    document = wait_job(target, remote["RemoteJob"])
    assert document["State"] == "Success" and document["Type"] == "PullTransfer", document
    assert len(document["Content"]["Originator"]) == 36
    assert md5s(target, study) == expected
    assert staged_files(puller) == staged_files(target) == []


def test_receiver_wire_protocol_is_atomic(make_isengard: Callable[..., Isengard]) -> None:
    """The plugin's push protocol driven by hand: nothing visible before the commit, an MD5
    mismatch stores nothing, an abandoned transaction is discarded."""
    sender = make_isengard()
    receiver = make_isengard(Transfers={"PeerConnectivityTimeout": 1})
    study = upload_study(sender, 5)
    lookup = sender.post("/transfers/lookup", json.dumps([{"Level": "Study", "ID": study}])).json()
    assert lookup["CountInstances"] == 5 and len(lookup["Originator"]) == 36
    instances = lookup["Instances"]
    assert int(lookup["TotalSize"]) == sum(int(i["Size"]) for i in instances)
    first = instances[0]
    # One chunk across two instances, gzipped: the tail of the first, the head of the second.
    both = sender.get(f"/instances/{first['ID']}/file").content + \
        sender.get(f"/instances/{instances[1]['ID']}/file").content
    chunk = sender.get(f"/transfers/chunks/{first['ID']}.{instances[1]['ID']}",
                       params={"offset": "100", "size": "1000", "compression": "gzip"})
    assert chunk.headers["Content-Type"] == "application/gzip"
    assert gzip.decompress(chunk.content) == both[100:1100]

    def push(infos: list[dict[str, str]]) -> str:
        buckets = [[{"ID": i["ID"], "Offset": "0", "Size": i["Size"]}] for i in infos]
        answer = receiver.post("/transfers/push", json.dumps(
            {"Instances": infos, "Buckets": buckets, "Compression": "none"}))
        assert answer.status_code == 200, answer.text
        path = answer.json()["Path"]
        for n, info in enumerate(infos):
            body = sender.get(f"/instances/{info['ID']}/file").content
            assert receiver.put(f"{path}/{n}", body).status_code == 200
        return path

    path = push(instances)
    assert receiver.json("/instances") == [] and receiver.json("/changes")["Changes"] == []
    assert receiver.post(f"{path}/commit").status_code == 200
    assert sorted(receiver.json("/instances")) == sorted(i["ID"] for i in instances)
    receiver.clear()

    wrong = [*instances[:-1], {**instances[-1], "MD5": "0" * 32}]
    path = push(wrong)
    status, code, details = orthanc_error(receiver.post(f"{path}/commit"))
    assert (status, code) == (500, 20) and "Bad MD5" in details
    assert receiver.json("/instances") == [] and staged_files(receiver) == []
    assert receiver.post(f"{path}/commit").status_code == 404

    path = push(instances[:2])
    assert len(staged_files(receiver)) == 2
    wait_until(lambda: staged_files(receiver) == [], timeout=5)
    assert receiver.put(f"{path}/0", b"x").status_code == 404
    assert receiver.json("/instances") == []

    assert orthanc_error(receiver.post("/transfers/push", "{}"))[:2] == (400, 15)
    assert orthanc_error(receiver.post("/transfers/push", json.dumps(
        {"Instances": [], "Buckets": [], "Compression": "zip"})))[:2] == (400, 3)
    assert orthanc_error(sender.post("/transfers/send", json.dumps(
        {"Resources": [], "Peer": "nope", "Compression": "none"})))[:2] == (404, 17)
    assert orthanc_error(sender.post("/transfers/lookup", json.dumps(
        [{"Level": "Study", "ID": "nope"}])))[:2] == (404, 17)


SLOW = {"Threads": 1, "BucketSize": 1, "PeerConnectivityTimeout": 1}


def test_sender_killed_leaves_nothing_then_the_restored_job_completes(
        make_isengard: Callable[..., Isengard]) -> None:
    # Buckets of ~5 small instances, two at a time: the sender is killed well before the end.
    transfers = {"Threads": 2, "BucketSize": 8, "PeerConnectivityTimeout": 1}
    receiver = make_isengard(Transfers=transfers)
    sender = make_isengard(Transfers=transfers, **peers(receiver))
    study = upload_study(sender, SMALL)
    job = sender.post("/transfers/send", json.dumps({
        "Resources": [{"Level": "Study", "ID": study}], "Peer": "peer0", "Compression": "none"})).json()["ID"]
    wait_until(lambda: sender.json(f"/jobs/{job}")["Content"].get("CompletedHttpQueries", 0) > 20)
    sender.kill()
    assert staged_files(receiver) != []
    wait_until(lambda: staged_files(receiver) == [])
    assert receiver.json("/instances") == [] and receiver.json("/changes")["Changes"] == []

    sender.start()  # SaveJobs: the job is back, and starts over
    assert wait_job(sender, job)["State"] == "Success"
    assert md5s(receiver, study) == md5s(sender, study)


def test_pause_resume_cancel_resubmit(make_isengard: Callable[..., Isengard]) -> None:
    receiver = make_isengard(Transfers=SLOW)
    sender = make_isengard(Transfers=SLOW, JobsMaxRetries=0, **peers(receiver))
    study = upload_study(sender, 150)
    body = json.dumps({"Resources": [{"Level": "Study", "ID": study}], "Peer": "peer0", "Compression": "gzip"})
    job = sender.post("/transfers/send", body).json()["ID"]
    wait_until(lambda: sender.json(f"/jobs/{job}")["Content"].get("CompletedHttpQueries", 0) > 5)
    assert sender.post(f"/jobs/{job}/pause").status_code == 200
    paused = wait_job(sender, job, ("Paused",))
    assert 0 < paused["Progress"] < 100
    assert sender.post(f"/jobs/{job}/resume").status_code == 200
    assert wait_job(sender, job)["State"] == "Success"
    assert len(receiver.json("/instances")) == 150
    receiver.clear()

    job = sender.post("/transfers/send", body).json()["ID"]
    wait_until(lambda: sender.json(f"/jobs/{job}")["Content"].get("CompletedHttpQueries", 0) > 5)
    assert sender.post(f"/jobs/{job}/cancel").status_code == 200
    assert wait_job(sender, job)["ErrorCode"] == 37
    wait_until(lambda: staged_files(receiver) == [], timeout=3)
    assert receiver.json("/instances") == []

    receiver.stop()  # a peer that is down: no retry allowed, the job fails; resubmitted, it completes
    job = sender.post("/transfers/send", body).json()["ID"]
    failed = wait_job(sender, job)
    assert failed["State"] == "Failure" and failed["ErrorCode"] == 9, failed
    receiver.start()
    assert sender.post(f"/jobs/{job}/resubmit").status_code == 200
    assert wait_job(sender, job)["State"] == "Success"
    assert len(receiver.json("/instances")) == 150


def test_retry_while_the_receiver_restarts(make_isengard: Callable[..., Isengard]) -> None:
    receiver = make_isengard(Transfers=SLOW)
    sender = make_isengard(Transfers=SLOW, StoreJobRetryDelay=1, **peers(receiver))
    study = upload_study(sender, 60)
    receiver.stop()
    job = sender.post("/transfers/send", json.dumps({
        "Resources": [{"Level": "Study", "ID": study}], "Peer": "peer0", "Compression": "none"})).json()["ID"]
    wait_job(sender, job, ("Retry",))
    receiver.start()
    assert wait_job(sender, job)["State"] == "Success"
    assert len(receiver.json("/instances")) == 60
