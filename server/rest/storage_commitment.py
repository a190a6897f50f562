"""Storage commitment SCU routes: request, reports, and removal of committed instances."""

from __future__ import annotations

from typing import Any

from server.dicom.main_tags import Level
from server.errors import ErrorCode, OrthancError
from server.net import storage_commitment as commitment
from server.rest import requests
from server.rest.base import OrthancHandler
from server.storage.index import Metadata


def instances_of(ctx: Any, resources: list[str]) -> list[tuple[str, str]]:
    """(SOP class, SOP instance) of every instance below the given Orthanc IDs."""
    pairs = []
    for public_id in resources:
        resource = ctx.index.lookup(public_id)
        if resource is None:
            raise OrthancError(ErrorCode.UNKNOWN_RESOURCE)  # Orthanc 1.10.1 gives no details
        for instance in ctx.index.descendants(resource.internal_id, Level.INSTANCE):
            sop_class = ctx.index.metadata(instance.internal_id).get(Metadata.SopClassUid, "")
            sop_instance = ctx.index.main_tags(instance.internal_id).get((0x0008, 0x0018), "")
            pairs.append((sop_class, sop_instance))
    return pairs


class CommitmentRequestHandler(OrthancHandler):
    async def post(self, modality: str) -> None:
        request = requests.commitment_request(self.request.body)
        uid = await self.run(self._request, modality, request)
        self.answer_json({"ID": uid, "Path": f"/storage-commitment/{uid}"})

    def _request(self, modality: str, request: commitment.CommitmentRequest) -> str:
        pairs = list(request.dicom_instances) + instances_of(self.ctx, list(request.resources))
        return commitment.request_commitment(self.ctx, modality, pairs, request.timeout)


class ReportHandler(OrthancHandler):
    async def get(self, uid: str) -> None:
        report = await self.run(self.ctx.commitment_reports.get, uid)
        if report is None:
            raise OrthancError(ErrorCode.INEXISTENT_ITEM, f"No storage commitment transaction with UID: {uid}")
        self.answer_json(report)


class RemoveHandler(OrthancHandler):
    async def post(self, uid: str) -> None:
        await self.run(self._remove, uid)
        self.answer_json({})

    def _remove(self, uid: str) -> None:
        report = self.ctx.commitment_reports.get(uid)
        if report is None:
            raise OrthancError(ErrorCode.INEXISTENT_ITEM, f"No storage commitment transaction with UID: {uid}")
        if report["Status"] != "Success":
            raise OrthancError(ErrorCode.BAD_SEQUENCE_OF_CALLS,
                               f"Cannot remove DICOM instances after failure in storage commitment "
                               f"transaction: {uid}")
        for item in report["Success"]:
            for resource in self.ctx.index.lookup_identifier(item["SOPInstanceUID"]):
                if resource.level is Level.INSTANCE:
                    self.ctx.store.delete(resource)


def routes() -> list[tuple[str, type]]:
    return [
        (r"/modalities/([^/]+)/storage-commitment", CommitmentRequestHandler),
        (r"/storage-commitment/([^/]+)", ReportHandler),
        (r"/storage-commitment/([^/]+)/remove", RemoveHandler),
    ]
