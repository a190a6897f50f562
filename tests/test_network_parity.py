"""Isengard and the real Orthanc 1.10.1 given the same requests: ``/modalities``, ``/peers``,
``/queries``, the DICOM server's metadata and C-GET, and Lua autorouting answer alike."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pydicom
import pytest

from conftest import ORTHANC_BINARY, Isengard, Orthanc, Server, dcmtk, dcmtk_env, sample
from helpers import orthanc_error

#: An uncompressed file (Explicit VR Little Endian) that needs no codec to be sent anywhere.
FILE = "ColorTestImageJ.dcm"


def _modalities(own_aet: str, own_port: int, other_aet: str, other_port: int) -> dict[str, Any]:
    return {"self": [own_aet, "127.0.0.1", own_port], "other": [other_aet, "127.0.0.1", other_port],
            "getscu": ["GETSCU", "127.0.0.1", 1]}


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Isengard, Orthanc]]:
    """Isengard and a real Orthanc, each knowing itself and the other as modalities."""
    if not ORTHANC_BINARY.exists():
        pytest.skip("the real Orthanc is not installed (make test installs it)")
    root = tmp_path_factory.mktemp("parity")
    isengard = Isengard(root / "isengard", LogExportedResources=True, ExecuteLuaEnabled=True)
    orthanc = Orthanc(root / "orthanc", LogExportedResources=True)
    orthanc_config = json.loads(orthanc.config_path.read_text())
    orthanc_config["DicomModalities"] = _modalities("ORTHANCREF", orthanc.dicom_port,
                                                    "ISENGARD", isengard.dicom_port)
    orthanc.config_path.write_text(json.dumps(orthanc_config))
    isengard.config["DicomModalities"] = _modalities("ISENGARD", isengard.dicom_port,
                                                     "ORTHANCREF", orthanc.dicom_port)
    isengard.config_path.write_text(json.dumps(isengard.config))
    orthanc.start()
    isengard.start()
    yield isengard, orthanc
    isengard.stop()
    orthanc.stop()


@pytest.fixture
def clean(pair: tuple[Isengard, Orthanc]) -> tuple[Isengard, Orthanc]:
    for server in pair:
        server.clear()
        server.delete("/exports")
    return pair


def _neutral(value: Any, aet: str) -> Any:
    """``value`` with the server's own AET (``RetrieveAETitle``...) replaced by ``<AET>``."""
    if isinstance(value, dict):
        return {k: _neutral(v, aet) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_neutral(v, aet) for v in value]
    return "<AET>" if value == aet else value


def _status(answer: Any) -> int:
    return answer.status_code


def _both(pair: tuple[Isengard, Orthanc], method: str, path: str, body: Any = None) -> list[Any]:
    """The same request to both servers: [Isengard's answer, Orthanc's answer]."""
    data = body if body is None or isinstance(body, (str, bytes)) else json.dumps(body)
    return [getattr(server, method)(path, data) if data is not None else getattr(server, method)(path)
            for server in pair]


# -- /modalities and /peers -------------------------------------------------------------


@pytest.mark.parametrize("body", [
    ["STORESCP", "localhost", 2000, "MedInria"], ["STORESCP", "localhost", 2000, "AgfaImpax"],
    ["STORESCP", "localhost", 2000, "GenericNoUniversalWildcard"],
    ["STORESCP", "localhost", 2000, "InvalidManufacturerName"],
    {"AET": "X", "Host": "h", "Port": 104, "Manufacturer": "ClearCanvas", "AllowEcho": False},
])
def test_modality_manufacturers_as_orthanc(pair: tuple[Isengard, Orthanc], body: Any) -> None:
    answers = _both(pair, "put", "/modalities/tata", body)
    assert _status(answers[0]) == _status(answers[1])
    if _status(answers[1]) == 200:
        listings = [server.json("/modalities?expand")["tata"] for server in pair]
        assert [server.json("/modalities/tata/configuration") for server in pair] == listings
        # Orthanc 1.12.6 adds RetrieveMethod, which 1.10.1 does not show
        assert listings[0].pop("RetrieveMethod") == "SystemDefault"
        assert listings[0] == listings[1]
    for server in pair:
        server.delete("/modalities/tata")


def test_peer_user_properties_as_orthanc(pair: tuple[Isengard, Orthanc]) -> None:
    body = {"Url": "http://localhost:8042/", "Username": "user", "Password": "pass",
            "RemoteSelf": "self", "Flag": True, "Number": 3, "HttpHeaders": {"X-Token": "secret"}}
    assert [_status(a) for a in _both(pair, "put", "/peers/tata", body)] == [200, 200]
    listings = [server.json("/peers?expand")["tata"] for server in pair]
    assert listings[0] == listings[1]
    assert listings[0]["RemoteSelf"] == "self" and listings[0]["Password"] is None
    assert [server.json("/peers/tata/configuration") for server in pair] == listings
    refused = _both(pair, "put", "/peers/toto", {"Url": "http://localhost:8042/", "List": [1]})
    assert [orthanc_error(a)[:2] for a in refused] == [(400, 15), (400, 15)]
    for server in pair:
        server.delete("/peers/tata")


