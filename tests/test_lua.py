"""Lua scripting: callbacks and their arguments, filters, the API, execute-script, safety.

Most tests share one server running ``tests/lua/callbacks.lua`` (every callback
records its arguments in the Lua global ``seen``, read back through
``/tools/execute-script``; the filters print theirs to the log).  The
differential tests run ``tests/lua/differential.lua`` on Isengard and on the
real Orthanc 1.10.1 and compare what the callbacks received.
"""

from __future__ import annotations

import http.server
import io
import json
import re
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pydicom
import pytest
from pydicom.uid import generate_uid
from pynetdicom import AE
from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelFind

from conftest import REPO, Isengard, Orthanc, free_port, sample

LUA = Path(__file__).parent / "lua"
MALATERRE = sample("ColorTestMalaterre.dcm")


def variant(path: Path, patient_id: str, patient_name: str | None = None) -> bytes:
    """A copy of a sample with its own patient and UIDs (a new resource every time)."""
    ds = pydicom.dcmread(path)
    ds.PatientID = patient_id
    if patient_name is not None:
        ds.PatientName = patient_name
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def execute(server: Any, source: str) -> str:
    answer = server.post("/tools/execute-script", source.encode())
    assert answer.status_code == 200, answer.text
    return answer.text


def seen(server: Isengard) -> list[list[Any]]:
    return json.loads(execute(server, "print(DumpJson(seen, true))"))


def wait_for(check: Callable[[], Any], timeout: float = 10) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(0.05)


def records(server: Isengard, name: str, key: str | None = None, count: int = 1,
            timeout: float = 10) -> list[list[Any]]:
    """The records of callback ``name`` (whose first argument is ``key``), once there are ``count``."""
    def matching() -> list[list[Any]]:
        found = [r for r in seen(server) if r[0] == name and (key is None or r[1] == key)]
        return found if len(found) >= count else []
    found = wait_for(matching, timeout)
    assert found, f"no {name} callback for {key}"
    return found


def c_store(server: Any, data: bytes, calling: str = "LUASCU") -> int:
    """Send one file with pynetdicom; the DIMSE status the SCP answered."""
    ds = pydicom.dcmread(io.BytesIO(data))
    ae = AE(ae_title=calling)
    ae.add_requested_context(ds.SOPClassUID, ds.file_meta.TransferSyntaxUID)
    assoc = ae.associate("127.0.0.1", server.dicom_port, ae_title=server.aet)
    assert assoc.is_established
    try:
        return int(assoc.send_c_store(ds).Status)
    finally:
        assoc.release()


class _Recorder(http.server.BaseHTTPRequestHandler):
    """A tiny HTTP server for the tests: records POST bodies, answers GET after ``delay``."""

    bodies: list[bytes]
    delay: float

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        time.sleep(self.delay)
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"slow answer")

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        self.bodies.append(self.rfile.read(int(self.headers["Content-Length"])))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        """Quiet."""


@pytest.fixture
def recorder() -> Iterator[tuple[str, list[bytes]]]:
    bodies: list[bytes] = []
    handler = type("Handler", (_Recorder,), {"bodies": bodies, "delay": 0.5})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/", bodies
    server.shutdown()


@pytest.fixture(scope="module")
def lua_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Isengard]:
    workdir = tmp_path_factory.mktemp("lua")
    for name in ("callbacks.lua", "override.lua"):
        shutil.copy(LUA / name, workdir / name)
    server = Isengard(workdir, ExecuteLuaEnabled=True, StableAge=1, LuaCallbackTimeout=2, DicomAlwaysAllowFind=True,
                      LuaHeartBeatPeriod=1, LuaScripts=["callbacks.lua", "override.lua"],
                      DicomModalities={"unreachable": ["NOBODY", "127.0.0.1", free_port()]}).start()
    yield server
    server.stop()


@pytest.fixture
def server(lua_server: Isengard) -> Isengard:
    lua_server.clear()
    return lua_server


