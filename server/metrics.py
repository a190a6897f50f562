"""Metrics as Orthanc keeps them: plain values, and "maximum over the last 10 s" windows.

The REST layer and the store path record here; ``/tools/metrics-prometheus``
renders the registry.
"""

from __future__ import annotations

import threading
import time
from collections import deque

#: Orthanc's window for the ``*_duration_ms`` and active-requests metrics.
WINDOW_SECONDS = 10.0


class MaxOverWindow:
    """The maximum of the values recorded during the last ``window`` seconds."""

    def __init__(self, window: float = WINDOW_SECONDS) -> None:
        self.window = window
        self._values: deque[tuple[float, float]] = deque()

    def record(self, value: float, now: float) -> None:
        while self._values and self._values[-1][1] <= value:
            self._values.pop()
        self._values.append((now, value))
        self._expire(now)

    def value(self, now: float) -> float | None:
        self._expire(now)
        return max((v for _, v in self._values), default=None)

    def _expire(self, now: float) -> None:
        while len(self._values) > 1 and self._values[0][0] < now - self.window:
            self._values.popleft()


class Metrics:
    """The registry: named values with the time (ms) they were last set."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self._lock = threading.Lock()
        self._values: dict[str, tuple[float, int]] = {}
        self._windows: dict[str, MaxOverWindow] = {}
        self._active_requests = 0

    def set(self, name: str, value: float) -> None:
        if not self.enabled:
            return
        with self._lock:
            self._values[name] = (value, int(time.time() * 1000))

    def record_max(self, name: str, value: float) -> None:
        """Record a sample of a "max over 10 s" metric (durations, concurrency)."""
        if not self.enabled:
            return
        now = time.monotonic()
        with self._lock:
            window = self._windows.setdefault(name, MaxOverWindow())
            window.record(value, now)
            self._values[name] = (window.value(now) or 0, int(time.time() * 1000))

    def request_started(self) -> None:
        with self._lock:
            self._active_requests += 1
            active = self._active_requests
        self.record_max("orthanc_rest_api_active_requests", active)

    def request_finished(self, seconds: float) -> None:
        with self._lock:
            self._active_requests -= 1
        self.record_max("orthanc_rest_api_duration_ms", seconds * 1000)

    def snapshot(self) -> dict[str, tuple[float, int]]:
        now = time.monotonic()
        with self._lock:
            for name, window in self._windows.items():
                current = window.value(now)
                if current is not None and name in self._values:
                    self._values[name] = (current, self._values[name][1])
            return dict(self._values)
