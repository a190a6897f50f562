"""``/{level}/{id}/metadata`` and ``/{level}/{id}/attachments``, with Orthanc's revisions.

Every metadata and attachment has a revision, 0 when created and one more per
write.  Answers carry it as ``ETag: "<revision>-<MD5 of the content>"``; a GET
with a matching ``If-None-Match`` gets 304, and a PUT or DELETE may name the
revision it replaces with ``If-Match`` (409 when stale).  With ``CheckRevisions``
that header is required to overwrite or delete.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import tornado.web

from server.attachments import Attachments, ByteRange
from server.dicom.main_tags import Level
from server.errors import ErrorCode, OrthancError
from server.resources import METADATA_NAMES
from server.rest.base import NoAnswer, OrthancHandler, Route, with_services
from server.rest.resources import ID, LEVELS
from server.storage.area import COMPRESSION_NONE
from server.storage.index import (
    ATTACHMENT_DICOM,
    ATTACHMENT_NAMES,
    EXPECT_NEW,
    Attachment,
    Resource,
    Revision,
    is_user_type,
    md5_hex,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from server.config import Configuration
    from server.storage.area import StorageArea
    from server.storage.index import Index, Resource

#: Orthanc's attachment number for the "DICOM as JSON" summary, which may be deleted.
ATTACHMENT_DICOM_AS_JSON = 2

_INTEGER = re.compile(r"-?[0-9]+")
_BINARY = "application/octet-stream"


def _enumeration_number(text: str, by_name: dict[str, int]) -> int:
    """Orthanc's EnumerationDictionary: a number as such, else a known name, else 404."""
    if _INTEGER.fullmatch(text.strip()):
        return int(text)
    if text in by_name:
        return by_name[text]
    raise OrthancError(ErrorCode.INEXISTENT_ITEM)


class MetadataNames:
    """Metadata names <-> numbers, including the ``UserMetadata`` option's."""

    def __init__(self, user: dict[str, int]) -> None:
        self.by_number = dict(METADATA_NAMES)
        self.by_number.update({number: name for name, number in user.items()})
        self.by_name = {name: number for number, name in self.by_number.items()}

    def number(self, text: str) -> int:
        return _enumeration_number(text, self.by_name)

    def name(self, number: int) -> str:
        return self.by_number.get(number, str(number))


class ContentTypes:
    """Attachment names <-> numbers and MIME types, including the ``UserContentType`` option's
    (``{"name": number}`` or ``{"name": [number, "MIME type"]}``)."""

    def __init__(self, user: dict[str, Any]) -> None:
        self.by_number = dict(ATTACHMENT_NAMES)
        self.mime_types = {ATTACHMENT_DICOM: "application/dicom",
                           ATTACHMENT_DICOM_AS_JSON: "application/json; charset=utf-8"}
        for name, value in user.items():
            number, mime = (value, _BINARY) if isinstance(value, int) else (value[0], value[1])
            self.by_number[number] = name
            self.mime_types[number] = mime
        self.by_name = {name: number for number, name in self.by_number.items()}

    def number(self, text: str) -> int:
        return _enumeration_number(text, self.by_name)

    def name(self, number: int) -> str:
        return self.by_number.get(number, str(number))

    def mime(self, number: int) -> str:
        return self.mime_types.get(number, _BINARY)


def parse_revision(value: str, header: str) -> Revision:
    """An ETag given back in ``If-Match``/``If-None-Match``: ``"<revision>-<MD5>"``, quotes optional.

    ``header`` is the name Orthanc quotes in its 400 (``If-None-Match`` for reads,
    ``if-match`` for writes).
    """
    text = value.strip()
    if len(text) >= 2 and text[0] == text[-1] == '"':
        text = text[1:-1]
    revision, dash, md5 = text.partition("-")
    if dash and re.fullmatch(r"\s*[-+]?[0-9]+\s*", revision):
        return int(revision), md5
    raise OrthancError(ErrorCode.PARAMETER_OUT_OF_RANGE,
                       f'The "{header}" HTTP header should contain the ETag (revision '
                       f"followed by MD5 hash), but found: {text}")


