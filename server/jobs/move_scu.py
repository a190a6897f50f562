"""``DicomMoveScu``: one C-MOVE per query, from the queried modality to a target AET.

Built by ``/modalities/{id}/move`` (a job since Orthanc 1.11.1, synchronous by default) and by
``/queries/{id}/retrieve`` when the retrieve method is C-MOVE.  Each C-MOVE carries a message
ID of its own, so that the instances the target stores here (C-STORE sub-operations naming
this job's local AET and that ID as their move originator) are listed in the command's
``ReceivedInstancesIds``, as Orthanc's ``DicomRetrieveScuBaseJob``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from server.jobs.retrieve_scu import RetrieveCommand, RetrieveScuJob, saved_queries
from server.net import scu
from server.net.move_originators import MOVE_ORIGINATORS

if TYPE_CHECKING:
    from server.config import Configuration


class DicomMoveScuJob(RetrieveScuJob):
    TYPE = "DicomMoveScu"

    def __init__(self, config: Configuration, modality: dict[str, Any], target_aet: str,
                 queries: list[dict[str, str]], local_aet: str | None = None,
                 timeout: float | None = None, description: str = "REST API",
                 query_format: str = "Short", permissive: bool = False) -> None:
        super().__init__(config, modality, queries, local_aet, timeout, description, query_format,
                         permissive)
        self.target_aet = target_aet

    def retrieve(self, command: RetrieveCommand) -> None:
        level, identifiers = command.level_and_keys("C-MOVE")
        with MOVE_ORIGINATORS.register(self.remote.local_aet, command.received.append) as message_id:
            scu.move(self.remote, self.target_aet, level, identifiers, self.progress_of_command,
                     message_id)

    def content(self) -> dict[str, Any]:
        return {**super().content(), "TargetAet": self.target_aet}

    def serialize(self) -> dict[str, Any]:
        return {**super().serialize(), "TargetAet": self.target_aet}

    @classmethod
    def unserialize(cls, config: Configuration, data: dict[str, Any]) -> DicomMoveScuJob:
        job = cls(config, data["Modality"], data["TargetAet"], saved_queries(data), data.get("LocalAet"),
                  data.get("Timeout"), data.get("Description", "REST API"),
                  data.get("QueryFormat", "Short"), bool(data.get("Permissive", False)))
        job.restore_progress(data)
        return job
