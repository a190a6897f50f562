"""gzip and deflate answers when ``HttpCompressionEnabled`` and the client asks for them.

Tornado's own transform only speaks gzip; Orthanc also answers ``deflate``.
"""

from __future__ import annotations

import zlib

import tornado.httputil
import tornado.web

#: Below this size compression costs more than it saves.
MIN_LENGTH = 1024


class CompressionTransform(tornado.web.OutputTransform):
    def __init__(self, request: tornado.httputil.HTTPServerRequest) -> None:
        accepted = request.headers.get("Accept-Encoding", "")
        names = {part.split(";")[0].strip().lower() for part in accepted.split(",")}
        self._encoding = "gzip" if "gzip" in names else "deflate" if "deflate" in names else None
        self._active = False
        self._compressor: zlib._Compress | None = None

    def transform_first_chunk(self, status_code: int, headers: tornado.httputil.HTTPHeaders,
                              chunk: bytes, finishing: bool) -> tuple[int, tornado.httputil.HTTPHeaders, bytes]:
        self._active = (self._encoding is not None and status_code == 200
                        and "Content-Encoding" not in headers
                        and (not finishing or len(chunk) >= MIN_LENGTH))
        if not self._active:
            return status_code, headers, chunk
        headers["Content-Encoding"] = self._encoding or ""
        headers.add("Vary", "Accept-Encoding")
        if self._encoding == "gzip":
            self._compressor = zlib.compressobj(6, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
        else:
            self._compressor = zlib.compressobj(6, zlib.DEFLATED, zlib.MAX_WBITS)
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

