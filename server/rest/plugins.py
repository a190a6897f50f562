"""``/plugins``: Isengard loads no Orthanc plugin (``/system`` says ``PluginsEnabled``
false), so Orthanc's built-in ``explorer.js`` entry exists, with no extension; "gdcm"
when the configuration names Orthanc's GDCM plugin, whose JPEG 2000 codec Isengard then
provides (clients look for it here to know whether JPEG 2000 is available); and
"transfers", the built-in transfers accelerator, which peers look for here
(``/transfers/peers``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from server.images import jpeg2000_enabled
from server.rest.base import NoAnswer, OrthancHandler, Route, with_services

if TYPE_CHECKING:
    from server.instance_files import InstanceFiles

#: ``GET /plugins/transfers``, as the plugin describes itself.
TRANSFERS = {"ID": "transfers", "Version": "1.5",
             "Description": "Accelerates transfers and provides storage commitment between Orthanc peers",
             "ExtendsOrthancExplorer": False}
EXPLORER_JS = "// Extensions to Orthanc Explorer by the registered plugins\n\n"


class PluginsHandler(OrthancHandler):
    files: InstanceFiles

    async def get(self) -> None:
        gdcm = ["gdcm"] if jpeg2000_enabled(self.files) else []
        self.answer_json(["explorer.js", *gdcm, TRANSFERS["ID"]])


class ExplorerExtensionsHandler(OrthancHandler):
    async def get(self) -> None:
        self.answer_text(EXPLORER_JS, "application/javascript")


class PluginHandler(OrthancHandler):
    """The transfers accelerator as Orthanc describes a plugin; any other: Orthanc's empty 404."""

    async def get(self, name: str) -> None:
        if name != TRANSFERS["ID"]:
            raise NoAnswer()
        self.answer_json(TRANSFERS)


def paths() -> list[tuple[str, type]]:
    return [
        (r"/plugins", PluginsHandler),
        (r"/plugins/explorer\.js", ExplorerExtensionsHandler),
        (r"/plugins/([^/]+)", PluginHandler),
    ]


def routes(*, files: InstanceFiles) -> list[Route]:
    """The routes, each handler given the services it uses."""
    return with_services(paths(), files=files)
