# A script that exercises the orthanc module and records what it sees.
#
# GET /probe/state answers the recording; POST /probe/mode sets how the filters
# and the received-instance callback behave.

import json
import threading

import orthanc

STATE = {"changes": [], "stored": [], "filtered": [], "received": [], "cstore": [], "import": {}}
MODE = {"received": "keep", "cstore": 0, "http": "allow"}
LOCK = threading.Lock()


def record(key, value):
    with LOCK:
        STATE[key].append(value)


def attempt(function, *args):
    """[type name, result] of a call, or ["OrthancException", args] / [error type, message]."""
    try:
        value = function(*args)
    except orthanc.OrthancException as e:
        return ["OrthancException", list(e.args)]
    except Exception as e:
        return [type(e).__name__, str(e)]
    if isinstance(value, bytes):
        return ["bytes", value.decode("utf-8", "replace")]
    return [type(value).__name__, value]


# -- at import time: the REST API is not there yet, registering twice is refused -----------

STATE["import"]["rest_api"] = attempt(orthanc.RestApiGet, "/system")
STATE["import"]["name"] = __name__


def on_change(change_type, resource_type, resource_id):
    record("changes", [change_type, resource_type, resource_id, threading.current_thread().name])
    if change_type == orthanc.ChangeType.NEW_INSTANCE:
        # Calling the REST API from a change callback must not deadlock.
        orthanc.RestApiGet(f"/instances/{resource_id}")


orthanc.RegisterOnChangeCallback(on_change)
STATE["import"]["twice"] = attempt(orthanc.RegisterOnChangeCallback, on_change)
STATE["import"]["bad_route"] = attempt(orthanc.RegisterRestCallback, "/x", "not callable")


def on_stored(instance, instance_id):
    record("stored", {
        "id": instance_id,
        "type": type(instance).__name__,
        "origin": instance.GetInstanceOrigin(),
        "aet": instance.GetInstanceRemoteAet(),
        "size": instance.GetInstanceSize(),
        "same_data": instance.GetInstanceData() == orthanc.GetDicomForInstance(instance_id),
        "data_type": type(instance.GetInstanceData()).__name__,
        "syntax": instance.GetInstanceTransferSyntaxUid(),
        "has_reception": instance.HasInstanceMetadata("ReceptionDate"),
        "origin_metadata": instance.GetInstanceMetadata("Origin"),
        "missing_metadata": instance.GetInstanceMetadata("NoSuchMetadata"),
        "pixels": instance.HasInstancePixelData(),
        "frames": instance.GetInstanceFramesCount(),
        "patient_id": json.loads(instance.GetInstanceSimplifiedJson()).get("PatientID"),
        "full_sop": json.loads(instance.GetInstanceJson())["0008,0018"]["Name"],
        "thread": threading.current_thread().name,
    })


orthanc.RegisterOnStoredInstanceCallback(on_stored)


def received(data, origin):
    mode = MODE["received"]
    record("received", [len(data), origin, mode, json.loads(orthanc.RestApiGet("/system"))["ApiVersion"],
                        type(data).__name__])
    if mode == "discard":
        return orthanc.ReceivedInstanceAction.DISCARD, None
    if mode == "modify":
        from io import BytesIO

        import pydicom
        ds = pydicom.dcmread(BytesIO(data))
        ds.PatientName = "MODIFIED^BY^PYTHON"
        out = BytesIO()
        ds.save_as(out)
        return orthanc.ReceivedInstanceAction.MODIFY, out.getvalue()
    if mode == "modify-without-data":
        return orthanc.ReceivedInstanceAction.MODIFY, None
    if mode == "raise":
        raise ValueError("received callback failed on purpose")
    if mode == "not-a-tuple":
        return 1
    return orthanc.ReceivedInstanceAction.KEEP_AS_IS, None


orthanc.RegisterReceivedInstanceCallback(received)


