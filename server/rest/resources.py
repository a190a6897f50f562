"""Routes on patients, studies, series and instances: listing, upload, views, deletion."""

from __future__ import annotations

import io
import logging
import tempfile
import zipfile
import zlib
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import tornado.web

import server
from server import instance_tags, requested_tags
from server.dicom import content as dicom_content
from server.dicom import json_format
from server.dicom.main_tags import Level, Tag
from server.dicom.parse import read_dataset, read_upload
from server.dicom.transcode import Settings, parse_transcode, transcode_file
from server.errors import ErrorCode, OrthancError
from server.resources import descendants_in_orthanc_order
from server.rest import multipart
from server.rest.base import NoAnswer, OrthancHandler, Route, with_services
from server.rest.body import MEGABYTE, SPOOL_THRESHOLD, limit_from_megabytes
from server.rest.formats import dicom_format, ignore_length
from server.storage.index import Resource
from server.store import Origin

if TYPE_CHECKING:
    from server.config import Configuration
    from server.instance_files import InstanceFiles
    from server.requested_tags import RequestedTags
    from server.resources import ResourceViews
    from server.rest.multipart import ChunkStore
    from server.storage.area import StorageArea
    from server.storage.index import Index
    from server.store import Store

log = logging.getLogger("isengard.http")

ID = r"([0-9a-f]{8}-[0-9a-f]{8}-[0-9a-f]{8}-[0-9a-f]{8}-[0-9a-f]{8})"
LEVELS = r"(patients|studies|series|instances)"
DICOMWEB_JSON = "application/dicom+json"
DICOMWEB_XML = "application/dicom+xml"
DICOMWEB_TYPES = (DICOMWEB_JSON, DICOMWEB_XML)


def _requested_tags(handler: OrthancHandler) -> list[Tag]:
    """``?requested-tags=`` (Orthanc 1.12.4; ``requestedTags`` before, still accepted)."""
    text = handler.get_argument("requested-tags", None) or handler.get_argument("requestedTags", None)
    return requested_tags.parse_argument(text)


def _expanded(views: ResourceViews, requested_tags: RequestedTags, resource: Resource, fmt: str,
              requested: list[Tag]) -> dict:
    """The view of a resource, with the ``RequestedTags`` object when tags were requested."""
    return requested_tags.add_to([views.expand(resource, fmt)], [resource], requested, fmt)[0]


def _is_zip(data: bytes) -> bool:
    return data[:4] == b"PK\x03\x04"


