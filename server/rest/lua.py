"""``POST /tools/execute-script``: run Lua in the main state, answer what it printed."""

from __future__ import annotations

from typing import TYPE_CHECKING

from server.errors import OrthancError
from server.rest.base import OrthancHandler, Route, with_services
from server.scripting.lua_runtime import LuaScriptError

if TYPE_CHECKING:
    from server.config import Configuration
    from server.scripting.lua import LuaScripting


class ExecuteScriptHandler(OrthancHandler):
    """Only with ``ExecuteLuaEnabled`` (Orthanc answers an empty 403 otherwise).

    Definitions made this way live in the main state until the server stops;
    they are not persisted.
    """

    config: Configuration
    lua: LuaScripting

    async def post(self) -> None:
        if not self.config["ExecuteLuaEnabled"]:
            self._empty(403)
            self.finish()
            return
        try:
            output = await self.lua.execute(self.request.body)
        except LuaScriptError as error:
            raise OrthancError(error.code, error.message) from None
        self.answer_text(output)


def paths() -> list[tuple[str, type]]:
    return [(r"/tools/execute-script", ExecuteScriptHandler)]


def routes(*, config: Configuration, lua: LuaScripting) -> list[Route]:
    """The routes, each handler given the services it uses."""
    return with_services(paths(), config=config, lua=lua)
