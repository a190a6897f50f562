"""Modality worklists (C-FIND on the Modality Worklist model) and the DICOM hooks of scripts.

* :class:`HierarchicalMatcher`: Orthanc's matching of a C-FIND identifier against a
  DICOM file, sequences included, and the extraction of the requested keys.  Used
  by the worklists, Python's ``WorklistQuery`` and ``FindMatcher``.
* :class:`FolderWorklists`: the ``Worklists`` configuration of Orthanc's sample
  worklists plugin (``Enable``, ``Database`` folder of ``.wl`` files,
  ``FilterIssuerAet``, ``LimitAnswers``), served natively.
* :class:`DicomHooks`: the narrow hook point of the DICOM server: a worklist
  handler answers the worklist model, a find or move handler replaces the built-in
  C-FIND / C-MOVE SCP (as a plugin's ``RegisterFindCallback`` /
  ``RegisterMoveCallback`` does in Orthanc).
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from io import BytesIO
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence
from pydicom.uid import ImplicitVRLittleEndian
from pynetdicom import evt
from pynetdicom.sop_class import ModalityWorklistInformationFind

from server.config import ConfigError
from server.dicom import json_format, uids
from server.dicom.charset import encoding_for_term, keep_encodable, specific_character_set
from server.dicom.encode import Element, ValueContext, element_from_json, parse_tag, write_file
from server.dicom.main_tags import Level
from server.dicom.wildcards import Wildcard
from server.errors import ErrorCode, OrthancError
from server.net.scu import UNCOMPRESSED

if TYPE_CHECKING:
    from server.events import WorklistFilter
    from server.net.scp import DicomServer

log = logging.getLogger("isengard.worklists")

PENDING = 0xFF00
SUCCESS = 0x0000
CANCEL = 0xFE00
UNABLE_TO_PROCESS = 0xC000
#: Orthanc's ``DirectoryExpected`` error code.
DIRECTORY_EXPECTED = 2002
SPECIFIC_CHARACTER_SET = 0x00080005
SCHEDULED_PROCEDURE_STEP_SEQUENCE = 0x00400100
SCHEDULED_STATION_AE_TITLE = 0x00400001
PREGNANCY_STATUS = 0x001021C0
_WILDCARD_VRS = frozenset(("AE", "CS", "LO", "LT", "PN", "SH", "ST", "UC", "UR", "UT"))
_RANGE_VRS = frozenset(("DA", "DT", "TM"))
_BINARY_VRS = frozenset(("OB", "OW", "OF", "OD", "OL", "OV", "UN"))
_TEXT_VRS = frozenset(("PN", "LO", "SH", "ST", "LT", "UT", "UC"))


def parse_dicom(data: bytes) -> Dataset:
    """A DICOM file or a bare dataset (implicit VR little endian)."""
    try:
        return pydicom.dcmread(BytesIO(data), force=True)
    except (InvalidDicomError, EOFError, ValueError, TypeError) as e:
        raise OrthancError(ErrorCode.BAD_FILE_FORMAT, str(e)) from None


def dataset_bytes(ds: Dataset) -> bytes:
    """``ds`` as a DICOM file (what scripts receive as a query)."""
    out = BytesIO()
    copied = copy.deepcopy(ds)
    copied.file_meta = pydicom.dataset.FileMetaDataset()
    copied.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    copied.file_meta.MediaStorageSOPClassUID = ModalityWorklistInformationFind
    copied.file_meta.MediaStorageSOPInstanceUID = uids.generate(Level.INSTANCE)
    copied.save_as(out, implicit_vr=True, little_endian=True, enforce_file_format=True)
    return out.getvalue()


def _text(element: Any) -> str | None:
    """The value as Orthanc's matching reads it; None when null or binary."""
    if element.VR in _BINARY_VRS:
        return None
    value = element.value
    if value is None:
        return ""
    if isinstance(value, MultiValue):
        return "\\".join(str(v) for v in value)
    if isinstance(value, bytes):
        return None
    return str(value).rstrip(" \0")


def _constraint(vr: str, query: str, case_sensitive: bool) -> Callable[[str], bool]:
    """Orthanc's ``DatabaseLookup::AddDicomConstraint`` rules: range, list, wildcard, equality."""
    def norm(text: str) -> str:
        return text if case_sensitive else text.upper()

    if vr in _RANGE_VRS and "-" in query:
        low, _, high = query.partition("-")
        return lambda v: (not low or v >= low) and (not high or v <= high)
    if "\\" in query:
        options = {norm(item) for item in query.split("\\")}
        return lambda v: norm(v) in options
    if vr in _WILDCARD_VRS and ("*" in query or "?" in query):
        return Wildcard(query, ignore_case=not case_sensitive).matches
    expected = norm(query)
    return lambda v: norm(v) == expected


