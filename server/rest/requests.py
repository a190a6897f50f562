"""Request bodies become typed requests here, once, at the REST edge.

Every route whose body drives a job or a DICOM service parses it with one of these
functions; what comes out is a frozen dataclass defined beside the code that consumes it
(:class:`~server.jobs.modification.ModificationRequest`,
:class:`~server.jobs.archive.ArchiveRequest`, :class:`~server.jobs.split_merge.SplitRequest`,
:class:`~server.dicom.create.CreateDicomRequest`...), so ``server.jobs`` and ``server.dicom``
never see raw JSON.  Errors are Orthanc's: the field readers give ``SerializationToolbox``'s
"bad file format" messages, and the routes whose Orthanc handlers check a field their own way
keep that answer (noted where it happens).

Checks that need the index (does this resource exist?) stay with the services: a request
is valid or not on its own.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import server
from server.dicom.anonymization_profiles import DEFAULT_VERSION, PROFILES
from server.dicom.charset import encoding_for_term
from server.dicom.create import CreateDicomRequest
from server.dicom.encode import parse_tag
from server.dicom.main_tags import Level, Tag, parse_level
from server.dicom.modify import (
    IDENTIFIERS,
    PATIENT_NAME,
    Modification,
    TagPath,
    detect_level,
)
from server.dicom.transcode import parse_transcode
from server.errors import ErrorCode, OrthancError
from server.find import parse_tag as parse_query_tag
from server.jobs.archive import API_NORMALIZED_PATHS, ArchiveRequest
from server.jobs.modification import ModificationRequest
from server.jobs.peer_store import PeerStoreRequest
from server.jobs.retrieve_scu import RetrieveRequest
from server.jobs.split_merge import MergeRequest, SplitRequest, split_tag
from server.jobs.store_scu import ModalityStoreRequest
from server.net.storage_commitment import CommitmentRequest
from server.rest.base import download_filename
from server.rest.body import parse_json
from server.storage import ids

# -- fields (Orthanc's SerializationToolbox) ----------------------------------------------


def boolean_field(body: dict[str, Any], key: str, default: bool) -> bool:
    """``ReadBoolean`` of an optional field."""
    if key not in body:
        return default
    if not isinstance(body[key], bool):
        raise OrthancError(ErrorCode.BAD_FILE_FORMAT, f"Boolean value expected in field: {key}")
    return bool(body[key])


def integer_field(body: dict[str, Any], key: str, default: int) -> int:
    """``ReadInteger`` of an optional field."""
    if key not in body:
        return default
    value = body[key]
    if not isinstance(value, int) or isinstance(value, bool):
        raise OrthancError(ErrorCode.BAD_FILE_FORMAT, f"Integer value expected in field: {key}")
    return value


def lossy_quality_field(body: dict[str, Any]) -> int | None:
    """``LossyQuality`` (Orthanc 1.12.7): Orthanc's ``ReadUnsignedInteger``, clamped to
    libjpeg's 1..100; None when absent (``DicomLossyTranscodingQuality`` then)."""
    if "LossyQuality" not in body:
        return None
    value = body["LossyQuality"]
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise OrthancError(ErrorCode.BAD_FILE_FORMAT, "Unsigned integer value expected in field: LossyQuality")
    return min(100, max(1, value))


def strings_field(body: dict[str, Any], key: str) -> list[str]:
    """``ReadArrayOfStrings`` of a mandatory field."""
    value = body.get(key)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise OrthancError(ErrorCode.BAD_FILE_FORMAT, f"List of strings expected in field: {key}")
    return value


def typed_option(body: dict[str, Any], key: str, kind: type, default: Any = None) -> Any:
    """An optional field of the given type, as the DICOM network routes check them."""
    if key not in body:
        return default
    value = body[key]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        label = {str: "String", int: "Integer", bool: "Boolean"}.get(kind, "A")
        raise OrthancError(ErrorCode.BAD_FILE_FORMAT, f"{label} value expected in field: {key}")
    return value


