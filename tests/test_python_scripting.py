"""Python scripting (``PythonScript``): the orthanc-python API on a real server.

Most tests talk to one server running ``tests/python/probe.py``, a script that
records what its callbacks receive and answers it on ``/probe/state``.
"""

from __future__ import annotations

import ast
import io
import json
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pydicom
import pytest
import requests

from conftest import REPO, Isengard, dcmtk, dcmtk_env, free_port, sample

SCRIPTS = Path(__file__).parent / "python"
CT = sample("2019-06-17-VedranZdesic.dcm")
JPEG = sample("Formats/Jpeg.dcm")

CHANGE = {"DELETED": 1, "NEW_CHILD_INSTANCE": 2, "NEW_INSTANCE": 3, "NEW_PATIENT": 4, "NEW_SERIES": 5,
          "NEW_STUDY": 6, "STABLE_PATIENT": 7, "STABLE_SERIES": 8, "STABLE_STUDY": 9, "ORTHANC_STARTED": 10,
          "ORTHANC_STOPPED": 11, "UPDATED_ATTACHMENT": 12, "UPDATED_METADATA": 13, "JOB_SUBMITTED": 16,
          "JOB_SUCCESS": 17, "JOB_FAILURE": 18}


def scripted(workdir: Path, script: Path, **options: Any) -> Isengard:
    """An Isengard whose ``PythonScript`` is a copy of ``script`` next to its configuration."""
    server = Isengard(workdir, PythonScript=script.name, **options)
    shutil.copy(script, workdir / script.name)
    return server


def wait_for(probe: Callable[[], Any], timeout: float = 20) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("condition not reached in time")


def variant(path: Path, patient_id: str | None = None) -> bytes:
    """The file with a new SOPInstanceUID (and PatientID): a new instance each time."""
    ds = pydicom.dcmread(path)
    ds.SOPInstanceUID = f"2.25.{uuid.uuid4().int}"
    if patient_id is not None:
        ds.PatientID = patient_id
    out = io.BytesIO()
    ds.save_as(out)
    return out.getvalue()


@pytest.fixture(scope="module")
def probe(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Isengard]:
    dead_port = free_port()
    server = scripted(tmp_path_factory.mktemp("python-probe"), SCRIPTS / "probe.py", StableAge=1, JobsMaxRetries=0,
                      DicomModalities={"dead": {"AET": "DEAD", "Host": "127.0.0.1", "Port": dead_port}},
                      AuthenticationEnabled=True, RegisteredUsers={"alice": "secret"})
    server.session.auth = ("alice", "secret")
    server.start()
    yield server
    server.stop()


def state(server: Isengard) -> dict:
    return server.json("/probe/state")


def set_mode(server: Isengard, **mode: Any) -> None:
    assert server.post("/probe/mode", json=mode).status_code == 200


# -- loading -------------------------------------------------------------------------------

def test_script_is_imported_at_start_with_its_own_name_and_no_rest_api_yet(probe: Isengard) -> None:
    recorded = state(probe)["import"]
    assert recorded["name"] == "probe"
    assert recorded["rest_api"] == ["OrthancException",
                                    [2038, "Plugin trying to call the database during its initialization"]]
    assert recorded["twice"] == ["RuntimeError", "Can only register one Python on-changes callback"]
    assert recorded["bad_route"] == ["ValueError", "Expected a string (URI) and a callback function"]
    assert 'Using Python script "probe.py" from directory' in probe.log()


def test_failing_script_stops_start_up_with_its_error(tmp_path: Path) -> None:
    script = tmp_path / "broken.py"
    script.write_text("import orthanc\n\ndef setup():\n    raise KeyError('NoSuchOption')\n\nsetup()\n")
    server = scripted(tmp_path / "server", script)
    with pytest.raises(RuntimeError, match="exited with status 1"):
        server.start()
    log = server.log()
    assert "broken.py, line 4, in setup: KeyError: 'NoSuchOption'" in log
    assert "Traceback" in log and 'line 6, in <module>' in log


