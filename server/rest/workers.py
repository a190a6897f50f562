"""The worker threads of the REST handlers, and the cheap way from the event loop to them.

:class:`ContextExecutor` is a ``ThreadPoolExecutor`` that runs each task in its submitter's
``contextvars`` context and counts the tasks running (``orthanc_available_http_threads_count``).

A handler's blocking work (``await self.run(...)``) goes through :meth:`ContextExecutor.run_async`
rather than ``loop.run_in_executor``: one work item on the pool's queue that settles an
asyncio future, instead of a ``concurrent.futures.Future`` chained to an asyncio one (two
futures, their locks and callbacks on both threads).  Above all, the worker wakes the event
loop as the very last thing it does: woken earlier, the loop's thread finds the worker still
holding the GIL for its own bookkeeping, sleeps again and must be woken a second time, a pair
of context switches per request (~20 us of CPU per hop, measured).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


class ContextExecutor(concurrent.futures.ThreadPoolExecutor):
    """A thread pool that runs each task in the submitter's ``contextvars`` context, and
    counts the tasks running (``orthanc_available_http_threads_count``)."""

    def __init__(self, max_workers: int, thread_name_prefix: str = "") -> None:
        super().__init__(max_workers, thread_name_prefix=thread_name_prefix)
        self.workers = max_workers
        self._running = 0
        self._running_lock = threading.Lock()

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> concurrent.futures.Future:
        return super().submit(self._counted, contextvars.copy_context(), fn, *args, **kwargs)

    def _counted(self, context: contextvars.Context, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        with self._running_lock:
            self._running += 1
        try:
            return context.run(fn, *args, **kwargs)
        finally:
            with self._running_lock:
                self._running -= 1

    def available(self) -> int:
        """Workers not running a task now."""
        with self._running_lock:
            return max(0, self.workers - self._running)

    def run_async(self, loop: asyncio.AbstractEventLoop, fn: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        """``fn(*args)`` in a worker thread (in this context), as a future of ``loop``.

        The item goes on the queue the pool's threads read (``ThreadPoolExecutor``'s own,
        whose workers call ``run()`` on what they take), so both kinds of work share the
        threads, the thread count and :meth:`shutdown`."""
        future: asyncio.Future[T] = loop.create_future()
        work = _LoopWork(self, loop, future, fn, args, contextvars.copy_context())
        with self._shutdown_lock:  # type: ignore[attr-defined]
            if self._shutdown or self._broken:  # type: ignore[attr-defined]
                raise RuntimeError("cannot schedule new futures after shutdown")
            self._work_queue.put(work)  # type: ignore[attr-defined]
            self._adjust_thread_count()  # type: ignore[attr-defined]
        return future


class _LoopWork:
    """One :meth:`ContextExecutor.run_async` task, as the pool's threads run their items."""

    __slots__ = ("executor", "loop", "target", "fn", "args", "context")

    def __init__(self, executor: ContextExecutor, loop: asyncio.AbstractEventLoop, target: asyncio.Future[Any],
                 fn: Callable[..., Any], args: tuple[Any, ...], context: contextvars.Context) -> None:
        self.executor = executor
        self.loop = loop
        self.target = target
        self.fn = fn
        self.args = args
        self.context = context

    def run(self) -> None:
        if self.target.cancelled():
            return
        executor = self.executor
        with executor._running_lock:
            executor._running += 1
        result: Any = None
        error: BaseException | None = None
        try:
            result = self.context.run(self.fn, *self.args)
        except BaseException as e:  # noqa: BLE001 - the awaiting coroutine raises it
            error = e
        with executor._running_lock:
            executor._running -= 1
        self._settle(result, error)

    def _settle(self, result: Any, error: BaseException | None) -> None:
        """Wake the loop with the outcome: the worker's last use of the GIL for this item."""
        try:
            self.loop.call_soon_threadsafe(_set_outcome, self.target, result, error)
        except RuntimeError:
            pass  # the loop is closed: nobody awaits the answer any more

    @property
    def future(self) -> _QueuedFuture:
        """What ``shutdown(cancel_futures=True)`` cancels for items still queued."""
        return _QueuedFuture(self)


class _QueuedFuture:
    """The part of a ``concurrent.futures.Future`` the pool uses on an item never run."""

    def __init__(self, work: _LoopWork) -> None:
        self._work = work

    def cancel(self) -> bool:
        work = self._work
        try:
            work.loop.call_soon_threadsafe(work.target.cancel)
        except RuntimeError:
            pass
        return True

    def set_exception(self, error: BaseException) -> None:
        self._work._settle(None, error)


def _set_outcome(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.cancelled():
        return
    if error is None:
        future.set_result(result)
    elif isinstance(error, concurrent.futures.CancelledError):
        future.cancel()
    elif isinstance(error, StopIteration):  # an asyncio future refuses it
        future.set_exception(RuntimeError(f"StopIteration raised in a worker thread: {error!r}"))
    else:
        future.set_exception(error)
