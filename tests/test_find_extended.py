"""The 1.12.5 ``/tools/find`` (``OrderBy``, ``Parent*``, ``MetadataQuery``,
``ResponseContent``), ``/tools/count-resources`` and requested tags.

The real Orthanc here is 1.10.1, without these: the expected answers follow Orthanc's
source (``OrthancRestResources.cpp``'s ``Find``, ``ResourceFinder.cpp``) and its suite."""

from __future__ import annotations

from typing import Any

import pytest

from conftest import Isengard, sample

LENA = [sample(f"Series/Lena-{i}.dcm") for i in range(1, 6)]
CT = sample("HierarchicalAnonymization/RTH/CT01.dcm")
RT = sample("HierarchicalAnonymization/RTH/RT.dcm")
COLOR = sample("ColorTestImageJ.dcm")


@pytest.fixture(scope="module")
def loaded(isengard: Isengard) -> dict[str, Any]:
    """Lena's five-instance series, a CT + RTSTRUCT study, and one more CT study."""
    isengard.clear()
    lena = [isengard.upload(path) for path in LENA]
    ct, rt, color = (isengard.upload(path) for path in (CT, RT, COLOR))
    return {"server": isengard, "lena": lena, "ct": ct, "rt": rt, "color": color}


def _find(server: Isengard, body: dict[str, Any], status: int = 200) -> Any:
    answer = server.post("/tools/find", json=body)
    assert answer.status_code == status, answer.text
    return answer.json()


def test_order_by_tag_as_int_with_paging(loaded: dict[str, Any]) -> None:
    server, lena = loaded["server"], loaded["lena"]
    body = {"Level": "Instance", "Query": {}, "ParentSeries": lena[0]["ParentSeries"],
            "OrderBy": [{"Type": "DicomTagAsInt", "Key": "InstanceNumber", "Direction": "DESC"}]}
    ids = [answer["ID"] for answer in lena]
    assert _find(server, body) == ids[::-1]
    assert _find(server, body | {"Limit": 2, "Since": 1}) == [ids[3], ids[2]]
    ascending = body | {"OrderBy": [{"Type": "DicomTag", "Key": "0020,0013", "Direction": "asc"}]}
    assert _find(server, ascending) == ids


def test_order_by_metadata_text_and_int(loaded: dict[str, Any]) -> None:
    server, lena = loaded["server"], loaded["lena"]
    ids = [answer["ID"] for answer in lena]
    for instance, value in zip(ids, ["10", "9", "100", "2", "30"], strict=True):
        assert server.put(f"/instances/{instance}/metadata/1030", data=value).status_code == 200
    body = {"Level": "Instance", "Query": {}, "ParentSeries": lena[0]["ParentSeries"]}
    as_text = body | {"OrderBy": [{"Type": "Metadata", "Key": "1030", "Direction": "ASC"}]}
    assert _find(server, as_text) == [ids[0], ids[2], ids[3], ids[4], ids[1]]
    as_int = body | {"OrderBy": [{"Type": "MetadataAsInt", "Key": "1030", "Direction": "ASC"}]}
    assert _find(server, as_int) == [ids[3], ids[1], ids[0], ids[4], ids[2]]
    query = body | {"MetadataQuery": {"1030": "1*"}}
    assert sorted(_find(server, query)) == sorted([ids[0], ids[2]])
    listed = body | {"MetadataQuery": {"1030": "9\\2"}}
    assert sorted(_find(server, listed)) == sorted([ids[1], ids[3]])
    count = server.post("/tools/count-resources", json=query).json()
    assert count == {"Count": 2}


def test_order_by_missing_values_keeps_every_resource(loaded: dict[str, Any]) -> None:
    server = loaded["server"]
    body = {"Level": "Instance", "Query": {}, "ParentSeries": loaded["rt"]["ParentSeries"]}
    for order in ({"Type": "Metadata", "Key": "IndexInSeries", "Direction": "ASC"},
                  {"Type": "Metadata", "Key": "9876", "Direction": "ASC"},
                  {"Type": "DicomTag", "Key": "Rows", "Direction": "ASC"}):
        assert _find(server, body | {"OrderBy": [order]}) == [loaded["rt"]["ID"]]


