"""``GET /series/{id}/ordered-slices`` (used by Orthanc's Web viewers)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from server.dicom.main_tags import Level
from server.rest.base import OrthancHandler, Route, with_services
from server.rest.resources import ID
from server.slices import ordered_slices

if TYPE_CHECKING:
    from server.storage.index import Index, Resource


class OrderedSlicesHandler(OrthancHandler):
    index: Index

    async def get(self, public_id: str) -> None:
        self.answer_json(await self.run_on(Level.SERIES, public_id, self._slices))

    def _slices(self, series: Resource) -> Any:
        return ordered_slices(self.index, series)


def paths() -> list[tuple[str, type]]:
    return [(rf"/series/{ID}/ordered-slices", OrderedSlicesHandler)]


def routes(*, index: Index) -> list[Route]:
    """The routes, each handler given the services it uses."""
    return with_services(paths(), index=index)
