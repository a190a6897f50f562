"""Reading just what the index needs from an incoming DICOM file.

Ingest reads only the main DICOM tags and a few identifiers (``specific_tags``),
never the whole dataset: converting every element costs more than the rest of
the store path together.
"""

from __future__ import annotations

import io
import mmap
import re
import struct
from dataclasses import dataclass, field
from io import BytesIO
from typing import IO, Any, NamedTuple

import pydicom
from pydicom.charset import convert_encodings, default_encoding
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.tag import BaseTag
from pydicom.tag import Tag as PydicomTag

from server.dicom import main_tags
from server.dicom.charset import decoder_for
from server.dicom.elements import STRING_VRS, dictionary_vr, stored_element, string_text
from server.dicom.json_format import Json, dataset_decoder, sequences_full, string_value_text, tag_text
from server.dicom.main_tags import ALL_TAGS, BY_LEVEL, SEQUENCES, Level, Tag
from server.errors import ErrorCode, OrthancError
from server.storage import ids

SPECIFIC_CHARACTER_SET = (0x0008, 0x0005)
SOP_CLASS_UID = (0x0008, 0x0016)

#: Where pydicom's ``stop_before_pixels`` stops: FloatPixelData, DoubleFloatPixelData, PixelData.
_PIXEL_TAGS = frozenset((0x7FE00008, 0x7FE00009, 0x7FE00010))
_PIXEL_DATA, _BITS_ALLOCATED = 0x7FE00010, 0x00280100
#: The same two tags as numbers, as the walk notes them.
_SPECIFIC_CHARACTER_SET, _SOP_CLASS_UID = ((group << 16) | element for group, element in
                                           (SPECIFIC_CHARACTER_SET, SOP_CLASS_UID))


@dataclass(frozen=True)
class _Wanted:
    """What ingest reads, made again only when the main tags are configured again."""

    generation: int
    #: The tags ingest reads (pydicom's ``specific_tags``).
    tags: list[BaseTag]
    #: The same as numbers, with the pixel tags (where the walk notes where reading stops).
    numbers: frozenset[int]
    #: One tag object per number, the keys of the datasets :func:`_read_indexed` makes: a
    #: lookup with the same object is found by identity, where a plain number is compared
    #: with each candidate key by ``BaseTag.__eq__`` in Python (~0.5 us, twice per main tag).
    objects: dict[int, BaseTag]
    #: Per level, its main tags but the sequences, as (tag object, (group, element)).
    by_level: dict[Level, list[tuple[BaseTag, Tag]]]
    #: The same as (number, (group, element)), for the walked values (keyed by plain numbers).
    numbers_by_level: dict[Level, list[tuple[int, Tag]]]


_wanted_cache = _Wanted(-1, [], frozenset(), {}, {}, {})


def _wanted() -> _Wanted:
    global _wanted_cache
    if _wanted_cache.generation != main_tags.generation:
        tags = [PydicomTag(t) for t in [*ALL_TAGS, SPECIFIC_CHARACTER_SET, SOP_CLASS_UID]]
        objects = {int(t): t for t in tags}
        by_level = {level: [(objects[(g << 16) | e], (g, e)) for g, e in level_tags if (g, e) not in SEQUENCES]
                    for level, level_tags in BY_LEVEL.items()}
        numbers_by_level = {level: [(int(key), tag) for key, tag in keys] for level, keys in by_level.items()}
        _wanted_cache = _Wanted(main_tags.generation, tags, frozenset(objects) | _PIXEL_TAGS | {_BITS_ALLOCATED},
                                objects, by_level, numbers_by_level)
    return _wanted_cache


@dataclass
class ParsedInstance:
    """The indexed view of one DICOM file."""

    #: A memory map for a large upload (see :func:`read_upload`): slice it, or ``bytes()`` it.
    data: bytes | mmap.mmap
    tags: dict[Level, dict[Tag, str]]
    patient_id: str
    study_uid: str
    series_uid: str
    sop_uid: str
    sop_class_uid: str | None
    transfer_syntax: str | None
    pixel_data_offset: int | None
    ids: dict[Level, str] = field(default_factory=dict)
    #: The pixel data's VR when it is not the one the standard calls for (an explicit
    #: 8-bit OW...): what Orthanc 1.12.1 keeps in the ``PixelDataVR`` metadata.
    odd_pixel_vr: str | None = None
    #: The main tags that are sequences, per level, as full-format nodes by ``gggg,eeee``.
    sequences: dict[Level, Json] = field(default_factory=dict)

    def tag(self, level: Level, tag: Tag) -> str | None:
        return self.tags[level].get(tag)


