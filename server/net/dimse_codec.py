"""DIMSE command sets encoded and decoded by hand, and small C-STORE datasets kept in memory.

Why: profiling a C-STORE storm (1,000 small CT files over one association, ``py-spy --gil``)
showed pynetdicom's per-message machinery at ~70 % of the server's GIL time, of which
~14 % went to encoding each response's command set through pydicom (a ``Dataset`` filled
keyword by keyword, written twice by ``write_dataset``: once for the group length, once to
send it), ~10 % to decoding each request's (``read_dataset``, element conversions, and
three regex validations of each UID through ``set_uid``), and ~6 % to the file meta
pydicom wrote in a new temporary file for every C-STORE.  A command set is a handful of
group 0000 elements, always Implicit VR Little Endian: this module writes and reads them
directly, byte for byte as pynetdicom and pydicom do (tests/test_dimse_codec.py compares).

:func:`install` puts it into pynetdicom 3.0.4 (pinned; a test fails when the version
changes, so that this patch is checked again) by replacing five methods of
``DIMSEMessage`` (``__init__``, ``primitive_to_message``, ``encode_msg``, ``decode_msg``,
``message_to_primitive``) and the ``set_uid`` its primitives validate UIDs with.  Only
command sets change hands: datasets go through pydicom as before, but for those made of raw
elements in the association's layout (C-FIND answers), which the ``encode`` of pynetdicom's
service classes writes by concatenation.  Anything but a plain
value (a non-conformant UID, a non-ASCII comment, an unknown element, an AT list...) takes
pynetdicom's own path, so that odd messages get exactly the outcome they got before
(a warning, a failure status, an abort).  ``DIMSEMessage.command_set`` stays available as
a pydicom ``Dataset``, decoded from the bytes when someone (pynetdicom's logging handlers)
asks for it.

A C-STORE's dataset is kept in memory up to :data:`IN_MEMORY_LIMIT`, and only a larger
one is spilled to a temporary file as pynetdicom's chunked mode writes it (its preamble
and file meta, in the same folder), so that a 1 GB C-STORE still costs bounded memory
without every small one paying for a file.
"""

from __future__ import annotations

import logging
import re
import struct
from collections.abc import Callable, Iterator
from io import BytesIO
from math import ceil
from pathlib import Path
from tempfile import NamedTemporaryFile
from typing import Any

from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.uid import UID
from pynetdicom import _config, _validators, dimse_messages, dimse_primitives, service_class
from pynetdicom.dimse_messages import DIMSEMessage
from pynetdicom.pdu_primitives import P_DATA

from server.dicom.raw_dataset import write_raw

log = logging.getLogger("isengard.dicom")

#: A C-STORE dataset up to this size stays in memory; a larger one goes to a temporary file.
IN_MEMORY_LIMIT = 8 * 1024 * 1024

_ORIGINAL: dict[str, Callable[..., Any]] = {}

#: A ``DIMSEMessage`` with this module's attributes (set by :func:`_init`), which pynetdicom's
#: class does not declare.
Message = Any

# -- values ------------------------------------------------------------------------------

#: A conformant UID (PS3.5 9.1, pydicom's RE_VALID_UID), checked with its length: such a
#: value passes every validation pydicom and pynetdicom apply, without a warning.
_UID = re.compile(r"(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*")
#: Printable ASCII but the backslash: no encoding question, no multiple values.
_PLAIN = re.compile(r"[ -\[\]-~]*")
_US = struct.Struct("<H")
_UL = struct.Struct("<I")
_HEADER = struct.Struct("<HHI")
_TAG = struct.Struct("<HH")


class _CheckedUID(UID):
    """A UID whose value :func:`_conformant_uid` accepted: not checked again.  A C-STORE's
    UIDs were checked up to three times each (set in the request, encoded; decoded from the
    response, set in its primitive), ~4 % of a C-MOVE sub-operation."""


def _uid(value: str) -> UID:
    """A UID of a value known to be conformant, without pydicom validating it again."""
    return str.__new__(_CheckedUID, value)


def _conformant_uid(value: Any) -> bool:
    return type(value) is _CheckedUID or \
        (isinstance(value, str) and 0 < len(value) <= 64 and _UID.fullmatch(value) is not None)


