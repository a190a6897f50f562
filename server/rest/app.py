"""The Tornado application: every route of the REST API, and the HTTP server around it."""

from __future__ import annotations

import logging
import re
import socket
from typing import Any

import tornado.httpserver
import tornado.httputil
import tornado.ioloop
import tornado.iostream
import tornado.log
import tornado.routing
import tornado.web
from tornado.http1connection import HTTP1ServerConnection

from server.config import ConfigError, Configuration
from server.rest import (
    archive,
    bulk,
    create,
    directory,
    export,
    images,
    jobs,
    labels,
    log_levels,
    lua,
    metadata,
    metrics,
    modalities,
    modify,
    peers,
    plugins,
    python_routes,
    queries,
    reconstruct,
    resources,
    slices,
    storage_commitment,
    system,
    tags,
    tools,
    transfers,
    ui,
)
from server.rest.base import HttpServices, Route, UnknownRouteHandler
from server.rest.compression import CompressionTransform
from server.rest.python_routes import ScriptRoutes

log = logging.getLogger("isengard")

#: Tornado's own cap, never reached: bodies are streamed and capped by the handlers
#: (``MaximumRequestBodySizeMB``, :mod:`server.rest.body`), which answer Orthanc's 413.
MAX_BODY_SIZE = 2 ** 62
#: Request line plus headers that Orthanc (CivetWeb) accepts; larger ones get its 400.
MAX_REQUEST_HEADER_BYTES = 16 * 1024
#: What Tornado reads before it drops the connection: larger than the above, so that
#: oversized requests get their 400 and not a closed connection.
MAX_HEADER_READ_BYTES = 1024 * 1024


_SLASHES = re.compile(r"/{2,}")
_UNRESERVED = re.compile(r"%(4[1-9A-F]|5[0-9A]|6[1-9A-F]|7[0-9A]|3[0-9]|2D|2E|5F|7E)", re.IGNORECASE)


def normalize_path(path: str) -> str:
    """Orthanc's URIs: repeated slashes count as one, a trailing slash is ignored
    (``//tools/find`` and ``/patients/`` are ``/tools/find`` and ``/patients``), and
    percent-encoded letters, digits and ``-._~`` are those characters (``/%70atients``).
    Other escapes (``%20``, ``%2F``) stay for the routes, which decode their arguments."""
    if "//" not in path and "%" not in path and (len(path) <= 1 or not path.endswith("/")):
        return path  # already normal (nearly every request): no regular expression to run
    path = _UNRESERVED.sub(lambda m: chr(int(m.group(1), 16)), _SLASHES.sub("/", path))
    if len(path) > 1 and path.endswith("/"):
        path = path[:-1]
    return path


def overridden_method(request: tornado.httputil.HTTPServerRequest) -> str | None:
    """The method a client fakes, as Orthanc accepts it: an ``X-HTTP-Method-Override`` header
    (Google's way, on any request) or a ``_method`` argument of a GET (Ruby on Rails' way).

    Returns None when nothing is faked, else the upper-cased method (only PUT and DELETE
    may be faked; Orthanc answers anything else with an empty 400).
    """
    faked = request.headers.get("X-HTTP-Method-Override")
    if faked is None and request.method == "GET":
        values = tornado.httputil.parse_qs_bytes(request.query, keep_blank_values=True).get("_method")
        faked = values[0].decode("latin-1") if values else None
    return faked.upper() if faked else None


class BadMethodHandler(tornado.web.RequestHandler):
    """A faked method other than PUT or DELETE: Orthanc's empty 400."""

    def prepare(self) -> None:
        self.clear_header("Content-Type")
        self.clear_header("Server")
        self.set_status(400)
        self.finish()


@tornado.web.stream_request_body
class MalformedRequestHandler(tornado.web.RequestHandler):
    """A request line and headers past :data:`MAX_REQUEST_HEADER_BYTES`: CivetWeb's 400,
    answered from the headers alone (the body is never read) and the connection closed."""

    def prepare(self) -> None:
        self.clear_header("Server")
        self.set_status(400)
        self.set_header("Content-Type", "text/plain; charset=utf-8")
        self.set_header("Connection", "close")
        self.finish("Error 400: Bad Request\nMalformed message")


def header_bytes(request: tornado.httputil.HTTPServerRequest) -> int:
    """The size of the request line and header lines as the client sent them (about)."""
    size = len(request.method or "") + len(request.uri or "") + len(request.version) + 4
    return size + sum(len(name) + len(value) + 4 for name, value in request.headers.get_all())


