"""``DicomGetScu`` (Orthanc 1.12.6): one C-GET per resource; the modality sends the instances
over the same association and they go through the one store path (``Origin=DicomProtocol``).

Built by ``/modalities/{id}/get`` and by ``/queries/{id}/retrieve`` when the retrieve method
is C-GET.  As Orthanc's ``DicomRetrieveScuBaseJob``, the content lists each command's query,
its ``DimseErrorStatus`` and the ``ReceivedInstancesIds`` (``Details``), and a ``Permissive``
job goes on past a failed C-GET.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from server.dicom.main_tags import Level, Tag, format_tag
from server.errors import OrthancError
from server.jobs.job import Job, StepResult, StopReason
from server.jobs.move_scu import MOVE_KEYS, formatted, parse_key
from server.net import scu
from server.net.query_retrieve import QUERY_RETRIEVE_LEVEL, parse_level
from server.net.scp import STATUS_OUT_OF_RESOURCES, STATUS_SUCCESS, DimseStatusError
from server.store import Origin

if TYPE_CHECKING:
    from server.jobs.store_scu import SendServices

log = logging.getLogger("isengard.jobs")

#: The answer tag whose values name the SOP classes to propose (Orthanc's ``AddFindAnswer``).
SOP_CLASSES_IN_STUDY: Tag = (0x0008, 0x0062)
#: The store statuses whose instance counts as received.
_RECEIVED = ("Success", "AlreadyStored")


@dataclass(frozen=True)
class GetRequest:
    """A ``/modalities/{id}/get`` request (parsed by :mod:`server.rest.requests`): one C-GET
    per resource, at ``level``."""

    level: Level
    resources: tuple[dict[Tag, str], ...]
    local_aet: str | None = None
    timeout: float | None = None
    permissive: bool = False


@dataclass
class GetCommand:
    """One C-GET: its query (``gggg,eeee`` keys, QueryRetrieveLevel included) and its outcome."""

    query: dict[str, str]
    dimse_error_status: int = 0
    received: list[str] = field(default_factory=list)

    def serialize(self) -> dict[str, Any]:
        return {"Query": self.query, "DimseErrorStatus": self.dimse_error_status,
                "ReceivedInstancesIds": list(self.received)}

    @classmethod
    def unserialize(cls, data: dict[str, Any]) -> GetCommand:
        return cls(dict(data["Query"]), int(data.get("DimseErrorStatus", 0)),
                   list(data.get("ReceivedInstancesIds", [])))


def level_query(level: Level, resource: dict[Tag, str]) -> dict[str, str]:
    """A resource of ``/modalities/{id}/get`` as a command's query: its keys and the level."""
    query = {format_tag(tag): value for tag, value in sorted(resource.items())}
    query[format_tag(QUERY_RETRIEVE_LEVEL)] = scu.QR_LEVEL[level]
    return query


class DicomGetScuJob(Job):
    TYPE = "DicomGetScu"

    def __init__(self, services: SendServices, modality: dict[str, Any], queries: list[dict[str, str]],
                 local_aet: str | None = None, timeout: float | None = None,
                 description: str = "REST API", query_format: str = "Short", permissive: bool = False,
                 sop_classes: list[str] | None = None) -> None:
        super().__init__()
        self.services = services
        self.modality = dict(modality)
        self.remote = scu.Remote.of(modality, services.config, local_aet, timeout)
        self.requested_local_aet = local_aet
        self.requested_timeout = timeout
        self.commands = [GetCommand(dict(q)) for q in queries]
        self.description = description
        self.query_format = query_format
        self.permissive = permissive
        #: The SOP classes the find answers named (``SOPClassesInStudy``): proposed instead of
        #: the common ones when known.
        self.sop_classes = list(sop_classes or [])
        self.position = 0
        self._fraction = 0.0

    def step(self) -> StepResult:
        if self.position < len(self.commands):
            command = self.commands[self.position]
            command.received.clear()
            try:
                self._get(command)
            except OrthancError as e:
                command.dimse_error_status = e.status if isinstance(e, scu.DimseFailure) else 0
                if not self.permissive:
                    raise
                log.warning("DicomGetScu: C-GET %d failed, ignored (permissive): %s", self.position, e)
            self.position += 1
            self._fraction = 0.0
        return StepResult.success() if self.position >= len(self.commands) else StepResult.next()

    def _get(self, command: GetCommand) -> None:
        query = {parse_key(key): value for key, value in command.query.items()}
        level = parse_level(query.get(QUERY_RETRIEVE_LEVEL), "C-GET")
        # Unique keys only, as for a C-MOVE: an SCP may read any other key (an empty
        # AccessionNumber of a find answer) as a matching key and send more than asked.
        identifiers = {tag: query[tag] for tag in (QUERY_RETRIEVE_LEVEL, *MOVE_KEYS[level]) if tag in query}
        origin = Origin("DicomProtocol", remote_ip=self.remote.host, remote_aet=self.remote.aet,
                        called_aet=self.remote.local_aet)

        def receive(data: bytes) -> int:
            return self._store(command, data, origin)

        scu.get(self.remote, level, identifiers, receive, self.sop_classes or None, self._progress)

    def _store(self, command: GetCommand, data: bytes, origin: Origin) -> int:
        """One C-STORE sub-operation: stored as any received instance; its DIMSE status."""
        try:
            result = self.services.store.ingest(data, origin)
        except DimseStatusError as e:
            return e.status
        except Exception as e:  # noqa: BLE001 - the modality must get a status
            log.warning("DicomGetScu: received instance refused: %s", e)
            return STATUS_OUT_OF_RESOURCES
        if result.status in _RECEIVED:
            command.received.append(result.ids[Level.INSTANCE])
        return STATUS_SUCCESS

    def _progress(self, counters: scu.SubOperations) -> None:
        self._fraction = counters.fraction()

    def reset(self) -> None:
        self.position = 0
        self._fraction = 0.0
        for command in self.commands:
            command.dimse_error_status = 0
            command.received.clear()

    def stop(self, reason: StopReason) -> None:
        self._fraction = 0.0

    def progress(self) -> float:
        if not self.commands:
            return 1.0
        return min(1.0, (self.position + self._fraction) / len(self.commands))

    def content(self) -> dict[str, Any]:
        return {"Description": self.description, "LocalAet": self.remote.local_aet,
                "RemoteAet": self.remote.aet,
                "Query": [formatted(c.query, self.query_format) for c in self.commands],
                "Details": [{"DimseErrorStatus": c.dimse_error_status, "Query": dict(c.query),
                             "ReceivedInstancesIds": list(c.received)} for c in self.commands]}

    def serialize(self) -> dict[str, Any]:
        return {"Modality": self.modality, "LocalAet": self.requested_local_aet,
                "Timeout": self.requested_timeout, "Description": self.description,
                "Position": self.position, "QueryFormat": self.query_format,
                "Permissive": self.permissive, "SopClasses": self.sop_classes,
                "Commands": [c.serialize() for c in self.commands]}

    @classmethod
    def unserialize(cls, services: SendServices, data: dict[str, Any]) -> DicomGetScuJob:
        commands = [GetCommand.unserialize(c) for c in data["Commands"]]
        job = cls(services, data["Modality"], [c.query for c in commands], data.get("LocalAet"),
                  data.get("Timeout"), data.get("Description", "REST API"),
                  data.get("QueryFormat", "Short"), bool(data.get("Permissive", False)),
                  data.get("SopClasses"))
        job.commands = commands
        job.position = int(data.get("Position", 0))
        return job
