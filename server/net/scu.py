"""Isengard as a DICOM client (SCU): associations, C-ECHO, C-FIND, C-MOVE and C-STORE.

Every outgoing association goes through :func:`associate`, which applies the
local AET, the timeouts and TCP_NODELAY, and turns every way an association can
fail into Orthanc's error codes and texts (``DicomAssociation - connecting to
AET "X": ...``).  Errors a later attempt may not see again (refused or lost
connections, timeouts, transient rejections) are :class:`NetworkError` with
``transient`` set, so that store jobs can retry them.  Storage commitment and
anything else that needs a raw association reuses :func:`associate`.
"""

from __future__ import annotations

import functools
import logging
import socket
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from io import BytesIO
from typing import Any, cast

import pydicom
from pydicom import config
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.tag import BaseTag
from pynetdicom import AE, StoragePresentationContexts, build_role, evt
from pynetdicom.association import Association
from pynetdicom.dimse_primitives import C_STORE
from pynetdicom.presentation import PresentationContext, build_context
from pynetdicom.sop_class import (
    ModalityWorklistInformationFind,
    PatientRootQueryRetrieveInformationModelFind,
    PatientRootQueryRetrieveInformationModelGet,
    PatientRootQueryRetrieveInformationModelMove,
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelMove,
    Verification,
)

from server.dicom.main_tags import Level, Tag
from server.dicom.parse import dataset_to_send, sending_view
from server.dicom.transcode import DEFAULT_SETTINGS, CannotTranscode, Settings, transcode_dataset
from server.errors import ErrorCode, OrthancError, dimse_payload
from server.net.scp import received_file

log = logging.getLogger("isengard.dicom")

EXPLICIT_LITTLE = "1.2.840.10008.1.2.1"
IMPLICIT_LITTLE = "1.2.840.10008.1.2"
EXPLICIT_BIG = "1.2.840.10008.1.2.2"
#: The uncompressed transfer syntaxes Orthanc proposes, in its order.
UNCOMPRESSED = [EXPLICIT_LITTLE, IMPLICIT_LITTLE, EXPLICIT_BIG]
#: pynetdicom refuses to propose more presentation contexts than this.
MAX_CONTEXTS = 128

#: C-STORE statuses that count as stored (success and the harmless warnings).
_STORED = {0x0000, 0xB000, 0xB006, 0xB007}
_PENDING = {0xFF00, 0xFF01}

#: dcmtk's texts for an association that ended without an answer.
PEER_ABORTED = "Peer aborted Association (or never connected)"
READ_TIMEOUT = "DUL network read timeout"

#: The DICOM spelling of each level in QueryRetrieveLevel.
QR_LEVEL = {Level.PATIENT: "PATIENT", Level.STUDY: "STUDY", Level.SERIES: "SERIES",
            Level.INSTANCE: "IMAGE"}


class NetworkError(OrthancError):
    """A network failure; ``transient`` when trying again later may succeed."""

    def __init__(self, details: str, transient: bool = True,
                 code: int = ErrorCode.NETWORK_PROTOCOL, http_status: int | None = None,
                 payload: dict[str, Any] | None = None) -> None:
        super().__init__(code, details, http_status, payload)
        self.transient = transient


class DimseFailure(NetworkError):
    """A DIMSE command answered with a failure ``status``: kept as the retrieve
    jobs' ``DimseErrorStatus`` and given as the error's ``ErrorPayload`` (Orthanc 1.12.10)."""

    def __init__(self, details: str, status: int, transient: bool = False,
                 http_status: int | None = None) -> None:
        super().__init__(details, transient, http_status=http_status, payload=dimse_payload(status))
        self.dimse_status = status


