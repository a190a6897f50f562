"""Storage commitment SCU routes: request, reports, and removal of committed instances."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from server.dicom.main_tags import Level
from server.errors import ErrorCode, OrthancError
from server.rest.base import OrthancHandler, Route, with_services
from server.storage import ids
from server.storage.index import Metadata

if TYPE_CHECKING:
    from server.net.storage_commitment import CommitmentService, Reports
    from server.storage.index import Index
    from server.store import Store


def instances_of(index: Index, resources: list[str]) -> list[tuple[str, str]]:
    """(SOP class, SOP instance) of every instance below the given Orthanc IDs."""
    pairs = []
    for public_id in resources:
        if not isinstance(public_id, str) or not ids.is_orthanc_id(public_id):
            raise OrthancError(ErrorCode.BAD_REQUEST,
                               f"This string is not a valid Orthanc identifier: {public_id}")
        resource = index.lookup(public_id)
        if resource is None:
            raise OrthancError(ErrorCode.UNKNOWN_RESOURCE, f"Unknown resource: {public_id}")
        for instance in index.descendants(resource.internal_id, Level.INSTANCE):
            sop_class = index.metadata(instance.internal_id).get(Metadata.SopClassUid, "")
            sop_instance = index.main_tags(instance.internal_id).get((0x0008, 0x0018), "")
            pairs.append((sop_class, sop_instance))
    return pairs


def _dicom_instances(items: Any) -> list[tuple[str, str]]:
    if not isinstance(items, list):
        raise OrthancError(ErrorCode.BAD_FILE_FORMAT, '"DicomInstances" must be an array')
    pairs = []
    for item in items:
        if isinstance(item, list) and len(item) == 2 and all(isinstance(x, str) for x in item):
            pairs.append((item[0], item[1]))
        elif isinstance(item, dict) and isinstance(item.get("SOPClassUID"), str) \
                and isinstance(item.get("SOPInstanceUID"), str):
            pairs.append((item["SOPClassUID"], item["SOPInstanceUID"]))
        else:
            raise OrthancError(ErrorCode.BAD_FILE_FORMAT,
                               'Each item of "DicomInstances" must be [SOPClassUID, SOPInstanceUID] '
                               "or an object with these two fields")
    return pairs


class CommitmentRequestHandler(OrthancHandler):
    commitment: CommitmentService
    index: Index

    async def post(self, modality: str) -> None:
        body = self.json_body()
        if not isinstance(body, dict) or ("Resources" not in body and "DicomInstances" not in body):
            raise OrthancError(ErrorCode.BAD_FILE_FORMAT,
                               'Empty storage commitment request, one of these fields is mandatory: '
                               '"Resources" or "DicomInstances"')
        timeout = body.get("Timeout")
        uid = await self.run(self._request, modality, body, timeout)
        self.answer_json({"ID": uid, "Path": f"/storage-commitment/{uid}"})

    def _request(self, modality: str, body: dict, timeout: Any) -> str:
        pairs = _dicom_instances(body.get("DicomInstances", []))
        resources = body.get("Resources", [])
        if not isinstance(resources, list):
            raise OrthancError(ErrorCode.BAD_FILE_FORMAT, '"Resources" must be an array')
        pairs += instances_of(self.index, resources)
        return self.commitment.request_commitment(modality, pairs, timeout)


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