def test_echo_forms_as_orthanc(pair: tuple[Isengard, Orthanc]) -> None:
    isengard, orthanc = pair
    for server, other in ((isengard, orthanc), (orthanc, isengard)):
        target = [other.aet, "127.0.0.1", other.dicom_port]
        assert server.post("/tools/dicom-echo", json.dumps(target)).json() == {}
        configuration = server.json("/modalities/other/configuration")
        assert server.post("/tools/dicom-echo", json.dumps(configuration)).json() == {}
        for body in ("", "{}", '{"CheckFind": true}', '{"Timeout": 5}', "[1, 2]"):
            assert server.post("/modalities/other/echo", body).json() == {}, body
        assert server.post("/tools/dicom-echo", json.dumps({
            "AET": other.aet, "Host": "127.0.0.1", "Port": other.dicom_port, "CheckFind": True,
        })).json() == {}


# -- /queries ---------------------------------------------------------------------------


def _query(server: Server, level: str, query: dict[str, str], **options: Any) -> str:
    answer = server.post("/modalities/self/query", json.dumps({"Level": level, "Query": query,
                                                              **options}))
    assert answer.status_code == 200, answer.text
    return answer.json()["Path"]


def test_query_hierarchy_as_orthanc(clean: tuple[Isengard, Orthanc]) -> None:
    results = []
    for server in clean:
        server.upload(sample(FILE))
        patient = _query(server, "Patient", {"PatientID": "*"})
        children = {}
        for route in ("query-studies", "query-series", "query-instances"):
            child = server.post(f"{patient}/answers/0/{route}", '{"Query": {}}')
            assert child.status_code == 200, child.text
            children[route] = server.json(child.json()["Path"] + "/answers?expand&simplify")
        study = _query(server, "Study", {"PatientID": "*", "StudyDate": "19000101-"})
        assert server.post(f"{study}/answers/0/query-studies", "{}").status_code == 404
        assert orthanc_error(server.get(f"{study}/answers/x/content"))[:2] == (400, 5)
        children["query"] = [server.json(f"{study}/query{f}") for f in ("", "?short", "?simplify")]
        results.append(_neutral((server.json(f"{patient}/answers/0"), server.json(f"{study}/answers/0"),
                                 server.get(f"{study}/level").text, server.get(f"{study}/modality").text,
                                 children), server.aet))
    assert results[0] == results[1]


def test_retrieve_job_formats_as_orthanc(clean: tuple[Isengard, Orthanc]) -> None:
    results = []
    for server in clean:
        server.upload(sample(FILE))
        study = _query(server, "Study", {})
        answers = [server.json(f"{study}/answers?expand{suffix}") for suffix in ("", "&short", "&simplify")]
        jobs = []
        for body in ({}, {"Full": True}, {"Simplify": True}, {"Short": True}):
            job = server.post(f"{study}/retrieve", json.dumps(body))
            assert job.status_code == 200, job.text
            content = job.json()
            jobs.append((content["Description"], content["Query"], content["RemoteAet"] == server.aet,
                         content["LocalAet"] == server.aet))
        results.append(_neutral((answers, jobs), server.aet))
    assert results[0] == results[1]


def test_number_keys_in_queries_as_orthanc(clean: tuple[Isengard, Orthanc]) -> None:
    rows = str(pydicom.dcmread(sample(FILE)).Rows)
    results = []
    for server in clean:
        server.upload(sample(FILE))
        found = []
        for value, normalize in (("42", True), ("42", False), (rows, False), ("", False)):
            path = _query(server, "Instance", {"Rows": value}, Normalize=normalize)
            found.append([a.get("Rows") for a in server.json(f"{path}/answers?expand&simplify")])
        results.append(found)
    assert results[0] == results[1]
    assert results[0][2] == [rows]


def test_normalized_keys_follow_the_modules_as_orthanc(clean: tuple[Isengard, Orthanc]) -> None:
    """A normalized query keeps the attributes of the DICOM modules of its level and above."""
    keys = {"Study": {"InstitutionName": "", "StudyDescription": "", "PatientSex": "", "Modality": ""},
            "Series": {"BodyPartExamined": "", "Manufacturer": "", "StudyID": ""},
            "Instance": {"SOPClassUID": "", "InstanceNumber": "", "NumberOfFrames": "",
                         "ImagePositionPatient": ""}}
    results = []
    for server in clean:
        server.upload(sample(FILE))
        answers = {}
        for level, query in keys.items():
            path = _query(server, level, query)
            answers[level] = server.json(f"{path}/answers?expand&short")
        results.append(_neutral(answers, server.aet))
    assert results[0] == results[1]


def test_refused_query_as_orthanc(pair: tuple[Isengard, Orthanc]) -> None:
    """A C-FIND the remote refuses with 0xC000 (``*`` on a date) is a 422, whoever answers it."""
    body = {"Level": "Series", "Query": {"PatientName": "*NE*", "StudyDate": "*"}}
    for modality in ("self", "other"):
        answers = _both(pair, "post", f"/modalities/{modality}/query", body)
        assert [orthanc_error(a)[:2] for a in answers] == [(422, 9), (422, 9)], modality