@dataclass(frozen=True)
class Remote:
    """Where and how to reach a modality: its normalized parameters, resolved for one call."""

    aet: str
    host: str
    port: int
    local_aet: str
    timeout: float
    manufacturer: str = "Generic"
    allow_transcoding: bool = True

    @classmethod
    def of(cls, params: dict[str, Any], config: Any, local_aet: str | None = None,
           timeout: float | None = None) -> Remote:
        """Orthanc's precedence: the request's value, then the modality's, then the global one."""
        chosen_aet = local_aet or params.get("LocalAet") or config["DicomAet"]
        chosen_timeout = timeout or params.get("Timeout") or config["DicomScuTimeout"]
        return cls(aet=params["AET"], host=params["Host"], port=int(params["Port"]),
                   local_aet=chosen_aet, timeout=float(chosen_timeout),
                   manufacturer=params.get("Manufacturer", "Generic"),
                   allow_transcoding=bool(params.get("AllowTranscoding", True)))


def _tcp_failure(remote: Remote) -> str:
    """Why a TCP connection to the remote fails, worded as dcmtk does."""
    try:
        with socket.create_connection((remote.host, remote.port), timeout=min(remote.timeout, 3.0)):
            return PEER_ABORTED
    except ConnectionRefusedError:
        return "TCP Initialization Error: Connection refused"
    except TimeoutError:
        return "TCP Initialization Error: Connection timed out"
    except socket.gaierror:
        return "TCP Initialization Error: Name or service not known"
    except OSError as e:
        return f"TCP Initialization Error: {e.strerror or e}"


def tune(event: evt.Event) -> None:
    """On a new outgoing connection: TCP_NODELAY (no 40 ms wait per message)."""
    event.assoc.dul.socket.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def associate(remote: Remote, contexts: list[PresentationContext],
              ext_neg: list | None = None, handlers: list | None = None) -> Association:
    """Open an association proposing ``contexts`` (and role selections in ``ext_neg``), with
    extra event ``handlers`` (the C-STORE sub-operations of a C-GET).

    The result has at least one accepted presentation context; every failure is
    an OrthancError with Orthanc's wording.  Call :func:`close` when done.
    """
    ae = AE(ae_title=remote.local_aet)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = remote.timeout
    ae.connection_timeout = remote.timeout
    opened: list[bool] = []

    def on_open(event: evt.Event) -> None:
        opened.append(True)
        tune(event)

    started = time.monotonic()
    assoc = ae.associate(remote.host, remote.port, contexts=contexts, ae_title=remote.aet,
                         ext_neg=ext_neg, evt_handlers=[(evt.EVT_CONN_OPEN, on_open), *(handlers or [])])
    if assoc.is_established:
        return assoc
    prefix = f'DicomAssociation - connecting to AET "{remote.aet}": '
    answer = assoc.acceptor.primitive
    if answer is not None and getattr(answer, "result", None) == 0x00:
        raise OrthancError(ErrorCode.NO_PRESENTATION_CONTEXT,
                           f'Unable to negotiate a presentation context with AET "{remote.aet}"')
    if answer is not None and getattr(answer, "result", None) in (0x01, 0x02):
        raise NetworkError(prefix + "DUL Association Rejected", transient=answer.result == 0x02)
    if not opened:
        raise NetworkError(prefix + _tcp_failure(remote))
    if time.monotonic() - started >= remote.timeout * 0.9:
        raise NetworkError(prefix + READ_TIMEOUT)
    raise NetworkError(prefix + PEER_ABORTED)


def close(assoc: Association) -> None:
    """Release politely, abort if the peer does not answer."""
    if assoc.is_established:
        try:
            assoc.release()
        except Exception:  # noqa: BLE001 - closing must never fail the caller
            assoc.abort()


def _lost(remote: Remote, operation: str, assoc: Association | None = None) -> NetworkError:
    reason = PEER_ABORTED if assoc is not None and assoc.is_aborted else READ_TIMEOUT
    return NetworkError(f'DicomAssociation - {operation} to AET "{remote.aet}": {reason}')


