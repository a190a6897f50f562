"""``DicomModalityStore``: C-STORE of a set of instances to a modality (Orthanc's job type).

Beyond Orthanc, a transient network failure (refused or lost association,
timeout) does not fail the job at once: it goes to the Retry state and tries
the same instance again after ``StoreJobRetryDelay`` seconds, at most
``JobsMaxRetries`` times in a row.  The peer store job shares this behaviour
through :class:`RetryingInstancesJob`.
"""

from __future__ import annotations

import logging
from abc import abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from server.dicom.main_tags import Level
from server.dicom.transcode import Settings
from server.errors import ErrorCode, OrthancError
from server.jobs.instances import SetOfInstancesJob
from server.jobs.job import StepResult, StopReason
from server.net.scu import NetworkError, Outgoing, Remote, StoreConnection, outgoing_accepted

if TYPE_CHECKING:
    from server.config import Configuration
    from server.storage.index import Index, Resource
    from server.store import Store

log = logging.getLogger("isengard.jobs")


@dataclass(frozen=True)
class ModalityStoreRequest:
    """A ``/modalities/{id}/store`` request (parsed by :mod:`server.rest.requests`)."""

    resources: tuple[str, ...]
    local_aet: str | None = None
    timeout: float | None = None
    move_originator_aet: str = ""
    move_originator_id: int | None = None
    storage_commitment: bool = False
    permissive: bool = False
    #: ``CalledAet``, ``Host``, ``Port`` (Orthanc 1.11.3): this store's overrides of the
    #: modality's ``AET``, ``Host`` and ``Port``.
    overrides: tuple[tuple[str, Any], ...] = ()


class RetryLater(Exception):
    """A transient failure: the engine should put the job in Retry, then run the same step again."""

    def __init__(self, error: NetworkError) -> None:
        super().__init__(error.details)
        self.error = error


@dataclass(frozen=True)
class SendServices:
    """What the jobs that send instances to another server use (C-STORE, peer store)."""

    config: Configuration
    index: Index
    store: Store
    #: Storage commitment of what was sent: (modality, (class, instance) pairs, timeout) -> transaction UID.
    request_commitment: Callable[[str, list[tuple[str, str]], float | None], str]


class RetryingInstancesJob(SetOfInstancesJob):
    """A set-of-instances job whose transient network failures use the Retry state (bounded)."""

    def __init__(self, services: SendServices, instances: list[str], **kwargs: Any) -> None:
        super().__init__(instances, **kwargs)
        self.services = services
        self.attempts = 0

    def step(self) -> StepResult:
        try:
            return super().step()
        except RetryLater as e:
            delay = float(self.services.config["StoreJobRetryDelay"])
            log.warning("%s job: transient failure (%s), attempt %d of %d in %.1f s", self.TYPE,
                        e.error.details, self.attempts, self.services.config["JobsMaxRetries"], delay)
            return StepResult.retry(delay, e.error.code, e.error.details or "")

    def guarded(self, instance_id: str) -> None:
        """:meth:`send` one instance, turning a transient failure into a retry while allowed."""
        try:
            self.send(self.instance(instance_id))
        except NetworkError as e:
            self.disconnect()
            if e.transient and self.attempts < int(self.services.config["JobsMaxRetries"]):
                self.attempts += 1
                raise RetryLater(e) from e
            self.attempts = 0
            raise
        self.attempts = 0

    def handle_instance(self, instance_id: str) -> None:
        self.guarded(instance_id)

    def instance(self, instance_id: str) -> Resource:
        found = self.services.index.lookup(instance_id, Level.INSTANCE)
        if found is None:
            raise OrthancError(ErrorCode.UNKNOWN_RESOURCE,
                               f"An instance was removed after the job was issued: {instance_id}")
        return found

    @abstractmethod
    def send(self, instance: Resource) -> None:
        """Send one instance; NetworkError (maybe transient) or OrthancError when it fails."""

    def disconnect(self) -> None:  # noqa: B027 - optional hook
        """Drop the connection (after a failure, a pause, the end)."""

    def stop(self, reason: StopReason) -> None:
        self.disconnect()

    def reset(self) -> None:
        super().reset()
        self.attempts = 0

    def serialize(self) -> dict[str, Any]:
        return {**super().serialize(), "Attempts": self.attempts}

    def restore(self, data: dict[str, Any]) -> None:
        super().restore(data)
        self.attempts = int(data.get("Attempts", 0))


