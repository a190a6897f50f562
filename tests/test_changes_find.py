"""The changes log, listings by pages, ``/tools/find``, ``/tools/lookup``, the default encoding
and the C-FIND SCP, each compared with the real Orthanc 1.10.1 doing the same on the same data."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
from pydicom.dataset import Dataset
from pynetdicom import AE
from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelFind

from conftest import ORTHANC_BINARY, Isengard, Orthanc, Server, dcmtk, dcmtk_env, sample
from helpers import query_identifier

#: Several patients, modalities (a CT and RTSTRUCT study among them), dates, accented names
#: and descriptions.
FILES = ["Encodings/Lena-latin1.dcm", "HierarchicalAnonymization/RTH/CT01.dcm",
         "HierarchicalAnonymization/RTH/RT.dcm", "Issue143.dcm", "KarstenHilbertRF.dcm",
         "MarekLatin2.dcm", "sample-pdf.dcm", "ColorTestImageJ.dcm", "Issue19.dcm",
         "2020-08-12-Christopher.dcm", "PatientIdsCollision/Image1.dcm",
         "PatientIdsCollision/Image2.dcm", "Issue141.dcm"]

SCU_AET = "FINDSCU"

#: No stability events while a test runs, on either server.
QUIET = {"StableAge": 3600, "DicomAlwaysAllowFind": True}


def _start_pair(root: Any) -> tuple[Isengard, Orthanc]:
    if not ORTHANC_BINARY.exists():
        pytest.skip("the real Orthanc is not installed (make test installs it)")
    isengard = Isengard(root / "isengard", **QUIET)
    orthanc = Orthanc(root / "orthanc", **QUIET)
    isengard.config["DicomModalities"] = {"self": ["ISENGARD", "127.0.0.1", isengard.dicom_port]}
    isengard.config_path.write_text(json.dumps(isengard.config))
    config = json.loads(orthanc.config_path.read_text())
    config["DicomModalities"] = {"self": ["ORTHANCREF", "127.0.0.1", orthanc.dicom_port]}
    orthanc.config_path.write_text(json.dumps(config))
    return isengard.start(), orthanc.start()


@pytest.fixture
def fresh_pair(tmp_path: Any) -> Iterator[tuple[Isengard, Orthanc]]:
    """Both servers with empty databases (change numbers start at 1 on each)."""
    isengard, orthanc = _start_pair(tmp_path)
    yield isengard, orthanc
    isengard.stop()
    orthanc.stop()


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Isengard, Orthanc]]:
    """Both servers hold the same instances, stored in the same order."""
    isengard, orthanc = _start_pair(tmp_path_factory.mktemp("find"))
    for server in (isengard, orthanc):
        for name in FILES:
            server.upload(sample(name))
    yield isengard, orthanc
    isengard.stop()
    orthanc.stop()


def _both(pair: tuple[Server, Server], call: Any) -> tuple[Any, Any]:
    return call(pair[0]), call(pair[1])


# -- /changes ------------------------------------------------------------------------------


def _changes(server: Server, query: str) -> dict:
    """A page of the log without what differs by nature (dates); ``First`` is checked apart,
    for Orthanc 1.10.1 does not give it yet."""
    page = server.json("/changes" + query)
    first = page.pop("First", None)
    if isinstance(server, Isengard):
        assert first == (page["Changes"][0]["Seq"] if page["Changes"] else None)
    for change in page["Changes"]:
        del change["Date"]
    return page


CHANGE_QUERIES = ["", "?last", "?since=0&limit=1", "?since=1&limit=2", "?since=2&limit=2",
                  "?since=3&limit=100", "?since=1000", "?limit=0", "?since=abc",
                  "?limit=1&since=-5", "?since=4"]


def test_changes_pages_like_orthanc(fresh_pair: tuple[Isengard, Orthanc]) -> None:
    """``Last`` is the last change returned (the next ``since``), or, with none, the last
    change ever logged, even once deleted with its resource."""
    isengard, orthanc = fresh_pair
    for server in fresh_pair:
        assert _changes(server, "") == {"Changes": [], "Done": True, "Last": 0}
        first = server.upload(sample("ColorTestImageJ.dcm"))["ID"]
        assert server.delete(f"/instances/{first}").status_code == 200
    assert _both(fresh_pair, lambda s: _changes(s, "")) == ({"Changes": [], "Done": True, "Last": 4},) * 2
    for server in fresh_pair:
        server.upload(sample("ColorTestImageJ.dcm"))
        server.upload(sample("Issue143.dcm"))
    for query in CHANGE_QUERIES:
        mine, theirs = _both(fresh_pair, lambda s, q=query: _changes(s, q))
        assert mine == theirs, query
    page = _changes(isengard, "?since=5&limit=2")
    assert [c["Seq"] for c in page["Changes"]] == [6, 7] and page["Last"] == 7
    assert page["Done"] is False


def test_exports_pages_like_orthanc(fresh_pair: tuple[Isengard, Orthanc]) -> None:
    """Without exports, ``Last`` is ``since``; ``?last`` gives the last export."""
    def exports(server: Server, query: str) -> dict:
        page = server.json("/exports" + query)
        page.pop("First", None)
        for item in page["Exports"]:
            del item["Date"]
        return page

    queries = ("", "?since=7&limit=3", "?limit=0", "?last", "?since=1&limit=1")
    for query in queries:
        mine, theirs = _both(fresh_pair, lambda s, q=query: exports(s, q))
        assert mine == theirs
    for server in fresh_pair:
        instance = server.upload(sample("ColorTestImageJ.dcm"))["ID"]
        for _ in range(3):
            assert server.post("/modalities/self/store", instance).ok
    for query in queries:
        mine, theirs = _both(fresh_pair, lambda s, q=query: exports(s, q))
        assert mine == theirs


# -- /{level}?since&limit ------------------------------------------------------------------


@pytest.mark.parametrize("level", ["patients", "studies", "series", "instances"])
def test_listing_pages_like_orthanc(loaded: tuple[Isengard, Orthanc], level: str) -> None:
    """``limit=0`` is an empty page in 1.10.1; pages follow the order of arrival."""
    for since, limit in ((0, 0), (1, 0), (0, 100), (0, 1), (1, 2), (3, 3), (100, 5)):
        path = f"/{level}?since={since}&limit={limit}"
        mine, theirs = _both(loaded, lambda s, p=path: s.json(p))
        assert mine == theirs, path
        assert [r["ID"] for r in loaded[0].json(path + "&expand")] == mine, path
    for incomplete in ("since=1", "limit=1"):
        mine, theirs = _both(loaded, lambda s, q=incomplete: s.get(f"/{level}?{q}").status_code)
        assert mine == theirs == 400


# -- /tools/find ---------------------------------------------------------------------------


FINDS: list[tuple[str, dict[str, str], bool | None]] = [
    ("Patient", {"PatientName": "*"}, None),
    ("Patient", {"PatientName": "test-É*"}, None),
    ("Patient", {"PatientName": "test-é*"}, True),
    ("Patient", {"PatientName": "Test-é*"}, True),
    ("Patient", {"PatientName": "TEST-éüäöò"}, None),
    ("Patient", {"PatientSex": "m\\f"}, None),
    ("Patient", {"PatientSex": "m\\f"}, True),
    ("Patient", {"PatientSex": "M\\F\\O"}, True),
    ("Study", {"RequestedProcedureDescription": "CT2 TÊTE, FACE, SINUS"}, None),
    ("Study", {"RequestedProcedureDescription": "ct2 tête, FACE, sinus"}, None),
    ("Study", {"RequestedProcedureDescription": "ct2 TÊ*"}, None),
    ("Series", {"PerformedProcedureStepDescription": "ct2 tête*"}, None),
    ("Study", {"StudyDescription": "*TÊTE*"}, None),
    ("Study", {"PatientID": "COMMON"}, None),
    ("Study", {"PatientID": "COMMON"}, True),
    ("Study", {"StudyDescription": "?*"}, None),
    ("Study", {"ModalitiesInStudy": "CT"}, None),
    ("Study", {"ModalitiesInStudy": "rtstruct"}, None),
    ("Study", {"ModalitiesInStudy": "UX\\RTSTRUCT"}, None),
    ("Study", {"ModalitiesInStudy": "UX\\MR"}, None),
    ("Study", {"ModalitiesInStudy": "C*"}, None),
    ("Study", {"ModalitiesInStudy": "R*"}, None),
    ("Study", {"ModalitiesInStudy": "rt*"}, True),
    ("Study", {"ModalitiesInStudy": "*"}, None),
    ("Series", {"ModalitiesInStudy": "CT"}, None),
    ("Study", {"Modality": "CT"}, None),
    ("Patient", {"StudyDescription": "*"}, None),
    ("Instance", {"SeriesDescription": "*"}, None),
    ("Study", {"StudyDate": "-"}, None),
    ("Study", {"StudyDate": "20000101-"}, None),
    ("Study", {"StudyDate": "-20000101"}, None),
    ("Study", {"StudyDate": "2*-"}, None),
    ("Study", {"StudyDate": "2020*"}, None),
    ("Instance", {"Rows": "512\\256"}, None),
    ("Instance", {"ImageType": "ORIGINAL\\PRIMARY"}, None),
    ("Instance", {"ImageType": "*PRIMARY*"}, None),
    ("Instance", {"Rows": "*"}, None),
    ("Images", {"PatientName": "*"}, None),
    ("STUDIES", {}, None),
]


def _find(server: Server, body: dict) -> tuple[int, Any]:
    answer = server.post("/tools/find", json.dumps(body))
    if answer.status_code != 200:
        return answer.status_code, answer.json().get("Details")
    return 200, sorted(answer.json())


@pytest.mark.parametrize(("level", "query", "case_sensitive"), FINDS)
def test_find_like_orthanc(loaded: tuple[Isengard, Orthanc], level: str, query: dict,
                           case_sensitive: bool | None) -> None:
    body: dict[str, Any] = {"Level": level, "Query": query}
    if case_sensitive is not None:
        body["CaseSensitive"] = case_sensitive
    mine, theirs = _both(loaded, lambda s: _find(s, body))
    assert mine == theirs


BAD_FINDS = [{"Level": "Study"}, {"Query": {}}, {"Level": "Study", "Query": {}, "Limit": -1},
             {"Level": "Study", "Query": {}, "Limit": "2"}, {"Level": "Study", "Query": {}, "Since": 1.5},
             {"Level": "Study", "Query": {}, "Limit": True}, {"Level": "Study", "Query": {}, "CaseSensitive": 1},
             {"Level": "Study", "Query": {"PatientID": 3}}]


@pytest.mark.parametrize("body", BAD_FINDS)
def test_bad_find_bodies_like_orthanc(loaded: tuple[Isengard, Orthanc], body: dict) -> None:
    mine, theirs = _both(loaded, lambda s: _find(s, body))
    assert mine == theirs and mine[0] == 400


def test_lookup_ignores_case_like_orthanc(loaded: tuple[Isengard, Orthanc]) -> None:
    """``/tools/lookup`` compares identifiers as Orthanc normalizes them."""
    for value in ("COMMON", "common", "  common ", "1.2.840.113619.2.176.2025.1499492.7391.1171285944.390",
                  "unknown"):
        mine, theirs = _both(loaded, lambda s, v=value: s.post("/tools/lookup", v).json())
        assert mine == theirs, value


# -- /tools/default-encoding -----------------------------------------------------------------


def test_default_encoding_names_like_orthanc(loaded: tuple[Isengard, Orthanc]) -> None:
    try:
        for name in ("latin4", "WINDOWS1251", "Utf8", "Japanese", "nonsense"):
            mine, theirs = _both(loaded, lambda s, n=name: s.put("/tools/default-encoding", n))
            assert (mine.status_code, mine.text if mine.ok else "") == \
                (theirs.status_code, theirs.text if theirs.ok else "")
            mine, theirs = _both(loaded, lambda s: s.get("/tools/default-encoding").text)
            assert mine == theirs
    finally:
        for server in loaded:
            server.put("/tools/default-encoding", "Latin1")


# -- the C-FIND SCP ----------------------------------------------------------------------------


def _cfind(server: Server, keys: dict[str, object] | Dataset) -> tuple[list[dict[str, bytes | str]], int]:
    """Answers with the raw bytes of each text value, RetrieveAETitle aside."""
    identifier = keys if isinstance(keys, Dataset) else query_identifier(keys)
    ae = AE(ae_title=SCU_AET)
    model = StudyRootQueryRetrieveInformationModelFind
    ae.add_requested_context(model)
    assoc = ae.associate("127.0.0.1", server.dicom_port, ae_title=server.aet)
    assert assoc.is_established
    answers, final = [], -1
    try:
        for status, answer in assoc.send_c_find(identifier, model):
            if status.Status in (0xFF00, 0xFF01):
                answers.append({str(tag): _raw(answer, tag) for tag in answer.keys()
                                if tag != 0x00080054})
            else:
                final = status.Status
    finally:
        assoc.release()
    return sorted(answers, key=repr), final


def _raw(answer: Dataset, tag: int) -> bytes | str:
    element = answer.get_item(tag)
    value = element.value
    return value if isinstance(value, bytes) else str(value)


CFINDS = {
    "images level spelled IMAGES": {"QueryRetrieveLevel": "IMAGES", "SOPInstanceUID": "",
                                    "Rows": "", "Columns": "", "PatientName": ""},
    "modalities in study list": {"QueryRetrieveLevel": "STUDY", "ModalitiesInStudy": "UX\\RTSTRUCT",
                                 "StudyInstanceUID": ""},
    "modalities in study answered": {"QueryRetrieveLevel": "STUDY", "ModalitiesInStudy": "",
                                     "StudyInstanceUID": ""},
    "person names ignore case": {"QueryRetrieveLevel": "PATIENT", "PatientName": "test*",
                                 "PatientID": ""},
    "other text is case-sensitive": {"QueryRetrieveLevel": "PATIENT", "PatientID": "common"},
    "lower level key matches nothing": {"QueryRetrieveLevel": "STUDY", "Modality": "CT"},
}


@pytest.mark.parametrize("name", list(CFINDS))
def test_cfind_like_orthanc(loaded: tuple[Isengard, Orthanc], name: str) -> None:
    mine, theirs = _both(loaded, lambda s: _cfind(s, CFINDS[name]))
    assert mine == theirs


@pytest.mark.parametrize("encoding", ["Latin4", "Japanese", "Windows1251", "Utf8", "Ascii", "Thai"])
def test_cfind_answers_in_default_encoding_like_orthanc(loaded: tuple[Isengard, Orthanc],
                                                        encoding: str) -> None:
    """Names are written in ``DefaultEncoding`` (what it lacks dropped), with its
    SpecificCharacterSet, none for Windows1251."""
    keys = {"QueryRetrieveLevel": "PATIENT", "PatientName": "", "PatientID": "",
            "SpecificCharacterSet": ""}
    try:
        for server in loaded:
            assert server.put("/tools/default-encoding", encoding).ok
        mine, theirs = _both(loaded, lambda s: _cfind(s, keys))
        assert mine == theirs
    finally:
        for server in loaded:
            server.put("/tools/default-encoding", "Latin1")


def test_cfind_answers_leave_out_the_meta_group(loaded: tuple[Isengard, Orthanc]) -> None:
    """A group 0002 key (findscu ``-k 2,2``) is no key and comes back in no answer."""
    outputs = []
    for server in loaded:
        done = subprocess.run(
            [dcmtk("findscu"), "-S", "-aet", SCU_AET, "-aec", server.aet, "127.0.0.1",
             str(server.dicom_port), "-k", "0008,0052=IMAGE", "-k", "0008,0016", "-k", "0002,0002",
             "-k", "0010,0020=COMMON"],
            capture_output=True, text=True, errors="replace", env=dcmtk_env(), timeout=60)
        outputs.append(done.stdout + done.stderr)
    for output in outputs:
        assert "(0008,0016)" in output and "(0002,0002)" not in output.split("Find Response")[-1]


# -- numbers in C-FIND SCU keys --------------------------------------------------------------


def test_query_numbers_like_orthanc(loaded: tuple[Isengard, Orthanc]) -> None:
    """``/modalities/self/query`` with a US key: its number matches, text that is none fails."""
    for value, normalize in (("512", False), ("42", False), ("512", True),
                             ("*", False), ("abc", False)):
        body = json.dumps({"Level": "Instance", "Query": {"Rows": value}, "Normalize": normalize})
        results = []
        for server in loaded:
            answer = server.post("/modalities/self/query", body)
            if answer.status_code != 200:
                results.append((answer.status_code, answer.json()["Details"]))
            else:
                path = answer.json()["Path"]
                answers = server.json(f"{path}/answers?expand&simplify")
                for item in answers:     # Orthanc shows a meta header of its own in answers
                    for key in ("RetrieveAETitle", "MediaStorageSOPInstanceUID"):
                        item.pop(key, None)
                results.append((200, sorted(answers, key=lambda a: json.dumps(a, sort_keys=True))))
        assert results[0] == results[1], (value, normalize)


# -- LimitFindResults and LimitFindInstances ---------------------------------------------------


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Isengard, Orthanc]]:
    """Both servers with small database limits, holding the same six studies."""
    root = tmp_path_factory.mktemp("limits")
    options = {**QUIET, "LimitFindResults": 2, "LimitFindInstances": 3}
    if not ORTHANC_BINARY.exists():
        pytest.skip("the real Orthanc is not installed (make test installs it)")
    pair = Isengard(root / "isengard", **options).start(), Orthanc(root / "orthanc", **options).start()
    for server in pair:
        for name in ("ColorTestImageJ.dcm", "Issue143.dcm", "KarstenHilbertRF.dcm",
                     "MarekLatin2.dcm", "sample-pdf.dcm", "Issue19.dcm"):
            server.upload(sample(name))
    yield pair
    for server in pair:
        server.stop()


@pytest.mark.parametrize("level", ["Patient", "Study", "Series", "Instance"])
def test_find_takes_limit_plus_one_from_the_database_like_orthanc(
        limited: tuple[Isengard, Orthanc], level: str) -> None:
    """Orthanc 1.10.1 takes one more candidate than the limit from its database, then
    applies ``Since`` and ``Limit`` to those."""
    for extra in ({}, {"Limit": 5}, {"Since": 1}, {"Since": 1, "Limit": 1}):
        body = {"Level": level, "Query": {}, **extra}
        mine, theirs = _both(limited, lambda s, b=body: _find(s, b))
        assert mine == theirs, extra
    body = {"Level": "Study", "Query": {"ModalitiesInStudy": "CT\\MR\\OT"}}
    assert _find(limited[0], body) == _find(limited[1], body)


@pytest.mark.parametrize("keys", [
    {"QueryRetrieveLevel": "STUDY", "StudyInstanceUID": ""},
    {"QueryRetrieveLevel": "IMAGE", "SOPInstanceUID": ""},
    {"QueryRetrieveLevel": "STUDY", "ModalitiesInStudy": "CT\\MR\\OT", "StudyInstanceUID": ""},
    {"QueryRetrieveLevel": "STUDY", "ModalitiesInStudy": "O*", "StudyInstanceUID": ""},
    {"QueryRetrieveLevel": "IMAGE", "SOPInstanceUID": "", "Rows": 512}])
def test_cfind_limits_like_orthanc(limited: tuple[Isengard, Orthanc], keys: dict) -> None:
    """At most the limit of answers, then Cancel when the database had more."""
    mine, theirs = _both(limited, lambda s: _cfind(s, keys))
    assert mine == theirs
