"""``/modalities``: the DICOM modalities, and C-ECHO, C-STORE, C-FIND, C-MOVE and C-GET as their SCU.

Handlers parse and answer as Orthanc 1.10.1; the work is in the network service
(:mod:`server.net.service`).  Storage commitment has its own module.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from server.dicom.json_format import tags_simplified
from server.dicom.main_tags import BY_LEVEL, Level, Tag, parse_level
from server.errors import ErrorCode, OrthancError
from server.net.modalities import check_name, normalize_modality, parse_modality
from server.net.scu import Remote
from server.rest import requests
from server.rest.base import NoAnswer, OrthancHandler, Route, with_services
from server.rest.jobs import submit_job
from server.rest.requests import query_tags, timeout_field, typed_option

if TYPE_CHECKING:
    from collections.abc import Callable

    from server.config import Configuration
    from server.jobs.engine import JobsEngine
    from server.net.service import NetworkService

NAME = r"([^/]+)"

#: ``GET /modalities/{id}`` in Orthanc 1.10.1, with ``get`` (Orthanc 1.12.6).
OPERATIONS = ["configuration", "echo", "find", "find-instance", "find-patient", "find-series",
              "find-study", "find-worklist", "get", "move", "query", "storage-commitment", "store",
              "store-straight"]

PATIENT_ID: Tag = (0x0010, 0x0020)
ACCESSION_NUMBER: Tag = (0x0008, 0x0050)
STUDY_UID: Tag = (0x0020, 0x000D)
SERIES_UID: Tag = (0x0020, 0x000E)
MODALITIES_IN_STUDY: Tag = (0x0008, 0x0061)


def json_value(handler: OrthancHandler) -> Any:
    """The JSON body, whatever its type (400 "Cannot parse the JSON body" otherwise)."""
    return handler.json_body(OrthancError(ErrorCode.BAD_FILE_FORMAT, "Cannot parse the JSON body"))


def json_object(handler: OrthancHandler, message: str = "Must provide a JSON object") -> dict:
    """A JSON object body (an empty body is an empty object)."""
    return requests.json_object(handler.request.body or b"{}", OrthancError(ErrorCode.BAD_FILE_FORMAT, message))


class ModalitiesHandler(OrthancHandler):
    network: NetworkService

    async def get(self) -> None:
        modalities = {n: normalize_modality(p) for n, p in self.network.modalities.all().items()}
        self.answer_json(modalities if self.flag("expand") else sorted(modalities))


class ModalityHandler(OrthancHandler):
    network: NetworkService

    async def get(self, name: str) -> None:
        if self.network.modalities.get(name) is None:
            raise NoAnswer()
        self.answer_json(OPERATIONS)

    async def put(self, name: str) -> None:
        check_name(name)
        params = parse_modality(self.json_body(OrthancError(ErrorCode.BAD_FILE_FORMAT)))
        await self.run(self.network.modalities.put, name, params)
        self.answer_empty_text()

    async def delete(self, name: str) -> None:
        if not await self.run(self.network.modalities.delete, name):
            raise OrthancError(ErrorCode.INEXISTENT_ITEM,
                               f"Unknown DICOM modality with symbolic name: {name}")
        self.answer_empty_text()


class ModalityConfigurationHandler(OrthancHandler):
    network: NetworkService

    async def get(self, name: str) -> None:
        self.answer_json(self.network.modality(name))


class EchoHandler(OrthancHandler):
    network: NetworkService

    async def post(self, name: str) -> None:
        network = self.network
        body = json_value(self) if self.request.body.strip() else {}
        body = body if isinstance(body, dict) else {}   # Orthanc ignores other JSON values
        remote = network.remote(name, timeout=timeout_field(body))
        await self.run(network.echo, remote, typed_option(body, "CheckFind", bool))
        self.answer_json({})


class ToolsEchoHandler(OrthancHandler):
    """``POST /tools/dicom-echo``: C-ECHO to a modality given by its parameters."""

    config: Configuration
    network: NetworkService

    async def post(self) -> None:
        body = json_value(self)
        if isinstance(body, dict):
            params = parse_modality({k: v for k, v in body.items() if k != "CheckFind"})
        else:
            params, body = parse_modality(body), {}
        remote = Remote.of(params, self.config, timeout=timeout_field(body))
        await self.run(self.network.echo, remote, typed_option(body, "CheckFind", bool))
        self.answer_json({})


class StoreHandler(OrthancHandler):
    network: NetworkService

    async def post(self, name: str) -> None:
        network = self.network
        network.modality(name)
        request, options = requests.modality_store_request(self.request.body)
        resources = list(request.resources)
        instances = await self.run(network.instances_of, resources, name)
        job = network.store_job(
            instances, name, local_aet=request.local_aet, timeout=request.timeout,
            move_originator_aet=request.move_originator_aet, move_originator_id=request.move_originator_id,
            storage_commitment=request.storage_commitment, permissive=request.permissive,
            parent_resources=resources, overrides=dict(request.overrides))
        await submit_job(self, job, options)


class StoreStraightHandler(OrthancHandler):
    network: NetworkService

    async def post(self, name: str) -> None:
        network = self.network
        network.modality(name)
        self.answer_json(await self.run(network.store_straight, name, self.request.body))


class QueryHandler(OrthancHandler):
    network: NetworkService

    async def post(self, name: str) -> None:
        network = self.network
        body = json_object(self)
        if not isinstance(body.get("Level"), str):
            raise OrthancError(ErrorCode.BAD_FILE_FORMAT, "The JSON body must contain field Level")
        for key, kind, label in (("Normalize", bool, "a Boolean"), ("Query", dict, "a JSON object"),
                                 ("LocalAet", str, "a string")):
            if key in body and not isinstance(body[key], kind):
                raise OrthancError(ErrorCode.BAD_FILE_FORMAT, f"The field {key} must contain {label}")
        level = parse_level(body["Level"])
        normalize = body.get("Normalize", True)
        query = query_tags(body.get("Query", {}))
        local_aet = body.get("LocalAet") or None
        remote_timeout = timeout_field(body)
        network.modality(name)
        record = await self.run(lambda: network.query(name, level, query, normalize,
                                                      local_aet=local_aet, timeout=remote_timeout))
        self.answer_json({"ID": record.id, "Path": f"/queries/{record.id}"})


class MoveHandler(OrthancHandler):
    """``/modalities/{id}/move`` (Orthanc 1.11.1): a DicomMoveScu job, synchronous by default."""

    network: NetworkService

    async def post(self, name: str) -> None:
        request, options = requests.retrieve_request(self.request.body or b"{}")
        job = self.network.move_job(name, request)
        await submit_job(self, job, options)


class GetHandler(OrthancHandler):
    """``/modalities/{id}/get`` (Orthanc 1.12.6): a DicomGetScu job, synchronous by default."""

    network: NetworkService

    async def post(self, name: str) -> None:
        request, options = requests.retrieve_request(self.request.body or b"{}")
        job = self.network.get_job(name, request)
        await submit_job(self, job, options)


# -- the deprecated synchronous C-FIND helpers -----------------------------------------

_NOT_STUDY_MODULE = {(0x0008, 0x0080), (0x0032, 0x1032), (0x0032, 0x1060)}
_NOT_SERIES_MODULE = {(0x0008, 0x0070), (0x0008, 0x1010), (0x0018, 0x0024), (0x0018, 0x1090),
                      (0x0020, 0x1002), (0x0054, 0x0081), (0x0020, 0x0105), (0x0054, 0x0101),
                      (0x0020, 0x0037), (0x0054, 0x1000), (0x0018, 0x1400), (0x0018, 0x0010)}
_EXTRA: dict[Level, tuple[Tag, ...]] = {
    Level.PATIENT: (),
    Level.STUDY: (ACCESSION_NUMBER, PATIENT_ID, MODALITIES_IN_STUDY),
    Level.SERIES: (ACCESSION_NUMBER, PATIENT_ID, STUDY_UID),
    Level.INSTANCE: (ACCESSION_NUMBER, PATIENT_ID, STUDY_UID, SERIES_UID),
}


def _template(level: Level, fields: dict[Tag, str]) -> dict[Tag, str]:
    """Orthanc's find template of a level merged with the given fields, restricted to the level."""
    own = set(BY_LEVEL[level])
    if level is Level.STUDY:
        own -= _NOT_STUDY_MODULE
    elif level is Level.SERIES:
        own -= _NOT_SERIES_MODULE
    result = {tag: "" for tag in sorted(own)}
    result |= {tag: "" for tag in _EXTRA[level] if tag != MODALITIES_IN_STUDY}
    for tag, value in fields.items():
        if tag in own or tag in _EXTRA[level]:
            result[tag] = value
    return result