# -- /tools/execute-script ---------------------------------------------------------------


def test_execute_script_answers_what_was_printed(server: Isengard) -> None:
    answer = server.post("/tools/execute-script", b'print(42) print("a", 1, true, nil) print("", "x")')
    assert answer.status_code == 200
    assert answer.headers["Content-Type"].startswith("text/plain")
    assert answer.text == "42\na, 1, true, nil\nx\n"
    assert execute(server, "return 42") == ""


def test_execute_script_errors_are_orthanc_2031(server: Isengard) -> None:
    for source, details in [("x = = 1", """[string "line"]:1: unexpected symbol near '='"""),
                            ("error('boom')", '[string "line"]:1: boom')]:
        answer = server.post("/tools/execute-script", source.encode())
        assert answer.status_code == 500
        body = answer.json()
        assert (body["OrthancStatus"], body["Details"]) == (2031, details)


def test_execute_script_needs_execute_lua_enabled(isengard: Isengard) -> None:
    answer = isengard.post("/tools/execute-script", b"print(1)")
    assert (answer.status_code, answer.content) == (403, b"")


def test_execute_script_definitions_stay_in_the_main_state_only(server: Isengard) -> None:
    execute(server, "mainOnly = 'set by execute-script'")
    assert execute(server, "print(mainOnly)") == "set by execute-script\n"
    # The filter state has no such global: its ReceivedInstanceFilter accepts only then.
    assert server.upload(variant(MALATERRE, "FILTER-SEES-MAIN"))["Status"] == "Success"


# -- callbacks and their arguments -------------------------------------------------------


def test_initialize_then_heartbeat(server: Isengard) -> None:
    assert seen(server)[0] == ["Initialize"]
    assert wait_for(lambda: execute(server, "print(heartbeats or 0)").strip() not in ("0", ""), 5)


def test_on_stored_instance_arguments_over_rest(server: Isengard) -> None:
    uploaded = server.upload(variant(MALATERRE, "REST-ARGS"))
    instance = uploaded["ID"]
    (_, _, tags, metadata, origin), = records(server, "OnStoredInstance", instance)
    assert origin == {"RemoteIp": "127.0.0.1", "RequestOrigin": "RestApi", "Username": ""}
    assert metadata == server.json(f"/instances/{instance}/metadata?expand")
    assert metadata["Origin"] == "RestApi"
    expected = server.json(f"/instances/{instance}/simplified-tags")
    del expected["PixelData"]
    assert tags == expected
    assert records(server, "LookupFromOnStoredInstance", instance)


def test_on_stored_instance_also_for_already_stored(server: Isengard) -> None:
    data = variant(MALATERRE, "TWICE")
    instance = server.upload(data)["ID"]
    assert server.upload(data)["Status"] == "AlreadyStored"
    assert len(records(server, "OnStoredInstance", instance, count=2)) == 2


def test_on_stored_instance_origin_over_dicom(server: Isengard) -> None:
    data = variant(MALATERRE, "DICOM-ARGS")
    assert c_store(server, data, calling="LUASCU") == 0x0000
    (instance,) = server.json("/instances")
    (_, _, tags, metadata, origin), = records(server, "OnStoredInstance", instance)
    assert origin == {"CalledAet": server.aet, "RemoteAet": "LUASCU", "RemoteIp": "127.0.0.1",
                      "RequestOrigin": "DicomProtocol"}
    assert (metadata["Origin"], metadata["RemoteAET"], tags["PatientID"]) == \
        ("DicomProtocol", "LUASCU", "DICOM-ARGS")


