"""What ``DicomMoveScu`` and ``DicomGetScu`` share (Orthanc's ``DicomRetrieveScuBaseJob``).

A retrieve job runs one command (a C-MOVE or a C-GET) per query: a resource of
``/modalities/{id}/move|get`` or an answer of ``/queries/{id}/retrieve``.  Each
query keeps only the tags it was given (an answer keeps its identifying tags,
as Orthanc's ``AddFindAnswer``); the command sends the unique keys of its level.
Each command records its outcome, shown as the content's ``Details`` (Orthanc
1.12.10): its ``DimseErrorStatus`` and the ``ReceivedInstancesIds``.  A failed
synchronous call answers those ``Details`` as its ``ErrorPayload``, and a
``Permissive`` job goes on past a failed command.
"""

from __future__ import annotations

import logging
from abc import abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from server.dicom.dictionary import tag_name
from server.dicom.main_tags import Level, Tag, format_tag
from server.errors import OrthancError
from server.jobs.job import Job, StepResult, StopReason
from server.net import scu
from server.net.query_retrieve import QUERY_RETRIEVE_LEVEL, parse_level

if TYPE_CHECKING:
    from server.config import Configuration

log = logging.getLogger("isengard.jobs")

PATIENT_ID: Tag = (0x0010, 0x0020)
STUDY_UID: Tag = (0x0020, 0x000D)
SERIES_UID: Tag = (0x0020, 0x000E)
SOP_UID: Tag = (0x0008, 0x0018)
ACCESSION_NUMBER: Tag = (0x0008, 0x0050)

#: The tags an answer keeps for its retrieve (Orthanc's ``AddFindAnswer``).
KEPT: tuple[Tag, ...] = (QUERY_RETRIEVE_LEVEL, PATIENT_ID, STUDY_UID, SERIES_UID, SOP_UID,
                         ACCESSION_NUMBER)

#: The identifiers a C-MOVE or a C-GET sends at each level.
MOVE_KEYS: dict[Level, tuple[Tag, ...]] = {
    Level.PATIENT: (PATIENT_ID,),
    Level.STUDY: (STUDY_UID,),
    Level.SERIES: (STUDY_UID, SERIES_UID),
    Level.INSTANCE: (STUDY_UID, SERIES_UID, SOP_UID),
}


@dataclass(frozen=True)
class RetrieveRequest:
    """A ``/modalities/{id}/move`` or ``/modalities/{id}/get`` request (parsed by
    :mod:`server.rest.requests`, Orthanc's ``ParseMoveGetJob``): one command per resource, at
    ``level``; ``target_aet`` is the C-MOVE's destination."""

    level: Level
    resources: tuple[dict[Tag, str], ...]
    local_aet: str | None = None
    timeout: float | None = None
    permissive: bool = False
    target_aet: str | None = None


def retrieve_item(answer: dict[Tag, str]) -> dict[str, str]:
    """What the job keeps of a find answer, keyed ``gggg,eeee``."""
    return {format_tag(tag): answer[tag] for tag in sorted(KEPT) if tag in answer}


def level_query(level: Level, resource: dict[Tag, str]) -> dict[str, str]:
    """A resource of ``/modalities/{id}/move|get`` as a command's query: its keys and the level."""
    query = {format_tag(tag): value for tag, value in sorted(resource.items())}
    query[format_tag(QUERY_RETRIEVE_LEVEL)] = scu.QR_LEVEL[level]
    return query


def formatted(query: dict[str, str], query_format: str) -> dict[str, Any]:
    """A kept query in the job's format (``Short``, ``Full`` or ``Simplify``), as Orthanc's
    ``DicomMap::ToJson``: every value is a string."""
    if query_format == "Short":
        return dict(query)
    names = {key: tag_name(*parse_key(key), None) for key in query}
    if query_format == "Simplify":
        return {names[key]: value for key, value in query.items()}
    return {key: {"Name": names[key], "Type": "String", "Value": value}
            for key, value in query.items()}


def parse_key(key: str) -> Tag:
    """A kept query's ``gggg,eeee`` key as a tag."""
    group, element = key.split(",")
    return int(group, 16), int(element, 16)