def test_missing_script_stops_start_up(tmp_path: Path) -> None:
    server = Isengard(tmp_path, PythonScript="nowhere.py")
    with pytest.raises(RuntimeError, match="exited with status 1"):
        server.start()
    assert f'cannot read the Python script "{tmp_path / "nowhere.py"}"' in server.log()


# -- REST callbacks ------------------------------------------------------------------------

def test_rest_callback_receives_orthanc_python_arguments(probe: Isengard) -> None:
    answer = probe.get("/probe/echo/a%20b/y?x=1&x=2&empty=", headers={"X-Custom": "Value"})
    assert answer.status_code == 200 and answer.headers["Content-Type"] == "application/json"
    echoed = answer.json()
    assert echoed["uri"] == "/probe/echo/a b/y"
    request = echoed["request"]
    assert request["method"] == "GET" and request["groups"] == ["a b", "", "/y"]
    assert request["groups_type"] == "tuple"
    assert request["get"] == {"x": "2", "empty": ""}
    assert request["headers"]["x-custom"] == "Value" and "body" not in request
    posted = probe.post("/probe/echo/p", data=b"payload").json()["request"]
    assert posted["method"] == "POST" and posted["body"] == "payload" and "get" not in posted
    assert probe.put("/probe/echo/p", data=b"put").json()["request"]["body"] == "put"
    deleted = probe.delete("/probe/echo/p").json()["request"]
    assert deleted["method"] == "DELETE" and "body" not in deleted and "get" not in deleted


def test_script_routes_take_precedence_over_built_in_routes(probe: Isengard) -> None:
    answer = probe.get("/system")
    assert answer.status_code == 200 and answer.text == "system from python"
    assert probe.get("/patients").status_code == 200


@pytest.mark.parametrize(("kind", "status", "headers", "body"), [
    ("status-404", 404, {}, b""),
    ("status-200", 200, {}, b""),
    ("status-with-body", 400, {}, b"my error body"),
    ("status-with-size", 409, {}, b"abc"),
    ("redirect", 301, {"Location": "/app/explorer.html"}, b""),
    ("not-allowed", 405, {"Allow": "GET,PUT"}, b""),
    ("unauthorized", 401, {"WWW-Authenticate": 'Basic realm="my realm"'}, b""),
    ("cookies", 200, {"X-Probe": "yes", "Content-Type": "text/plain; charset=utf-8"}, "héllo".encode()),
    ("twice", 200, {"Content-Type": "text/plain"}, b"first"),
])
def test_rest_output_answers(probe: Isengard, kind: str, status: int, headers: dict, body: bytes) -> None:
    answer = probe.get(f"/probe/answers/{kind}", allow_redirects=False)
    assert answer.status_code == status
    for name, value in headers.items():
        assert answer.headers[name] == value
    assert answer.content == body


def test_rest_output_cookies_and_multipart(probe: Isengard) -> None:
    cookies = probe.get("/probe/answers/cookies").raw.headers.getlist("Set-Cookie")
    assert cookies == ["session=abc", "theme=dark"]
    answer = probe.get("/probe/answers/multipart")
    content_type = answer.headers["Content-Type"]
    assert content_type.startswith('multipart/related; type="application/dicom"; boundary=')
    boundary = content_type.split("boundary=")[1]
    assert len(boundary) == 70
    part = "--{b}\r\nContent-Type: application/dicom\r\nContent-Length: {n}\r\nMIME-Version: 1.0\r\n\r\n{d}\r\n"
    assert answer.text == (part.format(b=boundary, n=3, d="abc") + part.format(b=boundary, n=4, d="defg")
                           + f"--{boundary}--\r\n")


@pytest.mark.parametrize(("kind", "details"), [
    ("raise", "details set by the script"),
    ("orthanc-exception", None),
    ("status-418", None),
    ("silent", "The Python REST callback of /probe/answers/silent did not answer"),
])
def test_failing_rest_callback_answers_500_plugin_error(probe: Isengard, kind: str, details: str | None) -> None:
    answer = probe.get(f"/probe/answers/{kind}")
    assert answer.status_code == 500
    error = answer.json()
    assert error["OrthancStatus"] == 1 and error["Message"] == "Error encountered within the plugin engine"
    assert error["Uri"] == f"/probe/answers/{kind}" and error.get("Details") == details


