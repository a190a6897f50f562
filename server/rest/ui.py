"""The web UI: static files shipped in the package (``server/ui``), served at ``/ui/``.

They sit behind the same remote-access rules, authentication and HTTP filters as the REST
API (the handlers are :class:`OrthancHandler`\\ s), so a browser's Basic login is the API's.
``/`` and Orthanc Explorer's ``/app/explorer.html`` redirect there, for people's bookmarks.
"""

from __future__ import annotations

from pathlib import Path

from server.rest.base import NoAnswer, OrthancHandler, Route, with_services

UI_DIRECTORY = Path(__file__).resolve().parent.parent / "ui"

_CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
}


def ui_files() -> dict[str, Path]:
    """The servable files by name: only what the folder holds, so no path reaches elsewhere."""
    return {path.name: path for path in UI_DIRECTORY.iterdir()
            if path.is_file() and path.suffix in _CONTENT_TYPES}


class UiFileHandler(OrthancHandler):
    """``GET /ui/`` (the page) and ``GET /ui/{file}`` (its scripts and styles)."""

    async def get(self, name: str = "") -> None:
        if not name and not self.request.uri.split("?", 1)[0].endswith("/"):
            # ``/ui`` without its slash: the page's relative links need ``/ui/``.
            self.redirect("ui/")
            return
        path = (await self.run(ui_files)).get(name or "index.html")
        if path is None:
            raise NoAnswer()
        data = await self.run(path.read_bytes)
        # The files change with the server's version only: revalidate, never serve stale code.
        self.set_header("Cache-Control", "no-cache")
        self.answer_bytes(data, _CONTENT_TYPES[path.suffix])


class RootRedirectHandler(OrthancHandler):
    """``GET /``: to the UI (relative, so a reverse proxy's prefix stays)."""

    target = "ui/"

    async def get(self) -> None:
        self.redirect(self.target)


class ExplorerRedirectHandler(RootRedirectHandler):
    """``GET /app/explorer.html``: Orthanc Explorer's bookmarks lead to the UI."""

    target = "../ui/"


def paths() -> list[tuple[str, type]]:
    return [
        (r"/ui", UiFileHandler),
        (r"/ui/([A-Za-z0-9_.-]+)", UiFileHandler),
        (r"/", RootRedirectHandler),
        (r"/app/explorer\.html", ExplorerRedirectHandler),
    ]


def routes() -> list[Route]:
    """The routes, each handler given the services it uses."""
    return with_services(paths())