def _plain_text(value: Any, longest: int) -> bool:
    return isinstance(value, str) and len(value) <= longest and _PLAIN.fullmatch(value) is not None


def _padded(value: str, padding: bytes) -> bytes:
    raw = value.encode("ascii")
    return raw + padding if len(raw) % 2 else raw


def _encode_us(value: Any) -> bytes | None:
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 0xFFFF:
        return _US.pack(value)
    return None


def _encode_ul(value: Any) -> bytes | None:
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 0xFFFFFFFF:
        return _UL.pack(value)
    return None


def _encode_ui(value: Any) -> bytes | None:
    return _padded(value, b"\0") if _conformant_uid(value) else None


def _encode_ae(value: Any) -> bytes | None:
    return _padded(value, b" ") if value and _plain_text(value, 16) else None


def _encode_lo(value: Any) -> bytes | None:
    return _padded(value, b" ") if value and _plain_text(value, 64) else None


def _encode_tag(value: Any) -> bytes | None:
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 0xFFFFFFFF:
        return _TAG.pack(value >> 16, value & 0xFFFF)
    return None


def _encode_at(value: Any) -> bytes | None:
    if isinstance(value, list | tuple) and value:
        parts = [_encode_tag(tag) for tag in value]
        return None if None in parts else b"".join(parts)  # type: ignore[arg-type]
    return _encode_tag(value)


def _decode_us(raw: bytes) -> int | None:
    return _US.unpack(raw)[0] if len(raw) == 2 else None


def _decode_ul(raw: bytes) -> int | None:
    return _UL.unpack(raw)[0] if len(raw) == 4 else None


def _decode_ui(raw: bytes) -> UID | None:
    value = raw.decode("latin-1").rstrip("\0 ")
    return _uid(value) if _conformant_uid(value) else None


def _decode_ae(raw: bytes) -> str | None:
    value = raw.decode("latin-1")
    return value.strip() if len(value) <= 16 and value.strip() and _PLAIN.fullmatch(value) else None


def _decode_lo(raw: bytes) -> str | None:
    value = raw.decode("latin-1")
    return value.rstrip(" ") if len(value) <= 64 and value.strip() and _PLAIN.fullmatch(value) else None


#: By VR: how a value is written, and read (None: pydicom's path, for AT lists).
_CODECS: dict[str, tuple[Callable[[Any], bytes | None], Callable[[bytes], Any] | None]] = {
    "US": (_encode_us, _decode_us), "UL": (_encode_ul, _decode_ul), "UI": (_encode_ui, _decode_ui),
    "AE": (_encode_ae, _decode_ae), "LO": (_encode_lo, _decode_lo), "AT": (_encode_at, None),
}

# -- command sets ------------------------------------------------------------------------

_COMMAND_FIELD = 0x0100
_DATA_SET_TYPE = 0x0800
_NO_DATA_SET = 0x0101


class _MessageSpec:
    """What a DIMSE message class's command set holds, from pynetdicom's own tables."""

    def __init__(self, class_name: str, command_field: int) -> None:
        self.command_field = command_field
        self.dataset_keyword = dimse_messages._DATASET_KEYWORDS.get(class_name)
        keywords = dimse_messages._COMMAND_SET_KEYWORDS[class_name.replace("_", "-")]
        #: (tag's element number, the header before the length, keyword, encoder), by tag.
        self.elements = sorted(
            (tag & 0xFFFF, _TAG.pack(0, tag & 0xFFFF), keyword, _CODECS[dictionary_VR(tag)][0])
            for keyword in keywords if keyword != "CommandGroupLength"
            for tag in [tag_for_keyword(keyword)])


_SPECS = {cls.__name__: _MessageSpec(cls.__name__, field)
          for field, (_, cls) in dimse_messages._MESSAGE_TYPES.items()}

#: Element number -> (keyword, decoder) of every element a command set may hold.
_DECODERS = {tag & 0xFFFF: (keyword, _CODECS[dictionary_VR(tag)][1])
             for keywords in dimse_messages._COMMAND_SET_KEYWORDS.values()
             for keyword in keywords for tag in [tag_for_keyword(keyword)]}


