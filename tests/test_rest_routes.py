"""Routes and answer formats of Orthanc 1.10.1 beyond the basic resource views: tag
views over a resource's instances (shared-tags, module, instances-tags), output
formats (?short, ?full, XML), bulk routes, reconstruct, directories, ordered
slices, plugins and multipart uploads.  Where cheap, answers are compared with
the real Orthanc's for the same files."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from xml.dom import minidom

import pytest

from conftest import Isengard, Orthanc, sample

SERIES = sorted(sample("Series").glob("*.dcm"))
OTHERS = [sample("Formats/Jpeg.dcm"), sample("PatientWith2studies/TEST_1_study_1234.dcm"),
          sample("ColorTestMalaterre.dcm")]
#: Fields that depend on the moment or on random file names.
#: ``Labels`` and a patient's ``IsProtected`` are Orthanc 1.12's: 1.10.1 has no such fields.
VOLATILE = {"LastUpdate", "FileUuid", "IsStable", "ReceptionDate", "RemoteIP", "Metadata",
            "Labels", "IsProtected"}


@pytest.fixture(scope="module")
def both(tmp_path_factory: pytest.TempPathFactory, orthanc: Orthanc) -> Iterator[tuple[Isengard, Orthanc]]:
    isengard = Isengard(tmp_path_factory.mktemp("routes")).start()
    orthanc.clear()
    for path in [*SERIES, *OTHERS]:
        isengard.upload(path)
        orthanc.upload(path)
    yield isengard, orthanc
    isengard.stop()
    orthanc.clear()


@pytest.fixture
def server(isengard: Isengard) -> Isengard:
    isengard.clear()
    return isengard


def _same(both: tuple[Isengard, Orthanc], path: str, **kwargs: Any) -> Any:
    isengard, orthanc = both
    mine, theirs = isengard.get(path, **kwargs), orthanc.get(path, **kwargs)
    assert mine.status_code == theirs.status_code, path
    if theirs.headers.get("Content-Type", "").startswith("application/json"):
        assert mine.json() == theirs.json(), path
        return mine.json()
    assert mine.content == theirs.content, path
    return mine.content


def _strip(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip(v) for k, v in value.items() if k not in VOLATILE}
    if isinstance(value, list):
        return [_strip(v) for v in value]
    return value


# -- tags over the instances of a resource ------------------------------------------

@pytest.mark.parametrize("fmt", ["", "?simplify", "?short", "?full"])
def test_shared_and_instances_tags_match_orthanc(both, fmt: str) -> None:
    isengard, _ = both
    for level in ("patients", "studies", "series"):
        for public_id in isengard.json(f"/{level}"):
            _same(both, f"/{level}/{public_id}/shared-tags{fmt}")
            _same(both, f"/{level}/{public_id}/instances-tags{fmt}")


@pytest.mark.parametrize("fmt", ["", "?simplify", "?short"])
def test_modules_match_orthanc(both, fmt: str) -> None:
    isengard, _ = both
    routes = [("patients", "module"), ("studies", "module"), ("studies", "module-patient"),
              ("series", "module"), ("instances", "module")]
    for level, route in routes:
        for public_id in isengard.json(f"/{level}"):
            assert _same(both, f"/{level}/{public_id}/{route}{fmt}")


def test_shared_tags_keep_only_strings_common_to_all(both) -> None:
    isengard, _ = both
    series = isengard.upload(SERIES[0])["ParentSeries"]
    shared = isengard.json(f"/series/{series}/shared-tags")
    assert "0008,0018" not in shared  # SOPInstanceUID differs
    assert all(node["Type"] == "String" for node in shared.values())
    assert shared["0020,000e"]["Value"] == isengard.json(f"/series/{series}")["MainDicomTags"]["SeriesInstanceUID"]


def test_tag_views_of_unknown_resources_are_404(server: Isengard) -> None:
    unknown = "00000000-00000000-00000000-00000000-00000000"
    for path in ("/patients/{}/shared-tags", "/series/{}/module", "/studies/{}/module-patient",
                 "/studies/{}/instances-tags", "/series/{}/ordered-slices", "/instances/{}/frames"):
        assert server.get(path.format(unknown)).status_code == 404
    assert server.get(f"/instances/{unknown}/shared-tags").status_code == 404  # no such route


def test_ignore_length_shows_long_values(server: Isengard) -> None:
    created = server.post("/tools/create-dicom", json={"Tags": {"ImageComments": "x" * 300}}).json()
    tags = server.json(f"/instances/{created['ID']}/tags")
    assert tags["0020,4000"] == {"Name": "ImageComments", "Type": "TooLong", "Value": None}
    for spelling in ("0020-4000", "00204000", "ImageComments", "0010-0010,0020-4000"):
        tags = server.json(f"/instances/{created['ID']}/tags?ignore-length={spelling}")
        assert tags["0020,4000"]["Type"] == "String" and tags["0020,4000"]["Value"] == "x" * 300
    assert server.json(f"/instances/{created['ID']}/tags?simplify")["ImageComments"] is None
    unknown = server.get(f"/instances/{created['ID']}/tags?ignore-length=NoSuchTag")
    assert unknown.status_code == 500 and unknown.json()["OrthancStatus"] == 27  # as Orthanc


def test_an_unknown_resource_is_404_before_a_bad_argument(server: Isengard) -> None:
    """The resource is looked up in the same trip as the work on it (``run_on``): a bad
    argument is still answered after an unknown resource's 404, and on a known one as before."""
    created = server.post("/tools/create-dicom", json={"Tags": {"PatientName": "ORDER"}}).json()
    unknown = "00000000-00000000-00000000-00000000-00000000"
    for query, status in (("tags?ignore-length=NoSuchTag", 500), ("file?transcode=1.2.3", 400),
                          ("file?transcode=1.2.840.10008.1.2.1&lossy-quality=x", 400),
                          ("module?ignore-length=NoSuchTag", 500), ("study?requested-tags=NoSuchTag", 500)):
        assert server.get(f"/instances/{unknown}/{query}").status_code == 404, query
        assert server.get(f"/instances/{created['ID']}/{query}").status_code == status, query