class ListHandler(OrthancHandler):
    """``GET /{level}`` (``expand``, ``since``, ``limit``) and ``POST /instances``."""

    area: StorageArea
    config: Configuration
    index: Index
    requested_tags: RequestedTags
    store: Store
    upload_chunks: ChunkStore
    views: ResourceViews

    spooled_body = True

    async def get(self, plural: str) -> None:
        level = Level.parse(plural)
        since_given = "since" in self.request.arguments
        limit_given = "limit" in self.request.arguments
        if since_given != limit_given:
            missing = "limit" if since_given else "since"
            raise OrthancError(ErrorCode.BAD_REQUEST,
                               f'Missing "{missing}" argument for GET request against: '
                               f'{self.request.path}')
        window = None
        if since_given:
            window = (self.int_argument("since", 0), self.int_argument("limit", 0))
        expand = self.flag("expand")
        fmt = dicom_format(self, "simplify")
        requested = _requested_tags(self)
        self.answer_json(await self.run(self._list, level, window, expand, fmt, requested))

    def _list(self, level: Level, window: tuple[int, int] | None, expand: bool, fmt: str,
              requested: list[Tag]) -> list:
        """All resources of the level, or ``limit`` of them after the first ``since``
        (Orthanc 1.10.1: ``limit=0`` is an empty page; from 1.12.5, API 26, "no limit",
        so this follows the API level ``/system`` reports)."""
        since, limit = window or (0, 0)
        if window is not None and not limit and server.ORTHANC_API_VERSION < 26:
            return []
        if not expand:
            return self.index.list_ids(level, since, limit)
        resources = self.index.list_resources(level, since, limit)
        return self.requested_tags.add_to(self.views.expand_many(resources, fmt), resources, requested, fmt)

    async def post(self, plural: str) -> None:
        if plural != "instances":
            await super().post(plural)
            return
        origin = self.origin()
        boundary = multipart.form_boundary(self.request.headers.get("Content-Type", ""))
        if boundary is not None:
            target = multipart.chunk_target(self.request.headers)
            await self.run(self._store_form, self.body_file, boundary, target, origin)
            self._empty(200)
            self.finish()
        else:
            self.answer_json(await self.run(self._store_upload, self.body_file, origin))

    def _store_form(self, body: IO[bytes], boundary: str, target: tuple[str, int] | None,
                    origin: Origin) -> None:
        """Store each part of a form upload (or the file its chunks complete) as Orthanc
        does: a part that fails is logged and skipped, the answer is an empty 200.
        The form is split in memory (forms are what browsers send, file by file)."""
        for _, content in multipart.split_parts(body.read(), boundary):
            if target is not None:
                completed = self.upload_chunks.add(*target, content)
                if completed is None:
                    continue
                content = completed
            try:
                if _is_zip(content):
                    self._store_zip(io.BytesIO(content), origin)
                else:
                    self.store.ingest(content, origin)
            except OrthancError as error:
                log.error("Cannot store a part of a multipart upload: %s", error)

    def _store_upload(self, body: IO[bytes], origin: Origin) -> dict | list[dict]:
        """A DICOM file or a ZIP of them, read from the spooled body."""
        head = body.read(4)
        body.seek(0)
        if _is_zip(head):
            return self._store_zip(body, origin)
        return self.store.ingest(read_upload(body), origin).as_json()

    def _store_zip(self, body: IO[bytes], origin: Origin) -> list[dict]:
        """Members are read and stored one at a time, each at most ``MaximumFileSizeInArchiveMB``."""
        limit = limit_from_megabytes(self.config["MaximumFileSizeInArchiveMB"])
        answers = []
        try:
            archive = zipfile.ZipFile(body)
            members = [m for m in archive.infolist() if not m.is_dir()]
            for member in members:
                content = _read_member(archive, member, limit, self.area.tmp)
                if content is None:
                    continue
                try:
                    answers.append(self.store.ingest(content, origin).as_json())
                except OrthancError:
                    continue
        except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, EOFError,
                zlib.error, RuntimeError) as e:
            raise OrthancError(ErrorCode.BAD_FILE_FORMAT, f"Cannot read ZIP archive: {e}") from e
        return answers


def _read_member(archive: zipfile.ZipFile, member: zipfile.ZipInfo, limit: int | None,
                 spool_dir: Path) -> bytes | None:
    """One member, inflated to a spooled file and refused past ``limit`` (checked on what
    is inflated, not only on the header): a ZIP bomb never sits in memory.  None for a
    member that is no complete DICOM file: skipped, as the members the store refuses."""
    if limit is not None and member.file_size > limit:
        raise OrthancError(ErrorCode.BAD_FILE_FORMAT, _too_large(member.filename, limit))
    with archive.open(member) as source, \
            tempfile.SpooledTemporaryFile(SPOOL_THRESHOLD, dir=spool_dir) as spooled:
        while chunk := source.read(MEGABYTE):
            if limit is not None and spooled.tell() + len(chunk) > limit:
                raise OrthancError(ErrorCode.BAD_FILE_FORMAT, _too_large(member.filename, limit))
            spooled.write(chunk)
        try:
            return read_upload(spooled)
        except OrthancError:
            return None


def _too_large(name: str, limit: int) -> str:
    return (f"Uncompressed size exceeds limit ({limit / (1024 * 1024):.1f}MB): "
            f"{name} (MaximumFileSizeInArchiveMB)")


class ResourceHandler(OrthancHandler):
    """``GET`` and ``DELETE /{level}/{id}``."""

    requested_tags: RequestedTags
    store: Store
    views: ResourceViews

    async def get(self, plural: str, public_id: str) -> None:
        fmt = dicom_format(self, "simplify")
        try:
            requested: list[Tag] | OrthancError = _requested_tags(self)
        except OrthancError as error:  # answered after an unknown resource's 404, as before
            requested = error
        self.answer_json(await self.run(self._view, Level.parse(plural), public_id, fmt, requested))

    def _view(self, level: Level, public_id: str, fmt: str, requested: list[Tag] | OrthancError) -> dict:
        """The lookup and the view in one trip to the worker threads (two cost ~0.1 ms more)."""
        resource = self.resource_in_worker(level, public_id)
        if isinstance(requested, OrthancError):
            raise requested
        return _expanded(self.views, self.requested_tags, resource, fmt, requested)

    async def delete(self, plural: str, public_id: str) -> None:
        result = await self.run_on(Level.parse(plural), public_id, self.store.delete)
        remaining = None
        if result.remaining is not None:
            r = result.remaining
            remaining = {"ID": r.public_id, "Path": f"/{r.level.plural}/{r.public_id}",
                         "Type": r.level.title}
        self.answer_json({"RemainingAncestor": remaining})


