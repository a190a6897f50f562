"""Group commit: the index writes of concurrent callers done together, in one transaction.

Each caller queues its work, then takes the writers' lock.  Whoever holds the lock takes
everything queued so far and runs it as one batch; every caller gets its own outcome (a
result or an exception), and a caller whose work another one ran finds it done when it
gets the lock.  Nobody waits for a batch to fill: a lone caller runs a batch of one at
once, and under load batches form by themselves from the callers that arrived while the
previous transaction ran.  A batch may also take, once, the callers that arrived while it
waited for its transaction (``more``): several nodes share one PostgreSQL writer at a time,
and a node's batch would otherwise hold only what came before it began to wait.  Each
caller returns only once its batch has committed, so an answer still means a durable write.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")

#: The most pieces of work one batch takes (one transaction's size stays bounded).
BATCH_LIMIT = 32


class _Entry(Generic[T, R]):
    __slots__ = ("work", "done", "result", "error")

    def __init__(self, work: T) -> None:
        self.work = work
        self.done = False
        self.result: R | None = None
        self.error: BaseException | None = None


class GroupCommit(Generic[T, R]):
    """``run_batch`` gets a list of work and a ``more`` function, and answers one outcome per
    piece, in order: a result, or the exception that piece's caller is to raise.  ``more()``
    adds the work queued since to the list (and returns it), within :data:`BATCH_LIMIT`."""

    def __init__(self, run_batch: Callable[[list[T], Callable[[], list[T]]], list[R | BaseException]]) -> None:
        self._run_batch = run_batch
        self._writer = threading.Lock()
        self._queue_lock = threading.Lock()
        self._queued: list[_Entry[T, R]] = []

    def submit(self, work: T) -> R:
        """Run ``work`` (alone or with others'); its outcome once its batch is over."""
        entry: _Entry[T, R] = _Entry(work)
        with self._queue_lock:
            self._queued.append(entry)
        while not entry.done:
            with self._writer:
                if entry.done:
                    break
                with self._queue_lock:
                    batch, self._queued = self._queued[:BATCH_LIMIT], self._queued[BATCH_LIMIT:]
                self._run(batch)
        if entry.error is not None:
            raise entry.error
        return entry.result  # type: ignore[return-value]

    def _run(self, batch: list[_Entry[T, R]]) -> None:
        works = [entry.work for entry in batch]

        def more() -> list[T]:
            with self._queue_lock:
                room = BATCH_LIMIT - len(batch)
                extra, self._queued = self._queued[:room], self._queued[room:]
            batch.extend(extra)
            works.extend(entry.work for entry in extra)
            return [entry.work for entry in extra]

        try:
            outcomes = self._run_batch(works, more)
        except BaseException as error:  # noqa: BLE001 - every caller of the batch gets it
            outcomes = [error] * len(batch)
        for entry, outcome in zip(batch, outcomes, strict=True):
            if isinstance(outcome, BaseException):
                entry.error = outcome
            else:
                entry.result = outcome
            entry.done = True