# -- output formats of the resource views -------------------------------------------

@pytest.mark.parametrize("fmt", ["simplify", "short", "full"])
def test_resource_views_formats_match_orthanc(both, fmt: str) -> None:
    isengard, orthanc = both
    for level in ("patients", "studies", "series", "instances"):
        assert _strip(isengard.json(f"/{level}?expand&{fmt}")) == _strip(orthanc.json(f"/{level}?expand&{fmt}"))
        public_id = isengard.json(f"/{level}")[0]
        assert _strip(isengard.json(f"/{level}/{public_id}?{fmt}")) == \
            _strip(orthanc.json(f"/{level}/{public_id}?{fmt}"))
    instance = isengard.json("/instances")[0]
    for parent in ("patient", "study", "series"):
        assert _strip(isengard.json(f"/instances/{instance}/{parent}?{fmt}")) == \
            _strip(orthanc.json(f"/instances/{instance}/{parent}?{fmt}"))
    request = {"Level": "Study", "Query": {}, "Expand": True, fmt.capitalize(): True}
    ours = sorted(isengard.post("/tools/find", json=request).json(), key=lambda r: r["ID"])
    theirs = sorted(orthanc.post("/tools/find", json=request).json(), key=lambda r: r["ID"])
    assert _strip(ours) == _strip(theirs)


def test_xml_answers_match_orthanc(both) -> None:
    isengard, _ = both
    instance = isengard.json("/instances")[0]
    xml = {"Accept": "application/xml"}
    for path in (f"/instances/{instance}/tags", f"/instances/{instance}/tags?simplify",
                 f"/instances/{instance}/tags?short", f"/instances/{instance}/statistics", "/patients"):
        _same(both, path, headers=xml)
    assert isengard.get("/patients", headers=xml).headers["Content-Type"] == "application/xml; charset=utf-8"