class _ViewReader(io.RawIOBase):
    """A file over a buffer (a memory-mapped upload) that copies nothing but what is read,
    with its own position (several readers may share the buffer)."""

    def __init__(self, data: bytes | mmap.mmap | memoryview) -> None:
        self._view = memoryview(data)
        self._position = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        count = max(0, min(len(buffer), len(self._view) - self._position))
        buffer[:count] = self._view[self._position:self._position + count]
        self._position += count
        return count

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: len(self._view)}[whence]
        self._position = max(0, base + offset)
        return self._position

    def tell(self) -> int:
        return self._position


def read_dataset(data: bytes | mmap.mmap, stop_before_pixels: bool = False,
                 specific_tags: list[BaseTag] | None = None) -> tuple[Dataset, int]:
    """Parse DICOM bytes into (dataset, offset where parsing stopped).

    Anything pydicom cannot read is Orthanc's 400 "Bad file format".  With
    ``stop_before_pixels`` the offset is where the PixelData element starts.
    """
    if len(data) == 0:
        raise OrthancError(ErrorCode.BAD_FILE_FORMAT, "Received an empty DICOM file")
    stream: BytesIO | _ViewReader = BytesIO(data) if isinstance(data, bytes) else _ViewReader(data)
    try:
        ds = pydicom.dcmread(stream, force=True, stop_before_pixels=stop_before_pixels,
                             specific_tags=specific_tags)
    except Exception as e:  # noqa: BLE001 - pydicom raises many types on corrupt input
        raise OrthancError(ErrorCode.BAD_FILE_FORMAT,
                           f"Cannot parse an invalid DICOM file (size: {len(data)} bytes)") from e
    return ds, stream.tell()


#: Explicit VRs whose length is 4 bytes (after 2 reserved bytes).
_LONG_VRS = frozenset((b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN",
                       b"UR", b"UT", b"UV"))
_UNDEFINED = 0xFFFFFFFF
_ITEM, _ITEM_END, _SEQUENCE_END = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD
_IMPLICIT_LITTLE = "1.2.840.10008.1.2"
_EXPLICIT_BIG = "1.2.840.10008.1.2.2"
_DEFLATED = ("1.2.840.10008.1.2.1.99", "1.2.840.10008.1.2.8.1")
_UNCOMPRESSED_EXPLICIT = ("1.2.840.10008.1.2.1", _EXPLICIT_BIG)
#: Uploads larger than this are checked through a memory map before they are read.
_MAP_ABOVE = 8 * 1024 * 1024
_ZERO_ELEMENT = bytes(8)
_NON_ZERO = re.compile(rb"[^\x00]")
_ZERO_WINDOW = 16 * 1024 * 1024
#: Sequences nested deeper than this are refused, as Orthanc 1.13 (its DCMTK's patch for
#: CVE-2026-10528) refuses them: no real file comes near, and the rest of the server
#: (pydicom's recursive reader) could not read the file anyway.
MAX_NESTING = 128
#: SOPClassUID and SOPInstanceUID.
_SOP_UIDS = frozenset((0x00080016, 0x00080018))


class _Truncated(Exception):
    """The walk found an element that does not fit in the file."""


#: Element headers by byte order (little endian?): implicit VR, explicit VR with a short length,
#: a long length; compiled once (a walk reads one per element, ~60 in a small CT file).
_HEADERS = {little: (struct.Struct(f"{order}HHI"), struct.Struct(f"{order}HH2sH"), struct.Struct(f"{order}I"))
            for little, order in ((True, "<"), (False, ">"))}
_IMPLICIT_LITTLE_HEADER, _EXPLICIT_LITTLE, _LONG_LENGTH_LITTLE = _HEADERS[True]


