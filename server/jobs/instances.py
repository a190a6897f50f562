"""Jobs that apply one operation to each instance of a list (Orthanc's ``SetOfInstancesJob``).

C-STORE SCU, peer store, modification, split/merge and archives share the same
bookkeeping: a position in the list, the failed instances, ``Permissive``, the
resources named in the request, and an optional trailing step run once at the end.
"""

from __future__ import annotations

import logging
from abc import abstractmethod
from typing import Any

from server.errors import OrthancError
from server.jobs.job import Job, StepResult

log = logging.getLogger("isengard.jobs")


class SetOfInstancesJob(Job):
    def __init__(self, instances: list[str], description: str = "REST API",
                 permissive: bool = False, parent_resources: list[str] | None = None,
                 trailing_step: bool = False) -> None:
        super().__init__()
        self.instances = list(instances)
        self.description = description
        self.permissive = permissive
        self.parent_resources = list(parent_resources or [])
        self.trailing_step = trailing_step
        self.position = 0
        self.failed: list[str] = []

    @abstractmethod
    def handle_instance(self, instance_id: str) -> None:
        """Process one instance; raise :class:`OrthancError` when it fails."""

    def handle_trailing_step(self) -> None:  # noqa: B027 - optional hook
        """Runs once after the last instance when ``trailing_step`` is set."""

    @property
    def steps_count(self) -> int:
        return len(self.instances) + (1 if self.trailing_step else 0)

    def step(self) -> StepResult:
        if self.position >= self.steps_count:
            return StepResult.success()
        if self.position < len(self.instances):
            instance = self.instances[self.position]
            try:
                self.handle_instance(instance)
            except OrthancError as e:
                if not self.permissive:
                    return StepResult.failure(e.code, e.details or "", e.payload)
                log.warning("%s job: instance %s failed (%s), going on (Permissive)", self.TYPE,
                            instance, e.details or e.description)
                self.failed.append(instance)
        else:
            self.handle_trailing_step()
        self.position += 1
        return StepResult.success() if self.position >= self.steps_count else StepResult.next()

    def reset(self) -> None:
        self.position = 0
        self.failed = []

    def progress(self) -> float:
        return 1.0 if self.steps_count == 0 else self.position / self.steps_count

    def content(self) -> dict[str, Any]:
        result: dict[str, Any] = {"Description": self.description,
                                  "FailedInstancesCount": len(self.failed),
                                  "InstancesCount": len(self.instances)}
        if self.parent_resources:
            result["ParentResources"] = self.parent_resources
        return result

    def serialize(self) -> dict[str, Any]:
        return {"Description": self.description, "Permissive": self.permissive,
                "Position": self.position, "Instances": self.instances,
                "FailedInstances": self.failed, "ParentResources": self.parent_resources,
                "TrailingStep": self.trailing_step}

    def restore(self, data: dict[str, Any]) -> None:
        """Take back the bookkeeping saved by :meth:`serialize`."""
        self.position = int(data.get("Position", 0))
        self.failed = list(data.get("FailedInstances", []))

    @staticmethod
    def common_arguments(data: dict[str, Any]) -> dict[str, Any]:
        """Constructor arguments shared by every subclass, from :meth:`serialize`'s output."""
        return {"instances": data["Instances"], "description": data.get("Description", "REST API"),
                "permissive": data.get("Permissive", False),
                "parent_resources": data.get("ParentResources", []),
                "trailing_step": data.get("TrailingStep", False)}
