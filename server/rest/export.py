"""``POST /instances/{id}/export``: write an instance's DICOM file to a path of the
server's filesystem (the body).  Off unless ``RestApiWriteToFileSystemEnabled``, as in
Orthanc: a REST client must not get to write files on the server by default."""

from __future__ import annotations

import logging
from pathlib import Path

from server.dicom.main_tags import Level
from server.errors import ErrorCode, OrthancError
from server.rest.base import OrthancHandler
from server.rest.resources import ID

log = logging.getLogger("isengard.http")


class ExportHandler(OrthancHandler):
    async def post(self, public_id: str) -> None:
        if not self.ctx.config["RestApiWriteToFileSystemEnabled"]:
            log.error("The URI /instances/../export is disallowed for security, "
                      "check your configuration option `RestApiWriteToFileSystemEnabled`")
            self._empty(403)
            self.finish()
            return
        instance = await self.run(self.ctx.index.lookup, public_id, Level.INSTANCE)
        if instance is None:
            raise OrthancError(ErrorCode.UNKNOWN_RESOURCE)
        target = Path(self.request.body.decode("utf-8", "replace"))
        data = await self.run(self.ctx.store.read_dicom, instance)
        try:
            await self.run(target.write_bytes, data)
        except OSError as error:
            raise OrthancError(ErrorCode.CANNOT_WRITE_FILE, str(error)) from None
        self.answer_json({})


def routes() -> list[tuple[str, type]]:
    return [(rf"/instances/{ID}/export", ExportHandler)]