def timeout_field(body: dict[str, Any]) -> float | None:
    """``Timeout`` of the DICOM network routes, in seconds (0 or absent: the configured one)."""
    value = typed_option(body, "Timeout", int)
    if value is not None and value < 0:
        raise OrthancError(ErrorCode.BAD_PARAMETER_TYPE,
                           "Negative value found while expecting an unsigned int in field 'Timeout'")
    return float(value) if value else None


def transcode_field(body: dict[str, Any], job: bool) -> str | None:
    """``Transcode`` through the one validator (:func:`server.dicom.transcode.parse_transcode`)."""
    return parse_transcode(body["Transcode"], job=job) if "Transcode" in body else None


def json_object(raw: bytes, error: OrthancError) -> dict[str, Any]:
    """A body that must be a JSON object; ``error`` otherwise."""
    body = parse_json(raw, error)
    if not isinstance(body, dict):
        raise error
    return body


# -- job submission -----------------------------------------------------------------------


@dataclass(frozen=True)
class JobOptions:
    """How a job-producing request wants its job run (``Synchronous``/``Asynchronous``, ``Priority``),
    and the ``UserData`` (any JSON) the job carries along (Orthanc 1.12.9)."""

    synchronous: bool = True
    priority: int = 0
    user_data: Any = None


def job_options(body: Any, synchronous_by_default: bool = True) -> JobOptions:
    """Orthanc's ``IsSynchronousJobRequest`` and ``GetJobRequestPriority``: a body that is no
    object asks for the defaults; ``Synchronous`` wins over ``Asynchronous``."""
    if not isinstance(body, dict):
        return JobOptions(synchronous_by_default)
    synchronous = synchronous_by_default
    if "Synchronous" in body:
        synchronous = boolean_field(body, "Synchronous", True)
    elif "Asynchronous" in body:
        synchronous = not boolean_field(body, "Asynchronous", False)
    return JobOptions(synchronous, integer_field(body, "Priority", 0), body.get("UserData"))


# -- modify and anonymize -------------------------------------------------------------------


def _modify_boolean(body: dict[str, Any], key: str, default: bool) -> bool:
    """The modification's own booleans (``Force``, ``RemovePrivateTags``...), with their message."""
    if key not in body:
        return default
    value = body[key]
    if not isinstance(value, bool):
        raise OrthancError(ErrorCode.BAD_FILE_FORMAT, f'Member "{key}" should be a Boolean value')
    return value


def _parse_list(modification: Modification, body: dict[str, Any], key: str, force: bool) -> None:
    """``Remove`` or ``Keep``: a list of tag paths; identifiers only with ``Force``."""
    if key not in body:
        return
    values = body[key]
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise OrthancError(ErrorCode.BAD_REQUEST)
    for name in values:
        path = TagPath.parse(name)
        if not path.prefix and not force and path.tag in IDENTIFIERS:
            verb = "kept" if key == "Keep" else "removed"
            raise OrthancError(ErrorCode.BAD_REQUEST, f'Marking tag "{name}" as to be {verb} '
                                                      'requires the "Force" option to be set to true')
        if key == "Keep":
            modification.keep(path)
        else:
            modification.remove(path)


def _parse_replacements(modification: Modification, body: dict[str, Any], force: bool) -> None:
    if "Replace" not in body:
        return
    replacements = body["Replace"]
    if not isinstance(replacements, dict):
        raise OrthancError(ErrorCode.BAD_REQUEST)
    for name in sorted(replacements):
        path = TagPath.parse(name)
        if not path.prefix and not force and path.tag in IDENTIFIERS:
            raise OrthancError(ErrorCode.BAD_REQUEST, f'Marking tag "{name}" as to be replaced '
                                                      'requires the "Force" option to be set to true')
        modification.replace(path, replacements[name])


def _parse_private_creator(modification: Modification, body: dict[str, Any]) -> None:
    if "PrivateCreator" in body:
        value = body["PrivateCreator"]
        if not isinstance(value, str):
            raise OrthancError(ErrorCode.BAD_FILE_FORMAT, "String value expected in field: PrivateCreator")
        modification.private_creator = value


