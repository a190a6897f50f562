"""What every REST handler shares: Orthanc's answer formats, errors, auth, threads.

Handlers parse, validate, call a service in a worker thread and format; they
hold no business logic.  Errors are :class:`server.errors.OrthancError` and
become Orthanc's JSON error body; anything else is logged and answered as an
internal error, never as a stack trace.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import io
import ipaddress
import json
import logging
import re
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, TypeVar

import orjson
import tornado.httputil
import tornado.web
from tornado.ioloop import IOLoop

import server
from server.clock import http_date
from server.dicom.main_tags import Level
from server.errors import ErrorCode, OrthancError, describe
from server.rest import compression
from server.rest.body import RawBodyTooLarge, RequestBody, limit_from_megabytes, parse_json
from server.rest.workers import ContextExecutor
from server.rest.xml import json_to_xml, wants_xml
from server.storage.index import Resource
from server.store import Origin

if TYPE_CHECKING:
    from server.config import Configuration
    from server.metrics import Metrics
    from server.storage.index import Index

log = logging.getLogger("isengard.http")
T = TypeVar("T")

_METHODS = ("GET", "POST", "PUT", "DELETE")
#: Bodies of refused requests up to this size are read and dropped (see ``refuse``): clients
#: that answer a 401 challenge on the same connection (httplib2) need it, and it costs no memory.
DRAINED_BODY_LIMIT = 64 * 1024 * 1024


def dumps(value: Any) -> bytes:
    """Indented JSON with sorted keys, as Orthanc answers (orjson: 30x faster than json here)."""
    return orjson.dumps(value, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"


def _keep_body_as_is() -> None:
    """Replaces ``HTTPServerRequest._parse_body``: the raw body stays in ``request.body``."""


#: A route: its pattern, its handler, and the services the handler's ``initialize`` receives.
Route = tuple[str, type, dict[str, Any]]


def with_services(paths: list[tuple[str, type]], **services: Any) -> list[Route]:
    """The routes of a module, each handler given ``services`` (as attributes of the same names)."""
    return [(pattern, handler, services) for pattern, handler in paths]


def download_filename(name: str) -> str:
    """A client-given name for ``Content-Disposition`` without the quotes and line breaks that
    could end the header or add one (Orthanc 1.12.11's ``SanitizeFileName``)."""
    return re.sub(r'[\r\n"]', "", name)


@dataclass(frozen=True)
class RequestPolicy:
    """How the handlers of one application treat requests: from HTTP clients, or in-process
    for a script (Lua's ``RestApiGet``, Python's ``orthanc.RestApiGet``...), as Orthanc does."""

    #: What in-process uploads are stored as; None over HTTP (``RestApi``, the client's address and user).
    origin: Origin | None = None
    #: ``RemoteAccessAllowed``, ``AuthenticationEnabled`` and the scripts' tokens are checked.
    authentication: bool = True
    #: The scripts' ``IncomingHttpRequestFilter`` is asked.
    filters: bool = True
    #: The request counts in the HTTP metrics.
    metrics: bool = True

    @property
    def in_process(self) -> bool:
        return self.origin is not None

    def origin_of(self, remote_ip: str, username: str) -> Origin:
        """The origin of what the request stores."""
        if self.origin is not None:
            return self.origin
        return Origin("RestApi", remote_ip=remote_ip, http_username=username)


#: Requests from HTTP clients.
HTTP_POLICY = RequestPolicy()


def in_process_policy(origin: Origin) -> RequestPolicy:
    """In-process requests: no authentication, no filters, no metrics, stored with ``origin``."""
    return RequestPolicy(origin, authentication=False, filters=False, metrics=False)


@dataclass(frozen=True)
class HttpServices:
    """What every handler uses, whatever its route."""

    policy: RequestPolicy
    config: Configuration
    #: For :meth:`OrthancHandler.resource`.
    index: Index
    #: Where handlers run their blocking work.
    executor: Executor
    #: Where large bodies are spooled.
    spool_dir: Path
    metrics: Metrics
    #: The scripts' ``IncomingHttpRequestFilter``: True when the request may go on.
    filters: Callable[[OrthancHandler], Awaitable[bool]]
    #: True for an ``Authorization`` value the Python script issued as a token.
    accepts_token: Callable[[str], bool]


def _keeps_alive(request: tornado.httputil.HTTPServerRequest) -> bool:
    """Whether the client asked to keep the connection (HTTP/1.1 unless it says close)."""
    connection = request.headers.get("Connection", "").lower()
    if request.version == "HTTP/1.1":
        return connection != "close"
    return connection == "keep-alive"


#: A request with none of these headers has no body (RFC 9112, section 6.3).
_BODY_HEADERS = ("Content-Length", "Transfer-Encoding", "Content-Encoding")


def _declared_length(headers: tornado.httputil.HTTPHeaders) -> int | None:
    """The body's size as ``Content-Length`` says, None without one (or with a chunked body,
    whose ``Content-Length`` Tornado ignores)."""
    length = headers.get("Content-Length")
    if length is None or "Transfer-Encoding" in headers:
        return None
    length = length.strip()
    return int(length) if length.isdigit() else None


def _buffered(connection: object) -> int:
    """The bytes already read from the client past the headers (Tornado's read buffer)."""
    stream = getattr(connection, "stream", None)
    return getattr(stream, "_read_buffer_size", 0)


@functools.lru_cache(maxsize=256)
def _is_loopback(address: str) -> bool:
    """Whether a client's address is a loopback one; remembered (parsed at each request before)."""
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


class _Forbidden(Exception):
    """An ``IncomingHttpRequestFilter`` refused the request: Orthanc's empty 403."""


class NoAnswer(Exception):
    """The handler produced no answer: Orthanc's 404 (GET/PUT/DELETE) or 400 (POST), empty."""


@tornado.web.stream_request_body
class OrthancHandler(tornado.web.RequestHandler):
    """Base class: subclasses implement ``get``/``post``/``put``/``delete`` as coroutines.

    Every handler streams its body (:mod:`server.rest.body`): :meth:`prepare` decides
    from the headers alone, then the body arrives chunk by chunk and is in
    ``self.request.body`` (or :attr:`body_file` for :attr:`spooled_body` handlers)
    when the method runs.
    """

    http: HttpServices
    #: True for handlers that read their (possibly huge) body from :attr:`body_file`,
    #: spooled to disk; the others get ``self.request.body`` in memory.
    spooled_body = False
    _body: RequestBody | None = None

    def initialize(self, http: HttpServices, **services: Any) -> None:
        """``services`` are the ones the route gives (:func:`with_services`), declared by the handler."""
        self.http = http
        for name, service in services.items():
            setattr(self, name, service)
        # Bodies are DICOM files, JSON or text, never HTML forms: Tornado must not parse them
        # as form fields (``curl --data-binary`` labels them x-www-form-urlencoded, and a
        # binary body then fails Tornado's field limits with an empty 400).
        self.request._parse_body = _keep_body_as_is  # type: ignore[method-assign]
        self._set_connection_headers()

    # -- cross-cutting ---------------------------------------------------------------

    def clear(self) -> None:
        """Tornado's, without its ``Server`` and ``Content-Type`` defaults (which
        :meth:`set_default_headers` took out again) and with a ``Date`` made once a second:
        it runs for every request."""
        self._headers = tornado.httputil.HTTPHeaders({"Date": http_date()})
        self.set_default_headers()
        self._write_buffer = []
        self._status_code = 200
        self._reason = tornado.httputil.responses[200]

    def set_default_headers(self) -> None:
        self.clear_header("Content-Type")
        self.clear_header("Server")
        if server.ORTHANC_API_VERSION >= 22:
            # Orthanc 1.12.2 sends it with every answer (against MIME confusion).
            self.set_header("X-Content-Type-Options", "nosniff")
        if hasattr(self, "http"):  # Tornado's constructor calls this before initialize
            self._set_connection_headers()

    def _set_connection_headers(self) -> None:
        """Orthanc's ``Connection: keep-alive`` and ``Keep-Alive: timeout=`` (``KeepAliveTimeout``),
        or ``Connection: close`` without ``KeepAlive``; Tornado says close when it will."""
        config = self.http.config
        if config["KeepAlive"] and _keeps_alive(self.request):
            self.set_header("Connection", "keep-alive")
            self.set_header("Keep-Alive", f"timeout={int(config['KeepAliveTimeout'])}")
        else:
            self.set_header("Connection", "close")

    def compute_etag(self) -> None:
        """No automatic ETag (nor 304) on GET answers: Orthanc's ETags are the revisions of
        metadata and attachments, which those routes set themselves."""
        return None

    async def prepare(self) -> None:
        """Everything decided from the headers, before a byte of the body is read."""
        if self.http.policy.metrics:
            self.http.metrics.request_started()
        self.username: str | None = None
        try:
            await self._check_headers()
        except (OrthancError, _Forbidden, tornado.web.HTTPError) as e:
            self.refuse(e)
        self._start_body()

    async def _check_headers(self) -> None:
        """Remote access, credentials and the scripts' ``IncomingHttpRequestFilter``."""
        if self.http.policy.authentication:
            if not self._remote_allowed():
                raise OrthancError(ErrorCode.UNAUTHORIZED, http_status=403)
            if self.http.config["AuthenticationEnabled"]:
                self.username = self._authenticate()
        if self.http.policy.filters and not await self.http.filters(self):
            raise _Forbidden()

    _refused = False
    #: The answer goes before the body was read: the connection closes after it.
    _unread_body = False

    def refuse(self, error: Exception) -> None:
        """Refuse the request from its headers.

        A large or unbounded body is never read: the answer goes at once and Tornado
        closes the connection.  A small one is read and dropped first, then the method
        raises ``error`` instead of running: answering before a pending body closes the
        connection, and the client may lose the answer to the reset.
        """
        if self._body_too_large_to_drain():
            self._unread_body = True
            raise error
        self.refuse_after_body(error)

    def refuse_after_body(self, error: Exception) -> None:
        """Read and drop the body, then answer ``error`` (see :meth:`refuse`)."""
        self._refused = True

        async def refused(*args: str) -> None:
            raise error
        setattr(self, (self.request.method or "GET").lower(), refused)

    def _body_too_large_to_drain(self) -> bool:
        headers = self.request.headers
        if "chunked" in headers.get("Transfer-Encoding", "").lower():
            return True
        length = headers.get("Content-Length", "0").strip()
        return not length.isdigit() or int(length) > DRAINED_BODY_LIMIT

    def _start_body(self) -> None:
        """Set up the body sink; an in-process request (no connection) comes with its body."""
        body_future = getattr(self.request, "_body_future", None)
        if body_future is None:
            done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            done.set_result(None)
            self.request._body_future = done  # type: ignore[attr-defined]
            return
        if self._refused:
            return  # a small body, read and dropped (data_received has no sink)
        if not any(name in self.request.headers for name in _BODY_HEADERS):
            return  # no body (most GETs): ``request.body`` stays empty, with no sink nor timer
        config = self.http.config
        raw_limit = limit_from_megabytes(config["MaximumRequestBodySizeMB"])
        inflated_limit = limit_from_megabytes(config["MaximumFileSizeInArchiveMB"])
        if raw_limit is not None and inflated_limit is not None:
            inflated_limit = min(raw_limit, inflated_limit)
        spool_dir = self.http.spool_dir if self.spooled_body else None
        declared = _declared_length(self.request.headers)
        self._body = RequestBody(raw_limit, inflated_limit or raw_limit,
                                 self.request.headers.get("Content-Encoding", ""), spool_dir, declared)
        try:
            self._body.check_declared(self.request.headers.get("Content-Length"))
        except RawBodyTooLarge:
            self._unread_body = True
            raise
        connection = self.request.connection
        # No limit of Tornado's own (it would close the connection without an answer).
        connection.set_max_body_size(2 ** 62)  # type: ignore[attr-defined]
        # Runs before the coroutine waiting for the body: the method sees the whole body.
        body_future.add_done_callback(self._body_complete)
        if declared is not None and _buffered(connection) >= declared:
            return  # the whole body was read with the headers: no client can stall it now
        self._watch_stall(float(config["HttpRequestTimeout"]))

    def _watch_stall(self, timeout: float) -> None:
        """Drop the connection of a body that sends nothing for ``HttpRequestTimeout`` seconds
        (Orthanc's socket receive timeout): a stalled client must not hold a request forever.
        A slow but steady upload is never cut."""
        if timeout <= 0:
            return
        self._last_chunk = time.monotonic()

        def check() -> None:
            self._stall_timer = None
            if self._body is None or self._finished or self.request._body_future.done():  # type: ignore[attr-defined]
                return
            idle = time.monotonic() - self._last_chunk
            if idle >= timeout:
                log.warning("%s %s: no body data for %g s, connection dropped",
                            self.request.method, self.request.path, timeout)
                self.request.connection.close()  # type: ignore[attr-defined]
                return
            self._stall_timer = IOLoop.current().call_later(timeout - idle, check)
        self._stall_timer = IOLoop.current().call_later(timeout, check)

    _stall_timer: object | None = None

    def _stop_watching_stall(self) -> None:
        """The body is complete, or the answer went: a timer left pending would hold the
        handler for ``HttpRequestTimeout`` seconds, thousands of them under load."""
        if self._stall_timer is not None:
            IOLoop.current().remove_timeout(self._stall_timer)
            self._stall_timer = None

    def data_received(self, chunk: bytes) -> Awaitable[None] | None:
        self._last_chunk = time.monotonic()
        body = self._body
        if body is None or self._finished:
            return None
        if body.on_disk:
            return self._feed_off_loop(body, chunk)
        try:
            body.feed(chunk)
        except OrthancError as e:
            self._refuse_body(e)
        return None

    async def _feed_off_loop(self, body: RequestBody, chunk: bytes) -> None:
        """Disk writes of a spooled body run in a thread; Tornado waits before reading on."""
        try:
            await IOLoop.current().run_in_executor(None, body.feed, chunk)
        except OrthancError as e:
            self._refuse_body(e)

    def _refuse_body(self, error: OrthancError) -> None:
        """Refuse the body being read.

        Past ``MaximumRequestBodySizeMB`` the answer goes at once and the rest is never
        read (Tornado closes the connection).  Other refusals (a bad compressed stream,
        too large once inflated) read the rest of what was sent and drop it, so that
        the client gets its answer on a connection that stays usable.
        """
        self._body = None
        if not isinstance(error, RawBodyTooLarge):
            self.refuse_after_body(error)
        elif not self._finished:
            self._unread_body = True
            self.send_error(error.status, exc_info=(type(error), error, None))

    def _body_complete(self, future: asyncio.Future[None]) -> None:
        self._stop_watching_stall()
        body = self._body
        if body is None or future.cancelled() or future.exception() is not None or self._finished:
            return
        try:
            body.finish()
        except OrthancError as e:
            self._refuse_body(e)
            return
        if not self.spooled_body:
            self.request.body = body.value()

    @property
    def body_file(self) -> IO[bytes]:
        """The body of a :attr:`spooled_body` handler, as a file at its start."""
        if self._body is None:
            return io.BytesIO(self.request.body)
        return self._body.file

    def on_finish(self) -> None:
        self._stop_watching_stall()
        if self._body is not None:
            self._body.close()
            self._body = None
        if self.http.policy.metrics:
            self.http.metrics.request_finished(self.request.request_time())

    def _remote_allowed(self) -> bool:
        if self.http.config["RemoteAccessAllowed"]:
            return True
        return _is_loopback(self.request.remote_ip or "127.0.0.1")

    def _authenticate(self) -> str:
        header = self.request.headers.get("Authorization", "")
        if self.http.accepts_token(header):
            return ""
        users = self.http.config["RegisteredUsers"]
        if header.startswith("Basic "):
            try:
                user, _, password = base64.b64decode(header[6:]).decode("utf-8").partition(":")
            except (ValueError, UnicodeDecodeError):
                user, password = "", None
            if user in users and users[user] == password:
                return user
        raise OrthancError(ErrorCode.UNAUTHORIZED, http_status=401)

    # -- method dispatch -------------------------------------------------------------

    def _allowed(self) -> list[str]:
        return [m for m in _METHODS
                if getattr(type(self), m.lower()) is not getattr(OrthancHandler, m.lower())]

    def _not_allowed(self) -> None:
        self.set_header("Allow", ",".join(self._allowed()))
        self._empty(405)

    async def get(self, *args: str) -> None:
        self._not_allowed()

    async def post(self, *args: str) -> None:
        self._not_allowed()

    async def put(self, *args: str) -> None:
        self._not_allowed()

    async def delete(self, *args: str) -> None:
        self._not_allowed()

    async def head(self, *args: str) -> None:
        self._not_allowed()

    async def patch(self, *args: str) -> None:
        self._not_allowed()

    async def options(self, *args: str) -> None:
        self._not_allowed()

    # -- answers ---------------------------------------------------------------------

    def _empty(self, status: int) -> None:
        self.set_status(status)
        self.clear_header("Content-Type")
        self._write_buffer = []

    _compressing: asyncio.Future[None] | None = None

    def finish(self, chunk: str | bytes | dict[str, Any] | None = None) -> asyncio.Future[None]:
        """Tornado's ``finish``, except that a large answer the client wants compressed is
        compressed in a worker thread first (see :mod:`server.rest.compression`)."""
        if self._compressing is not None:
            return self._compressing  # Tornado's auto-finish after the method returned
        if chunk is not None:
            self.write(chunk)
        encoding = self._off_loop_encoding()
        if encoding is None:
            return super().finish()
        data = b"".join(self._write_buffer)
        self._write_buffer = []
        self._compressing = asyncio.ensure_future(self._finish_compressed(data, encoding))
        return self._compressing

    def _off_loop_encoding(self) -> str | None:
        """The encoding to compress the buffered answer in, off the loop; None if it goes as is
        (or small enough for :class:`~server.rest.compression.CompressionTransform`)."""
        if self._headers_written or self._status_code != 200 or "Content-Encoding" in self._headers:
            return None
        if sum(len(part) for part in self._write_buffer) < compression.OFF_LOOP_MIN_LENGTH:
            return None
        if not compression.compressible(self._headers.get("Content-Type")):
            return None  # the transform leaves it as it is too
        transform = self._compression_transform()
        return None if transform is None else transform.encoding

    def _compression_transform(self) -> compression.CompressionTransform | None:
        return next((t for t in self._transforms if isinstance(t, compression.CompressionTransform)), None)

    async def _finish_compressed(self, data: bytes, encoding: str) -> None:
        """Nobody awaits this task: whatever happens, the answer goes (uncompressed at worst)."""
        try:
            body = await self.run(compression.compress, data, encoding)
        except Exception:  # noqa: BLE001 - e.g. the pool shut down under a late request
            log.exception("Cannot compress the answer to %s %s", self.request.method, self.request.path)
            body = None
        if self._finished:
            return  # the connection went away meanwhile
        if body is not None:
            self.set_header("Content-Encoding", encoding)
            self.add_header("Vary", "Accept-Encoding")
        else:  # sent as it is: the transform must not compress it on the loop either
            transform = self._compression_transform()
            if transform is not None:
                transform.encoding = None
        self._write_buffer = [data if body is None else body]
        self.set_header("Content-Length", len(self._write_buffer[0]))
        await super().finish()

    def answer_json(self, value: Any) -> None:
        if wants_xml(self.request.headers.get("Accept", "")):
            self.set_header("Content-Type", "application/xml; charset=utf-8")
            self.finish(json_to_xml(value))
            return
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.finish(dumps(value))

    def answer_text(self, text: str | bytes, content_type: str = "text/plain") -> None:
        self.set_header("Content-Type", content_type)
        self.finish(text.encode("utf-8") if isinstance(text, str) else text)

    def answer_empty_text(self) -> None:
        self.answer_text(b"")

    def answer_bytes(self, data: bytes, content_type: str,
                     filename: str | None = None) -> None:
        self.set_header("Content-Type", content_type)
        if filename is not None:
            self.set_content_filename(filename)
        self.finish(data)

    def set_content_filename(self, filename: str) -> None:
        """Orthanc's ``Content-Disposition``, the name stripped of what could break the header."""
        self.set_header("Content-Disposition", f'filename="{download_filename(filename)}"')

    def filename_argument(self, default: str) -> str:
        """The ``filename`` GET argument (Orthanc 1.11 for archives, 1.12.7 for files), taken
        as given (an empty one included), or ``default``."""
        return self.get_argument("filename", default, strip=False)

    def lossy_quality_argument(self) -> int | None:
        """``lossy-quality`` (Orthanc 1.12.7, wherever ``transcode`` is a GET argument), parsed as
        Orthanc's unsigned GET arguments (an empty value counts as 1) and clamped to 1..100."""
        value = self.get_argument("lossy-quality", None)
        if value is None:
            return None
        if value and not (value.isascii() and value.isdigit()):
            raise OrthancError(ErrorCode.PARAMETER_OUT_OF_RANGE,
                               f'Expected a Unsigned Int for GET argument "lossy-quality", found: {value}')
        return min(100, max(1, int(value or 1)))

    # -- errors ----------------------------------------------------------------------

    def log_exception(self, typ, value, tb) -> None:  # type: ignore[no-untyped-def]
        if isinstance(value, (OrthancError, NoAnswer, _Forbidden, tornado.web.HTTPError, RecursionError)):
            return
        log.error("Uncaught error in %s %s", self.request.method, self.request.uri,
                  exc_info=(typ, value, tb))

    def send_error(self, status_code: int = 500, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if self._headers_written:
            if not self._finished:
                self.finish()
            return
        self.clear()
        self.set_default_headers()
        if self._unread_body:
            # Tornado closes the connection: say so, or keep-alive clients would reuse it.
            self.set_header("Connection", "close")
        if isinstance(exc, NoAnswer):
            self._empty(400 if self.request.method == "POST" else 404)
            self.finish()
        elif isinstance(exc, _Forbidden):
            self._empty(403)
            self.finish()
        elif isinstance(exc, OrthancError):
            self._error_body(exc.code, exc.status, exc.details, exc.payload)
        elif isinstance(exc, tornado.web.HTTPError):
            self._http_error(exc.status_code)
        elif isinstance(exc, RecursionError):
            # Only hostile input nests this deep (JSON bodies, DICOM sequences): Orthanc's
            # parsers refuse it as a bad request too.
            self._error_body(ErrorCode.BAD_REQUEST, 400, "Too deeply nested input")
        else:
            self._error_body(ErrorCode.INTERNAL, 500, None)

    def _http_error(self, status: int) -> None:
        if status == 404:
            self._error_body(ErrorCode.UNKNOWN_RESOURCE, 404, None)
        elif status == 413:
            self._error_body(ErrorCode.BAD_REQUEST, 413, "Request body too large")
        else:
            self._empty(status)
            self.finish()

    def _error_body(self, code: int, status: int, details: str | None,
                    payload: dict[str, Any] | None = None) -> None:
        """Orthanc's error document (status-only when HttpDescribeErrors is false), with the
        error's ``ErrorPayload`` when it has one (Orthanc 1.12.10)."""
        self.set_status(status)
        if status == 401:
            self.set_header("WWW-Authenticate", 'Basic realm="Orthanc Secure Area"')
        if status in (401, 403) or not self.http.config["HttpDescribeErrors"]:
            self.finish()
            return
        body = {
            "HttpError": self._reason,
            "HttpStatus": status,
            "Message": describe(code),
            "Method": self.request.method,
            "OrthancError": describe(code),
            "OrthancStatus": int(code),
            "Uri": self.request.path,
        }
        if details:
            body["Details"] = details
        if payload is not None:
            body["ErrorPayload"] = payload
        # Orthanc 1.12.2 (API 22) sends its error document as text/plain; before, with no type.
        self.set_header("Content-Type", "text/plain" if server.ORTHANC_API_VERSION >= 22 else "application/json")
        self.set_header("X-Content-Type-Options", "nosniff")
        lines = ",\n".join(f"\t{json.dumps(k)} : {json.dumps(v, ensure_ascii=False)}"
                            for k, v in sorted(body.items()))
        self.finish(("{\n" + lines + "\n}\n").encode("utf-8"))

    # -- helpers ---------------------------------------------------------------------

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run blocking work (disk, SQLite, pydicom) off the event loop (see :mod:`server.rest.workers`)."""
        executor = self.http.executor
        if isinstance(executor, ContextExecutor):
            return await executor.run_async(asyncio.get_running_loop(), fn, *args)
        return await IOLoop.current().run_in_executor(executor, fn, *args)

    def origin(self) -> Origin:
        """The origin of what this request stores (the caller's for an in-process request)."""
        return self.http.policy.origin_of(self.request.remote_ip or "", self.username or "")

    async def resource(self, level: Level, public_id: str) -> Resource:
        """The resource named in the URI, looked up in a worker thread; else Orthanc's 404."""
        return await self.run(self.resource_in_worker, level, public_id)

    def resource_in_worker(self, level: Level, public_id: str) -> Resource:
        """:meth:`resource` from a worker thread already (one trip for the lookup and the work)."""
        found = self.http.index.lookup(public_id, level)
        if found is None:
            raise NoAnswer()
        return found

    async def run_on(self, level: Level, public_id: str, fn: Callable[..., T], *args: Any) -> T:
        """``fn(resource, *args)`` on the resource named in the URI (else Orthanc's 404), looked
        up and worked on in one trip to a worker thread: a trip costs ~0.1 ms of CPU and wall
        time here, a quarter of a small request's.  An argument that is an error (see
        :meth:`checked`) is raised once the resource is found, as Orthanc answers an unknown
        resource's 404 before a bad argument's 400."""
        return await self.run(self._on_resource, level, public_id, fn, args)

    def _on_resource(self, level: Level, public_id: str, fn: Callable[..., T], args: tuple[Any, ...]) -> T:
        resource = self.resource_in_worker(level, public_id)
        for argument in args:
            if isinstance(argument, Exception):
                raise argument
        return fn(resource, *args)

    @staticmethod
    def checked(parse: Callable[[], T]) -> T | Exception:
        """``parse()``, or the error it raised, for :meth:`run_on` to raise after the lookup."""
        try:
            return parse()
        except (OrthancError, tornado.web.HTTPError) as error:
            return error

    def json_body(self, error: Exception | None = None) -> Any:
        """The body as JSON; ``error`` (by default Orthanc's usual "bad request") if it is not."""
        return parse_json(self.request.body, error or OrthancError(
            ErrorCode.BAD_REQUEST, "The body must contain a JSON object"))

    def boolean_body(self) -> bool:
        """Orthanc's boolean bodies (``PUT .../protected``, ``/tools/metrics``...): 0/1/true/false."""
        body = self.request.body.decode("utf-8", "replace").strip()
        if body not in ("0", "1", "true", "false"):
            raise OrthancError(ErrorCode.BAD_FILE_FORMAT, "Boolean value expected")
        return body in ("1", "true")

    def flag(self, name: str) -> bool:
        """Orthanc's boolean GET arguments: present (empty) or true/1 means true."""
        if name not in self.request.arguments:
            return False
        value = self.get_argument(name, "").lower()
        return value in ("", "true", "1")

    def boolean_argument(self, name: str, default: bool) -> bool:
        """Orthanc's ``GetBooleanArgument``: absent is ``default``, empty is true, else
        true/1 or false/0, anything else a 400."""
        value = self.get_argument(name, None, strip=False)
        if value is None:
            return default
        if value in ("", "true", "1"):
            return True
        if value in ("false", "0"):
            return False
        raise OrthancError(ErrorCode.PARAMETER_OUT_OF_RANGE,
                           f'Expected a Boolean for GET argument "{name}", found: {value}')

    def int_argument(self, name: str, default: int) -> int:
        value = self.get_argument(name, None)
        if value is None:
            return default
        try:
            number = int(value)
        except ValueError:
            raise OrthancError(ErrorCode.PARAMETER_OUT_OF_RANGE,
                               f'Argument "{name}" is not an integer: {value}') from None
        if number < 0:
            raise OrthancError(ErrorCode.PARAMETER_OUT_OF_RANGE,
                               f'Argument "{name}" must be a positive integer')
        return number


class UnknownRouteHandler(OrthancHandler):
    """Everything no route matches: Orthanc's 404 ``Unknown resource``."""

    async def prepare(self) -> None:
        await super().prepare()
        if not self._finished and not self._refused:
            self.refuse_after_body(tornado.web.HTTPError(404))
