"""Storage commitment SCU routes: request, reports, and removal of committed instances."""

from __future__ import annotations

from typing import TYPE_CHECKING

from server.dicom.main_tags import Level
from server.errors import ErrorCode, OrthancError
from server.net.storage_commitment import CommitmentRequest
from server.rest import requests
from server.rest.base import OrthancHandler, Route, with_services
from server.storage.index import Metadata

if TYPE_CHECKING:
    from server.net.storage_commitment import CommitmentService, Reports
    from server.storage.index import Index
    from server.store import Store


def instances_of(index: Index, resources: list[str]) -> list[tuple[str, str]]:
    """(SOP class, SOP instance) of every instance below the given Orthanc IDs."""
    pairs = []
    for public_id in resources:
        resource = index.lookup(public_id)
        if resource is None:
            raise OrthancError(ErrorCode.UNKNOWN_RESOURCE)  # Orthanc 1.10.1 gives no details
        for instance in index.descendants(resource.internal_id, Level.INSTANCE):
            sop_class = index.metadata(instance.internal_id).get(Metadata.SopClassUid, "")
            sop_instance = index.main_tags(instance.internal_id).get((0x0008, 0x0018), "")
            pairs.append((sop_class, sop_instance))
    return pairs


class CommitmentRequestHandler(OrthancHandler):
    commitment: CommitmentService
    index: Index

    async def post(self, modality: str) -> None:
        request = requests.commitment_request(self.request.body)
        uid = await self.run(self._request, modality, request)
        self.answer_json({"ID": uid, "Path": f"/storage-commitment/{uid}"})

    def _request(self, modality: str, request: CommitmentRequest) -> str:
        pairs = list(request.dicom_instances) + instances_of(self.index, list(request.resources))
        return self.commitment.request_commitment(modality, pairs, request.timeout)


class ReportHandler(OrthancHandler):
    commitment_reports: Reports

    async def get(self, uid: str) -> None:
        report = await self.run(self.commitment_reports.get, uid)
        if report is None:
            raise OrthancError(ErrorCode.INEXISTENT_ITEM, f"No storage commitment transaction with UID: {uid}")
        self.answer_json(report)


class RemoveHandler(OrthancHandler):
    commitment_reports: Reports
    index: Index
    store: Store

    async def post(self, uid: str) -> None:
        await self.run(self._remove, uid)
        self.answer_json({})

    def _remove(self, uid: str) -> None:
        report = self.commitment_reports.get(uid)
        if report is None:
            raise OrthancError(ErrorCode.INEXISTENT_ITEM, f"No storage commitment transaction with UID: {uid}")
        if report["Status"] != "Success":
            raise OrthancError(ErrorCode.BAD_SEQUENCE_OF_CALLS,
                               f"Cannot remove DICOM instances after failure in storage commitment "
                               f"transaction: {uid}")
        for item in report["Success"]:
            for resource in self.index.lookup_identifier(item["SOPInstanceUID"]):
                if resource.level is Level.INSTANCE:
                    self.store.delete(resource)


def paths() -> list[tuple[str, type]]:
    return [
        (r"/modalities/([^/]+)/storage-commitment", CommitmentRequestHandler),
        (r"/storage-commitment/([^/]+)", ReportHandler),
        (r"/storage-commitment/([^/]+)/remove", RemoveHandler),
    ]


def routes(*, commitment: CommitmentService, commitment_reports: Reports, index: Index, store: Store) -> list[Route]:
    """The routes, each handler given the services it uses."""
    return with_services(paths(), commitment=commitment, commitment_reports=commitment_reports, index=index,
                         store=store)