def _modification_object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise OrthancError(ErrorCode.BAD_FILE_FORMAT)
    return body


def modify_request(body: Any, default_private_creator: str = "") -> Modification:
    """A ``/modify`` body (``Replace``, ``Remove``, ``Keep``, ``RemovePrivateTags``, ``Force``...),
    also Lua's ``ModifyInstance``.

    The level is left at Instance: the caller sets the route's level, or
    :func:`~server.dicom.modify.detect_level` for a single instance.
    """
    body = _modification_object(body)
    modification = Modification(private_creator=default_private_creator)
    force = _modify_boolean(body, "Force", False)
    if _modify_boolean(body, "RemovePrivateTags", False):
        modification.set_remove_private_tags(True)
    _parse_list(modification, body, "Remove", force)
    _parse_replacements(modification, body, force)
    _parse_list(modification, body, "Keep", force)
    _parse_private_creator(modification, body)
    return modification


def anonymize_request(body: Any, default_private_creator: str = "",
                      patient_name: Callable[[], str] | None = None) -> Modification:
    """An ``/anonymize`` body (``DicomVersion``, ``KeepPrivateTags``, ``Replace``, ``Remove``, ``Keep``...).

    ``patient_name`` gives the ``Anonymized{N}`` name used when the request leaves
    PatientName to the profile; it is called only then, as Orthanc increments its
    counter only then.
    """
    body = _modification_object(body)
    modification = Modification(private_creator=default_private_creator)
    force = _modify_boolean(body, "Force", False)
    version = DEFAULT_VERSION
    if "DicomVersion" in body:
        version = body["DicomVersion"]
        if not isinstance(version, str):
            raise OrthancError(ErrorCode.BAD_FILE_FORMAT)
        if version not in PROFILES:
            raise OrthancError(ErrorCode.PARAMETER_OUT_OF_RANGE,
                               f"Unknown specific version of the DICOM standard: {version}")
    modification.setup_anonymization(version)
    if _modify_boolean(body, "KeepPrivateTags", False):
        modification.set_remove_private_tags(False)
    _parse_list(modification, body, "Remove", force)
    _parse_replacements(modification, body, force)
    _parse_list(modification, body, "Keep", force)
    if PATIENT_NAME in modification.uids and patient_name is not None:
        modification.replace(TagPath((), PATIENT_NAME), patient_name(), safe_for_anonymization=True)
    _parse_private_creator(modification, body)
    return modification


def _modification(body: Any, anonymize: bool, creator: str, patient_name: Callable[[], str]) -> Modification:
    if anonymize:
        return anonymize_request(body, creator, patient_name)
    return modify_request(body, creator)


def instance_modification(body: Any, anonymize: bool, creator: str,
                          patient_name: Callable[[], str]) -> tuple[Modification, str | None]:
    """``/instances/{id}/modify|anonymize``: the modification (level detected for a
    modification) and the ``Transcode`` of a modification, checked as a REST argument."""
    modification = _modification(body, anonymize, creator, patient_name)
    if anonymize:
        return modification, None
    modification.set_level(detect_level(modification))
    return modification, transcode_field(body, job=False)


def _modification_request(body: dict[str, Any], modification: Modification) -> ModificationRequest:
    """The job fields of a modification (Orthanc's ``ResourceModificationJob`` reads them itself:
    hence ``Transcode``'s job error)."""
    return ModificationRequest(modification, keep_source=boolean_field(body, "KeepSource", True),
                               transcode=transcode_field(body, job=True),
                               permissive=boolean_field(body, "Permissive", False),
                               keep_labels=boolean_field(body, "KeepLabels", False))


def resource_modification(body: Any, anonymize: bool, level: Level, creator: str,
                          patient_name: Callable[[], str]) -> ModificationRequest:
    """``/{patients,studies,series}/{id}/modify|anonymize``."""
    modification = _modification(body, anonymize, creator, patient_name)
    if not anonymize:
        modification.set_level(level)
    return _modification_request(body, modification)


