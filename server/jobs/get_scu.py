"""``DicomGetScu`` (Orthanc 1.12.6): one C-GET per query; the modality sends the instances
over the same association and they go through the one store path (``Origin=DicomProtocol``).

Built by ``/modalities/{id}/get`` and by ``/queries/{id}/retrieve`` when the retrieve method
is C-GET.  The commands, their ``Details`` and ``Permissive`` are those of every retrieve job
(:mod:`server.jobs.retrieve_scu`).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from server.dicom.main_tags import Level, Tag
from server.jobs.retrieve_scu import RetrieveCommand, RetrieveScuJob, saved_queries
from server.net import scu
from server.net.scp import STATUS_OUT_OF_RESOURCES, STATUS_SUCCESS, DimseStatusError
from server.store import Origin

if TYPE_CHECKING:
    from server.jobs.store_scu import SendServices

log = logging.getLogger("isengard.jobs")

#: The answer tag whose values name the SOP classes to propose (Orthanc's ``AddFindAnswer``).
SOP_CLASSES_IN_STUDY: Tag = (0x0008, 0x0062)
#: The store statuses whose instance counts as received.
_RECEIVED = ("Success", "AlreadyStored")


class DicomGetScuJob(RetrieveScuJob):
    TYPE = "DicomGetScu"

    def __init__(self, services: SendServices, modality: dict[str, Any], queries: list[dict[str, str]],
                 local_aet: str | None = None, timeout: float | None = None,
                 description: str = "REST API", query_format: str = "Short", permissive: bool = False,
                 sop_classes: list[str] | None = None) -> None:
        super().__init__(services.config, modality, queries, local_aet, timeout, description, query_format,
                         permissive)
        self.services = services
        #: The SOP classes the find answers named (``SOPClassesInStudy``): proposed instead of
        #: the common ones when known.
        self.sop_classes = list(sop_classes or [])

    def retrieve(self, command: RetrieveCommand) -> None:
        level, identifiers = command.level_and_keys("C-GET")
        origin = Origin("DicomProtocol", remote_ip=self.remote.host, remote_aet=self.remote.aet,
                        called_aet=self.remote.local_aet)

        def receive(data: bytes) -> int:
            return self._store(command, data, origin)

        scu.get(self.remote, level, identifiers, receive, self.sop_classes or None, self.progress_of_command)

    def _store(self, command: RetrieveCommand, data: bytes, origin: Origin) -> int:
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

    def serialize(self) -> dict[str, Any]:
        return {**super().serialize(), "SopClasses": self.sop_classes}

    @classmethod
    def unserialize(cls, services: SendServices, data: dict[str, Any]) -> DicomGetScuJob:
        job = cls(services, data["Modality"], saved_queries(data), data.get("LocalAet"),
                  data.get("Timeout"), data.get("Description", "REST API"),
                  data.get("QueryFormat", "Short"), bool(data.get("Permissive", False)),
                  data.get("SopClasses"))
        job.restore_progress(data)
        return job