def test_instances_uploaded_by_lua_have_the_lua_origin(server: Isengard) -> None:
    data = variant(MALATERRE, "FROM-LUA")
    source = f"upload = {json.dumps(data.hex())}"
    execute(server, source + "\nlocal bytes = upload:gsub('..', function(h) return string.char("
                             "tonumber(h, 16)) end)\nprint(ParseJson(RestApiPost('/instances', bytes))['ID'])")
    (instance,) = server.json("/instances")
    (_, _, _, metadata, origin), = records(server, "OnStoredInstance", instance)
    assert origin == {"RequestOrigin": "Lua"}
    assert metadata["Origin"] == "Lua"


def test_stable_callbacks_get_the_main_tags_of_their_level(server: Isengard) -> None:
    uploaded = server.upload(variant(MALATERRE, "STABLE"))
    (_, _, tags, metadata), = records(server, "OnStableSeries", uploaded["ParentSeries"], timeout=15)
    assert tags == server.json(f"/series/{uploaded['ParentSeries']}")["MainDicomTags"]
    assert "LastUpdate" in metadata
    (_, _, tags, _), = records(server, "OnStableStudy", uploaded["ParentStudy"], timeout=15)
    assert tags == server.json(f"/studies/{uploaded['ParentStudy']}")["MainDicomTags"]
    assert "PatientID" not in tags
    (_, _, tags, _), = records(server, "OnStablePatient", uploaded["ParentPatient"], timeout=15)
    assert tags["PatientID"] == "STABLE"


def test_deleted_and_updated_callbacks(server: Isengard) -> None:
    uploaded = server.upload(variant(MALATERRE, "DELETED"))
    assert server.put(f"/instances/{uploaded['ID']}/metadata/1024", b"x").status_code == 200
    assert records(server, "OnUpdatedInstance", uploaded["ID"])
    assert server.delete(f"/studies/{uploaded['ParentStudy']}").status_code == 200
    assert records(server, "OnDeletedStudy", uploaded["ParentStudy"])
    assert records(server, "OnDeletedSeries", uploaded["ParentSeries"])
    assert records(server, "OnDeletedPatient", uploaded["ParentPatient"])
    # override.lua, loaded after callbacks.lua, redefined OnDeletedInstance: the later one wins.
    assert records(server, "OnDeletedInstance (override)", uploaded["ID"])
    assert not [r for r in seen(server) if r[0] == "OnDeletedInstance"]


def test_job_callbacks_can_query_their_job(server: Isengard) -> None:
    uploaded = server.upload(variant(MALATERRE, "JOBS"))
    answer = server.post(f"/studies/{uploaded['ParentStudy']}/archive", json.dumps({"Asynchronous": True}))
    job = answer.json()["ID"]
    assert records(server, "OnJobSubmitted", job)
    (_, _, kind, state), = records(server, "OnJobSuccess", job)
    assert (kind, state) == ("Archive", "Success")
    answer = server.post("/modalities/unreachable/store",
                         json.dumps({"Resources": [uploaded["ID"]], "Asynchronous": True}))
    failed = answer.json()["ID"]
    (_, _, kind, state), = records(server, "OnJobFailure", failed, timeout=20)
    assert (kind, state) == ("DicomModalityStore", "Failure")


# -- filters -----------------------------------------------------------------------------


def _filter_lines(server: Isengard, name: str, patient: str) -> list[list[Any]]:
    found = []
    for line in server.log().splitlines():
        match = re.search(rf"FILTER {name} (.*)$", line)
        if match and json.loads(match.group(1))[0] == patient:
            found.append(json.loads(match.group(1)))
    return found


def test_received_instance_filter_refuses_over_rest(server: Isengard) -> None:
    answer = server.post("/instances", variant(MALATERRE, "REFUSED-BY-LUA"))
    assert answer.status_code == 200
    assert answer.json()["Status"] == "FilteredOut"
    assert server.json("/instances") == []
    (_, origin, info), = _filter_lines(server, "ReceivedInstanceFilter", "REFUSED-BY-LUA")
    assert origin == {"RemoteIp": "127.0.0.1", "RequestOrigin": "RestApi", "Username": ""}
    assert info == {"HasPixelData": True, "TransferSyntaxUID": "1.2.840.10008.1.2"}


