"""Change and stored-instance callbacks: bus events -> orthanc-python changes.

They are delivered in order, off the request threads, by a
:class:`server.delivery.DeliveryQueue` (bounded, with backpressure).
"""

from __future__ import annotations

import logging
import threading
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