def echo(remote: Remote) -> None:
    assoc = associate(remote, [build_context(Verification, UNCOMPRESSED)])
    try:
        status = assoc.send_c_echo()
    finally:
        close(assoc)
    if "Status" not in status:
        raise _lost(remote, "C-ECHO", assoc)
    if status.Status != 0x0000:
        raise NetworkError(f'C-ECHO to AET "{remote.aet}" has failed with DIMSE status '
                           f"0x{status.Status:04X}", transient=False)


def _query_contexts(move: bool) -> list[PresentationContext]:
    models = ([PatientRootQueryRetrieveInformationModelMove, StudyRootQueryRetrieveInformationModelMove]
              if move else [PatientRootQueryRetrieveInformationModelFind,
                            StudyRootQueryRetrieveInformationModelFind])
    return [build_context(model, UNCOMPRESSED) for model in models]


def find(remote: Remote, level: Level, identifier: Dataset) -> list[Dataset]:
    """C-FIND with ``identifier`` (QueryRetrieveLevel is set here); the answers, in order."""
    identifier.QueryRetrieveLevel = QR_LEVEL[level]
    model = (PatientRootQueryRetrieveInformationModelFind if level is Level.PATIENT
             else StudyRootQueryRetrieveInformationModelFind)
    return _find(remote, identifier, model, _query_contexts(move=False))


def find_worklist(remote: Remote, identifier: Dataset) -> list[Dataset]:
    """Modality worklist C-FIND; the answers, in order."""
    model = ModalityWorklistInformationFind
    return _find(remote, identifier, model, [build_context(model, UNCOMPRESSED)])


def _find(remote: Remote, identifier: Dataset, model: str,
          contexts: list[PresentationContext]) -> list[Dataset]:
    assoc = associate(remote, contexts)
    answers: list[Dataset] = []
    final: int | None = None
    try:
        for status, answer in assoc.send_c_find(identifier, model):
            if "Status" not in status:
                break
            if status.Status in _PENDING:
                if answer is not None:
                    answers.append(answer)
            else:
                final = int(status.Status)
    finally:
        close(assoc)
    if final is None:
        raise _lost(remote, "C-FIND", assoc)
    if final != 0x0000:
        suffix = " (unable to process - invalid query ?)" if final == 0xC000 else ""
        raise DimseFailure(f'C-FIND SCU to AET "{remote.aet}" has failed with DIMSE status '
                           f"0x{final:04X}{suffix}", final,
                           http_status=422 if final == 0xC000 else None)
    return answers


def move(remote: Remote, target_aet: str, level: Level, identifiers: dict[Tag, str],
         progress: Callable[[SubOperations], None] | None = None, message_id: int = 1) -> None:
    """C-MOVE of the resources that ``identifiers`` (tag -> value) name, to ``target_aet``, as
    message ``message_id`` (the move originator its sub-operations name)."""
    identifier = Dataset()
    for tag, value in sorted(identifiers.items()):
        identifier.add(element(tag, value))
    identifier.QueryRetrieveLevel = QR_LEVEL[level]
    model = (PatientRootQueryRetrieveInformationModelMove if level is Level.PATIENT
             else StudyRootQueryRetrieveInformationModelMove)
    assoc = associate(remote, _query_contexts(move=True))
    try:
        final = _final_status(assoc.send_c_move(identifier, target_aet, model, msg_id=message_id), progress)
    finally:
        close(assoc)
    if final is None:
        raise _lost(remote, "C-MOVE", assoc)
    if final == 0xC000:
        raise DimseFailure(f'C-MOVE SCU to AET "{remote.aet}" has failed with DIMSE status '
                           "0xC000 (unable to process - resource not found ?)", final, http_status=422)
    if final != 0x0000:
        raise DimseFailure(f'C-MOVE SCU to AET "{remote.aet}" has failed with DIMSE status '
                           f"0x{final:04X}", final)


