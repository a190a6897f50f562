"""The URIs where Orthanc answers the list of what lies below them: ``GET /tools`` and
``GET /instances/{id}/frames/{frame}`` (any ID and frame, as in Orthanc); and
``GET /instances/{id}/frames``, the indices of an instance's frames.

A listing names the operations of Orthanc 1.10.1 at that place that Isengard
serves too: each candidate is checked against the application's own routes, so
the answer never advertises a URI that would answer 404.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from server.dicom.main_tags import Level
from server.frames import frame_count
from server.rest.base import OrthancHandler, Route, with_services
from server.rest.resources import ID

if TYPE_CHECKING:
    from server.storage.index import Index, Resource

TOOLS = (
    "accepted-transfer-syntaxes", "bulk-anonymize", "bulk-content", "bulk-delete", "bulk-modify",
    "create-archive", "create-dicom", "create-media", "create-media-extended", "default-encoding",
    "dicom-conformance", "dicom-echo", "execute-script", "find", "generate-uid", "invalidate-tags",
    "log-level", "log-level-dicom", "log-level-generic", "log-level-http", "log-level-jobs",
    "log-level-lua", "log-level-plugins", "log-level-sqlite", "lookup", "metrics",
    "metrics-prometheus", "now", "now-local", "reconstruct", "reset", "shutdown",
    "unknown-sop-class-accepted",
)

FRAME_OPERATIONS = (
    "image-int16", "image-uint16", "image-uint8", "matlab", "numpy", "preview", "raw", "raw.gz",
    "rendered",
)


class DirectoryHandler(OrthancHandler):
    """Lists the candidates that some route of the application serves below this path."""

    candidates: tuple[str, ...] = ()

    async def get(self, *args: str) -> None:
        self.answer_json([name for name in self.candidates
                          if self._served(f"{self.request.path}/{name}")])

    def _served(self, path: str) -> bool:
        for rule in self.application.wildcard_router.rules:
            regex = getattr(rule.matcher, "regex", None)
            if regex is not None and regex.match(path) and rule.target is not type(self):
                return True
        return False


class ToolsHandler(DirectoryHandler):
    candidates = TOOLS


class FrameHandler(DirectoryHandler):
    candidates = FRAME_OPERATIONS


class FramesHandler(OrthancHandler):
    index: Index

    async def get(self, public_id: str) -> None:
        count = await self.run_on(Level.INSTANCE, public_id, self._count)
        self.answer_json(list(range(count)))

    def _count(self, instance: Resource) -> int:
        return frame_count(self.index, instance)


def paths() -> list[tuple[str, type]]:
    return [
        (r"/tools", ToolsHandler),
        (rf"/instances/{ID}/frames", FramesHandler),
        (r"/instances/([^/]+)/frames/([^/]+)", FrameHandler),
    ]


def routes(*, index: Index) -> list[Route]:
    """The routes, each handler given the services it uses."""
    return with_services(paths(), index=index)
