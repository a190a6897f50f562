"""The routes of ``orthanc.RegisterRestCallback``, served before the built-in ones.

Orthanc lets a plugin route shadow a built-in route of the same URI (checked
on Orthanc 1.10.1 with orthanc-python: a callback on ``/system`` answers
instead of the core), so :func:`rules` goes first in the application.  Routes
are looked up at request time: a script may register them whenever it likes.

``orthanc.RestApiGet`` and friends call the built-in API only: they set
:data:`SKIP_SCRIPT_ROUTES` around their in-process request (the dispatcher carries
the caller's ``contextvars`` into the event loop); ``...AfterPlugins`` and Lua's
``RestApiGet`` see these routes.
"""

from __future__ import annotations

import contextvars
from collections.abc import Sequence
from concurrent.futures import Executor
from typing import Any, Protocol
from urllib.parse import unquote

import tornado.httputil
from tornado.ioloop import IOLoop
from tornado.routing import Matcher

from server.rest.base import HttpServices, OrthancHandler

#: True while an in-process request must not reach the scripts' routes.
SKIP_SCRIPT_ROUTES: contextvars.ContextVar[bool] = contextvars.ContextVar("skip_script_routes", default=False)


class ScriptRoutes(Protocol):
    """What the routes use of the Python script (:class:`server.scripting.python.PythonScripting`)."""

    @property
    def routes(self) -> Sequence[Any]:
        """The registered (pattern, callback) pairs."""

    @property
    def rest_pool(self) -> Executor:
        """Where the callbacks of HTTP requests run."""

    def find_route(self, path: str) -> Any:
        """The callback of ``path`` and its groups, or None."""

    def serve_rest(self, path: str, method: str, get: dict[str, str], headers: dict[str, str],
                   body: bytes) -> Any:
        """Run the callback of ``path``; its collected answer."""


class ScriptRoutesMatcher(Matcher):
    """Matches the requests whose decoded path fully matches a registered regular expression."""

    def __init__(self, python: ScriptRoutes | None) -> None:
        self.python = python

    def match(self, request: tornado.httputil.HTTPServerRequest) -> dict[str, Any] | None:
        if SKIP_SCRIPT_ROUTES.get():
            # Consumed by the request it was set for: this runs in the context of that
            # request only, so what the request does in turn (uploads running Lua
            # filters...) sees the scripts' routes again.
            SKIP_SCRIPT_ROUTES.set(False)
            return None
        scripting = self.python
        if scripting is None or not scripting.routes:
            return None
        return {} if scripting.find_route(unquote(request.path or "/")) is not None else None


class ScriptRouteHandler(OrthancHandler):
    """Runs the script's callback on the scripting thread pool and sends what it answered."""

    python: ScriptRoutes

    async def get(self, *args: str) -> None:
        await self._serve()

    async def post(self, *args: str) -> None:
        await self._serve()

    async def put(self, *args: str) -> None:
        await self._serve()

    async def delete(self, *args: str) -> None:
        await self._serve()

    async def _serve(self) -> None:
        scripting = self.python
        request = self.request
        output = await IOLoop.current().run_in_executor(
            self._pool(), scripting.serve_rest, unquote(request.path or "/"), request.method,
            request_get_arguments(request), request_headers(request), request.body or b"")
        self.set_status(output.status)
        for name, value in output.headers:
            self.add_header(name, value)
        if output.content_type:
            self.set_header("Content-Type", output.content_type)
        body = output.body()
        if (output.status >= 400 and not self.http.config["HttpDescribeErrors"]) or output.status in (204, 304):
            body = b""
        self.finish(body)


    def _pool(self) -> Executor:
        """Where the callback runs: the scripts' REST pool for HTTP requests.

        An in-process request (a script or Lua calling the REST API, maybe from that
        very pool) runs on the in-process executor, which its callers cannot exhaust.
        """
        return self.http.executor if self.http.policy.in_process else self.python.rest_pool


def request_headers(request: tornado.httputil.HTTPServerRequest) -> dict[str, str]:
    """The headers as orthanc-python gives them: lower-case names."""
    return {name.lower(): value for name, value in request.headers.get_all()}


def request_get_arguments(request: tornado.httputil.HTTPServerRequest) -> dict[str, str]:
    """The query arguments as orthanc-python gives them: one value each (the last one)."""
    return {name: values[-1].decode("utf-8", "replace") for name, values in request.query_arguments.items() if values}


def rules(http: HttpServices, python: ScriptRoutes | None) -> list[tuple[Matcher, type, dict[str, Any]]]:
    """The rule to put first in the Tornado application."""
    return [(ScriptRoutesMatcher(python), ScriptRouteHandler, {"http": http, "python": python})]