def _enough(fields: dict[Tag, str], *keys: Tag) -> bool:
    return all(len(fields.get(k, "")) > 2 for k in keys)


class LegacyFindHandler(OrthancHandler):
    """``find-patient``, ``find-study``, ``find-series``, ``find-instance`` and ``find``."""

    encoding: Callable[[], str]
    network: NetworkService

    async def post(self, name: str, kind: str) -> None:
        fields = query_tags(json_object(self), "body")
        remote = self.network.remote(name)
        self.answer_json(await self.run(self._find, remote, kind, fields))

    def _find(self, remote: Remote, kind: str, fields: dict[Tag, str]) -> list:
        if kind == "find":
            return self._tree(remote, fields)
        level = {"find-patient": Level.PATIENT, "find-study": Level.STUDY,
                 "find-series": Level.SERIES, "find-instance": Level.INSTANCE}[kind]
        identity = _enough(fields, ACCESSION_NUMBER) or _enough(fields, PATIENT_ID)
        if (level >= Level.STUDY and not identity) or \
                (level >= Level.SERIES and not _enough(fields, STUDY_UID)) or \
                (level >= Level.INSTANCE and not _enough(fields, SERIES_UID)):
            raise NoAnswer()
        return self._answers(remote, level, fields)

    def _answers(self, remote: Remote, level: Level, fields: dict[Tag, str]) -> list[dict]:
        answers = self.network.find(remote, level, _template(level, fields))
        return [tags_simplified(a, self.encoding()) for a in answers]

    def _tree(self, remote: Remote, fields: dict[Tag, str]) -> list[dict]:
        result = []
        for patient in self._answers(remote, Level.PATIENT, fields):
            studies = []
            for study in self._answers(remote, Level.STUDY,
                                       {**fields, PATIENT_ID: patient.get("PatientID", "")}):
                series = self._answers(remote, Level.SERIES, {
                    **fields, PATIENT_ID: study.get("PatientID", ""),
                    STUDY_UID: study.get("StudyInstanceUID", "")})
                studies.append({**study, "Series": series})
            result.append({**patient, "Studies": studies})
        return result