def test_received_instance_filter_refuses_over_dicom_with_success(server: Isengard) -> None:
    assert c_store(server, variant(MALATERRE, "REFUSED-BY-LUA")) == 0x0000
    assert server.json("/instances") == []


def test_cstore_filter_status_goes_to_the_scu(server: Isengard) -> None:
    assert c_store(server, variant(MALATERRE, "DIMSE-A702")) == 0xA702
    assert server.json("/instances") == []
    assert c_store(server, variant(MALATERRE, "DIMSE-OK")) == 0x0000
    assert len(server.json("/instances")) == 1
    (_, origin, info), = _filter_lines(server, "ReceivedCStoreInstanceFilter", "DIMSE-OK")
    assert origin["RequestOrigin"] == "DicomProtocol"
    assert info["HasPixelData"] is True
    # Over REST only ReceivedInstanceFilter runs.
    server.upload(variant(MALATERRE, "REST-ONLY"))
    assert _filter_lines(server, "ReceivedCStoreInstanceFilter", "REST-ONLY") == []


def test_http_filter_refuses_with_403_and_gets_orthanc_arguments(server: Isengard) -> None:
    answer = server.get("/forbidden-by-lua")
    assert (answer.status_code, answer.content) == (403, b"")
    server.get("/record-http/x?expand", headers={"X-Custom": "Value"}, auth=("alice", "secret"))
    (_, method, uri, ip, username, headers), = records(server, "IncomingHttpRequestFilter")
    assert (method, uri, ip, username) == ("GET", "/record-http/x", "127.0.0.1", "alice")
    assert headers["x-custom"] == "Value"
    assert all(name == name.lower() for name in headers)


def test_http_filter_error_answers_500(server: Isengard) -> None:
    answer = server.get("/filter-error")
    assert answer.status_code == 500
    assert answer.json()["OrthancStatus"] == 2031
    assert re.search(r"callbacks\.lua:\d+: the HTTP filter fails on purpose", answer.json()["Details"])


def test_find_filter_sees_and_rewrites_c_find_queries(server: Isengard) -> None:
    server.upload(variant(MALATERRE, "FIND", patient_name="FIND-TARGET"))
    query = pydicom.Dataset()
    query.QueryRetrieveLevel = "STUDY"
    query.PatientName = "REWRITTEN-BY-LUA"
    query.StudyInstanceUID = ""
    ae = AE(ae_title="LUASCU")
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelFind)
    assoc = ae.associate("127.0.0.1", server.dicom_port, ae_title=server.aet)
    assert assoc.is_established
    try:
        answers = [identifier for status, identifier in
                   assoc.send_c_find(query, StudyRootQueryRetrieveInformationModelFind)
                   if status and status.Status == 0xFF00]
    finally:
        assoc.release()
    assert len(answers) == 1
    (_, source, origin), = records(server, "IncomingFindRequestFilter")[-1:]
    assert source == {"0008,0052": "STUDY", "0010,0010": "REWRITTEN-BY-LUA", "0020,000d": ""}
    assert origin == {"CalledAet": server.aet, "Manufacturer": "Generic", "RemoteAet": "LUASCU",
                      "RemoteIp": "127.0.0.1"}


def test_builtin_argument_skips_the_python_scripts_routes(make_isengard: Callable[..., Isengard],
                                                          tmp_path: Path) -> None:
    script = tmp_path / "route.py"
    script.write_text("import orthanc\n\n\n"
                      "def system(output, uri, **request):\n"
                      "    output.AnswerBuffer('from python', 'text/plain')\n\n\n"
                      "orthanc.RegisterRestCallback('/system', system)\n")
    server = make_isengard(ExecuteLuaEnabled=True, PythonScript=str(script))
    output = execute(server, """
        print(RestApiGet('/system'))
        print(ParseJson(RestApiGet('/system', true))['ApiVersion'])
        print(RestApiGet('/system', true, {}))   -- Orthanc's quirk: with headers, builtin is false
    """)
    assert output == "from python\n16.0\nfrom python\n"