class _Walker:
    """Walks the elements of a DICOM file without decoding them, to prove it is complete.

    pydicom reads a truncated file without complaint (a value shorter than its
    length, a pixel data cut in the middle); DCMTK, hence Orthanc, refuses it.
    Values are skipped, never read: the walk costs the number of elements, not
    the size of the file, and works on a memory map of a huge upload.
    """

    def __init__(self, data: bytes | mmap.mmap | memoryview, strict_vr: bool = False,
                 wanted: frozenset[int] | None = frozenset()) -> None:
        """``strict_vr``: an explicit VR must be two capital letters (proves the encoding).
        ``wanted``: top-level tags (None: all) whose (element offset, VR, value offset, length)
        the walk notes in ``found``; ``ends`` has where those of undefined length end (past
        their delimiter)."""
        self.data = data
        self.size = len(data)
        self.strict_vr = strict_vr
        self.wanted = wanted
        self.found: dict[int, tuple[int, bytes, int, int]] = {}
        self.ends: dict[int, int] = {}
        #: Where the dataset starts, past the file meta group (known once it is walked).
        self.dataset_start = 0

    def header(self, offset: int, explicit: bool, little: bool) -> tuple[int, bytes, int, int]:
        """(tag, VR or b"", value length, offset of the value) of the element at ``offset``."""
        if offset + 8 > self.size:
            raise _Truncated
        implicit_header, explicit_header, long_length = _HEADERS[little]
        if not explicit:
            group, element, length = implicit_header.unpack_from(self.data, offset)
            return (group << 16) | element, b"", length, offset + 8
        group, element, vr, length = explicit_header.unpack_from(self.data, offset)
        tag = (group << 16) | element
        if group == 0xFFFE:
            (length,) = long_length.unpack_from(self.data, offset + 4)
            return tag, b"", length, offset + 8
        if self.strict_vr and not (vr.isalpha() and vr.isupper()):
            raise _Truncated
        if vr in _LONG_VRS:
            if offset + 12 > self.size:
                raise _Truncated
            (length,) = long_length.unpack_from(self.data, offset + 8)
            return tag, vr, length, offset + 12
        return tag, vr, length, offset + 8

    def walk(self, offset: int, explicit: bool, little: bool, until: int = 0xFFFFFFFF) -> int:
        """Walk the dataset from ``offset`` to the end of the file, or to its first top-level
        element past the tag ``until``; the number of its top-level elements, zero ones apart.

        Iterative (nesting deeper than MAX_NESTING is refused): a frame is [in_sequence, explicit]; items
        of undefined length push a dataset frame, elements of undefined length a
        sequence frame.  Runs of zero bytes (elements (0000,0000) of length 0, which
        DCMTK reads as such) are skipped at once.
        """
        stack: list[tuple[bool, bool]] = [(False, explicit)]
        elements = 0
        open_tag = 0  # the top-level element of undefined length being walked
        while True:
            in_sequence, explicit = stack[-1]
            top = len(stack) == 1
            if top and little:
                offset, run = self._run(offset, explicit, until)
                elements += run
            if top and offset == self.size:
                return elements
            if not in_sequence and self.data[offset:offset + 8] == _ZERO_ELEMENT:
                offset = self._skip_zeros(offset)
                continue
            tag, vr, length, value = self.header(offset, explicit and not in_sequence, little)
            if top and tag > until:
                return elements
            if in_sequence:
                if tag == _SEQUENCE_END:
                    stack.pop()
                    if len(stack) == 1:
                        self.ends[open_tag] = value
                elif tag != _ITEM:
                    raise _Truncated
                elif length == _UNDEFINED:
                    if len(stack) > 2 * MAX_NESTING:
                        raise _Truncated
                    stack.append((False, explicit))
                offset = value if tag == _SEQUENCE_END or length == _UNDEFINED else value + length
            elif not top and tag == _ITEM_END:
                stack.pop()
                offset = value
            else:
                elements += top
                if top and (self.wanted is None or tag in self.wanted):
                    self.found[tag] = (offset, vr, value, length)
                    open_tag = tag
                if length == _UNDEFINED:
                    if len(stack) > 2 * MAX_NESTING:
                        raise _Truncated
                    stack.append((True, explicit and vr != b"UN"))
                    offset = value
                else:
                    offset = value + length
            if offset > self.size:
                raise _Truncated

    def _run(self, offset: int, explicit: bool, until: int) -> tuple[int, int]:
        """Past the top-level little endian elements of defined length from ``offset``, noting
        the wanted ones as :meth:`walk` does: (where it stopped, how many it passed).

        Most of a file's elements are these; :meth:`walk`'s own loop, which keeps its nesting
        and checks every case, took twice as long for each.  It stops before any other
        element (undefined length, a zero element, an item tag, one past ``until``, a bad
        VR, one running past the end or near it), which :meth:`walk` then reads itself."""
        data, size, wanted, found, strict = self.data, self.size, self.wanted, self.found, self.strict_vr
        unpack = _EXPLICIT_LITTLE.unpack_from if explicit else _IMPLICIT_LITTLE_HEADER.unpack_from
        unpack_length = _LONG_LENGTH_LITTLE.unpack_from
        count = 0
        while offset + 12 <= size:
            if explicit:
                group, element, vr, length = unpack(data, offset)
                if vr in _LONG_VRS:
                    (length,) = unpack_length(data, offset + 8)
                    value = offset + 12
                else:
                    value = offset + 8
                if strict and not (vr.isalpha() and vr.isupper()):
                    break
            else:
                group, element, length = unpack(data, offset)
                vr, value = b"", offset + 8
            tag = group << 16 | element
            if tag == 0 or tag > until or group == 0xFFFE or length == _UNDEFINED or value + length > size:
                break
            if wanted is None or tag in wanted:
                found[tag] = (offset, vr, value, length)
            count += 1
            offset = value + length
        return offset, count

    def _skip_zeros(self, offset: int) -> int:
        """Past the whole zero elements from ``offset``, searched window by window: the
        windows of a memory map are dropped once searched, so a huge zero body is never
        resident."""
        start = offset
        while start < self.size:
            stop = min(start + _ZERO_WINDOW, self.size)
            found = _NON_ZERO.search(self.data, start, stop)
            if isinstance(self.data, mmap.mmap):
                aligned = start - start % mmap.PAGESIZE
                self.data.madvise(mmap.MADV_DONTNEED, aligned, stop - aligned)
            if found:
                return offset + (found.start() - offset) // 8 * 8
            start = stop
        return offset + (self.size - offset) // 8 * 8


