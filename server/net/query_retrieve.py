"""Isengard as a Query/Retrieve SCP: C-FIND, C-MOVE and C-GET, the way Orthanc 1.10.1 answers.

C-FIND matching reuses ``/tools/find`` (:mod:`server.find`) with the DICOM rules
on top: case-sensitive but for person names (``CaseSensitivePN``), and at most
``LimitFindResults`` / ``LimitFindInstances`` answers are sent (then the final status
is Cancel).  Every requested key is returned (empty when unknown; the file meta group
never), with the counters Orthanc computes, ``RetrieveAETitle``, and the text written
in ``DefaultEncoding`` under its SpecificCharacterSet (none for Windows1251).

C-MOVE and C-GET find what to send from the identifying tag of the level
(AccessionNumber or StudyInstanceUID for studies, lists allowed) and let
pynetdicom drive the sub-operations.
"""

from __future__ import annotations

import logging
import struct
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from io import BytesIO
from typing import TYPE_CHECKING, Any

import pydicom
from pydicom import config
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.tag import BaseTag
from pynetdicom import evt
from pynetdicom.presentation import PresentationContext, build_context
from pynetdicom.sop_class import (
    PatientRootQueryRetrieveInformationModelFind,
    PatientRootQueryRetrieveInformationModelGet,
    PatientRootQueryRetrieveInformationModelMove,
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelMove,
)

from server.dicom.charset import (
    FollowsDefaultEncoding,
    TextDecoder,
    encode_text,
    pydicom_value,
    specific_character_set,
)
from server.dicom.elements import STRING_VRS, Element, iter_elements, string_text
from server.dicom.json_format import dataset_decoder, tag_text
from server.dicom.main_tags import (
    ALL_TAGS,
    IDENTIFIER,
    PATIENT_INSTANCES,
    PATIENT_SERIES,
    PATIENT_STUDIES,
    SERIES_INSTANCES,
    SOP_CLASSES_IN_STUDY,
    STUDY_INSTANCES,
    STUDY_SERIES,
    Level,
    Tag,
    format_tag,
)
from server.dicom.main_tags import parse_level as parse_resource_level
from server.dicom.raw_dataset import character_set
from server.dicom.transcode import Settings, transcode_file
from server.errors import ErrorCode, OrthancError
from server.find import Constraint, Finder, database_limit, make_constraint, parse_tag, vr_of
from server.net.scp import called_aet
from server.net.scu import MAX_CONTEXTS, UNCOMPRESSED, Outgoing, outgoing_accepted, sends_outgoing, tune
from server.storage.index import ATTACHMENT_DICOM, Attachment, Metadata, Resource

if TYPE_CHECKING:
    from server.config import Configuration
    from server.events import FindFilter
    from server.metrics import Metrics
    from server.net.scp import DicomServer
    from server.storage.index import Index
    from server.store import Store

log = logging.getLogger("isengard.dicom")

IMPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2"
EXPLICIT_VR_BIG_ENDIAN = "1.2.840.10008.1.2.2"
#: Syntaxes between which the decoded dataset needs no conversion, only another encoding.
LITTLE_ENDIAN_UNCOMPRESSED = (IMPLICIT_VR_LITTLE_ENDIAN, "1.2.840.10008.1.2.1")

QUERY_RETRIEVE_LEVEL: Tag = (0x0008, 0x0052)
SPECIFIC_CHARACTER_SET: Tag = (0x0008, 0x0005)
RETRIEVE_AE_TITLE: Tag = (0x0008, 0x0054)
MODALITIES_IN_STUDY: Tag = (0x0008, 0x0061)
ACCESSION_NUMBER: Tag = (0x0008, 0x0050)

#: The counters each level computes when they are asked for.
COUNTERS: dict[Level, tuple[Tag, ...]] = {
    Level.PATIENT: (PATIENT_STUDIES, PATIENT_SERIES, PATIENT_INSTANCES),
    Level.STUDY: (STUDY_SERIES, STUDY_INSTANCES, MODALITIES_IN_STUDY, SOP_CLASSES_IN_STUDY),
    Level.SERIES: (SERIES_INSTANCES,),
    Level.INSTANCE: (),
}