# -- no deadlock -------------------------------------------------------------------------


def test_rest_api_from_the_http_filter(server: Isengard) -> None:
    started = time.monotonic()
    assert server.get("/filter-calls-rest").status_code == 404
    assert time.monotonic() - started < 5


def test_http_to_this_server_from_callbacks_and_scripts(server: Isengard) -> None:
    uploaded = server.upload(variant(MALATERRE, "SELF-HTTP"))
    (_, _, found), = records(server, "SelfHttp", uploaded["ID"])
    assert found == uploaded["ID"]
    started = time.monotonic()
    nested = f"print(HttpGet('{server.url}/system') ~= nil)"
    assert execute(server, f"print(HttpPost('{server.url}/tools/execute-script', \"{nested}\"))") == "true\n\n"
    assert execute(server, "print(RestApiPost('/tools/execute-script', 'print(6 * 7)'))") == "42\n\n"
    assert time.monotonic() - started < 5


def test_uploads_from_inside_the_instance_filter(server: Isengard) -> None:
    stored = server.upload(variant(MALATERRE, "STORED-FIRST"))["ID"]
    ds = pydicom.dcmread(io.BytesIO(variant(MALATERRE, "FILTER-UPLOADS")))
    ds.StudyDescription = stored
    out = io.BytesIO()
    ds.save_as(out)
    started = time.monotonic()
    assert server.upload(out.getvalue())["Status"] == "Success"
    assert time.monotonic() - started < 5
    assert "FILTER nested uploads: AlreadyStored AlreadyStored" in server.log()


# -- safety ------------------------------------------------------------------------------


def test_errors_in_callbacks_are_logged_and_storage_goes_on(server: Isengard) -> None:
    failing = server.upload(variant(MALATERRE, "ERROR"))
    assert failing["Status"] == "Success"
    after = server.upload(variant(MALATERRE, "AFTER-ERROR"))
    assert records(server, "OnStoredInstance", after["ID"])
    assert re.search(r"Error while processing Lua events: .*callbacks\.lua:28: this callback fails on purpose",
                     server.log())


def test_callback_timeout_interrupts_and_events_go_on(server: Isengard) -> None:
    started = time.monotonic()
    looping = server.upload(variant(MALATERRE, "LOOP"))
    assert looping["Status"] == "Success" and time.monotonic() - started < 1
    after = server.upload(variant(MALATERRE, "AFTER-LOOP"))
    assert records(server, "OnStoredInstance", after["ID"], timeout=10)
    assert re.search(r"callbacks\.lua:26: Lua callback interrupted: it ran longer than "
                     r"LuaCallbackTimeout \(2 s\)", server.log())
    answer = server.post("/tools/execute-script", b"while true do pcall(function() while true do end end) end")
    assert answer.status_code == 500 and "interrupted" in answer.json()["Details"]


def test_slow_callbacks_do_not_slow_ingestion(server: Isengard, recorder: tuple[str, list]) -> None:
    url, _ = recorder
    execute(server, f"slowUrl = '{url}'")
    files = [variant(MALATERRE, "SLOW") for _ in range(4)]
    started = time.monotonic()
    # Over DICOM: over HTTP, IncomingHttpRequestFilter would wait for the main state, as in Orthanc.
    assert [c_store(server, data) for data in files] == [0] * 4
    assert time.monotonic() - started < 1.5        # the four callbacks take 2 s together
    for instance in server.json("/instances"):
        assert records(server, "OnStoredInstance", instance)


