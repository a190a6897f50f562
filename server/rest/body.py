"""Request bodies received chunk by chunk: bounded, inflated as they come, spooled to disk.

Handlers are ``stream_request_body``: authentication and the request filters run
on the headers alone (:meth:`server.rest.base.OrthancHandler.prepare`), so a
refused request costs nothing but its headers.  The body of an accepted request
then goes through :class:`RequestBody`:

* ``MaximumRequestBodySizeMB`` (Orthanc 1.12.11) caps what the client sends;
* ``Content-Encoding: gzip/deflate`` is inflated chunk by chunk and the inflated
  size is capped too (``MaximumFileSizeInArchiveMB``, as Orthanc caps gzip), so
  a small bomb never inflates past the cap in memory;
* uploads (DICOM files, ZIP archives) are spooled to an unlinked temporary file
  in the storage area past :data:`SPOOL_THRESHOLD`: a 1 GB upload never sits in
  memory.  Other bodies (JSON, text) are kept in memory up to
  :data:`MEMORY_BODY_LIMIT`: past it they are refused rather than parsed.
"""

from __future__ import annotations

import io
import json
import tempfile
import zlib
from pathlib import Path
from typing import IO, Any

from server.errors import ErrorCode, OrthancError

MEGABYTE = 1024 * 1024
#: Uploads larger than this go to disk.
SPOOL_THRESHOLD = 8 * MEGABYTE
#: Bodies that handlers parse in memory (JSON, text): never this large legitimately.
MEMORY_BODY_LIMIT = 256 * MEGABYTE
#: Largest piece of inflated data produced at once.
INFLATE_STEP = MEGABYTE


class BodyTooLarge(OrthancError):
    """Orthanc's 413 (``MaximumRequestBodySizeMB``)."""

    def __init__(self, details: str) -> None:
        super().__init__(ErrorCode.BAD_REQUEST, details, http_status=413)


class RawBodyTooLarge(BodyTooLarge):
    """Past ``MaximumRequestBodySizeMB`` as sent: the rest of the body is never read."""


def parse_json(raw: bytes, error: Exception) -> Any:
    """The one JSON-body parser of the REST layer.  ``error`` is what the route answers for a
    body that is not JSON (an empty one included): Orthanc's routes answer differently."""
    try:
        return json.loads(raw or b"")
    except (ValueError, UnicodeDecodeError):
        raise error from None


def limit_from_megabytes(value: object) -> int | None:
    """Orthanc's ``...MB`` size options: 0 means no limit."""
    megabytes = int(value)  # type: ignore[call-overload]
    return megabytes * MEGABYTE if megabytes > 0 else None


def _decompressor(encoding: str) -> zlib._Decompress | None:
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        return None
    if encoding == "gzip":
        return zlib.decompressobj(16 + zlib.MAX_WBITS)
    if encoding == "deflate":
        return zlib.decompressobj(zlib.MAX_WBITS)
    raise OrthancError(ErrorCode.BAD_REQUEST, f"Unsupported Content-Encoding: {encoding}")


class RequestBody:
    """Receives the raw chunks of one body; :meth:`feed` raises :class:`OrthancError` to refuse it."""

    def __init__(self, raw_limit: int | None, inflated_limit: int | None, encoding: str,
                 spool_dir: Path | None, declared: int | None = None) -> None:
        """``declared`` is the size the client announced (``Content-Length``), if any: an upload
        that cannot grow past :data:`SPOOL_THRESHOLD` (that size, not compressed) is kept in
        memory from the start, without a ``SpooledTemporaryFile`` around it."""
        self.raw_limit = raw_limit
        self.inflated_limit = inflated_limit
        self.received = 0
        self.size = 0
        self._inflater = _decompressor(encoding)
        self._spooled = spool_dir is not None
        small = declared is not None and declared <= SPOOL_THRESHOLD and self._inflater is None
        self._file: IO[bytes] = (
            tempfile.SpooledTemporaryFile(SPOOL_THRESHOLD, dir=spool_dir) if spool_dir is not None and not small
            else io.BytesIO())

    @property
    def on_disk(self) -> bool:
        """True once the body was written to disk (writes may then block: run them off the loop)."""
        return bool(getattr(self._file, "_rolled", False))

    def check_declared(self, content_length: str | None) -> None:
        """Refuse at once a body whose ``Content-Length`` is already past the cap."""
        if content_length and content_length.strip().isdigit():
            self._count_raw(int(content_length))

    def _count_raw(self, size: int) -> None:
        if self.raw_limit is not None and size > self.raw_limit:
            raise RawBodyTooLarge(f"The request body exceeds MaximumRequestBodySizeMB "
                               f"({self.raw_limit // MEGABYTE} MB)")

    def feed(self, chunk: bytes) -> None:
        self.received += len(chunk)
        self._count_raw(self.received)
        if self._inflater is None:
            self._write(chunk)
            return
        data = chunk
        while data:
            try:
                piece = self._inflater.decompress(data, INFLATE_STEP)
            except zlib.error as e:
                raise OrthancError(ErrorCode.BAD_REQUEST, f"Cannot inflate the request body: {e}") from None
            self._write(piece)
            data = self._inflater.unconsumed_tail
            if self._inflater.eof:
                break

    def _write(self, data: bytes) -> None:
        self.size += len(data)
        limit = self.inflated_limit if self._inflater is not None else None
        if limit is not None and self.size > limit:
            raise BodyTooLarge(f"The inflated request body exceeds MaximumFileSizeInArchiveMB "
                               f"({limit // MEGABYTE} MB)")
        if not self._spooled and self.size > MEMORY_BODY_LIMIT:
            raise BodyTooLarge(f"The request body exceeds {MEMORY_BODY_LIMIT // MEGABYTE} MB")
        self._file.write(data)

    def finish(self) -> None:
        """The body is complete: a compressed one must have ended properly."""
        if self._inflater is not None and not self._inflater.eof and self.received:
            raise OrthancError(ErrorCode.BAD_REQUEST, "Truncated compressed request body")
        self._file.seek(0)

    def value(self) -> bytes:
        """The whole body in memory (for the handlers that parse it)."""
        if isinstance(self._file, io.BytesIO):
            return self._file.getvalue()
        self._file.seek(0)
        data = self._file.read()
        self._file.seek(0)
        return data

    @property
    def file(self) -> IO[bytes]:
        """The body as a file, positioned at its start (spooled uploads)."""
        return self._file

    def close(self) -> None:
        self._file.close()