def check_complete(data: bytes | mmap.mmap | memoryview, walker: _Walker | None = None) -> str | None:
    """Refuse (Orthanc's 400 "Bad file format") a DICOM file whose dataset ends early.

    Answers the transfer syntax of the meta header (None without one, or for an empty file);
    ``walker`` notes the top-level elements it wants on the way."""
    if len(data) == 0:
        return None
    walker = walker or _Walker(data)
    try:
        offset, syntax, declared = _file_meta(walker)
        walker.dataset_start = offset
        if syntax in _DEFLATED:
            return syntax
        elements = walker.walk(offset, syntax != _IMPLICIT_LITTLE, syntax != _EXPLICIT_BIG)
    except (_Truncated, struct.error):
        raise OrthancError(ErrorCode.BAD_FILE_FORMAT,
                           f"Cannot parse an invalid DICOM file (size: {len(data)} bytes)") from None
    if elements == 0 and offset == 0:
        # Nothing but zeros: Orthanc reads an empty dataset, which has no identifiers.
        raise OrthancError(ErrorCode.INEXISTENT_TAG)
    return syntax if declared else None


def check_encoding(data: bytes, transfer_syntax: str) -> tuple[str, str] | None:
    """Raise ``ValueError`` unless ``data`` (a dataset, no file meta) is complete and encoded in
    ``transfer_syntax``: the C-STORE SCP's check that bytes match their presentation context.

    Answers the dataset's (SOPClassUID, SOPInstanceUID), read on the way ("" when absent),
    so that the SCP need not decode the dataset to compare them with the request; None
    for a deflated dataset, which is not walked."""
    if transfer_syntax in _DEFLATED:
        return None
    walker = _Walker(data, strict_vr=True, wanted=_SOP_UIDS)
    try:
        walker.walk(0, transfer_syntax != _IMPLICIT_LITTLE, transfer_syntax != _EXPLICIT_BIG)
    except (_Truncated, struct.error):
        raise ValueError(f"the dataset is not encoded in {transfer_syntax}") from None
    return _found_uid(walker, 0x00080016), _found_uid(walker, 0x00080018)


def _found_uid(walker: _Walker, tag: int, fallback: int = -1) -> str:
    """The text of a UID the walk noted (``fallback``'s when ``tag`` was not there; "" when
    neither was)."""
    _, _, start, length = walker.found.get(tag, walker.found.get(fallback, (0, b"", 0, 0)))
    return bytes(walker.data[start:start + length]).decode("ascii", "replace").strip("\0 ")


#: What a C-STORE request needs: the dataset's SOP UIDs, else those of the file meta.
_SENDING_UIDS = _SOP_UIDS | {0x00020002, 0x00020003}


@dataclass(frozen=True)
class SendingView:
    """What a C-STORE request needs of a DICOM file, read without decoding it."""

    #: Where the dataset starts, past the file meta: the bytes from there are sent as they are.
    dataset_start: int
    transfer_syntax: str
    sop_class: str
    sop_instance: str


