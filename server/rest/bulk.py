"""``POST /tools/bulk-content`` and ``POST /tools/bulk-delete``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from server import bulk
from server.errors import ErrorCode, OrthancError
from server.rest.base import OrthancHandler, Route, with_services
from server.rest.formats import body_format
from server.rest.requests import strings_field

if TYPE_CHECKING:
    from server.resources import ResourceViews
    from server.rest.metadata import MetadataNames
    from server.storage.index import Index
    from server.store import Store


class BulkContentHandler(OrthancHandler):
    index: Index
    metadata_names: MetadataNames
    views: ResourceViews

    async def post(self) -> None:
        body = self._object_body()
        metadata = body.get("Metadata", True)
        if not isinstance(metadata, bool):
            raise OrthancError(ErrorCode.BAD_FILE_FORMAT, 'The field "Metadata" must contain a Boolean')
        fmt = body_format(body, "simplify")
        listed = strings_field(body, "Resources")
        level = bulk.bulk_level(body["Level"]) if "Level" in body else None
        self.answer_json(await self.run(bulk.bulk_content, self.index, self.views, self.metadata_names, listed, level,
                                        fmt, metadata))

    def _object_body(self) -> dict:
        body = self.json_body()
        if not isinstance(body, dict):
            raise OrthancError(ErrorCode.BAD_REQUEST, "The body must contain a JSON object")
        return body


class BulkDeleteHandler(BulkContentHandler):
    index: Index
    store: Store

    async def post(self) -> None:
        await self.run(bulk.bulk_delete, self.index, self.store, self._object_body())
        self.answer_empty_text()


def paths() -> list[tuple[str, type]]:
    return [
        (r"/tools/bulk-content", BulkContentHandler),
        (r"/tools/bulk-delete", BulkDeleteHandler),
    ]


def routes(*, index: Index, metadata_names: MetadataNames, store: Store, views: ResourceViews) -> list[Route]:
    """The routes, each handler given the services it uses."""
    return with_services(paths(), index=index, metadata_names=metadata_names, store=store, views=views)
