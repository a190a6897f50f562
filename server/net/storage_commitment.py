"""Storage commitment, Push Model (SOP class 1.2.840.10008.1.20.1), as SCP and as SCU.

SCP: an N-ACTION request becomes a ``StorageCommitmentScp`` job that looks every
instance up (the default lookup reads the index; Lua and Python scripts may
provide their own through :class:`LookupProvider`) and sends the report back
on a new association as an N-EVENT-REPORT.

SCU: :meth:`CommitmentService.request_commitment` sends the N-ACTION and keeps a Pending report that
the remote completes later with its N-EVENT-REPORT.  Reports are kept in the
index (they survive a restart), at most ``StorageCommitmentReportsSize`` of them.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pynetdicom import build_context, build_role, evt
from pynetdicom.sop_class import StorageCommitmentPushModel

from server.dicom import uids
from server.dicom.main_tags import Level
from server.errors import ErrorCode, OrthancError
from server.net import scu
from server.net.scp import called_aet

if TYPE_CHECKING:
    from server.net.scp import DicomServer
    from server.net.service import ModalityRegistry
    from server.storage.index import Index

log = logging.getLogger("isengard.dicom")

#: The well-known SOP instance of the Push Model.
PUSH_MODEL_INSTANCE = "1.2.840.10008.1.20.1.1"
UNCOMPRESSED = ["1.2.840.10008.1.2.1", "1.2.840.10008.1.2"]

SUCCESS = 0
PROCESSING_FAILURE = 0x0110
NO_SUCH_OBJECT_INSTANCE = 0x0112
RESOURCE_LIMITATION = 0x0213
REFERENCED_SOP_CLASS_NOT_SUPPORTED = 0x0122
CLASS_INSTANCE_CONFLICT = 0x0119
DUPLICATE_TRANSACTION_UID = 0x0131

#: (plugin enum value, name, DICOM code, Orthanc's description), in the enum's order.
REASONS: list[tuple[int, str, int, str]] = [
    (0, "Success", SUCCESS, "Success"),
    (1, "ProcessingFailure", PROCESSING_FAILURE,
     "A general failure in processing the operation was encountered"),
    (2, "NoSuchObjectInstance", NO_SUCH_OBJECT_INSTANCE,
     "One or more of the elements in the Referenced SOP Instance Sequence was not available"),
    (3, "ResourceLimitation", RESOURCE_LIMITATION,
     "The SCP does not currently have enough resources to store the requested SOP Instance(s)"),
    (4, "ReferencedSOPClassNotSupported", REFERENCED_SOP_CLASS_NOT_SUPPORTED,
     "Storage Commitment has been requested for a SOP Instance with a SOP Class that is not "
     "supported by the SCP"),
    (5, "ClassInstanceConflict", CLASS_INSTANCE_CONFLICT,
     "The SOP Class of an element in the Referenced SOP Instance Sequence did not correspond to "
     "the SOP class registered for this SOP Instance at the SCP"),
    (6, "DuplicateTransactionUID", DUPLICATE_TRANSACTION_UID,
     "The Transaction UID of the Storage Commitment Request is already in use"),
]
_BY_NAME = {name.lower(): code for _, name, code, _ in REASONS}
_BY_ENUM = {value: code for value, _, code, _ in REASONS}
_DESCRIPTIONS = {code: text for _, _, code, text in REASONS}


def reason_code(value: Any) -> int:
    """A reason given by a script (name, plugin enum value or DICOM code) as its DICOM code.

    Anything else is a script error: ProcessingFailure, logged by the caller.
    """
    if isinstance(value, str):
        key = value.strip().lower().replace("_", "")
        for name, code in _BY_NAME.items():
            if name.lower() == key:
                return code
        raise ValueError(f"unknown storage commitment failure reason: {value!r}")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or int(value) != value:
        raise ValueError(f"not a storage commitment failure reason: {value!r}")
    number = int(value)
    if number in _BY_ENUM:
        return _BY_ENUM[number]
    if number in _DESCRIPTIONS:
        return number
    raise ValueError(f"Unsupported failure reason for storage commitment: {number:04X}H")


def describe_reason(code: int) -> str:
    return _DESCRIPTIONS.get(code, "Unknown failure reason")


class LookupProvider(Protocol):
    """A scripted lookup (Lua, Python): the seed's factory / lookup / destructor."""

    def create(self, job_id: str, transaction_uid: str, sop_classes: list[str],
               sop_instances: list[str], remote_aet: str, called_aet: str) -> Any | None:
        """A handler for one request, or None to let the next provider (or the default) answer."""

    def lookup(self, handler: Any, sop_class: str, sop_instance: str) -> Any:
        """The reason (name, enum value or DICOM code) for one instance."""

    def destroy(self, handler: Any) -> None:
        """Called exactly once per handler created."""


