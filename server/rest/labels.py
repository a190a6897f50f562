"""``/{level}/{id}/labels[/{label}]`` and ``/tools/labels`` (Orthanc 1.12)."""

from __future__ import annotations

import urllib.parse

from server.dicom.main_tags import Level
from server.rest.base import NoAnswer, OrthancHandler
from server.rest.resources import ID, LEVELS


class ResourceLabelsHandler(OrthancHandler):
    """``GET /{level}/{id}/labels``: the resource's labels, sorted."""

    async def get(self, plural: str, public_id: str) -> None:
        resource = await self.resource(Level.parse(plural), public_id)
        self.answer_json(await self.run(self.ctx.views.labels.of, resource.internal_id))


class LabelHandler(OrthancHandler):
    """One label of a resource: test (empty answer, or 404), add, remove (both idempotent)."""

    async def get(self, plural: str, public_id: str, label: str) -> None:
        resource = await self.resource(Level.parse(plural), public_id)
        labels = await self.run(self.ctx.views.labels.of, resource.internal_id)
        if urllib.parse.unquote(label) not in labels:
            raise NoAnswer()
        self.answer_empty_text()

    async def put(self, plural: str, public_id: str, label: str) -> None:
        resource = await self.resource(Level.parse(plural), public_id)
        await self.run(self.ctx.views.labels.add, resource.internal_id,
                       urllib.parse.unquote(label))
        self.answer_empty_text()

    async def delete(self, plural: str, public_id: str, label: str) -> None:
        resource = await self.resource(Level.parse(plural), public_id)
        await self.run(self.ctx.views.labels.remove, resource.internal_id,
                       urllib.parse.unquote(label))
        self.answer_empty_text()


class AllLabelsHandler(OrthancHandler):
    """``GET /tools/labels``: every label in use."""

    async def get(self) -> None:
        self.answer_json(await self.run(self.ctx.views.labels.all))


def routes() -> list[tuple[str, type]]:
    return [
        (rf"/{LEVELS}/{ID}/labels", ResourceLabelsHandler),
        (rf"/{LEVELS}/{ID}/labels/([^/]*)", LabelHandler),
        (r"/tools/labels", AllLabelsHandler),
    ]