def test_query_body_checks_as_orthanc(pair: tuple[Isengard, Orthanc]) -> None:
    for body in ({"Level": "Study", "LocalAet": 3}, {"Level": "Study", "Normalize": "yes"},
                 {"Level": "Study", "Query": []}):
        assert [orthanc_error(a)[:2] for a in _both(pair, "post", "/modalities/self/query", body)] == \
            [(400, 15), (400, 15)], body


# -- the DICOM server -------------------------------------------------------------------


def _storescu(server: Server, *options: str) -> None:
    result = subprocess.run([dcmtk("storescu"), *options, "127.0.0.1", str(server.dicom_port),
                             str(sample(FILE))], capture_output=True, text=True, timeout=60,
                            env=dcmtk_env())
    assert result.returncode == 0, result.stderr


def test_received_instances_metadata_as_orthanc(clean: tuple[Isengard, Orthanc]) -> None:
    results = []
    for server in clean:
        _storescu(server, "-aec", "ANY-SCP")
        instance = server.json("/instances")[0]
        metadata = server.json(f"/instances/{instance}/metadata?expand")
        header = server.json(f"/instances/{instance}/header?simplify")
        results.append(({k: metadata[k] for k in ("CalledAET", "RemoteAET", "Origin", "TransferSyntax",
                                                  "PixelDataOffset")}, header))
    assert results[0] == results[1]
    assert results[0][0]["CalledAET"] == "ANY-SCP"


@pytest.mark.parametrize("name", [FILE, "TransferSyntaxes/1.2.840.10008.1.2.dcm"])
def test_getscu_after_accepted_syntaxes_change(clean: tuple[Isengard, Orthanc], tmp_path: Path,
                                               name: str) -> None:
    """C-GET after ``PUT /tools/accepted-transfer-syntaxes``: ``getscu`` proposes the uncompressed
    syntaxes, the server chooses Explicit VR Little Endian and transcodes to it."""
    uid = pydicom.dcmread(sample(name), force=True).StudyInstanceUID
    syntaxes = []
    for server in clean:
        server.upload(sample(name))
        accepted = server.json("/tools/accepted-transfer-syntaxes")
        assert server.put("/tools/accepted-transfer-syntaxes", json.dumps(accepted)).status_code == 200
        folder = tmp_path / server.aet
        folder.mkdir()
        result = subprocess.run([dcmtk("getscu"), "-aet", "GETSCU", "-aec", server.aet, "-od", str(folder),
                                 "-k", "QueryRetrieveLevel=STUDY", "-k", f"StudyInstanceUID={uid}",
                                 "127.0.0.1", str(server.dicom_port)],
                                capture_output=True, text=True, timeout=60, env=dcmtk_env())
        assert result.returncode == 0, result.stderr
        received = [pydicom.dcmread(p) for p in folder.iterdir()]
        syntaxes.append([str(r.file_meta.TransferSyntaxUID) for r in received])
    assert syntaxes[0] == syntaxes[1] == ["1.2.840.10008.1.2.1"]


def test_last_export_as_orthanc(clean: tuple[Isengard, Orthanc]) -> None:
    results = []
    for server in clean:
        instance = server.upload(sample(FILE))
        for resource in (instance["ID"], instance["ParentSeries"]):
            assert server.post("/modalities/self/store", resource).status_code == 200
        last = server.json("/exports?last")
        everything = server.json("/exports")
        assert last["Last"] == everything["Last"] == last["Exports"][0]["Seq"]
        results.append([{k: v for k, v in e.items() if k not in ("Date", "Seq")}
                        for e in last["Exports"]])
    assert results[0] == results[1]
    assert [e["ResourceType"] for e in results[0]] == ["Series"]


# -- Lua autorouting --------------------------------------------------------------------

ROUTING = """
function OnStoredInstance(instanceId, tags, metadata, origin)
  if origin['RequestOrigin'] ~= 'Lua' then
    Delete(SendToModality(instanceId, 'other'))
    recorded = DumpJson(_AccessJob(), true)
  end
end
"""


def test_lua_autorouting_records_its_job(clean: tuple[Isengard, Orthanc]) -> None:
    isengard, orthanc = clean
    assert isengard.post("/tools/execute-script", "print(type(_InitializeJob), type(_AccessJob))").text \
        .strip() == "function, function"
    assert isengard.post("/tools/execute-script", ROUTING).status_code == 200
    try:
        instance = isengard.upload(sample(FILE))["ID"]
        for _ in range(100):
            if not isengard.json("/instances"):
                break
            time.sleep(0.1)
        assert isengard.json("/instances") == [] and orthanc.json("/instances") == [instance]
        recorded = json.loads(isengard.post("/tools/execute-script", "print(recorded)").text)
        assert recorded == [
            {"Operation": "store-scu", "Resource": instance, "Modality": "other"},
            {"Operation": "delete", "Resource": instance}]
    finally:
        isengard.post("/tools/execute-script", "function OnStoredInstance() end")