#: The storage SOP classes a C-GET proposes when the resources' own are unknown: Orthanc
#: proposes its 120 most common accepted ones, as there are only 128 presentation contexts.
COMMON_STORAGE_CLASSES = [str(c.abstract_syntax) for c in StoragePresentationContexts]
#: The transfer syntaxes a C-GET proposes for its storage sub-operations (Orthanc's
#: ``GetProposedStorageTransferSyntaxes``).
GET_STORAGE_SYNTAXES = [EXPLICIT_LITTLE, IMPLICIT_LITTLE]


@dataclass(frozen=True)
class SubOperations:
    """The sub-operation counters of a C-GET pending response (the job's progress)."""

    remaining: int = 0
    completed: int = 0
    failed: int = 0
    warning: int = 0

    def fraction(self) -> float:
        total = self.remaining + self.completed + self.failed + self.warning
        return (self.completed + self.failed + self.warning) / total if total else 0.0


def _final_status(responses: Iterable[tuple[Dataset, Any]],
                  progress: Callable[[SubOperations], None] | None) -> int | None:
    """The final DIMSE status of a C-MOVE's or C-GET's responses, each pending one reported to
    ``progress``; None when the association was lost before it."""
    final: int | None = None
    for status, _ in responses:
        if "Status" not in status:
            break
        _report(status, progress)
        if status.Status not in _PENDING:
            final = int(status.Status)
    return final


def _report(status: Dataset, progress: Callable[[SubOperations], None] | None) -> None:
    """Hand the sub-operation counters of a C-MOVE or C-GET response to ``progress``."""
    if progress is not None and "NumberOfRemainingSuboperations" in status:
        progress(SubOperations(*(int(status.get(f"Number{k}Suboperations") or 0) for k in
                                 ("OfRemaining", "OfCompleted", "OfFailed", "OfWarning"))))


def get(remote: Remote, level: Level, query: dict[Tag, str], receive: Callable[[bytes], int],
        storage_classes: list[str] | None = None,
        progress: Callable[[SubOperations], None] | None = None) -> None:
    """C-GET of the resources that ``query`` (tag -> value) names at ``level``: the modality sends
    the instances over this association; ``receive`` gets each file and answers its C-STORE status."""
    identifier = Dataset()
    for tag, value in sorted(query.items()):
        identifier.add(element(tag, value))
    identifier.QueryRetrieveLevel = QR_LEVEL[level]
    model = (PatientRootQueryRetrieveInformationModelGet if level is Level.PATIENT
             else StudyRootQueryRetrieveInformationModelGet)
    classes = (storage_classes or COMMON_STORAGE_CLASSES)[:MAX_CONTEXTS - 2]
    contexts = [build_context(PatientRootQueryRetrieveInformationModelGet, UNCOMPRESSED),
                build_context(StudyRootQueryRetrieveInformationModelGet, UNCOMPRESSED),
                *(build_context(sop_class, GET_STORAGE_SYNTAXES) for sop_class in classes)]
    roles = [build_role(sop_class, scp_role=True) for sop_class in classes]

    def on_store(event: evt.Event) -> int:
        return receive(received_file(event))

    assoc = associate(remote, contexts, roles, [(evt.EVT_C_STORE, on_store)])
    try:
        if not any(cx.abstract_syntax == model for cx in assoc.accepted_contexts):
            raise OrthancError(ErrorCode.DICOM_GET_UNAVAILABLE, f"Remote AET is {remote.aet}")
        final = _final_status(assoc.send_c_get(identifier, model), progress)
    finally:
        close(assoc)
    if final is None:
        raise _lost(remote, "C-GET", assoc)
    if final != 0x0000:
        raise DimseFailure(f'C-GET SCU to AET "{remote.aet}" has failed with DIMSE status 0x{final:04X}',
                           final)


