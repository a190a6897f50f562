"""``/{level}/{id}/shared-tags``, ``/module``, ``/module-patient`` and ``/instances-tags``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from server import instance_tags
from server.dicom import json_format
from server.dicom.main_tags import Level
from server.dicom.modules import Module
from server.rest.base import NoAnswer, OrthancHandler, Route, with_services
from server.rest.formats import dicom_format, ignore_length
from server.rest.resources import ID

if TYPE_CHECKING:
    from server.instance_files import InstanceFiles
    from server.storage.index import Resource

PARENT_LEVELS = r"(patients|studies|series)"

#: Which module each ``/module`` route shows.
_MODULES = {
    ("patients", "module"): Module.PATIENT,
    ("studies", "module"): Module.STUDY,
    ("studies", "module-patient"): Module.PATIENT,
    ("series", "module"): Module.SERIES,
    ("instances", "module"): Module.INSTANCE,
}


class SharedTagsHandler(OrthancHandler):
    files: InstanceFiles

    async def get(self, plural: str, public_id: str) -> None:
        shared = await self.run_on(Level.parse(plural), public_id, self._shared)
        self.answer_json(json_format.render(shared, dicom_format(self, "full")))

    def _shared(self, resource: Resource) -> Any:
        return instance_tags.shared_tags(self.files, resource)


class ModuleHandler(OrthancHandler):
    files: InstanceFiles

    async def get(self, plural: str, public_id: str, route: str) -> None:
        module = _MODULES[(plural, route)]
        tags = await self.run_on(Level.parse(plural), public_id, self._module, module,
                                 self.checked(lambda: ignore_length(self)))
        if tags is None:
            raise NoAnswer()
        self.answer_json(json_format.render(tags, dicom_format(self, "full")))

    def _module(self, resource: Resource, module: Module, ignored: frozenset[int]) -> Any:
        return instance_tags.module_tags(self.files, resource, module, ignored)


class InstancesTagsHandler(OrthancHandler):
    files: InstanceFiles

    async def get(self, plural: str, public_id: str) -> None:
        self.answer_json(await self.run_on(Level.parse(plural), public_id, self._tags, dicom_format(self, "full"),
                                           self.checked(lambda: ignore_length(self))))

    def _tags(self, resource: Resource, fmt: str, ignored: frozenset[int]) -> Any:
        return instance_tags.instances_tags(self.files, resource, fmt, ignored)


def paths() -> list[tuple[str, type]]:
    return [
        (rf"/{PARENT_LEVELS}/{ID}/shared-tags", SharedTagsHandler),
        (rf"/(patients|series|instances)/{ID}/(module)", ModuleHandler),
        (rf"/(studies)/{ID}/(module|module-patient)", ModuleHandler),
        (rf"/{PARENT_LEVELS}/{ID}/instances-tags", InstancesTagsHandler),
    ]


def routes(*, files: InstanceFiles) -> list[Route]:
    """The routes, each handler given the services it uses."""
    return with_services(paths(), files=files)