class HierarchicalMatcher:
    """Orthanc's ``HierarchicalMatcher``: one constraint per key, one sub-matcher per sequence."""

    def __init__(self, query: Dataset, case_sensitive_pn: bool = False) -> None:
        self.flat: list[int] = []
        self.constraints: list[tuple[int, Callable[[str], bool]]] = []
        self.sequences: dict[int, HierarchicalMatcher | None] = {}
        for element in query:
            tag = int(element.tag)
            if tag == SPECIFIC_CHARACTER_SET or tag & 0xFFFF == 0:
                continue
            if element.VR == "SQ":
                self.sequences[tag] = self._sub_matcher(element.value, case_sensitive_pn)
                continue
            self.flat.append(tag)
            text = _text(element)
            if text:
                sensitive = case_sensitive_pn or element.VR != "PN"
                self.constraints.append((tag, _constraint(element.VR, text, sensitive)))
            elif text is None and element.value:
                log.warning("This C-Find modality worklist query contains a non-empty tag (%04x,%04x) with UN "
                            "(unknown) value representation. It will be ignored.", tag >> 16, tag & 0xFFFF)

    @staticmethod
    def _sub_matcher(items: Sequence, case_sensitive_pn: bool) -> HierarchicalMatcher | None:
        if len(items) == 0 or (len(items) == 1 and len(items[0]) == 0):
            return None
        if len(items) > 1:
            raise OrthancError(ErrorCode.BAD_REQUEST)
        return HierarchicalMatcher(items[0], case_sensitive_pn)

    def matches(self, item: Dataset) -> bool:
        for tag, accepts in self.constraints:
            element = item.get(tag)
            text = None if element is None else _text(element)
            if not text or not accepts(text):
                return False
        for tag, sub in self.sequences.items():
            element = item.get(tag)
            if sub is None or element is None or element.VR != "SQ":
                continue
            if not any(sub.matches(child) for child in element.value):
                return False
        return True

    def extract(self, source: Dataset) -> Dataset:
        """The requested keys of ``source`` (the items of sequences that match)."""
        target = Dataset()
        for tag in self.flat:
            if tag in source:
                target.add(copy.deepcopy(source[tag]))
        for tag, sub in self.sequences.items():
            element = source.get(tag)
            if element is None or element.VR != "SQ":
                continue
            items = [copy.deepcopy(child) if sub is None else sub.extract(child)
                     for child in element.value if sub is None or sub.matches(child)]
            target.add_new(tag, "SQ", Sequence(items))
        return target


def answer_of(matcher: HierarchicalMatcher, source: Dataset, encoding: str) -> Dataset:
    """An answer as Orthanc sends it: the extracted keys, in the character set of ``DefaultEncoding``.

    Characters the target character set lacks are dropped, as Orthanc's conversion does.
    """
    source.decode()
    answer = matcher.extract(source)
    _drop_unencodable(answer, encoding)
    term = specific_character_set(encoding)  # None for Windows1251, no DICOM character set
    if term is not None:
        answer.SpecificCharacterSet = term
    return answer


def _drop_unencodable(ds: Dataset, encoding: str) -> None:
    for element in ds:
        if element.VR == "SQ":
            for item in element.value:
                _drop_unencodable(item, encoding)
        elif element.VR in _TEXT_VRS and element.value:
            values = element.value if isinstance(element.value, MultiValue) else [element.value]
            kept = [keep_encodable(str(v), encoding) for v in values]
            element.value = kept if isinstance(element.value, MultiValue) else kept[0]


@dataclass
class FindAnswers:
    """What a C-FIND handler answers: datasets, and whether the list is complete."""

    datasets: list[Dataset] = field(default_factory=list)
    complete: bool = True


class WorklistHandler(Protocol):
    """Answers a worklist query: (query, issuer AET, called AET) -> answers."""

    def __call__(self, query: Dataset, issuer_aet: str, called_aet: str) -> FindAnswers: ...


#: A replacement of the built-in C-FIND SCP: (query, issuer AET, called AET) -> answers.
FindHandler = Callable[[Dataset, str, str], FindAnswers]
#: A replacement of the built-in C-MOVE SCP: (query, originator AET, called AET, target AET, message ID).
MoveHandler = Callable[[Dataset, str, str, str, int], None]


