"""Durability and process life: an instance is fully stored or absent, even after kill -9."""

from __future__ import annotations

import io
import threading
import time
from pathlib import Path

import pydicom
import requests

from conftest import Isengard, sample

BASE = sample("PatientIdsCollision/Image1.dcm")


def _variants(count: int) -> list[bytes]:
    """Distinct instances (new SOPInstanceUID, a few series) built from one real file."""
    ds = pydicom.dcmread(BASE)
    files = []
    for i in range(count):
        ds.SOPInstanceUID = f"1.2.3.4.5.{i + 1}"
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.SeriesInstanceUID = f"1.2.3.4.6.{i % 4}"
        buffer = io.BytesIO()
        ds.save_as(buffer, enforce_file_format=True)
        files.append(buffer.getvalue())
    return files


def _stored_files(storage: Path) -> set[str]:
    return {p.name for p in storage.glob("??/??/*") if p.is_file()}


def test_kill_9_during_ingest_leaves_no_orphan_and_no_dangling_row(tmp_path: Path) -> None:
    server = Isengard(tmp_path / "node").start()
    stop = threading.Event()
    sent: list[int] = []

    def upload_forever() -> None:
        session = requests.Session()
        for data in _variants(400):
            if stop.is_set():
                return
            try:
                session.post(server.url + "/instances", data=data, timeout=10)
                sent.append(1)
            except requests.RequestException:
                return

    workers = [threading.Thread(target=upload_forever) for _ in range(4)]
    for worker in workers:
        worker.start()
    deadline = time.monotonic() + 20
    while len(sent) < 40 and time.monotonic() < deadline:
        time.sleep(0.05)
    server.kill()
    stop.set()
    for worker in workers:
        worker.join()
    assert sent, "no upload went through before the kill"

    server.start()
    instances = server.json("/instances")
    assert instances, "the instances committed before the kill are gone"
    uuids = set()
    for instance in instances:
        file = server.get(f"/instances/{instance}/file")
        assert file.status_code == 200
        pydicom.dcmread(io.BytesIO(file.content))
        uuids.add(server.json(f"/instances/{instance}")["FileUuid"])
    storage = Path(server.config["StorageDirectory"])
    assert _stored_files(storage) == uuids
    # Nothing staged is left: only the running node's own folder and its lock.
    assert [p.name for p in (storage / "tmp").rglob("*") if p.is_file()] == [".lock"]
    assert server.json("/statistics")["CountInstances"] == len(instances)
    assert server.stop() == 0


def test_sigterm_stops_cleanly_and_data_survives(tmp_path: Path) -> None:
    server = Isengard(tmp_path / "node").start()
    answer = server.upload(BASE)
    assert server.stop() == 0
    assert "Isengard is stopping" in server.log()
    server.start()
    assert server.json("/instances") == [answer["ID"]]
    assert server.get(f"/instances/{answer['ID']}/file").content == BASE.read_bytes()
    assert server.stop() == 0


def test_shutdown_route(tmp_path: Path) -> None:
    server = Isengard(tmp_path / "node").start()
    assert server.post("/tools/shutdown").json() == {}
    assert server.process is not None
    assert server.process.wait(timeout=20) == 0


def test_reset_restarts_with_reread_configuration(tmp_path: Path) -> None:
    server = Isengard(tmp_path / "node").start()
    config = server.config_path.read_text().replace('"IsengardTest"', '"Renamed"')
    server.config_path.write_text(config)
    assert server.post("/tools/reset").json() == {}
    deadline = time.monotonic() + 20
    name = None
    while time.monotonic() < deadline:
        try:
            name = server.get("/system").json()["Name"]
            if name == "Renamed":
                break
        except requests.RequestException:
            pass
        time.sleep(0.2)
    assert name == "Renamed"
    assert server.stop() == 0