class FindWorklistHandler(OrthancHandler):
    encoding: Callable[[], str]
    network: NetworkService

    async def post(self, name: str) -> None:
        body = json_object(self)
        network = self.network
        remote = network.remote(name)
        answers = await self.run(network.find_worklist, remote, body)
        self.answer_json([tags_simplified(a, self.encoding()) for a in answers])


def paths() -> list[tuple[str, type]]:
    return [
        (r"/modalities", ModalitiesHandler),
        (rf"/modalities/{NAME}", ModalityHandler),
        (rf"/modalities/{NAME}/configuration", ModalityConfigurationHandler),
        (rf"/modalities/{NAME}/echo", EchoHandler),
        (rf"/modalities/{NAME}/store", StoreHandler),
        (rf"/modalities/{NAME}/store-straight", StoreStraightHandler),
        (rf"/modalities/{NAME}/query", QueryHandler),
        (rf"/modalities/{NAME}/move", MoveHandler),
        (rf"/modalities/{NAME}/get", GetHandler),
        (rf"/modalities/{NAME}/(find-patient|find-study|find-series|find-instance|find)",
         LegacyFindHandler),
        (rf"/modalities/{NAME}/find-worklist", FindWorklistHandler),
        (r"/tools/dicom-echo", ToolsEchoHandler),
    ]


def routes(*, jobs: JobsEngine, config: Configuration, encoding: Callable[[], str],
           network: NetworkService) -> list[Route]:
    """The routes, each handler given the services it uses."""
    return with_services(paths(), jobs=jobs, config=config, encoding=encoding, network=network)