class RevisionedHandler(OrthancHandler):
    """What the metadata and attachment routes share: the target resource and revisions."""

    config: Configuration
    index: Index

    def clear(self) -> None:
        """Keep the ETag and Allow headers already set through an error answer (a malformed
        If-None-Match gets 400 with the current ETag, as in Orthanc; a 405 says what is allowed)."""
        kept = {name: self._headers.get(name) for name in ("ETag", "Allow")} \
            if hasattr(self, "_headers") else {}
        super().clear()
        for name, value in kept.items():
            if value is not None:
                self.set_header(name, value)

    async def target(self, plural: str, public_id: str) -> Resource:
        return await self.resource(Level.parse(plural), public_id)

    def resource_in_worker(self, level: Level, public_id: str) -> Resource:
        """An unknown resource of these routes is Orthanc's "unknown resource" error (also for
        :meth:`~server.rest.base.OrthancHandler.run_on`), not a bare 404."""
        found = self.index.lookup(public_id, level)
        if found is None:
            raise OrthancError(ErrorCode.UNKNOWN_RESOURCE)
        return found

    def answer_revision(self, revision: int, md5: str) -> bool:
        """Set the ETag; True (and a 304 sent) when ``If-None-Match`` names this very revision."""
        self.set_header("ETag", f'"{revision}-{md5}"')
        header = self.request.headers.get("If-None-Match")
        if header is not None and parse_revision(header, "If-None-Match") == (revision, md5):
            self.set_status(304)
            self.finish()
            return True
        return False

    def expected_for_put(self) -> Revision | None:
        """The revision a PUT replaces: If-Match's, else (with CheckRevisions) none at all."""
        header = self.request.headers.get("If-Match")
        if header is not None:
            return parse_revision(header, "if-match")
        return EXPECT_NEW if self.config["CheckRevisions"] else None

    def expected_for_delete(self) -> Revision | None:
        """The revision a DELETE removes; without If-Match, CheckRevisions refuses the DELETE."""
        header = self.request.headers.get("If-Match")
        if header is not None:
            return parse_revision(header, "if-match")
        if self.config["CheckRevisions"]:
            raise OrthancError(ErrorCode.REVISION,
                               'HTTP header "If-Match" is missing, as "CheckRevisions" is "true"')
        return None

    @staticmethod
    def forbidden() -> OrthancError:
        """System metadata and attachments are read-only through REST: an empty 403."""
        return OrthancError(ErrorCode.FORBIDDEN_ACCESS, http_status=403)


class MetadataListHandler(RevisionedHandler):
    index: Index
    metadata_names: MetadataNames

    async def get(self, plural: str, public_id: str) -> None:
        values = await self.run_on(Level.parse(plural), public_id,
                                   lambda resource: self.index.metadata(resource.internal_id))
        names = self.metadata_names
        # ``?numeric`` (Orthanc 1.12.0): the metadata by number instead of by name.
        name = (lambda kind: kind) if self.flag("numeric") else names.name
        if self.flag("expand"):
            self.answer_json({str(name(k)): v for k, v in values.items()})
        else:
            self.answer_json([name(k) for k in values])


class MetadataHandler(RevisionedHandler):
    index: Index
    metadata_names: MetadataNames
    publish_updated: Callable[[Resource], None]

    async def get(self, plural: str, public_id: str, name: str) -> None:
        number = self.metadata_names.number(name)
        found = await self.run_on(Level.parse(plural), public_id,
                                  lambda resource: self.index.metadata_revision(resource.internal_id, number))
        if found is None:
            raise NoAnswer()
        value, revision = found
        if not self.answer_revision(revision, md5_hex(value)):
            self.answer_text(value)

    async def put(self, plural: str, public_id: str, name: str) -> None:
        number = self._writable(name)
        value = self.request.body.decode("utf-8", "replace")
        expected = self.expected_for_put()
        resource, revision = await self.run_on(
            Level.parse(plural), public_id,
            lambda resource: (resource, self.index.set_metadata(resource.internal_id, number, value, expected)))
        self.publish_updated(resource)
        self.set_header("ETag", f'"{revision}-{md5_hex(value)}"')
        self.answer_empty_text()

    async def delete(self, plural: str, public_id: str, name: str) -> None:
        number = self._writable(name)
        expected = self.expected_for_delete()
        resource, deleted = await self.run_on(
            Level.parse(plural), public_id,
            lambda resource: (resource, self.index.delete_metadata(resource.internal_id, number, expected)))
        if not deleted:
            raise OrthancError(ErrorCode.UNKNOWN_RESOURCE)
        self.publish_updated(resource)
        self.answer_empty_text()

    def _writable(self, name: str) -> int:
        number = self.metadata_names.number(name)
        if not is_user_type(number):
            raise self.forbidden()
        return number