def bulk_modification(body: Any, anonymize: bool, creator: str,
                      patient_name: Callable[[], str]) -> tuple[ModificationRequest, list[str]]:
    """``/tools/bulk-modify`` (``Level`` or detected) and ``/tools/bulk-anonymize``: the request
    and its ``Resources``, as the set Orthanc reads."""
    modification = _modification(body, anonymize, creator, patient_name)
    if not anonymize:
        if "Level" not in body:
            level = detect_level(modification)
        elif isinstance(body["Level"], str):
            level = parse_level(body["Level"])
        else:
            raise OrthancError(ErrorCode.PARAMETER_OUT_OF_RANGE)
        modification.set_level(level)
    resources = sorted(set(strings_field(body, "Resources")))
    return _modification_request(body, modification), resources


# -- archives and media ---------------------------------------------------------------------


def archive_request(body: Any, resources: list[str], media: bool, extended: bool, *,
                    utf8: bool = False, patient_from_study: bool = False) -> ArchiveRequest:
    """The fields of an archive or media POST (a body that is no object asks for the defaults).
    Orthanc checks ``Extended`` for archives too, and uses it for media only; a ``Filename``
    that is no string is ignored, as Orthanc 1.12.7 does; ``Utf8`` (Orthanc 1.12.11, API 30)
    overrides ``utf8``, the ``ZipUseUtf8`` default."""
    if not isinstance(body, dict):
        return ArchiveRequest(tuple(resources), media, None, extended, utf8=utf8,
                              patient_from_study=patient_from_study)
    transcode = transcode_field(body, job=False)
    if "Extended" in body:
        value = boolean_field(body, "Extended", False)
        extended = value if media else extended
    if server.ORTHANC_API_VERSION >= API_NORMALIZED_PATHS:
        utf8 = boolean_field(body, "Utf8", utf8)
    filename = body.get("Filename")
    return ArchiveRequest(tuple(resources), media, transcode, extended,
                          download_filename(filename) if isinstance(filename, str) else None,
                          lossy_quality_field(body) if transcode is not None else None,
                          utf8=utf8, patient_from_study=patient_from_study)



def archive_resources(body: Any) -> list[str]:
    """The resources of ``/tools/create-archive|create-media``: a list, or ``{"Resources": [...]}``."""
    if isinstance(body, dict):
        if "Resources" not in body:
            raise OrthancError(ErrorCode.BAD_FILE_FORMAT, "Missing field Resources in the JSON body")
        resources = body["Resources"]
    elif isinstance(body, list):
        resources = body
    else:
        raise OrthancError(ErrorCode.BAD_FILE_FORMAT)
    if not isinstance(resources, list) or not all(isinstance(r, str) for r in resources):
        raise OrthancError(ErrorCode.BAD_FILE_FORMAT, "Expected a list of strings (Orthanc identifiers)")
    return resources


# -- split and merge ---------------------------------------------------------------------------


def _names(body: dict[str, Any], key: str) -> list[str]:
    values = body.get(key, [])
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise OrthancError(ErrorCode.BAD_FILE_FORMAT)
    return values


def _split_replacements(body: dict[str, Any]) -> dict[str, str]:
    values = body.get("Replace", {})
    if not isinstance(values, dict) or not all(isinstance(v, str) for v in values.values()):
        raise OrthancError(ErrorCode.BAD_FILE_FORMAT)
    return values


def split_request(body: Any, check_sources: Callable[[str, list[str]], None]) -> SplitRequest:
    """``/studies/{id}/split``.  Orthanc checks that the ``Series``, then the ``Instances``,
    belong to the study as it reads each field (``check_sources(field, ids)``)."""
    if not isinstance(body, dict):
        raise OrthancError(ErrorCode.BAD_FILE_FORMAT)
    series = strings_field(body, "Series") if "Series" in body else []
    check_sources("Series", series)
    instances = strings_field(body, "Instances") if "Instances" in body else []
    check_sources("Instances", instances)
    if not series and not instances:
        raise OrthancError(ErrorCode.BAD_REQUEST, 'Both the "Series" and the "Instances" fields are missing')
    keep_source = boolean_field(body, "KeepSource", False)
    removals = tuple(split_tag(name) for name in _names(body, "Remove"))
    replacements = {split_tag(name): value for name, value in _split_replacements(body).items()}
    return SplitRequest(tuple(series), tuple(instances), keep_source, removals, replacements,
                        boolean_field(body, "Permissive", False))


