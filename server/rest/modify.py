"""Modification, anonymization, split and merge routes.

``/instances/{id}/modify|anonymize`` answer the modified file; every other route submits a
job (``ResourceModification``, ``SplitStudy``, ``MergeStudy``), synchronous unless the body
asks otherwise.  Parsing and the work itself live in :mod:`server.dicom.modify` and
:mod:`server.jobs.modification` / :mod:`server.jobs.split_merge`.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from server.dicom.main_tags import Level
from server.dicom.modify import detect_level
from server.dicom.transcode import parse_transcode
from server.errors import ErrorCode, OrthancError
from server.jobs.modification import (
    bulk_modification,
    bulk_resources,
    modification_job,
    modified_instance,
    parse_modification,
)
from server.jobs.split_merge import merge_job, split_job
from server.rest.base import OrthancHandler, Route, with_services
from server.rest.jobs import submit_job

if TYPE_CHECKING:
    from server.jobs.engine import JobsEngine
    from server.jobs.modification import ModificationServices


class _ModificationHandler(OrthancHandler):
    def body(self) -> Any:
        """The JSON body; Orthanc answers "Bad file format" when it does not parse."""
        try:
            return json.loads(self.request.body)
        except (ValueError, UnicodeDecodeError):
            raise OrthancError(ErrorCode.BAD_FILE_FORMAT) from None


class InstanceHandler(_ModificationHandler):
    """``POST /instances/{id}/modify|anonymize``: the modified DICOM file, nothing stored."""

    modification: ModificationServices

    async def post(self, instance_id: str, action: str) -> None:
        body = self.body()
        modification = await self.run(parse_modification, self.modification, body, action == "anonymize")
        transcode = None
        if action == "modify":
            modification.set_level(detect_level(modification))
            if body.get("Transcode") is not None:
                transcode = parse_transcode(body["Transcode"])
        data = await self.run(modified_instance, self.modification, instance_id, modification, transcode)
        self.answer_bytes(data, "application/dicom")


class ResourceHandler(_ModificationHandler):
    """``POST /{patients,studies,series}/{id}/modify|anonymize``: a ResourceModification job."""

    modification: ModificationServices

    async def post(self, plural: str, public_id: str, action: str) -> None:
        body = self.body()
        anonymize = action == "anonymize"
        modification = await self.run(parse_modification, self.modification, body, anonymize)
        level = Level.parse(plural)
        if not anonymize:
            modification.set_level(level)
        job = await self.run(modification_job, self.modification, body, modification, [public_id], level, self.origin())
        await submit_job(self, job, body)


class BulkHandler(_ModificationHandler):
    """``POST /tools/bulk-modify|bulk-anonymize``: one job over several resources of any level."""

    modification: ModificationServices

    async def post(self, action: str) -> None:
        body = self.body()
        modification = await self.run(bulk_modification, self.modification, body, action == "anonymize")
        resources = bulk_resources(body)
        job = await self.run(modification_job, self.modification, body, modification, resources, None, self.origin())
        await submit_job(self, job, body)


class SplitHandler(_ModificationHandler):
    modification: ModificationServices

    async def post(self, study_id: str) -> None:
        body = _object(self.body())
        job = await self.run(split_job, self.modification, study_id, body, self.origin())
        await submit_job(self, job, body)


class MergeHandler(_ModificationHandler):
    modification: ModificationServices

    async def post(self, study_id: str) -> None:
        body = _object(self.body())
        job = await self.run(merge_job, self.modification, study_id, body, self.origin())
        await submit_job(self, job, body)


def _object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise OrthancError(ErrorCode.BAD_FILE_FORMAT)
    return body


def paths() -> list[tuple[str, type]]:
    return [
        (r"/instances/([^/]+)/(modify|anonymize)", InstanceHandler),
        (r"/(patients|studies|series)/([^/]+)/(modify|anonymize)", ResourceHandler),
        (r"/tools/bulk-(modify|anonymize)", BulkHandler),
        (r"/studies/([^/]+)/split", SplitHandler),
        (r"/studies/([^/]+)/merge", MergeHandler),
    ]


def routes(*, jobs: JobsEngine, modification: ModificationServices) -> list[Route]:
    """The routes, each handler given the services it uses."""
    return with_services(paths(), jobs=jobs, modification=modification)