#: Orthanc 1.10.1's list of operations on an attachment (it lists "uuid" but serves no such route).
_OPERATIONS = ["compress", "compressed-data", "compressed-md5", "compressed-size", "data", "info",
               "is-compressed", "md5", "size", "uncompress", "verify-md5", "uuid"]
_GET_OPERATIONS = {"compressed-data", "compressed-md5", "compressed-size", "data", "info",
                   "is-compressed", "md5", "size"}
_POST_OPERATIONS = {"compress", "uncompress", "verify-md5"}


class AttachmentListHandler(RevisionedHandler):
    content_types: ContentTypes
    index: Index

    async def get(self, plural: str, public_id: str) -> None:
        found = await self.run_on(Level.parse(plural), public_id,
                                  lambda resource: self.index.attachments(resource.internal_id))
        names = self.content_types
        if "full" in self.request.query_arguments:
            self.answer_json({names.name(n): n for n in found})
        else:
            self.answer_json([names.name(n) for n in found])


class AttachmentHandler(RevisionedHandler):
    area: StorageArea
    config: Configuration
    content_types: ContentTypes
    index: Index
    publish_updated: Callable[[Resource], None]

    async def get(self, plural: str, public_id: str, name: str, operation: str | None) -> None:
        if operation and operation not in _GET_OPERATIONS:
            self._no_route(operation)
        number = self.content_types.number(name)
        wanted = self._range() if operation in ("data", "compressed-data") else None
        attachment = await self.run_on(Level.parse(plural), public_id, self._attachment, number)
        if self.answer_revision(attachment.revision, attachment.uncompressed_md5):
            return
        if not operation:
            self.answer_json(_OPERATIONS)
        elif wanted is not None:
            await self._answer_range(attachment, operation == "data", wanted)
        elif operation in ("data", "compressed-data"):
            await self._answer_data(attachment, operation == "data")
        elif operation == "info":
            self.answer_json(_info(attachment))
        else:
            self.answer_text(_describe(attachment, operation))

    async def post(self, plural: str, public_id: str, name: str, operation: str | None) -> None:
        if operation not in _POST_OPERATIONS:
            self._no_route(operation)
        number = self.content_types.number(name)
        resource = await self.target(plural, public_id)
        service = self._service()
        if operation == "verify-md5":
            attachment = await self.run(self.index.attachment, resource.internal_id, number)
            if attachment is None or not await self.run(service.verify, attachment):
                raise NoAnswer()
        else:
            await self.run(service.change_compression, resource.internal_id, number,
                           operation == "compress")
            if is_user_type(number):
                self.publish_updated(resource, attachment=True)
        self.answer_text("{}", "application/json")

    async def put(self, plural: str, public_id: str, name: str, operation: str | None) -> None:
        if operation:
            self._no_route(operation)
        number = self.content_types.number(name)
        if not is_user_type(number):
            raise self.forbidden()
        expected = self.expected_for_put()
        resource = await self.target(plural, public_id)
        data = self.request.body
        revision = await self.run(self._service().put, resource.internal_id, number, data,
                                  expected)
        self.publish_updated(resource, attachment=True)
        self.set_header("ETag", f'"{revision}-{md5_hex(data)}"')
        self.answer_text("{}", "application/json")

    async def delete(self, plural: str, public_id: str, name: str, operation: str | None) -> None:
        if operation:
            self._no_route(operation)
        number = self.content_types.number(name)
        if not (is_user_type(number) or (number == ATTACHMENT_DICOM_AS_JSON
                                         and self.config["StoreDicom"])):
            raise self.forbidden()
        expected = self.expected_for_delete()
        resource = await self.target(plural, public_id)
        if not await self.run(self._service().delete, resource.internal_id, number, expected):
            raise OrthancError(ErrorCode.UNKNOWN_RESOURCE)
        if is_user_type(number):
            self.publish_updated(resource, attachment=True)
        self.answer_empty_text()

    def _no_route(self, operation: str | None) -> None:
        """An operation that exists for other methods is 405; an unknown one, 404."""
        if operation in _GET_OPERATIONS or operation in _POST_OPERATIONS:
            self.set_header("Allow", "GET" if operation in _GET_OPERATIONS else "POST")
            raise tornado.web.HTTPError(405)
        raise tornado.web.HTTPError(404)

    def _service(self) -> Attachments:
        return Attachments(self.index, self.area)

    def _attachment(self, resource: Resource, number: int) -> Attachment:
        attachment = self.index.attachment(resource.internal_id, number)
        if attachment is None:
            raise OrthancError(ErrorCode.UNKNOWN_RESOURCE)
        return attachment

    def _range(self) -> ByteRange | None:
        """The ``Range`` header (Orthanc 1.12.5), read before the attachment is looked up: a
        bad one is a 416 even for an unknown attachment, as in Orthanc."""
        header = self.request.headers.get("Range")
        return None if header is None else ByteRange.parse(header)

    async def _answer_range(self, attachment: Attachment, uncompress: bool, wanted: ByteRange) -> None:
        """206 with the part asked for, as Orthanc's ``SendStatus``: binary, no file name."""
        data, content_range = await self.run(self._service().read_range, attachment, uncompress, wanted)
        self.set_status(206)
        self.set_header("Content-Range", content_range)
        self.answer_bytes(data, _BINARY)

    async def _answer_data(self, attachment: Attachment, uncompress: bool) -> None:
        """``data`` as Orthanc answers a file (its MIME type, named after its uuid or the
        ``filename`` argument of Orthanc 1.12.7); ``compressed-data`` of a compressed file as
        the bytes on disk, of another as ``data`` (Orthanc 1.12.5; 1.10.1 answered it binary)."""
        data = await self.run(self._service().read, attachment, uncompress)
        if not uncompress and attachment.compression != COMPRESSION_NONE:
            self.answer_bytes(data, _BINARY)
            return
        extension = ".dcm" if attachment.file_type == ATTACHMENT_DICOM else ""
        self.answer_bytes(data, self.content_types.mime(attachment.file_type),
                          filename=self.filename_argument(attachment.uuid + extension))