def test_xml_escapes_and_accept_parsing(server: Isengard) -> None:
    tags = {"PatientName": "a<b&c>\"d'e\x01f", "PatientID": ""}
    created = server.post("/tools/create-dicom", json={"Tags": tags}).json()
    text = server.get(f"/instances/{created['ID']}/tags?simplify", headers={"Accept": "application/xml"}).text
    assert "<PatientName>a&lt;b&amp;c&gt;\"d'e&#01;f</PatientName>" in text
    assert "<PatientID></PatientID>" in text
    root = minidom.parseString(server.get("/tools", headers={"Accept": "application/xml; q=1"}).content)
    assert "find" in [item.firstChild.data for item in root.getElementsByTagName("item")]
    # Orthanc compares the ;-separated pieces exactly: a browser's Accept is not XML.
    assert server.get("/tools", headers={"Accept": "text/html,application/xml;q=0.9"}).json()
    assert server.get("/tools", headers={"Accept": "application/xml;application/json"}).json()
    empty = server.get("/modalities", headers={"Accept": "application/xml"}).text
    assert empty == '<?xml version="1.0" encoding="utf-8"?>\n<root />\n'


# -- bulk routes ----------------------------------------------------------------------

def test_bulk_content_levels_and_metadata(both) -> None:
    isengard, orthanc = both
    instance = isengard.upload(SERIES[0])
    hierarchy = [instance["ParentPatient"], instance["ParentStudy"], instance["ParentSeries"], instance["ID"]]
    for request in ({"Resources": hierarchy},
                    {"Resources": hierarchy, "Level": "Series", "Metadata": False},
                    {"Resources": [instance["ParentPatient"]], "Level": "Instance", "Short": True},
                    {"Resources": [instance["ID"], "nope"], "Level": "Patient", "Full": True}):
        ours = isengard.post("/tools/bulk-content", json=request).json()
        theirs = orthanc.post("/tools/bulk-content", json=request).json()
        assert _strip(ours) == _strip(theirs)
        assert [sorted(r.get("Metadata", {})) for r in ours] == [sorted(r.get("Metadata", {})) for r in theirs]
    assert isengard.post("/tools/bulk-content", json={"Resources": "x"}).status_code == 400
    assert isengard.post("/tools/bulk-content", json={"Resources": [], "Level": "Nope"}).status_code == 400


def test_bulk_delete(server: Isengard) -> None:
    answers = [server.upload(path) for path in SERIES[:2]]
    other = server.upload(OTHERS[0])
    answer = server.post("/tools/bulk-delete", json={"Resources": [
        answers[0]["ID"], "unknown", {"ID": other["ParentStudy"], "Level": "Study"}]})
    assert answer.status_code == 200 and answer.text == ""
    assert server.json("/instances") == [answers[1]["ID"]]
    server.post("/tools/bulk-delete", json={"Resources": [{"ID": answers[1]["ID"], "Level": "Series"}]})
    assert server.json("/instances") == [answers[1]["ID"]]  # wrong level: left alone
    assert server.post("/tools/bulk-delete", json={"Resources": [3]}).status_code == 400
    assert server.post("/tools/bulk-delete", json={}).status_code == 400


# -- reconstruct --------------------------------------------------------------------

