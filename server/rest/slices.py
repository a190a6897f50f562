"""``GET /series/{id}/ordered-slices`` (used by Orthanc's Web viewers)."""

from __future__ import annotations

from server.dicom.main_tags import Level
from server.rest.base import OrthancHandler
from server.rest.resources import ID
from server.slices import ordered_slices


class OrderedSlicesHandler(OrthancHandler):
    async def get(self, public_id: str) -> None:
        series = await self.resource(Level.SERIES, public_id)
        self.answer_json(await self.run(ordered_slices, self.ctx.index, series))


def routes() -> list[tuple[str, type]]:
    return [(rf"/series/{ID}/ordered-slices", OrderedSlicesHandler)]
