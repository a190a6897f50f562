"""Labels (Orthanc 1.12): the routes, ``Labels`` in the views, ``/tools/labels``, the find
filters, and labels kept across restarts and in databases made before labels existed.

The real Orthanc here is 1.10.1, without labels: the expected answers follow Orthanc's
source (``OrthancRestResources.cpp``, ``ServerToolbox::CheckValidLabel``)."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from conftest import ON_POSTGRESQL, Isengard, sample

CT = sample("HierarchicalAnonymization/RTH/CT01.dcm")
OTHER = sample("ColorTestImageJ.dcm")
VALID = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-"


@pytest.fixture
def server(isengard: Isengard) -> Isengard:
    isengard.clear()
    return isengard


def _paths(answer: dict) -> list[str]:
    return [f"/instances/{answer['ID']}", f"/series/{answer['ParentSeries']}",
            f"/studies/{answer['ParentStudy']}", f"/patients/{answer['ParentPatient']}"]


def test_label_routes_at_every_level(server: Isengard) -> None:
    for base in _paths(server.upload(CT)):
        assert server.json(base)["Labels"] == []
        assert server.get(f"{base}/labels/hello").status_code == 404
        deleted = server.delete(f"{base}/labels/hello")
        assert (deleted.status_code, deleted.text) == (200, "")
        put = server.put(f"{base}/labels/hello")
        assert (put.status_code, put.text) == (200, "")
        assert server.put(f"{base}/labels/hello").status_code == 200  # twice is no error
        server.put(f"{base}/labels/world")
        got = server.get(f"{base}/labels/world")
        assert (got.status_code, got.text) == (200, "")
        assert server.json(base)["Labels"] == ["hello", "world"]
        assert server.json(f"{base}/labels") == ["hello", "world"]
        assert server.json("/tools/labels") == ["hello", "world"]
        server.delete(f"{base}/labels/hello")
        server.delete(f"{base}/labels/world")
        assert server.json("/tools/labels") == []
        assert server.put(f"{base}/labels/{VALID}").status_code == 200
        assert server.json("/tools/labels") == [VALID]
        server.delete(f"{base}/labels/{VALID}")


@pytest.mark.parametrize("label", ["@", "a b", "é", "x" * 65, "a.b"])
def test_invalid_labels_are_refused(server: Isengard, label: str) -> None:
    base = _paths(server.upload(CT))[0]
    for method in (server.put, server.delete):
        answer = method(f"{base}/labels/{label}")
        assert answer.status_code == 400
        assert answer.json()["OrthancError"] == "Parameter out of range"
        assert "A label must be a non-empty, alphanumeric string" in answer.json()["Details"]
    assert server.put(f"{base}/labels/{'x' * 64}").status_code == 200


def test_unknown_resource_is_404(server: Isengard) -> None:
    missing = "/studies/00000000-00000000-00000000-00000000-00000000"
    assert server.put(f"{missing}/labels/a").status_code == 404
    assert server.get(f"{missing}/labels").status_code == 404
    instance = server.upload(CT)["ID"]
    assert server.put(f"/series/{instance}/labels/a").status_code == 404  # wrong level


def test_labels_go_with_their_resource(server: Isengard) -> None:
    answer = server.upload(CT)
    server.put(f"/studies/{answer['ParentStudy']}/labels/kept")
    server.put(f"/instances/{answer['ID']}/labels/gone")
    server.delete(f"/instances/{answer['ID']}")
    assert server.json("/tools/labels") == []


def _find(server: Isengard, labels: list[str], constraint: str, level: str = "Instance",
          query: dict[str, str] | None = None) -> list[str]:
    answer = server.post("/tools/find", json={"Level": level, "Query": query or {},
                                             "Labels": labels, "LabelsConstraint": constraint})
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_find_with_labels(server: Isengard) -> None:
    first = server.upload(CT)
    second = server.upload(OTHER)["ID"]
    instance = first["ID"]
    assert sorted(_find(server, [], "All")) == sorted([instance, second])
    assert sorted(_find(server, [], "None")) == sorted([instance, second])
    server.put(f"/instances/{instance}/labels/a")
    server.put(f"/instances/{instance}/labels/b")
    assert _find(server, ["a"], "All") == [instance]
    assert _find(server, ["a", "b"], "All") == [instance]
    assert _find(server, ["a", "c"], "All") == []
    assert _find(server, ["c", "b"], "Any") == [instance]
    assert _find(server, ["c", "d"], "Any") == []
    assert _find(server, ["a"], "None") == [second]
    assert _find(server, ["c", "c"], "None") == sorted([instance, second], key=[instance, second].index)
    assert _find(server, [], "None") == [second]  # 1.12.11: no label at all
    assert _find(server, ["a"], "All", query={"PatientID": "nope"}) == []
    patient_id = server.json(f"/patients/{first['ParentPatient']}")["MainDicomTags"]["PatientID"]
    assert _find(server, ["a"], "All", query={"PatientID": patient_id}) == [instance]
    server.put(f"/studies/{first['ParentStudy']}/labels/b")
    assert _find(server, ["b"], "All", level="Study") == [first["ParentStudy"]]
    assert _find(server, ["b"], "None", level="Study") != [first["ParentStudy"]]


@pytest.mark.parametrize("body, details", [
    ({"Labels": "a"}, 'Field "Labels" must be an array of strings'),
    ({"Labels": [1]}, 'Field "Labels" must contain strings'),
    ({"LabelsConstraint": "Some"}, 'Field "LabelsConstraint" must be "All", "Any", or "None"'),
])
def test_find_label_fields_are_checked(server: Isengard, body: dict[str, Any],
                                       details: str) -> None:
    answer = server.post("/tools/find", json={"Level": "Study", "Query": {}, **body})
    assert answer.status_code == 400
    assert answer.json()["Details"] == details


def test_modify_keeps_labels_only_when_asked(server: Isengard) -> None:
    study = server.upload(CT)["ParentStudy"]
    server.put(f"/studies/{study}/labels/mine")
    plain = server.post(f"/studies/{study}/modify",
                        json={"Replace": {"StudyDescription": "x"}, "Force": True}).json()
    assert server.json(f"/studies/{plain['ID']}")["Labels"] == []
    kept = server.post(f"/studies/{study}/modify",
                       json={"Replace": {"StudyDescription": "y"}, "KeepLabels": True}).json()
    assert server.json(f"/studies/{kept['ID']}")["Labels"] == ["mine"]


@pytest.mark.skipif(ON_POSTGRESQL, reason="opens the SQLite file of an index written before labels")
def test_labels_survive_restart_and_old_databases(make_isengard: Any, tmp_path: Path) -> None:
    server = make_isengard()
    instance = server.upload(CT)["ID"]
    server.put(f"/instances/{instance}/labels/persisted")
    server.stop()
    server.start()
    assert server.json(f"/instances/{instance}")["Labels"] == ["persisted"]
    server.stop()
    index = next(Path(server.workdir).rglob("index.sqlite"))
    with closing(sqlite3.connect(index)) as db, db:  # a database from before labels existed
        db.execute("DROP TABLE Labels")
    server.start()
    assert server.json(f"/instances/{instance}")["Labels"] == []
    assert server.put(f"/instances/{instance}/labels/again").status_code == 200
    assert server.json("/tools/labels") == ["again"]


def test_system_announces_labels(server: Isengard) -> None:
    system = server.json("/system")
    assert system["HasLabels"] is True
    assert system["Capabilities"]["HasExtendedFind"] is True


def test_lua_reaches_labels_through_the_rest_api(make_isengard: Any) -> None:
    """Orthanc's Lua has no label functions of its own: scripts use RestApiPut/Get/Delete."""
    server = make_isengard(ExecuteLuaEnabled=True)
    instance = server.upload(CT)["ID"]
    script = (f"RestApiPut('/instances/{instance}/labels/from-lua', '') "
              f"print(RestApiGet('/instances/{instance}/labels'))")
    answer = server.post("/tools/execute-script", script.encode())
    assert answer.status_code == 200, answer.text
    assert "from-lua" in answer.text
    assert server.json("/tools/labels") == ["from-lua"]


def test_in_place_modification_keeps_labels_when_asked(make_isengard: Any) -> None:
    """Keeping the UIDs replaces the instance and its parents (with OverwriteInstances, as
    in Orthanc's suite): labels survive only with KeepLabels, at every level."""
    server = make_isengard(OverwriteInstances=True)
    answer = server.upload(CT)
    paths = _paths(answer)
    for index, path in enumerate(paths):
        server.put(f"{path}/labels/level{index}")
    body = {"Keep": ["StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"],
            "Replace": {"PatientName": "modified"}, "Force": True}
    server.post(f"/studies/{answer['ParentStudy']}/modify", json=body | {"KeepLabels": True})
    assert [server.json(path)["Labels"] for path in paths] == [
        ["level0"], ["level1"], ["level2"], ["level3"]]
    assert server.json(paths[2])["PatientMainDicomTags"]["PatientName"] == "modified"
    server.post(f"/studies/{answer['ParentStudy']}/modify", json=body)
    assert server.json(paths[2])["Labels"] == []