#: A route's first path segment when its pattern spells it out: a word, or words in a group of
#: alternatives, followed by "/" or the end.
_FIRST_SEGMENT = re.compile(r"/(?:([\w-]+)|\(((?:[\w-]+\|)*[\w-]+)\))(?=/|\$)")


def first_segments(matcher: tornado.routing.Matcher) -> frozenset[str] | None:
    """The first path segments a rule can match; None when it may match any."""
    if not isinstance(matcher, tornado.routing.PathMatches):
        return None
    spelled = _FIRST_SEGMENT.match(matcher.regex.pattern)
    if spelled is None:
        return None
    word, words = spelled.groups()
    return frozenset([word] if word else words.split("|"))


class OrthancApplication(tornado.web.Application):
    """Routes every request, the scripts' routes included, on its normalized path and
    with its faked method (PUT or DELETE sent as POST or GET).

    Tornado tries every rule in turn (~0.35 µs each; 125 rules, ``/tools/create-archive``
    the 47th): here only the rules that can match the path's first segment are tried, in the
    same order, so the same rule wins.
    """

    def __init__(self, handlers: list[Any], **settings: Any) -> None:
        super().__init__(handlers, **settings)
        rules = [(rule, first_segments(rule.matcher)) for rule in self.wildcard_router.rules]
        self._any_segment = [rule for rule, segments in rules if segments is None]
        names = {name for _, segments in rules for name in segments or ()}
        self._by_segment = {name: [rule for rule, segments in rules if segments is None or name in segments]
                            for name in names}

    def find_handler(self, request: tornado.httputil.HTTPServerRequest,
                     **kwargs: Any) -> tornado.web._HandlerDelegate:
        if header_bytes(request) > MAX_REQUEST_HEADER_BYTES:
            return self.get_handler_delegate(request, MalformedRequestHandler)
        request.path = normalize_path(request.path)
        faked = overridden_method(request)
        if faked in ("PUT", "DELETE"):
            request.method = faked
        elif faked is not None:
            return self.get_handler_delegate(request, BadMethodHandler)
        segment = request.path.split("/", 2)[1] if request.path.startswith("/") else ""
        for rule in self._by_segment.get(segment, self._any_segment):  # as Tornado's RuleRouter
            found = rule.matcher.match(request)
            if found is not None:
                if rule.target_kwargs:
                    found["target_kwargs"] = rule.target_kwargs
                delegate = self.wildcard_router.get_target_delegate(rule.target, request, **found)
                if delegate is not None:
                    return delegate
        return self.get_handler_delegate(request, self.settings["default_handler_class"],
                                         self.settings.get("default_handler_args", {}))

    def log_request(self, handler: tornado.web.RequestHandler) -> None:
        """Tornado's access log line, built only when its level is shown (it is not by default:
        Tornado formats the line for every request, then the logger drops it)."""
        status = handler.get_status()
        level = logging.INFO if status < 400 else logging.WARNING if status < 500 else logging.ERROR
        if tornado.log.access_log.isEnabledFor(level):
            super().log_request(handler)


def rest_routes() -> list[tuple[str, type]]:
    """Every route of the REST API but the scripts' own, in matching order (the first wins, as
    the composition root lists them); the source of the OpenAPI document (:mod:`server.openapi`)."""
    routes: list[tuple[str, type]] = []
    for module in (labels, resources, metadata, system, tools, jobs, storage_commitment, create, metrics, archive,
                   modalities, peers, queries, modify, lua, tags, bulk,
                   reconstruct, directory, slices, plugins, log_levels,
                   export, images, ui, transfers):
        routes += module.paths()
    return routes


def build_application(http: HttpServices, routes: list[Route], python: ScriptRoutes | None,
                      compression: bool) -> tornado.web.Application:
    """The application of ``routes`` (the script's first), every handler given ``http``."""
    handlers: list[Any] = [*python_routes.rules(http, python),
                           *((pattern, handler, {"http": http, **services}) for pattern, handler, services in routes)]
    transforms = [CompressionTransform] if compression else []
    return OrthancApplication(
        handlers,
        default_handler_class=UnknownRouteHandler,
        default_handler_args={"http": http},
        transforms=transforms,
    )


