"""``POST /tools/execute-script``: run Lua in the main state, answer what it printed."""

from __future__ import annotations

from server.errors import OrthancError
from server.rest.base import OrthancHandler
from server.scripting.lua_runtime import LuaScriptError


class ExecuteScriptHandler(OrthancHandler):
    """Only with ``ExecuteLuaEnabled`` (Orthanc answers an empty 403 otherwise).

    Definitions made this way live in the main state until the server stops;
    they are not persisted.
    """

    async def post(self) -> None:
        if not self.ctx.config["ExecuteLuaEnabled"]:
            self._empty(403)
            self.finish()
            return
        try:
            output = await self.ctx.lua.execute(self.request.body)
        except LuaScriptError as error:
            raise OrthancError(error.code, error.message) from None
        self.answer_text(output)


def routes() -> list[tuple[str, type]]:
    return [(r"/tools/execute-script", ExecuteScriptHandler)]
