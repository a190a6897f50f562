"""Stable-resource detection: a patient, study or series is stable once no instance
has arrived for it during ``StableAge`` seconds.

As in Orthanc, the set of unstable resources lives in memory only: after a restart
every resource is stable.  Reaching stability logs a Stable* change and publishes
a ``stable`` event (Lua ``OnStable*``, Python ``STABLE_*``).  Scripts may force the
status either way (:meth:`StabilityMonitor.set_stable_status`, Orthanc 1.12.9).
"""

from __future__ import annotations

import threading
import time

from server import events
from server.dicom.main_tags import Level
from server.storage.index import Change, Index

_CHANGE = {Level.PATIENT: Change.StablePatient, Level.STUDY: Change.StableStudy,
           Level.SERIES: Change.StableSeries}


class StabilityMonitor:
    def __init__(self, index: Index, bus: events.EventBus, stable_age: float) -> None:
        self.index = index
        self.bus = bus
        self.stable_age = stable_age
        self._deadlines: dict[str, tuple[Level, float]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="stability", daemon=True)
        bus.subscribe(events.Kind.STORED, self._on_stored)
        bus.subscribe(events.Kind.DELETED, self._on_deleted)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def is_stable(self, public_id: str) -> bool:
        with self._lock:
            return public_id not in self._deadlines

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
        with self._lock:
            changed = (public_id in self._deadlines) == stable
            self._deadlines.pop(public_id, None)
            if not stable:
                self._deadlines[public_id] = (resource.level, time.monotonic() + self.stable_age)
        if stable and changed:
            self._become_stable(public_id, resource.level)
        return changed

    def _on_stored(self, event: events.InstanceStored) -> None:
        if event.status != "Success":
            return
        ids = event.parsed.ids
        deadline = time.monotonic() + self.stable_age
        with self._lock:
            for level in (Level.SERIES, Level.STUDY, Level.PATIENT):
                self._deadlines.pop(ids[level], None)
                self._deadlines[ids[level]] = (level, deadline)

    def _on_deleted(self, event: events.ResourceEvent) -> None:
        with self._lock:
            self._deadlines.pop(event.resource_id, None)

    def _run(self) -> None:
        period = min(1.0, max(0.1, self.stable_age / 4))
        while not self._stop.wait(period):
            self._check(time.monotonic())

    def _check(self, now: float) -> None:
        due: list[tuple[str, Level]] = []
        with self._lock:
            for public_id, (level, deadline) in list(self._deadlines.items()):
                if deadline <= now:
                    due.append((public_id, level))
                    del self._deadlines[public_id]
        for public_id, level in due:
            self._become_stable(public_id, level)

    def _become_stable(self, public_id: str, level: Level) -> None:
        """Outside the lock: listeners may store instances, which takes it."""
        resource = self.index.lookup(public_id)
        if resource is None:
            return
        self.index.log_change(_CHANGE[level], resource.internal_id)
        self.bus.publish(events.ResourceEvent(events.Kind.STABLE, level, public_id))
