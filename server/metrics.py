"""Metrics as Orthanc keeps them: plain values, counters, and "maximum over the last 10 s" windows.

The REST layer, the store path and the storage area record here;
``/tools/metrics-prometheus`` refreshes the state metrics (counts from the
index, jobs from the engine) and renders the registry in Prometheus' text
format, under the ``orthanc_*`` names Orthanc uses so that existing dashboards
work.  Nothing is recorded while metrics are disabled (``MetricsEnabled``,
``PUT /tools/metrics``).
"""

from __future__ import annotations

import logging
import struct
import threading
import time
from collections import deque
from collections.abc import Mapping

#: Orthanc's window for the ``*_duration_ms`` and active-requests metrics.
WINDOW_SECONDS = 10.0

MEGABYTE = 1024 * 1024

#: Job states as Orthanc's ``JobsRegistry::GetStatistics`` counts them.
_PENDING_STATES = ("Pending", "Retry")
_RUNNING_STATES = ("Running", "Paused")

Number = int | float

#: Orthanc 1.13's counters since start-up, shown at 0 from the first scrape.
CUMULATIVE = ("orthanc_jobs_total_completed", "orthanc_jobs_total_success", "orthanc_jobs_total_failed",
              "orthanc_logged_errors_count", "orthanc_logged_warnings_count")


class MaxOverWindow:
    """The maximum of the values recorded during the last ``window`` seconds."""

    def __init__(self, window: float = WINDOW_SECONDS) -> None:
        self.window = window
        self._values: deque[tuple[float, Number]] = deque()

    def record(self, value: Number, now: float) -> Number:
        """Add a sample; the maximum over the window, this sample included."""
        while self._values and self._values[-1][1] <= value:
            self._values.pop()
        self._values.append((now, value))
        self._expire(now)
        return self._values[0][1]

    def value(self, now: float) -> Number | None:
        """The first value: :meth:`record` keeps them in decreasing order."""
        self._expire(now)
        return self._values[0][1] if self._values else None

    def _expire(self, now: float) -> None:
        while len(self._values) > 1 and self._values[0][0] < now - self.window:
            self._values.popleft()


def _now_ms() -> int:
    return int(time.time() * 1000)


class Metrics:
    """The registry: named values with the time (ms since the epoch) they were last set."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.started = time.monotonic()
        self._lock = threading.Lock()
        self._values: dict[str, tuple[Number, int]] = {}
        self._windows: dict[str, MaxOverWindow] = {}
        self._active_requests = 0
        for name in CUMULATIVE:
            self.increment(name, 0)

    def set_enabled(self, enabled: bool) -> None:
        """``PUT /tools/metrics``: what was recorded stays, nothing new is recorded while off."""
        self.enabled = enabled

    def set(self, name: str, value: Number) -> None:
        if not self.enabled:
            return
        with self._lock:
            self._values[name] = (value, _now_ms())

    def increment(self, name: str, amount: int) -> None:
        """Add to a counter (``orthanc_storage_written_bytes`` ...)."""
        if not self.enabled:
            return
        with self._lock:
            current = self._values.get(name, (0, 0))[0]
            self._values[name] = (current + amount, _now_ms())

    def record_max(self, name: str, value: Number) -> None:
        """Record a sample of a "max over 10 s" metric (durations, concurrency)."""
        if not self.enabled:
            return
        now = time.monotonic()
        with self._lock:
            self._record_max(name, value, now)

    def _record_max(self, name: str, value: Number, now: float) -> None:
        """:meth:`record_max`, the lock held."""
        window = self._windows.get(name)
        if window is None:
            window = self._windows[name] = MaxOverWindow()
        self._values[name] = (window.record(value, now), _now_ms())

    def timer(self, name: str) -> _Timer:
        """Record how long the block took, in whole milliseconds as Orthanc's ``Timer``."""
        return _Timer(self, name)

    def job_ended(self, success: bool) -> None:
        """Orthanc 1.13's cumulative ``orthanc_jobs_total_*``: jobs ended since start-up (the
        ``orthanc_jobs_success``... gauges count only those the history still holds)."""
        self.increment("orthanc_jobs_total_completed", 1)
        self.increment("orthanc_jobs_total_success" if success else "orthanc_jobs_total_failed", 1)

    def request_started(self) -> None:
        now = time.monotonic()
        with self._lock:
            self._active_requests += 1
            if self.enabled:
                self._record_max("orthanc_rest_api_active_requests", self._active_requests, now)

    def request_finished(self, seconds: float) -> None:
        now = time.monotonic()
        with self._lock:
            self._active_requests -= 1
            if self.enabled:
                self._record_max("orthanc_rest_api_duration_ms", int(seconds * 1000), now)

    def snapshot(self) -> dict[str, tuple[Number, int]]:
        now = time.monotonic()
        with self._lock:
            for name, window in self._windows.items():
                current = window.value(now)
                if current is not None and name in self._values:
                    self._values[name] = (current, self._values[name][1])
            return dict(self._values)

    def prometheus_text(self) -> str:
        """Prometheus' text exposition: ``name value timestamp`` lines sorted by name; empty when off."""
        if not self.enabled:
            return ""
        return "".join(f"{name} {format_value(value)} {stamp}\n"
                       for name, (value, stamp) in sorted(self.snapshot().items()))


