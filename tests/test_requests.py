"""The request parsers of the REST edge: every bad field gets the status, Orthanc error code and
details the real Orthanc 1.10.1 answers (checked field by field against it), and good bodies
become the typed requests the jobs and DICOM services take.  The last test checks through HTTP
that the routes use them, comparing with the real Orthanc."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from conftest import ORTHANC_BINARY, Isengard, Orthanc, Server, free_port, sample
from server.dicom.main_tags import Level, parse_level
from server.errors import ErrorCode, OrthancError
from server.rest import requests

STUDY = "db1d826e-2f018e02-c7f35a1b-bb359a4d-dcb3961b"
UNKNOWN = "00000000-00000000-00000000-00000000-00000000"
SERIES = "7c66ccc1-673ad76e-01282155-b44e7224-6564eadc"
INSTANCE = "efe24a75-8feafc74-fc83584b-0f133128-60304d7c"
REPLACE = {"Replace": {"StudyDescription": "x"}}


def _name() -> str:
    return "Anonymized1"


def _split(body: Any) -> requests.SplitRequest:
    return requests.split_request(body, lambda field, ids: None)


def _merge(body: Any) -> requests.MergeRequest:
    return requests.merge_request(body, lambda ids: None)


def _create(body: Any) -> requests.CreateDicomRequest:
    return requests.create_dicom_request(body, lambda parent: None)


def _refused(parse: Any, *args: Any) -> tuple[int, int, str | None]:
    with pytest.raises(OrthancError) as refused:
        parse(*args)
    return refused.value.status, refused.value.code, refused.value.details


def _raw(body: Any) -> bytes:
    return body if isinstance(body, bytes) else json.dumps(body).encode()


# (body, status, Orthanc error code, details) of the job-producing routes
JOB_OPTIONS = [
    ({"Synchronous": 3}, 400, ErrorCode.BAD_FILE_FORMAT, "Boolean value expected in field: Synchronous"),
    ({"Asynchronous": "x"}, 400, ErrorCode.BAD_FILE_FORMAT, "Boolean value expected in field: Asynchronous"),
    ({"Priority": "x"}, 400, ErrorCode.BAD_FILE_FORMAT, "Integer value expected in field: Priority"),
    ({"Priority": 1.5}, 400, ErrorCode.BAD_FILE_FORMAT, "Integer value expected in field: Priority"),
]


@pytest.mark.parametrize(("body", "status", "code", "details"), JOB_OPTIONS)
def test_job_options_refused(body: dict, status: int, code: int, details: str) -> None:
    assert _refused(requests.job_options, body) == (status, code, details)


def test_job_options() -> None:
    assert requests.job_options({}) == requests.JobOptions(True, 0)
    assert requests.job_options([1]) == requests.JobOptions(True, 0)  # no object: the defaults
    assert requests.job_options({"Asynchronous": True, "Priority": 4}) == requests.JobOptions(False, 4)
    assert requests.job_options({"Synchronous": True, "Asynchronous": True}).synchronous
    assert not requests.job_options({}, synchronous_by_default=False).synchronous


MODIFY = [
    ("nope", 400, ErrorCode.BAD_FILE_FORMAT, None),
    ({"Force": 3}, 400, ErrorCode.BAD_FILE_FORMAT, 'Member "Force" should be a Boolean value'),
    ({"Replace": 3}, 400, ErrorCode.BAD_REQUEST, None),
    ({"Remove": [3]}, 400, ErrorCode.BAD_REQUEST, None),
    ({"Remove": ["StudyInstanceUID"]}, 400, ErrorCode.BAD_REQUEST,
     'Marking tag "StudyInstanceUID" as to be removed requires the "Force" option to be set to true'),
    ({"PrivateCreator": 3}, 400, ErrorCode.BAD_FILE_FORMAT, "String value expected in field: PrivateCreator"),
    ({**REPLACE, "KeepSource": 3}, 400, ErrorCode.BAD_FILE_FORMAT, "Boolean value expected in field: KeepSource"),
    ({**REPLACE, "Permissive": 3}, 400, ErrorCode.BAD_FILE_FORMAT, "Boolean value expected in field: Permissive"),
    # a job reads its Transcode itself: "bad file format", unlike the REST arguments
    ({**REPLACE, "Transcode": "x"}, 400, ErrorCode.BAD_FILE_FORMAT, "Unknown transfer syntax UID: x"),
    ({**REPLACE, "Transcode": 3}, 400, ErrorCode.BAD_FILE_FORMAT, "String value expected in field: Transcode"),
]


@pytest.mark.parametrize(("body", "status", "code", "details"), MODIFY)
def test_resource_modification_refused(body: Any, status: int, code: int, details: str | None) -> None:
    assert _refused(requests.resource_modification, body, False, Level.STUDY, "", _name) == (status, code, details)


def test_anonymization_refused() -> None:
    assert _refused(requests.resource_modification, {"DicomVersion": "x"}, True, Level.STUDY, "", _name) == (
        400, ErrorCode.PARAMETER_OUT_OF_RANGE, "Unknown specific version of the DICOM standard: x")
    assert _refused(requests.resource_modification, {"KeepPrivateTags": 1}, True, Level.STUDY, "", _name)[1] == \
        ErrorCode.BAD_FILE_FORMAT


def test_instance_modification_transcode_is_an_argument() -> None:
    """On ``/instances/{id}/modify`` Orthanc checks ``Transcode`` as a REST argument."""
    assert _refused(requests.instance_modification, {"Transcode": "x"}, False, "", _name) == (
        400, ErrorCode.PARAMETER_OUT_OF_RANGE, "Unknown transfer syntax: x")
    assert _refused(requests.instance_modification, {"Transcode": None}, False, "", _name) == (
        400, ErrorCode.BAD_FILE_FORMAT, "String value expected in field: Transcode")
    modification, transcode = requests.instance_modification(
        {"Replace": {"SeriesInstanceUID": "1.2"}, "Force": True, "Transcode": "1.2.840.10008.1.2"}, False, "", _name)
    assert modification.level is Level.SERIES and transcode == "1.2.840.10008.1.2"


def test_modification_requests() -> None:
    request = requests.resource_modification({**REPLACE, "KeepSource": False, "Transcode": "1.2.840.10008.1.2.1",
                                              "Permissive": True}, False, Level.STUDY, "creator", _name)
    assert (request.keep_source, request.transcode, request.permissive) == (False, "1.2.840.10008.1.2.1", True)
    assert request.modification.level is Level.STUDY and request.modification.private_creator == "creator"
    anonymized = requests.resource_modification({}, True, Level.STUDY, "", _name)
    assert anonymized.modification.is_anonymization and anonymized.keep_source
    assert anonymized.modification.replacements[0x00100010] == "Anonymized1"
    bulk, resources = requests.bulk_modification({**REPLACE, "Resources": ["b", "a", "b"], "Level": "Series"},
                                                 False, "", _name)
    assert resources == ["a", "b"] and bulk.modification.level is Level.SERIES
    assert _refused(requests.bulk_modification, {**REPLACE, "Resources": [3]}, False, "", _name) == (
        400, ErrorCode.BAD_FILE_FORMAT, "List of strings expected in field: Resources")
    assert _refused(requests.bulk_modification, {**REPLACE, "Resources": [], "Level": "x"}, False, "", _name)[:2] == (
        400, ErrorCode.PARAMETER_OUT_OF_RANGE)


ARCHIVE = [
    ({"Transcode": "x"}, 400, ErrorCode.PARAMETER_OUT_OF_RANGE, "Unknown transfer syntax: x"),
    ({"Transcode": ""}, 400, ErrorCode.PARAMETER_OUT_OF_RANGE, "Unknown transfer syntax: "),
    ({"Transcode": 3}, 400, ErrorCode.BAD_FILE_FORMAT, "String value expected in field: Transcode"),
    ({"Extended": 3}, 400, ErrorCode.BAD_FILE_FORMAT, "Boolean value expected in field: Extended"),
]


@pytest.mark.parametrize("media", [False, True])
@pytest.mark.parametrize(("body", "status", "code", "details"), ARCHIVE)
def test_archive_request_refused(media: bool, body: dict, status: int, code: int, details: str) -> None:
    assert _refused(requests.archive_request, body, [STUDY], media, False) == (status, code, details)


def test_archive_requests() -> None:
    request = requests.archive_request({"Transcode": "1.2.840.10008.1.2", "Extended": True}, [STUDY], True, False)
    assert request.resources == (STUDY,) and request.transcode == "1.2.840.10008.1.2" and request.extended
    assert not requests.archive_request({"Extended": True}, [STUDY], False, False).extended  # media only
    assert requests.archive_request([STUDY], [STUDY], True, True).extended  # no object: the defaults
    assert requests.archive_resources([STUDY]) == requests.archive_resources({"Resources": [STUDY]}) == [STUDY]
    assert _refused(requests.archive_resources, {}) == (400, ErrorCode.BAD_FILE_FORMAT,
                                                        "Missing field Resources in the JSON body")
    assert _refused(requests.archive_resources, [3])[1] == ErrorCode.BAD_FILE_FORMAT


def test_split_and_merge_requests() -> None:
    assert _refused(_split, {"KeepSource": 3}) == (
        400, ErrorCode.BAD_REQUEST, 'Both the "Series" and the "Instances" fields are missing')
    assert _refused(_split, {"Series": [3]}) == (
        400, ErrorCode.BAD_FILE_FORMAT, "List of strings expected in field: Series")
    assert _refused(_split, {"Series": ["a"], "Remove": ["Modality"]}) == (
        400, ErrorCode.PARAMETER_OUT_OF_RANGE, "Cannot modify the following tag while splitting a study "
        "(not in the patient/study modules): Modality (0008,0060)")
    assert _refused(_split, {"Series": ["a"], "Replace": {"PatientName": 3}})[1] == \
        ErrorCode.BAD_FILE_FORMAT
    split = _split({"Instances": ["i"], "Replace": {"PatientName": "x"}, "Remove": ["PatientSex"],
                                    "KeepSource": True})
    assert split.instances == ("i",) and split.replacements == {0x00100010: "x"} and split.removals == (0x00100040,)
    assert split.keep_source and not split.permissive
    assert _refused(_merge, {"Resources": 3}) == (
        400, ErrorCode.BAD_FILE_FORMAT, "List of strings expected in field: Resources")
    assert _merge({"Resources": ["a"], "Permissive": True}).permissive


STORE = [
    (b"nope", 400, ErrorCode.BAD_FILE_FORMAT, "Must provide a JSON value"),
    (3, 400, ErrorCode.BAD_FILE_FORMAT, "Must provide a JSON object, or a JSON array of strings"),
    ({}, 400, ErrorCode.BAD_FILE_FORMAT, 'Missing field in JSON: "Resources"'),
    ({"Resources": 3}, 400, ErrorCode.BAD_FILE_FORMAT, 'JSON field "Resources" must contain an array'),
    ({"Resources": [3]}, 400, ErrorCode.BAD_FILE_FORMAT,
     "Resources to be exported must be specified as a JSON array of strings"),
    ({"Resources": ["x"]}, 400, ErrorCode.BAD_FILE_FORMAT, "This string is not a valid Orthanc identifier: x"),
    ({"Resources": [], "Synchronous": 3}, 400, ErrorCode.BAD_FILE_FORMAT,
     "Boolean value expected in field: Synchronous"),
]


@pytest.mark.parametrize(("body", "status", "code", "details"), STORE + [
    ({"Resources": [], "Transcode": ""}, 400, ErrorCode.BAD_FILE_FORMAT, "Unknown transfer syntax UID: "),
    ({"Resources": [], "Transcode": 3}, 400, ErrorCode.BAD_FILE_FORMAT, "String value expected in field: Transcode"),
    ({"Resources": [], "Compress": 3}, 400, ErrorCode.BAD_FILE_FORMAT, "Boolean value expected in field: Compress"),
])
def test_peer_store_refused(body: Any, status: int, code: int, details: str) -> None:
    assert _refused(requests.peer_store_request, _raw(body), lambda: None) == (status, code, details)


def test_peer_store_checks_the_peer_where_orthanc_does() -> None:
    """After the resources, ``Transcode`` and ``Compress``; before ``Permissive`` and the job options."""
    def unknown_peer() -> None:
        raise OrthancError(ErrorCode.UNKNOWN_RESOURCE, "No peer")
    assert _refused(requests.peer_store_request, _raw({"Resources": [], "Compress": 3}), unknown_peer)[1] == \
        ErrorCode.BAD_FILE_FORMAT
    assert _refused(requests.peer_store_request, _raw({"Resources": [], "Permissive": 3}), unknown_peer)[1] == \
        ErrorCode.UNKNOWN_RESOURCE
    request, options = requests.peer_store_request(f'"{STUDY}"'.encode(), lambda: None)
    assert request.resources == (STUDY,) and request.transcode is None and options.synchronous
    request, options = requests.peer_store_request(
        _raw({"Resources": [STUDY], "Transcode": "1.2.840.10008.1.2", "Compress": True, "Asynchronous": True}),
        lambda: None)
    assert (request.transcode, request.compress, options.synchronous) == ("1.2.840.10008.1.2", True, False)


@pytest.mark.parametrize(("body", "status", "code", "details"), STORE + [
    ({"Resources": [], "Timeout": -1}, 400, ErrorCode.BAD_PARAMETER_TYPE,
     "Negative value found while expecting an unsigned int in field 'Timeout'"),
])
def test_modality_store_refused(body: Any, status: int, code: int, details: str) -> None:
    assert _refused(requests.modality_store_request, _raw(body)) == (status, code, details)


def test_modality_store_request() -> None:
    request, _ = requests.modality_store_request(_raw({"Resources": [STUDY], "LocalAet": "ME", "Timeout": 5,
                                                       "MoveOriginatorID": 7, "StorageCommitment": True}))
    assert (request.local_aet, request.timeout, request.move_originator_id, request.storage_commitment) == (
        "ME", 5.0, 7, True)


def test_retrieve_request() -> None:
    message = "Must provide a JSON body containing fields Resources and Level"
    assert _refused(requests.retrieve_request, b"{}") == (400, ErrorCode.BAD_FILE_FORMAT, message)
    assert _refused(requests.retrieve_request, _raw({"Level": "x", "Resources": []}))[:2] == (
        400, ErrorCode.PARAMETER_OUT_OF_RANGE)
    request, options = requests.retrieve_request(_raw({"Level": "image", "Resources": [{"StudyInstanceUID": "1.2"}],
                                                       "TargetAet": "T"}))
    assert request.level is Level.INSTANCE and request.resources == ({(0x0020, 0x000D): "1.2"},)
    assert request.target_aet == "T" and request.local_aet is None and not request.permissive
    assert options.synchronous
    request, options = requests.retrieve_request(_raw({"Level": "Study", "Resources": [], "Asynchronous": True,
                                                       "Permissive": True, "Priority": 3, "UserData": [1]}))
    assert request.permissive and request.target_aet is None
    assert (options.synchronous, options.priority, options.user_data) == (False, 3, [1])


COMMITMENT = [
    (b"nope", "Must provide a JSON object with a list of resources"),
    (3, "Must provide a JSON object with a list of resources"),
    ({}, 'Empty storage commitment request, one of these fields is mandatory: "Resources" or "DicomInstances"'),
    ({"Resources": 3}, 'The "Resources" field must provide an array of Orthanc resources'),
    ({"Resources": [3]}, 'The "Resources" field must provide an array of strings, found: 3\n'),
    ({"DicomInstances": 3}, 'The "DicomInstances" field must provide an array of DICOM instances'),
    ({"DicomInstances": [3]}, "JSON array or object is expected to specify one instance to be queried, found: 3\n"),
    ({"DicomInstances": [["a"]]}, "An instance entry must provide an array with 2 strings: SOP Class UID and "
                                  "SOP Instance UID"),
    ({"DicomInstances": [], "Timeout": "x"}, "Integer value expected in field: Timeout"),
]


@pytest.mark.parametrize(("body", "details"), COMMITMENT)
def test_commitment_request_refused(body: Any, details: str) -> None:
    assert _refused(requests.commitment_request, _raw(body)) == (400, ErrorCode.BAD_FILE_FORMAT, details)


def test_commitment_request() -> None:
    request = requests.commitment_request(_raw({"DicomInstances": [["1.2", "3.4"], {"SOPClassUID": "5",
                                                                                    "SOPInstanceUID": "6"}],
                                                "Resources": [STUDY], "Timeout": 3}))
    assert request.dicom_instances == (("1.2", "3.4"), ("5", "6")) and request.resources == (STUDY,)
    assert request.timeout == 3.0


CREATE = [
    ([], ErrorCode.BAD_REQUEST),
    ({"Tags": 3}, ErrorCode.BAD_REQUEST),
    ({"Tags": {}, "Force": 3}, ErrorCode.BAD_REQUEST),
    ({"Tags": {}, "InterpretBinaryTags": 3}, ErrorCode.BAD_REQUEST),
    ({"Tags": {}, "PrivateCreator": 3}, ErrorCode.BAD_REQUEST),
    ({"Tags": {}, "Parent": 3}, ErrorCode.CREATE_DICOM_BAD_PARENT),
    ({"Tags": {}, "Content": 3}, ErrorCode.CREATE_DICOM_USE_DATA_URI_SCHEME),
    ({"Tags": {"SpecificCharacterSet": "x"}}, ErrorCode.PARAMETER_OUT_OF_RANGE),
    ({"PatientName": 3}, ErrorCode.CREATE_DICOM_NOT_STRING),
]


@pytest.mark.parametrize(("body", "code"), CREATE)
def test_create_dicom_refused(body: Any, code: int) -> None:
    assert _refused(_create, body)[:2] == (400, code)


def test_create_dicom_request() -> None:
    legacy = _create({"PatientName": "A", "PatientID": "B"})
    assert legacy.legacy == ((0x00100020, "B"), (0x00100010, "A"))
    request = _create({"Tags": {"SpecificCharacterSet": "ISO_IR 192"}, "Parent": STUDY,
                                             "Content": ["data:x"], "Force": True})
    assert (request.encoding, request.parent, request.force, request.content) == ("Utf8", STUDY, True, ["data:x"])
    assert request.interpret_binary_tags and request.private_creator is None


# (route, body): bad fields, and their order against lookups, answered as the real Orthanc does
# (its details too, where 1.10.1 gives some)
ROUTES = [
    (f"/studies/{STUDY}/modify", {**REPLACE, "Transcode": "x"}),
    (f"/studies/{STUDY}/modify", {**REPLACE, "Synchronous": 3}),
    (f"/studies/{STUDY}/archive", {"Transcode": "x"}),
    (f"/studies/{STUDY}/archive", {"Transcode": None}),
    (f"/instances/{INSTANCE}/modify", {"Transcode": None}),
    (f"/instances/{INSTANCE}/modify", {"Transcode": "x"}),
    (f"/studies/{STUDY}/archive", {"Extended": 3}),
    (f"/patients/{UNKNOWN}/archive", {"Priority": "x"}),
    ("/tools/create-archive", b"nope"),
    ("/tools/create-media", {"Resources": [STUDY], "Priority": 1.5}),
    (f"/studies/{STUDY}/split", {"KeepSource": 3}),
    (f"/studies/{UNKNOWN}/split", {"Series": 3}),
    (f"/studies/{UNKNOWN}/merge", []),
    ("/peers/nope/store", {"Resources": [], "Transcode": "x"}),
    ("/peers/nope/store", {"Resources": [], "Permissive": 3}),
    ("/peers/p/store", {"Resources": [], "Transcode": ""}),
    ("/modalities/m/storage-commitment", {"DicomInstances": [], "Timeout": "x"}),
    ("/modalities/m/storage-commitment", {"Resources": [UNKNOWN]}),
    ("/modalities/m/storage-commitment", {"Resources": [3]}),
    ("/tools/bulk-modify", {**REPLACE, "Resources": [STUDY], "Asynchronous": 3}),
    (f"/studies/{STUDY}/merge", {"Resources": [SERIES], "KeepSource": 3}),
    (f"/studies/{STUDY}/split", {"Series": [UNKNOWN], "KeepSource": 3}),
    ("/tools/create-dicom", {"Tags": {}, "Force": 3, "Parent": UNKNOWN}),
]


def _error(server: Server, path: str, body: Any) -> tuple[int, int | None, str | None]:
    answer = server.post(path, _raw(body))
    document = answer.json()
    return answer.status_code, document.get("OrthancStatus"), document.get("Details")


def test_routes_answer_as_orthanc(make_isengard: Any, tmp_path: Path) -> None:
    if not ORTHANC_BINARY.exists():
        pytest.skip("the real Orthanc is not installed (make test installs it)")
    options = {"DicomModalities": {"m": ["M", "127.0.0.1", free_port()]},
               "OrthancPeers": {"p": [f"http://127.0.0.1:{free_port()}/"]}, "HttpTimeout": 2, "DicomScuTimeout": 2}
    ours: Isengard = make_isengard(**options)
    theirs = Orthanc(tmp_path / "orthanc", **options).start()
    try:
        for server in (ours, theirs):
            assert server.upload(sample("2020-08-12-Christopher.dcm"))["ParentStudy"] == STUDY
        for path, body in ROUTES:
            status, code, details = _error(theirs, path, body)
            expected = (status, code, details) if details else (status, code)
            assert _error(ours, path, body)[:len(expected)] == expected, (path, body)
    finally:
        theirs.stop()


def test_one_level_parser() -> None:
    """Orthanc's ``StringToResourceType``: any case, singular or plural, Image for Instance."""
    for text, level in (("patient", Level.PATIENT), ("Studies", Level.STUDY), ("SERIES", Level.SERIES),
                        ("image", Level.INSTANCE), ("Instances", Level.INSTANCE), ("IMAGES", Level.INSTANCE)):
        assert parse_level(text) is level and Level.parse(text) is level
    assert _refused(parse_level, "nope") == (400, ErrorCode.PARAMETER_OUT_OF_RANGE, "Invalid resource type 'nope'")
    with pytest.raises(ValueError):
        Level.parse(" study")