def merge_request(body: Any, check_sources: Callable[[list[str]], None]) -> MergeRequest:
    """``/studies/{id}/merge``.  Orthanc checks the ``Resources`` (``check_sources``) before
    reading the other fields."""
    if not isinstance(body, dict):
        raise OrthancError(ErrorCode.BAD_FILE_FORMAT)
    resources = strings_field(body, "Resources")
    check_sources(resources)
    return MergeRequest(tuple(resources), boolean_field(body, "KeepSource", False),
                        boolean_field(body, "Permissive", False))


# -- sending to peers and modalities ------------------------------------------------------------


def export_request(raw: bytes) -> tuple[list[str], dict[str, Any]]:
    """(resources, other fields) of a store body: an ID, an array of IDs or ``{"Resources": ...}``
    (Orthanc's ``GetInstancesToExport``)."""
    text = raw.decode("utf-8", "replace").strip()
    if ids.is_orthanc_id(text):
        return [text], {}
    body = parse_json(text.encode(), OrthancError(ErrorCode.BAD_FILE_FORMAT, "Must provide a JSON value"))
    options: dict[str, Any] = {}
    if isinstance(body, str):
        resources: Any = [body]
    elif isinstance(body, list):
        resources = body
    elif isinstance(body, dict):
        if "Resources" not in body:
            raise OrthancError(ErrorCode.BAD_FILE_FORMAT, 'Missing field in JSON: "Resources"')
        resources = body["Resources"]
        if not isinstance(resources, list):
            raise OrthancError(ErrorCode.BAD_FILE_FORMAT, 'JSON field "Resources" must contain an array')
        options = {k: v for k, v in body.items() if k != "Resources"}
    else:
        raise OrthancError(ErrorCode.BAD_FILE_FORMAT,
                           "Must provide a JSON object, or a JSON array of strings")
    checked = []
    for item in resources:
        if not isinstance(item, str):
            raise OrthancError(ErrorCode.BAD_FILE_FORMAT,
                               "Resources to be exported must be specified as a JSON array of strings")
        if not ids.is_orthanc_id(item.strip()):
            raise OrthancError(ErrorCode.BAD_FILE_FORMAT,
                               f"This string is not a valid Orthanc identifier: {item.strip()}")
        checked.append(item.strip())
    return checked, options


def peer_store_request(raw: bytes, check_peer: Callable[[], object]) -> tuple[PeerStoreRequest, JobOptions]:
    """``/peers/{id}/store``: Orthanc's ``OrthancPeerStoreJob`` reads ``Transcode`` itself (an
    empty one is an unknown syntax too).  Orthanc looks the peer up (``check_peer``) after the
    resources, ``Transcode`` and ``Compress``, before the other fields."""
    resources, body = export_request(raw)
    transcode = transcode_field(body, job=True)
    compress = typed_option(body, "Compress", bool, False)
    check_peer()
    request = PeerStoreRequest(tuple(resources), compress=compress, transcode=transcode,
                               permissive=typed_option(body, "Permissive", bool, False))
    return request, job_options(body)


def modality_store_request(raw: bytes) -> tuple[ModalityStoreRequest, JobOptions]:
    """``/modalities/{id}/store`` (Orthanc 1.10.1 has no ``Transcode`` here: the modality's
    accepted syntaxes decide)."""
    resources, body = export_request(raw)
    request = ModalityStoreRequest(
        tuple(resources), local_aet=typed_option(body, "LocalAet", str) or None, timeout=timeout_field(body),
        move_originator_aet=typed_option(body, "MoveOriginatorAet", str, ""),
        move_originator_id=typed_option(body, "MoveOriginatorID", int),
        storage_commitment=typed_option(body, "StorageCommitment", bool, False),
        permissive=typed_option(body, "Permissive", bool, False),
        overrides=_modality_overrides(body) if server.ORTHANC_API_VERSION >= API_STORE_OVERRIDES else ())
    return request, job_options(body)


