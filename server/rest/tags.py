"""``/{level}/{id}/shared-tags``, ``/module``, ``/module-patient`` and ``/instances-tags``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from server import instance_tags
from server.dicom import json_format
from server.dicom.main_tags import Level
from server.dicom.modules import Module
from server.rest.base import NoAnswer, OrthancHandler, Route, with_services
from server.rest.formats import dicom_format, ignore_length
from server.rest.resources import ID

if TYPE_CHECKING:
    from server.instance_files import InstanceFiles

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
        resource = await self.resource(Level.parse(plural), public_id)
        shared = await self.run(instance_tags.shared_tags, self.files, resource)
        self.answer_json(json_format.render(shared, dicom_format(self, "full")))


class ModuleHandler(OrthancHandler):
    files: InstanceFiles

    async def get(self, plural: str, public_id: str, route: str) -> None:
        resource = await self.resource(Level.parse(plural), public_id)
        module = _MODULES[(plural, route)]
        tags = await self.run(instance_tags.module_tags, self.files, resource, module,
                              ignore_length(self))
        if tags is None:
            raise NoAnswer()
        self.answer_json(json_format.render(tags, dicom_format(self, "full")))


class InstancesTagsHandler(OrthancHandler):
    files: InstanceFiles

    async def get(self, plural: str, public_id: str) -> None:
        resource = await self.resource(Level.parse(plural), public_id)
        self.answer_json(await self.run(instance_tags.instances_tags, self.files, resource,
                                        dicom_format(self, "full"), ignore_length(self)))


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