def default_lookup(index: Index, sop_class: str, sop_instance: str) -> int:
    """Orthanc's lookup: the instance by SOPInstanceUID, then its SOP class from the file."""
    found = [r for r in index.lookup_identifier(sop_instance) if r.level is Level.INSTANCE]
    if len(found) != 1:
        return NO_SUCH_OBJECT_INSTANCE
    stored_class = index.metadata(found[0].internal_id).get(10)
    if stored_class is None:
        return NO_SUCH_OBJECT_INSTANCE
    return SUCCESS if stored_class == sop_class else CLASS_INSTANCE_CONFLICT


def _referenced(pairs: Iterable[tuple[str, str]]) -> Sequence:
    items = []
    for sop_class, sop_instance in pairs:
        item = Dataset()
        item.ReferencedSOPClassUID = sop_class
        item.ReferencedSOPInstanceUID = sop_instance
        items.append(item)
    return Sequence(items)


def _associate(remote: scu.Remote, as_scp: bool):
    """An association proposing the Push Model (with the SCP role when sending a report)."""
    contexts = [build_context(StorageCommitmentPushModel, UNCOMPRESSED)]
    roles = [build_role(StorageCommitmentPushModel, scu_role=False, scp_role=True)] if as_scp else []
    return scu.associate(remote, contexts, roles)


def send_report(modalities: ModalityRegistry, remote_aet: str, transaction_uid: str,
                results: list[tuple[str, str, int]]) -> None:
    """The N-EVENT-REPORT that ends an SCP transaction, on a new association."""
    found = modalities.by_aet(remote_aet)
    if not found:
        raise OrthancError(ErrorCode.INEXISTENT_ITEM,
                           f"Unknown remote modality for storage commitment SCP: {remote_aet}")
    report = Dataset()
    report.TransactionUID = transaction_uid
    report.ReferencedSOPSequence = _referenced((c, i) for c, i, reason in results if reason == SUCCESS)
    failures = [(c, i, reason) for c, i, reason in results if reason != SUCCESS]
    if failures:
        items = []
        for sop_class, sop_instance, reason in failures:
            item = Dataset()
            item.ReferencedSOPClassUID = sop_class
            item.ReferencedSOPInstanceUID = sop_instance
            item.FailureReason = reason
            items.append(item)
        report.FailedSOPSequence = Sequence(items)
    assoc = _associate(scu.Remote.of(found[0][1], modalities.config), as_scp=True)
    try:
        status, _ = assoc.send_n_event_report(report, 2 if failures else 1, StorageCommitmentPushModel,
                                              PUSH_MODEL_INSTANCE)
    finally:
        scu.close(assoc)
    if status is None or getattr(status, "Status", 0xFFFF) != 0:
        raise OrthancError(ErrorCode.NETWORK_PROTOCOL,
                           f"The storage commitment report was refused by {remote_aet}")


class Reports:
    """SCU-side reports, keyed by transaction UID, least recently used dropped first."""

    def __init__(self, index: Index, limit: int) -> None:
        self.index = index
        self.limit = limit
        self._lock = threading.Lock()

    def create(self, transaction_uid: str, remote_aet: str) -> None:
        self._save(transaction_uid, {"RemoteAET": remote_aet, "Status": "Pending"})

    def complete(self, transaction_uid: str, remote_aet: str, successes: list[tuple[str, str]],
                 failures: list[tuple[str, str, int]]) -> None:
        document = {
            "RemoteAET": remote_aet,
            "Status": "Failure" if failures else "Success",
            "Success": [{"SOPClassUID": c, "SOPInstanceUID": i} for c, i in successes],
            "Failures": [{"Description": describe_reason(r), "FailureReason": r,
                          "SOPClassUID": c, "SOPInstanceUID": i} for c, i, r in failures],
        }
        self._save(transaction_uid, document)

    def get(self, transaction_uid: str) -> dict | None:
        text = self.index.get_commitment_report(transaction_uid)
        return None if text is None else json.loads(text)

    def _save(self, transaction_uid: str, document: dict) -> None:
        with self._lock:
            self.index.save_commitment_report(transaction_uid, json.dumps(document), self.limit)


@dataclass(frozen=True)
class CommitmentRequest:
    """A ``/modalities/{id}/storage-commitment`` request (parsed by :mod:`server.rest.requests`):
    (SOP class, SOP instance) pairs given as such, and Orthanc IDs whose instances are added."""

    dicom_instances: tuple[tuple[str, str], ...] = ()
    resources: tuple[str, ...] = ()
    timeout: float | None = None