#: (level, relative) pairs that Orthanc routes: ancestors singular, descendants plural.
_RELATIVES = {
    ("patients", "studies"), ("patients", "series"), ("patients", "instances"),
    ("studies", "patient"), ("studies", "series"), ("studies", "instances"),
    ("series", "patient"), ("series", "study"), ("series", "instances"),
    ("instances", "patient"), ("instances", "study"), ("instances", "series"),
}


class RelativesHandler(OrthancHandler):
    """``/{level}/{id}/{patient|study|series|instances...}``: parents and descendants."""

    index: Index
    requested_tags: RequestedTags
    views: ResourceViews

    async def get(self, plural: str, public_id: str, relative: str) -> None:
        if (plural, relative) not in _RELATIVES:
            raise tornado.web.HTTPError(404)
        fmt = dicom_format(self, "simplify")
        expand = "expand" not in self.request.arguments or self.flag("expand")
        self.answer_json(await self.run_on(Level.parse(plural), public_id, self._relatives, Level.parse(relative),
                                           fmt, self.checked(lambda: _requested_tags(self)), expand))

    def _relatives(self, resource: Resource, target: Level, fmt: str, requested: list[Tag],
                   expand: bool) -> object:
        """Ancestors as one view, descendants as a list of views (only their identifiers
        with ``expand=false``, Orthanc 1.12.2)."""
        index = self.index
        if target < resource.level:
            return _expanded(self.views, self.requested_tags, index.ancestor(resource, target), fmt, requested)
        found = descendants_in_orthanc_order(index, resource, target)
        if not expand:
            return [r.public_id for r in found]
        return self.requested_tags.add_to(self.views.expand_many(found, fmt), found, requested, fmt)


class StatisticsHandler(OrthancHandler):
    views: ResourceViews

    async def get(self, plural: str, public_id: str) -> None:
        self.answer_json(await self.run_on(Level.parse(plural), public_id, self.views.statistics))


class InstanceFileHandler(OrthancHandler):
    """The stored file, or with ``transcode`` (Orthanc 1.12; ``lossy-quality`` 1.12.7) the file
    transcoded on the fly (nothing stored): an unknown UID is a 400, a transcoding that cannot
    be done NotImplemented.  ``filename`` (Orthanc 1.12.7) names the download.  An ``Accept``
    of exactly ``application/dicom+json`` or ``application/dicom+xml`` (Orthanc 1.5.4) asks
    for the instance in DICOMweb JSON or XML instead."""

    config: Configuration
    files: InstanceFiles
    index: Index
    store: Store

    async def get(self, public_id: str) -> None:
        mime = self.request.headers.get("Accept")
        if mime in DICOMWEB_TYPES:
            text = await self.run_on(Level.INSTANCE, public_id, self._dicomweb, mime == DICOMWEB_XML)
            self.answer_text(text, mime)
            return
        if "transcode" in self.request.arguments:
            target = self.checked(lambda: parse_transcode(self.get_argument("transcode", "")))
            data = await self.run_on(Level.INSTANCE, public_id, self._transcoded, target,
                                     self.checked(self.lossy_quality_argument))
            self.answer_bytes(data, "application/dicom", self.filename_argument(f"{public_id}.dcm"))
            return
        data, file_uuid = await self.run_on(Level.INSTANCE, public_id, self._stored)
        self.answer_bytes(data, "application/dicom", self.filename_argument(f"{file_uuid}.dcm"))

    def _dicomweb(self, resource: Resource, xml: bool) -> str:
        return instance_tags.dicomweb_file(self.files, resource, xml)

    def _stored(self, resource: Resource) -> tuple[bytes, str]:
        """The stored file, and the UUID of its attachment (the download's default name)."""
        attachment = self.store.dicom_attachment(resource)  # none: Orthanc's InexistentFile
        return self.store.read_dicom(resource, attachment), attachment.uuid

    def _transcoded(self, resource: Resource, target: str, quality: int | None) -> bytes:
        return transcode_file(self.store.read_dicom(resource), target, Settings.from_config(self.config, quality))