#: Binary number VRs: a query key of these holds numbers, not the text given.
_NUMBERS = {"US": int, "SS": int, "UL": int, "SL": int, "UV": int, "SV": int,
            "FL": float, "FD": float}


def element(tag: Tag, value: str) -> DataElement:
    """A query key: wildcards, ranges and lists are not valid values, so pydicom must not check them.

    A binary number takes the numbers of the text (none when empty); text that is not
    numbers (a wildcard, say) is refused as Orthanc refuses it, with a 400.
    """
    vr = tag_vr(tag)
    content: Any = value
    if vr in _NUMBERS:
        try:
            numbers = [_NUMBERS[vr](item) for item in value.split("\\")] if value else None
        except ValueError:
            raise OrthancError(ErrorCode.BAD_FILE_FORMAT,
                               f"While creating a DICOM instance, tag ({tag[0]:04x},{tag[1]:04x}) "
                               f"has out-of-range value: \"{value}\"") from None
        content = numbers[0] if numbers and len(numbers) == 1 else numbers
    return DataElement((tag[0] << 16) | tag[1], vr, content, validation_mode=config.IGNORE)


def tag_vr(tag: Tag) -> str:
    """The dictionary VR of a tag (LO when unknown, as for a private text); the first one when
    the dictionary gives a choice (``US or SS``)."""
    try:
        return pydicom.datadict.dictionary_VR((tag[0] << 16) | tag[1]).split(" or ")[0]
    except KeyError:
        return "LO"


# -- C-STORE ---------------------------------------------------------------------------


class Outgoing:
    """One DICOM file to send: what its C-STORE request needs, read from the file without
    decoding it, and the dataset's bytes, sent as the file has them when the peer accepted its
    transfer syntax.  Decoded into a pydicom dataset only when something needs one (an
    ``OutgoingCStoreInstanceFilter``, a transcoding, a conversion pynetdicom makes, a file
    without meta header or deflated)."""

    def __init__(self, data: bytes, sop_class: str, sop_instance: str, transfer_syntax: str,
                 raw: bytes | None, dataset: Dataset | None = None) -> None:
        self.data = data
        self.sop_class = sop_class
        self.sop_instance = sop_instance
        self.transfer_syntax = transfer_syntax
        #: The dataset's bytes in ``transfer_syntax``; None once the dataset was transcoded,
        #: and for a file that pydicom reads.
        self.raw = raw
        self._dataset = dataset

    @classmethod
    def parse(cls, data: bytes) -> Outgoing:
        """Any DICOM file (``store-straight``'s body): refused when it ends early."""
        return cls._read(data, stored=False)

    @classmethod
    def stored(cls, data: bytes) -> Outgoing:
        """A file this server stored, checked then: its meta header and first elements are read."""
        return cls._read(data, stored=True)

    @classmethod
    def _read(cls, data: bytes, stored: bool) -> Outgoing:
        try:
            view = sending_view(data, stored)
            item = cls(data, view.sop_class, view.sop_instance, view.transfer_syntax,
                       data[view.dataset_start:]) if view is not None else cls._decoded(data)
        except Exception as e:  # noqa: BLE001 - pydicom raises many types on corrupt input
            raise OrthancError(ErrorCode.BAD_FILE_FORMAT, "Cannot parse the DICOM file to send") from e
        if not item.sop_class or not item.sop_instance:
            raise OrthancError(ErrorCode.BAD_FILE_FORMAT, "Unable to find the SOP class and instance")
        return item

    @classmethod
    def _decoded(cls, data: bytes) -> Outgoing:
        """A file without meta header (its syntax as pydicom guesses it), or deflated."""
        ds = dataset_to_send(data)
        meta = ds.file_meta
        if "TransferSyntaxUID" not in meta:
            meta.TransferSyntaxUID = IMPLICIT_LITTLE if ds.is_implicit_VR else EXPLICIT_LITTLE
        sop_class = str(ds.get("SOPClassUID", meta.get("MediaStorageSOPClassUID", "")))
        sop_instance = str(ds.get("SOPInstanceUID", meta.get("MediaStorageSOPInstanceUID", "")))
        return cls(data, sop_class, sop_instance, str(meta.TransferSyntaxUID), None, ds)

    @property
    def dataset(self) -> Dataset:
        """The decoded dataset, with its file meta (decoded at the first use)."""
        if self._dataset is None:
            self._dataset = dataset_to_send(self.data)
        return self._dataset

    def transcoded(self, syntax: str) -> None:
        """Note that :attr:`dataset` was transcoded to ``syntax``: the file's bytes are no longer it."""
        self.transfer_syntax = syntax
        self.raw = None

    def sendable(self, meanwhile: Callable[[], None] | None = None) -> Sendable:
        """This file for pynetdicom's C-MOVE and C-GET service classes; ``meanwhile`` is
        called while the peer stores it (see :func:`_exchange`)."""
        return Sendable(self, meanwhile)