def test_reconstruct_takes_the_parents_tags_from_the_instances(server: Isengard) -> None:
    original = server.upload(SERIES[0])
    study = original["ParentStudy"]
    job = server.post(f"/studies/{study}/modify", json={
        "Replace": {"StudyDescription": "hello", "SOPInstanceUID": "1.2.3.4"},
        "Keep": ["StudyInstanceUID", "SeriesInstanceUID"], "Force": True}).json()
    assert job["ID"] == study
    modified = next(i for i in server.json("/instances") if i != original["ID"])
    assert server.json(f"/studies/{study}")["MainDicomTags"].get("StudyDescription") != "hello"
    answer = server.post(f"/instances/{modified}/reconstruct", data="")
    assert answer.status_code == 200 and answer.text == ""
    assert server.json(f"/studies/{study}")["MainDicomTags"]["StudyDescription"] == "hello"
    assert server.get(f"/instances/{modified}/metadata/SopClassUid").text == "1.2.840.10008.5.1.4.1.1.7"
    # Reconstructing everything gives the study the tags of its last instance again.
    assert server.post("/tools/reconstruct", data="").status_code == 200
    assert server.post("/tools/invalidate-tags", data="").status_code == 200
    assert server.post("/studies/00000000-00000000-00000000-00000000-00000000/reconstruct").status_code == 404


# -- directories, frames, ordered slices, plugins ------------------------------------

def test_tools_directory_lists_only_what_is_served(server: Isengard) -> None:
    tools = server.json("/tools")
    assert {"find", "now", "dicom-conformance", "invalidate-tags", "bulk-content"} <= set(tools)
    for name in tools:
        assert server.get(f"/tools/{name}").status_code != 404 or \
            server.post(f"/tools/{name}", data="").status_code != 404, name
    assert server.get("/tools/nope").status_code == 404


def test_frames_and_ordered_slices_match_orthanc(both) -> None:
    isengard, _ = both
    for instance in isengard.json("/instances"):
        _same(both, f"/instances/{instance}/frames")
    for series in isengard.json("/series"):
        _same(both, f"/series/{series}/ordered-slices")


def test_plugins_as_orthanc_without_plugins(server: Isengard) -> None:
    assert server.json("/plugins") == ["explorer.js", "transfers"]
    script = server.get("/plugins/explorer.js")
    assert script.headers["Content-Type"] == "application/javascript"
    assert script.text == "// Extensions to Orthanc Explorer by the registered plugins\n\n"
    answer = server.get("/plugins/python")
    assert answer.status_code == 404 and answer.content == b""


# -- multipart uploads --------------------------------------------------------------

def _part(data: bytes, boundary: str, name: str) -> bytes:
    return (f'--{boundary}\r\nContent-Disposition: form-data; name="files[]"; filename="{name}"\r\n\r\n'
            .encode() + data + b"\r\n")


def test_multipart_form_upload(server: Isengard) -> None:
    boundary = "----WebKitFormBoundaryIsengard"
    body = (b"preamble\r\n" + _part(SERIES[0].read_bytes(), boundary, "a.dcm")
            + _part(b"not DICOM", boundary, "b.txt")
            + _part(SERIES[1].read_bytes(), boundary, "c.dcm") + f"--{boundary}--\r\n".encode())
    answer = server.post("/instances", body, headers={
        "Content-Type": f"multipart/form-data ; boundary = \"{boundary}\"", "X-Requested-With": "XMLHttpRequest"})
    assert answer.status_code == 200 and answer.content == b""
    assert len(server.json("/instances")) == 2
    refused = server.post("/instances", body, headers={
        "Content-Type": f"multipart/form-data; boundary={boundary}", "X-Requested-With": "Other"})
    assert refused.status_code == 500 and refused.json()["OrthancStatus"] == 9


def test_multipart_chunked_upload(server: Isengard) -> None:
    boundary = "chunks"
    data = SERIES[0].read_bytes()
    headers = {"Content-Type": f"multipart/form-data; boundary={boundary}",
               "X-File-Name": "lena.dcm", "X-File-Size": str(len(data))}
    for start in range(0, len(data), 4000):
        assert server.json("/instances") == []
        body = _part(data[start:start + 4000], boundary, "lena.dcm") + f"--{boundary}".encode()
        assert server.post("/instances", body, headers=headers).status_code == 200
    assert len(server.json("/instances")) == 1
    bad = server.post("/instances", _part(b"x", boundary, "y"), headers={**headers, "X-File-Size": "-1"})
    assert bad.status_code == 500 and bad.json()["Details"] == 'HTTP header "X-File-Size" has negative value'


