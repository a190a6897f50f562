"""``/tools/metrics`` (on/off at run time) and ``/tools/metrics-prometheus``."""

from __future__ import annotations

from server.dicom.main_tags import Level
from server.metrics import refresh_state
from server.rest.base import OrthancHandler

PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4"


class MetricsEnabledHandler(OrthancHandler):
    async def get(self) -> None:
        self.answer_text("1" if self.ctx.metrics.enabled else "0")

    async def put(self) -> None:
        self.ctx.metrics.set_enabled(self.boolean_body())
        self.answer_empty_text()


class PrometheusHandler(OrthancHandler):
    async def get(self) -> None:
        if self.ctx.metrics.enabled:
            await self.run(self._refresh)
        self.answer_text(self.ctx.metrics.prometheus_text(), PROMETHEUS_CONTENT_TYPE)

    def _refresh(self) -> None:
        index = self.ctx.index
        counts = {level.plural: index.count(level) for level in Level}
        _, last_change = index.last_change()
        refresh_state(self.ctx.metrics, counts, index.totals(), last_change, self.ctx.jobs.counts())


def routes() -> list[tuple[str, type]]:
    return [
        (r"/tools/metrics", MetricsEnabledHandler),
        (r"/tools/metrics-prometheus", PrometheusHandler),
    ]