def test_parents(loaded: dict[str, Any]) -> None:
    server, ct, rt = loaded["server"], loaded["ct"], loaded["rt"]
    series = _find(server, {"Level": "Series", "Query": {}, "ParentStudy": ct["ParentStudy"]})
    assert sorted(series) == sorted([ct["ParentSeries"], rt["ParentSeries"]])
    instances = _find(server, {"Level": "Instance", "Query": {"Modality": "CT"},
                               "ParentPatient": ct["ParentPatient"]})
    assert instances == [ct["ID"]]
    assert _find(server, {"Level": "Study", "Query": {},
                          "ParentSeries": ct["ParentSeries"]}) == []
    assert _find(server, {"Level": "Study", "Query": {}, "ParentPatient": "nope"}) == []


def test_response_content(loaded: dict[str, Any]) -> None:
    server = loaded["server"]
    body = {"Level": "Series", "Query": {"Modality": "RTSTRUCT"}, "RequestedTags": ["StudyDate"]}
    [only] = _find(server, body | {"ResponseContent": ["MainDicomTags"]})
    assert set(only) == {"ID", "Type", "MainDicomTags", "RequestedTags"}
    assert only["RequestedTags"] == {"StudyDate": "20040303"}
    [full] = _find(server, body | {"ResponseContent": [
        "MainDicomTags", "Children", "Parent", "IsStable", "Status", "Labels", "Metadata"]})
    assert {"Instances", "Labels", "ParentStudy", "Status", "IsStable", "Metadata"} <= set(full)
    assert "LastUpdate" in full["Metadata"]
    assert "Attachments" not in full and "IsProtected" not in full
    [expanded] = _find(server, body | {"Expand": True})
    assert {"ExpectedNumberOfInstances", "Labels", "LastUpdate", "RequestedTags"} <= set(expanded)
    [instance] = _find(server, {"Level": "Instance", "Query": {"Modality": "RTSTRUCT"},
                                "ResponseContent": ["Attachments"]})
    assert instance["Attachments"][0]["ContentType"] == 1
    assert {"Uuid", "UncompressedSize", "CompressedMD5"} <= set(instance["Attachments"][0])
    [patient] = _find(server, {"Level": "Patient", "Query": {"PatientID": "LCTSC*"},
                               "ResponseContent": ["IsProtected"]})
    assert patient["IsProtected"] is False
    wrong = server.post("/tools/find", json=body | {"ResponseContent": ["Nope"]})
    assert wrong.status_code == 400


def test_requested_tags_computed_and_from_files(loaded: dict[str, Any]) -> None:
    server, ct = loaded["server"], loaded["ct"]
    [study] = _find(server, {"Level": "Study", "Query": {"PatientID": "LCTSC-Test-S1-101"},
                             "Expand": True, "RequestedTags": [
                                 "ModalitiesInStudy", "NumberOfStudyRelatedInstances",
                                 "NumberOfStudyRelatedSeries", "PatientName"]})
    assert study["RequestedTags"] == {
        "ModalitiesInStudy": "CT\\RTSTRUCT", "NumberOfStudyRelatedInstances": "2",
        "NumberOfStudyRelatedSeries": "2", "PatientName": "LCTSC-Test-S1-101"}
    view = server.json(f"/instances/{ct['ID']}?requested-tags=Rows;0028,0011;PatientID")
    assert view["RequestedTags"] == {"Rows": "512", "Columns": "512",
                                     "PatientID": "LCTSC-Test-S1-101"}
    listed = server.json("/studies?expand&requested-tags=NumberOfStudyRelatedInstances")
    counts = sorted(s["RequestedTags"]["NumberOfStudyRelatedInstances"] for s in listed)
    assert counts == ["1", "2", "5"]


def test_relatives_expand_false(loaded: dict[str, Any]) -> None:
    server, lena = loaded["server"], loaded["lena"]
    series = lena[0]["ParentSeries"]
    ids = server.json(f"/series/{series}/instances?expand=false")
    assert sorted(ids) == sorted(answer["ID"] for answer in lena)
    assert isinstance(server.json(f"/series/{series}/instances?expand=true")[0], dict)


