"""Modification, anonymization, split and merge routes.

``/instances/{id}/modify|anonymize`` answer the modified file; every other route submits a
job (``ResourceModification``, ``SplitStudy``, ``MergeStudy``), synchronous unless the body
asks otherwise.  Parsing and the work itself live in :mod:`server.dicom.modify` and
:mod:`server.jobs.modification` / :mod:`server.jobs.split_merge`.
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Any

from server.dicom.main_tags import Level
from server.errors import ErrorCode, OrthancError
from server.jobs.modification import anonymized_patient_name, modification_job, modified_instance
from server.jobs.split_merge import (
    check_merge_sources,
    check_split_sources,
    existing_study,
    merge_job,
    split_job,
)
from server.rest import requests
from server.rest.base import OrthancHandler, Route, with_services
from server.rest.jobs import submit_job

if TYPE_CHECKING:
    from server.jobs.engine import JobsEngine
    from server.jobs.modification import ModificationServices


class _ModificationHandler(OrthancHandler):
    modification: ModificationServices

    def body(self) -> Any:
        """The JSON body; Orthanc answers "Bad file format" when it does not parse."""
        return self.json_body(OrthancError(ErrorCode.BAD_FILE_FORMAT))

    def creator(self) -> str:
        return str(self.modification.config["DefaultPrivateCreator"])

    def patient_name(self) -> str:
        """``Anonymized{N}`` (a counter in the index: call it off the loop, from the parsers)."""
        return anonymized_patient_name(self.modification)


class InstanceHandler(_ModificationHandler):
    """``POST /instances/{id}/modify|anonymize``: the modified DICOM file, nothing stored."""

    modification: ModificationServices

    async def post(self, instance_id: str, action: str) -> None:
        body = self.body()
        modification, transcode = await self.run(requests.instance_modification, body,
                                                 action == "anonymize", self.creator(), self.patient_name)
        quality = requests.lossy_quality_field(body) if transcode is not None else None
        data = await self.run(modified_instance, self.modification, instance_id, modification, transcode, quality)
        self.answer_bytes(data, "application/dicom")


class ResourceHandler(_ModificationHandler):
    """``POST /{patients,studies,series}/{id}/modify|anonymize``: a ResourceModification job."""

    modification: ModificationServices

    async def post(self, plural: str, public_id: str, action: str) -> None:
        body = self.body()
        level = Level.parse(plural)
        request = await self.run(requests.resource_modification, body, action == "anonymize", level,
                                 self.creator(), self.patient_name)
        options = requests.job_options(body)
        job = await self.run(modification_job, self.modification, request, [public_id], level, self.origin())
        await submit_job(self, job, options)


class BulkHandler(_ModificationHandler):
    """``POST /tools/bulk-modify|bulk-anonymize``: one job over several resources of any level."""

    modification: ModificationServices

    async def post(self, action: str) -> None:
        body = self.body()
        request, resources = await self.run(requests.bulk_modification, body, action == "anonymize",
                                            self.creator(), self.patient_name)
        options = requests.job_options(body)
        job = await self.run(modification_job, self.modification, request, resources, None, self.origin())
        await submit_job(self, job, options)


class SplitHandler(_ModificationHandler):
    modification: ModificationServices

    async def post(self, study_id: str) -> None:
        body = self.body()
        await self.run(existing_study, self.modification, study_id, False)
        request = await self.run(requests.split_request, body,
                                 partial(check_split_sources, self.modification, study_id))
        options = requests.job_options(body)
        job = await self.run(split_job, self.modification, study_id, request, self.origin())
        await submit_job(self, job, options)


class MergeHandler(_ModificationHandler):
    modification: ModificationServices

    async def post(self, study_id: str) -> None:
        body = self.body()
        await self.run(existing_study, self.modification, study_id, True)
        request = await self.run(requests.merge_request, body,
                                 partial(check_merge_sources, self.modification, study_id))
        options = requests.job_options(body)
        job = await self.run(merge_job, self.modification, study_id, request, self.origin())
        await submit_job(self, job, options)


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
