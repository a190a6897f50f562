"""gzip and deflate answers when ``HttpCompressionEnabled`` and the client asks for them.

Tornado's own transform only speaks gzip; Orthanc also answers ``deflate``.

Since Orthanc 1.12.2 (ApiVersion 22) ``HttpCompressionEnabled`` is off unless configured (on
a LAN, compressing costs more CPU and latency than it saves: a fifth of the server's CPU for
a 2 KB ``/system``), and when on, only the types of :data:`COMPRESSIBLE_TYPES` are
compressed (JSON, XML, HTML, text...; never DICOM), and never a whole answer under 2 KiB.
Before, as at the older levels here (``ISENGARD_ORTHANC_LEVEL``), it was on by default and
every type was compressed but those below.

zlib costs about 25 µs per KiB (measured at level 6 on JSON answers), so compressing a
large answer on the event loop would stall every other request: answers of
:data:`OFF_LOOP_MIN_LENGTH` bytes or more are compressed in a worker thread by
:meth:`server.rest.base.OrthancHandler.finish`, and the transform below only compresses
the small ones (well under a millisecond) and the chunks of streamed answers.

Unlike Orthanc before 1.12.2, which gzipped whatever it answered, an answer that is
compressed already goes as it is: one of :data:`COMPRESSED_TYPES` (a PNG or JPEG rendering,
a JPEG, JPEG-LS or JPEG 2000 frame, a ZIP) at once, and for other large answers (a DICOM file
of compressed pixels) a sample is deflated first, and when that saves less than
:data:`WORTH_IT` the whole answer is sent uncompressed, sparing the CPU of both sides (zlib
spends ~35 µs per KiB on data it cannot shrink).

The large answers are compressed by libdeflate (imagecodecs) rather than zlib: the same
formats at the same level, about 4x faster (a 512 KiB raw CT frame: 5 ms instead of 23 ms)
and a little smaller; only the compressed bytes differ from Orthanc's, not what they inflate to.
"""

from __future__ import annotations

import zlib

import imagecodecs
import tornado.httputil
import tornado.web

import server

#: Orthanc 1.12.2: compression off by default, only compressible types, not under 2 KiB.
API_COMPRESSIBLE_ONLY = 22
#: Below this size compression costs more than it saves (Orthanc 1.12.2's threshold; none
#: before, where Isengard took 1 KiB).
MIN_LENGTH = 2048
MIN_LENGTH_BEFORE_22 = 1024
#: What Orthanc 1.12.2 compresses: the types whose name holds one of these (its
#: ``SystemToolbox::IsContentCompressible``).
COMPRESSIBLE_TYPES = ("application/json", "application/xml", "text/xml", "application/dicom+json",
                      "application/dicom+xml", "application/pdf", "text/css", "text/html",
                      "application/javascript", "text/plain", "application/wasm",
                      "image/x-portable-arbitrarymap")
#: From this size a whole answer is compressed in a worker thread (inline it would hold the
#: loop about 0.4 ms at this size, more than a hop to the thread pool costs).
OFF_LOOP_MIN_LENGTH = 16 * 1024
#: What is deflated to tell whether the rest will shrink.
SAMPLE_LENGTH = 32 * 1024
#: Compress only when the sample shrinks to less than this fraction of its size.
WORTH_IT = 0.9
#: Types that are compressed already: sent as they are, without deflating a sample first.
COMPRESSED_TYPES = frozenset({"image/png", "image/jpeg", "image/jp2", "image/jls", "application/zip",
                              "application/gzip"})


def enabled(configured: bool | None) -> bool:
    """``HttpCompressionEnabled`` as configured; unset, off from Orthanc 1.12.2, on before."""
    return server.ORTHANC_API_VERSION < API_COMPRESSIBLE_ONLY if configured is None else bool(configured)


def compressible(content_type: str | None) -> bool:
    """Whether an answer of this type may be compressed at all."""
    if server.ORTHANC_API_VERSION >= API_COMPRESSIBLE_ONLY:
        kind = (content_type or "").lower()
        return any(name in kind for name in COMPRESSIBLE_TYPES)
    return (content_type or "").split(";")[0].strip().lower() not in COMPRESSED_TYPES


def min_length() -> int:
    """The smallest whole answer that is compressed."""
    return MIN_LENGTH if server.ORTHANC_API_VERSION >= API_COMPRESSIBLE_ONLY else MIN_LENGTH_BEFORE_22


def accepted_encoding(request: tornado.httputil.HTTPServerRequest) -> str | None:
    """``gzip`` or ``deflate`` (preferred in that order) if the client accepts it, else None."""
    accepted = request.headers.get("Accept-Encoding", "")
    names = {part.split(";")[0].strip().lower() for part in accepted.split(",")}
    return "gzip" if "gzip" in names else "deflate" if "deflate" in names else None


def _compressor(encoding: str) -> zlib._Compress:
    window = 16 + zlib.MAX_WBITS if encoding == "gzip" else zlib.MAX_WBITS
    return zlib.compressobj(6, zlib.DEFLATED, window)


def compress(data: bytes, encoding: str) -> bytes | None:
    """A whole answer in ``encoding``, or None when it would not shrink (blocking: called in a
    worker thread)."""
    if len(data) > 2 * SAMPLE_LENGTH:
        start = len(data) // 2 - SAMPLE_LENGTH // 2  # past the headers of a file, into its body
        sample = data[start:start + SAMPLE_LENGTH]
        if len(zlib.compress(sample, 1)) > WORTH_IT * len(sample):
            return None
    if encoding == "gzip":
        return bytes(imagecodecs.gzip_encode(data, level=6))
    return bytes(imagecodecs.deflate_encode(data, level=6))


class CompressionTransform(tornado.web.OutputTransform):
    def __init__(self, request: tornado.httputil.HTTPServerRequest) -> None:
        self.encoding = accepted_encoding(request)
        self._active = False
        self._compressor: zlib._Compress | None = None

    def transform_first_chunk(self, status_code: int, headers: tornado.httputil.HTTPHeaders,
                              chunk: bytes, finishing: bool) -> tuple[int, tornado.httputil.HTTPHeaders, bytes]:
        self._active = (self.encoding is not None and status_code == 200
                        and (not finishing or len(chunk) >= min_length())  # most answers: small, at once
                        and "Content-Encoding" not in headers
                        and compressible(headers.get("Content-Type")))
        if not self._active or self.encoding is None:
            return status_code, headers, chunk
        headers["Content-Encoding"] = self.encoding
        headers.add("Vary", "Accept-Encoding")
        self._compressor = _compressor(self.encoding)
        if finishing:
            data = self.transform_chunk(chunk, True)
            headers["Content-Length"] = str(len(data))
            return status_code, headers, data
        headers.pop("Content-Length", None)
        return status_code, headers, self.transform_chunk(chunk, False)

    def transform_chunk(self, chunk: bytes, finishing: bool) -> bytes:
        if not self._active or self._compressor is None:
            return chunk
        data = self._compressor.compress(chunk)
        if finishing:
            data += self._compressor.flush()
        else:
            data += self._compressor.flush(zlib.Z_SYNC_FLUSH)
        return data
