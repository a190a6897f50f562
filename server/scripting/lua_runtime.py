"""One Lua state: a lupa runtime, its lock, its sandbox and its callback deadline.

Locking and re-entry
--------------------
All Lua code of a state runs under one re-entrant lock (Orthanc's recursive
mutex): callbacks of a state run strictly one at a time.  A callback that
calls out of Lua and waits (``RestApi*``, ``Http*``) keeps the lock, yet the
work it waits for may itself need Lua: the in-process request may store an
instance that ``ReceivedInstanceFilter`` must judge, an HTTP request to the
server's own URL must pass ``IncomingHttpRequestFilter``.  Orthanc deadlocks
there (its ``HttpGet`` to itself times out); here the waiting thread becomes
a :class:`Waiter` that *runs* the Lua work done on its behalf:

* in-process requests carry the waiter in a ``contextvars`` variable, which
  follows them into the event loop and the in-process worker threads;
* HTTP requests to the server's own port carry the waiter's random token in
  the ``X-Isengard-Lua-Call`` header (:data:`CALL_HEADER`).

Work that is not on behalf of the lock holder waits for the lock as usual, so
the strict one-at-a-time order of unrelated callbacks is kept.  Work on behalf
of a *different* state's holder waits at most :data:`NESTED_WAIT_SECONDS`,
which turns the only remaining cycle (two states each waiting for work that
needs the other) into an error instead of a deadlock.

Sandbox
-------
lupa's Python bridge is not reachable: the ``python`` module is removed, no
Python object is ever converted into a Lua value, the Python implementations
of the API are only held by local upvalues of the toolbox chunk, and
attribute access on any Python object is refused.  ``debug`` (which could read
those upvalues) is reduced to ``traceback``; ``os.exit`` is removed; ``load``
and friends accept source text only (binary chunks can crash the VM); C
modules cannot be loaded.

Timeout
-------
A count hook checks the deadline of the running call every
:data:`HOOK_INSTRUCTIONS` VM instructions: a callback that computes for more
than ``LuaCallbackTimeout`` seconds gets a Lua error at the line it reached,
which ``pcall`` cannot swallow.  Pattern matching, which runs in C where the
hook never fires, is made interruptible by :mod:`server.scripting.lua_patterns`.
Time spent blocked in ``RestApi*``/``Http*`` does not count (those calls have their own limits).

Memory
------
Each state allocates at most ``LuaMemoryLimitMB``: past it, the allocation
fails with Lua's "not enough memory" error (which ``pcall`` may catch), never
with the server's memory.
"""

from __future__ import annotations

import contextvars
import logging
import queue
import secrets
import threading
import time
from collections.abc import Callable
from concurrent.futures import Executor, Future
from pathlib import Path
from typing import Any, TypeVar

from lupa import lua53

from server.errors import ErrorCode
from server.scripting.lua_json import JsonReader, text, to_lua
from server.scripting.lua_patterns import PATTERN_BUDGET, PATTERNS
from server.scripting.lua_toolbox import TOOLBOX

log = logging.getLogger("isengard.lua")
T = TypeVar("T")

#: VM instructions between two deadline checks (about a millisecond of Lua).
HOOK_INSTRUCTIONS = 100_000
#: How long work done on behalf of one state's lock holder waits for another state's lock.
NESTED_WAIT_SECONDS = 60.0
#: Header naming the waiting Lua call of an HTTP request sent by ``Http*`` to this server.
CALL_HEADER = "X-Isengard-Lua-Call"
#: Orthanc's chunk name for ``/tools/execute-script`` (errors read ``[string "line"]:1: ...``).
COMMAND_CHUNK = "line"

_WAITERS: contextvars.ContextVar[tuple[Waiter, ...]] = contextvars.ContextVar("lua_waiters", default=())
_BY_TOKEN: dict[str, Waiter] = {}
_INSIDE = threading.local()