class NoDelayHTTPServer(tornado.httpserver.HTTPServer):
    """Sets TCP_NODELAY on every connection: small answers must not wait for Nagle.

    The first request of a connection has ``HttpRequestTimeout`` to send its headers (the
    server's ``idle_connection_timeout``); once answered, an idle keep-alive connection is
    closed after ``keep_alive_timeout`` seconds (Orthanc's ``KeepAliveTimeout``) unless the
    next request has begun to arrive by then: a client whose request crosses the close would
    otherwise see its connection dropped without an answer (the race every keep-alive server
    has; it is narrowed here to bytes still on the wire).
    """

    keep_alive_timeout: float = 1

    def handle_stream(self, stream: tornado.iostream.IOStream, address: Any) -> None:
        try:
            stream.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass
        else:
            # Tornado sets it on before the last write of each answer and off after it
            # (two system calls per request, and Nagle back between requests): it stays on.
            stream.set_nodelay = _stays_on  # type: ignore[method-assign]
        super().handle_stream(stream, address)

    def start_request(self, server_conn: object, request_conn: tornado.httputil.HTTPConnection
                      ) -> tornado.httputil.HTTPMessageDelegate:
        delegate = super().start_request(server_conn, request_conn)
        if not isinstance(server_conn, HTTP1ServerConnection):
            return delegate
        watch: _IdleWatch | None = getattr(server_conn, "isengard_idle", None)
        if watch is None:  # the first request: Tornado's idle_connection_timeout covers its wait
            server_conn.isengard_idle = _IdleWatch(server_conn.stream, self.keep_alive_timeout)  # type: ignore[attr-defined]
        else:  # a keep-alive connection, now idle
            watch.awaiting(request_conn)
        return delegate


def _stays_on(value: bool) -> None:
    """``IOStream.set_nodelay`` of a connection whose ``TCP_NODELAY`` is on for good."""


class _IdleWatch:
    """Closes a keep-alive connection that waited ``timeout`` seconds for its next request
    without a byte of it (:class:`NoDelayHTTPServer`).

    One timer per connection, not one per request: each answer only notes when the wait
    began, and the timer, when it fires, either closes the connection, or is set again for
    the end of the wait begun since, or lets the next wait set it (a request under way)."""

    __slots__ = ("stream", "timeout", "request", "since", "timer")

    def __init__(self, stream: tornado.iostream.IOStream, timeout: float) -> None:
        self.stream = stream
        self.timeout = timeout
        #: The connection of the request awaited (Tornado's, per request), and since when.
        self.request: tornado.httputil.HTTPConnection | None = None
        self.since = 0.0
        self.timer: object | None = None

    def awaiting(self, request: tornado.httputil.HTTPConnection) -> None:
        """The previous request is answered: the wait for ``request`` begins now."""
        loop = tornado.ioloop.IOLoop.current()
        self.request, self.since = request, loop.time()
        if self.timer is None:
            self.timer = loop.call_at(self.since + self.timeout, self._check)

    def _check(self) -> None:
        self.timer = None
        stream = self.stream
        if stream.closed():
            return
        deadline = self.since + self.timeout
        loop = tornado.ioloop.IOLoop.current()
        if loop.time() < deadline:  # another wait began since the timer was set
            self.timer = loop.call_at(deadline, self._check)
            return
        if getattr(self.request, "_request_start_line", None) is not None:
            return  # its headers came: the request is under way
        if stream._read_buffer_size > 0:  # noqa: SLF001 - its first bytes came
            return
        try:
            if stream.socket.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT):
                return
        except BlockingIOError:
            pass
        except OSError:
            pass
        stream.close()


def build_http_server(application: tornado.web.Application, request_timeout: int,
                      keep_alive_timeout: int) -> NoDelayHTTPServer:
    server = NoDelayHTTPServer(application, max_body_size=MAX_BODY_SIZE, xheaders=False,
                               # gzip/deflate bodies are inflated by the handlers, with a cap
                               decompress_request=False, max_header_size=MAX_HEADER_READ_BYTES,
                               idle_connection_timeout=request_timeout or None)
    server.keep_alive_timeout = keep_alive_timeout
    return server


def check_registered_users(config: Configuration) -> None:
    """Orthanc 1.13's start-up rule: authentication on, remote access allowed and no
    ``RegisteredUsers`` option at all is refused (the Docker-image setup nobody could log in
    to); an empty ``RegisteredUsers`` only warns, as in Orthanc."""
    if not config["AuthenticationEnabled"] or config["RegisteredUsers"]:
        return
    if config["RemoteAccessAllowed"] and "RegisteredUsers" not in config.user_values:
        where = f" in {config.path}" if config.path is not None else ""
        raise ConfigError(
            f'Invalid configuration{where}: HTTP authentication is enabled ("AuthenticationEnabled") and '
            'remote access is allowed ("RemoteAccessAllowed"), but no user is declared; expected at least '
            'one user in "RegisteredUsers" (required since Orthanc 1.13.0), or "AuthenticationEnabled" '
            'or "RemoteAccessAllowed" set to false')
    log.warning('HTTP authentication is enabled, but no user is declared, check the value of '
                'configuration option "RegisteredUsers" if you cannot access Orthanc as expected')