# -- method faking, log categories, paging ------------------------------------------

def test_method_faking(server: Isengard) -> None:
    first, second = (server.upload(path)["ParentPatient"] for path in (SERIES[0], OTHERS[0]))
    assert server.post(f"/patients/{first}", headers={"X-HTTP-Method-Override": "delete"}).status_code == 200
    assert server.json("/patients") == [second]
    assert server.get(f"/patients/{second}/protected", params={"_method": "PUT"}, data="1").status_code == 200
    assert server.get(f"/patients/{second}/protected").text == "1"
    assert server.get(f"/patients/{second}", params={"_method": "DELETE"}).status_code == 200
    assert server.json("/patients") == []
    refused = server.post("/patients", headers={"X-HTTP-Method-Override": "PATCH"})
    assert refused.status_code == 400 and refused.content == b""


def test_log_level_of_one_category(server: Isengard) -> None:
    original = server.get("/tools/log-level-http").text
    assert server.put("/tools/log-level-http", "verbose").status_code == 200
    assert server.get("/tools/log-level-http").text == "verbose"
    bad = server.put("/tools/log-level-http", "nope")
    assert bad.status_code == 400 and bad.json()["OrthancStatus"] == 3
    assert server.put("/tools/log-level-nope", "default").status_code == 404
    server.put("/tools/log-level-http", original)


def test_limit_zero_is_an_empty_page(server: Isengard) -> None:
    server.upload(SERIES[0])
    assert server.json("/patients?since=0&limit=0") == []
    assert len(server.json("/patients?since=0&limit=10")) == 1


def test_protection_of_an_unknown_patient(server: Isengard) -> None:
    path = "/patients/00000000-00000000-00000000-00000000-00000000/protected"
    for answer in (server.get(path), server.put(path, "1")):
        assert answer.status_code == 400 and answer.json()["OrthancStatus"] == 3  # as Orthanc 1.10.1


def test_descendants_are_listed_in_orthanc_order(both) -> None:
    """Sibling groups come out reversed level by level, as Orthanc 1.10.1 lists them."""
    isengard, orthanc = both
    for study, series, sop in ((1, 1, 1), (2, 2, 2), (1, 3, 3), (2, 4, 4), (1, 1, 5), (2, 2, 6)):
        tags = {"PatientID": "ORDER", "StudyInstanceUID": f"1.2.3.{study}",
                "SeriesInstanceUID": f"1.2.3.{study}.{series}", "SOPInstanceUID": f"1.2.3.{study}.{series}.{sop}"}
        for server in both:
            assert server.post("/tools/create-dicom", json={"Tags": tags, "Force": True}).status_code == 200
    patient = isengard.post("/tools/lookup", data="ORDER").json()[0]["ID"]
    study = isengard.post("/tools/lookup", data="1.2.3.1").json()[0]["ID"]
    for path in (f"/patients/{patient}/series", f"/patients/{patient}/instances", f"/studies/{study}/instances"):
        assert [r["ID"] for r in isengard.json(path)] == [r["ID"] for r in orthanc.json(path)], path


def test_export_to_the_filesystem_only_when_allowed(server: Isengard, make_isengard, tmp_path) -> None:
    instance = server.upload(SERIES[0])["ID"]
    target = tmp_path / "exported.dcm"
    refused = server.post(f"/instances/{instance}/export", str(target))
    assert refused.status_code == 403 and not target.exists()
    allowed = make_isengard(RestApiWriteToFileSystemEnabled=True)
    instance = allowed.upload(SERIES[0])["ID"]
    assert allowed.post(f"/instances/{instance}/export", str(target)).json() == {}
    assert target.read_bytes() == SERIES[0].read_bytes()
    unknown = allowed.post("/instances/00000000-00000000-00000000-00000000-00000000/export", str(target))
    assert unknown.status_code == 404 and unknown.json()["OrthancStatus"] == 17