#: Keys that only shape the answers: never matched (the time zone as Orthanc 1.12 ignores it).
_NOT_MATCHED = {QUERY_RETRIEVE_LEVEL, SPECIFIC_CHARACTER_SET, (0x0008, 0x0201)}
_NUMERIC_VRS = {"US": int, "SS": int, "UL": int, "SL": int, "FL": float, "FD": float}

PENDING = 0xFF00
SUCCESS = 0x0000
CANCEL = 0xFE00
UNABLE_TO_PROCESS = 0xC000


def key_text(identifier: Dataset, el: Element, decoder: TextDecoder) -> str:
    """A query key as text, whatever its length (long UID lists must not become universal)."""
    if el.vr in STRING_VRS:
        return decoder.decode(string_text(el.raw, el.vr))
    return tag_text(identifier, el.tag, decoder) or ""


def parse_level(text: str | None, request: str) -> Level:
    if not text or not text.strip():
        raise OrthancError(ErrorCode.BAD_REQUEST,
                           f"{request} request without the tag 0008,0052 (QueryRetrieveLevel)")
    return parse_resource_level(text.strip())


@dataclass
class FindRequest:
    """A C-FIND identifier as Orthanc reads it: keys in order, sequences aside."""

    query: dict[Tag, str]
    sequences: list[Tag]
    vrs: dict[Tag, str]

    @classmethod
    def parse(cls, identifier: Dataset, default_encoding: str) -> FindRequest:
        decoder = dataset_decoder(identifier, default_encoding)
        query: dict[Tag, str] = {}
        sequences: list[Tag] = []
        vrs: dict[Tag, str] = {}
        for el in iter_elements(identifier):
            tag = (el.group, el.element)
            vrs[tag] = el.vr
            if el.vr == "SQ":
                sequences.append(tag)
            else:
                query[tag] = key_text(identifier, el, decoder)
        return cls(query, sequences, vrs)

    def filtered(self, filters: Iterable[FindFilter], origin: dict[str, str]) -> FindRequest:
        """The request after the scripts' filters (keys ``gggg,eeee`` or names, string values)."""
        query = self.query
        for apply in filters:
            answer = apply({format_tag(t): v for t, v in query.items()}, dict(origin))
            if not isinstance(answer, dict) or not all(isinstance(v, str) for v in answer.values()):
                raise OrthancError(ErrorCode.LUA_BAD_OUTPUT,
                                   "Lua: IncomingFindRequestFilter must return a table mapping "
                                   "names of DICOM tags to strings")
            query = {parse_tag(k): v for k, v in answer.items()}
        return FindRequest(query, self.sequences, self.vrs)


@dataclass(frozen=True)
class DicomServices(FollowsDefaultEncoding):
    """What the DICOM network side (the SCP handlers, :class:`server.net.service.NetworkService`)
    uses of the local server."""

    config: Configuration
    index: Index
    store: Store
    finder: Finder
    metrics: Metrics
    #: The current ``DefaultEncoding`` (``PUT /tools/default-encoding`` changes it at run time).
    encoding: Callable[[], str]


