"""The DICOM server (pynetdicom): C-ECHO and C-STORE SCP, with Orthanc's authorization.

Received instances go through the one store path, with ``Origin=DicomProtocol``
and the caller's AET, called AET and IP as metadata.
"""

from __future__ import annotations

import fnmatch
import logging
import mmap
import os
import shutil
import socket
import tempfile
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, BinaryIO

import pynetdicom
from pydicom.uid import UID_dictionary
from pynetdicom import AE, _config, evt
from pynetdicom.presentation import AllStoragePresentationContexts, PresentationContext
from pynetdicom.service_class import ServiceClass, StorageServiceClass
from pynetdicom.sop_class import Verification, register_uid, uid_to_service_class
from pynetdicom.transport import ThreadedAssociationServer

from server.dicom.encode import file_meta
from server.dicom.main_tags import Level
from server.dicom.parse import check_encoding, read_upload
from server.errors import OrthancError
from server.net import dimse_codec, reactor
from server.net.modalities import normalized_modalities
from server.net.move_originators import MOVE_ORIGINATORS
from server.net.sop_classes import accepted_sop_classes
from server.store import Origin, Store

if TYPE_CHECKING:
    from server.net.worklists import DicomHooks

log = logging.getLogger("isengard.dicom")

#: Every transfer syntax Orthanc knows (its DicomTransferSyntaxes table, less the two MIME/XML
#: encapsulations no SCU proposes): ``AcceptedTransferSyntaxes`` patterns select among them.
KNOWN_TRANSFER_SYNTAXES = [
    "1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.1.99", "1.2.840.10008.1.2.2",
    *(f"1.2.840.10008.1.2.4.{n}" for n in range(50, 67)),
    "1.2.840.10008.1.2.4.70", "1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.81",
    "1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91", "1.2.840.10008.1.2.4.92",
    "1.2.840.10008.1.2.4.93", "1.2.840.10008.1.2.4.94", "1.2.840.10008.1.2.4.95",
    *(f"1.2.840.10008.1.2.4.{n}" for n in range(100, 109)),
    "1.2.840.10008.1.2.4.110", "1.2.840.10008.1.2.4.111", "1.2.840.10008.1.2.4.112",
    "1.2.840.10008.1.2.4.201", "1.2.840.10008.1.2.4.202", "1.2.840.10008.1.2.4.203",
    "1.2.840.10008.1.2.5",
]

#: The uncompressed syntaxes, always accepted for C-ECHO.
UNCOMPRESSED = KNOWN_TRANSFER_SYNTAXES[:3]

#: Chosen first when the caller proposes it, as Orthanc does (pynetdicom takes the acceptor's order).
PREFERRED_TRANSFER_SYNTAX = "1.2.840.10008.1.2.1"

STATUS_SUCCESS = 0x0000
STATUS_OUT_OF_RESOURCES = 0xA700
STATUS_NOT_AUTHORIZED = 0x0124
#: DCMTK's STATUS_STORE_Error_DataSetDoesNotMatchSOPClass and ..._CannotUnderstand, as Orthanc answers.
STATUS_DOES_NOT_MATCH = 0xA900
STATUS_CANNOT_UNDERSTAND = 0xC000


def _extra_storage_classes() -> list[str]:
    """Storage SOP classes pynetdicom leaves out but Orthanc (DCMTK's list of every storage
    class) accepts: the retired and trial ones (Ultrasound Image Storage 1.2.840.10008.5.1.4.1.1.6...)
    and a few recent ones.  Registered as storage classes so that pynetdicom serves their C-STORE."""
    known = {c.abstract_syntax for c in AllStoragePresentationContexts}
    extra = [uid for uid, (name, kind, *_) in UID_dictionary.items()
             if kind == "SOP Class" and "Storage" in name and "Commitment" not in name
             and "Directory" not in name and uid not in known]
    for uid in extra:
        register_uid(uid, "Isengard" + uid.replace(".", "_"), StorageServiceClass)
    return extra


EXTRA_STORAGE_CLASSES = _extra_storage_classes()

#: Every storage SOP class known (DCMTK's dcmAllStorageSOPClassUIDs in Orthanc): the default of
#: ``AcceptedSopClasses`` and what its wildcards select from.
STORAGE_SOP_CLASSES = [c.abstract_syntax for c in AllStoragePresentationContexts] + EXTRA_STORAGE_CLASSES

_KNOWN_STORAGE = frozenset(STORAGE_SOP_CLASSES)

