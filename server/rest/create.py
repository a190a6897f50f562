"""``POST /tools/create-dicom`` and ``GET /instances/{id}/pdf``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from server.dicom.create import DicomCreator, extract_pdf
from server.dicom.main_tags import Level
from server.errors import ErrorCode, OrthancError
from server.rest.base import NoAnswer, OrthancHandler, Route, with_services
from server.rest.requests import create_dicom_request
from server.rest.resources import ID

if TYPE_CHECKING:
    from collections.abc import Callable

    from server.config import Configuration
    from server.storage.index import Index
    from server.store import Store


class CreateDicomHandler(OrthancHandler):
    config: Configuration
    encoding: Callable[[], str]
    index: Index
    store: Store

    async def post(self) -> None:
        body = self.json_body()
        creator = DicomCreator(self.index, self.store, self.encoding(),
                               self.config["DefaultPrivateCreator"])
        request = await self.run(create_dicom_request, body, creator.parent)
        self.answer_json(await self.run(creator.create, request, self.origin()))


class InstancePdfHandler(OrthancHandler):
    """The embedded PDF of an Encapsulated PDF instance; an empty 404 for other instances."""

    index: Index
    store: Store

    async def get(self, public_id: str) -> None:
        instance = await self.run(self.index.lookup, public_id, Level.INSTANCE)
        if instance is None:
            raise OrthancError(ErrorCode.UNKNOWN_RESOURCE)
        data = await self.run(self.store.read_dicom, instance)
        pdf = await self.run(extract_pdf, data)
        if pdf is None:
            raise NoAnswer()
        self.answer_bytes(pdf, "application/pdf")


def paths() -> list[tuple[str, type]]:
    return [
        (r"/tools/create-dicom", CreateDicomHandler),
        (rf"/instances/{ID}/pdf", InstancePdfHandler),
    ]


def routes(*, config: Configuration, encoding: Callable[[], str], index: Index, store: Store) -> list[Route]:
    """The routes, each handler given the services it uses."""
    return with_services(paths(), config=config, encoding=encoding, index=index, store=store)