def test_failing_rest_callback_is_logged_with_its_traceback(probe: Isengard) -> None:
    probe.get("/probe/answers/raise")
    log = probe.log()
    assert "Error in the REST callback, traceback:" in log
    assert "ValueError: REST callback failed on purpose" in log and 'probe.py", line' in log


# -- the module's functions ----------------------------------------------------------------

def test_authorization_token_grants_access_to_the_rest_api(probe: Isengard) -> None:
    token = probe.get("/probe/token").text
    assert token.startswith("Bearer ") and len(token) == len("Bearer ") + 36
    assert requests.get(probe.url + "/patients", timeout=10).status_code == 401
    assert requests.get(probe.url + "/patients", headers={"Authorization": token}, timeout=10).status_code == 200
    forged = "Bearer " + str(uuid.uuid4())
    assert requests.get(probe.url + "/patients", headers={"Authorization": forged}, timeout=10).status_code == 401


def test_module_functions_answer_like_orthanc_python(probe: Isengard) -> None:
    uploaded = probe.upload(variant(CT, patient_id="PY-API"))
    tags = probe.json(f"/instances/{uploaded['ID']}/simplified-tags")
    results = probe.post("/probe/api", json={
        "instance": uploaded["ID"], "file": str(JPEG), "patient_id": tags["PatientID"],
        "study_uid": tags["StudyInstanceUID"], "series_uid": tags["SeriesInstanceUID"],
        "sop_uid": tags["SOPInstanceUID"]}).json()
    assert results["get"] == ["bytes", "RestApi"]
    assert results["get_builtin_system"] == ["int", 16]
    assert results["get_after_plugins_system"] == ["bytes", "system from python"]
    assert results["get_script_route"] == ["OrthancException", [17, "Unknown resource"]]
    assert results["get_script_route_after_plugins"] == ["str", "GET"]
    assert results["get_missing"] == ["OrthancException", [17, "Unknown resource"]]
    assert results["get_unknown_route"] == ["OrthancException", [17, "Unknown resource"]]
    assert uploaded["ID"] in json.loads(results["post_find"][1])
    assert results["post_str_body"][0] == "bytes"
    assert results["post_bad_json"] == ["OrthancException", [8, "Bad request"]]
    status, stored_id = results["post_instance"][1]
    assert status == "Success" and probe.get(f"/instances/{stored_id}/metadata/Origin").text == "Plugins"
    assert results["put"] == ["bytes", ""]
    assert results["post_after_plugins"] == ["str", "body"]
    assert results["delete"] == ["NoneType", None]
    assert results["delete_missing"] == ["OrthancException", [17, "Unknown resource"]]
    assert results["delete_after_plugins"] == ["NoneType", None]
    assert probe.get(f"/instances/{uploaded['ID']}/metadata/1024").text == "set by python"
    assert probe.get(f"/instances/{uploaded['ID']}/metadata/1025").status_code == 404
    assert results["configuration"] == ["list", sorted(json.loads((probe.workdir / "config.json").read_text()))]
    assert results["uuid_length"] == ["int", 36]
    assert results["error_description"] == ["str", "Unknown resource"]
    assert results["dicom_size"] == ["int", len(probe.get(f"/instances/{uploaded['ID']}/file").content)]
    assert results["dicom_missing"] == ["OrthancException", [17, "Unknown resource"]]
    assert results["lookup_patient"] == ["str", uploaded["ParentPatient"]]
    assert results["lookup_study"] == ["str", uploaded["ParentStudy"]]
    assert results["lookup_series"] == ["str", uploaded["ParentSeries"]]
    assert results["lookup_instance"] == ["str", uploaded["ID"]]
    assert results["lookup_missing"] == ["OrthancException", [-1, "Internal error"]]
    assert results["created_origin"] == ["int", 4]
    assert results["created_size"] == ["int", JPEG.stat().st_size]
    assert results["created_frames"] == ["int", 1]
    assert results["metrics"] == ["NoneType", None]
    assert "python_probe_value 42 " in probe.get("/tools/metrics-prometheus").text
    assert results["log_not_text"] == ["TypeError", "message must be a string"]
    assert "probe.py:" in probe.log() and "warning from the probe script" in probe.log()


