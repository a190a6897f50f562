"""The DIMSE command set codec (server/net/dimse_codec.py) against pynetdicom's own code.

Every DIMSE primitive pynetdicom builds is encoded by both, byte for byte, and decoded by
both into equal primitives; malformed command sets get the outcome they got before; small
C-STORE datasets stay in memory and large ones spill to pynetdicom's file; and a real
server survives malformed messages.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable
from io import BytesIO
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pydicom
import pynetdicom
import pytest
import requests
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian, generate_uid
from pynetdicom import AE, _config, dimse, dimse_messages
from pynetdicom.dimse_primitives import (
    C_CANCEL,
    C_ECHO,
    C_FIND,
    C_GET,
    C_MOVE,
    C_STORE,
    N_ACTION,
    N_CREATE,
    N_DELETE,
    N_EVENT_REPORT,
    N_GET,
    N_SET,
)
from pynetdicom.dsutils import encode
from pynetdicom.events import Event
from pynetdicom.pdu_primitives import P_DATA
from pynetdicom.sop_class import SecondaryCaptureImageStorage, Verification

from conftest import Isengard
from server.net import dimse_codec
from server.net.scp import PYNETDICOM_VERSION

dimse_codec.install()
ORIGINAL = dimse_codec._ORIGINAL

CT = "1.2.840.10008.5.1.4.1.1.2"
ODD_UID = "1.2.3"
EVEN_UID = "1.2.34"
LONGEST_UID = "1." + "2" * 62
COMMITMENT = "1.2.840.10008.1.20.1"
COMMITMENT_INSTANCE = "1.2.840.10008.1.20.1.1"
TAG_LIST = [0x00100010, 0x0020000D]


def _dataset_bytes() -> BytesIO:
    ds = Dataset()
    ds.PatientID, ds.QueryRetrieveLevel = "ID1", "STUDY"
    return BytesIO(encode(ds, True, True))


def _make(kind: type, **fields: Any) -> Any:
    primitive = kind()
    for name, value in fields.items():
        setattr(primitive, name, value)
    return primitive


def _rsp(kind: type, **fields: Any) -> Any:
    return _make(kind, MessageIDBeingRespondedTo=fields.pop("MessageIDBeingRespondedTo", 7), **fields)


def _primitives() -> dict[str, Callable[[], Any]]:
    """Every request and response pynetdicom's services send, optional fields present or absent."""
    store = {"MessageID": 3, "AffectedSOPClassUID": CT, "AffectedSOPInstanceUID": LONGEST_UID}
    cases: dict[str, Callable[[], Any]] = {
        "echo-rq": lambda: _make(C_ECHO, MessageID=1, AffectedSOPClassUID=Verification),
        "echo-rsp": lambda: _rsp(C_ECHO, AffectedSOPClassUID=Verification, Status=0),
        "echo-rsp-comment": lambda: _rsp(C_ECHO, AffectedSOPClassUID=Verification, Status=0x0122,
                                         ErrorComment="Odd"),
        "store-rq": lambda: _make(C_STORE, **store, Priority=0, DataSet=_dataset_bytes()),
        "store-rq-odd-uids": lambda: _make(C_STORE, MessageID=65535, AffectedSOPClassUID=ODD_UID,
                                           AffectedSOPInstanceUID=EVEN_UID, Priority=1, DataSet=BytesIO(b"xy")),
        "store-rq-move-odd": lambda: _make(C_STORE, **store, Priority=2, DataSet=_dataset_bytes(),
                                           MoveOriginatorApplicationEntityTitle="MOVESCU",
                                           MoveOriginatorMessageID=9),
        "store-rq-move-even": lambda: _make(C_STORE, **store, DataSet=BytesIO(b"ab"),
                                            MoveOriginatorApplicationEntityTitle="ORTHANC1",
                                            MoveOriginatorMessageID=0),
        "store-rq-move-spaces": lambda: _make(C_STORE, **store, DataSet=_dataset_bytes(),
                                              MoveOriginatorApplicationEntityTitle=" A B "),
        "store-rq-no-dataset": lambda: _make(C_STORE, **store),
        # announces a data set (a BytesIO is true) but sends none, as pynetdicom does
        "store-rq-empty-dataset": lambda: _make(C_STORE, **store, DataSet=BytesIO(b"")),
        "store-rsp": lambda: _rsp(C_STORE, AffectedSOPClassUID=CT, AffectedSOPInstanceUID=ODD_UID, Status=0),
        "store-rsp-warning": lambda: _rsp(C_STORE, AffectedSOPClassUID=CT, AffectedSOPInstanceUID=EVEN_UID,
                                          Status=0xB000, OffendingElement=[0x00100010]),
        "store-rsp-failure": lambda: _rsp(C_STORE, AffectedSOPClassUID=CT, AffectedSOPInstanceUID=EVEN_UID,
                                          Status=0xA700, OffendingElement=TAG_LIST,
                                          ErrorComment="Out of resources"),
        "store-rsp-one-tag": lambda: _rsp(C_STORE, Status=0xC000, OffendingElement=0x00080018,
                                          ErrorComment="Even"),
        "find-rq": lambda: _make(C_FIND, MessageID=5, AffectedSOPClassUID=CT, Priority=2,
                                 Identifier=_dataset_bytes()),
        "find-rsp-pending": lambda: _rsp(C_FIND, AffectedSOPClassUID=CT, Status=0xFF00, Identifier=_dataset_bytes()),
        "find-rsp-final": lambda: _rsp(C_FIND, AffectedSOPClassUID=CT, Status=0),
        "find-rsp-error": lambda: _rsp(C_FIND, AffectedSOPClassUID=CT, Status=0xC000,
                                       OffendingElement=TAG_LIST, ErrorComment="Unable to process"),
        "cancel": lambda: _make(C_CANCEL, MessageIDBeingRespondedTo=5),
        "get-rq": lambda: _make(C_GET, MessageID=6, AffectedSOPClassUID=CT, Priority=0,
                                Identifier=_dataset_bytes()),
        "get-rsp-pending": lambda: _rsp(C_GET, AffectedSOPClassUID=CT, Status=0xFF00,
                                        NumberOfRemainingSuboperations=3, NumberOfCompletedSuboperations=1,
                                        NumberOfFailedSuboperations=0, NumberOfWarningSuboperations=0),
        "get-rsp-final": lambda: _rsp(C_GET, AffectedSOPClassUID=CT, Status=0xB000,
                                      NumberOfCompletedSuboperations=4, NumberOfFailedSuboperations=1,
                                      NumberOfWarningSuboperations=0, Identifier=_dataset_bytes()),
        "move-rq": lambda: _make(C_MOVE, MessageID=7, AffectedSOPClassUID=CT, Priority=0,
                                 MoveDestination="STORESCP", Identifier=_dataset_bytes()),
        "move-rq-odd": lambda: _make(C_MOVE, MessageID=7, AffectedSOPClassUID=CT, MoveDestination="A",
                                     Identifier=_dataset_bytes()),
        "move-rsp": lambda: _rsp(C_MOVE, AffectedSOPClassUID=CT, Status=0xA801, ErrorComment="Unknown destination"),
        "move-rsp-pending": lambda: _rsp(C_MOVE, AffectedSOPClassUID=CT, Status=0xFF00,
                                         NumberOfRemainingSuboperations=65535, NumberOfCompletedSuboperations=0,
                                         NumberOfFailedSuboperations=0, NumberOfWarningSuboperations=0),
        "event-report-rq": lambda: _make(N_EVENT_REPORT, MessageID=8, AffectedSOPClassUID=COMMITMENT,
                                         AffectedSOPInstanceUID=COMMITMENT_INSTANCE, EventTypeID=1,
                                         EventInformation=_dataset_bytes()),
        "event-report-rsp": lambda: _rsp(N_EVENT_REPORT, AffectedSOPClassUID=COMMITMENT,
                                         AffectedSOPInstanceUID=COMMITMENT_INSTANCE, EventTypeID=2, Status=0),
        "event-report-rsp-error": lambda: _rsp(N_EVENT_REPORT, Status=0x0110, ErrorID=3, ErrorComment="No"),
        "action-rq": lambda: _make(N_ACTION, MessageID=9, RequestedSOPClassUID=COMMITMENT,
                                   RequestedSOPInstanceUID=COMMITMENT_INSTANCE, ActionTypeID=1,
                                   ActionInformation=_dataset_bytes()),
        "action-rsp": lambda: _rsp(N_ACTION, AffectedSOPClassUID=COMMITMENT,
                                   AffectedSOPInstanceUID=COMMITMENT_INSTANCE, ActionTypeID=1, Status=0),
        "action-rsp-error": lambda: _rsp(N_ACTION, Status=0x0112, ErrorComment="No such instance", ErrorID=1),
        "get-n-rq": lambda: _make(N_GET, MessageID=10, RequestedSOPClassUID=ODD_UID,
                                  RequestedSOPInstanceUID=EVEN_UID, AttributeIdentifierList=TAG_LIST),
        "get-n-rsp": lambda: _rsp(N_GET, AffectedSOPClassUID=ODD_UID, AffectedSOPInstanceUID=EVEN_UID,
                                  Status=0, AttributeList=_dataset_bytes()),
        "set-n-rq": lambda: _make(N_SET, MessageID=11, RequestedSOPClassUID=ODD_UID,
                                  RequestedSOPInstanceUID=EVEN_UID, ModificationList=_dataset_bytes()),
        "set-n-rsp": lambda: _rsp(N_SET, AffectedSOPClassUID=ODD_UID, Status=0x0106,
                                  AttributeIdentifierList=[0x00100010], ErrorComment="Bad", ErrorID=2),
        "create-n-rq": lambda: _make(N_CREATE, MessageID=12, AffectedSOPClassUID=ODD_UID),
        "create-n-rsp": lambda: _rsp(N_CREATE, AffectedSOPClassUID=ODD_UID, AffectedSOPInstanceUID=EVEN_UID,
                                     Status=0, AttributeList=_dataset_bytes()),
        "delete-n-rq": lambda: _make(N_DELETE, MessageID=13, RequestedSOPClassUID=ODD_UID,
                                     RequestedSOPInstanceUID=EVEN_UID),
        "delete-n-rsp": lambda: _rsp(N_DELETE, AffectedSOPClassUID=ODD_UID, Status=0),
    }
    return cases


