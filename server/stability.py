"""Stable-resource detection: a patient, study or series is stable once no instance
has arrived for it during ``StableAge`` seconds.

The unstable resources live in the index (``UnstableResources``): each ingest records
its series, study and patient there in its own transaction (:meth:`Writes.touch_unstable`),
and the monitor of every node sharing the index looks for those past ``StableAge`` and
claims each by deleting its row, in the transaction that logs the Stable* change.  So a
resource becomes stable once however many nodes run, and a pending stability survives a
restart or a dead node (Orthanc keeps it in memory: there, a restart forgets it).  The
node that claims it publishes the ``stable`` event (Lua ``OnStable*``, Python
``STABLE_*``).  Scripts may force the status either way
(:meth:`StabilityMonitor.set_stable_status`, Orthanc 1.12.9).
"""

from __future__ import annotations

import logging
import threading
import time

from server import events
from server.dicom.main_tags import Level
from server.storage.index import Index, Resource

log = logging.getLogger("isengard.stability")


class StabilityMonitor:
    def __init__(self, index: Index, bus: events.EventBus, stable_age: float) -> None:
        self.index = index
        self.bus = bus
        self.stable_age = stable_age
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="stability", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def is_stable(self, internal_id: int) -> bool:
        return not self.index.is_unstable(internal_id)

    def unstable_among(self, internal_ids: list[int]) -> set[int]:
        return self.index.unstable_many(internal_ids)

    def set_stable_status(self, public_id: str, stable: bool) -> bool | None:
        """Lua's ``SetStableStatus`` and ``orthanc.SetStableStatus``: whether the status changed,
        None for an unknown resource.

        Making an unstable resource stable reaches stability now (the change, the event);
        a stable one is left alone.  Making a resource unstable restarts its ``StableAge``
        period whatever its status.  An instance has no stability: nothing changes.
        """
        resource = self.index.lookup(public_id)
        if resource is None:
            return None
        if resource.level == Level.INSTANCE:
            return False
        if stable:
            claimed = self.index.claim_stable([resource], None)
            self._publish(claimed)
            return bool(claimed)
        return self.index.set_unstable(resource)

    def _run(self) -> None:
        period = min(1.0, max(0.1, self.stable_age / 4))
        while not self._stop.wait(period):
            if self.index.read_only:
                continue  # nothing is ingested, and claiming would write
            try:
                self._check(time.time())
            except Exception as error:  # noqa: BLE001 - e.g. the index unreachable a moment: next period
                log.warning("Cannot check the stability of resources: %s", error)

    def _check(self, now: float) -> None:
        before = now - self.stable_age
        self._publish(self.index.claim_stable(self.index.due_unstable(before), before))

    def _publish(self, resources: list[Resource]) -> None:
        for resource in resources:
            self.bus.publish(events.ResourceEvent(events.Kind.STABLE, resource.level,
                                                  resource.public_id))
