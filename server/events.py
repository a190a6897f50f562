"""One in-process event bus: what happened to resources, jobs and the server.

Publishers (the store path, deletions, the stable-resource monitor, the jobs
engine) never know who listens; Lua, Python, metrics and future listeners
subscribe here.  Listeners run synchronously in the publisher's thread, so a
listener that may be slow hands the event to its own worker.
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("isengard.events")

#: Event kinds.
STORED = "stored"            # payload: instance_id, origin (dict), parsed (ParsedInstance)
NEW_RESOURCE = "new"         # payload: level, resource_id
DELETED = "deleted"          # payload: level, resource_id
STABLE = "stable"            # payload: level, resource_id
UPDATED = "updated"          # payload: level, resource_id (metadata or attachment changed)
STARTED = "started"
STOPPED = "stopped"
JOB_SUBMITTED = "job_submitted"  # payload: job_id
JOB_SUCCESS = "job_success"
JOB_FAILURE = "job_failure"


@dataclass
class Event:
    kind: str
    payload: dict[str, Any] = field(default_factory=dict)


Listener = Callable[[Event], None]


class EventBus:
    def __init__(self) -> None:
        self._listeners: dict[str, list[Listener]] = defaultdict(list)
        self._lock = threading.Lock()

    def subscribe(self, kind: str, listener: Listener) -> None:
        with self._lock:
            self._listeners[kind].append(listener)

    def unsubscribe(self, kind: str, listener: Listener) -> None:
        with self._lock:
            if listener in self._listeners.get(kind, ()):
                self._listeners[kind].remove(listener)

    def publish(self, kind: str, **payload: Any) -> None:
        with self._lock:
            listeners = list(self._listeners.get(kind, ()))
        event = Event(kind, payload)
        for listener in listeners:
            try:
                listener(event)
            except Exception:  # noqa: BLE001 - a faulty listener must not break the publisher
                log.exception("Listener of %s events failed", kind)