# -- changes and stored instances ----------------------------------------------------------

def test_changes_are_delivered_in_order_off_the_request_thread(probe: Isengard) -> None:
    uploaded = probe.upload(variant(CT, patient_id="PY-CHANGES"))
    ids = [uploaded["ID"], uploaded["ParentSeries"], uploaded["ParentStudy"], uploaded["ParentPatient"]]
    expected = [[CHANGE["NEW_INSTANCE"], 3, ids[0]], [CHANGE["NEW_SERIES"], 2, ids[1]],
                [CHANGE["NEW_STUDY"], 1, ids[2]], [CHANGE["NEW_PATIENT"], 0, ids[3]],
                [CHANGE["NEW_CHILD_INSTANCE"], 2, ids[1]], [CHANGE["NEW_CHILD_INSTANCE"], 1, ids[2]],
                [CHANGE["NEW_CHILD_INSTANCE"], 0, ids[3]]]

    def mine() -> list:
        return [c[:3] for c in state(probe)["changes"] if c[2] in ids]
    wait_for(lambda: len(mine()) >= 7)
    assert mine()[:7] == expected
    assert state(probe)["changes"][0][:3] == [CHANGE["ORTHANC_STARTED"], 4, ""]
    assert {c[3] for c in state(probe)["changes"]} == {"python-changes"}
    stable = [[CHANGE["STABLE_SERIES"], 2, ids[1]], [CHANGE["STABLE_STUDY"], 1, ids[2]],
              [CHANGE["STABLE_PATIENT"], 0, ids[3]]]
    wait_for(lambda: all(change in mine() for change in stable))
    assert probe.put(f"/instances/{ids[0]}/metadata/1030", data=b"x").status_code == 200
    wait_for(lambda: [CHANGE["UPDATED_METADATA"], 3, ids[0]] in mine())
    assert probe.put(f"/instances/{ids[0]}/attachments/1030", data=b"x").status_code == 200
    wait_for(lambda: [CHANGE["UPDATED_ATTACHMENT"], 3, ids[0]] in mine())
    assert probe.delete(f"/patients/{ids[3]}").status_code == 200
    wait_for(lambda: [CHANGE["DELETED"], 0, ids[3]] in mine() and [CHANGE["DELETED"], 3, ids[0]] in mine())


def test_stopped_change_is_delivered_at_shutdown_with_the_rest_api_still_there(tmp_path: Path) -> None:
    marker = tmp_path / "stopped.json"
    script = tmp_path / "on_stop.py"
    script.write_text(
        "import json, time, orthanc\n"
        "def on_change(change_type, level, resource):\n"
        "    if change_type == orthanc.ChangeType.ORTHANC_STOPPED:\n"
        "        time.sleep(0.5)\n"
        f"        open({str(marker)!r}, 'w').write(json.dumps([level, resource, \n"
        "            json.loads(orthanc.RestApiGet('/system'))['ApiVersion']]))\n"
        "orthanc.RegisterOnChangeCallback(on_change)\n")
    server = scripted(tmp_path / "server", script).start()
    assert server.stop() == 0
    assert json.loads(marker.read_text()) == [4, "", 16]


def test_job_changes(probe: Isengard) -> None:
    uploaded = probe.upload(variant(CT))
    good = probe.post(f"/studies/{uploaded['ParentStudy']}/archive", json={"Asynchronous": True}).json()["ID"]
    bad = probe.post("/modalities/dead/store", json={"Resources": [uploaded["ID"]], "Asynchronous": True}).json()
    expected = [[CHANGE["JOB_SUBMITTED"], 4, good], [CHANGE["JOB_SUCCESS"], 4, good],
                [CHANGE["JOB_SUBMITTED"], 4, bad["ID"]], [CHANGE["JOB_FAILURE"], 4, bad["ID"]]]
    wait_for(lambda: all(change in [c[:3] for c in state(probe)["changes"]] for change in expected))