#: Values that are not plain ones: the codec leaves them to pydicom, with the same result.
UNUSUAL: dict[str, Callable[[], Any]] = {
    "non-ascii-comment": lambda: _rsp(C_ECHO, AffectedSOPClassUID=Verification, Status=0x0122, ErrorComment="Café"),
    "long-comment": lambda: _rsp(C_FIND, Status=0xC000, ErrorComment="x" * 70),
    "comment-backslash": lambda: _rsp(C_FIND, Status=0xC000, ErrorComment="a\\b"),
    "empty-comment": lambda: _rsp(C_FIND, Status=0xC000, ErrorComment=""),
    "keyword-tag": lambda: _rsp(C_STORE, Status=0xC000, OffendingElement=["PatientID"]),
    "empty-tag-list": lambda: _rsp(C_STORE, Status=0xC000, OffendingElement=[]),
    "non-conformant-uid": lambda: _make(C_ECHO, MessageID=1, AffectedSOPClassUID="1.2.03"),
    "letters-uid": lambda: _make(C_ECHO, MessageID=1, AffectedSOPClassUID="1.2.abc"),
}

CASES = {**_primitives(), **UNUSUAL}


def _message_class(primitive: Any) -> type:
    """As ``DIMSEServiceProvider.send_msg`` chooses it."""
    if primitive.MessageIDBeingRespondedTo is None:
        return dimse._RQ_TO_MESSAGE[type(primitive)]
    return dimse._RSP_TO_MESSAGE[type(primitive)]