def _describe(attachment: Attachment, operation: str) -> str:
    return {
        "size": str(attachment.uncompressed_size),
        "compressed-size": str(attachment.compressed_size),
        "md5": attachment.uncompressed_md5,
        "compressed-md5": attachment.compressed_md5,
        "is-compressed": "1" if attachment.compression != 1 else "0",
    }[operation]


def _info(attachment: Attachment) -> dict:
    return {"CompressedMD5": attachment.compressed_md5,
            "CompressedSize": attachment.compressed_size,
            "ContentType": attachment.file_type,
            "UncompressedMD5": attachment.uncompressed_md5,
            "UncompressedSize": attachment.uncompressed_size,
            "Uuid": attachment.uuid}


def paths() -> list[tuple[str, type]]:
    return [
        (rf"/{LEVELS}/{ID}/metadata", MetadataListHandler),
        (rf"/{LEVELS}/{ID}/metadata/([^/]+)", MetadataHandler),
        (rf"/{LEVELS}/{ID}/attachments", AttachmentListHandler),
        (rf"/{LEVELS}/{ID}/attachments/([^/]+)(?:/([^/]+))?", AttachmentHandler),
    ]


def routes(*, area: StorageArea, config: Configuration, content_types: ContentTypes, index: Index,
           metadata_names: MetadataNames, publish_updated: Callable[[Resource], None]) -> list[Route]:
    """The routes, each handler given the services it uses."""
    return with_services(paths(), area=area, config=config, content_types=content_types, index=index,
                         metadata_names=metadata_names, publish_updated=publish_updated)