#: DIMSE status "Refused: SOP Class not supported".
STATUS_SOP_CLASS_NOT_SUPPORTED = 0x0122


def configured_sop_classes(config: Any) -> list[str]:
    """``AcceptedSopClasses`` less ``RejectedSopClasses`` (or its 1.12.6 misspelling
    ``RejectSopClasses``, which Orthanc still reads when the right name is absent)."""
    rejected = config.user_value("RejectedSopClasses")
    if rejected is None:
        rejected = config["RejectSopClasses"]
    return accepted_sop_classes(config["AcceptedSopClasses"], rejected, STORAGE_SOP_CLASSES)


def _storage_class(uid: str) -> bool:
    """Whether pynetdicom serves C-STORE on ``uid``; a UID it does not know (a private class
    named in ``AcceptedSopClasses``) is registered as a storage class first."""
    if uid_to_service_class(uid) is ServiceClass:
        register_uid(uid, "Isengard" + uid.replace(".", "_"), StorageServiceClass)
    return uid_to_service_class(uid) is StorageServiceClass


class DimseStatusError(Exception):
    """Raised by a store filter (Lua's ``ReceivedCStoreInstanceFilter``) to refuse a C-STORE
    with this DIMSE status, sent to the SCU as is."""

    def __init__(self, status: int) -> None:
        super().__init__(f"C-STORE refused by a filter with status 0x{status:04X}")
        self.status = status


def accepted_transfer_syntaxes(patterns: list[str]) -> list[str]:
    """``AcceptedTransferSyntaxes`` patterns (``*`` and ``?`` wildcards) over the known ones."""
    return [ts for ts in KNOWN_TRANSFER_SYNTAXES
            if any(fnmatch.fnmatchcase(ts, p) for p in patterns)]


class _Contexts(list):
    """The server's supported contexts, shared by every association rather than copied.

    pynetdicom deep-copies them for every association it accepts: with ~170 storage
    contexts of ~50 transfer syntaxes that took 37 ms, most of a C-ECHO's time (a shallow
    copy of each still took ~1 ms).  Nothing changes them once made: the negotiation reads
    them and builds the accepted contexts anew, and a change of the accepted transfer
    syntaxes makes a new list (:meth:`DicomServer.set_transfer_syntaxes`).
    """

    def __deepcopy__(self, memo: dict) -> list[PresentationContext]:
        return self


def called_aet(event: evt.Event) -> str:
    """The AET the caller asked for (``storescu`` says ANY-SCP), whatever ours is."""
    return str(event.assoc.requestor.primitive.called_ae_title).strip()


#: The pynetdicom release whose internals :mod:`~server.net.dimse_codec` and
#: :mod:`~server.net.reactor` replace (``pyproject.toml`` pins it; tests check both agree).
PYNETDICOM_VERSION = "3.0.4"


def configure_pynetdicom() -> None:
    """pynetdicom as Isengard runs it, set once by the composition root (importing a module
    changes nothing, so that in-process tests keep pynetdicom's defaults):

    - a C-STORE's dataset larger than ``IN_MEMORY_LIMIT`` is written to a temporary file as
      its fragments arrive (pynetdicom's chunked mode, spilling past that size:
      :mod:`~server.net.dimse_codec`) rather than gathered in memory: a 1 GB multi-frame
      file does not cost the server 1 GB of memory (and twice that to add its meta header),
      whoever sends it, to the SCP or to our C-GET SCU;
    - command sets are encoded and decoded by hand (:mod:`~server.net.dimse_codec`);
    - associations run event-driven threads (:mod:`~server.net.reactor`).

    Those two replace internals of the pinned pynetdicom: another release keeps its own
    code, with a warning (its internals may differ).
    """
    _config.STORE_RECV_CHUNKED_DATASET = True
    if pynetdicom.__version__ != PYNETDICOM_VERSION:
        log.warning("pynetdicom %s is not %s: its DIMSE codec and association loops are left as they are",
                    pynetdicom.__version__, PYNETDICOM_VERSION)
        return
    dimse_codec.install()
    reactor.install()


