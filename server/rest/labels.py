"""``/{level}/{id}/labels[/{label}]`` and ``/tools/labels`` (Orthanc 1.12)."""

from __future__ import annotations

import urllib.parse
from typing import TYPE_CHECKING

from server.dicom.main_tags import Level
from server.rest.base import NoAnswer, OrthancHandler, Route, with_services
from server.rest.resources import ID, LEVELS

if TYPE_CHECKING:
    from server.resources import ResourceViews
    from server.storage.index import Resource


class ResourceLabelsHandler(OrthancHandler):
    """``GET /{level}/{id}/labels``: the resource's labels, sorted."""

    views: ResourceViews

    async def get(self, plural: str, public_id: str) -> None:
        self.answer_json(await self.run_on(Level.parse(plural), public_id, self._labels))

    def _labels(self, resource: Resource) -> list[str]:
        return self.views.labels.of(resource.internal_id)


class LabelHandler(OrthancHandler):
    """One label of a resource: test (empty answer, or 404), add, remove (both idempotent)."""

    views: ResourceViews

    async def get(self, plural: str, public_id: str, label: str) -> None:
        labels = await self.run_on(Level.parse(plural), public_id, self._labels)
        if urllib.parse.unquote(label) not in labels:
            raise NoAnswer()
        self.answer_empty_text()

    async def put(self, plural: str, public_id: str, label: str) -> None:
        await self.run_on(Level.parse(plural), public_id, self._add, urllib.parse.unquote(label))
        self.answer_empty_text()

    async def delete(self, plural: str, public_id: str, label: str) -> None:
        await self.run_on(Level.parse(plural), public_id, self._remove, urllib.parse.unquote(label))
        self.answer_empty_text()

    def _labels(self, resource: Resource) -> list[str]:
        return self.views.labels.of(resource.internal_id)

    def _add(self, resource: Resource, label: str) -> None:
        self.views.labels.add(resource.internal_id, label)

    def _remove(self, resource: Resource, label: str) -> None:
        self.views.labels.remove(resource.internal_id, label)


class AllLabelsHandler(OrthancHandler):
    """``GET /tools/labels``: every label in use."""

    views: ResourceViews

    async def get(self) -> None:
        self.answer_json(await self.run(self.views.labels.all))


def paths() -> list[tuple[str, type]]:
    return [
        (rf"/{LEVELS}/{ID}/labels", ResourceLabelsHandler),
        (rf"/{LEVELS}/{ID}/labels/([^/]*)", LabelHandler),
        (r"/tools/labels", AllLabelsHandler),
    ]


def routes(*, views: ResourceViews) -> list[Route]:
    """The routes, each handler given the services it uses."""
    return with_services(paths(), views=views)
