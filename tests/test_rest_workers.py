"""The handlers' way to their worker threads (``ContextExecutor.run_async``): outcomes, the
submitter's context, the running count, cancellation and shutdown, as with ``run_in_executor``."""

from __future__ import annotations

import asyncio
import contextvars
import threading

import pytest

from server.rest.workers import ContextExecutor

CALLER = contextvars.ContextVar("CALLER", default="nobody")


def test_the_result_comes_from_a_worker_thread_in_the_callers_context() -> None:
    pool = ContextExecutor(2, thread_name_prefix="test-worker")

    async def main() -> tuple[str, str]:
        CALLER.set("handler")
        return await pool.run_async(asyncio.get_running_loop(),
                                    lambda: (CALLER.get(), threading.current_thread().name))
    try:
        caller, thread = asyncio.run(main())
    finally:
        pool.shutdown()
    assert caller == "handler"
    assert thread.startswith("test-worker")


def test_errors_reach_the_awaiting_coroutine() -> None:
    pool = ContextExecutor(1)

    def fail(error: BaseException) -> None:
        raise error

    async def main() -> None:
        loop = asyncio.get_running_loop()
        with pytest.raises(KeyError):
            await pool.run_async(loop, fail, KeyError("x"))
        with pytest.raises(RuntimeError, match="StopIteration"):  # an asyncio future refuses StopIteration itself
            await pool.run_async(loop, fail, StopIteration())
        assert await pool.run_async(loop, lambda: 7) == 7  # the worker survived both
    try:
        asyncio.run(main())
    finally:
        pool.shutdown()


def test_the_running_count_is_back_when_the_coroutine_resumes() -> None:
    """The worker wakes the loop last: its own bookkeeping is done by then."""
    pool = ContextExecutor(3)
    started, release = threading.Event(), threading.Event()

    def hold() -> int:
        started.set()
        release.wait(10)
        return pool.available()

    async def main() -> tuple[int, int, int]:
        loop = asyncio.get_running_loop()
        work = pool.run_async(loop, hold)
        await loop.run_in_executor(None, started.wait, 10)
        during = pool.available()
        release.set()
        inside = await work
        return during, inside, pool.available()
    try:
        during, inside, after = asyncio.run(main())
    finally:
        pool.shutdown()
    assert (during, inside, after) == (2, 2, 3)


def test_cancelled_work_never_runs_and_shutdown_cancels_what_is_queued() -> None:
    pool = ContextExecutor(1)
    started, release = threading.Event(), threading.Event()
    ran: list[str] = []

    def hold() -> None:
        started.set()
        release.wait(10)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        first = pool.run_async(loop, hold)
        await loop.run_in_executor(None, started.wait, 10)
        cancelled = pool.run_async(loop, ran.append, "cancelled")
        cancelled.cancel()
        queued = pool.run_async(loop, ran.append, "queued")
        pool.shutdown(wait=False, cancel_futures=True)
        with pytest.raises(RuntimeError):
            pool.run_async(loop, ran.append, "after shutdown")
        release.set()
        await first
        with pytest.raises(asyncio.CancelledError):
            await queued
    asyncio.run(main())
    pool.shutdown()
    assert ran == []
