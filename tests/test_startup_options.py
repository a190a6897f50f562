"""Configuration forms and options that change how a started server behaves."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pydicom
from pynetdicom import AE, build_context

from conftest import REPO, Isengard, Server, free_port, sample

CT = sample("Formats/Jpeg.dcm")


def _start_with(config_path: Path, http_port: int) -> tuple[subprocess.Popen, Server]:
    process = subprocess.Popen([sys.executable, "-m", "server", str(config_path)], cwd=REPO,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    client = Server(http_port, 0, "")
    client.wait_ready(process)
    return process, client


def test_yaml_configuration(tmp_path: Path) -> None:
    port = free_port()
    config = tmp_path / "orthanc.yaml"
    config.write_text(f"Name: FromYaml\nHttpPort: {port}\nDicomServerEnabled: false\n"
                      f"ListenAddress: 127.0.0.1\nStorageDirectory: {tmp_path / 'storage'}\n")
    process, client = _start_with(config, port)
    try:
        assert client.json("/system")["Name"] == "FromYaml"
    finally:
        process.terminate()
        assert process.wait(20) == 0


def test_folder_of_json_files_with_relative_storage(tmp_path: Path) -> None:
    port = free_port()
    folder = tmp_path / "conf"
    folder.mkdir()
    (folder / "a.json").write_text(json.dumps({"HttpPort": port, "ListenAddress": "127.0.0.1"}))
    (folder / "b.json").write_text('{ // comments are accepted\n "Name": "FromFolder",\n'
                                   ' "DicomServerEnabled": false, "StorageDirectory": "db" }')
    process, client = _start_with(folder, port)
    try:
        assert client.json("/system")["Name"] == "FromFolder"
        client.upload(CT)
        assert list((folder / "db").glob("??/??/*")), "relative StorageDirectory resolves in the folder"
    finally:
        process.terminate()
        assert process.wait(20) == 0


def test_bad_value_stops_start_up_with_one_line(tmp_path: Path) -> None:
    config = tmp_path / "bad.json"
    config.write_text('{"HttpPort": "abc"}')
    result = subprocess.run([sys.executable, "-m", "server", str(config)], cwd=REPO,
                            capture_output=True, text=True, timeout=30)
    assert result.returncode != 0
    message = result.stderr.strip().splitlines()[-1]
    assert "HttpPort" in message and str(config) in message and "abc" in message


def test_separate_index_directory(make_isengard, tmp_path: Path) -> None:
    index = tmp_path / "index-here"
    server = make_isengard(IndexDirectory=str(index))
    server.upload(CT)
    assert (index / "index.sqlite").exists()


def test_a_second_server_on_the_same_index_is_refused(make_isengard, tmp_path: Path) -> None:
    """As Orthanc's, the SQLite index is this process's alone (exclusive locking mode): a
    second server on it stops at start-up with one line, and the first one goes on."""
    index = tmp_path / "shared-index"
    first = make_isengard(IndexDirectory=str(index))
    first.upload(CT)
    config = tmp_path / "second.json"
    config.write_text(json.dumps({"HttpPort": free_port(), "DicomServerEnabled": False,
                                  "ListenAddress": "127.0.0.1", "IndexDirectory": str(index),
                                  "StorageDirectory": str(tmp_path / "second-storage")}))
    result = subprocess.run([sys.executable, "-m", "server", str(config)], cwd=REPO,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    message = result.stderr.strip().splitlines()[-1]
    assert "used by another process" in message and str(index) in message and "IndexDirectory" in message
    assert "Traceback" not in result.stderr
    assert len(first.json("/instances")) == 1
    first.upload(CT)  # still the writer


def test_overwrite_instances(make_isengard) -> None:
    server = make_isengard(OverwriteInstances=True)
    first = server.upload(CT)
    uuid = server.json(f"/instances/{first['ID']}")["FileUuid"]
    again = server.upload(CT)
    assert again["Status"] == "Success" and again["ID"] == first["ID"]
    assert server.json(f"/instances/{first['ID']}")["FileUuid"] != uuid
    assert server.json("/statistics")["CountInstances"] == 1


def test_maximum_storage_size_recycles_oldest_unprotected_patient(make_isengard) -> None:
    server = make_isengard(MaximumStorageSize=1)
    oldest = server.upload(sample("Implicit-vr-us-palette.dcm"))["ParentPatient"]
    protected = server.upload(sample("KarstenHilbertRF.dcm"))["ParentPatient"]
    server.put(f"/patients/{protected}/protected", "1")
    newest = server.upload(sample("2020-08-12-Christopher.dcm"))["ParentPatient"]
    assert sorted(server.json("/patients")) == sorted([protected, newest])
    assert oldest not in server.json("/patients")
    assert int(server.json("/statistics")["TotalDiskSize"]) <= 1024 * 1024


def test_full_storage_when_only_protected_patients_remain(make_isengard) -> None:
    server = make_isengard(MaximumStorageSize=1)
    kept = server.upload(sample("Implicit-vr-us-palette.dcm"))["ParentPatient"]
    server.put(f"/patients/{kept}/protected", "1")
    answer = server.post("/instances", sample("Issue16.dcm").read_bytes())
    assert answer.status_code == 507
    assert answer.json()["OrthancStatus"] == 19
    assert server.json("/patients") == [kept]


def test_errors_without_description(make_isengard) -> None:
    server = make_isengard(HttpDescribeErrors=False)
    answer = server.post("/instances", b"not dicom")
    assert answer.status_code == 400 and answer.content == b""


def test_unknown_sop_class_accepted_when_asked(make_isengard) -> None:
    ds = pydicom.dcmread(CT)
    private_class = "1.2.826.0.1.3680043.99.77.1"
    ds.SOPClassUID = private_class
    ds.file_meta.MediaStorageSOPClassUID = private_class

    def store(server: Isengard) -> int | None:
        ae = AE(ae_title="SCU")
        ae.requested_contexts = [build_context(private_class, ds.file_meta.TransferSyntaxUID)]
        assoc = ae.associate("127.0.0.1", server.dicom_port, ae_title=server.aet)
        if not assoc.is_established:
            return None
        try:
            accepted = [cx for cx in assoc.accepted_contexts if cx.abstract_syntax == private_class]
            return assoc.send_c_store(ds).Status if accepted else None
        finally:
            assoc.release()

    assert store(make_isengard()) is None
    assert store(make_isengard(UnknownSopClassAccepted=True)) == 0


def test_start_up_imports_only_what_serving_needs(tmp_path: Path) -> None:
    """A plain JSON configuration (SQLite index, no script, valid) starts without the libraries
    only some configurations or routes need: each costs tens of ms of every start-up."""
    port = free_port()
    config = tmp_path / "plain.json"
    config.write_text(json.dumps({"HttpPort": port, "DicomPort": free_port(), "ListenAddress": "127.0.0.1",
                                  "StorageDirectory": str(tmp_path / "storage")}))
    process = subprocess.Popen([sys.executable, "-X", "importtime", "-m", "server", str(config)], cwd=REPO,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        client = Server(port, 0, "")
        client.wait_ready(process)
        assert client.json("/system")["HttpPort"] == port
    finally:
        process.terminate()
        _, log = process.communicate(timeout=20)
    imported = {line.rsplit("|", 1)[1].strip() for line in log.splitlines() if line.startswith("import time:")}
    # (pydicom's attempt at "requests", refused, is logged too: its package's modules are not)
    for library in ("psycopg", "jsonschema", "yaml", "requests.sessions", "server.scripting.python",
                    "server.dicom._dcmtk_dictionary"):
        assert library not in imported, f"{library} imported at start-up"
    assert "pydicom" in imported and "tornado.web" in imported  # the log was read


_IMPORT_AS_THE_SERVER_DOES = """
import gc, json, os, sys
import server.__main__ as main
before = [generation["collections"] for generation in gc.get_stats()]
with main._kept_for_good():
    main._import_dicom_libraries()
    during = [generation["collections"] for generation in gc.get_stats()]