def test_a_full_event_queue_holds_publishers_back_without_losing_events(
        make_isengard: Callable[..., Isengard], recorder: tuple[str, list]) -> None:
    url, _ = recorder
    server = make_isengard(LuaScripts=[str(LUA / "callbacks.lua")], ExecuteLuaEnabled=True,
                           LuaEventQueueSize=1, LuaCallbackTimeout=10)
    execute(server, f"slowUrl = '{url}'")
    files = [variant(MALATERRE, "SLOW") for _ in range(4)]
    started = time.monotonic()
    assert [c_store(server, data) for data in files] == [0] * 4
    # One callback running, one event queued: the last two stores waited for room.
    assert time.monotonic() - started > 0.8
    assert len(records(server, "OnStoredInstance", count=4)) == 4


def test_lua_cannot_reach_python(server: Isengard) -> None:
    output = execute(server, """
        print(type(python), select(2, pcall(require, 'python')):match("module 'python' not found") ~= nil)
        print(type(debug.getupvalue), type(debug.getlocal), type(os.exit), type(package.loadlib))
        print(pcall(function() return RestApiGet.__class__ end))
        print(load(string.dump(function() end)))
        local found = {}
        local function walk(value, path, depth)
          if depth > 4 then return end
          for k, v in pairs(value) do
            local name = path .. '.' .. tostring(k)
            if type(v) == 'userdata' and not tostring(v):find('^file') then table.insert(found, name) end
            if type(v) == 'table' and v ~= _G then walk(v, name, depth + 1) end
          end
        end
        walk(_G, '_G', 0)
        print('userdata:', #found, table.concat(found, ' '))
        local ok, err = pcall(SendToModality, 'x', 'y')
        print(type(err))
    """)
    lines = output.splitlines()
    assert lines[0] == "nil, true"
    assert lines[1] == "nil, nil, nil, nil"
    assert lines[2].startswith("false, ") and "attempt to index a function value" in lines[2]
    assert lines[3].startswith("nil, attempt to load a binary chunk")
    assert lines[4] == "userdata:, 0, "
    assert lines[5] == "string"


def test_routing_helpers_modify_send_and_delete(tmp_path: Path) -> None:
    target = Isengard(tmp_path / "target", DicomAet="TARGET").start()
    peer = Isengard(tmp_path / "peer").start()
    router = Isengard(tmp_path / "router", ExecuteLuaEnabled=True,
                      DicomModalities={"target": {"AET": "TARGET", "Host": "127.0.0.1",
                                                  "Port": target.dicom_port}},
                      OrthancPeers={"peer": [peer.url]}).start()
    try:
        original = router.upload(sample("Formats/Jpeg.dcm"))["ID"]
        answer = router.post("/tools/execute-script", f"""
            local modified = ModifyInstance('{original}', {{ StudyDescription = 'Routed' }},
                                            {{ 'SeriesDescription' }}, true)
            print(modified ~= '{original}')
            print(SendToModality(modified, 'target'))
            print(SendToPeer('{original}', 'peer') == '{original}')
            Delete(modified)
        """.encode())
        assert answer.status_code == 200, answer.text
        lines = answer.text.splitlines()
        assert lines[0] == "true" and lines[2] == "true"
        sent = target.json("/instances")
        assert sent == [lines[1]]
        tags = target.json(f"/instances/{sent[0]}/simplified-tags")
        assert tags["StudyDescription"] == "Routed" and "SeriesDescription" not in tags
        assert peer.json("/instances") == [original]
        assert router.json("/instances") == [original]
        failed = router.post("/tools/execute-script", b"SendToModality('nonexistent', 'target')")
        assert failed.status_code == 500 and "SendToModality()" in failed.json()["Details"]
    finally:
        for server in (router, target, peer):
            server.stop()


def test_finalize_runs_at_stop_and_a_broken_script_stops_start_up(tmp_path: Path) -> None:
    shutil.copy(LUA / "callbacks.lua", tmp_path / "callbacks.lua")
    server = Isengard(tmp_path / "ok", LuaScripts=[str(tmp_path / "callbacks.lua")]).start()
    assert server.stop() == 0
    assert "FINALIZE has run" in server.log()
    broken = Isengard(tmp_path / "broken", LuaScripts=[str(LUA / "broken.lua")])
    with pytest.raises(RuntimeError):
        broken.start()
    assert broken.process is not None and broken.process.returncode != 0
    assert re.search(r"broken\.lua:4: unexpected symbol near '='", broken.log())


