"""``POST /{level}/{id}/reconstruct``, ``/tools/reconstruct`` and ``/tools/invalidate-tags``."""

from __future__ import annotations

from server import reconstruct
from server.errors import ErrorCode, OrthancError
from server.rest.base import OrthancHandler
from server.rest.resources import ID, LEVELS


class ReconstructHandler(OrthancHandler):
    """As Orthanc, any resource is reconstructed whatever the level in the URI; an
    unknown one is the JSON 404 "Unknown resource"."""

    async def post(self, plural: str, public_id: str) -> None:
        resource = await self.run(self.ctx.index.lookup, public_id)
        if resource is None:
            raise OrthancError(ErrorCode.UNKNOWN_RESOURCE)
        await self.run(reconstruct.reconstruct_resource, self.ctx, resource)
        self.answer_empty_text()


class ReconstructAllHandler(OrthancHandler):
    async def post(self) -> None:
        await self.run(reconstruct.reconstruct_all, self.ctx)
        self.answer_empty_text()


class InvalidateTagsHandler(OrthancHandler):
    """Orthanc drops its cached DICOM-as-JSON summaries here; Isengard keeps none (it
    renders tags from the files on each request), so there is nothing to drop."""

    async def post(self) -> None:
        self.answer_empty_text()


def routes() -> list[tuple[str, type]]:
    return [
        (rf"/{LEVELS}/{ID}/reconstruct", ReconstructHandler),
        (r"/tools/reconstruct", ReconstructAllHandler),
        (r"/tools/invalidate-tags", InvalidateTagsHandler),
    ]