class DicomModalityStoreJob(RetryingInstancesJob):
    TYPE = "DicomModalityStore"

    def __init__(self, services: SendServices, instances: list[str], modality: dict[str, Any],
                 local_aet: str | None = None, timeout: float | None = None,
                 move_originator_aet: str = "", move_originator_id: int | None = None,
                 storage_commitment: bool = False, modality_name: str = "", **kwargs: Any) -> None:
        super().__init__(services, instances, trailing_step=storage_commitment, **kwargs)
        self.modality = dict(modality)
        self.modality_name = modality_name
        self.remote = Remote.of(modality, services.config, local_aet, timeout)
        self.requested_local_aet = local_aet
        self.requested_timeout = timeout
        self.move_originator_aet = move_originator_aet
        self.move_originator_id = move_originator_id
        self.storage_commitment = storage_commitment
        self.transaction_uid = ""
        self.committed: list[tuple[str, str]] = []
        self._connection: StoreConnection | None = None

    def send(self, instance: Resource) -> None:
        if self._connection is None:
            self._connection = StoreConnection(self.remote, bool(self.services.config["TranscodeDicomProtocol"]),
                                               Settings.from_config(self.services.config))
        log.info('Sending instance %s to modality "%s"', instance.public_id, self.remote.aet)
        item = Outgoing.stored(self.services.store.read_dicom(instance))
        if not outgoing_accepted(self.services.store.interventions.outgoing_store, item,
                                 self.remote.aet, self.remote.host):
            log.info("Instance %s filtered out by OutgoingCStoreInstanceFilter", instance.public_id)
            return
        sent = self._connection.store(item, self.move_originator_aet, self.move_originator_id)
        if self.storage_commitment:
            self.committed.append((sent.sop_class, sent.sop_instance))

    def handle_trailing_step(self) -> None:
        """Storage commitment of what was sent, once the last C-STORE is done."""
        self.disconnect()
        self.transaction_uid = self.services.request_commitment(
            self.modality_name, self.committed, self.requested_timeout)

    def disconnect(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def reset(self) -> None:
        super().reset()
        self.committed = []
        self.transaction_uid = ""

    def content(self) -> dict[str, Any]:
        result = super().content()
        result["LocalAet"] = self.remote.local_aet
        result["RemoteAet"] = self.remote.aet
        if self.move_originator_aet:
            result["MoveOriginatorAET"] = self.move_originator_aet
            result["MoveOriginatorID"] = self.move_originator_id or 0
        if self.storage_commitment and self.transaction_uid:
            result["StorageCommitmentTransactionUID"] = self.transaction_uid
        return result

    def serialize(self) -> dict[str, Any]:
        return {**super().serialize(), "Modality": self.modality, "ModalityName": self.modality_name,
                "LocalAet": self.requested_local_aet, "Timeout": self.requested_timeout,
                "MoveOriginatorAet": self.move_originator_aet,
                "MoveOriginatorId": self.move_originator_id,
                "StorageCommitment": self.storage_commitment, "TransactionUid": self.transaction_uid,
                "Committed": [list(pair) for pair in self.committed]}

    @classmethod
    def unserialize(cls, services: SendServices, data: dict[str, Any]) -> DicomModalityStoreJob:
        arguments = SetOfInstancesJob.common_arguments(data)
        arguments.pop("trailing_step")
        job = cls(services, modality=data["Modality"], local_aet=data.get("LocalAet"),
                  timeout=data.get("Timeout"), move_originator_aet=data.get("MoveOriginatorAet", ""),
                  move_originator_id=data.get("MoveOriginatorId"),
                  storage_commitment=bool(data.get("StorageCommitment", False)),
                  modality_name=data.get("ModalityName", ""), **arguments)
        job.restore(data)
        job.transaction_uid = data.get("TransactionUid", "")
        job.committed = [(c, i) for c, i in data.get("Committed", [])]
        return job