_SOP_CLASS = BaseTag(0x00080016)
_SOP_INSTANCE = BaseTag(0x00080018)
_STATUS = BaseTag(0x00000900)


class Sendable(Dataset):
    """What pynetdicom's C-MOVE and C-GET service classes take for a C-STORE sub-operation: a
    Dataset (they check), with the SOP UIDs they read (a failed instance is listed by its
    SOPInstanceUID), carrying the :class:`Outgoing` that :func:`send_c_store` sends, and what
    to do while the peer stores it."""

    def __init__(self, outgoing: Outgoing, meanwhile: Callable[[], None] | None = None) -> None:
        super().__init__({tag: DataElement(tag, "UI", value, validation_mode=config.IGNORE) for tag, value in
                          ((_SOP_CLASS, outgoing.sop_class), (_SOP_INSTANCE, outgoing.sop_instance))})
        self.outgoing = outgoing
        self.meanwhile = meanwhile


def sends_outgoing(event: evt.Event) -> None:
    """On a connection whose C-STORE requests pynetdicom's service classes send (the C-MOVE
    sub-association, the C-GET caller's): they call ``send_c_store``, which must know
    :class:`Sendable`."""
    assoc = event.assoc
    assoc.send_c_store = functools.partial(send_c_store, assoc)  # type: ignore[method-assign]


def send_c_store(assoc: Association, dataset: Dataset, msg_id: int = 1, priority: int = 2,
                 originator_aet: str | None = None, originator_id: int | None = None) -> Dataset:
    """pynetdicom's ``Association.send_c_store`` (same arguments, answers and exceptions), that
    sends a :class:`Sendable` with :func:`store_request`."""
    if isinstance(dataset, Sendable):
        return store_request(assoc, dataset.outgoing, msg_id, priority, originator_aet, originator_id,
                             dataset.meanwhile)
    return Association.send_c_store(assoc, dataset, msg_id, priority, originator_aet, originator_id)


def store_request(assoc: Association, item: Outgoing, msg_id: int = 1, priority: int = 2,
                  originator_aet: str | None = None, originator_id: int | None = None,
                  meanwhile: Callable[[], None] | None = None) -> Dataset:
    """Send ``item`` in a C-STORE request and answer the response's status (empty when none came),
    as pynetdicom's ``send_c_store`` does; ``meanwhile`` is called while the peer stores it.

    When a context accepted the file's own transfer syntax, the request carries the file's
    dataset bytes as they are; otherwise pynetdicom encodes the decoded dataset, converting
    between uncompressed syntaxes (and failing, as it does, without a context for it)."""
    raw = item.raw
    context = _exact_context(assoc, item) if raw is not None else None
    if raw is None or context is None:
        return Association.send_c_store(assoc, item.dataset, msg_id, priority, originator_aet, originator_id)
    if not assoc.is_established or assoc.dul.state_machine.current_state != "Sta6":
        # the second: the connection was lost, and the association thread has not seen it yet
        raise RuntimeError("The association with a peer SCP must be established before sending a "
                           "C-STORE request")
    request = C_STORE()
    request.MessageID = msg_id
    request.Priority = priority
    request.MoveOriginatorApplicationEntityTitle = originator_aet
    request.MoveOriginatorMessageID = originator_id
    request.AffectedSOPClassUID = item.sop_class
    request.AffectedSOPInstanceUID = item.sop_instance
    request.DataSet = BytesIO(raw)
    return _exchange(assoc, request, context.context_id, meanwhile)


