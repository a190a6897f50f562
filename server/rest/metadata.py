"""``/{level}/{id}/metadata`` and ``/{level}/{id}/attachments``."""

from __future__ import annotations

import hashlib

import tornado.web

from server.dicom.main_tags import Level
from server.errors import ErrorCode, OrthancError
from server.resources import METADATA_NAMES
from server.rest.base import NoAnswer, OrthancHandler
from server.rest.resources import ID, LEVELS
from server.storage.index import ATTACHMENT_NAMES, Attachment, Resource

#: The first metadata index a user may define (``UserMetadata``).
USER_METADATA_START = 1024


class MetadataNames:
    """Metadata names <-> numbers, including the ``UserMetadata`` option's."""

    def __init__(self, user: dict[str, int]) -> None:
        self.by_number = dict(METADATA_NAMES)
        self.by_number.update({number: name for name, number in user.items()})
        self.by_name = {name: number for number, name in self.by_number.items()}

    def number(self, text: str) -> int:
        if text in self.by_name:
            return self.by_name[text]
        try:
            return int(text)
        except ValueError:
            raise OrthancError(ErrorCode.PARAMETER_OUT_OF_RANGE,
                               f"Unknown metadata: {text}") from None

    def name(self, number: int) -> str:
        return self.by_number.get(number, str(number))


class MetadataListHandler(OrthancHandler):
    async def get(self, plural: str, public_id: str) -> None:
        resource = self.resource(Level.parse(plural), public_id)
        values = await self.run(self.ctx.index.metadata, resource.internal_id)
        names = self.ctx.metadata_names
        if self.flag("expand"):
            self.answer_json({names.name(k): v for k, v in values.items()})
        else:
            self.answer_json([names.name(k) for k in values])


class MetadataHandler(OrthancHandler):
    async def get(self, plural: str, public_id: str, name: str) -> None:
        resource = self.resource(Level.parse(plural), public_id)
        number = self.ctx.metadata_names.number(name)
        found = await self.run(self.ctx.index.metadata_revision, resource.internal_id, number)
        if found is None:
            raise NoAnswer()
        self.set_header("ETag", f'"{found[1]}"')
        self.answer_text(found[0])

    async def put(self, plural: str, public_id: str, name: str) -> None:
        resource = self.resource(Level.parse(plural), public_id)
        number = self._writable(name)
        value = self.request.body.decode("utf-8", "replace")
        revision = await self.run(self.ctx.index.set_metadata, resource.internal_id,
                                  number, value)
        self.ctx.publish_updated(resource)
        self.set_header("ETag", f'"{revision}"')
        self.answer_empty_text()

    async def delete(self, plural: str, public_id: str, name: str) -> None:
        resource = self.resource(Level.parse(plural), public_id)
        number = self._writable(name)
        if not await self.run(self.ctx.index.delete_metadata, resource.internal_id, number):
            raise NoAnswer()
        self.ctx.publish_updated(resource)
        self.answer_empty_text()

    def _writable(self, name: str) -> int:
        number = self.ctx.metadata_names.number(name)
        if number < USER_METADATA_START:
            raise OrthancError(ErrorCode.FORBIDDEN_ACCESS, http_status=403)
        return number


def _attachment_number(text: str) -> int:
    for number, name in ATTACHMENT_NAMES.items():
        if text == name:
            return number
    try:
        return int(text)
    except ValueError:
        raise NoAnswer() from None


_OPERATIONS = ["compressed-data", "compressed-md5", "compressed-size", "data", "info",
               "is-compressed", "md5", "size", "uuid"]


class AttachmentListHandler(OrthancHandler):
    async def get(self, plural: str, public_id: str) -> None:
        resource = self.resource(Level.parse(plural), public_id)
        found = await self.run(self.ctx.index.attachments, resource.internal_id)
        self.answer_json([ATTACHMENT_NAMES.get(n, str(n)) for n in found])


class AttachmentHandler(OrthancHandler):
    async def get(self, plural: str, public_id: str, name: str, operation: str | None) -> None:
        resource = self.resource(Level.parse(plural), public_id)
        attachment = await self._attachment(resource, name)
        if not operation:
            self.answer_json(_OPERATIONS)
            return
        if operation not in _OPERATIONS:
            raise tornado.web.HTTPError(404)
        if operation in ("data", "compressed-data"):
            data = await self.run(self._read, attachment, operation == "data")
            self.answer_bytes(data, "application/octet-stream")
            return
        if operation == "info":
            self.answer_json(_info(attachment))
        else:
            self.answer_text(self._describe(attachment, operation))

    async def post(self, plural: str, public_id: str, name: str, operation: str | None) -> None:
        if operation != "verify-md5":
            await super().post(plural, public_id, name, operation)
            return
        resource = self.resource(Level.parse(plural), public_id)
        attachment = await self._attachment(resource, name)
        data = await self.run(self._read, attachment, False)
        if hashlib.md5(data).hexdigest() != attachment.compressed_md5:
            raise OrthancError(ErrorCode.CORRUPTED_FILE)
        self.answer_json({})

    async def _attachment(self, resource: Resource, name: str) -> Attachment:
        found = await self.run(self.ctx.index.attachments, resource.internal_id)
        attachment = found.get(_attachment_number(name))
        if attachment is None:
            raise NoAnswer()
        return attachment

    def _read(self, attachment: Attachment, uncompress: bool) -> bytes:
        area = self.ctx.area
        if uncompress:
            return area.read(attachment.uuid, attachment.compression)
        return area.read(attachment.uuid, 1)

    @staticmethod
    def _describe(attachment: Attachment, operation: str) -> str:
        return {
            "size": str(attachment.uncompressed_size),
            "compressed-size": str(attachment.compressed_size),
            "md5": attachment.uncompressed_md5,
            "compressed-md5": attachment.compressed_md5,
            "uuid": attachment.uuid,
            "is-compressed": "1" if attachment.compression != 1 else "0",
        }[operation]


def _info(attachment: Attachment) -> dict:
    return {"CompressedMD5": attachment.compressed_md5,
            "CompressedSize": attachment.compressed_size,
            "ContentType": attachment.file_type,
            "UncompressedMD5": attachment.uncompressed_md5,
            "UncompressedSize": attachment.uncompressed_size,
            "Uuid": attachment.uuid}


def routes() -> list[tuple[str, type]]:
    return [
        (rf"/{LEVELS}/{ID}/metadata", MetadataListHandler),
        (rf"/{LEVELS}/{ID}/metadata/([^/]+)", MetadataHandler),
        (rf"/{LEVELS}/{ID}/attachments", AttachmentListHandler),
        (rf"/{LEVELS}/{ID}/attachments/([^/]+)(?:/([^/]+))?", AttachmentHandler),
    ]