class FindScp:
    """Runs one C-FIND request over the index and builds Orthanc's answers."""

    def __init__(self, services: DicomServices) -> None:
        self.services = services

    def answers(self, request: FindRequest, syntax: str) -> tuple[Iterator[Dataset], bool]:
        """(answers, complete): ``complete`` is False when a limit cut the list.  The answers
        are for an association in the transfer ``syntax``, whose encoding their keys have.
        The resources are matched here; each answer is made as it is taken, so that the
        first ones travel while the next are made (the peer's decoding overlaps ours)."""
        level = parse_level(request.query.get(QUERY_RETRIEVE_LEVEL), "C-FIND")
        found, complete = self._match(level, request.query)
        if not complete:
            log.warning("Too many results for an incoming C-FIND query")
        layout = _layout(syntax)
        return (self._answer(level, resource, request, layout) for resource in found), complete

    def _match(self, level: Level, query: dict[Tag, str]) -> tuple[list[Resource], bool]:
        """DICOM matching: case-sensitive, but for person names (``CaseSensitivePN``);
        group lengths and the file meta group are no keys."""
        case_sensitive_pn = bool(self.services.config["CaseSensitivePN"])
        constraints: list[Constraint] = []
        for tag, value in query.items():
            if tag in _NOT_MATCHED or tag[1] == 0x0000 or tag[0] == 0x0002:
                continue
            constraint = make_constraint(tag, value, case_sensitive_pn if vr_of(tag) == "PN" else True)
            if constraint is not None:
                constraints.append(constraint)
        limit = database_limit(self.services.config, level)
        return self.services.finder.find(level, constraints, limit=limit, database_limit=limit)

    def _answer(self, level: Level, resource: Resource, request: FindRequest,
                layout: tuple[bool, bool]) -> Dataset:
        wanted = [t for t in request.query
                  if t not in (QUERY_RETRIEVE_LEVEL, SPECIFIC_CHARACTER_SET) and t[0] != 0x0002]
        counters = self._counters(level, resource, set(request.query))
        instance = self._representative(resource)
        values = self._values(instance, [t for t in wanted if t not in counters], request.sequences)
        answer = Dataset()
        encoding = self.services.default_encoding
        term = specific_character_set(encoding)
        raw = True
        for tag, text in ((SPECIFIC_CHARACTER_SET, term), (QUERY_RETRIEVE_LEVEL, request.query[QUERY_RETRIEVE_LEVEL]),
                          (RETRIEVE_AE_TITLE, self.services.config["DicomAet"])):
            if text is not None:
                raw &= _put(answer, tag, text, None, "Latin1", layout)
        for tag in wanted:
            text = counters.get(tag, values.get(tag, ""))
            raw &= _put(answer, tag, text, request.vrs.get(tag), encoding, layout)
        if request.sequences:
            self._copy_sequences(answer, instance, request.sequences)
        if raw:  # the keys are in this layout and character set: pydicom writes them as they are
            answer.set_original_encoding(*layout, character_set(term))
        return answer

    def _representative(self, resource: Resource) -> Resource | None:
        """The instance whose tags answer for ``resource``: the first to have arrived (down
        the first child of each level, without listing them all)."""
        current: Resource | None = resource
        while current is not None and current.level is not Level.INSTANCE:
            current = self.services.index.first_child(current.internal_id)
        return current

    def _values(self, instance: Resource | None, wanted: list[Tag], sequences: list[Tag]) -> dict[Tag, str]:
        """The main tags of an instance and its parents, or its file's tags if a key needs them."""
        if instance is None:
            return {}
        index = self.services.index
        if sequences or any(t not in ALL_TAGS for t in wanted):
            return self.services.finder.read_tags(instance)
        values: dict[Tag, str] = {}
        current: Resource | None = instance
        while current is not None:
            for tag, value in index.main_tags(current.internal_id).items():
                values.setdefault(tag, value)
            current = index.parent(current)
        return values

    def _counters(self, level: Level, resource: Resource, asked: set[Tag]) -> dict[Tag, str]:
        wanted = [t for t in COUNTERS[level] if t in asked]
        if not wanted:
            return {}
        index = self.services.index
        result: dict[Tag, str] = {}
        count = index.count_descendants
        if level is Level.PATIENT:
            result[PATIENT_STUDIES] = str(count(resource.internal_id, Level.STUDY))
            result[PATIENT_SERIES] = str(count(resource.internal_id, Level.SERIES))
            result[PATIENT_INSTANCES] = str(count(resource.internal_id, Level.INSTANCE))
        elif level is Level.STUDY:
            result[STUDY_SERIES] = str(count(resource.internal_id, Level.SERIES))
            result[STUDY_INSTANCES] = str(count(resource.internal_id, Level.INSTANCE))
            result[MODALITIES_IN_STUDY] = self.services.finder.modalities_in_study(resource)
            if SOP_CLASSES_IN_STUDY in asked:
                instances = index.descendants(resource.internal_id, Level.INSTANCE)
                classes = {index.metadata(i.internal_id).get(Metadata.SopClassUid) for i in instances}
                result[SOP_CLASSES_IN_STUDY] = "\\".join(sorted(c for c in classes if c))
        else:
            result[SERIES_INSTANCES] = str(count(resource.internal_id, Level.INSTANCE))
        return {t: v for t, v in result.items() if t in wanted}

    def _copy_sequences(self, answer: Dataset, instance: Resource | None, tags: list[Tag]) -> None:
        source = Dataset()
        if instance is not None:
            data = self.services.store.read_dicom(instance)
            source = pydicom.dcmread(BytesIO(data), force=True, stop_before_pixels=True)
        for group, element in tags:
            number = (group << 16) | element
            value = source[number].value if number in source and source[number].VR == "SQ" else []
            answer.add(DataElement(number, "SQ", Sequence(list(value))))