def _pdvs(pdatas: Any) -> list[list[tuple[int, bytes]]]:
    return [list(p.presentation_data_value_list) for p in pdatas]


def _reference_message(kind: type) -> Any:
    message = kind.__new__(kind)
    ORIGINAL["__init__"](message)
    return message


def _reference_encode(primitive: Any, max_pdu: int) -> list:
    message = _reference_message(_message_class(primitive))
    ORIGINAL["primitive_to_message"](message, primitive)
    return _pdvs(ORIGINAL["encode_msg"](message, 1, max_pdu))


def _codec_encode(primitive: Any, max_pdu: int) -> tuple[list, bool]:
    message = _message_class(primitive)()
    message.primitive_to_message(primitive)
    fast = message._command_set is None
    return _pdvs(message.encode_msg(1, max_pdu)), fast


@pytest.mark.parametrize("max_pdu", [0, 16384, 20])
@pytest.mark.parametrize("case", list(CASES))
def test_encoding_is_pynetdicoms_byte_for_byte(case: str, max_pdu: int) -> None:
    """Command set (group length, padding, fragments) and dataset fragments, as pynetdicom sends them."""
    expected = _reference_encode(CASES[case](), max_pdu)
    encoded, fast = _codec_encode(CASES[case](), max_pdu)
    assert encoded == expected
    assert fast == (case not in UNUSUAL)


