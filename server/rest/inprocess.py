"""In-process REST calls: the server's own API without any socket.

Lua's ``RestApiGet/Post/Put/Delete`` (and the Python scripting's
``orthanc.RestApi*``) call the Tornado handlers directly, as Orthanc does:

* No HTTP layer: no authentication, no ``IncomingHttpRequestFilter``, no
  metrics, and instances uploaded this way are stored with the caller's
  origin (``Lua``, ``Plugins``), never ``RestApi``.  The handlers of each
  caller's application carry that request policy
  (:func:`server.rest.base.in_process_policy`).
* Callable from any thread.  The handler coroutine runs on the event loop
  (:meth:`InProcessRest.submit` returns a ``concurrent.futures.Future``); its
  blocking work runs on a pool of its own (:class:`ContextExecutor`), so a
  caller that occupies HTTP worker threads (a filter inside an upload) can
  never starve the request it waits for.
* The caller's ``contextvars`` follow the request into the loop and into the
  pool: scripting engines use them to recognise work done on behalf of a
  caller that holds their lock, and run it instead of waiting for themselves.
* Calling :meth:`InProcessRest.call` from the event loop thread would block
  the loop the handler needs, so it is refused; coroutines await :meth:`fetch`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import tornado.httputil
import tornado.web

from server.rest.base import RequestPolicy, in_process_policy
from server.rest.workers import ContextExecutor as ContextExecutor  # where app.py and lua.py find it
from server.store import Origin

#: Threads for the blocking work of in-process requests; created only when needed.
MAX_WORKERS = 64


@dataclass
class Answer:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


class _Connection(tornado.httputil.HTTPConnection):
    """Collects what a handler writes and resolves ``done`` when it finishes."""

    def __init__(self, done: asyncio.Future[Answer]) -> None:
        self.context = SimpleNamespace(remote_ip="127.0.0.1", protocol="http")
        self._done = done
        self._answer = Answer(200)
        self._chunks: list[bytes] = []

    def set_close_callback(self, callback: Callable[[], None] | None) -> None:
        """There is no peer that could close the connection."""

    def write_headers(self, start_line: Any, headers: tornado.httputil.HTTPHeaders,
                      chunk: bytes | None = None) -> asyncio.Future[None]:
        self._answer.status = start_line.code
        self._answer.headers = {k: v for k, v in headers.get_all()}
        return self.write(chunk or b"")

    def write(self, chunk: bytes) -> asyncio.Future[None]:
        self._chunks.append(chunk)
        written: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        written.set_result(None)
        return written

    def finish(self) -> None:
        self._answer.body = b"".join(self._chunks)
        if not self._done.done():
            self._done.set_result(self._answer)


class InProcessRest:
    r"""Serves REST requests on the server's own handlers, from any thread, once :meth:`start`\ ed."""

    def __init__(self, build: Callable[[RequestPolicy, Executor], tornado.web.Application]) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._build = build
        self._executor = ContextExecutor(MAX_WORKERS, thread_name_prefix="rest-inprocess")
        self._applications: dict[str, tornado.web.Application] = {}
        self._lock = threading.Lock()

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Serve on ``loop`` from now on (the server's event loop, once it runs)."""
        self._loop = loop

    @property
    def ready(self) -> bool:
        return self._loop is not None

    def _application(self, origin: Origin) -> tornado.web.Application:
        with self._lock:
            if origin.kind not in self._applications:
                policy = in_process_policy(origin)
                self._applications[origin.kind] = self._build(policy, self._executor)
            return self._applications[origin.kind]

    async def fetch(self, method: str, uri: str, body: bytes = b"",
                    headers: dict[str, str] | None = None, origin: Origin | None = None) -> Answer:
        """Serve one request; to be awaited on the event loop."""
        origin = origin or Origin("Lua")
        application = self._application(origin)
        assert self._loop is not None
        done: asyncio.Future[Answer] = self._loop.create_future()
        request_headers = tornado.httputil.HTTPHeaders({"Host": "localhost"})
        for name, value in (headers or {}).items():
            request_headers[name] = value
        request = tornado.httputil.HTTPServerRequest(
            method=method.upper(), uri=uri if uri.startswith("/") else "/" + uri,
            version="HTTP/1.1", headers=request_headers, body=body, connection=_Connection(done))
        application(request)
        return await done

    def submit(self, method: str, uri: str, body: bytes = b"",
               headers: dict[str, str] | None = None,
               origin: Origin | None = None) -> concurrent.futures.Future[Answer]:
        """Start a request from any thread; the future resolves with its :class:`Answer`."""
        if self._loop is None:
            raise RuntimeError("In-process REST calls are served once the server runs")
        return asyncio.run_coroutine_threadsafe(
            self.fetch(method, uri, body, headers, origin), self._loop)

    def call(self, method: str, uri: str, body: bytes = b"",
             headers: dict[str, str] | None = None, origin: Origin | None = None) -> Answer:
        """Serve one request and wait for its answer; never from the event loop thread."""
        if self._on_loop_thread():
            raise RuntimeError("In-process REST calls cannot wait on the event loop thread")
        return self.submit(method, uri, body, headers, origin).result()

    def _on_loop_thread(self) -> bool:
        try:
            return asyncio.get_running_loop() is self._loop
        except RuntimeError:
            return False

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
