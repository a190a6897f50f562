"""``multipart/form-data`` uploads (Orthanc Explorer's upload button, jQuery File Upload),
read as Orthanc's ``MultipartStreamReader`` reads them.

Each part is handed on as if it were the body of its own POST.  A part may also
be a chunk of a larger file (``X-File-Name`` + ``X-File-Size`` headers, the
``maxChunkSize`` option of jQuery File Upload): :class:`ChunkStore` puts the chunks
of each file name together and yields the file once its size is reached.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterator, Mapping

from server.errors import ErrorCode, OrthancError

FORM_DATA = "multipart/form-data"

#: How many files being uploaded in chunks are kept at once (the oldest are dropped).
CHUNKED_FILES = 10


def form_boundary(content_type: str) -> str | None:
    """The boundary of a ``multipart/form-data`` Content-Type, or None for any other body.

    Orthanc splits on ``;`` and ``=`` and strips spaces everywhere
    (``multipart/form-data ; boundary = x`` is fine); quotes around the boundary go."""
    tokens = content_type.split(";")
    if tokens[0].strip().lower() != FORM_DATA:
        return None
    boundary = None
    for token in tokens[1:]:
        items = token.split("=")
        if len(items) == 2 and items[0].strip().lower() == "boundary":
            value = items[1].strip()
            if len(value) >= 2 and value[0] == value[-1] == '"':
                value = value[1:-1]
            boundary = value or None
    return boundary


def split_parts(body: bytes, boundary: str) -> Iterator[tuple[dict[str, str], bytes]]:
    """(headers with lower-case names, content) of each part, one after the other (a
    malformed part raises only once the parts before it are handled); what precedes
    the first boundary is ignored, and so is a last part whose closing boundary is missing."""
    marker = b"--" + boundary.encode("latin-1")
    start = body.find(marker)
    if start < 0:
        return
    current = start
    while len(body) - current >= len(marker) + 2:
        opening = body[current:current + len(marker) + 2]
        if opening == marker + b"--":
            break
        if opening != marker + b"\r\n":
            raise OrthancError(ErrorCode.NETWORK_PROTOCOL,
                               "Garbage between two items in a multipart stream")
        head_start = current + len(marker) + 2
        head_end = body.find(b"\r\n\r\n", head_start)
        if head_end < 0:
            break
        headers = _headers(body[head_start:head_end])
        content_start = head_end + 4
        length = _content_length(headers)
        if length is None:
            following = body.find(marker, content_start)
            if following < 0:
                break
            if following - content_start <= 1:
                raise OrthancError(ErrorCode.NETWORK_PROTOCOL)
            length = following - content_start - 2
        end = content_start + length
        if end + 2 > len(body):
            break
        if body[end:end + 2] != b"\r\n":
            raise OrthancError(ErrorCode.NETWORK_PROTOCOL, "No endline at the end of a part")
        yield headers, body[content_start:end]
        current = end + 2


def _headers(block: bytes) -> dict[str, str]:
    headers = {}
    for line in block.decode("latin-1").split("\n"):
        key, separator, value = line.partition(":")
        if separator:
            headers[key.strip().lower()] = value.strip()
    return headers


def _content_length(headers: Mapping[str, str]) -> int | None:
    text = headers.get("content-length")
    if text is None:
        return None
    try:
        value = int(text)
    except ValueError:
        raise OrthancError(ErrorCode.PARAMETER_OUT_OF_RANGE) from None
    if value < 0:
        raise OrthancError(ErrorCode.PARAMETER_OUT_OF_RANGE)
    return value


def chunk_target(headers: Mapping[str, str]) -> tuple[str, int] | None:
    """(file name, total size) when the request carries a chunk of a file, else None.

    ``headers`` are the request's (Tornado's case-insensitive ones)."""
    requested_with = headers.get("X-Requested-With")
    if requested_with is not None and requested_with != "XMLHttpRequest":
        raise OrthancError(ErrorCode.NETWORK_PROTOCOL, 'HTTP header "X-Requested-With" should be '
                           '"XMLHttpRequest" in multipart uploads')
    name, size = headers.get("X-File-Name"), headers.get("X-File-Size")
    if name is None and size is None:
        return None
    if name is None:
        raise OrthancError(ErrorCode.NETWORK_PROTOCOL, 'HTTP header "X-File-Name" is missing')
    if size is None:
        raise OrthancError(ErrorCode.NETWORK_PROTOCOL, 'HTTP header "X-File-Size" is missing')
    try:
        total = int(size)
    except ValueError:
        raise OrthancError(ErrorCode.NETWORK_PROTOCOL,
                           'HTTP header "X-File-Size" is not an integer') from None
    if total < 0:
        raise OrthancError(ErrorCode.NETWORK_PROTOCOL, 'HTTP header "X-File-Size" has negative value')
    return name, total


class ChunkStore:
    """The files being uploaded in chunks, by name; shared by every request."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._files: OrderedDict[str, list[bytes]] = OrderedDict()
        self._discarded: set[str] = set()

    def add(self, name: str, total: int, chunk: bytes) -> bytes | None:
        """Add a chunk; the whole file once it has ``total`` bytes, else None.

        A file dropped to make room fails on its next chunk; one that grows past its
        announced size is forgotten."""
        with self._lock:
            if name in self._discarded:
                self._discarded.discard(name)
                raise OrthancError(ErrorCode.NETWORK_PROTOCOL, "Error in the multipart form upload")
            if name not in self._files:
                if len(self._files) >= CHUNKED_FILES:
                    oldest, _ = self._files.popitem(last=False)
                    self._discarded.add(oldest)
                self._files[name] = []
            chunks = self._files[name]
            chunks.append(chunk)
            size = sum(map(len, chunks))
            if size > total:
                del self._files[name]
            elif size == total:
                del self._files[name]
                return b"".join(chunks)
            return None
