"""``POST /tools/create-dicom`` and ``GET /instances/{id}/pdf``."""

from __future__ import annotations

from server.dicom.create import DicomCreator, extract_pdf
from server.dicom.main_tags import Level
from server.errors import ErrorCode, OrthancError
from server.rest.base import NoAnswer, OrthancHandler
from server.rest.requests import create_dicom_request
from server.rest.resources import ID
from server.store import Origin


class CreateDicomHandler(OrthancHandler):
    async def post(self) -> None:
        body = self.json_body()
        creator = DicomCreator(self.ctx.index, self.ctx.store, self.ctx.default_encoding,
                               self.ctx.config["DefaultPrivateCreator"])
        request = await self.run(create_dicom_request, body, creator.parent)
        origin = Origin("RestApi", remote_ip=self.request.remote_ip, http_username=self.username or "")
        self.answer_json(await self.run(creator.create, request, origin))


class InstancePdfHandler(OrthancHandler):
    """The embedded PDF of an Encapsulated PDF instance; an empty 404 for other instances."""

    async def get(self, public_id: str) -> None:
        instance = self.ctx.index.lookup(public_id, Level.INSTANCE)
        if instance is None:
            raise OrthancError(ErrorCode.UNKNOWN_RESOURCE)
        data = await self.run(self.ctx.store.read_dicom, instance)
        pdf = await self.run(extract_pdf, data)
        if pdf is None:
            raise NoAnswer()
        self.answer_bytes(pdf, "application/pdf")


def routes() -> list[tuple[str, type]]:
    return [
        (r"/tools/create-dicom", CreateDicomHandler),
        (rf"/instances/{ID}/pdf", InstancePdfHandler),
    ]