# -- shipped scripts ---------------------------------------------------------------------


def test_job_events_script_posts_a_webhook_on_failure(make_isengard: Callable[..., Isengard],
                                                      recorder: tuple[str, list[bytes]]) -> None:
    url, bodies = recorder
    server = make_isengard(LuaScripts=[str(REPO / "scripts" / "job-events.lua")], LuaJobEventsWebhook=url,
                           DicomModalities={"unreachable": ["NOBODY", "127.0.0.1", free_port()]})
    instance = server.upload(MALATERRE.read_bytes())["ID"]
    answer = server.post("/modalities/unreachable/store",
                         json.dumps({"Resources": [instance], "Asynchronous": True}))
    job = answer.json()["ID"]
    assert wait_for(lambda: bodies, 20)
    document = json.loads(bodies[0])
    assert (document["Event"], document["JobId"], document["Type"]) == \
        ("JobFailure", job, "DicomModalityStore")
    assert document["ErrorCode"] == server.json(f"/jobs/{job}")["ErrorCode"]
    assert f"Job {job} (DicomModalityStore) has failed" in server.log()


def test_modify_on_reception_sample(make_isengard: Callable[..., Isengard]) -> None:
    server = make_isengard(LuaScripts=[str(REPO / "samples" / "lua" / "modify-on-reception.lua")])
    server.upload(variant(MALATERRE, "TO-MODIFY"))

    def replaced() -> list[str]:
        instances = server.json("/instances")
        tags = server.get(f"/instances/{instances[0]}/simplified-tags") if len(instances) == 1 else None
        if tags is None or tags.status_code != 200 or tags.json().get("InstitutionName") != "Isengard Hospital":
            return []
        return instances
    (instance,) = wait_for(replaced)
    assert server.get(f"/instances/{instance}/metadata/Origin").text == "Lua"


# -- differential: the same scripts on the real Orthanc ----------------------------------

DIFFERENTIAL_FILES = [sample(name) for name in (
    "ColorTestMalaterre.dcm", "ColorTestImageJ.dcm", "Issue143.dcm", "2019-06-17-VedranZdesic.dcm",
    "2017-06-27-XSSInjection.dcm", "PatientIdsCollision/Image1.dcm")]

JSON_HELPERS = r"""
print(DumpJson({a='1', b=2.5, c=true}), DumpJson({a='1', b=2.5, c=true}, true))
print(DumpJson({1,2,3}), DumpJson({}), DumpJson(0.1), DumpJson(nil), DumpJson('12'), DumpJson(1e20))
print(DumpJson(2^31), DumpJson(-3.0), DumpJson({[1]=1,[3]=3}), DumpJson({a={b={}}, [1]='x'}))
print(DumpJson({100.0, '0x10', ' 12 ', '1e2'}), DumpJson({100.0, 3}, true), DumpJson('h\195\164\1/"'))
local t = ParseJson('{"a":1,"b":[1,2.5,"s"],"c":null,"d":true,"e":{}}')
print(t.a, t.b[1], t.b[2], t.b[3], t.c, t.d, type(t.e), math.type(t.a), ParseJson('nope'), ParseJson('3'))
PrintRecursive({b={c='x', 1}})  -- one string key per table: their pairs() order varies
PrintRecursive('s')
local lookup = RestApiPost('/tools/lookup', 'x')
print(RestApiGet('/instances/nope'), RestApiDelete('/instances/nope'), DumpJson(ParseJson(lookup)))
print(type(GetOrthancConfiguration()), math.type(GetOrthancConfiguration()['StableAge']))
print(pcall(error, 'x'), select('#', nil, nil), ("%5.1f"):format(3.14159))
"""