def test_stored_instance_callback_gets_a_dicom_instance(probe: Isengard) -> None:
    data = variant(CT, patient_id="PY-STORED")
    uploaded = probe.upload(data)
    seen = wait_for(lambda: [s for s in state(probe)["stored"] if s["id"] == uploaded["ID"]])[0]
    assert seen == {
        "id": uploaded["ID"], "type": "DicomInstance", "origin": 3, "aet": "", "size": len(data),
        "same_data": True, "data_type": "bytes", "syntax": "1.2.840.10008.1.2.1", "has_reception": 1,
        "origin_metadata": "RestApi", "missing_metadata": None, "pixels": 1, "frames": 1, "patient_id": "PY-STORED",
        "full_sop": "SOPInstanceUID", "thread": "python-changes"}
    again = probe.upload(data)
    assert again["Status"] == "AlreadyStored"
    time.sleep(0.3)
    assert len([s for s in state(probe)["stored"] if s["id"] == uploaded["ID"]]) == 1


def test_stored_instance_callback_gets_a_large_upload_as_bytes(probe: Isengard) -> None:
    """A large upload is read from a memory map of its spooled body; a script still gets
    ``bytes``, as from orthanc-python (a map compares unequal to the same bytes, and has no
    ``decode``...)."""
    ds = pydicom.dcmread(io.BytesIO(variant(CT, patient_id="PY-LARGE")))
    ds.add_new(0x00290010, "LO", "ISENGARD TEST")
    ds.add_new(0x00291000, "OB", b"\x01" * (9 * 1024 * 1024))
    out = io.BytesIO()
    ds.save_as(out)
    data = out.getvalue()
    uploaded = probe.upload(data)
    seen = wait_for(lambda: [s for s in state(probe)["stored"] if s["id"] == uploaded["ID"]])[0]
    assert (seen["size"], seen["data_type"], seen["same_data"]) == (len(data), "bytes", True)
    assert [len(data), "bytes"] in [[r[0], r[4]] for r in state(probe)["received"]]


def test_callbacks_calling_the_rest_api_never_deadlock(probe: Isengard) -> None:
    """Every upload runs the received callback, the change and stored callbacks, all calling the REST API."""
    files = [variant(CT, patient_id=f"PY-LOAD-{i}") for i in range(24)]
    with ThreadPoolExecutor(12) as pool:
        answers = list(pool.map(lambda data: probe.post("/instances", data), files))
    assert [a.status_code for a in answers] == [200] * len(files)
    ids = {a.json()["ID"] for a in answers}
    wait_for(lambda: ids <= {s["id"] for s in state(probe)["stored"]})


def test_rest_callbacks_waiting_for_script_routes_never_deadlock(probe: Isengard) -> None:
    """More concurrent callbacks than the scripting pool has threads, each waiting for another script route."""
    with ThreadPoolExecutor(24) as pool:
        answers = list(pool.map(lambda n: probe.get(f"/probe/nested/{n}"), range(24)))
    assert [a.text for a in answers] == [f"/probe/echo/{n}" for n in range(24)]


# -- received instances, C-STORE and HTTP filters ------------------------------------------