def _put(answer: Dataset, tag: Tag, text: str, query_vr: str | None, encoding: str,
         layout: tuple[bool, bool]) -> bool:
    """Add one answer key, with the dictionary's VR (numbers converted as dcmtk would,
    text written in ``encoding``).

    The key is added already encoded in ``layout`` (implicit VR, little endian: the
    association's), as a raw element that pydicom writes as it is: building and
    validating pydicom's elements, then encoding them, was half of each answer's time
    (``tests/test_find_answers.py`` checks the bytes are pydicom's).  False when the key is
    pydicom's element instead (an ambiguous VR such as "US or SS", which pydicom resolves
    over the whole answer before writing it; what it refuses to write)."""
    number = (tag[0] << 16) | tag[1]
    vr = vr_of(tag)
    if vr == "UN" and query_vr and query_vr not in ("UN", "SQ"):
        vr = query_vr
    value = _encoded_value(vr, text, encoding, layout[1])
    if value is _UNWRITABLE:
        return True
    if value is None:
        answer.add(DataElement(number, vr, _pydicom_value(vr, text, encoding), validation_mode=config.IGNORE))
        return False
    assert isinstance(value, bytes)
    key = BaseTag(number)  # into the dataset's dictionary: pydicom's __setitem__ checks cost ~5 us
    answer._dict[key] = RawDataElement(key, vr, len(value), value, 0, *layout)
    return True


#: struct's code of each binary number VR.
_PACKED = {"US": "H", "SS": "h", "UL": "L", "SL": "l", "FL": "f", "FD": "d"}
#: VRs whose answer is always empty.
_EMPTY_VRS = frozenset(("OB", "OW", "OD", "OF", "OL", "OV", "UN", "SQ"))
#: VRs whose value is the text's bytes.
_TEXT_VRS = frozenset(("AE", "AS", "CS", "DA", "DS", "DT", "IS", "LO", "LT", "PN", "SH", "ST", "TM",
                       "UC", "UI", "UR", "UT"))
#: A numeric key whose text is no number: left out of the answer, as dcmtk does.
_UNWRITABLE = object()


def _encoded_value(vr: str, text: str, encoding: str, little: bool) -> bytes | object | None:
    """The bytes of a key's value; :data:`_UNWRITABLE` to leave the key out; None for what
    pydicom must handle (an ambiguous VR such as "US or SS", dcmtk's pseudo-VRs, AT, a
    number out of range)."""
    if vr in _NUMERIC_VRS:
        try:
            numbers = _numbers(vr, text)
        except ValueError:
            return _UNWRITABLE
        try:
            return struct.pack(("<" if little else ">") + _PACKED[vr] * len(numbers), *numbers)
        except struct.error:
            return None
    if vr in _EMPTY_VRS:
        return b""
    if vr not in _TEXT_VRS:
        return None
    raw = encode_text(text, encoding)
    if len(raw) % 2:
        raw += b"\0" if vr == "UI" else b" "
    return raw


def _pydicom_value(vr: str, text: str, encoding: str) -> Any:
    """A key's value for pydicom, when :func:`_encoded_value` leaves it to pydicom."""
    if vr in _NUMERIC_VRS:
        values = _numbers(vr, text)
        if not values:
            return None
        return values[0] if len(values) == 1 else values
    return pydicom_value(text, encoding, vr)


def _numbers(vr: str, text: str) -> list[int | float]:
    """The values of a numeric key's text, as dcmtk reads them (ValueError if one is no number)."""
    return [_NUMERIC_VRS[vr](v) for v in text.split("\\")] if text else []


def _layout(syntax: str) -> tuple[bool, bool]:
    """(implicit VR, little endian) of a transfer syntax, as pynetdicom encodes datasets for
    it (a deflated syntax in explicit little endian, then deflated)."""
    return syntax == IMPLICIT_VR_LITTLE_ENDIAN, syntax != EXPLICIT_VR_BIG_ENDIAN


# -- C-MOVE and C-GET ----------------------------------------------------------------


def _retrieve_tag(level: Level, query: dict[Tag, str]) -> Tag:
    if level is Level.STUDY and query.get(ACCESSION_NUMBER):
        return ACCESSION_NUMBER
    return IDENTIFIER[level]