class LuaScriptError(Exception):
    """A Lua error; ``message`` is Lua's ``file:line: text``, ``code`` the Orthanc error to answer."""

    def __init__(self, message: str, code: ErrorCode = ErrorCode.CANNOT_EXECUTE_LUA,
                 traceback: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.traceback = traceback


def in_lua_context() -> bool:
    """True in a thread that runs Lua, or that works on behalf of a waiting Lua call."""
    return bool(_WAITERS.get()) or getattr(_INSIDE, "depth", 0) > 0


def join_call(token: str | None) -> None:
    """Make the current context (an HTTP request's task) work on behalf of the waiting Lua call
    named by ``token``, so that every Lua work of that request runs on the waiting thread."""
    waiter = _BY_TOKEN.get(token) if token else None
    if waiter is not None:
        _WAITERS.set(_WAITERS.get() + (waiter,))


class Waiter:
    """A Lua state's lock holder blocked in a call out of Lua, running the Lua work done for it."""

    def __init__(self, state: LuaState) -> None:
        self.state = state
        self.thread = threading.get_ident()
        self.token = secrets.token_hex(16)
        self._tasks: queue.SimpleQueue[tuple[Callable[[], Any], Future[Any]] | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._open = True

    def delegate(self, work: Callable[[], T]) -> Future[T] | None:
        """Hand ``work`` to the waiting thread; None once that thread stopped waiting."""
        future: Future[T] = Future()
        with self._lock:
            if not self._open:
                return None
            self._tasks.put((work, future))
        return future

    def serve_until(self, done: Future[Any]) -> None:
        done.add_done_callback(lambda _: self._tasks.put(None))
        while (task := self._tasks.get()) is not None:
            _run_task(*task)
        with self._lock:
            self._open = False
        while True:
            try:
                task = self._tasks.get_nowait()
            except queue.Empty:
                return
            if task is not None:
                _run_task(*task)


def _run_task(work: Callable[[], Any], future: Future[Any]) -> None:
    if not future.set_running_or_notify_cancel():
        return
    try:
        future.set_result(work())
    except BaseException as error:  # noqa: BLE001 - handed to the thread that delegated the work
        future.set_exception(error)


def _deny_attributes(obj: Any, name: Any, is_setting: bool) -> Any:
    raise AttributeError("Python objects are not accessible from Lua")


class LuaState:
    """A sandboxed Lua 5.3 state with Orthanc's toolbox, run under one re-entrant lock."""

    def __init__(self, name: str, timeout: float,
                 api: Callable[[LuaState], dict[str, Callable[..., Any]]],
                 max_memory: int | None = None) -> None:
        """``api`` builds the Python implementations of the public functions for this state;
        ``max_memory`` (bytes, ``LuaMemoryLimitMB``) caps what its Lua code may allocate."""
        self.name = name
        self.timeout = timeout
        self.max_memory = max_memory
        self.runtime = lua53.LuaRuntime(encoding=None, register_eval=False, register_builtins=False,
                                        unpack_returned_tuples=True, attribute_filter=_deny_attributes,
                                        max_memory=max_memory)
        self._lock = threading.RLock()
        self._deadlines: list[list[float]] = []
        self._outputs: list[list[str]] = []
        self._last_failure: tuple[str, ErrorCode] | None = None
        lua_globals = self.runtime.globals()
        self.json = JsonReader(lua_globals.tonumber, lua_globals.tostring)
        self._loader = self.runtime.execute(
            b"local load = load return function(source, name) local f, e = load(source, name, 't') return f, e end")
        internal = {"Print": self._print, "Interrupted": self._interrupted}
        with self._lock:
            self._run_chunk(TOOLBOX, "=toolbox")(
                self.runtime.table_from({k.encode(): v for k, v in api(self).items()}),
                self.runtime.table_from({k.encode(): v for k, v in internal.items()}),
                HOOK_INSTRUCTIONS)
            self._run_chunk(PATTERNS, "=patterns")(PATTERN_BUDGET)

    # -- running Lua -----------------------------------------------------------------

    def run(self, work: Callable[[], T]) -> T:
        """Run ``work`` (which uses this state) under the lock, or on the waiting holder's thread."""
        for waiter in reversed(_WAITERS.get()):
            if waiter.state is self and waiter.thread != threading.get_ident():
                future = waiter.delegate(work)
                if future is not None:
                    return future.result()
        nested = bool(_WAITERS.get())
        if not self._lock.acquire(timeout=NESTED_WAIT_SECONDS if nested else -1):
            raise LuaScriptError(f"The Lua {self.name} state stayed busy for {NESTED_WAIT_SECONDS:.0f} s "
                                 "while this call waited for it")
        _INSIDE.depth = getattr(_INSIDE, "depth", 0) + 1
        try:
            return work()
        finally:
            _INSIDE.depth -= 1
            self._lock.release()

    def submit(self, work: Callable[[], T], executor: Executor) -> Future[T]:
        """Start :meth:`run` without waiting: on the thread of a waiting call of this state that
        the current context works for, else in ``executor`` (in this context)."""
        for waiter in reversed(_WAITERS.get()):
            if waiter.state is self and waiter.thread != threading.get_ident():
                future = waiter.delegate(work)
                if future is not None:
                    return future
        return executor.submit(contextvars.copy_context().run, self.run, work)

    def blocking(self, start: Callable[[Waiter], Future[T]]) -> T:
        """From a Python function Lua called: wait for outside work, running Lua work done for it.

        ``start`` launches the work (in this context, so that in-process requests carry
        the waiter) and returns its future.
        """
        waiter = Waiter(self)
        _BY_TOKEN[waiter.token] = waiter
        began = time.monotonic()
        try:
            reset = _WAITERS.set(_WAITERS.get() + (waiter,))
            try:
                future = start(waiter)
            finally:
                _WAITERS.reset(reset)
            waiter.serve_until(future)
        finally:
            del _BY_TOKEN[waiter.token]
            if self._deadlines:
                self._deadlines[-1][0] += time.monotonic() - began
        return future.result()

    def call(self, function: str, *args: Any) -> tuple[bool, Any]:
        """Call the global ``function`` with JSON-like arguments: (defined, first result)."""
        def work() -> tuple[bool, Any]:
            target = self.runtime.globals()[function.encode()]
            if lua53.lua_type(target) != "function":
                return False, None
            converted = [to_lua(self.runtime, a) for a in args]
            return True, self._guarded(lambda: target(*converted))
        return self.run(work)

    def defined(self, names: list[str]) -> set[str]:
        """Which of ``names`` are global functions right now."""
        def work() -> set[str]:
            lua_globals = self.runtime.globals()
            return {n for n in names if lua53.lua_type(lua_globals[n.encode()]) == "function"}
        return self.run(work)

    def load_file(self, path: Path) -> None:
        source = path.read_bytes()
        self.run(lambda: self._guarded(lambda: self._run_chunk(source, "@" + str(path))()))

    def execute(self, source: bytes) -> str:
        """``/tools/execute-script``: run a chunk, answer what it printed."""
        def work() -> str:
            self._outputs.append([])
            try:
                self._guarded(lambda: self._run_chunk(source, COMMAND_CHUNK)())
                return "".join(self._outputs[-1])
            finally:
                self._outputs.pop()
        return self.run(work)

    def _run_chunk(self, source: bytes, name: str) -> Any:
        function, error = self._loader(source, name.encode())
        if function is None:
            raise LuaScriptError(text(error))
        return function

    def _guarded(self, body: Callable[[], T]) -> T:
        """Run Lua with a deadline; Lua errors become :class:`LuaScriptError`."""
        self._deadlines.append([time.monotonic() + self.timeout if self.timeout > 0 else float("inf")])
        self._last_failure = None
        try:
            return body()
        except lua53.LuaMemoryError:
            raise LuaScriptError(f"not enough memory: the Lua {self.name} state reached "
                                 f"LuaMemoryLimitMB ({(self.max_memory or 0) // 2 ** 20} MB)") from None
        except lua53.LuaError as error:
            raise self._script_error(str(error)) from None
        finally:
            self._deadlines.pop()

    def _script_error(self, raw: str) -> LuaScriptError:
        message, _, traceback = raw.partition("\nstack traceback:")
        code = ErrorCode.CANNOT_EXECUTE_LUA
        if self._last_failure is not None and message.endswith(self._last_failure[0]):
            code = self._last_failure[1]
        return LuaScriptError(message, code, traceback)

    # -- helpers for the API implementations -----------------------------------------

    def failure(self, message: str, code: ErrorCode = ErrorCode.CANNOT_EXECUTE_LUA) -> tuple[bool, bytes]:
        """What an API function returns to raise a Lua error (at the caller's line)."""
        self._last_failure = (message, code)
        return False, message.encode()

    def to_lua(self, value: Any) -> Any:
        return to_lua(self.runtime, value)

    # -- internal functions of the toolbox -------------------------------------------

    def _print(self, line: bytes) -> None:
        message = text(line)
        log.warning("Lua says: %s", message)
        if self._outputs:
            self._outputs[-1].append(message + "\n")

    def _interrupted(self) -> bytes | None:
        if self._deadlines and time.monotonic() > self._deadlines[-1][0]:
            return (f"Lua callback interrupted: it ran longer than LuaCallbackTimeout "
                    f"({self.timeout:g} s)").encode()
        return None