def cstore_filter(instance):
    record("cstore", [instance.GetInstanceRemoteAet(), instance.GetInstanceOrigin(),
                      json.loads(instance.GetInstanceSimplifiedJson()).get("SOPInstanceUID"),
                      json.loads(orthanc.RestApiGet("/system"))["ApiVersion"]])
    if MODE["cstore"] == "raise":
        raise RuntimeError("C-STORE filter failed on purpose")
    return MODE["cstore"]


orthanc.RegisterIncomingCStoreInstanceFilter(cstore_filter)


def http_filter(uri, **request):
    if uri.startswith("/probe/filter"):
        record("filtered", [uri, request])
        json.loads(orthanc.RestApiGet("/system"))
    if uri.startswith("/forbidden"):
        return False
    if uri.startswith("/filter-raises"):
        raise ValueError("HTTP filter failed on purpose")
    if uri.startswith("/filter-not-bool"):
        return 1
    return True


orthanc.RegisterIncomingHttpRequestFilter(http_filter)


# -- REST callbacks ----------------------------------------------------------------------

def echo(output, uri, **request):
    shown = {key: (value.decode() if isinstance(value, bytes) else value) for key, value in request.items()}
    shown["groups_type"] = type(request["groups"]).__name__
    output.AnswerBuffer(json.dumps({"uri": uri, "request": shown}), "application/json")


orthanc.RegisterRestCallback("/probe/echo/([^/]*)(/x)?(/y)?", echo)
orthanc.RegisterRestCallback("/probe/filter", echo)


def answers(output, uri, **request):
    kind = request["groups"][0]
    if kind == "status-404":
        output.SendHttpStatusCode(404)
    elif kind == "status-200":
        output.SendHttpStatusCode(200)
    elif kind == "status-418":
        output.SendHttpStatusCode(418)
    elif kind == "status-with-body":
        output.SendHttpStatus(400, b"my error body")
    elif kind == "status-with-size":
        output.SendHttpStatus(409, b"abcdef", 3)
    elif kind == "redirect":
        output.Redirect("/app/explorer.html")
    elif kind == "not-allowed":
        output.SendMethodNotAllowed("GET,PUT")
    elif kind == "unauthorized":
        output.SendUnauthorized("my realm")
    elif kind == "cookies":
        output.SetCookie("session", "abc")
        output.SetCookie("theme", "dark")
        output.SetHttpHeader("X-Probe", "yes")
        output.AnswerBuffer("héllo", "text/plain; charset=utf-8")
    elif kind == "twice":
        output.AnswerBuffer(b"first", "text/plain")
        output.AnswerBuffer(b"second", "text/plain")
    elif kind == "multipart":
        output.StartMultipartAnswer("related", "application/dicom")
        output.SendMultipartItem(b"abc")
        output.SendMultipartItem(b"defg")
    elif kind == "raise":
        output.SetHttpErrorDetails("details set by the script", 1)
        raise ValueError("REST callback failed on purpose")
    elif kind == "orthanc-exception":
        orthanc.RestApiGet("/instances/no-such-instance")
    elif kind == "silent":
        pass


orthanc.RegisterRestCallback("/probe/answers/(.*)", answers)
orthanc.RegisterRestCallback("/system", lambda output, uri, **request: output.AnswerBuffer(b"system from python",
                                                                                           "text/plain"))
orthanc.RegisterRestCallback("/probe/mode", lambda output, uri, **request: (
    MODE.update(json.loads(request["body"])), output.AnswerBuffer(json.dumps(MODE), "application/json")))


def state(output, uri, **request):
    with LOCK:
        output.AnswerBuffer(json.dumps(STATE), "application/json")


orthanc.RegisterRestCallback("/probe/state", state)


def nested(output, uri, **request):
    """A REST callback that waits for another script route (through the REST API)."""
    inner = json.loads(orthanc.RestApiGetAfterPlugins("/probe/echo/" + request["groups"][0]))
    output.AnswerBuffer(inner["uri"], "text/plain")


orthanc.RegisterRestCallback("/probe/nested/(.*)", nested)
orthanc.RegisterRestCallback("/probe/token", lambda output, uri, **request: output.AnswerBuffer(
    orthanc.GenerateRestApiAuthorizationToken(), "text/plain"))