def retrieve_instances(services: DicomServices, identifier: Dataset, request: str) -> list[Resource]:
    """The instances a C-MOVE or C-GET names; the level is guessed when it is missing."""
    decoder = dataset_decoder(identifier, services.default_encoding)
    query = {(el.group, el.element): key_text(identifier, el, decoder)
             for el in iter_elements(identifier) if el.vr != "SQ"}
    level_text = query.get(QUERY_RETRIEVE_LEVEL, "").strip()
    levels = [parse_level(level_text, request)] if level_text else \
        [Level.INSTANCE, Level.SERIES, Level.STUDY, Level.PATIENT]
    for level in levels:
        tag = _retrieve_tag(level, query)
        if not query.get(tag):
            continue
        resources: list[Resource] = []
        for token in query[tag].split("\\"):
            matches = [services.index.lookup(services.index.public_id(i), level)
                       for i in services.index.candidates(level, {tag: token.strip()})]
            if not matches:
                log.error('%s: Cannot locate resource "%s" at the %s level', request, token,
                          level.title)
            resources += [r for r in matches if r is not None]
        if not resources:
            raise OrthancError(ErrorCode.BAD_REQUEST,
                               f"{request} request matching no resource stored in Orthanc")
        instances: list[Resource] = []
        for resource in resources:
            instances += services.index.descendants(resource.internal_id, Level.INSTANCE)
        return instances
    raise OrthancError(ErrorCode.BAD_REQUEST, f"Invalid fields in a {request} request")


def _outgoing_of(services: DicomServices, instance: Resource,
                 attachment: Attachment | None = None) -> Outgoing | Dataset:
    """The file to send (``attachment`` its DICOM attachment if looked up already); a stand-in
    that pynetdicom counts as a failed sub-operation if it is gone."""
    try:
        return Outgoing.stored(services.store.read_dicom(instance, attachment))
    except Exception:  # noqa: BLE001 - deleted or unreadable since the request
        log.warning("An instance was removed after the C-MOVE/C-GET request: %s", instance.public_id)
        failed = Dataset()
        failed.SOPInstanceUID = "0"
        return failed


class ReadAhead:
    """The files of ``instances`` to send, in order, each read while the peer stores the one
    before (:meth:`read_next` is a C-STORE's ``meanwhile``, see :func:`~server.net.scu._exchange`):
    reading and parsing a file was ~20 % of a C-MOVE sub-operation's time, spent while the
    peer waited.  Their attachments are looked up :data:`WINDOW` at a time.  Only the
    reading goes ahead: the outgoing filters still see each instance just before it is sent."""

    #: How many instances' attachments one query looks up.
    WINDOW = 100

    def __init__(self, services: DicomServices, instances: list[Resource]) -> None:
        self._services = services
        self._instances = instances
        self._position = 0
        self._attachments: dict[int, Attachment] = {}
        self._next: tuple[Resource, Outgoing | Dataset] | None = None

    def __iter__(self) -> Iterator[tuple[Resource, Outgoing | Dataset]]:
        while True:
            self.read_next()
            if self._next is None:
                return
            read, self._next = self._next, None
            yield read

    def read_next(self) -> None:
        """Read the next file, unless it was read already or there is none."""
        if self._next is not None or self._position >= len(self._instances):
            return
        position = self._position
        if position % self.WINDOW == 0:
            window = [i.internal_id for i in self._instances[position:position + self.WINDOW]]
            self._attachments = self._services.index.attachments_many(window, ATTACHMENT_DICOM)
        instance = self._instances[position]
        self._position += 1
        self._next = (instance, _outgoing_of(self._services, instance, self._attachments.get(instance.internal_id)))


def store_contexts(services: DicomServices, instances: list[Resource]) -> list[PresentationContext]:
    """Presentation contexts for sending ``instances``: their own syntax and the uncompressed ones."""
    wanted: dict[str, list[str]] = {}
    found = services.index.metadata_many([i.internal_id for i in instances],
                                         (Metadata.SopClassUid, Metadata.TransferSyntax))
    for instance in instances:
        metadata = found[instance.internal_id]
        sop_class = metadata.get(Metadata.SopClassUid)
        if not sop_class:
            continue
        syntaxes = wanted.setdefault(sop_class, list(UNCOMPRESSED))
        syntax = metadata.get(Metadata.TransferSyntax)
        if syntax and syntax not in syntaxes:
            syntaxes.append(syntax)
    contexts: list[PresentationContext] = []
    for sop_class, syntaxes in wanted.items():
        contexts.append(build_context(sop_class, UNCOMPRESSED))
        contexts += [build_context(sop_class, [s]) for s in syntaxes if s not in UNCOMPRESSED]
    return contexts[:MAX_CONTEXTS]