def test_count_resources(loaded: dict[str, Any]) -> None:
    server = loaded["server"]
    count = server.post("/tools/count-resources", json={"Level": "Instance", "Query": {}})
    assert count.json() == {"Count": 8}
    ct = {"Level": "Series", "Query": {"Modality": "ct"}}
    assert server.post("/tools/count-resources", json=ct).json() == {"Count": 2}
    # counting never reads the files: a tag no level indexes is refused, as by Orthanc
    assert server.post("/tools/count-resources", json={
        "Level": "Instance", "Query": {"Rows": "512"}}).status_code == 400
    refused = server.post("/tools/count-resources", json=ct | {"CaseSensitive": True})
    assert refused.status_code == 400


@pytest.mark.parametrize("order, details", [
    ("x", 'Field "OrderBy" must contain objects'),
    ({"Key": "PatientID", "Type": "DicomTag"}, 'Field "Direction" must be "ASC" or "DESC"'),
    ({"Key": "PatientID", "Direction": "UP", "Type": "DicomTag"},
     'Field "Direction" must be "ASC" or "DESC"'),
    ({"Direction": "ASC", "Type": "DicomTag"}, 'Field "Key" must be a string'),
])
def test_order_by_is_checked(loaded: dict[str, Any], order: Any, details: str) -> None:
    answer = loaded["server"].post("/tools/find", json={"Level": "Study", "Query": {},
                                                        "OrderBy": [order]})
    assert answer.status_code == 400
    assert answer.json()["Details"] == details


def test_changes_by_type_and_backwards(make_isengard: Any) -> None:
    server = make_isengard()
    for path in LENA:
        server.upload(path)
    everything = server.json("/changes")["Changes"]
    new_instances = [c["Seq"] for c in everything if c["ChangeType"] == "NewInstance"]
    answer = server.json("/changes?type=NewInstance")
    assert [c["Seq"] for c in answer["Changes"]] == new_instances
    assert answer["Done"] is True and answer["Last"] == new_instances[-1]
    both = server.json("/changes?type=NewInstance;NewPatient")["Changes"]
    assert {c["ChangeType"] for c in both} == {"NewInstance", "NewPatient"}
    page = server.json(f"/changes?type=NewInstance&to={new_instances[-1]}&limit=2")
    assert [c["Seq"] for c in page["Changes"]] == new_instances[-2:]
    assert page["Done"] is False and page["First"] == new_instances[-2]
    window = server.json(f"/changes?type=NewInstance&since={new_instances[0]}"
                         f"&to={new_instances[2]}&limit=10")
    assert [c["Seq"] for c in window["Changes"]] == new_instances[1:3]
    assert window["Done"] is True
    assert server.get("/changes?type=Nope").status_code == 400


def test_numeric_metadata(loaded: dict[str, Any]) -> None:
    server, study = loaded["server"], loaded["ct"]["ParentStudy"]
    named = server.json(f"/studies/{study}/metadata?expand")
    numeric = server.json(f"/studies/{study}/metadata?numeric")
    assert 7 in numeric and "LastUpdate" in named
    both = server.json(f"/studies/{study}/metadata?expand&numeric")
    assert both["7"] == named["LastUpdate"] and len(both) == len(named) == len(numeric)


def test_order_by_puts_missing_values_last(loaded: dict[str, Any]) -> None:
    server, lena = loaded["server"], loaded["lena"]
    ids = [answer["ID"] for answer in lena]
    server.put(f"/instances/{ids[3]}/metadata/1031", data="x")
    body = {"Level": "Instance", "Query": {}, "ParentSeries": lena[0]["ParentSeries"]}
    for direction in ("ASC", "DESC"):
        order = [{"Type": "Metadata", "Key": "1031", "Direction": direction}]
        assert _find(server, body | {"OrderBy": order})[0] == ids[3]


def test_since_needs_a_query_the_index_answers(loaded: dict[str, Any]) -> None:
    """Orthanc 1.12.5 refuses ``Since`` when the files would have to be read, or with
    CaseSensitive (its index keeps identifiers upper-cased)."""
    server = loaded["server"]
    base = {"Level": "Instance", "Since": 1}
    assert server.post("/tools/find", json=base | {"Query": {"Rows": "512"}}).status_code == 400
    sensitive = base | {"Query": {"Modality": "CT"}, "CaseSensitive": True}
    assert server.post("/tools/find", json=sensitive).status_code == 400
    assert len(_find(server, base | {"Query": {"Modality": "CT"}})) == 1
    assert len(_find(server, base | {"Query": {"Rows": "512"}, "Since": 0})) == 1