@pytest.fixture(scope="module")
def both(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Isengard, Orthanc]]:
    if not Path("/usr/sbin/Orthanc").exists():
        pytest.skip("the real Orthanc is not installed")
    script = str(LUA / "differential.lua")
    options = {"ExecuteLuaEnabled": True, "LuaScripts": [script], "StableAge": 1}
    ours = Isengard(tmp_path_factory.mktemp("lua-differential"), **options).start()
    theirs = Orthanc(tmp_path_factory.mktemp("lua-orthanc"), **options).start()
    yield ours, theirs
    ours.stop()
    theirs.stop()


def test_differential_json_helpers(both: tuple[Isengard, Orthanc]) -> None:
    ours, theirs = both
    assert execute(ours, JSON_HELPERS) == execute(theirs, JSON_HELPERS)


def test_differential_on_stored_instance_arguments(both: tuple[Isengard, Orthanc]) -> None:
    ours, theirs = both
    for path in DIFFERENTIAL_FILES:
        assert ours.post("/instances", path.read_bytes()).status_code == 200
        assert theirs.post("/instances", path.read_bytes()).status_code == 200
    dump = "print(DumpJson(stored))"
    expected = len(DIFFERENTIAL_FILES)
    mine = wait_for(lambda: (lambda s: s if len(s) == expected else None)(json.loads(execute(ours, dump))))
    reference = wait_for(lambda: (lambda s: s if len(s) == expected else None)(json.loads(execute(theirs, dump))))
    assert sorted(mine) == sorted(reference)
    for instance, ref in reference.items():
        got = mine[instance]
        assert json.loads(got["tags"]) == json.loads(ref["tags"]), instance
        assert json.loads(got["origin"]) == json.loads(ref["origin"])
        ours_meta, ref_meta = json.loads(got["metadata"]), json.loads(ref["metadata"])
        assert sorted(ours_meta) == sorted(ref_meta)
        volatile = {"ReceptionDate"}
        assert {k: v for k, v in ours_meta.items() if k not in volatile} == \
            {k: v for k, v in ref_meta.items() if k not in volatile}


def test_differential_filter_arguments(both: tuple[Isengard, Orthanc]) -> None:
    ours, theirs = both
    data = variant(MALATERRE, "DIFFERENTIAL-FILTER")
    uid = pydicom.dcmread(io.BytesIO(data)).SOPInstanceUID

    def arguments(server: Any) -> list | None:
        for line in server.log_path.read_text(errors="replace").splitlines():
            match = re.search(r"DIFFERENTIAL-FILTER (.*)$", line)
            if match and json.loads(match.group(1))[0] == uid:
                return json.loads(match.group(1))
        return None
    ours.post("/instances", data)
    theirs.post("/instances", data)
    assert wait_for(lambda: arguments(ours)) == wait_for(lambda: arguments(theirs))


def test_http_requests_wait_for_the_callbacks_queued_before_them(
        make_isengard: Callable[..., Isengard], tmp_path: Path) -> None:
    """Orthanc's Jpeg2000Conversion sample: C-STORE, then REST sees what OnStoredInstance did."""
    script = tmp_path / "slow.lua"
    script.write_text("""
        function OnStoredInstance(instanceId, tags, metadata, origin)
          local started = os.clock()
          while os.clock() - started < 0.3 do end
          RestApiPut('/instances/' .. instanceId .. '/metadata/1024', 'done')
        end
    """)
    server = make_isengard(LuaScripts=[str(script)])
    files = [variant(MALATERRE, f"WAIT{i}") for i in range(3)]
    assert [c_store(server, data) for data in files] == [0] * 3
    instances = server.json("/instances")
    assert len(instances) == 3
    for instance in instances:
        assert server.get(f"/instances/{instance}/metadata/1024").text == "done"
