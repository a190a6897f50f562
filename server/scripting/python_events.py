"""Change and stored-instance callbacks: bus events -> orthanc-python changes, delivered in order.

Publishers (uploads, C-STORE, deletions, the stable monitor, the jobs engine)
only enqueue; one thread calls the script, in the order of the events, so a
slow or failing callback never holds a request.  The queue is bounded: a
publisher waits for room (backpressure), except when the wait could be a
deadlock — on the event loop thread, on the delivery thread itself, or for work
the delivery thread waits for (in-process REST calls carry its
``contextvars``); a publisher that waited :data:`FULL_WAIT_SECONDS` enqueues
anyway, so that an event is never lost.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from server import events
from server.dicom.main_tags import Level
from server.scripting.python_enums import CHANGE, NO_RESOURCE

log = logging.getLogger("isengard.plugins.python")

#: Pending deliveries (changes and stored instances) before publishers wait.
QUEUE_LIMIT = 1000
#: How long a publisher waits for room before enqueuing anyway.
FULL_WAIT_SECONDS = 10.0

#: True in the delivery thread and in work done on its behalf.
DELIVERING: contextvars.ContextVar[bool] = contextvars.ContextVar("python_delivering", default=False)

_NEW = {Level.PATIENT: CHANGE["NEW_PATIENT"], Level.STUDY: CHANGE["NEW_STUDY"],
        Level.SERIES: CHANGE["NEW_SERIES"], Level.INSTANCE: CHANGE["NEW_INSTANCE"]}
_STABLE = {Level.PATIENT: CHANGE["STABLE_PATIENT"], Level.STUDY: CHANGE["STABLE_STUDY"],
           Level.SERIES: CHANGE["STABLE_SERIES"]}
_JOBS = {events.JOB_SUBMITTED: CHANGE["JOB_SUBMITTED"], events.JOB_SUCCESS: CHANGE["JOB_SUCCESS"],
         events.JOB_FAILURE: CHANGE["JOB_FAILURE"]}


@dataclass(frozen=True)
class Change:
    """One ``callback(change_type, resource_type, resource_id)`` call."""

    change_type: int
    resource_type: int
    resource_id: str


class DeliveryQueue:
    """A bounded FIFO of zero-argument calls, run one after the other by one thread."""

    def __init__(self, limit: int = QUEUE_LIMIT, full_wait: float = FULL_WAIT_SECONDS) -> None:
        self._limit = limit
        self._full_wait = full_wait
        self._items: deque[Callable[[], None]] = deque()
        self._busy = False
        self._closed = False
        self._condition = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="python-changes", daemon=True)
        self._thread.start()

    def put(self, delivery: Callable[[], None]) -> None:
        with self._condition:
            if self._closed:
                return
            if len(self._items) >= self._limit and self._may_wait():
                deadline = time.monotonic() + self._full_wait
                while len(self._items) >= self._limit and not self._closed:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        log.warning("The queue of Python change callbacks is full (%d): the callback is slow",
                                    len(self._items))
                        break
                    self._condition.wait(remaining)
            self._items.append(delivery)
            self._condition.notify_all()

    @staticmethod
    def _may_wait() -> bool:
        if DELIVERING.get():
            return False
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return True
        return False

    def _run(self) -> None:
        DELIVERING.set(True)
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
            finally:
                with self._condition:
                    self._busy = False
                    self._condition.notify_all()

    def close(self, timeout: float) -> bool:
        """Deliver what is queued (at most ``timeout`` seconds), then stop; True if all was delivered."""
        deadline = time.monotonic() + timeout
        with self._condition:
            while (self._items or self._busy) and time.monotonic() < deadline:
                self._condition.wait(deadline - time.monotonic())
            drained = not self._items and not self._busy
            self._closed = True
            self._items.clear()
            self._condition.notify_all()
        return drained


class ChangeTranslator:
    """Bus events -> orthanc-python changes, in Orthanc's order.

    An ingest publishes its new resources from the patient down, then ``STORED``;
    Orthanc signals them from the instance up, then ``NEW_CHILD_INSTANCE`` for the
    series, study and patient.  Both happen in the ingesting thread, so new
    resources wait in a thread-local list until their ``STORED`` event.
    """

    KINDS = (events.STARTED, events.STOPPED, events.NEW_RESOURCE, events.STORED, events.DELETED,
             events.STABLE, events.UPDATED, *_JOBS)

    def __init__(self) -> None:
        self._pending = threading.local()

    def changes(self, event: events.Event) -> list[Change]:
        kind, payload = event.kind, event.payload
        if kind == events.NEW_RESOURCE:
            self._new_levels().append((Level(payload["level"]), payload["resource_id"]))
            return []
        if kind == events.STORED:
            return self._stored(payload)
        if kind == events.STARTED:
            return [Change(CHANGE["ORTHANC_STARTED"], NO_RESOURCE, "")]
        if kind == events.STOPPED:
            return [Change(CHANGE["ORTHANC_STOPPED"], NO_RESOURCE, "")]
        if kind in _JOBS:
            return [Change(_JOBS[kind], NO_RESOURCE, payload["job_id"])]
        return self._resource_change(kind, Level(payload["level"]), payload["resource_id"], payload)

    def _new_levels(self) -> list[tuple[Level, str]]:
        if not hasattr(self._pending, "levels"):
            self._pending.levels = []
        return self._pending.levels

    def _stored(self, payload: dict[str, Any]) -> list[Change]:
        created = self._new_levels()
        self._pending.levels = []
        if payload.get("status") != "Success":
            return []
        ids = payload["parsed"].ids
        changes = [Change(_NEW[level], int(level), resource_id) for level, resource_id in reversed(created)]
        changes += [Change(CHANGE["NEW_CHILD_INSTANCE"], int(level), ids[level])
                    for level in (Level.SERIES, Level.STUDY, Level.PATIENT)]
        return changes

    @staticmethod
    def _resource_change(kind: str, level: Level, resource_id: str, payload: dict[str, Any]) -> list[Change]:
        if kind == events.DELETED:
            return [Change(CHANGE["DELETED"], int(level), resource_id)]
        if kind == events.STABLE and level in _STABLE:
            return [Change(_STABLE[level], int(level), resource_id)]
        if kind == events.UPDATED:
            change = "UPDATED_ATTACHMENT" if payload.get("attachment") else "UPDATED_METADATA"
            return [Change(CHANGE[change], int(level), resource_id)]
        return []