def request_commitment(remote: scu.Remote, reports: Reports, pairs: list[tuple[str, str]]) -> str:
    """SCU: send the N-ACTION for ``pairs`` (class, instance); returns the transaction UID."""
    transaction_uid = uids.private_uid()
    reports.create(transaction_uid, remote.aet)
    request = Dataset()
    request.TransactionUID = transaction_uid
    request.ReferencedSOPSequence = _referenced(pairs)
    assoc = _associate(remote, as_scp=False)
    try:
        status, _ = assoc.send_n_action(request, 1, StorageCommitmentPushModel, PUSH_MODEL_INSTANCE)
    finally:
        scu.close(assoc)
    if status is None or getattr(status, "Status", 0xFFFF) != 0:
        raise OrthancError(ErrorCode.NETWORK_PROTOCOL,
                           f'Storage commitment request refused by AET "{remote.aet}"')
    return transaction_uid


def _pairs(sequence: Any) -> list[tuple[str, str]]:
    return [(str(item.ReferencedSOPClassUID), str(item.ReferencedSOPInstanceUID))
            for item in (sequence or [])]


class CommitmentService:
    """The DICOM handlers (N-ACTION as SCP, N-EVENT-REPORT as SCU) and the lookup providers."""

    def __init__(self, index: Index, modalities: ModalityRegistry, reports: Reports) -> None:
        self.index = index
        self.modalities = modalities
        self.reports = reports
        self.providers: list[LookupProvider] = []
        self._dicom: DicomServer | None = None
        self._start_job: Callable[[str, list[tuple[str, str]], str, str], None] | None = None

    def default_lookup(self, sop_class: str, sop_instance: str) -> int:
        return default_lookup(self.index, sop_class, sop_instance)

    def send_report(self, remote_aet: str, transaction_uid: str,
                    results: list[tuple[str, str, int]]) -> None:
        send_report(self.modalities, remote_aet, transaction_uid, results)

    def request_commitment(self, modality_name: str, pairs: list[tuple[str, str]],
                           timeout: float | None = None) -> str:
        """SCU: the N-ACTION for ``pairs`` (class, instance) to a modality; the transaction UID."""
        return request_commitment(self.modalities.remote(modality_name, timeout=timeout), self.reports, pairs)

    def install(self, dicom: DicomServer,
                start_job: Callable[[str, list[tuple[str, str]], str, str], None]) -> None:
        """Accept the Push Model on the DICOM server, in both roles; an N-ACTION calls
        ``start_job(transaction UID, pairs, remote AET, called AET)``."""
        self._dicom = dicom
        self._start_job = start_job
        dicom.ae.add_supported_context(StorageCommitmentPushModel, UNCOMPRESSED, scu_role=True,
                                       scp_role=True)
        dicom.extra_handlers += [(evt.EVT_N_ACTION, self._on_n_action),
                                 (evt.EVT_N_EVENT_REPORT, self._on_n_event_report)]

    def _on_n_action(self, event: evt.Event) -> tuple[int, None]:
        assert self._dicom is not None and self._start_job is not None
        requestor = event.assoc.requestor
        aet = requestor.ae_title.strip()
        if not self._dicom.authorizer.allows("NAction", aet, requestor.address):
            log.warning("DICOM authorization rejected for AET %s (N-ACTION)", aet)
            return 0x0124, None
        if not self.modalities.by_aet(aet):
            log.error("Unknown remote modality for storage commitment SCP: %s", aet)
            return 0x0110, None
        request = event.action_information
        pairs = _pairs(getattr(request, "ReferencedSOPSequence", []))
        self._start_job(str(request.TransactionUID), pairs, aet, called_aet(event))
        return 0x0000, None

    def _on_n_event_report(self, event: evt.Event) -> tuple[int, None]:
        requestor = event.assoc.requestor
        aet = requestor.ae_title.strip()
        assert self._dicom is not None
        if not self._dicom.authorizer.allows("EventReport", aet, requestor.address):
            log.warning("DICOM authorization rejected for AET %s (N-EVENT-REPORT)", aet)
            return 0x0124, None
        report = event.event_information
        successes = _pairs(getattr(report, "ReferencedSOPSequence", []))
        failures = [(str(i.ReferencedSOPClassUID), str(i.ReferencedSOPInstanceUID), int(i.FailureReason))
                    for i in getattr(report, "FailedSOPSequence", [])]
        self.reports.complete(str(report.TransactionUID), aet, successes, failures)
        return 0x0000, None
