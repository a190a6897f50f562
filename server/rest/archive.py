"""ZIP archives and DICOM media of resources (Orthanc 1.10.1's ``OrthancRestArchive``).

``GET|POST /{patients|studies|series}/{id}/archive|media`` and ``POST
/tools/create-archive|create-media|create-media-extended`` create an ``Archive``
or ``Media`` job.  Asynchronous calls answer ``{ID, Path}`` and the ZIP becomes
the job's ``archive`` output.  Synchronous calls (every GET, and POST by
default) answer the ZIP itself: with ``SynchronousZipStream`` it is streamed
while the job writes it (chunked, no Content-Length, not gzip-compressed, as
Orthanc's stream), otherwise it is sent with a Content-Length once finished
(never gzip-compressed: the ZIP is deflated already).

The job of a synchronous call appears in ``/jobs`` like any other and, as every
synchronous job of Isengard, runs to its end if its caller disconnects; its ZIP
is then deleted, since nobody can download it.
"""

from __future__ import annotations

import asyncio
from typing import IO, TYPE_CHECKING, Any

import tornado.iostream

from server.dicom.transcode import parse_transcode
from server.errors import ErrorCode, OrthancError
from server.jobs.archive import ZIP_MIME, ArchiveJob, ArchiveRequest, archive_job
from server.jobs.job import JobState
from server.rest import requests
from server.rest.base import OrthancHandler, Route, with_services
from server.rest.compression import CompressionTransform
from server.rest.requests import JobOptions

if TYPE_CHECKING:
    from server.config import Configuration
    from server.jobs.archive import ArchiveServices
    from server.jobs.engine import JobsEngine

#: Bytes read from the growing ZIP per write to the client.
CHUNK_SIZE = 1024 * 1024
#: Download name of the ``/tools/create-*`` ZIPs.
TOOLS_FILENAME = "Archive.zip"


def _read_at(stream: IO[bytes], offset: int, size: int) -> bytes:
    stream.seek(offset)
    return stream.read(size)


class _ArchiveHandler(OrthancHandler):
    """Submits an archive job and answers it, synchronously or not."""

    archive: ArchiveServices
    config: Configuration
    jobs: JobsEngine

    async def produce(self, request: ArchiveRequest, options: JobOptions, filename: str) -> None:
        job = archive_job(self.archive, request)
        engine = self.jobs
        priority = options.priority
        if not options.synchronous:
            job_id = await self.run(_plan_and_submit, engine, job, priority, options.user_data)
            self.answer_json({"ID": job_id, "Path": f"/jobs/{job_id}"})
            return
        await self.run(job.plan)
        job.asynchronous = False
        streaming = bool(self.config["SynchronousZipStream"])
        loop = asyncio.get_running_loop()
        grown = asyncio.Event()
        if streaming:
            job.on_bytes = lambda _size: loop.call_soon_threadsafe(grown.set)
        job_id = await self.run(engine.submit, job, priority, options.user_data, True)
        done = asyncio.ensure_future(engine.wait(job_id))
        try:
            if streaming:
                sent = await self._stream(job, done, grown, filename)
            else:
                sent = await self._send_finished(job, done, filename)
        finally:
            job.on_bytes = None
            await done
            await self.run(job.discard)
        if sent:
            self.finish()

    async def _stream(self, job: ArchiveJob, done: asyncio.Future, grown: asyncio.Event, filename: str) -> bool:
        """Send the bytes of the ZIP as soon as the job has written them for good; True if all were."""
        try:
            sent = await self._follow(job, done, grown, filename)
        except tornado.iostream.StreamClosedError:
            return False
        record = await done
        if record.state is JobState.SUCCESS and sent == job.archive_size:
            return True
        if sent == 0:
            raise OrthancError(record.error_code, record.error_details or None)
        self.request.connection.close()
        return False

    async def _follow(self, job: ArchiveJob, done: asyncio.Future, grown: asyncio.Event, filename: str) -> int:
        """Copy the final part of the growing ZIP to the client until the job ends; the bytes sent."""
        sent = 0
        reader: IO[bytes] | None = None
        try:
            while True:
                grown.clear()
                finished = done.done()
                available, path = job.archive_size, job.file
                if available > sent and path is not None:
                    if reader is None:
                        reader = await self.run(open, path, "rb")
                        self._start_stream(filename)
                    while sent < available:
                        chunk = await self.run(_read_at, reader, sent, min(CHUNK_SIZE, available - sent))
                        self.write(chunk)
                        await self.flush()
                        sent += len(chunk)
                if finished:
                    return sent
                waiter = asyncio.ensure_future(grown.wait())
                await asyncio.wait({done, waiter}, return_when=asyncio.FIRST_COMPLETED)
                waiter.cancel()
        except OSError:
            return sent
        finally:
            if reader is not None:
                reader.close()

    def _uncompressed(self) -> None:
        """No gzip for a ZIP (already deflated): Orthanc does not compress a streamed ZIP, and a
        finished one keeps its Content-Length (Orthanc gzips it in memory, which we do not)."""
        self._transforms = [t for t in self._transforms if not isinstance(t, CompressionTransform)]

    def _start_stream(self, filename: str) -> None:
        self._uncompressed()
        self.set_status(200)
        self.set_header("Content-Type", ZIP_MIME)
        self.set_content_filename(filename)
        self.set_header("Connection", "close")

    async def _send_finished(self, job: ArchiveJob, done: asyncio.Future, filename: str) -> bool:
        """Send the finished ZIP with its length; True if all of it was sent."""
        record = await done
        if record.state is not JobState.SUCCESS:
            raise OrthancError(record.error_code, record.error_details or None)
        assert job.file is not None
        self._uncompressed()
        self.set_header("Content-Type", ZIP_MIME)
        self.set_content_filename(filename)
        self.set_header("Content-Length", str(job.archive_size))
        reader = await self.run(open, job.file, "rb")
        await self.run(job.discard)  # the open reader keeps the data: no file left once the client has it
        try:
            while chunk := await self.run(reader.read, CHUNK_SIZE):
                self.write(chunk)
                await self.flush()
        except tornado.iostream.StreamClosedError:
            return False
        finally:
            reader.close()
        return True


