"""Change and stored-instance callbacks: bus events -> orthanc-python changes.

They are delivered in order, off the request threads, by a
:class:`server.delivery.DeliveryQueue` (bounded, with backpressure).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

from server.dicom.main_tags import Level
from server.events import Event, InstanceStored, JobEvent, Kind, ResourceEvent
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
_JOBS = {Kind.JOB_SUBMITTED: CHANGE["JOB_SUBMITTED"], Kind.JOB_SUCCESS: CHANGE["JOB_SUCCESS"],
         Kind.JOB_FAILURE: CHANGE["JOB_FAILURE"]}
_SERVER = {Kind.STARTED: CHANGE["ORTHANC_STARTED"], Kind.STOPPED: CHANGE["ORTHANC_STOPPED"]}


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

    KINDS = (*_SERVER, Kind.NEW_RESOURCE, Kind.STORED, Kind.DELETED, Kind.STABLE, Kind.UPDATED, *_JOBS)

    def __init__(self) -> None:
        self._pending = threading.local()

    def changes(self, event: Event) -> list[Change]:
        if isinstance(event, InstanceStored):
            return self._stored(event)
        if isinstance(event, JobEvent):
            return [Change(_JOBS[event.kind], NO_RESOURCE, event.job_id)] if event.kind in _JOBS else []
        if isinstance(event, ResourceEvent):
            if event.kind is Kind.NEW_RESOURCE:
                self._new_levels().append((Level(event.level), event.resource_id))
                return []
            return self._resource_change(event)
        return [Change(_SERVER[event.kind], NO_RESOURCE, "")]

    def _new_levels(self) -> list[tuple[Level, str]]:
        if not hasattr(self._pending, "levels"):
            self._pending.levels = []
        levels: list[tuple[Level, str]] = self._pending.levels
        return levels

    def _stored(self, event: InstanceStored) -> list[Change]:
        created = self._new_levels()
        self._pending.levels = []
        if event.status != "Success":
            return []
        ids = event.parsed.ids
        changes = [Change(_NEW[level], int(level), resource_id) for level, resource_id in reversed(created)]
        changes += [Change(CHANGE["NEW_CHILD_INSTANCE"], int(level), ids[level])
                    for level in (Level.SERIES, Level.STUDY, Level.PATIENT)]
        return changes

    @staticmethod
    def _resource_change(event: ResourceEvent) -> list[Change]:
        level, resource_id = Level(event.level), event.resource_id
        if event.kind is Kind.DELETED:
            return [Change(CHANGE["DELETED"], int(level), resource_id)]
        if event.kind is Kind.STABLE and level in _STABLE:
            return [Change(_STABLE[level], int(level), resource_id)]
        if event.kind is Kind.UPDATED:
            change = "UPDATED_ATTACHMENT" if event.attachment else "UPDATED_METADATA"
            return [Change(CHANGE[change], int(level), resource_id)]
        return []