class QueryRetrieveScp:
    """Installs the C-FIND, C-MOVE and C-GET handlers on the DICOM server."""

    def __init__(self, services: DicomServices, network: Any) -> None:
        self.services = services
        self.network = network
        self.find = FindScp(services)
        self.dicom: DicomServer | None = None

    def install(self, dicom: DicomServer) -> None:
        self.dicom = dicom
        ae = dicom.ae
        syntaxes = UNCOMPRESSED
        for model in (PatientRootQueryRetrieveInformationModelFind, StudyRootQueryRetrieveInformationModelFind,
                      PatientRootQueryRetrieveInformationModelMove, StudyRootQueryRetrieveInformationModelMove,
                      PatientRootQueryRetrieveInformationModelGet, StudyRootQueryRetrieveInformationModelGet):
            ae.add_supported_context(model, syntaxes)
        dicom.extra_handlers += [(evt.EVT_C_FIND, self._on_find), (evt.EVT_C_MOVE, self._on_move),
                                 (evt.EVT_C_GET, self._on_get)]

    # -- helpers -----------------------------------------------------------------------

    def _refused(self, event: evt.Event, request: str) -> bool:
        requestor = event.assoc.requestor
        aet, ip = requestor.ae_title.strip(), requestor.address
        assert self.dicom is not None
        if self.dicom.authorizer.allows(request, aet, ip):
            return False
        log.warning("DICOM authorization rejected for AET %s on IP %s (%s)", aet, ip, request)
        event.assoc.abort()
        return True

    def _origin(self, event: evt.Event) -> dict[str, str]:
        requestor = event.assoc.requestor
        aet = requestor.ae_title.strip()
        found = self.network.modalities_by_aet(aet)
        return {"CalledAet": called_aet(event),
                "Manufacturer": found[0][1]["Manufacturer"] if found else "Generic",
                "RemoteAet": aet, "RemoteIp": requestor.address}

    # -- C-FIND ------------------------------------------------------------------------

    def _on_find(self, event: evt.Event) -> Iterator[tuple[int, Dataset | None]]:
        hooks = self.dicom.hooks if self.dicom is not None else None
        if self._refused(event, hooks.request_kind(event) if hooks is not None else "Find"):
            return iter(())
        if hooks is not None and hooks.answers_find(event):  # worklists, a script's C-FIND SCP
            return hooks.on_find(event, event.assoc.acceptor.ae_title.strip(), self._origin(event))
        return self._find(event)

    def _find(self, event: evt.Event) -> Iterator[tuple[int, Dataset | None]]:
        started = time.monotonic()
        assert self.dicom is not None
        try:
            request = FindRequest.parse(event.identifier, self.services.default_encoding)
            request = request.filtered(self.dicom.find_filters, self._origin(event))
            answers, complete = self.find.answers(request, str(event.context.transfer_syntax))
        except Exception as e:  # noqa: BLE001 - the peer must get a status, not a dropped association
            log.error("C-FIND request handler has failed: %s", e)
            yield UNABLE_TO_PROCESS, None
            return
        finally:
            self.services.metrics.record_max("orthanc_find_scp_duration_ms", (time.monotonic() - started) * 1000)
        while not event.is_cancelled:
            try:
                answer = next(answers, None)
            except Exception as e:  # noqa: BLE001 - as above, after the answers already sent
                log.error("C-FIND request handler has failed: %s", e)
                yield UNABLE_TO_PROCESS, None
                return
            if answer is None:
                yield (SUCCESS if complete else CANCEL), None
                return
            yield PENDING, answer
        yield CANCEL, None

    # -- C-MOVE ------------------------------------------------------------------------

    def _on_move(self, event: evt.Event) -> Iterator[Any]:
        if self._refused(event, "Move"):
            return iter(())
        hooks = self.dicom.hooks if self.dicom is not None else None
        if hooks is not None and hooks.move is not None:  # a script's C-MOVE SCP
            return hooks.on_move(event, event.assoc.acceptor.ae_title.strip())
        return self._move(event)

    def _move(self, event: evt.Event) -> Iterator[Any]:
        started = time.monotonic()
        target = event.move_destination.decode("ascii", "replace").strip() \
            if isinstance(event.move_destination, bytes) else str(event.move_destination).strip()
        log.warning('Move-SCU request received for AET "%s"', target)
        try:
            found = self.network.modalities_by_aet(target)
            if not found:
                raise OrthancError(ErrorCode.UNKNOWN_MODALITY, f"Unknown target AET: {target}")
            name, modality = found[0]
            instances = retrieve_instances(self.services, event.identifier, "C-MOVE")
        except OrthancError as e:
            log.error("IMoveRequestHandler Failed: %s", e.details or e.description)
            raise
        finally:
            self.services.metrics.record_max("orthanc_move_scp_duration_ms", (time.monotonic() - started) * 1000)
        address = (modality["Host"], int(modality["Port"]))
        if not self.services.config["SynchronousCMove"]:
            requestor = event.assoc.requestor.ae_title.strip()
            self.network.store_to_modality([i.public_id for i in instances], name, description="C-MOVE",
                                           move_originator_aet=requestor,
                                           move_originator_id=int(event.request.MessageID))
            yield address
            yield 0
            return
        yield (*address, {"contexts": store_contexts(self.services, instances),
                          "evt_handlers": [(evt.EVT_CONN_OPEN, tune), (evt.EVT_CONN_OPEN, sends_outgoing)]})
        yield len(instances)
        filters = self.services.store.interventions.outgoing_store
        files = ReadAhead(self.services, instances)
        for _, item in files:
            if outgoing_accepted(filters, item, modality["AET"], modality["Host"]):
                yield PENDING, item.sendable(files.read_next) if isinstance(item, Outgoing) else item

    # -- C-GET -------------------------------------------------------------------------

    def _on_get(self, event: evt.Event) -> Iterator[Any]:
        if self._refused(event, "Get"):
            return iter(())
        return self._get(event)

    def _get(self, event: evt.Event) -> Iterator[Any]:
        started = time.monotonic()
        try:
            instances = retrieve_instances(self.services, event.identifier, "C-GET")
        except OrthancError as e:
            log.error("Cannot determine what resources are requested by C-GET: %s",
                      e.details or e.description)
            raise
        finally:
            self.services.metrics.record_max("orthanc_get_scp_duration_ms", (time.monotonic() - started) * 1000)
        sends_outgoing(event)
        yield len(instances)
        files = ReadAhead(self.services, instances)
        for instance, item in files:
            yield PENDING, _get_dataset(self.services, event.assoc, instance, item, files)