def test_received_instance_callback(probe: Isengard) -> None:
    set_mode(probe, received="discard")
    discarded = probe.upload(variant(CT, patient_id="PY-DISCARDED"))
    assert discarded["Status"] == "FilteredOut"
    # As Orthanc: the parents are named, the discarded instance is not (no ID, no Path to it).
    assert discarded["ID"] == "" and discarded["Path"] == "/instances/"
    assert probe.get(f"/patients/{discarded['ParentPatient']}").status_code == 404
    set_mode(probe, received="modify")
    modified = probe.upload(variant(CT, patient_id="PY-MODIFIED"))
    assert modified["Status"] == "Success"
    assert probe.json(f"/instances/{modified['ID']}/simplified-tags")["PatientName"] == "MODIFIED^BY^PYTHON"
    set_mode(probe, received="modify-without-data")
    refused = probe.post("/instances", variant(CT))
    assert refused.status_code == 500 and refused.json()["OrthancStatus"] == 1
    assert refused.json()["Details"] == ("The ReceivedInstanceCallback plugin is not returning a modified buffer "
                                         "while it has modified the instance")
    for mode in ("raise", "not-a-tuple", "keep"):
        set_mode(probe, received=mode)
        assert probe.upload(variant(CT))["Status"] == "Success"
    assert "received callback failed on purpose" in probe.log()
    assert "has not returned a tuple as expected" in probe.log()
    modes = [r[2] for r in state(probe)["received"]]
    assert {"discard", "modify", "raise", "not-a-tuple", "keep"} <= set(modes)
    assert all(r[1] == 3 and r[3] == 16 for r in state(probe)["received"] if r[2] != "keep")


def storescu(server: Isengard, data: bytes, tmp_path: Path) -> str:
    path = tmp_path / f"{uuid.uuid4()}.dcm"
    path.write_bytes(data)
    done = subprocess.run([dcmtk("storescu"), "-v", "-aet", "PYSCU", "-aec", server.aet, "127.0.0.1",
                           str(server.dicom_port), str(path)], capture_output=True, text=True, env=dcmtk_env(),
                          timeout=60)
    return done.stdout + done.stderr


def test_cstore_filter_decides_the_dimse_status(probe: Isengard, tmp_path: Path) -> None:
    set_mode(probe, received="keep", cstore=0)
    accepted = variant(CT, patient_id="PY-CSTORE")
    assert "Received Store Response (Success)" in storescu(probe, accepted, tmp_path)
    sop = pydicom.dcmread(io.BytesIO(accepted)).SOPInstanceUID
    seen = [c for c in state(probe)["cstore"] if c[2] == sop]
    assert seen == [["PYSCU", 2, sop, 16]]
    set_mode(probe, cstore=0xA801)
    assert "0xa801" in storescu(probe, variant(CT), tmp_path).lower()
    set_mode(probe, cstore="raise")
    assert "Refused: OutOfResources" in storescu(probe, variant(CT), tmp_path)
    assert "C-STORE filter failed on purpose" in probe.log()
    set_mode(probe, cstore=0)
    assert probe.upload(variant(CT))["Status"] == "Success"


def test_http_filter(probe: Isengard) -> None:
    assert probe.get("/forbidden/resource").status_code == 403
    failing = probe.get("/filter-raises")
    assert failing.status_code == 500 and failing.json()["OrthancStatus"] == 1
    assert probe.get("/filter-not-bool").status_code == 500
    assert probe.get("/probe/filter?a=1", headers={"X-Filter": "seen"}).status_code == 200
    assert probe.post("/probe/filter", data=b"x").status_code == 200
    got, posted = [f for f in state(probe)["filtered"]][-2:]
    assert got[0] == "/probe/filter"
    assert got[1]["method"] == 1 and got[1]["ip"] == "127.0.0.1" and got[1]["get"] == {"a": "1"}
    assert got[1]["headers"]["x-filter"] == "seen"
    assert posted[1]["method"] == 2 and "get" not in posted[1]
    assert "HTTP filter failed on purpose" in probe.log()


# -- the API surface against the real plugin and the stub ----------------------------------

def _stub() -> tuple[dict[str, dict[str, int]], set[str]]:
    """Enumeration values and other public names declared in ``orthanc.pyi``."""
    tree = ast.parse((REPO / "server" / "scripting" / "orthanc.pyi").read_text())
    enums: dict[str, dict[str, int]] = {}
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            values = {item.target.id: ast.literal_eval(item.value) for item in node.body
                      if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name)}
            if values:
                enums[node.name] = values
            elif node.name not in ("RestCallback", "IncomingHttpRequestFilter"):
                names.add(node.name)
        elif isinstance(node, ast.FunctionDef):
            names.add(node.name)
    return enums, names