def received_file(event: evt.Event) -> bytes | mmap.mmap:
    """The DICOM file of a C-STORE: the dataset as sent, behind the meta header Orthanc writes
    (its dcmtk's implementation, where pynetdicom would name itself).  Written by hand from
    the request: pydicom's meta writer took ~7 % of a C-STORE's time.

    A small dataset was received in memory; a large one, spilled to pynetdicom's file, is
    copied behind its header into an unlinked file, answered as a memory map as a large REST
    upload is (:func:`read_upload`)."""
    request = event.request
    meta = file_meta(str(request.AffectedSOPClassUID), str(request.AffectedSOPInstanceUID),
                     str(event.context.transfer_syntax))
    path = event.dataset_path
    if path is None:
        return meta + request.DataSet.getvalue()
    with open(path, "rb") as received:
        received.seek(_dataset_start(received))
        if os.fstat(received.fileno()).st_size - received.tell() <= IN_MEMORY_LIMIT:
            return meta + received.read()
        with tempfile.TemporaryFile(dir=path.parent) as spool:
            spool.write(meta)
            shutil.copyfileobj(received, spool, COPY_PIECE)
            spool.flush()
            return read_upload(spool)


#: Received datasets up to this size stay in memory; larger ones are spilled to a file, then memory-mapped.
IN_MEMORY_LIMIT = dimse_codec.IN_MEMORY_LIMIT
COPY_PIECE = 1024 * 1024


def _dataset_start(received: BinaryIO) -> int:
    """Where the dataset starts in pynetdicom's file: after the preamble, ``DICM`` and the
    meta group, whose length its first element, (0002,0000) UL, gives."""
    received.seek(132)
    header = received.read(12)
    if len(header) < 12 or header[:6] != b"\x02\x00\x00\x00UL":
        raise ValueError("no file meta group length in the received file")
    return 144 + int.from_bytes(header[8:12], "little")


def _received_dataset(data: bytes | mmap.mmap) -> memoryview:
    """The dataset of :func:`received_file`'s answer: after its meta group, whose length
    (0002,0000) gives (see :func:`~server.dicom.encode.file_meta`)."""
    view = memoryview(data)
    return view[144 + int.from_bytes(view[140:144], "little"):]


class _NoDelayServer(ThreadedAssociationServer):
    """Sets TCP_NODELAY on accepted sockets: without it each DIMSE message waits ~40 ms."""

    def get_request(self) -> tuple[socket.socket, tuple[str, int]]:
        client, address = super().get_request()
        client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return client, address

    def service_actions(self) -> None:
        """Nothing: pynetdicom's runs a full ``gc.collect()`` every 60 associations (and
        every 60 idle half-seconds), tens of milliseconds over the server's whole heap, a
        pause for every association then in progress.  Python's collector runs anyway."""


class Authorizer:
    """Orthanc's SCP authorization rules over ``DicomModalities`` and ``DicomAlwaysAllow*``."""

    def __init__(self, config: Any) -> None:
        self.config = config

    def _matching(self, aet: str, ip: str | None) -> list[dict]:
        strict = self.config["StrictAetComparison"]
        found = []
        for params in normalized_modalities(self.config["DicomModalities"]).values():
            same = params["AET"] == aet if strict else params["AET"].upper() == aet.upper()
            if same:
                found.append(params)
        if self.config["DicomCheckModalityHost"] and ip is not None:
            found = [p for p in found if p["Host"] == ip]
        return found

    def accepts_association(self, aet: str, ip: str | None) -> bool:
        config = self.config
        if any(config[f"DicomAlwaysAllow{k}"] for k in
               ("Echo", "Store", "Find", "FindWorklist", "Get", "Move")):
            return True
        return bool(self._matching(aet, ip))

    def allows(self, request: str, aet: str, ip: str | None) -> bool:
        """``request`` is Echo, Store, Find, FindWorklist, Get, Move, NAction or EventReport."""
        always = f"DicomAlwaysAllow{request}"
        if always in self.config.values and self.config[always]:
            return True
        found = self._matching(aet, ip)
        return bool(found) and all(p[f"Allow{request}"] for p in found)