def test_requested_sequences_nulls_and_availability(loaded: dict[str, Any]) -> None:
    server, ct = loaded["server"], loaded["ct"]
    tags = ["DeidentificationMethodCodeSequence", "InstanceAvailability", "PatientWeight",
            "SOPInstanceUID"]
    [instance] = _find(server, {"Level": "Instance", "Query": {},
                                "ParentSeries": ct["ParentSeries"], "ResponseContent": [],
                                "RequestedTags": tags})
    requested = instance["RequestedTags"]
    assert requested["InstanceAvailability"] == "ONLINE"
    assert requested["PatientWeight"] is None
    sequence = requested["DeidentificationMethodCodeSequence"]
    assert len(sequence) == 8 and "CodeValue" in sequence[0]
    full = server.json(f"/instances/{ct['ID']}?requested-tags=PatientWeight&full")
    assert full["RequestedTags"]["0010,1030"] == {"Name": "PatientWeight", "Type": "Null",
                                                  "Value": None}


def test_lookup_with_underscore_is_exact(loaded: dict[str, Any]) -> None:
    """Orthanc 1.12.11: ``_`` or ``%`` in a /tools/lookup value means an exact comparison."""
    server = loaded["server"]
    assert len(server.post("/tools/lookup", "lctsc-test-s1-101").json()) == 1
    assert server.post("/tools/lookup", "LCTSC-Test-S1-101_").json() == []
    assert server.post("/tools/lookup", "_LCTSC-Test-S1-101").json() == []


def _count(server: Isengard, body: dict[str, Any]) -> int:
    answer = server.post("/tools/count-resources", json=body)
    assert answer.status_code == 200, answer.text
    return answer.json()["Count"]


def test_case_folding_is_the_same_in_sql(make_isengard: Any) -> None:
    """Without CaseSensitive, the main tags Orthanc 1.10.1 matches in SQLite fold ASCII
    letters only (``é`` and ``É`` differ), the identifiers every letter: the plain find, the
    find with 1.12 options (answered in SQL) and count-resources agree."""
    server = make_isengard()
    created = server.post("/tools/create-dicom", json={"Tags": {
        "PatientName": "élise", "SeriesDescription": "été", "Modality": "CT"}})
    assert created.status_code == 200, created.text
    series = server.get(f"/instances/{created.json()['ID']}/series").json()["ID"]
    order = {"OrderBy": [{"Type": "DicomTag", "Key": "SeriesDate", "Direction": "ASC"}]}
    cases = [("SeriesDescription", "éTé", 1), ("SeriesDescription", "ÉTÉ", 0),
             ("SeriesDescription", "é*", 1), ("SeriesDescription", "É*", 0),
             ("PatientName", "ÉLISE", 1), ("PatientName", "É*", 1)]
    for tag, value, expected in cases:
        body = {"Level": "Series", "Query": {tag: value}}
        assert _find(server, body) == [series] * expected, (tag, value)
        assert _find(server, body | order) == [series] * expected, (tag, value)
        assert _count(server, body) == expected, (tag, value)


def test_database_limit_bounds_finds_with_options(make_isengard: Any) -> None:
    """``LimitFindInstances`` bounds a find with 1.12 options that sets no ``Limit``, as it
    bounds the 1.10.1 find."""
    server = make_isengard(LimitFindInstances=2)
    ids = [server.upload(path)["ID"] for path in LENA]
    series = server.get(f"/instances/{ids[0]}").json()["ParentSeries"]
    body = {"Level": "Instance", "Query": {}, "ParentSeries": series,
            "OrderBy": [{"Type": "DicomTagAsInt", "Key": "InstanceNumber", "Direction": "DESC"}]}
    assert _find(server, body) == ids[:2:-1]
    assert _find(server, body | {"Limit": 4}) == ids[:0:-1]
    assert _count(server, body) == 5