def test_stub_declares_the_module() -> None:
    from server.scripting.python_api import CLASSES, FUNCTIONS
    from server.scripting.python_enums import ENUMERATIONS

    enums, names = _stub()
    assert enums == {name: values for name, (_, values) in ENUMERATIONS.items()}
    assert names == set(FUNCTIONS) | set(CLASSES)


# -- storage commitment and the samples ----------------------------------------------------

SAMPLES = REPO / "samples" / "python"
MR = "1.2.840.10008.5.1.4.1.1.4"
#: DICOM ports of the scripted storage commitment SCPs, known to the SCU below.
SCP_PORTS = {name: free_port() for name in ("sample", "v1", "v2")}


@pytest.fixture(scope="module")
def scu(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Isengard]:
    """A plain Isengard that asks the scripted servers for storage commitment (and receives auto-routing)."""
    modalities = {name: {"AET": f"SCP{name.upper()}", "Host": "127.0.0.1", "Port": port}
                  for name, port in SCP_PORTS.items()}
    server = Isengard(tmp_path_factory.mktemp("python-scu"), DicomAet="PYSCU", DicomModalities=modalities).start()
    yield server
    server.stop()


def commitment_scp(tmp_path: Path, scu: Isengard, name: str, script: Path, script_name: str | None = None) -> Isengard:
    server = Isengard(tmp_path / name, PythonScript=script_name or script.name, DicomAet=f"SCP{name.upper()}",
                      DicomPort=SCP_PORTS[name],
                      DicomModalities={"scu": {"AET": "PYSCU", "Host": "127.0.0.1", "Port": scu.dicom_port}})
    shutil.copy(script, server.workdir / (script_name or script.name))
    return server.start()


def commitment_report(scu: Isengard, modality: str, pairs: list[list[str]]) -> tuple[str, dict]:
    answer = scu.post(f"/modalities/{modality}/storage-commitment", json={"DicomInstances": pairs})
    assert answer.status_code == 200, answer.text
    uid = answer.json()["ID"]
    report = wait_for(lambda: (r := scu.json(f"/storage-commitment/{uid}"))["Status"] != "Pending" and r)
    return uid, report


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_storage_commitment_lookup_decides_every_reason(tmp_path: Path, scu: Isengard, version: str) -> None:
    script_name = "commitment.py" if version == "v1" else "commitment_v2.py"
    scp = commitment_scp(tmp_path, scu, version, SCRIPTS / "commitment.py", script_name)
    try:
        pairs = [[MR, f"1.2.3.{n}"] for n in range(9)]
        uid, report = commitment_report(scu, version, pairs)
        assert report["Status"] == "Failure"
        assert report["Success"] == [{"SOPClassUID": MR, "SOPInstanceUID": "1.2.3.0"}]
        reasons = {f["SOPInstanceUID"]: f["FailureReason"] for f in report["Failures"]}
        assert reasons == {"1.2.3.1": 0x0110, "1.2.3.2": 0x0112, "1.2.3.3": 0x0213, "1.2.3.4": 0x0122,
                           "1.2.3.5": 0x0119, "1.2.3.6": 0x0131, "1.2.3.7": 0x0110, "1.2.3.8": 0x0110}
        [request] = scp.json("/commitment/requests")
        assert request["transaction"] == uid and request["job"] in scp.json("/jobs")
        assert request["classes"] == [MR] * 9 and request["instances"] == [p[1] for p in pairs]
        expected_rest = ["PYSCU", f"SCP{version.upper()}"] if version == "v1" else \
            ["connection", "PYSCU", "127.0.0.1", f"SCP{version.upper()}"]
        assert request["rest"] == expected_rest
        assert request["lookups"] == pairs
        assert "lookup failed on purpose" in scp.log()
    finally:
        scp.stop()


