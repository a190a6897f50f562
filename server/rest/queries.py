"""``/queries``: the answers of ``/modalities/{id}/query`` and their retrieval (C-MOVE or C-GET jobs)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydicom.dataset import Dataset

from server.dicom import json_format
from server.dicom.dictionary import tag_name
from server.dicom.main_tags import Level, Tag, format_tag
from server.errors import ErrorCode, OrthancError
from server.net.modalities import retrieve_method
from server.net.service import QueryRecord
from server.rest.base import OrthancHandler, Route, with_services
from server.rest.body import parse_json
from server.rest.jobs import submit_job
from server.rest.modalities import json_object
from server.rest.requests import job_options, query_tags, timeout_field, typed_option

if TYPE_CHECKING:
    from collections.abc import Callable

    from server.jobs.engine import JobsEngine
    from server.net.service import NetworkService

ID = r"([^/]+)"
INDEX = r"([^/]+)"

PATIENT_ID: Tag = (0x0010, 0x0020)
STUDY_UID: Tag = (0x0020, 0x000D)
SERIES_UID: Tag = (0x0020, 0x000E)

#: What a child query copies from the parent answer (as Orthanc's ``Move()`` does).
CHILD_KEYS: dict[Level, tuple[Tag, ...]] = {
    Level.PATIENT: (PATIENT_ID,),
    Level.STUDY: (STUDY_UID,),
    Level.SERIES: (STUDY_UID, SERIES_UID),
}
CHILD_ROUTES = {"query-studies": Level.STUDY, "query-series": Level.SERIES,
                "query-instances": Level.INSTANCE}
#: What ``GET /queries/{id}/answers/{n}`` lists below each level (Orthanc spells "query-study").
CHILD_OPERATIONS = {Level.STUDY: "query-study", Level.SERIES: "query-series",
                    Level.INSTANCE: "query-instances"}


class QueryView(OrthancHandler):
    """Shared lookups of ``/queries/{id}`` handlers."""

    encoding: Callable[[], str]
    network: NetworkService

    def record(self, query_id: str) -> QueryRecord:
        found = self.network.queries.get(query_id)
        if found is None:
            raise OrthancError(ErrorCode.UNKNOWN_RESOURCE)
        return found

    def answer_of(self, record: QueryRecord, index: str) -> Dataset:
        if not index.isdecimal():
            raise OrthancError(ErrorCode.BAD_PARAMETER_TYPE, "Syntax error in some user-supplied data")
        position = int(index)
        if position >= len(record.answers):
            raise OrthancError(ErrorCode.PARAMETER_OUT_OF_RANGE)
        return record.answers[position]

    def render(self, answer: Dataset) -> dict:
        encoding = self.encoding()
        if self.flag("simplify"):
            return json_format.tags_simplified(answer, encoding)
        if self.flag("short"):
            return json_format.tags_short(answer, encoding)
        return json_format.tags_full(answer, encoding)


class QueriesHandler(OrthancHandler):
    network: NetworkService

    async def get(self) -> None:
        self.answer_json(self.network.queries.ids())


class QueryHandler(QueryView):
    network: NetworkService

    async def get(self, query_id: str) -> None:
        self.record(query_id)
        self.answer_json(["answers", "level", "modality", "query", "retrieve"])

    async def delete(self, query_id: str) -> None:
        self.network.queries.delete(query_id)
        self.answer_empty_text()


class AnswersHandler(QueryView):
    async def get(self, query_id: str) -> None:
        record = self.record(query_id)
        if self.flag("expand"):
            self.answer_json([self.render(a) for a in record.answers])
        else:
            self.answer_json([str(i) for i in range(len(record.answers))])


class AnswerHandler(QueryView):
    async def get(self, query_id: str, index: str) -> None:
        record = self.record(query_id)
        self.answer_of(record, index)
        children = [name for level, name in CHILD_OPERATIONS.items() if level > record.level]
        self.answer_json(["content", "retrieve", *children])


class AnswerContentHandler(QueryView):
    async def get(self, query_id: str, index: str) -> None:
        self.answer_json(self.render(self.answer_of(self.record(query_id), index)))


class LevelHandler(QueryView):
    async def get(self, query_id: str) -> None:
        self.answer_text(self.record(query_id).level.title)


class ModalityHandler(QueryView):
    async def get(self, query_id: str) -> None:
        self.answer_text(self.record(query_id).modality)


class QueryContentHandler(QueryView):
    async def get(self, query_id: str) -> None:
        query = self.record(query_id).query
        if self.flag("simplify"):
            self.answer_json({tag_name(g, e, None): v for (g, e), v in sorted(query.items())})
        elif self.flag("short"):
            self.answer_json({format_tag(t): v for t, v in sorted(query.items())})
        else:
            self.answer_json({format_tag(t): {"Name": tag_name(t[0], t[1], None), "Type": "String",
                                              "Value": v} for t, v in sorted(query.items())})


def retrieve_options(raw: bytes) -> tuple[str | None, dict[str, Any]]:
    """(target AET or None for the default, job options) of a retrieve body: a plain AET, or
    ``{"TargetAet", ...}``."""
    text = raw.decode("utf-8", "replace").strip()
    if not text:
        return None, {}
    try:
        body = parse_json(text.encode(), ValueError())
    except ValueError:  # a plain AET
        return text, {}
    if isinstance(body, str):
        return body, {}
    if not isinstance(body, dict):
        raise OrthancError(ErrorCode.BAD_FILE_FORMAT, "Must provide a JSON object or a target AET")
    return typed_option(body, "TargetAet", str) or None, body


def json_format_option(body: dict[str, Any]) -> str:
    """The DICOM-as-JSON format a job body asks for (``Simplify``, ``Short`` or ``Full``
    set to true); ``Short`` by default, as Orthanc's retrieve jobs."""
    for key in ("Simplify", "Short", "Full"):
        if typed_option(body, key, bool, False):
            return key
    return "Short"