class FolderWorklists:
    """The ``Worklists`` section: ``.wl`` files of the ``Database`` folder answer worklist queries."""

    def __init__(self, folder: Path, filter_issuer_aet: bool, limit: int, case_sensitive_pn: bool) -> None:
        #: ``DefaultEncoding`` of the answers, kept current by :func:`install_hooks`.
        self.encoding: Callable[[], str] = lambda: "Latin1"
        self.folder = folder
        self.filter_issuer_aet = filter_issuer_aet
        self.limit = limit
        self.case_sensitive_pn = case_sensitive_pn

    @classmethod
    def from_config(cls, config: Any) -> FolderWorklists | None:
        section = config.get("Worklists") or {}
        if not isinstance(section, dict) or not section.get("Enable", False):
            return None
        database = section.get("Database")
        if not isinstance(database, str) or not database:
            raise ConfigError('The configuration option "Worklists.Database" must contain a path')
        log.warning("The database of worklists will be read from folder: %s", database)
        return cls(config.resolve_path(database), bool(section.get("FilterIssuerAet", False)),
                   int(section.get("LimitAnswers", 0)), bool(config.get("CaseSensitivePN", False)))

    def __call__(self, query: Dataset, issuer_aet: str, called_aet: str) -> FindAnswers:
        requested = HierarchicalMatcher(query, self.case_sensitive_pn)
        matcher = HierarchicalMatcher(self._restricted(query, issuer_aet), self.case_sensitive_pn) \
            if self.filter_issuer_aet else requested
        answers = FindAnswers()
        try:
            # The directory's own order, as Orthanc's plugin reads it (it decides which answers a limit keeps).
            paths = [p for p in self.folder.iterdir() if p.suffix.lower() == ".wl" and p.is_file()]
        except OSError:
            log.error("Inexistent folder while scanning for worklists: %s", self.folder)
            raise OrthancError(DIRECTORY_EXPECTED) from None
        matched = 0
        for path in paths:
            try:
                worklist = pydicom.dcmread(path, force=True)
            except (OSError, InvalidDicomError, EOFError, ValueError):
                log.error("Cannot read the worklist %s", path)
                continue
            if not matcher.matches(worklist):
                continue
            answers.datasets.append(answer_of(requested, worklist, self.encoding()))
            if self.limit and matched >= self.limit:
                answers.complete = False  # Orthanc's plugin has sent one answer more by then
                return answers
            matched += 1
        log.info("Worklist C-Find: parsed %d files, found %d match(es)", len(paths), matched)
        return answers

    @staticmethod
    def _restricted(query: Dataset, issuer_aet: str) -> Dataset:
        """``FilterIssuerAet``: only the worklists whose ScheduledStationAETitle is the issuer's."""
        restricted = copy.deepcopy(query)
        steps = restricted.get(SCHEDULED_PROCEDURE_STEP_SEQUENCE)
        if steps is None:
            restricted.add_new(SCHEDULED_PROCEDURE_STEP_SEQUENCE, "SQ", Sequence([Dataset()]))
            steps = restricted[SCHEDULED_PROCEDURE_STEP_SEQUENCE]
        if steps.VR != "SQ" or len(steps.value) != 1:
            raise OrthancError(ErrorCode.BAD_FILE_FORMAT)
        # Orthanc's plugin means to keep a station the query gives, but its test always
        # fails, so the issuer's AET always wins (checked on Orthanc 1.10.1).
        steps.value[0].add_new(SCHEDULED_STATION_AE_TITLE, "AE", issuer_aet)
        pregnancy = restricted.get(PREGNANCY_STATUS)
        if pregnancy is not None and not _text(pregnancy):
            del restricted[PREGNANCY_STATUS]
        return restricted