def sending_view(data: bytes, stored: bool) -> SendingView | None:
    """The transfer syntax, SOP UIDs (the dataset's, else the file meta's, "" when neither has
    them) and dataset offset of a file to send.

    A ``stored`` file was checked complete when it was stored: only its meta header and first
    elements, up to (0008,0018), are read.  Any other file is walked whole and refused, as
    :func:`check_complete` does, when it ends early.  None for a file that pydicom must read
    (no meta header: its encoding is a guess; deflated: its elements cannot be walked)."""
    walker = _Walker(data, wanted=_SENDING_UIDS)
    if stored:
        try:
            walker.dataset_start, syntax, declared = _file_meta(walker)
            if declared and syntax not in _DEFLATED:
                walker.walk(walker.dataset_start, syntax != _IMPLICIT_LITTLE, syntax != _EXPLICIT_BIG,
                            until=0x00080018)
        except (_Truncated, struct.error):
            raise OrthancError(ErrorCode.BAD_FILE_FORMAT,
                               f"Cannot parse an invalid DICOM file (size: {len(data)} bytes)") from None
        found: str | None = syntax if declared else None
    else:
        found = check_complete(data, walker)
    if found is None or found in _DEFLATED:
        return None
    return SendingView(walker.dataset_start, found, _found_uid(walker, 0x00080016, 0x00020002),
                       _found_uid(walker, 0x00080018, 0x00020003))


def _file_meta(walker: _Walker) -> tuple[int, str, bool]:
    """Where the dataset starts, its transfer syntax (guessed without a file meta header), and
    whether the meta header declared it."""
    data = walker.data
    offset = 132 if bytes(data[128:132]) == b"DICM" else 0
    syntax = ""
    meta = offset
    while meta + 8 <= walker.size and bytes(data[meta:meta + 2]) == b"\x02\x00":
        tag, vr, length, value = walker.header(meta, True, True)
        if length == _UNDEFINED or value + length > walker.size:
            raise _Truncated
        if walker.wanted is None or tag in walker.wanted:  # noted with the dataset's elements
            walker.found[tag] = (meta, vr, value, length)
        if tag == 0x00020010:
            syntax = bytes(data[value:value + length]).rstrip(b"\0 ").decode("ascii", "replace")
        meta = value + length
    if syntax:
        return meta, syntax, True
    explicit = walker.size >= meta + 6 and bytes(data[meta + 4:meta + 6]).isalpha() \
        and bytes(data[meta + 4:meta + 6]).isupper()
    return meta, ("1.2.840.10008.1.2.1" if explicit else _IMPLICIT_LITTLE), False


def read_upload(body: IO[bytes]) -> bytes | mmap.mmap:
    """The bytes of an uploaded DICOM file (a large one checked complete here, a small one by
    the store).

    A spooled upload on disk stays there: it is answered as a memory map of the
    (unlinked) file, which the store path reads piece by piece (only element headers
    are walked, the pixel data is hashed and copied through small windows), so a
    1 GB file is stored without ever being in memory.
    """
    size = body.seek(0, 2)
    body.seek(0)
    if size <= _MAP_ABOVE:
        return body.read()  # checked by the store's parse (see Store.ingest)
    mapped = mmap.mmap(body.fileno(), 0, access=mmap.ACCESS_READ)
    check_complete(mapped)
    return mapped


def _first_pixel_tag(found: dict[int, tuple[int, bytes, int, int]]) -> int | None:
    """The first of the pixel data tags a walk found (where pydicom's ``stop_before_pixels``
    stops), or None: three look-ups, not a pass over every element found."""
    return min((tag for tag in _PIXEL_TAGS if tag in found), default=None)


class _Indexed(NamedTuple):
    """What ingest reads of a file, before its identifiers are checked."""

    tags: dict[Level, dict[Tag, str]]
    sequences: dict[Level, Json]
    sop_class: str | None
    #: Where the pixel data starts, else where reading stopped.
    stopped_at: int
    #: The VR DCMTK reads the pixel data with (None: unknown).
    pixel_vr: str | None
    syntax: str | None
    bits_allocated: int