def _exact_context(assoc: Association, item: Outgoing) -> PresentationContext | None:
    """An accepted context for ``item``'s SOP class, as its sender, in its transfer syntax."""
    for cx in assoc.accepted_contexts:
        if cx.abstract_syntax == item.sop_class and cx.as_scu and cx.transfer_syntax[0] == item.transfer_syntax:
            return cx
    return None


def _exchange(assoc: Association, request: C_STORE, context_id: int | None,
              meanwhile: Callable[[], None] | None = None) -> Dataset:
    """Send ``request`` and wait for its response, the reactor paused meanwhile (so that it does
    not take the response): the end of pynetdicom's ``send_c_store``, to follow it if it changes.

    ``meanwhile`` runs between the two, while the peer stores (a C-MOVE or C-GET SCP reads its
    next file then): that work then costs no time to the sub-operations, and the response
    has often arrived when the thread comes to read it."""
    assoc._reactor_checkpoint.clear()
    while not assoc._is_paused:
        time.sleep(0.0001)
    try:
        assoc.dimse.send_msg(request, cast(int, context_id))
        if meanwhile is not None:
            meanwhile()
        _, response = assoc.dimse.get_msg(block=True)
    finally:
        assoc._reactor_checkpoint.set()
    if response is None:
        assoc._handle_no_response()
        return Dataset()
    return _received_status(assoc, response)


def _received_status(assoc: Association, response: Any) -> Dataset:
    """pynetdicom's ``_check_received_status``: the status of a response, and its optional
    elements; a plain status (nearly every one) is put straight into the dataset (pydicom's
    ``setattr`` took ~8 % of a C-MOVE sub-operation)."""
    if not response.is_valid_response or \
            any(getattr(response, keyword, None) is not None for keyword in response.STATUS_OPTIONAL_KEYWORDS):
        return assoc._check_received_status(response)
    return Dataset({_STATUS: DataElement(_STATUS, "US", response.Status, validation_mode=config.IGNORE)})


def outgoing_accepted(filters: Iterable[Callable[[Dataset, dict[str, str]], bool]], item: Outgoing | Dataset,
                      aet: str, host: str) -> bool:
    """Orthanc's ``OutgoingCStoreInstanceFilter`` hook point, before each C-STORE of Orthanc's
    own (a store job, Lua's ``SendToModality``, a C-MOVE sub-operation; not ``store-straight``
    nor C-GET): whether every filter lets the instance go to that modality.  An
    :class:`Outgoing` is decoded only when there are filters."""
    destination = {"RemoteIp": host, "RemoteAet": aet}
    return all(accepts(item.dataset if isinstance(item, Outgoing) else item, destination) for accepts in filters)