class DicomServer:
    """Owns the pynetdicom AE; ``start``/``stop`` around the server's life."""

    def __init__(self, config: Any, store: Store, port: int) -> None:
        self.config = config
        self.store = store
        self.port = port
        self.authorizer = Authorizer(config)
        self.ae = self._build_ae()
        self._server: ThreadedAssociationServer | None = None
        self.extra_handlers: list[tuple[Any, Callable]] = []
        #: C-FIND hooks (``IncomingFindRequestFilter``, see :mod:`server.events`).
        self.find_filters = store.bus.interventions.find_request
        #: Worklist C-FIND hooks (``IncomingWorklistRequestFilter``).
        self.worklist_filters = store.bus.interventions.worklist_request
        #: Worklist, C-FIND and C-MOVE handlers of scripts and worklists (:mod:`server.net.worklists`).
        self.hooks: DicomHooks | None = None

    def _build_ae(self) -> AE:
        config = self.config
        ae = AE(ae_title=config["DicomAet"])
        ae.require_called_aet = bool(config["DicomCheckCalledAet"])
        ae.maximum_pdu_size = int(config["MaximumPduLength"])
        ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = float(config["DicomScpTimeout"])
        ae.maximum_associations = int(config["DicomMaximumAssociations"])
        self.transfer_syntaxes = accepted_transfer_syntaxes(config["AcceptedTransferSyntaxes"]) or \
            UNCOMPRESSED
        self.sop_classes = [uid for uid in configured_sop_classes(config) if _storage_class(uid)]
        self._accepted = frozenset(self.sop_classes)
        self._add_contexts(ae)
        self.set_unknown_sop_class_accepted(bool(config["UnknownSopClassAccepted"]))
        return ae

    def _add_contexts(self, ae: AE) -> None:
        ae.add_supported_context(Verification, UNCOMPRESSED)
        self._add_storage_contexts(ae)

    def _add_storage_contexts(self, ae: AE) -> None:
        """Storage as SCP, and as SCU too: a C-GET sends its instances over the caller's
        association, in the storage contexts it proposed with the SCP role for itself.
        Only the accepted SOP classes (``AcceptedSopClasses``) get a context.

        pynetdicom checks each transfer syntax of each context (~200 classes of ~50 syntaxes:
        70 ms of each start-up); they are checked once here, and each context gets a copy."""
        preferred = [ts for ts in self.transfer_syntaxes if ts == PREFERRED_TRANSFER_SYNTAX]
        checked = PresentationContext()
        checked.transfer_syntax = preferred + [ts for ts in self.transfer_syntaxes if ts not in preferred]
        for uid in self.sop_classes:
            ae.add_supported_context(uid, [], scu_role=True, scp_role=True)
            ae._supported_contexts[uid]._transfer_syntax = list(checked.transfer_syntax)

    def set_transfer_syntaxes(self, syntaxes: list[str]) -> None:
        """``PUT /tools/accepted-transfer-syntaxes``: governs the associations negotiated from now on."""
        self.transfer_syntaxes = [ts for ts in KNOWN_TRANSFER_SYNTAXES if ts in syntaxes]
        for uid in self.sop_classes:
            self.ae.remove_supported_context(uid)
        self._add_storage_contexts(self.ae)
        if self._server is not None:
            self._server.contexts = _Contexts(self.ae.supported_contexts)

    @property
    def unknown_sop_class_accepted(self) -> bool:
        return bool(_config.UNRESTRICTED_STORAGE_SERVICE)

    def set_unknown_sop_class_accepted(self, accepted: bool) -> None:
        _config.UNRESTRICTED_STORAGE_SERVICE = accepted

    def _rejected_class(self, uid: str) -> bool:
        """A known storage class left out of the accepted ones: refused even in promiscuous mode
        (``UnknownSopClassAccepted`` only opens the classes nobody knows), where pynetdicom
        accepts every storage context."""
        return uid not in self._accepted and uid in _KNOWN_STORAGE

    def start(self) -> None:
        handlers = [(evt.EVT_REQUESTED, self._on_requested), (evt.EVT_C_ECHO, self._on_echo),
                    (evt.EVT_C_STORE, self._on_store), *self.extra_handlers]
        server = self.ae.make_server((self.config["ListenAddress"], self.port),
                                     ae_title=self.config["DicomAet"], evt_handlers=handlers,
                                     server_class=_NoDelayServer)
        server.contexts = _Contexts(server.contexts)
        self.port = server.server_address[1]
        self.ae._servers.append(server)
        threading.Thread(target=server.serve_forever, name="dicom-server", daemon=True).start()
        self._server = server
        log.info("DICOM server listening on port %d (AET %s)", self.port, self.config["DicomAet"])

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    # -- handlers --------------------------------------------------------------------

    @staticmethod
    def _caller(event: evt.Event) -> tuple[str, str | None]:
        requestor = event.assoc.requestor
        return requestor.ae_title.strip(), requestor.address

    def _on_requested(self, event: evt.Event) -> None:
        ip = event.assoc.requestor.address
        aet = event.assoc.requestor.primitive.calling_ae_title.strip()
        if not self.authorizer.accepts_association(aet, ip):
            log.warning("DICOM authorization rejected for AET %s on IP %s", aet, ip)
            event.assoc.acse.send_reject(0x01, 0x01, 0x03)
            event.assoc.is_rejected = True

    def _refuse(self, event: evt.Event, request: str) -> bool:
        aet, ip = self._caller(event)
        if self.authorizer.allows(request, aet, ip):
            return False
        log.warning("DICOM authorization rejected for AET %s on IP %s (%s)", aet, ip, request)
        event.assoc.abort()
        return True

    def _on_echo(self, event: evt.Event) -> int:
        if self._refuse(event, "Echo"):
            return STATUS_NOT_AUTHORIZED
        return STATUS_SUCCESS

    def _on_store(self, event: evt.Event) -> int:
        if self._refuse(event, "Store"):
            return STATUS_NOT_AUTHORIZED
        aet, ip = self._caller(event)
        if self._rejected_class(str(event.context.abstract_syntax)):
            log.warning("C-STORE from %s refused: SOP class %s is not accepted", aet, event.context.abstract_syntax)
            return STATUS_SOP_CLASS_NOT_SUPPORTED
        try:
            data = received_file(event)
        except (OSError, ValueError) as e:
            log.warning("C-STORE from %s refused: %s", aet, e)
            return STATUS_OUT_OF_RESOURCES
        mismatch = _mismatch(event, data)
        if mismatch is not None:
            log.warning("C-STORE from %s refused: %s", aet, mismatch[1])
            return mismatch[0]
        origin = Origin("DicomProtocol", remote_ip=ip, remote_aet=aet, called_aet=called_aet(event))
        try:
            result = self.store.ingest(data, origin)
        except DimseStatusError as e:
            log.info("C-STORE from %s: %s", aet, e)
            return e.status
        except OrthancError as e:
            log.warning("C-STORE from %s refused: %s", aet, e)
            return STATUS_OUT_OF_RESOURCES
        except Exception:  # noqa: BLE001 - the association must get an answer
            log.exception("C-STORE from %s failed", aet)
            return STATUS_OUT_OF_RESOURCES
        if result.status in ("Success", "AlreadyStored"):
            _tell_move_originator(event.request, result.ids.get(Level.INSTANCE))
        return STATUS_SUCCESS