#: Orthanc 1.11.3: ``/modalities/{id}/store`` may override the modality's AET, host and port.
API_STORE_OVERRIDES = 19


def _modality_overrides(body: dict[str, Any]) -> tuple[tuple[str, Any], ...]:
    """``CalledAet``, ``Host`` and ``Port`` of a store, as the modality's ``AET``, ``Host``, ``Port``."""
    overrides: list[tuple[str, Any]] = []
    for field, key in (("CalledAet", "AET"), ("Host", "Host")):
        value = typed_option(body, field, str)
        if value is not None:
            overrides.append((key, value))
    port = typed_option(body, "Port", int)
    if port is not None:
        if not 0 <= port <= 65535:
            raise OrthancError(ErrorCode.PARAMETER_OUT_OF_RANGE)
        overrides.append(("Port", port))
    return tuple(overrides)


def query_tags(query: Any, field: str = "Query") -> dict[Tag, str]:
    """``{tag name or gggg,eeee: string}`` as tags (Orthanc's ``ReadMapOfTags``)."""
    invalid = OrthancError(ErrorCode.BAD_FILE_FORMAT,
                           f"Associative array of DICOM tags to strings expected in field: {field}")
    if not isinstance(query, dict):
        raise invalid
    result: dict[Tag, str] = {}
    for name, value in query.items():
        if not isinstance(value, str):
            raise invalid
        try:
            result[parse_query_tag(name)] = value
        except OrthancError:
            raise invalid from None
    return result


def retrieve_request(raw: bytes) -> tuple[RetrieveRequest, JobOptions]:
    """``/modalities/{id}/move`` (a job since Orthanc 1.11.1) and ``/modalities/{id}/get``
    (Orthanc 1.12.6), Orthanc's ``ParseMoveGetJob``: ``Resources`` and ``Level`` required,
    ``LocalAet``, ``Timeout``, ``Permissive``, ``TargetAet`` (C-MOVE) and the job options,
    synchronous by default."""
    message = "Must provide a JSON body containing fields Resources and Level"
    body = json_object(raw, OrthancError(ErrorCode.BAD_FILE_FORMAT, message))
    if not isinstance(body.get("Resources"), list) or not isinstance(body.get("Level"), str):
        raise OrthancError(ErrorCode.BAD_FILE_FORMAT, message)
    level = parse_level(body["Level"])
    resources = tuple(query_tags(r, "Resources elements") for r in body["Resources"])
    request = RetrieveRequest(level, resources, typed_option(body, "LocalAet", str) or None, timeout_field(body),
                              boolean_field(body, "Permissive", False),
                              typed_option(body, "TargetAet", str) or None)
    return request, job_options(body)


def _commitment_pairs(items: Any) -> list[tuple[str, str]]:
    if not isinstance(items, list):
        raise OrthancError(ErrorCode.BAD_FILE_FORMAT,
                           'The "DicomInstances" field must provide an array of DICOM instances')
    pairs = []
    for item in items:
        if isinstance(item, list):
            if len(item) != 2 or not all(isinstance(x, str) for x in item):
                raise OrthancError(ErrorCode.BAD_FILE_FORMAT, "An instance entry must provide an array with "
                                   "2 strings: SOP Class UID and SOP Instance UID")
            pairs.append((item[0], item[1]))
        elif isinstance(item, dict) and isinstance(item.get("SOPClassUID"), str) \
                and isinstance(item.get("SOPInstanceUID"), str):
            pairs.append((item["SOPClassUID"], item["SOPInstanceUID"]))
        else:
            raise OrthancError(ErrorCode.BAD_FILE_FORMAT, "JSON array or object is expected to specify one "
                               f"instance to be queried, found: {_compact(item)}")
    return pairs