def test_a_checked_uid_is_not_checked_again(monkeypatch: pytest.MonkeyPatch) -> None:
    """A UID found conformant (set in a primitive, decoded) is marked so: encoding it or
    setting it again skips the regular expression; any other value is still checked."""
    checked = dimse_codec._set_uid(CT, "Affected SOP Class UID")
    assert isinstance(checked, pydicom.uid.UID) and checked == CT
    assert dimse_codec._decode_ui(b"1.2.34\0") == "1.2.34"
    pattern, calls = dimse_codec._UID, []
    monkeypatch.setattr(dimse_codec, "_UID", SimpleNamespace(
        fullmatch=lambda value: calls.append(value) or pattern.fullmatch(value)))
    assert dimse_codec._encode_ui(checked) == CT.encode() + b"\0"
    assert dimse_codec._set_uid(checked, "Affected SOP Class UID") is checked
    assert calls == []
    assert dimse_codec._encode_ui(pydicom.uid.UID(CT)) == CT.encode() + b"\0" and calls == [CT]
    assert dimse_codec._encode_ui("1.02") is None


def test_out_of_range_status_fails_as_before() -> None:
    """A status that is no US: pynetdicom fails to encode it, and so does the codec."""
    for encoder in (_reference_encode, _codec_encode):
        with pytest.raises(TypeError):
            encoder(_rsp(C_ECHO, Status=0x10000), 0)


def test_dataset_sent_from_a_file_is_fragmented_as_before(tmp_path: Path) -> None:
    """pynetdicom's chunked send: the dataset read from a file at an offset."""
    path = tmp_path / "file.dcm"
    path.write_bytes(b"H" * 10 + bytes(range(256)) * 3)

    def primitive() -> C_STORE:
        request = _make(C_STORE, MessageID=1, AffectedSOPClassUID=CT, AffectedSOPInstanceUID=ODD_UID)
        request._dataset_path = (path, 10)
        return request

    for max_pdu in (0, 100, 16384):
        assert _codec_encode(primitive(), max_pdu)[0] == _reference_encode(primitive(), max_pdu)


def _p_data(pdvs: list[tuple[int, bytes]]) -> P_DATA:
    pdata = P_DATA()
    pdata.presentation_data_value_list = [[context_id, value] for context_id, value in pdvs]
    return pdata


KEYWORDS = sorted({k for keywords in dimse_messages._COMMAND_SET_KEYWORDS.values() for k in keywords}
                  | set(dimse_messages._DATASET_KEYWORDS.values()) | {"_context_id", "_dataset_path"})


def _summary(primitive: Any) -> dict[str, Any]:
    found = {}
    for keyword in KEYWORDS:
        value = getattr(primitive, keyword, "absent")
        if isinstance(value, BytesIO):
            value = ("BytesIO", value.getvalue())
        found[keyword] = (type(value).__name__, value)
    return {"class": type(primitive).__name__, **found}


