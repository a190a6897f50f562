"""gzip and deflate answers when ``HttpCompressionEnabled`` and the client asks for them.

Tornado's own transform only speaks gzip; Orthanc also answers ``deflate``.

zlib costs about 25 µs per KiB (measured at level 6 on JSON answers), so compressing a
large answer on the event loop would stall every other request: answers of
:data:`OFF_LOOP_MIN_LENGTH` bytes or more are compressed in a worker thread by
:meth:`server.rest.base.OrthancHandler.finish`, and the transform below only compresses
the small ones (well under a millisecond) and the chunks of streamed answers.

Unlike Orthanc, which gzips whatever it answers, an answer that is compressed already goes
as it is: one of :data:`COMPRESSED_TYPES` (a PNG or JPEG rendering, a JPEG, JPEG-LS or
JPEG 2000 frame, a ZIP) at once, and for other large answers (a DICOM file of compressed
pixels) a sample is deflated first, and when that saves less than :data:`WORTH_IT` the whole
answer is sent uncompressed, sparing the CPU of both sides (zlib spends ~35 µs per KiB on
data it cannot shrink).

The large answers are compressed by libdeflate (imagecodecs) rather than zlib: the same
formats at the same level, about 4x faster (a 512 KiB raw CT frame: 5 ms instead of 23 ms)
and a little smaller; only the compressed bytes differ from Orthanc's, not what they inflate to.
"""

from __future__ import annotations

import zlib

import imagecodecs
import tornado.httputil
import tornado.web

#: Below this size compression costs more than it saves.
MIN_LENGTH = 1024
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


def compressed_already(content_type: str | None) -> bool:
    return (content_type or "").split(";")[0].strip().lower() in COMPRESSED_TYPES


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
                        and (not finishing or len(chunk) >= MIN_LENGTH)  # most answers: small, at once
                        and "Content-Encoding" not in headers
                        and not compressed_already(headers.get("Content-Type")))
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