def encode_command_set(spec: _MessageSpec, primitive: Any, data_set_type: int) -> bytes | None:
    """The command set of ``primitive`` sent as ``spec``'s message, group length first;
    None when a value is not a plain one (pydicom's path then)."""
    parts = []
    for element, header, keyword, encode in spec.elements:
        if element == _COMMAND_FIELD:
            value: Any = spec.command_field
        elif element == _DATA_SET_TYPE:
            value = data_set_type
        else:
            value = getattr(primitive, keyword)
            if value is None:
                continue
        raw = encode(value)
        if raw is None:
            return None
        parts.append(header + _UL.pack(len(raw)) + raw)
    body = b"".join(parts)
    return b"\0\0\0\0\4\0\0\0" + _UL.pack(len(body)) + body


def decode_command_set(data: bytes) -> dict[str, Any] | None:
    """Keyword -> value of a command set's elements, as pydicom converts them; None when
    anything is unusual (an unknown or repeated element, a length that does not fit, a
    value pydicom would warn about or convert otherwise)."""
    fields: dict[str, Any] = {}
    offset, end, previous = 0, len(data), -1
    while offset < end:
        if offset + 8 > end:
            return None
        group, element, length = _HEADER.unpack_from(data, offset)
        offset += 8
        entry = _DECODERS.get(element)
        if group or element <= previous or offset + length > end or entry is None or entry[1] is None:
            return None
        value = entry[1](data[offset:offset + length])
        if value is None:
            return None
        fields[entry[0]] = value
        previous, offset = element, offset + length
    if dimse_messages._MESSAGE_TYPES.get(fields.get("CommandField")) is None or "CommandDataSetType" not in fields:
        return None
    return fields


# -- DIMSEMessage's methods --------------------------------------------------------------


def _init(self: Message) -> None:
    """As pynetdicom's, without filling a ``Dataset`` the message may never need."""
    self.context_id = None
    self.encoded_command_set = BytesIO()
    self.data_set = BytesIO()
    self._data_set_path = None
    self._data_set_file = None
    #: The command set as pydicom's ``Dataset``, once asked for.
    self._command_set = None
    #: The command set's bytes, encoded here or received.
    self._encoded = None
    #: A received command set's values by keyword, when read here.
    self._fields = None
    #: (association, context ID) of a C-STORE whose dataset may spill to a file.
    self._receiving = None


def _template(self: Message) -> Any:
    """The ``Dataset`` pynetdicom's ``__init__`` made: every keyword of the message, empty."""
    from pydicom.dataset import Dataset

    dataset = Dataset()
    name = type(self).__name__
    if name != "DIMSEMessage":
        for keyword in dimse_messages._COMMAND_SET_KEYWORDS[name.replace("_", "-")]:
            setattr(dataset, keyword, None)
    return dataset


def _get_command_set(self: Message) -> Any:
    """The command set as a pydicom ``Dataset``, made when first asked for."""
    if self._command_set is None:
        self._command_set = (_template(self) if self._encoded is None
                             else dimse_messages.decode(BytesIO(self._encoded), True, True))
    return self._command_set


def _set_command_set(self: Message, dataset: Any) -> None:
    self._command_set = dataset
    self._encoded = self._fields = None


def _primitive_to_message(self: Message, primitive: Any) -> None:
    """pynetdicom's ``primitive_to_message``, the command set encoded at once."""
    spec = _SPECS.get(type(self).__name__)
    if spec is None or self._command_set is not None:
        _ORIGINAL["primitive_to_message"](self, primitive)
        return
    self.data_set = BytesIO()
    data_set_type = _NO_DATA_SET
    if spec.dataset_keyword is not None:
        self.data_set = getattr(primitive, spec.dataset_keyword)
        if self.data_set:
            data_set_type = 0x0001
    self._data_set_path = getattr(primitive, "_dataset_path", None)
    if self._data_set_path:
        data_set_type = 0x0001
    encoded = encode_command_set(spec, primitive, data_set_type)
    if encoded is None:
        _ORIGINAL["primitive_to_message"](self, primitive)
        return
    self._encoded = encoded