class StoreConnection:
    """C-STORE SCU over one association, renegotiated when an instance needs new contexts.

    As Orthanc does, each SOP class is proposed with the transfer syntax of the
    files seen so far and, when transcoding is allowed, with the uncompressed
    syntaxes; a file whose syntax was not accepted is transcoded to an accepted one.
    """

    def __init__(self, remote: Remote, transcode: bool, settings: Settings = DEFAULT_SETTINGS) -> None:
        self.remote = remote
        self.transcode = transcode and remote.allow_transcoding
        self.settings = settings
        self._wanted: dict[str, list[str]] = {}
        self._proposed: dict[str, list[str]] = {}
        self._assoc: Association | None = None

    def store(self, data: bytes | Outgoing, originator_aet: str = "",
              originator_id: int | None = None) -> Outgoing:
        """Send one file; the parsed file (SOP class and instance UIDs) when it was stored."""
        item = data if isinstance(data, Outgoing) else Outgoing.parse(data)
        assoc = self._association_for(item)
        accepted = [cx.transfer_syntax[0] for cx in assoc.accepted_contexts
                    if cx.abstract_syntax == item.sop_class]
        if not accepted:
            raise OrthancError(ErrorCode.NO_PRESENTATION_CONTEXT,
                               f'Unable to negotiate a presentation context with AET "{self.remote.aet}"')
        if item.transfer_syntax not in accepted:
            self._transcode(item, accepted)
        try:
            status = store_request(assoc, item, originator_aet=originator_aet or None,
                                   originator_id=originator_id)
        except (RuntimeError, ValueError, AttributeError) as e:
            self.close()
            raise NetworkError(f'C-STORE SCU to AET "{self.remote.aet}": {e}', transient=False) from e
        if "Status" not in status:
            lost = _lost(self.remote, "C-STORE", assoc)
            self.close()
            raise lost
        if status.Status not in _STORED:
            raise DimseFailure(f'C-STORE SCU to AET "{self.remote.aet}" has failed with DIMSE status '
                               f"0x{status.Status:04X}", int(status.Status),
                               transient=0xA700 <= status.Status <= 0xA7FF)
        return item

    def _transcode(self, item: Outgoing, accepted: list[str]) -> None:
        """Make ``item`` sendable in an accepted syntax: pynetdicom converts between uncompressed
        syntaxes itself; anything else goes through the transcoder (when transcoding is allowed)."""
        uncompressed = [syntax for syntax in UNCOMPRESSED if syntax in accepted]
        if item.transfer_syntax in UNCOMPRESSED and uncompressed:
            return
        if self.transcode:
            # decompressed to explicit little endian, pynetdicom then converts to the accepted one
            targets = [EXPLICIT_LITTLE] if uncompressed else []
            for target in targets + [syntax for syntax in accepted if syntax not in UNCOMPRESSED]:
                try:
                    transcode_dataset(item.dataset, target, self.settings)
                except CannotTranscode:
                    continue
                item.transcoded(target)
                return
        raise OrthancError(ErrorCode.NOT_IMPLEMENTED,
                           f"Cannot transcode from {item.transfer_syntax} to one of [ {' '.join(accepted)} ]")

    def _association_for(self, item: Outgoing) -> Association:
        syntaxes = self._wanted.setdefault(item.sop_class, [])
        if item.transfer_syntax not in syntaxes:
            syntaxes.append(item.transfer_syntax)
        if self._assoc is not None and self._assoc.is_established and \
                item.transfer_syntax in self._proposed.get(item.sop_class, []):
            return self._assoc
        self.close()
        contexts = self._contexts()
        if len(contexts) > MAX_CONTEXTS:
            self._wanted = {item.sop_class: [item.transfer_syntax]}
            contexts = self._contexts()
        self._assoc = associate(self.remote, contexts)
        self._proposed = {k: list(v) + (UNCOMPRESSED if self.transcode else [])
                          for k, v in self._wanted.items()}
        return self._assoc

    def _contexts(self) -> list[PresentationContext]:
        contexts = []
        for sop_class, syntaxes in self._wanted.items():
            for syntax in syntaxes:
                if not (self.transcode and syntax in UNCOMPRESSED):
                    contexts.append(build_context(sop_class, [syntax]))
            if self.transcode:
                contexts.append(build_context(sop_class, UNCOMPRESSED))
        return contexts

    def close(self) -> None:
        if self._assoc is not None:
            close(self._assoc)
            self._assoc = None
            self._proposed = {}