class RetrieveHandler(QueryView):
    """``POST /queries/{id}/retrieve`` and ``/queries/{id}/answers/{n}/retrieve``: DicomMoveScu or
    DicomGetScu jobs (``RetrieveMethod``)."""

    network: NetworkService

    async def post(self, query_id: str, index: str | None = None) -> None:
        record = self.record(query_id)
        answers = record.answers if index is None else [self.answer_of(record, index)]
        target, body = retrieve_options(self.request.body)
        method = retrieve_method(body["RetrieveMethod"]) if body.get("RetrieveMethod", "") != "" else None
        job = self.network.retrieve_job(record, answers, target, timeout_field(body),
                                        json_format_option(body), method,
                                        typed_option(body, "Permissive", bool, False))
        await submit_job(self, job, job_options(body))


class ChildQueryHandler(QueryView):
    """``/queries/{id}/answers/{n}/query-{study,series,instances}``: a query one level down."""

    network: NetworkService

    async def post(self, query_id: str, index: str, route: str) -> None:
        record = self.record(query_id)
        answer = self.answer_of(record, index)
        level = CHILD_ROUTES[route]
        if level <= record.level:
            raise OrthancError(ErrorCode.UNKNOWN_RESOURCE)
        body = json_object(self, "Must provide a JSON object as the body")
        query = query_tags(body.get("Query", {}))
        for group, element in CHILD_KEYS[record.level]:
            number = (group << 16) | element
            if number in answer:
                query[(group, element)] = str(answer[number].value or "")
        network = self.network
        timeout = timeout_field(body) or record.timeout
        child = await self.run(lambda: network.query(record.modality, level, query, record.normalize,
                                                     timeout=timeout))
        self.answer_json({"ID": child.id, "Path": f"/queries/{child.id}"})


def paths() -> list[tuple[str, type]]:
    return [
        (r"/queries", QueriesHandler),
        (rf"/queries/{ID}", QueryHandler),
        (rf"/queries/{ID}/answers", AnswersHandler),
        (rf"/queries/{ID}/answers/{INDEX}", AnswerHandler),
        (rf"/queries/{ID}/answers/{INDEX}/content", AnswerContentHandler),
        (rf"/queries/{ID}/answers/{INDEX}/retrieve", RetrieveHandler),
        (rf"/queries/{ID}/answers/{INDEX}/(query-studies|query-series|query-instances)",
         ChildQueryHandler),
        (rf"/queries/{ID}/level", LevelHandler),
        (rf"/queries/{ID}/modality", ModalityHandler),
        (rf"/queries/{ID}/query", QueryContentHandler),
        (rf"/queries/{ID}/retrieve", RetrieveHandler),
    ]


def routes(*, jobs: JobsEngine, encoding: Callable[[], str], network: NetworkService) -> list[Route]:
    """The routes, each handler given the services it uses."""
    return with_services(paths(), jobs=jobs, encoding=encoding, network=network)