def parse_for_index(data: bytes | mmap.mmap, default_encoding: str) -> ParsedInstance:
    """Read the identifiers and main DICOM tags of a DICOM file, refusing what Orthanc refuses.

    Values are the strings ``/tags`` shows (same decoding and normalisation);
    a value Orthanc shows as Null or TooLong is not indexed.
    """
    wanted = _wanted()
    walker = _Walker(data, wanted=wanted.numbers)
    syntax = check_complete(data, walker)
    read = _indexed_from_walk(data, walker, syntax, wanted, default_encoding) or \
        _indexed_from_dataset(data, walker, syntax, wanted, default_encoding)
    tags = read.tags
    study, series, sop = (tags[Level.STUDY].get((0x0020, 0x000D)), tags[Level.SERIES].get((0x0020, 0x000E)),
                          tags[Level.INSTANCE].get((0x0008, 0x0018)))
    if study is None or series is None or sop is None:
        raise OrthancError(ErrorCode.INEXISTENT_TAG)
    patient = tags[Level.PATIENT].get((0x0010, 0x0020), "").strip()
    study, series, sop = study.strip(), series.strip(), sop.strip()
    if not (study and series and sop):
        raise OrthancError(ErrorCode.BAD_FILE_FORMAT,
                           "missing StudyInstanceUID, SeriesInstanceUID or SOPInstanceUID")
    offset = _pixel_data_offset(data, read.stopped_at)
    parsed = ParsedInstance(data=data, tags=tags, patient_id=patient, study_uid=study,
                            series_uid=series, sop_uid=sop, sop_class_uid=read.sop_class or None,
                            transfer_syntax=read.syntax, pixel_data_offset=offset,
                            sequences={level: nodes for level, nodes in read.sequences.items() if nodes})
    if offset is not None and read.pixel_vr is not None and read.syntax is not None \
            and read.pixel_vr != expected_pixel_vr(read.syntax, read.bits_allocated):
        parsed.odd_pixel_vr = read.pixel_vr
    parsed.ids = {
        Level.PATIENT: ids.patient_id(patient),
        Level.STUDY: ids.study_id(patient, study),
        Level.SERIES: ids.series_id(patient, study, series),
        Level.INSTANCE: ids.instance_id(patient, study, series, sop),
    }
    return parsed


def _indexed_from_walk(data: bytes | mmap.mmap, walker: _Walker, syntax: str | None, wanted: _Wanted,
                       default_encoding: str) -> _Indexed | None:
    """The main tags straight from the walk's raw values, when they are all strings in a
    little-endian file (nearly every file): no pydicom element or dataset is made, which
    took half of the parse.  None otherwise (a sequence, a number, an undefined length, a
    deflated file...): :func:`_indexed_from_dataset` reads it.  The texts are the same as
    :func:`~server.dicom.json_format.tag_text`'s (one conversion, ``string_value_text``)."""
    if syntax is None or syntax in _DEFLATED or syntax == _EXPLICIT_BIG:
        return None
    implicit = syntax == _IMPLICIT_LITTLE
    found = walker.found
    pixels = _first_pixel_tag(found)
    stopped_at = len(data) if pixels is None else found[pixels][0]
    bits_allocated = 8
    values: dict[int, tuple[str, bytes]] = {}
    for tag, (_, file_vr, value, length) in found.items():
        if tag in _PIXEL_TAGS:
            continue
        if length == _UNDEFINED:
            return None
        raw = bytes(data[value:value + length])
        if tag == _BITS_ALLOCATED:
            bits_allocated = int.from_bytes(raw[:2], "little") if len(raw) >= 2 else 8
            continue
        vr = dictionary_vr(tag >> 16, tag & 0xFFFF, None) if implicit or not file_vr \
            else file_vr.decode("ascii", "replace")
        if vr not in STRING_VRS:
            return None
        values[tag] = (vr, raw)
    charset = values.get(_SPECIFIC_CHARACTER_SET)
    decoder = decoder_for(string_text(charset[1], charset[0]) if charset else None, default_encoding)
    tags: dict[Level, dict[Tag, str]] = {}
    for level, level_tags in wanted.numbers_by_level.items():
        level_values: dict[Tag, str] = {}
        for number, tag_pair in level_tags:
            entry = values.get(number)
            if entry is not None:
                text = string_value_text(entry[1], entry[0], decoder)
                if text is not None:
                    level_values[tag_pair] = text
        tags[level] = level_values
    sop_class = values.get(_SOP_CLASS_UID)
    return _Indexed(tags, {}, string_value_text(sop_class[1], sop_class[0], decoder) if sop_class else None,
                    stopped_at, _read_pixel_vr(syntax, found.get(_PIXEL_DATA)), syntax, bits_allocated)


