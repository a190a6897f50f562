"""A bounded FIFO of calls run one after the other by one thread: how scripts get events.

Publishers (uploads, C-STORE, deletions, the stable monitor, the jobs engine)
only enqueue, so a slow or failing callback never holds a request, and
callbacks run in the order of the events.  The queue is bounded: a publisher
waits for room (backpressure), except where waiting could deadlock — on the
event loop thread, on the delivery thread itself and in work done on its behalf
(its ``contextvars`` travel with in-process calls), or where the owner says so
(``exempt``).  A publisher that waited ``full_wait`` seconds enqueues anyway,
so that an event is never lost.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future

log = logging.getLogger("isengard.events")


class DeliveryQueue:
    def __init__(self, name: str, limit: int, full_wait: float,
                 exempt: Callable[[], bool] = lambda: False) -> None:
        self.name = name
        self._limit = limit
        self._full_wait = full_wait
        self._exempt = exempt
        self._items: deque[Callable[[], None]] = deque()
        self._busy = False
        self._closed = False
        self._queued = 0
        self._delivered = 0
        #: (how many deliveries must have ended, future) of :meth:`drained`'s callers.
        self._waiters: list[tuple[int, Future[None]]] = []
        self._condition = threading.Condition()
        self._delivering: contextvars.ContextVar[bool] = contextvars.ContextVar(f"{name}_delivering",
                                                                                default=False)
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        """Start delivering (what was queued before waits until then)."""
        self._thread.start()

    def put(self, delivery: Callable[[], None], wait: bool = True) -> None:
        with self._condition:
            if self._closed:
                return
            if wait and len(self._items) >= self._limit and self._may_wait():
                deadline = time.monotonic() + self._full_wait
                while len(self._items) >= self._limit and not self._closed:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        log.warning("The queue of %s stayed full for %g s (a callback is slow): queuing anyway",
                                    self.name, self._full_wait)
                        break
                    self._condition.wait(remaining)
            self._items.append(delivery)
            self._queued += 1
            self._condition.notify_all()

    def idle(self) -> bool:
        """Whether every delivery queued so far has ended: :meth:`drained` would be resolved at
        once.  Without its future and lock, for the callers that ask often (each HTTP request)."""
        return self._delivered >= self._queued or self._closed

    def drained(self) -> Future[None]:
        """A future resolved once every delivery queued so far has ended (at once when idle)."""
        future: Future[None] = Future()
        with self._condition:
            if self._delivered >= self._queued or self._closed:
                future.set_result(None)
            else:
                self._waiters.append((self._queued, future))
        return future

    def _resolve_waiters(self) -> None:
        """With the condition held: wake the :meth:`drained` callers whose deliveries ended."""
        pending = []
        for target, future in self._waiters:
            if self._delivered >= target or self._closed:
                if not future.done():  # a caller that stopped waiting cancelled it
                    future.set_result(None)
            else:
                pending.append((target, future))
        self._waiters = pending

    def _may_wait(self) -> bool:
        if self._delivering.get() or self._exempt():
            return False
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return True
        return False

    def _run(self) -> None:
        self._delivering.set(True)
        while True:
            with self._condition:
                while not self._items and not self._closed:
                    self._condition.wait()
                if not self._items:
                    return
                delivery = self._items.popleft()
                self._busy = True
                self._condition.notify_all()
            try:
                delivery()
            except Exception:  # noqa: BLE001 - one failing callback must not stop the deliveries
                log.exception("Delivery of %s failed", self.name)
            finally:
                with self._condition:
                    self._busy = False
                    self._delivered += 1
                    self._resolve_waiters()
                    self._condition.notify_all()

    def close(self, timeout: float) -> bool:
        """Deliver what is queued (at most ``timeout`` seconds), then stop; True if all was delivered."""
        deadline = time.monotonic() + timeout
        with self._condition:
            if self._thread.is_alive():
                while (self._items or self._busy) and time.monotonic() < deadline:
                    self._condition.wait(deadline - time.monotonic())
            drained = not self._items and not self._busy
            self._closed = True
            self._items.clear()
            self._resolve_waiters()
            self._condition.notify_all()
        return drained
