"""Deletes are crash-safe like ingest: ``kill -9`` in a large delete leaves no orphan file, and
no file of a live instance is ever removed."""

from __future__ import annotations

import io
import threading
import time
import zipfile
from pathlib import Path

import pydicom
import requests
from pydicom.uid import generate_uid

from conftest import Isengard, sample

INSTANCES = 800


def _patient_zip(patient_id: str, count: int) -> bytes:
    ds = pydicom.dcmread(sample("ColorTestMalaterre.dcm"))
    ds.PatientID = patient_id
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for i in range(count):
            ds.SOPInstanceUID = generate_uid()
            out = io.BytesIO()
            ds.save_as(out)
            archive.writestr(f"{i}.dcm", out.getvalue())
    return buffer.getvalue()


def _files(server: Isengard) -> set[str]:
    root = Path(server.config["StorageDirectory"])
    return {p.name for p in root.glob("??/??/*") if p.is_file()}


def test_kill_during_a_large_delete_leaves_no_orphan_file(tmp_path: Path) -> None:
    server = Isengard(tmp_path / "server").start()
    kept = server.post("/instances", _patient_zip("KEPT", 3)).json()
    doomed = server.post("/instances", _patient_zip("DOOMED", INSTANCES)).json()
    assert len(doomed) == INSTANCES
    patient = doomed[0]["ParentPatient"]
    assert len(_files(server)) == INSTANCES + 3

    def delete() -> None:
        try:
            requests.delete(f"{server.url}/patients/{patient}", timeout=60)
        except requests.RequestException:
            pass  # killed under our feet
    deleter = threading.Thread(target=delete)
    deleter.start()
    while requests.get(f"{server.url}/patients/{patient}", timeout=10).status_code == 200:
        time.sleep(0.001)
    server.kill()
    deleter.join()

    try:
        server.start()
    except requests.ReadTimeout:  # busy machine: the first /system may wait for the start-up
        assert server.process is not None
        server.wait_ready(server.process)
    try:
        assert server.json("/patients") == [kept[0]["ParentPatient"]]
        live = server.json("/instances")
        assert len(live) == 3
        assert len(_files(server)) == 3
        for instance in live:
            assert server.get(f"/instances/{instance}/file").status_code == 200
    finally:
        server.stop()


def test_finds_during_a_large_delete_answer(make_isengard) -> None:
    """A find reads the index as one snapshot: a delete committed between its reads must not
    turn it into a 500 (found by bench/loop_latency.py)."""
    server = make_isengard()
    doomed = server.post("/instances", _patient_zip("DOOMED", 300)).json()
    patient = doomed[0]["ParentPatient"]
    statuses: list[int] = []
    done = threading.Event()

    def find() -> None:
        with requests.Session() as session:
            while not done.is_set():
                statuses.append(session.post(f"{server.url}/tools/find", timeout=60, json={
                    "Level": "Instance", "Query": {"PatientName": "*"}}).status_code)
    finders = [threading.Thread(target=find) for _ in range(2)]
    for finder in finders:
        finder.start()
    time.sleep(0.3)
    assert server.delete(f"/patients/{patient}").status_code == 200
    time.sleep(0.1)
    done.set()
    for finder in finders:
        finder.join()
    assert statuses and set(statuses) == {200}