def _indexed_from_dataset(data: bytes | mmap.mmap, walker: _Walker, syntax: str | None, wanted: _Wanted,
                          default_encoding: str) -> _Indexed:
    """The main tags read from a dataset: the walk's elements as pydicom's raw ones, or
    pydicom's reading of the file."""
    ds, stopped_at, pixel_vr, syntax = _read_indexed(data, walker, syntax, wanted)
    if syntax is None:  # read by pydicom
        if len(ds) == 0 and "TransferSyntaxUID" not in getattr(ds, "file_meta", {}):
            raise OrthancError(ErrorCode.BAD_FILE_FORMAT,
                               f"Cannot parse an invalid DICOM file (size: {len(data)} bytes)")
        syntax = _transfer_syntax(ds)
    decoder = dataset_decoder(ds, default_encoding)
    present = ds._dict  # most main tags are absent from a file: not looked up one by one
    tags: dict[Level, dict[Tag, str]] = {}
    for level, level_tags in wanted.by_level.items():
        values: dict[Tag, str] = {}
        for key, tag in level_tags:
            if key in present:
                value = tag_text(ds, key, decoder)
                if value is not None:
                    values[tag] = value
        tags[level] = values
    sequences = {level: sequences_full(ds, ((g << 16) | e for g, e in level_tags if (g, e) in SEQUENCES),
                                       decoder)
                 for level, level_tags in BY_LEVEL.items()}
    return _Indexed(tags, sequences, tag_text(ds, _SOP_CLASS_UID, decoder), stopped_at, pixel_vr, syntax,
                    _bits_allocated(ds))


def _read_indexed(data: bytes | mmap.mmap, walker: _Walker, syntax: str | None,
                  wanted: _Wanted) -> tuple[Dataset, int, str | None, str | None]:
    """The wanted top-level elements of a walked, checked-complete file (``syntax``, its
    transfer syntax), where its pixel data starts (else where reading stopped), the VR DCMTK
    reads its pixel data with (None: unknown), and its transfer syntax (None: read by
    pydicom, see the dataset's file meta).

    The walk's elements become pydicom's raw elements, converted only when
    :func:`tag_text` asks: ~4x cheaper than pydicom's reader.  A deflated file, or one
    without a meta header (its encoding then is pydicom's guess), is read by pydicom."""
    if syntax is None or syntax in _DEFLATED or any(
            length == _UNDEFINED for tag, (_, _, _, length) in walker.found.items() if tag not in _PIXEL_TAGS):
        # (a wanted sequence of undefined length: its end is pydicom's to find)
        return (*read_dataset(data, stop_before_pixels=True, specific_tags=wanted.tags), None, None)
    implicit, little = syntax == _IMPLICIT_LITTLE, syntax != _EXPLICIT_BIG
    stopped_at = len(data)
    elements: dict[BaseTag, DataElement | RawDataElement] = {}
    for tag, (start, vr, value, length) in sorted(walker.found.items()):
        if tag in _PIXEL_TAGS:
            stopped_at = start
            break
        key = wanted.objects.get(tag) or PydicomTag(tag)
        elements[key] = _raw_element(data, key, vr, value, value + length, length, implicit, little)
    ds = Dataset(elements)  # no file meta: pydicom's costs a sixth of the parse
    ds.set_original_encoding(implicit, little)
    return ds, stopped_at, _read_pixel_vr(syntax, walker.found.get(_PIXEL_DATA)), syntax


def _read_pixel_vr(syntax: str, pixel_data: tuple[int, bytes, int, int] | None) -> str | None:
    """The pixel data's VR as Orthanc's DicomStreamReader takes it: the file's in the explicit
    uncompressed syntaxes, OW in implicit little endian, OB in the compressed ones."""
    if pixel_data is None:
        return None
    if syntax == _IMPLICIT_LITTLE:
        return "OW"
    if syntax in _UNCOMPRESSED_EXPLICIT:
        return pixel_data[1].decode("ascii", "replace")
    return "OB"


def expected_pixel_vr(syntax: str, bits_allocated: int) -> str:
    """Orthanc's ``GuessPixelDataValueRepresentation``: the VR the standard calls for."""
    if syntax in _UNCOMPRESSED_EXPLICIT:
        return "OW" if bits_allocated > 8 else "OB"
    return "OW" if syntax == _IMPLICIT_LITTLE else "OB"


def _raw_element(data: bytes | mmap.mmap, key: BaseTag, vr: bytes, value: int, end: int, length: int,
                 implicit: bool, little: bool) -> RawDataElement:
    """One element the walk found, as pydicom's raw element (converted only when read)."""
    return RawDataElement(key, vr.decode("ascii") if vr else None, length, bytes(data[value:end]), value,
                          implicit, little)