def _decode(pdatas: list[P_DATA], reference: bool) -> tuple[str, Any]:
    """(stage, primitive summary or exception type) of decoding these P-DATA."""
    message = _reference_message(dimse_messages.DIMSEMessage) if reference else dimse_messages.DIMSEMessage()
    decode_msg = ORIGINAL["decode_msg"] if reference else type(message).decode_msg
    try:
        done = [decode_msg(message, pdata, None) for pdata in pdatas][-1]
    except Exception as e:  # noqa: BLE001 - the outcome compared
        return "decode_msg", type(e).__name__
    if not done:
        return "incomplete", None
    to_primitive = ORIGINAL["message_to_primitive"] if reference else type(message).message_to_primitive
    try:
        return "primitive", _summary(to_primitive(message))
    except Exception as e:  # noqa: BLE001 - the outcome compared
        return "message_to_primitive", type(e).__name__


@pytest.mark.parametrize("case", list(CASES))
def test_decoding_gives_pynetdicoms_primitive(case: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every field, its value and its type (UID, int, str, tags), and the dataset, as pynetdicom decodes them."""
    monkeypatch.setattr(_config, "STORE_RECV_CHUNKED_DATASET", False)
    pdatas = [_p_data(pdvs) for pdvs in _reference_encode(CASES[case](), 30)]
    expected = _decode(pdatas, reference=True)
    assert expected[0] == ("incomplete" if case == "store-rq-empty-dataset" else "primitive")
    assert _decode(pdatas, reference=False) == expected


def _element(element: int, raw: bytes) -> bytes:
    return (0).to_bytes(2, "little") + element.to_bytes(2, "little") + len(raw).to_bytes(4, "little") + raw


def _us(value: int) -> bytes:
    return value.to_bytes(2, "little")


def _command(*elements: bytes) -> list[P_DATA]:
    body = b"".join(elements)
    return [_p_data([(1, b"\x03" + _element(0x0000, len(body).to_bytes(4, "little")) + body)])]


ECHO = _element(0x0002, b"1.2.840.10008.1.1\0") + _element(0x0100, _us(0x0030))
NO_DATA = _element(0x0800, _us(0x0101))

MALFORMED: dict[str, list[P_DATA]] = {
    "unknown command field": _command(_element(0x0100, _us(0x1234)), _element(0x0110, _us(1)), NO_DATA),
    "no data set type": _command(ECHO, _element(0x0110, _us(1))),
    "no command field": _command(_element(0x0110, _us(1)), NO_DATA),
    "truncated element": [_p_data([(1, b"\x03" + ECHO + _element(0x0110, _us(1)) + NO_DATA[:-3])])],
    "trailing bytes": [_p_data([(1, b"\x03" + ECHO + _element(0x0110, _us(1)) + NO_DATA + b"\0\0\0")])],
    "uid padded with spaces": _command(_element(0x0002, b"1.2.840.10008.1.1 "), _element(0x0100, _us(0x30)),
                                       _element(0x0110, _us(1)), NO_DATA),
    "non-conformant uid": _command(_element(0x0002, b"1.2.03\0"), _element(0x0100, _us(0x30)),
                                   _element(0x0110, _us(1)), NO_DATA),
    "uid with letters": _command(_element(0x0002, b"1.2.abc\0"), _element(0x0100, _us(0x30)),
                                 _element(0x0110, _us(1)), NO_DATA),
    "uid too long": _command(_element(0x0002, b"1." + b"2" * 70), _element(0x0100, _us(0x30)),
                             _element(0x0110, _us(1)), NO_DATA),
    "empty uid": _command(_element(0x0002, b""), _element(0x0100, _us(0x30)), _element(0x0110, _us(1)), NO_DATA),
    "two message ids": _command(ECHO, _element(0x0110, _us(1) + _us(2)), NO_DATA),
    "odd status length": _command(ECHO, _element(0x0120, _us(1)), NO_DATA, _element(0x0900, b"\0\0\0")),
    "empty message id": _command(ECHO, _element(0x0110, b""), NO_DATA),
    "out of order": _command(_element(0x0100, _us(0x30)), _element(0x0002, b"1.2.840.10008.1.1\0"),
                             _element(0x0110, _us(1)), NO_DATA),
    "repeated element": _command(ECHO, _element(0x0110, _us(1)), _element(0x0110, _us(2)), NO_DATA),
    "retired element": _command(_element(0x0001, (0).to_bytes(4, "little")), ECHO, _element(0x0110, _us(1)),
                                NO_DATA),
    "unknown element": _command(ECHO, _element(0x0110, _us(1)), NO_DATA, _element(0x7777, b"ab")),
    "offending element list": _command(
        _element(0x0002, b"1.2.3\0"), _element(0x0100, _us(0x8001)), _element(0x0120, _us(1)), NO_DATA,
        _element(0x0900, _us(0xC000)), _element(0x0901, bytes.fromhex("1000100020000d00")),
        _element(0x0902, b"Bad "), _element(0x1000, b"1.2.34")),
    "long ae title": _command(_element(0x0002, b"1.2.3\0"), _element(0x0100, _us(0x0001)), _element(0x0110, _us(1)),
                              _element(0x0700, _us(0)), NO_DATA, _element(0x1000, b"1.2.34"),
                              _element(0x1030, b"SEVENTEEN-LETTERS "), _element(0x1031, _us(1))),
    "padded ae title": _command(_element(0x0002, b"1.2.3\0"), _element(0x0100, _us(0x0001)), _element(0x0110, _us(1)),
                                _element(0x0700, _us(0)), NO_DATA, _element(0x1000, b"1.2.34"),
                                _element(0x1030, b" MOVER  "), _element(0x1031, _us(1))),
    "empty ae title": _command(_element(0x0002, b"1.2.3\0"), _element(0x0100, _us(0x0001)), _element(0x0110, _us(1)),
                               _element(0x0700, _us(0)), NO_DATA, _element(0x1000, b"1.2.34"),
                               _element(0x1030, b"")),
    "ae title with backslash": _command(_element(0x0002, b"1.2.3\0"), _element(0x0100, _us(0x0021)),
                                        _element(0x0110, _us(1)), _element(0x0600, b"A\\B "),
                                        _element(0x0700, _us(0)), NO_DATA),
    "comment with nul": _command(_element(0x0002, b"1.2.3\0"), _element(0x0100, _us(0x8030)),
                                 _element(0x0120, _us(1)), NO_DATA, _element(0x0900, _us(0)),
                                 _element(0x0902, b"ok\0\0")),
    "element of another group": [_p_data([(1, b"\x03" + ECHO + _element(0x0110, _us(1)) + NO_DATA
                                           + bytes.fromhex("08001600") + (2).to_bytes(4, "little") + b"1\0")])],
    "bad priority": _command(_element(0x0002, b"1.2.3\0"), _element(0x0100, _us(0x0020)), _element(0x0110, _us(1)),
                             _element(0x0700, _us(7)), NO_DATA),
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_command_set_has_the_outcome_it_had(case: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same primitive, or the same exception at the same stage (pynetdicom aborts the
    association on an error of ``message_to_primitive``)."""
    monkeypatch.setattr(_config, "STORE_RECV_CHUNKED_DATASET", False)
    assert _decode(MALFORMED[case], reference=False) == _decode(MALFORMED[case], reference=True)


def test_received_command_set_is_a_dataset_when_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    """pynetdicom's logging handlers read ``message.command_set``: it is pydicom's ``Dataset``
    of the bytes received, and of those sent."""
    monkeypatch.setattr(_config, "STORE_RECV_CHUNKED_DATASET", False)
    pdatas = [_p_data(pdvs) for pdvs in _reference_encode(CASES["store-rq-move-odd"](), 0)]
    message = dimse_messages.DIMSEMessage()
    for pdata in pdatas:
        message.decode_msg(pdata)
    assert message.command_set.MoveOriginatorApplicationEntityTitle == "MOVESCU"
    assert message.command_set.AffectedSOPInstanceUID == LONGEST_UID
    sent = dimse_messages.C_STORE_RSP()
    sent.primitive_to_message(CASES["store-rsp-failure"]())
    assert sent.command_set.ErrorComment == "Out of resources"
    assert sent.command_set.CommandGroupLength == len(encode(sent.command_set, True, True)) - 12
    assert _pdvs(sent.encode_msg(1, 0)) == _reference_encode(CASES["store-rsp-failure"](), 0)


def _store_pdatas(dataset: bytes, max_pdu: int = 1000) -> list[P_DATA]:
    request = _make(C_STORE, MessageID=1, AffectedSOPClassUID=CT, AffectedSOPInstanceUID=EVEN_UID,
                    DataSet=BytesIO(dataset))
    return [_p_data(pdvs) for pdvs in _reference_encode(request, max_pdu)]


def _receive(pdatas: list[P_DATA]) -> Any:
    context = SimpleNamespace(transfer_syntax=[ExplicitVRLittleEndian])
    assoc = SimpleNamespace(_accepted_cx={1: context})
    message = dimse_messages.DIMSEMessage()
    assert [message.decode_msg(pdata, assoc) for pdata in pdatas][-1]
    return message.message_to_primitive()


def _dataset_of(size: int) -> bytes:
    ds = Dataset()
    ds.SOPClassUID, ds.SOPInstanceUID, ds.PatientID = CT, EVEN_UID, "P"
    ds.add_new(0x00091010, "OB", bytes(range(256)) * (size // 256))
    return encode(ds, False, True)


def test_small_c_store_dataset_stays_in_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    """No temporary file, no pydicom file meta: the dataset as received, and what handlers read."""
    monkeypatch.setattr(_config, "STORE_RECV_CHUNKED_DATASET", True)
    dataset = _dataset_of(4096)
    request = _receive(_store_pdatas(dataset))
    assert request._dataset_path is None and request._dataset_file is None
    assert request.DataSet.getvalue() == dataset
    event = Event(None, pynetdicom.evt.EVT_C_STORE, {"request": request, "context": SimpleNamespace(
        transfer_syntax=pydicom.uid.UID(ExplicitVRLittleEndian))})
    assert event.dataset_path is None
    assert event.dataset.PatientID == "P"


def test_large_c_store_dataset_spills_to_pynetdicoms_file(monkeypatch: pytest.MonkeyPatch) -> None:
    """Past the limit the dataset goes to a file as pynetdicom's chunked mode writes it
    (preamble, file meta, dataset), which ``event.dataset`` reads."""
    monkeypatch.setattr(_config, "STORE_RECV_CHUNKED_DATASET", True)
    monkeypatch.setattr(dimse_codec, "IN_MEMORY_LIMIT", 3000)
    dataset = _dataset_of(8192)
    request = _receive(_store_pdatas(dataset))
    try:
        assert request.DataSet.getvalue() == b""
        written = request._dataset_path.read_bytes()
        assert written[128:132] == b"DICM" and written.endswith(dataset)
        parsed = pydicom.dcmread(request._dataset_path)
        assert parsed.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
        assert parsed.file_meta.MediaStorageSOPInstanceUID == EVEN_UID
        assert parsed.PatientID == "P"
        assert request._dataset_path.parent == Path(tempfile.gettempdir())
    finally:
        request._dataset_file.close()
        request._dataset_path.unlink()


def test_limit_is_the_servers_in_memory_limit() -> None:
    from server.net import scp

    assert scp.IN_MEMORY_LIMIT == dimse_codec.IN_MEMORY_LIMIT == 8 * 1024 * 1024


def test_pynetdicom_is_the_version_the_codec_replaces() -> None:
    """The codec replaces pynetdicom 3.0.4's internals: another release must be checked
    (its ``dimse_messages`` read again, this test file run) before this pin changes."""
    assert pynetdicom.__version__ == PYNETDICOM_VERSION, (
        f"pynetdicom is {pynetdicom.__version__}, server/net/dimse_codec.py was written for "
        f"{PYNETDICOM_VERSION}: check its replaced methods against the new release")
    assert dimse_messages.DIMSEMessage.decode_msg is dimse_codec._decode_msg


def test_install_is_idempotent() -> None:
    dimse_codec.install()
    dimse_codec.install()
    assert ORIGINAL["decode_msg"] is not dimse_codec._decode_msg
    assert dimse_messages.DIMSEMessage.encode_msg is dimse_codec._encode_msg


# -- a real server ----------------------------------------------------------------------


def _associate(server: Isengard) -> Any:
    ae = AE(ae_title="CODEC")
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 10
    ae.add_requested_context(Verification)
    ae.add_requested_context(SecondaryCaptureImageStorage, [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
    deadline = time.monotonic() + 10
    while True:
        assoc = ae.associate("127.0.0.1", server.dicom_port, ae_title=server.aet)
        if assoc.is_established or time.monotonic() > deadline:
            return assoc
        time.sleep(0.1)


def _secondary_capture(size: int) -> Dataset:
    ds = Dataset()
    ds.SOPClassUID, ds.SOPInstanceUID = SecondaryCaptureImageStorage, generate_uid()
    ds.PatientID, ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.Modality = "CODEC", generate_uid(), generate_uid(), "OT"
    ds.add_new(0x00091010, "OB", bytes(range(256)) * (size // 256))
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    return ds


@pytest.mark.parametrize("case", ["unknown command field", "uid too long", "long ae title"])
def test_server_survives_a_malformed_command_set(make_isengard: Callable[..., Isengard], case: str) -> None:
    """The association ends (pynetdicom aborts it), the server goes on serving."""
    server = make_isengard(DicomAlwaysAllowEcho=True, DicomAlwaysAllowStore=True)
    assoc = _associate(server)
    assert assoc.is_established
    context_id = assoc.accepted_contexts[0].context_id
    for pdata in MALFORMED[case]:
        pdata.presentation_data_value_list = [[context_id, v] for _, v in pdata.presentation_data_value_list]
        assoc.dul.send_pdu(pdata)
    deadline = time.monotonic() + 10
    while assoc.is_established and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not assoc.is_established
    again = _associate(server)
    assert again.send_c_echo().Status == 0
    again.release()  # (and no server thread died: make_isengard's teardown checks the log)


def test_small_and_large_c_stores_are_stored_intact(make_isengard: Callable[..., Isengard]) -> None:
    """Either side of the in-memory limit (8 MiB), over one association, byte for byte."""
    server = make_isengard(DicomAlwaysAllowStore=True)
    assoc = _associate(server)
    sent = [_secondary_capture(size) for size in (1024, 9 * 1024 * 1024)]
    for ds in sent:
        assert assoc.send_c_store(ds).Status == 0
    assoc.release()
    for ds in sent:
        [found] = requests.post(f"{server.url}/tools/lookup", data=ds.SOPInstanceUID, timeout=30).json()
        stored = requests.get(f"{server.url}/instances/{found['ID']}/file", timeout=60).content
        assert stored.endswith(encode(ds, False, True))
        assert pydicom.dcmread(BytesIO(stored)).file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID


def test_traced_messages_are_logged_from_the_command_sets(make_isengard: Callable[..., Isengard],
                                                         caplog: pytest.LogCaptureFixture,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """At the "trace" level pynetdicom's handlers log every message from ``command_set``:
    made from the bytes on demand, with the values received (the server) and sent (this
    process's pynetdicom, its handlers on whatever an earlier in-process test left)."""
    monkeypatch.setattr(_config, "LOG_HANDLER_LEVEL", "standard")
    server = make_isengard(DicomAlwaysAllowStore=True, DicomAlwaysAllowEcho=True)
    assert requests.put(f"{server.url}/tools/log-level-dicom", data="trace", timeout=30).status_code == 200
    assoc = _associate(server)
    ds = _secondary_capture(1024)
    with caplog.at_level(logging.DEBUG, logger="pynetdicom"):
        assert assoc.send_c_echo().Status == 0
        assert assoc.send_c_store(ds).Status == 0
    assoc.release()
    log = server.log()
    assert "Received Echo Request (MsgID 1)" in log and "Received Store Request" in log
    assert f"Affected SOP Instance UID     : {ds.SOPInstanceUID}" in log
    assert "Traceback" not in log
    sent = caplog.text
    assert "Sending Store Request: MsgID 1" in sent and f"Affected SOP Instance UID     : {ds.SOPInstanceUID}" in sent