from pydicom import config
print(json.dumps({"collections": [d - b for b, d in zip(before, during)], "enabled": gc.isenabled(),
                  "frozen": gc.get_freeze_count(), "threads": len(os.listdir("/proc/self/task")),
                  "blas_threads": os.environ["OPENBLAS_NUM_THREADS"], "numpy": "numpy" in sys.modules,
                  "validation": config.settings.reading_validation_mode == config.WARN}))
"""


def _import_as_the_server_does(**environment: str) -> dict:
    clean = {name: value for name, value in os.environ.items() if name != "OPENBLAS_NUM_THREADS"}
    output = subprocess.run([sys.executable, "-c", _IMPORT_AS_THE_SERVER_DOES], cwd=REPO, check=True,
                            capture_output=True, text=True, env={**clean, **environment}).stdout
    return json.loads(output)


def test_start_up_imports_the_dicom_libraries_at_least_cost() -> None:
    """pydicom and pynetdicom (~60 % of a start-up) are imported without the garbage collector
    going through what they make (then frozen, the collector on again), without OpenBLAS's
    worker threads that numpy's import starts and that took the CPU from the start-up, and with
    pydicom's value validation back on afterwards."""
    found = _import_as_the_server_does()
    assert found["numpy"]  # pydicom imports it: the case the setting is for
    assert found["collections"] == [0, 0, 0]
    assert found["enabled"] and found["frozen"] > 10_000
    assert found["blas_threads"] == "1" and found["threads"] == 1
    assert found["validation"]
    assert _import_as_the_server_does(OPENBLAS_NUM_THREADS="2")["blas_threads"] == "2"  # the user's choice stays
