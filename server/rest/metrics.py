"""``/tools/metrics`` (on/off at run time) and ``/tools/metrics-prometheus``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from server.metrics import refresh_state, refresh_threads
from server.rest.base import OrthancHandler, Route, with_services

if TYPE_CHECKING:
    from collections.abc import Callable

    from server.jobs.engine import JobsEngine
    from server.metrics import Metrics
    from server.storage.index import Index

PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4"


class MetricsEnabledHandler(OrthancHandler):
    metrics: Metrics

    async def get(self) -> None:
        self.answer_text("1" if self.metrics.enabled else "0")

    async def put(self) -> None:
        self.metrics.set_enabled(self.boolean_body())
        self.answer_empty_text()


class PrometheusHandler(OrthancHandler):
    index: Index
    jobs: JobsEngine
    metrics: Metrics
    #: ``orthanc_available_*`` name -> idle workers of that pool now.
    available_threads: Callable[[], dict[str, int]]

    async def get(self) -> None:
        if self.metrics.enabled:
            await self.run(self._refresh)
        self.answer_text(self.metrics.prometheus_text(), PROMETHEUS_CONTENT_TYPE)

    def _refresh(self) -> None:
        index = self.index
        counts, totals = index.counts()
        _, last_change = index.last_change()
        refresh_state(self.metrics, {level.plural: count for level, count in counts.items()}, totals, last_change,
                      self.jobs.counts())
        refresh_threads(self.metrics, self.available_threads())


def paths() -> list[tuple[str, type]]:
    return [
        (r"/tools/metrics", MetricsEnabledHandler),
        (r"/tools/metrics-prometheus", PrometheusHandler),
    ]


def routes(*, index: Index, jobs: JobsEngine, metrics: Metrics,
           available_threads: Callable[[], dict[str, int]]) -> list[Route]:
    """The routes, each handler given the services it uses."""
    return with_services(paths(), index=index, jobs=jobs, metrics=metrics, available_threads=available_threads)