@dataclass
class RetrieveCommand:
    """One C-MOVE or C-GET: its query (``gggg,eeee`` keys, QueryRetrieveLevel included) and its
    outcome."""

    query: dict[str, str]
    dimse_error_status: int = 0
    received: list[str] = field(default_factory=list)

    def level_and_keys(self, operation: str) -> tuple[Level, dict[Tag, str]]:
        """The command's level and the unique keys it sends: an SCP may read any other key (an
        empty AccessionNumber of a find answer) as a matching key and send more than asked."""
        query = {parse_key(key): value for key, value in self.query.items()}
        level = parse_level(query.get(QUERY_RETRIEVE_LEVEL), operation)
        return level, {tag: query[tag] for tag in MOVE_KEYS[level] if tag in query}

    def details(self) -> dict[str, Any]:
        return {"DimseErrorStatus": self.dimse_error_status, "Query": dict(self.query),
                "ReceivedInstancesIds": list(self.received)}

    def serialize(self) -> dict[str, Any]:
        return self.details()

    @classmethod
    def unserialize(cls, data: dict[str, Any]) -> RetrieveCommand:
        if "Query" not in data:  # a query saved before the commands had outcomes
            return cls(dict(data))
        return cls(dict(data["Query"]), int(data.get("DimseErrorStatus", 0)),
                   list(data.get("ReceivedInstancesIds", [])))


class RetrieveScuJob(Job):
    """The commands, their outcomes and the progress; subclasses run one command."""

    OPERATION = ""

    def __init__(self, config: Configuration, modality: dict[str, Any], queries: list[dict[str, str]],
                 local_aet: str | None = None, timeout: float | None = None,
                 description: str = "REST API", query_format: str = "Short",
                 permissive: bool = False) -> None:
        super().__init__()
        self.modality = dict(modality)
        self.remote = scu.Remote.of(modality, config, local_aet, timeout)
        self.requested_local_aet = local_aet
        self.requested_timeout = timeout
        self.commands = [RetrieveCommand(dict(q)) for q in queries]
        self.description = description
        self.query_format = query_format
        self.permissive = permissive
        self.position = 0
        self._fraction = 0.0

    @abstractmethod
    def retrieve(self, command: RetrieveCommand) -> None:
        """Run one command; an :class:`OrthancError` fails it."""

    def step(self) -> StepResult:
        if self.position < len(self.commands):
            command = self.commands[self.position]
            command.received.clear()
            command.dimse_error_status = 0
            try:
                self.retrieve(command)
            except OrthancError as e:
                command.dimse_error_status = e.dimse_status if isinstance(e, scu.DimseFailure) else 0
                if not self.permissive:
                    raise
                log.warning("%s: command %d failed, ignored (permissive): %s", self.TYPE, self.position, e)
            self.position += 1
            self._fraction = 0.0
        return StepResult.success() if self.position >= len(self.commands) else StepResult.next()

    def progress_of_command(self, counters: scu.SubOperations) -> None:
        """The sub-operation counters of the running command (its pending responses)."""
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

    def details(self) -> list[dict[str, Any]]:
        return [command.details() for command in self.commands]

    def content(self) -> dict[str, Any]:
        return {"Description": self.description, "LocalAet": self.remote.local_aet,
                "RemoteAet": self.remote.aet,
                "Query": [formatted(c.query, self.query_format) for c in self.commands],
                "Details": self.details()}

    def error_payload(self) -> dict[str, Any] | None:
        """Orthanc 1.12.10: a failed retrieve answers the outcome of each of its commands."""
        return {"Type": "RetrieveJob", "Content": self.details()}

    def serialize(self) -> dict[str, Any]:
        return {"Modality": self.modality, "LocalAet": self.requested_local_aet,
                "Timeout": self.requested_timeout, "Description": self.description,
                "Position": self.position, "QueryFormat": self.query_format,
                "Permissive": self.permissive, "Commands": [c.serialize() for c in self.commands]}

    def restore_progress(self, data: dict[str, Any]) -> None:
        """After :meth:`unserialize` built the job: the saved outcomes and position."""
        if "Commands" in data:
            self.commands = [RetrieveCommand.unserialize(c) for c in data["Commands"]]
        self.position = int(data.get("Position", 0))


def saved_queries(data: dict[str, Any]) -> list[dict[str, str]]:
    """The queries of a saved retrieve job (``Query``: the format before the outcomes were kept)."""
    if "Commands" in data:
        return [RetrieveCommand.unserialize(c).query for c in data["Commands"]]
    return [dict(q) for q in data.get("Query", [])]