class _Timer:
    """:meth:`Metrics.timer`'s context manager (a class: twice as cheap as a generator's, and
    every ingest and every file written goes through two)."""

    __slots__ = ("metrics", "name", "start")

    def __init__(self, metrics: Metrics, name: str) -> None:
        self.metrics = metrics
        self.name = name
        self.start = 0.0

    def __enter__(self) -> None:
        self.start = time.monotonic()

    def __exit__(self, *exc: object) -> None:
        self.metrics.record_max(self.name, int((time.monotonic() - self.start) * 1000))


def format_value(value: Number) -> str:
    """Integers exactly; other values as Orthanc prints its single-precision floats (9 digits)."""
    if isinstance(value, int):
        return str(value)
    single = struct.unpack("<f", struct.pack("<f", value))[0]
    return f"{single:.9g}"


def refresh_state(metrics: Metrics, counts: Mapping[str, int], sizes: tuple[int, int],
                  last_change: int, job_states: Mapping[str, int]) -> None:
    """The metrics Orthanc recomputes on every scrape, from the index and the jobs engine.

    ``counts`` maps ``patients``, ``studies``, ``series``, ``instances`` to their
    numbers, ``sizes`` is (disk, uncompressed) bytes, ``job_states`` the number
    of jobs per state name.  The uncompressed size is the true one (Orthanc
    1.10.1 reported the disk size twice, a bug fixed since).
    """
    disk, uncompressed = sizes
    for level, count in counts.items():
        metrics.set(f"orthanc_count_{level}", count)
    metrics.set("orthanc_disk_size_mb", disk / MEGABYTE)
    metrics.set("orthanc_uncompressed_size_mb", uncompressed / MEGABYTE)
    metrics.set("orthanc_last_change", last_change)
    metrics.set("orthanc_up_time_s", int(time.monotonic() - metrics.started))
    success, failed = job_states.get("Success", 0), job_states.get("Failure", 0)
    metrics.set("orthanc_jobs_pending", sum(job_states.get(s, 0) for s in _PENDING_STATES))
    metrics.set("orthanc_jobs_running", sum(job_states.get(s, 0) for s in _RUNNING_STATES))
    metrics.set("orthanc_jobs_success", success)
    metrics.set("orthanc_jobs_failed", failed)
    metrics.set("orthanc_jobs_completed", success + failed)


class LogCounter(logging.Handler):
    """Orthanc 1.13's ``orthanc_logged_errors_count`` and ``orthanc_logged_warnings_count``:
    every error and warning the server logged since start-up."""

    def __init__(self, metrics: Metrics) -> None:
        super().__init__(logging.WARNING)
        self.metrics = metrics

    def emit(self, record: logging.LogRecord) -> None:
        name = "orthanc_logged_errors_count" if record.levelno >= logging.ERROR else "orthanc_logged_warnings_count"
        self.metrics.increment(name, 1)


def refresh_threads(metrics: Metrics, available: Mapping[str, int]) -> None:
    """``orthanc_available_*_threads*``: idle workers of each pool, at the scrape."""
    for name, count in available.items():
        metrics.set(name, count)
