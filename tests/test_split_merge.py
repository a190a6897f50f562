"""Split and merge of studies, against the real Orthanc 1.10.1."""

from __future__ import annotations

import time
from typing import Any

import pytest
from test_modify import change_types, counts, last_change, study_files, upload

from conftest import Isengard, Orthanc, Server
from helpers import wait_job

#: Main tags that generated UIDs make differ between the two servers.
GENERATED_TAGS = {"StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"}


@pytest.fixture(scope="module")
def both(tmp_path_factory: pytest.TempPathFactory, orthanc: Orthanc):
    isengard = Isengard(tmp_path_factory.mktemp("split-merge")).start()
    yield isengard, orthanc
    isengard.stop()
    orthanc.clear()


@pytest.fixture
def fresh(both):
    for server in both:
        server.clear()
    return both


def study_shape(server: Server, study: str) -> dict[str, Any]:
    """What a user sees of a study: its tags, its patient's, its series and their sizes."""
    document = server.json(f"/studies/{study}")
    series = [server.json(f"/series/{s}") for s in document["Series"]]
    return {
        "study": {k: v for k, v in document["MainDicomTags"].items() if k not in GENERATED_TAGS},
        "patient": document["PatientMainDicomTags"],
        "series": sorted((s["MainDicomTags"].get("SeriesDescription"), len(s["Instances"])) for s in series),
    }


def _ids(server: Server, name: str, series: int = 2, per_series: int = 3) -> dict[str, Any]:
    answer = upload(server, study_files(name, series, per_series))
    study = answer["ParentStudy"]
    all_series = server.json(f"/studies/{study}")["Series"]
    first = server.json(f"/series/{all_series[0]}")["Instances"]
    return {"study": study, "patient": answer["ParentPatient"], "series": all_series, "first_instances": first}


@pytest.mark.parametrize("keep_source", [False, True])
def test_split_matches_orthanc(fresh, keep_source: bool) -> None:
    outcomes = []
    for server in fresh:
        ids = _ids(server, "split")
        since = last_change(server)
        body = {"Series": [ids["series"][0]], "Instances": [server.json(f"/series/{ids['series'][1]}")["Instances"][0]],
                "Replace": {"StudyDescription": "Split off", "PatientName": "Split^Name"},
                "Remove": ["AccessionNumber"], "KeepSource": keep_source}
        reply = server.post(f"/studies/{ids['study']}/split", json=body)
        assert reply.status_code == 200, reply.text
        content = reply.json()
        assert content["TargetStudyUID"] == server.json(f"/studies/{content['TargetStudy']}")[
            "MainDicomTags"]["StudyInstanceUID"]
        source = server.get(f"/studies/{ids['study']}")
        outcomes.append({
            "content": sorted(content), "count": content["InstancesCount"],
            "new": study_shape(server, content["TargetStudy"]),
            "source": study_shape(server, ids["study"]) if source.status_code == 200 else None,
            "counts": counts(server), "changes": change_types(server, since),
        })
    assert outcomes[0] == outcomes[1]
    new = outcomes[0]["new"]
    assert new["study"]["StudyDescription"] == "Split off" and "AccessionNumber" not in new["study"]
    assert new["series"] == [("Series 0", 3), ("Series 1", 1)]
    assert outcomes[0]["source"]["series"] == ([("Series 0", 3), ("Series 1", 3)] if keep_source
                                               else [("Series 1", 2)])


@pytest.mark.parametrize("keep_source", [False, True])
def test_merge_matches_orthanc(fresh, keep_source: bool) -> None:
    outcomes = []
    for server in fresh:
        target = _ids(server, "target", 1, 2)
        moved_study = _ids(server, "moved")
        lone = _ids(server, "lone", 1, 1)
        since = last_change(server)
        body = {"Resources": [moved_study["study"], lone["first_instances"][0]], "KeepSource": keep_source}
        reply = server.post(f"/studies/{target['study']}/merge", json=body)
        assert reply.status_code == 200, reply.text
        content = reply.json()
        outcomes.append({
            "content": content, "target": study_shape(server, target["study"]), "counts": counts(server),
            "changes": change_types(server, since),
        })
    assert outcomes[0] == outcomes[1]
    merged = outcomes[0]["target"]
    assert merged["study"]["StudyDescription"] == "Study target"
    assert merged["patient"]["PatientID"] == "ID-target"
    assert sorted(n for _, n in merged["series"]) == [1, 2, 3, 3]


@pytest.mark.parametrize(("url", "body"), [
    ("/studies/{study}/split", {}),
    ("/studies/{study}/split", {"Series": "x"}),
    ("/studies/{study}/split", {"Series": ["{other_series}"]}),
    ("/studies/{study}/split", {"Series": ["{series}"], "Replace": {"SeriesDescription": "x"}}),
    ("/studies/{study}/split", {"Series": ["{series}"], "Remove": "x"}),
    ("/studies/ffffffff-ffffffff-ffffffff-ffffffff-ffffffff/split", {"Series": ["{series}"]}),
    ("/studies/{study}/merge", {}),
    ("/studies/{study}/merge", {"Resources": ["{study}"]}),
    ("/studies/{study}/merge", {"Resources": ["{patient}"]}),
    ("/studies/{study}/merge", {"Resources": ["{series}"]}),
    ("/studies/{study}/merge", {"Resources": ["ffffffff-ffffffff-ffffffff-ffffffff-ffffffff"]}),
    ("/studies/ffffffff-ffffffff-ffffffff-ffffffff-ffffffff/merge", {"Resources": ["{study}"]}),
    ("/studies/{study}/merge", "not json"),
])
def test_errors_match_orthanc(fresh, url: str, body: Any) -> None:
    answers = []
    for server in fresh:
        ids = _ids(server, "errors", 1, 1)
        other = _ids(server, "other", 1, 1)
        names = {"study": ids["study"], "series": ids["series"][0], "patient": ids["patient"],
                 "other_series": other["series"][0]}
        if isinstance(body, dict):
            filled = {k: [v.format(**names) for v in value] if isinstance(value, list) else value
                      for k, value in body.items()}
            reply = server.post(url.format(**names), json=filled)
        else:
            reply = server.post(url.format(**names), body)
        answers.append((reply.status_code, reply.json()["OrthancStatus"],
                        reply.json().get("Details", "").replace(ids["study"], "S").replace(ids["series"][0], "s")
                        .replace(ids["patient"], "P").replace(other["series"][0], "o")))
    assert answers[0] == answers[1]


def test_canceled_split_leaves_the_study_whole(tmp_path_factory: pytest.TempPathFactory) -> None:
    server = Isengard(tmp_path_factory.mktemp("split-cancel"), ConcurrentJobs=1).start()
    try:
        ids = _ids(server, "big", 2, 150)
        before, since = counts(server), last_change(server)
        job = server.post(f"/studies/{ids['study']}/split",
                          json={"Series": [ids["series"][0]], "Asynchronous": True}).json()["ID"]
        while server.json(f"/jobs/{job}")["Progress"] < 10:
            time.sleep(0.005)
        server.post(f"/jobs/{job}/cancel")
        assert wait_job(server, job)["ErrorCode"] == 37
        assert counts(server) == before
        assert change_types(server, since) == []
    finally:
        server.stop()