def _compact(value: Any) -> str:
    """A JSON value in an error message, as Orthanc prints it (jsoncpp's styled text ends
    with a newline)."""
    return json.dumps(value, separators=(",", ":")) + "\n"


def commitment_request(raw: bytes) -> CommitmentRequest:
    """``/modalities/{id}/storage-commitment``: ``DicomInstances`` and/or ``Resources``."""
    body = json_object(raw, OrthancError(ErrorCode.BAD_FILE_FORMAT,
                                         "Must provide a JSON object with a list of resources"))
    if "Resources" not in body and "DicomInstances" not in body:
        raise OrthancError(ErrorCode.BAD_FILE_FORMAT, 'Empty storage commitment request, one of these '
                           'fields is mandatory: "Resources" or "DicomInstances"')
    pairs = _commitment_pairs(body.get("DicomInstances", []))
    resources = body.get("Resources", [])
    if not isinstance(resources, list):
        raise OrthancError(ErrorCode.BAD_FILE_FORMAT,
                           'The "Resources" field must provide an array of Orthanc resources')
    for item in resources:
        if not isinstance(item, str):
            raise OrthancError(ErrorCode.BAD_FILE_FORMAT,
                               f'The "Resources" field must provide an array of strings, found: {_compact(item)}')
    timeout = integer_field(body, "Timeout", 0)
    return CommitmentRequest(tuple(pairs), tuple(resources), float(timeout) if timeout > 0 else None)


# -- create-dicom ------------------------------------------------------------------------------


def _create_boolean(body: dict[str, Any], key: str, default: bool) -> bool:
    value = body.get(key, default)
    if not isinstance(value, bool):
        raise OrthancError(ErrorCode.BAD_REQUEST)
    return value


def create_dicom_request(body: Any, check_parent: Callable[[str], object]) -> CreateDicomRequest:
    """``/tools/create-dicom``: the ``Tags`` format, or the tags themselves (Orthanc <= 0.9.3).
    Orthanc looks the ``Parent`` up (``check_parent``) right after the character set."""
    if not isinstance(body, dict):
        raise OrthancError(ErrorCode.BAD_REQUEST)
    if "Tags" not in body:
        legacy = []
        for name in sorted(body):
            if not isinstance(body[name], str):
                raise OrthancError(ErrorCode.CREATE_DICOM_NOT_STRING)
            legacy.append((parse_tag(name), body[name]))
        return CreateDicomRequest(legacy=tuple(legacy))
    tags = body["Tags"]
    if not isinstance(tags, dict):
        raise OrthancError(ErrorCode.BAD_REQUEST)
    encoding = None
    if "SpecificCharacterSet" in tags:
        term = tags["SpecificCharacterSet"]
        encoding = encoding_for_term(term) if isinstance(term, str) else None
        if encoding is None:
            raise OrthancError(ErrorCode.PARAMETER_OUT_OF_RANGE, f"Unknown specific character set: {term}")
    parent = body.get("Parent")
    if "Parent" in body:
        if not isinstance(parent, str):
            raise OrthancError(ErrorCode.CREATE_DICOM_BAD_PARENT)
        check_parent(parent)
    decode = _create_boolean(body, "InterpretBinaryTags", True)
    creator = body.get("PrivateCreator")
    if "PrivateCreator" in body and not isinstance(creator, str):
        raise OrthancError(ErrorCode.BAD_REQUEST)
    force = _create_boolean(body, "Force", False)
    content = body.get("Content")
    encapsulate = "Content" in body and _create_boolean(body, "Encapsulate", False)
    if "Content" in body and not isinstance(content, (str, list)):
        raise OrthancError(ErrorCode.CREATE_DICOM_USE_DATA_URI_SCHEME)
    return CreateDicomRequest(tags=tags, encoding=encoding, parent=parent, interpret_binary_tags=decode,
                              private_creator=creator, force=force, content=content, encapsulate=encapsulate)
