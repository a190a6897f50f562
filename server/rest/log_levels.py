"""``/tools/log-level-{category}``: the verbosity of one log category (Orthanc 1.9)."""

from __future__ import annotations

from server import logging_setup
from server.errors import ErrorCode, OrthancError
from server.rest.base import OrthancHandler, Route, with_services


class LogCategoryHandler(OrthancHandler):
    async def get(self, category: str) -> None:
        self.answer_text(logging_setup.get_category_log_level(category))

    async def put(self, category: str) -> None:
        level = self.request.body.decode("utf-8", "replace").strip()
        if level not in logging_setup.LEVELS:
            raise OrthancError(ErrorCode.PARAMETER_OUT_OF_RANGE,
                               f'Verbosity can be "default", "verbose" or "trace": {level}')
        logging_setup.set_category_log_level(category, level)
        self.answer_empty_text()


def paths() -> list[tuple[str, type]]:
    categories = "|".join(logging_setup.CATEGORIES)
    return [(rf"/tools/log-level-({categories})", LogCategoryHandler)]


def routes() -> list[Route]:
    """The routes, each handler given the services it uses."""
    return with_services(paths())