class ResourceArchiveHandler(_ArchiveHandler):
    """``/{patients|studies|series}/{id}/archive|media``: the ZIP of one resource."""

    async def get(self, level: str, public_id: str, kind: str) -> None:
        media = kind == "media"
        transcode = self.get_argument("transcode", None)
        request = ArchiveRequest((public_id,), media, None if transcode is None else parse_transcode(transcode),
                                 media and "extended" in self.request.arguments,
                                 lossy_quality=None if transcode is None else self.lossy_quality_argument(),
                                 patient_from_study=level != "patients")
        await self.produce(request, JobOptions(), self.filename_argument(f"{public_id}.zip"))

    async def post(self, level: str, public_id: str, kind: str) -> None:
        body = self.json_body(OrthancError(ErrorCode.BAD_FILE_FORMAT))
        options = requests.job_options(body)
        request = requests.archive_request(body, [public_id], kind == "media", False,
                                           utf8=bool(self.config["ZipUseUtf8"]),
                                           patient_from_study=level != "patients")
        await self.produce(request, options, f"{public_id}.zip" if request.filename is None else request.filename)


class CreateArchiveHandler(_ArchiveHandler):
    """``/tools/create-archive|create-media|create-media-extended`` of a list of resources: a
    JSON body (POST), or (GET, Orthanc 1.12.2) ``resources`` (comma-separated identifiers),
    ``transcode``, ``lossy-quality`` and ``filename``, synchronously."""

    async def get(self, kind: str) -> None:
        listed = self.get_argument("resources", None)
        if listed is None:
            raise OrthancError(ErrorCode.BAD_REQUEST, "Missing resources argument")
        transcode = self.get_argument("transcode", None)
        request = ArchiveRequest(tuple(sorted(set(listed.split(",")))), kind != "archive",
                                 None if transcode is None else parse_transcode(transcode),
                                 kind == "media-extended",
                                 lossy_quality=None if transcode is None else self.lossy_quality_argument())
        await self.produce(request, JobOptions(), self.filename_argument(TOOLS_FILENAME))

    async def post(self, kind: str) -> None:
        body = self.json_body(OrthancError(ErrorCode.BAD_FILE_FORMAT,
                                           "Expected a list of resources to archive in the body"))
        resources = requests.archive_resources(body)
        options = requests.job_options(body)
        request = requests.archive_request(body, resources, kind != "archive", kind == "media-extended",
                                           utf8=bool(self.config["ZipUseUtf8"]))
        await self.produce(request, options, TOOLS_FILENAME if request.filename is None else request.filename)


def _plan_and_submit(engine: JobsEngine, job: ArchiveJob, priority: int, user_data: Any) -> str:
    """One trip to the worker threads instead of two (each costs a small job ~0.2 ms)."""
    job.plan()
    return engine.submit(job, priority, user_data)


def paths() -> list[tuple[str, type]]:
    return [
        (r"/(patients|studies|series)/([^/]+)/(archive|media)", ResourceArchiveHandler),
        (r"/tools/create-(archive|media|media-extended)", CreateArchiveHandler),
    ]


def routes(*, archive: ArchiveServices, config: Configuration, jobs: JobsEngine) -> list[Route]:
    """The routes, each handler given the services it uses."""
    return with_services(paths(), archive=archive, config=config, jobs=jobs)
