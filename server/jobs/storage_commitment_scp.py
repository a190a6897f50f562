"""The ``StorageCommitmentScp`` job: one lookup step per instance, then the report.

A scripted lookup (:class:`server.net.storage_commitment.LookupProvider`) gets
every UID up front from its factory; its destructor runs exactly once, when the
job ends (success, failure or cancel), never on pause.  A lookup that raises or
answers garbage gives ProcessingFailure for that instance only.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

from server.jobs.job import Job, StepResult, StopReason
from server.net import storage_commitment as commitment

log = logging.getLogger("isengard.jobs")


class CommitmentScp(Protocol):
    """What the job uses of the storage commitment service (:class:`commitment.CommitmentService`)."""

    @property
    def providers(self) -> list[commitment.LookupProvider]:
        """The scripted lookups, asked in turn before the default one."""

    def default_lookup(self, sop_class: str, sop_instance: str) -> int:
        """Orthanc's lookup of one instance in the index."""

    def send_report(self, remote_aet: str, transaction_uid: str,
                    results: list[tuple[str, str, int]]) -> None:
        """The N-EVENT-REPORT that ends the transaction."""


class StorageCommitmentScpJob(Job):
    TYPE = "StorageCommitmentScp"

    def __init__(self, service: CommitmentScp, transaction_uid: str, pairs: list[tuple[str, str]],
                 remote_aet: str, called_aet: str) -> None:
        super().__init__()
        self.service = service
        self.transaction_uid = transaction_uid
        self.pairs = pairs
        self.remote_aet = remote_aet
        self.called_aet = called_aet
        self.results: list[int] = []
        self._provider: commitment.LookupProvider | None = None
        self._handler: Any = None
        self._created = False

    def start(self) -> None:
        if self._created or len(self.results) >= len(self.pairs):
            return
        self._created = True
        classes = [c for c, _ in self.pairs]
        instances = [i for _, i in self.pairs]
        for provider in self.service.providers:
            handler = provider.create(self.id, self.transaction_uid, classes, instances,
                                      self.remote_aet, self.called_aet)
            if handler is not None:
                self._provider, self._handler = provider, handler
                return

    def step(self) -> StepResult:
        if len(self.results) < len(self.pairs):
            sop_class, sop_instance = self.pairs[len(self.results)]
            self.results.append(self._lookup(sop_class, sop_instance))
            return StepResult.next()
        self._destroy()
        self.service.send_report(self.remote_aet, self.transaction_uid,
                                 [(c, i, r) for (c, i), r in zip(self.pairs, self.results, strict=True)])
        return StepResult.success()

    def _lookup(self, sop_class: str, sop_instance: str) -> int:
        if self._provider is None:
            return self.service.default_lookup(sop_class, sop_instance)
        try:
            return commitment.reason_code(self._provider.lookup(self._handler, sop_class, sop_instance))
        except Exception as e:  # noqa: BLE001 - a script error fails one instance, not the job
            log.error("Storage commitment lookup of %s failed: %s", sop_instance, e)
            return commitment.PROCESSING_FAILURE

    def stop(self, reason: StopReason) -> None:
        if reason in (StopReason.SUCCESS, StopReason.FAILURE, StopReason.CANCELED):
            self._destroy()

    def _destroy(self) -> None:
        provider, handler = self._provider, self._handler
        self._provider = self._handler = None
        if provider is not None:
            try:
                provider.destroy(handler)
            except Exception as e:  # noqa: BLE001 - the report must still go out
                log.error("Storage commitment destructor failed: %s", e)

    def reset(self) -> None:
        self._destroy()
        self.results = []
        self._created = False

    def progress(self) -> float:
        return len(self.results) / (len(self.pairs) + 1)

    def content(self) -> dict[str, Any]:
        return {"CalledAet": self.called_aet, "Description": "", "RemoteAet": self.remote_aet,
                "TransactionUid": self.transaction_uid}

    def serialize(self) -> dict[str, Any]:
        return {"TransactionUid": self.transaction_uid, "Instances": [list(p) for p in self.pairs],
                "RemoteAet": self.remote_aet, "CalledAet": self.called_aet, "Results": self.results}

    @classmethod
    def unserialize(cls, service: CommitmentScp, data: dict[str, Any]) -> StorageCommitmentScpJob:
        job = cls(service, data["TransactionUid"], [(c, i) for c, i in data["Instances"]],
                  data["RemoteAet"], data["CalledAet"])
        job.results = list(data.get("Results", []))
        return job