def _fragments(self: Message, context_id: int, data: bytes, max_pdu_length: int,
               control: int) -> Iterator[P_DATA]:
    """``data`` in P-DATA primitives as pynetdicom cuts them; ``control`` is the header of
    all but the last (whose bit 2 is set)."""
    count = 1 if max_pdu_length == 0 else ceil(len(data) / (max_pdu_length - 6))
    pieces = self._generate_pdv_fragments(data, max_pdu_length)
    for index in range(int(count)):
        pdata = P_DATA()
        header = control | 2 if index == count - 1 else control
        pdata.presentation_data_value_list.append((context_id, bytes([header]) + next(pieces)))
        yield pdata


def _encode_msg(self: Message, context_id: int, max_pdu_length: int) -> Iterator[P_DATA]:
    """pynetdicom's ``encode_msg`` with the command set already encoded."""
    if self._encoded is None or self._command_set is not None:
        yield from _ORIGINAL["encode_msg"](self, context_id, max_pdu_length)
        return
    self.context_id = context_id
    command = self._encoded
    yield from _fragments(self, context_id, command, max_pdu_length, 1)
    if self.data_set is not None:
        encoded = self.data_set.getvalue()
        if encoded:
            yield from _fragments(self, context_id, encoded, max_pdu_length, 0)
    elif self._data_set_path is not None:
        yield from _file_fragments(context_id, self._data_set_path, max_pdu_length)


def _file_fragments(context_id: int, path: tuple[Path, int], max_pdu_length: int) -> Iterator[P_DATA]:
    """A dataset sent from a file, read piece by piece as pynetdicom does."""
    with open(path[0], "rb") as f:
        end = f.seek(0, 2)
        length = end - f.seek(path[1])
        if max_pdu_length == 0:
            count, max_pdu_length = 1, length + 6
        else:
            count = ceil(length / (max_pdu_length - 6))
        for index in range(int(count)):
            pdata = P_DATA()
            header = b"\x02" if index == count - 1 else b"\x00"
            pdata.presentation_data_value_list.append((context_id, header + f.read(max_pdu_length - 6)))
            yield pdata


def _decode_msg(self: Message, primitive: P_DATA, assoc: Any = None) -> bool:
    """pynetdicom's ``decode_msg``: the command set read at once, and a C-STORE's dataset
    kept in memory until it outgrows :data:`IN_MEMORY_LIMIT` (then spilled to a file)."""
    if primitive.__class__ != P_DATA or primitive is None:
        return False
    for context_id, data in primitive.presentation_data_value_list:
        control = data[0]
        if control & 1:
            self.encoded_command_set.write(data[1:])
            if control & 2:
                self.context_id = context_id
                if _command_decoded(self):
                    return True
                if isinstance(self, dimse_messages.C_STORE_RQ) and _config.STORE_RECV_CHUNKED_DATASET:
                    self._receiving = (assoc, context_id)
        else:
            fragment = data[1:]
            if self._data_set_file:
                self._data_set_file.write(fragment)
            elif self._receiving is not None and self.data_set.tell() + len(fragment) > IN_MEMORY_LIMIT:
                _spill(self)
                self._data_set_file.write(fragment)
            else:
                self.data_set.write(fragment)
            if control & 2:
                if self._data_set_file:
                    self._data_set_file.file.flush()
                self._receiving = None
                return True
    return False


def _command_decoded(self: Message) -> bool:
    """Decodes the complete command set, sets the message's class; whether the message has
    no data set (and is thus complete)."""
    encoded = self.encoded_command_set.getvalue()
    fields = decode_command_set(encoded)
    if fields is None:
        self.command_set = dimse_messages.decode(self.encoded_command_set, True, True)
        self.__class__ = dimse_messages._MESSAGE_TYPES[self.command_set.CommandField][1]
        return self.command_set.CommandDataSetType == _NO_DATA_SET
    self._fields, self._encoded = fields, encoded
    self.__class__ = dimse_messages._MESSAGE_TYPES[fields["CommandField"]][1]
    return fields["CommandDataSetType"] == _NO_DATA_SET