def _tell_move_originator(request: Any, instance_id: str | None) -> None:
    """A sub-operation of a C-MOVE this server asked for: the instance it received."""
    originator = request.MoveOriginatorApplicationEntityTitle
    message_id = request.MoveOriginatorMessageID
    if originator and message_id is not None and instance_id:
        MOVE_ORIGINATORS.received(str(originator), int(message_id), instance_id)



def _mismatch(event: evt.Event, data: bytes | mmap.mmap) -> tuple[int, str] | None:
    """(status, reason) when the dataset does not match its C-STORE request, as Orthanc checks.

    The bytes must be encoded in the presentation context's transfer syntax (checked on the
    raw elements: implicit VR bytes on an explicit VR context are refused, not misread), and
    the dataset's SOP class and instance UIDs must be the request's.
    """
    request = event.request
    syntax = str(event.context.transfer_syntax)
    raw = _received_dataset(data)
    try:
        uids = check_encoding(raw, syntax)
        if uids is None:
            dataset = event.dataset
            uids = (str(dataset.get("SOPClassUID", "")).strip("\0 "),
                    str(dataset.get("SOPInstanceUID", "")).strip("\0 "))
    except Exception as e:  # noqa: BLE001 - whatever the bytes, the SCU gets a status
        return STATUS_CANNOT_UNDERSTAND, f"dataset not encoded in {syntax}: {e}"
    sop_class, sop_instance = uids
    if not sop_class or not sop_instance:
        return STATUS_CANNOT_UNDERSTAND, "no SOP class or SOP instance UID in the dataset"
    if sop_class != str(request.AffectedSOPClassUID) or sop_class != str(event.context.abstract_syntax):
        return STATUS_DOES_NOT_MATCH, f"SOP class {sop_class} on a request for {request.AffectedSOPClassUID}"
    if sop_instance != str(request.AffectedSOPInstanceUID):
        return STATUS_DOES_NOT_MATCH, f"SOP instance {sop_instance} on a request for {request.AffectedSOPInstanceUID}"
    return None
