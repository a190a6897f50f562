"""``POST /{level}/{id}/reconstruct``, ``/tools/reconstruct`` and ``/tools/invalidate-tags``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from server import reconstruct
from server.errors import ErrorCode, OrthancError
from server.rest.base import OrthancHandler, Route, with_services
from server.rest.resources import ID, LEVELS

if TYPE_CHECKING:
    from server.instance_files import InstanceFiles
    from server.storage.index import Index


class ReconstructHandler(OrthancHandler):
    """As Orthanc, any resource is reconstructed whatever the level in the URI; an
    unknown one is the JSON 404 "Unknown resource"."""

    files: InstanceFiles
    index: Index

    async def post(self, plural: str, public_id: str) -> None:
        resource = await self.run(self.index.lookup, public_id)
        if resource is None:
            raise OrthancError(ErrorCode.UNKNOWN_RESOURCE)
        await self.run(reconstruct.reconstruct_resource, self.files, resource)
        self.answer_empty_text()


class ReconstructAllHandler(OrthancHandler):
    files: InstanceFiles

    async def post(self) -> None:
        await self.run(reconstruct.reconstruct_all, self.files)
        self.answer_empty_text()


class InvalidateTagsHandler(OrthancHandler):
    """Orthanc drops its cached DICOM-as-JSON summaries here; Isengard keeps none (it
    renders tags from the files on each request), so there is nothing to drop."""

    async def post(self) -> None:
        self.answer_empty_text()


def paths() -> list[tuple[str, type]]:
    return [
        (rf"/{LEVELS}/{ID}/reconstruct", ReconstructHandler),
        (r"/tools/reconstruct", ReconstructAllHandler),
        (r"/tools/invalidate-tags", InvalidateTagsHandler),
    ]


def routes(*, files: InstanceFiles, index: Index) -> list[Route]:
    """The routes, each handler given the services it uses."""
    return with_services(paths(), files=files, index=index)