def test_sample_storage_commitment(tmp_path: Path, scu: Isengard) -> None:
    scp = commitment_scp(tmp_path, scu, "sample", SAMPLES / "storage_commitment.py")
    try:
        stored = scp.upload(variant(CT, patient_id="PY-COMMIT"))
        tags = scp.json(f"/instances/{stored['ID']}/simplified-tags")
        ct_class, sop = tags["SOPClassUID"], tags["SOPInstanceUID"]
        _, report = commitment_report(scu, "sample", [[ct_class, sop], [MR, sop], [ct_class, "1.2.3.404"]])
        assert report["Success"] == [{"SOPClassUID": ct_class, "SOPInstanceUID": sop}]
        assert {(f["SOPClassUID"], f["SOPInstanceUID"], f["FailureReason"]) for f in report["Failures"]} == {
            (MR, sop, 0x0119), (ct_class, "1.2.3.404", 0x0112)}
        assert "Storage commitment" in scp.log() and "from PYSCU: 3 instance(s)" in scp.log()
    finally:
        scp.stop()


def test_sample_autorouting_sends_stable_studies(tmp_path: Path, scu: Isengard) -> None:
    router = scripted(tmp_path, SAMPLES / "autorouting.py", StableAge=1, DicomModalities={
        "pacs": {"AET": "PYSCU", "Host": "127.0.0.1", "Port": scu.dicom_port}}).start()
    try:
        first = router.upload(variant(CT, patient_id="PY-ROUTED"))
        router.upload(variant(CT, patient_id="PY-ROUTED"))
        wait_for(lambda: scu.get(f"/studies/{first['ParentStudy']}").status_code == 200
                 and len(scu.json(f"/studies/{first['ParentStudy']}/instances")) == 2)
        jobs = wait_for(lambda: (jobs := router.json("/jobs?expand")) and jobs[0]["State"] == "Success" and jobs)
        assert [job["Type"] for job in jobs] == ["DicomModalityStore"]
        assert f"Stable study {first['ParentStudy']}: sending it to pacs" in router.log()
    finally:
        router.stop()


def test_sample_rest_route(make_isengard: Callable[..., Isengard], tmp_path: Path) -> None:
    shutil.copy(SAMPLES / "rest_route.py", tmp_path / "rest_route.py")
    server = make_isengard(PythonScript=str(tmp_path / "rest_route.py"))
    uploaded = server.upload(variant(CT, patient_id="PY-SUMMARY"))
    server.upload(variant(CT, patient_id="PY-SUMMARY"))
    summary = server.json(f"/studies/{uploaded['ParentStudy']}/summary")
    study = server.json(f"/studies/{uploaded['ParentStudy']}")
    assert summary == {"PatientName": study["PatientMainDicomTags"].get("PatientName", ""),
                       "StudyDate": study["MainDicomTags"]["StudyDate"], "Modalities": ["CT"],
                       "SeriesCount": 1, "InstancesCount": 2}
    refused = server.post(f"/studies/{uploaded['ParentStudy']}/summary")
    assert refused.status_code == 405 and refused.headers["Allow"] == "GET"
    assert server.get("/studies/no-such-study/summary").status_code == 404


def test_sample_cstore_filter(make_isengard: Callable[..., Isengard], tmp_path: Path) -> None:
    server = make_isengard(PythonScript=str(SAMPLES / "cstore_filter.py"))
    ct = variant(CT, patient_id="PY-FILTER")
    assert "Received Store Response (Success)" in storescu(server, ct, tmp_path)
    ultrasound = pydicom.dcmread(io.BytesIO(variant(CT, patient_id="PY-FILTER")))
    ultrasound.Modality = "US"
    buffer = io.BytesIO()
    ultrasound.save_as(buffer)
    assert "Refused: OutOfResources" in storescu(server, buffer.getvalue(), tmp_path)
    assert len(server.json("/instances")) == 1
    assert server.upload(buffer.getvalue())["Status"] == "Success"
    assert "Refusing a US instance from PYSCU" in server.log()
