"""``DicomMoveScu``: one C-MOVE per answer of a query, from the queried modality to a target AET.

Built by ``/queries/{id}/retrieve`` and ``/queries/{id}/answers/{n}/retrieve``.
Each answer keeps only its identifying tags (``Query`` in the content); the
move uses those of its level, as Orthanc's ``DicomControlUserConnection::Move``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from server.dicom.dictionary import tag_name
from server.dicom.main_tags import Level, Tag, format_tag
from server.jobs.job import Job, StepResult
from server.net import scu
from server.net.query_retrieve import QUERY_RETRIEVE_LEVEL, parse_level

if TYPE_CHECKING:
    from server.config import Configuration

PATIENT_ID: Tag = (0x0010, 0x0020)
STUDY_UID: Tag = (0x0020, 0x000D)
SERIES_UID: Tag = (0x0020, 0x000E)
SOP_UID: Tag = (0x0008, 0x0018)
ACCESSION_NUMBER: Tag = (0x0008, 0x0050)

#: The tags an answer keeps for its retrieve (Orthanc's ``AddFindAnswer``).
KEPT: tuple[Tag, ...] = (QUERY_RETRIEVE_LEVEL, PATIENT_ID, STUDY_UID, SERIES_UID, SOP_UID,
                         ACCESSION_NUMBER)

#: The identifiers a C-MOVE sends at each level.
MOVE_KEYS: dict[Level, tuple[Tag, ...]] = {
    Level.PATIENT: (PATIENT_ID,),
    Level.STUDY: (STUDY_UID,),
    Level.SERIES: (STUDY_UID, SERIES_UID),
    Level.INSTANCE: (STUDY_UID, SERIES_UID, SOP_UID),
}


@dataclass(frozen=True)
class MoveRequest:
    """A ``/modalities/{id}/move`` request (parsed by :mod:`server.rest.requests`): one C-MOVE
    per resource, with the identifiers of ``level``."""

    level: Level
    resources: tuple[dict[Tag, str], ...]
    target_aet: str | None = None
    local_aet: str | None = None
    timeout: float | None = None


def retrieve_item(answer: dict[Tag, str]) -> dict[str, str]:
    """What the job keeps of a find answer, keyed ``gggg,eeee``."""
    return {format_tag(tag): answer[tag] for tag in sorted(KEPT) if tag in answer}


class DicomMoveScuJob(Job):
    TYPE = "DicomMoveScu"

    def __init__(self, config: Configuration, modality: dict[str, Any], target_aet: str,
                 queries: list[dict[str, str]], local_aet: str | None = None,
                 timeout: float | None = None, description: str = "REST API",
                 query_format: str = "Short") -> None:
        super().__init__()
        self.query_format = query_format
        self.modality = dict(modality)
        self.remote = scu.Remote.of(modality, config, local_aet, timeout)
        self.requested_local_aet = local_aet
        self.requested_timeout = timeout
        self.target_aet = target_aet
        self.queries = [dict(q) for q in queries]
        self.description = description
        self.position = 0

    def step(self) -> StepResult:
        if self.position < len(self.queries):
            query = {parse_key(k): v for k, v in self.queries[self.position].items()}
            level = parse_level(query.get(QUERY_RETRIEVE_LEVEL), "C-MOVE")
            identifiers = {t: query[t] for t in MOVE_KEYS[level] if t in query}
            scu.move(self.remote, self.target_aet, level, identifiers)
            self.position += 1
        return StepResult.success() if self.position >= len(self.queries) else StepResult.next()

    def reset(self) -> None:
        self.position = 0

    def progress(self) -> float:
        return 1.0 if not self.queries else self.position / len(self.queries)

    def content(self) -> dict[str, Any]:
        return {"Description": self.description, "LocalAet": self.remote.local_aet,
                "Query": [formatted(q, self.query_format) for q in self.queries],
                "RemoteAet": self.remote.aet}

    def serialize(self) -> dict[str, Any]:
        return {"Modality": self.modality, "TargetAet": self.target_aet, "Query": self.queries,
                "LocalAet": self.requested_local_aet, "Timeout": self.requested_timeout,
                "Description": self.description, "Position": self.position,
                "QueryFormat": self.query_format}

    @classmethod
    def unserialize(cls, config: Configuration, data: dict[str, Any]) -> DicomMoveScuJob:
        job = cls(config, data["Modality"], data["TargetAet"], data["Query"], data.get("LocalAet"),
                  data.get("Timeout"), data.get("Description", "REST API"),
                  data.get("QueryFormat", "Short"))
        job.position = int(data.get("Position", 0))
        return job


def formatted(query: dict[str, str], query_format: str) -> dict[str, Any]:
    """A kept answer in the job's format (``Short``, ``Full`` or ``Simplify``), as Orthanc's
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
