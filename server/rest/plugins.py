"""``/plugins``: Isengard loads no Orthanc plugin (``/system`` says ``PluginsEnabled``
false), so only Orthanc's built-in ``explorer.js`` entry exists, with no extension."""

from __future__ import annotations

from server.rest.base import NoAnswer, OrthancHandler

EXPLORER_JS = "// Extensions to Orthanc Explorer by the registered plugins\n\n"


class PluginsHandler(OrthancHandler):
    async def get(self) -> None:
        self.answer_json(["explorer.js"])


class ExplorerExtensionsHandler(OrthancHandler):
    async def get(self) -> None:
        self.answer_text(EXPLORER_JS, "application/javascript")


class PluginHandler(OrthancHandler):
    """No plugin to describe: Orthanc's empty 404."""

    async def get(self, name: str) -> None:
        raise NoAnswer()


def routes() -> list[tuple[str, type]]:
    return [
        (r"/plugins", PluginsHandler),
        (r"/plugins/explorer\.js", ExplorerExtensionsHandler),
        (r"/plugins/([^/]+)", PluginHandler),
    ]