def _get_dataset(services: DicomServices, assoc: Any, instance: Resource, item: Outgoing | Dataset,
                 files: ReadAhead) -> Dataset:
    """An instance for a C-GET, transcoded when the caller accepted its SOP class but not its
    transfer syntax (``getscu`` proposes the uncompressed ones only), as Orthanc does; sent as
    the file has it when its syntax was accepted (the next file read meanwhile)."""
    if not isinstance(item, Outgoing):
        return item
    accepted = [cx.transfer_syntax[0] for cx in assoc.accepted_contexts
                if cx.abstract_syntax == item.sop_class and cx.as_scu]
    syntax = item.transfer_syntax
    if not accepted or syntax in accepted:
        return item.sendable(files.read_next)
    ds = item.dataset
    if syntax in LITTLE_ENDIAN_UNCOMPRESSED:
        # pynetdicom encodes the dataset in the syntax its file meta names.
        for target in accepted:
            if target in LITTLE_ENDIAN_UNCOMPRESSED:
                ds.file_meta.TransferSyntaxUID = target
                return ds
    for target in [ts for ts in UNCOMPRESSED if ts in accepted] + \
            [ts for ts in accepted if ts not in UNCOMPRESSED]:
        try:
            data = transcode_file(item.data, target, Settings.from_config(services.config))
            return pydicom.dcmread(BytesIO(data), force=True)
        except OrthancError:
            continue
    log.error("C-GET: cannot transcode instance %s from %s to one of [ %s ]",
              instance.public_id, syntax, " ".join(accepted))
    return ds