class DicomHooks:
    """The handlers that scripts and the worklists plug into the DICOM server."""

    def __init__(self, encoding: Callable[[], str]) -> None:
        self.worklist: WorklistHandler | None = None
        self.find: FindHandler | None = None
        self.move: MoveHandler | None = None
        #: The current ``DefaultEncoding``, for the queries that filters rewrite.
        self.encoding = encoding
        #: ``IncomingWorklistRequestFilter`` (the DICOM server's, once installed).
        self.worklist_filters: Iterable[WorklistFilter] = ()

    def install(self, dicom: DicomServer) -> None:
        """Accept the worklist model when a handler answers it; hand the hooks to the DICOM server."""
        if self.worklist is not None:
            dicom.ae.add_supported_context(ModalityWorklistInformationFind, UNCOMPRESSED)
        self.worklist_filters = dicom.worklist_filters
        dicom.hooks = self

    @staticmethod
    def request_kind(event: evt.Event) -> str:
        """The authorization asked for a C-FIND: ``FindWorklist`` on the worklist model."""
        return "FindWorklist" if _is_worklist(event) else "Find"

    def answers_find(self, event: evt.Event) -> bool:
        """True when a hook answers this C-FIND instead of the built-in SCP."""
        if _is_worklist(event):
            return True
        return self.find is not None

    def on_find(self, event: evt.Event, called_aet: str,
                origin: dict[str, str]) -> Iterator[tuple[int, Dataset | None]]:
        """``origin``: the association as Lua's filters see it (``CalledAet``, ``RemoteAet``...)."""
        issuer = event.assoc.requestor.ae_title.strip()
        worklist = _is_worklist(event)
        handler = self.worklist if worklist else self.find
        if handler is None:
            log.error("No worklist handler is installed")
            yield UNABLE_TO_PROCESS, None
            return
        try:
            query = event.identifier
            if worklist:
                query = filtered_worklist_query(query, self.worklist_filters, origin, self.encoding())
            answers = handler(query, issuer, called_aet)
        except Exception as e:  # noqa: BLE001 - the peer must get a status, not a dropped association
            log.error("%s handler has failed: %s", "Worklist" if worklist else "C-FIND", e)
            yield UNABLE_TO_PROCESS, None
            return
        for answer in answers.datasets:
            if event.is_cancelled:
                yield CANCEL, None
                return
            yield PENDING, answer
        yield (SUCCESS if answers.complete else CANCEL), None

    def on_move(self, event: evt.Event, called_aet: str) -> Iterator[Any]:
        """``RegisterMoveCallback``: the script does the move; its failure fails the C-MOVE."""
        assert self.move is not None
        target = event.move_destination.decode("ascii", "replace").strip() \
            if isinstance(event.move_destination, bytes) else str(event.move_destination).strip()
        originator = event.assoc.requestor.ae_title.strip()
        yield "127.0.0.1", 0  # never contacted: no sub-operation is left to pynetdicom
        try:
            self.move(event.identifier, originator, called_aet, target, int(event.request.MessageID))
        except Exception as e:
            log.error("C-MOVE request handler has failed: %s", e)
            raise
        yield 0


def filtered_worklist_query(query: Dataset, filters: Iterable[WorklistFilter], origin: dict[str, str],
                            default_encoding: str) -> Dataset:
    """``IncomingWorklistRequestFilter``, run before the worklist handler as in Orthanc (for any
    handler: the configured worklists or a script's): each filter gets the query in the "Short"
    JSON format and answers the query to run, rebuilt as Orthanc's ``CreateFromJson`` does.
    A filter answering the very document it got (no script callback) leaves the query as is."""
    source = json_format.tags_short(query, default_encoding)
    document: Any = source
    for apply in filters:
        document = apply(document, dict(origin))
    return query if document is source else query_from_json(document, default_encoding)


def query_from_json(document: Any, default_encoding: str) -> Dataset:
    """A query from JSON (``gggg,eeee`` or tag names -> string, null or list of items), its
    ``SpecificCharacterSet`` that of the document, else of ``DefaultEncoding``."""
    if not isinstance(document, dict):
        raise OrthancError(ErrorCode.LUA_BAD_OUTPUT, "IncomingWorklistRequestFilter must return a table of DICOM tags")
    tags = {parse_tag(str(name)): value for name, value in document.items()}
    declared = tags.pop(SPECIFIC_CHARACTER_SET, None)
    encoding = (encoding_for_term(declared) if isinstance(declared, str) else None) or default_encoding
    context = ValueContext(encoding)
    items = {tag: element_from_json(tag, value, context) for tag, value in tags.items()}
    term = specific_character_set(encoding)
    if term:
        items[SPECIFIC_CHARACTER_SET] = Element("CS", term.encode("ascii"))
    return Dataset(parse_dicom(write_file(items)))  # the dataset alone, as a received identifier


def _is_worklist(event: evt.Event) -> bool:
    return str(event.request.AffectedSOPClassUID) == ModalityWorklistInformationFind


def install_hooks(dicom: DicomServer, worklists: FolderWorklists | None, encoding: Callable[[], str],
                  script_hooks: Callable[[DicomHooks], None] | None) -> None:
    """The worklists of the configuration, then the script's DICOM handlers, on the DICOM server."""
    hooks = DicomHooks(encoding)
    hooks.worklist = worklists
    if worklists is not None:
        worklists.encoding = encoding
    if script_hooks is not None:
        script_hooks(hooks)
    hooks.install(dicom)