def api(output, uri, **request):
    """Every function of the module that answers something, with its result."""
    body = json.loads(request["body"])
    instance = body["instance"]
    with open(body["file"], "rb") as f:
        dicom = f.read()
    created = orthanc.CreateDicomInstance(dicom)
    results = {
        "get": attempt(orthanc.RestApiGet, f"/instances/{instance}/metadata/Origin"),
        "get_builtin_system": attempt(lambda: json.loads(orthanc.RestApiGet("/system"))["ApiVersion"]),
        "get_after_plugins_system": attempt(orthanc.RestApiGetAfterPlugins, "/system"),
        "get_script_route": attempt(orthanc.RestApiGet, "/probe/echo/a"),
        "get_script_route_after_plugins": attempt(
            lambda: json.loads(orthanc.RestApiGetAfterPlugins("/probe/echo/a"))["request"]["method"]),
        "get_missing": attempt(orthanc.RestApiGet, "/instances/no-such-instance"),
        "get_unknown_route": attempt(orthanc.RestApiGet, "/no/such/route"),
        "post_find": attempt(orthanc.RestApiPost, "/tools/find", json.dumps({"Level": "Instance", "Query": {}})),
        "post_str_body": attempt(orthanc.RestApiPost, "/tools/find", '{"Level": "Patient", "Query": {}}'),
        "post_bad_json": attempt(orthanc.RestApiPost, "/tools/find", b"not json"),
        "post_instance": attempt(lambda: [json.loads(orthanc.RestApiPost("/instances", dicom))[key]
                                          for key in ("Status", "ID")]),
        "put": attempt(orthanc.RestApiPut, f"/instances/{instance}/metadata/1024", b"set by python"),
        "put_after_plugins": attempt(orthanc.RestApiPutAfterPlugins, f"/instances/{instance}/metadata/1025",
                                     "also by python"),
        "post_after_plugins": attempt(lambda: json.loads(orthanc.RestApiPostAfterPlugins(
            "/probe/echo/p", b"body"))["request"]["body"]),
        "delete": attempt(orthanc.RestApiDelete, f"/instances/{instance}/metadata/1025"),
        "delete_missing": attempt(orthanc.RestApiDelete, "/patients/no-such-patient"),
        "delete_after_plugins": attempt(orthanc.RestApiDeleteAfterPlugins, "/probe/echo/d"),
        "configuration": attempt(lambda: sorted(json.loads(orthanc.GetConfiguration()))),
        "uuid_length": attempt(lambda: len(orthanc.GenerateUuid())),
        "error_description": attempt(orthanc.GetErrorDescription, orthanc.ErrorCode.UNKNOWN_RESOURCE),
        "dicom_size": attempt(lambda: len(orthanc.GetDicomForInstance(instance))),
        "dicom_missing": attempt(orthanc.GetDicomForInstance, "no-such-instance"),
        "lookup_patient": attempt(orthanc.LookupPatient, body["patient_id"]),
        "lookup_study": attempt(orthanc.LookupStudy, body["study_uid"]),
        "lookup_series": attempt(orthanc.LookupSeries, body["series_uid"]),
        "lookup_instance": attempt(orthanc.LookupInstance, body["sop_uid"]),
        "lookup_missing": attempt(orthanc.LookupInstance, "1.2.3.4.5.6.7.404"),
        "created_origin": attempt(created.GetInstanceOrigin),
        "created_size": attempt(created.GetInstanceSize),
        "created_frames": attempt(created.GetInstanceFramesCount),
        "metrics": attempt(orthanc.SetMetricsValue, "python_probe_value", 42, orthanc.MetricsType.DEFAULT),
        "log": attempt(orthanc.LogWarning, "warning from the probe script"),
        "log_not_text": attempt(orthanc.LogWarning, 42),
    }
    output.AnswerBuffer(json.dumps(results), "application/json")


orthanc.RegisterRestCallback("/probe/api", api)
