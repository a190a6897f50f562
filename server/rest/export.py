"""``POST /instances/{id}/export``: write an instance's DICOM file to a path of the
server's filesystem (the body).  Off unless ``RestApiWriteToFileSystemEnabled``, as in
Orthanc: a REST client must not get to write files on the server by default."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from server.dicom.main_tags import Level
from server.errors import ErrorCode, OrthancError
from server.rest.base import OrthancHandler, Route, with_services
from server.rest.resources import ID

if TYPE_CHECKING:
    from server.config import Configuration
    from server.storage.index import Index
    from server.store import Store

log = logging.getLogger("isengard.http")


class ExportHandler(OrthancHandler):
    config: Configuration
    index: Index
    store: Store

    async def post(self, public_id: str) -> None:
        if not self.config["RestApiWriteToFileSystemEnabled"]:
            log.error("The URI /instances/../export is disallowed for security, "
                      "check your configuration option `RestApiWriteToFileSystemEnabled`")
            self._empty(403)
            self.finish()
            return
        instance = await self.run(self.index.lookup, public_id, Level.INSTANCE)
        if instance is None:
            raise OrthancError(ErrorCode.UNKNOWN_RESOURCE)
        target = Path(self.request.body.decode("utf-8", "replace"))
        data = await self.run(self.store.read_dicom, instance)
        try:
            await self.run(target.write_bytes, data)
        except OSError as error:
            raise OrthancError(ErrorCode.CANNOT_WRITE_FILE, str(error)) from None
        self.answer_json({})


def paths() -> list[tuple[str, type]]:
    return [(rf"/instances/{ID}/export", ExportHandler)]


def routes(*, config: Configuration, index: Index, store: Store) -> list[Route]:
    """The routes, each handler given the services it uses."""
    return with_services(paths(), config=config, index=index, store=store)