class InstanceTagsHandler(OrthancHandler):
    """``/tags`` (``simplify``, ``short``, ``full``, ``ignore-length``) and ``/simplified-tags``;
    ``whole`` (Orthanc 1.12.4) shows the tags stored after the pixel data."""

    files: InstanceFiles

    async def get(self, public_id: str, which: str) -> None:
        whole = self.boolean_argument("whole", False)
        fmt = "simplify" if which == "simplified-tags" else dicom_format(self, "full")
        full = await self.run_on(Level.INSTANCE, public_id, self._full_tags,
                                 self.checked(lambda: ignore_length(self)), whole)
        self.answer_json(json_format.render(full, fmt))

    def _full_tags(self, resource: Resource, ignored: frozenset[int], whole: bool) -> Any:
        return instance_tags.full_tags(self.files, resource, ignored, whole)


class InstanceHeaderHandler(OrthancHandler):
    store: Store

    async def get(self, public_id: str) -> None:
        simplify, short = self.flag("simplify"), self.flag("short")
        self.answer_json(await self.run_on(Level.INSTANCE, public_id, self._header, simplify, short))

    def _header(self, resource: Resource, simplify: bool, short: bool) -> dict:
        ds, _ = read_dataset(self.store.read_dicom(resource), stop_before_pixels=True)
        if simplify:
            return json_format.header_simplified(ds)
        if short:
            return json_format.header_short(ds)
        return json_format.header_full(ds)


class InstanceContentHandler(OrthancHandler):
    store: Store

    async def get(self, public_id: str, path: str) -> None:
        parts = [p for p in (path or "").split("/") if p]
        answer = await self.run_on(Level.INSTANCE, public_id, self._content, parts)
        if isinstance(answer, bytes):
            self.answer_bytes(answer, "application/octet-stream")
        else:
            self.answer_json(answer)

    def _content(self, resource: Resource, parts: list[str]) -> list[str] | bytes:
        ds, _ = read_dataset(self.store.read_dicom(resource))
        try:
            return dicom_content.content_children(ds, parts)
        except dicom_content.NoSuchContent:
            raise NoAnswer() from None


class ProtectedHandler(OrthancHandler):
    """``/patients/{id}/protected``; an unknown patient is Orthanc's 400 "Parameter out of range"."""

    index: Index

    async def get(self, public_id: str) -> None:
        resource = await self._patient(public_id)
        protected = await self.run(self.index.is_protected, resource.internal_id)
        self.answer_text("1" if protected else "0")

    async def put(self, public_id: str) -> None:
        resource = await self._patient(public_id)
        await self.run(self.index.set_protected, resource.internal_id, self.boolean_body())
        self.answer_empty_text()

    async def _patient(self, public_id: str) -> Resource:
        try:
            return await self.resource(Level.PATIENT, public_id)
        except NoAnswer:
            raise OrthancError(ErrorCode.PARAMETER_OUT_OF_RANGE) from None


def paths() -> list[tuple[str, type]]:
    return [
        (rf"/{LEVELS}", ListHandler),
        (rf"/{LEVELS}/{ID}", ResourceHandler),
        (rf"/{LEVELS}/{ID}/(patient|study|series|studies|instances)", RelativesHandler),
        (rf"/{LEVELS}/{ID}/statistics", StatisticsHandler),
        (rf"/instances/{ID}/file", InstanceFileHandler),
        (rf"/instances/{ID}/(tags|simplified-tags)", InstanceTagsHandler),
        (rf"/instances/{ID}/header", InstanceHeaderHandler),
        (rf"/instances/{ID}/content(?:/(.*))?", InstanceContentHandler),
        (rf"/patients/{ID}/protected", ProtectedHandler),
    ]


def routes(*, area: StorageArea, config: Configuration, files: InstanceFiles, index: Index,
           requested_tags: RequestedTags, store: Store, upload_chunks: ChunkStore,
           views: ResourceViews) -> list[Route]:
    """The routes, each handler given the services it uses."""
    return with_services(paths(), area=area, config=config, files=files, index=index, requested_tags=requested_tags,
                         store=store, upload_chunks=upload_chunks, views=views)