def _spill(self: Message) -> None:
    """Moves the dataset received so far into a temporary file behind the preamble and file
    meta pynetdicom's chunked mode writes, in its folder: ``event.dataset_path`` and
    ``event.dataset`` then work as they do in that mode."""
    from pydicom.filewriter import write_file_meta_info
    from pynetdicom.dsutils import create_file_meta

    assoc, context_id = self._receiving
    fields = self._fields if self._fields is not None else {
        keyword: getattr(self.command_set, keyword, None)
        for keyword in ("AffectedSOPClassUID", "AffectedSOPInstanceUID")}
    spool = NamedTemporaryFile(delete=False, mode="wb", suffix=".dcm")  # noqa: SIM115 - closed by pynetdicom
    self._data_set_file = spool
    self._data_set_path = Path(spool.name)
    spool.write(b"\x00" * 128 + b"DICM")
    write_file_meta_info(spool, create_file_meta(
        sop_class_uid=fields.get("AffectedSOPClassUID"), sop_instance_uid=fields.get("AffectedSOPInstanceUID"),
        transfer_syntax=assoc._accepted_cx[context_id].transfer_syntax[0]))
    spool.write(self.data_set.getbuffer())
    self.data_set = BytesIO()


def _message_to_primitive(self: Message) -> Any:
    """pynetdicom's ``message_to_primitive`` from the decoded fields: each goes through the
    primitive's setter, as pydicom's ``Dataset`` elements did."""
    fields = self._fields
    if fields is None or self._command_set is not None:
        return _ORIGINAL["message_to_primitive"](self)
    name = type(self).__name__
    primitive = dimse_messages._MSG_TO_PRIMITVE[name[:name.rfind("_R")]]()
    for keyword, value in fields.items():
        if hasattr(primitive, keyword):
            setattr(primitive, keyword, value)
    dataset_keyword = dimse_messages._DATASET_KEYWORDS.get(name)
    if dataset_keyword is not None:
        setattr(primitive, dataset_keyword, self.data_set)
    primitive._context_id = self.context_id
    primitive._dataset_path = self._data_set_path
    primitive._dataset_file = self._data_set_file
    return primitive


def _set_uid(value: Any, name: str, allow_empty: bool = True, allow_none: bool = True,
             validate: bool = True) -> UID | None:
    """pynetdicom's ``set_uid`` (three regex validations of each UID), short for a
    conformant UID under pynetdicom's own validator, which passes all of them."""
    if validate and _conformant_uid(value) and _config.VALIDATORS["UI"] is _validators.validate_ui:
        return value if type(value) is _CheckedUID else _uid(value)
    return _ORIGINAL["set_uid"](value, name, allow_empty, allow_none, validate)


def install() -> None:
    """Puts the codec into pynetdicom (once; later calls do nothing); written for the release
    :data:`~server.net.scp.PYNETDICOM_VERSION` (see :func:`~server.net.scp.configure_pynetdicom`)."""
    if _ORIGINAL:
        return
    for name in ("__init__", "primitive_to_message", "encode_msg", "decode_msg", "message_to_primitive"):
        _ORIGINAL[name] = getattr(DIMSEMessage, name)
    _ORIGINAL["set_uid"] = dimse_primitives.set_uid
    DIMSEMessage.__init__ = _init  # type: ignore[method-assign]
    DIMSEMessage.command_set = property(_get_command_set, _set_command_set)  # type: ignore[assignment]
    DIMSEMessage.primitive_to_message = _primitive_to_message  # type: ignore[method-assign]
    DIMSEMessage.encode_msg = _encode_msg  # type: ignore[method-assign]
    DIMSEMessage.decode_msg = _decode_msg  # type: ignore[method-assign]
    DIMSEMessage.message_to_primitive = _message_to_primitive  # type: ignore[method-assign]
    dimse_primitives.set_uid = _set_uid
    _ORIGINAL["encode"] = service_class.encode
    service_class.encode = _encode_dataset


def _encode_dataset(dataset: Any, is_implicit_vr: bool, is_little_endian: bool,
                    deflated: bool = False) -> bytes | None:
    """pynetdicom's ``encode`` of the datasets its service classes send (C-FIND answers):
    one of raw elements already in the association's layout is written by concatenation
    (:func:`~server.dicom.raw_dataset.write_raw`, byte for byte pydicom's output: ~40 % of
    each C-FIND answer's time went to pydicom's writer); anything else is pydicom's."""
    if not deflated:
        encoded = write_raw(dataset, is_implicit_vr, is_little_endian)
        if encoded is not None:
            return encoded
    return _ORIGINAL["encode"](dataset, is_implicit_vr, is_little_endian, deflated)