def dataset_to_send(data: bytes) -> Dataset:
    """A stored file as a dataset to send (C-STORE SCU, C-MOVE and C-GET SCP): every top-level
    element raw, as the file has it, so that pydicom writes it back as is (pydicom's own
    reader cost ~10 % of a C-MOVE).  With its file meta; a deflated file, or one without a
    meta header, is pydicom's to read; an incomplete one is refused."""
    walker = _Walker(data, wanted=None)
    syntax = check_complete(data, walker)
    if syntax is None or syntax in _DEFLATED:
        return pydicom.dcmread(BytesIO(data), force=True)
    return _walked_dataset(data, walker, syntax)


def read_stored_dataset(data: bytes | mmap.mmap, stop_before_pixels: bool = False) -> Dataset:
    """A stored file as a dataset to read its tags: every top-level element raw, found by one
    walk of the element headers, converted only when read (pydicom's reader, which converts
    each sequence as it goes, took ~1.6x as long for a CT slice).  ``stop_before_pixels``
    leaves out the pixel data and what follows it, as pydicom's reader does.  A deflated
    file, one without a meta header, or one the walk refuses (an incomplete file, which
    pydicom reads as far as it goes) is pydicom's to read, as :func:`read_dataset` would."""
    walker = _Walker(data, wanted=None)
    try:
        syntax = check_complete(data, walker)
    except OrthancError:
        syntax = None
    if syntax is None or syntax in _DEFLATED:
        return read_dataset(data, stop_before_pixels=stop_before_pixels)[0]
    pixels = _first_pixel_tag(walker.found) if stop_before_pixels else None
    return _walked_dataset(data, walker, syntax, 0xFFFFFFFF if pixels is None else pixels)


def _walked_dataset(data: bytes | mmap.mmap, walker: _Walker, syntax: str, stop: int = 0xFFFFFFFF) -> Dataset:
    """The dataset (and file meta) of a file walked whole, every top-level element raw, up to
    the tag ``stop`` (left out)."""
    implicit, little = syntax == _IMPLICIT_LITTLE, syntax != _EXPLICIT_BIG
    elements: dict[BaseTag, DataElement | RawDataElement] = {}
    meta: dict[BaseTag, DataElement | RawDataElement] = {}
    for tag, (_, vr, value, length) in walker.found.items():
        if tag >= stop:
            continue
        end = walker.ends[tag] - 8 if length == _UNDEFINED else value + length
        key = BaseTag(tag)
        in_meta = value < walker.dataset_start  # the meta group is explicit little endian
        (meta if in_meta else elements)[key] = _raw_element(data, key, vr, value, end, length,
                                                            not in_meta and implicit, in_meta or little)
    ds = Dataset(elements)
    ds.file_meta = FileMetaDataset(meta)  # with the TransferSyntaxUID: check_complete found it
    # with its character set too, or pydicom decodes and re-encodes every element when writing
    charset = ds.get("SpecificCharacterSet")
    ds.set_original_encoding(implicit, little,
                             convert_encodings(charset) if charset else default_encoding)
    return ds


def _bits_allocated(ds: Dataset) -> int:
    """BitsAllocated, 8 when absent or unreadable (as Orthanc guesses)."""
    element = stored_element(ds, _BITS_ALLOCATED)
    if not isinstance(element, RawDataElement) or not isinstance(element.value, bytes) or len(element.value) < 2:
        return 8
    return int.from_bytes(element.value[:2], "little" if element.is_little_endian else "big")


#: The transfer syntaxes a file without meta header can be in, by (implicit VR, little endian).
_HEADERLESS_SYNTAXES: dict[tuple[bool | None, bool | None], str] = {
    (True, True): "1.2.840.10008.1.2", (False, True): "1.2.840.10008.1.2.1", (False, False): "1.2.840.10008.1.2.2"}


def _transfer_syntax(ds: Dataset) -> str | None:
    """The meta header's transfer syntax or, for a bare dataset, the encoding it was read in
    (as DCMTK reports it to Orthanc)."""
    meta = getattr(ds, "file_meta", None)
    if meta is not None and "TransferSyntaxUID" in meta:
        return str(meta.TransferSyntaxUID)
    return _HEADERLESS_SYNTAXES.get(getattr(ds, "original_encoding", (None, None)))


_PIXEL_DATA_TAGS = (b"\xe0\x7f\x10\x00", b"\x7f\xe0\x00\x10")


def _pixel_data_offset(data: bytes | mmap.mmap, stopped_at: int) -> int | None:
    """Where the PixelData element starts, as Orthanc's DicomStreamReader finds it: only in a
    file with the 128-byte preamble and "DICM", and only if the tag is really there."""
    if data[128:132] != b"DICM" or data[stopped_at:stopped_at + 4] not in _PIXEL_DATA_TAGS:
        return None
    return stopped_at
