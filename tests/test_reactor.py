"""The event-driven association threads (server/net/reactor.py), in-process with pynetdicom
on both sides: messages flow both ways, idle associations sleep, timers and ends still work."""

from __future__ import annotations

import os
import threading
import time
import tomllib
from collections import Counter
from io import BytesIO
from pathlib import Path

import pynetdicom
import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset
from pynetdicom import AE, _config, build_role, evt
from pynetdicom.dimse import DIMSEServiceProvider
from pynetdicom.pdu import P_DATA_TF
from pynetdicom.pdu_primitives import P_DATA
from pynetdicom.sop_class import CTImageStorage, PatientRootQueryRetrieveInformationModelGet, Verification

from helpers import ct_slice
from server.net import reactor
from server.net.reactor import EventAssociation, ReactorGate
from server.net.scp import PYNETDICOM_VERSION

reactor.install()


@pytest.fixture(autouse=True, params=["none", "standard"])
def traced(request, monkeypatch: pytest.MonkeyPatch) -> str:
    """As the server runs (pynetdicom's logging handlers unbound: PDUs written and read
    without its objects), and as it traces DICOM messages (handlers bound)."""
    monkeypatch.setattr(_config, "LOG_HANDLER_LEVEL", request.param)
    return request.param


def test_patches_the_pinned_pynetdicom() -> None:
    """The overridden loops follow pynetdicom 3.0.4's: a new release must be read again."""
    pins = tomllib.loads((Path(__file__).parent.parent / "pyproject.toml").read_text())["project"]["dependencies"]
    assert f"pynetdicom=={PYNETDICOM_VERSION}" in pins
    assert pynetdicom.__version__ == PYNETDICOM_VERSION


@pytest.fixture
def scp():
    """A pynetdicom SCP (echo, CT storage) on a free port; yields (port, received datasets)."""
    received: list = []

    def on_store(event: evt.Event) -> int:
        received.append(event.dataset)
        return 0x0000

    ae = AE(ae_title="SCP")
    ae.add_supported_context(Verification)
    ae.add_supported_context(CTImageStorage)
    ae.network_timeout = 30
    server = ae.start_server(("127.0.0.1", 0), block=False, evt_handlers=[(evt.EVT_C_STORE, on_store)])
    try:
        yield server.server_address[1], received, ae
    finally:
        server.shutdown()


def _associate(port: int, network_timeout: float = 30) -> EventAssociation:
    ae = AE(ae_title="SCU")
    ae.add_requested_context(Verification)
    ae.add_requested_context(CTImageStorage)
    ae.network_timeout = network_timeout
    assoc = ae.associate("127.0.0.1", port, ae_title="SCP")
    assert assoc.is_established
    assert isinstance(assoc, EventAssociation)
    return assoc


def test_every_request_gets_its_own_answer(scp) -> None:
    port, received, _ = scp
    assoc = _associate(port)
    for n in range(300):
        assert assoc.send_c_echo().Status == 0
        if n % 30 == 0:
            ds = dcmread(BytesIO(ct_slice("1.2.3", "1.2.3.4", n)))
            assert assoc.send_c_store(ds).Status == 0
    assoc.release()
    assert len(received) == 10
    assert assoc.is_released


def _cpu_seconds(threads: list[threading.Thread]) -> float:
    """CPU time of these threads alone: the whole process's would count other tests'
    leftover threads and the machine's noise."""
    return sum(time.clock_gettime(time.pthread_getcpuclockid(t.ident or 0)) for t in threads)


def test_an_idle_association_sleeps(scp) -> None:
    """pynetdicom's loops woke every millisecond on both sides (~9 % of a core here)."""
    port, _, server_ae = scp
    assoc = _associate(port)
    assoc.send_c_echo()
    [served] = server_ae.active_associations
    threads = [assoc, assoc.dul, served, served.dul]
    before = _cpu_seconds(threads)
    time.sleep(1.0)
    cpu = _cpu_seconds(threads) - before
    assert all(t.is_alive() for t in threads)
    assert cpu < 0.03
    assoc.release()


def test_an_idle_associations_threads_look_at_it_about_once_a_second(scp, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each of the four threads wakes about once a second (``READ_TICK``) when nothing
    happens, not ten times (``TICK``: 1 ms of CPU a time here, cold caches) nor a thousand
    (pynetdicom's polls).  Counted rather than timed: the machine's noise does not count."""
    port, _, server_ae = scp
    assoc = _associate(port)
    assoc.send_c_echo()
    [served] = server_ae.active_associations
    time.sleep(3 * reactor.TICK)  # the requestor's DUL thread takes its socket back from the C-ECHO's reader
    wakes: Counter[int] = Counter()
    for owner, name in ((reactor.EventDUL, "_wait"), (reactor.EventDUL, "_wait_for_socket"), (ReactorGate, "idle")):
        original = getattr(owner, name)

        def counted(self, *args, _original=original, **kwargs):
            wakes[threading.get_ident()] += 1
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(owner, name, counted)
    time.sleep(2.0)
    counts = [wakes[thread.ident or 0] for thread in (assoc, assoc.dul, served, served.dul)]
    assert max(counts) <= 6, counts
    assoc.release()


def test_the_network_timeout_still_ends_an_idle_association(scp) -> None:
    port, _, _ = scp
    assoc = _associate(port, network_timeout=0.3)
    started = time.monotonic()
    assoc.join(5)
    assert not assoc.is_alive()
    assert assoc.is_aborted
    assert 0.25 < time.monotonic() - started < 2


def test_a_peer_abort_ends_both_threads(scp) -> None:
    port, _, server_ae = scp
    assoc = _associate(port)
    assoc.send_c_echo()
    [served] = server_ae.active_associations
    assoc.abort()
    served.join(2)
    assert not served.is_alive() and not served.dul.is_alive()
    assert served.is_aborted


def test_a_second_notice_of_the_closed_connection_is_dropped(scp) -> None:
    """The DUL thread and a reader lent the socket may both see the connection close."""
    port, _, _ = scp
    assoc = _associate(port)
    assoc.release()
    dul = assoc.dul
    assert dul.state_machine.current_state == "Sta1"
    dul._act("Evt17")
    assert dul.state_machine.current_state == "Sta1"


def test_no_descriptor_is_left_behind(scp) -> None:
    port, _, _ = scp
    _associate(port).release()
    before = len(os.listdir("/proc/self/fd"))
    for _ in range(20):
        assoc = _associate(port)
        assoc.send_c_echo()
        assoc.release()
        assoc.dul.join(2)
    time.sleep(0.2)
    assert len(os.listdir("/proc/self/fd")) <= before + 2


def test_gate_clear_waits_until_the_thread_is_parked() -> None:
    gate = ReactorGate()
    steps: list[str] = []
    woken = threading.Event()

    def reactor_thread() -> None:
        gate.idle(5)  # woken below
        steps.append("checks")
        woken.set()
        gate.idle(5)  # parked again: the pauser may go on
        steps.append("after pause")

    thread = threading.Thread(target=reactor_thread)
    thread.start()
    time.sleep(0.05)
    gate.wake()
    woken.wait(1)
    gate.clear()  # returns once the thread is parked in its second idle
    steps.append("pauser")
    gate.wake()
    time.sleep(0.1)
    assert steps == ["checks", "pauser"]  # closed: the woken thread stays parked
    gate.set()
    thread.join(1)
    assert steps == ["checks", "pauser", "after pause"]


def test_gate_clear_from_the_reactor_thread_returns_at_once() -> None:
    """A service class sending requests from the association thread (C-GET's C-STOREs)."""
    gate = ReactorGate()
    took: list[float] = []

    def reactor_thread() -> None:
        gate.idle(0.01)
        started = time.monotonic()
        gate.clear()
        took.append(time.monotonic() - started)
        gate.set()

    thread = threading.Thread(target=reactor_thread)
    thread.start()
    thread.join(2)
    assert took and took[0] < 0.05


def test_messages_leave_from_the_sending_thread(scp) -> None:
    """An established association's P-DATA is sent by the thread that sends the message,
    not handed to the DUL thread (no wake-up of it); both orders of messages hold."""
    port, received, _ = scp
    assoc = _associate(port)
    dul = assoc.dul
    wakeups: list[int] = []
    wake = dul.wakeup.set
    dul.wakeup.set = lambda: (wakeups.append(1), wake())[1]  # type: ignore[method-assign]
    for n in range(50):
        assert assoc.send_c_echo().Status == 0
        assert assoc.send_c_store(dcmread(BytesIO(ct_slice("1.2.3", "1.2.3.5", n)))).Status == 0
    assert len(received) == 50
    assert len(wakeups) < 5  # only when the DUL thread stayed busy longer than SEND_WAIT
    assoc.release()


def test_responses_are_read_by_the_waiting_thread(scp) -> None:
    """A thread waiting for its response reads the socket itself: the DUL thread is neither
    woken by the responses nor takes turns with them (it only ticks, and takes the few turns
    it is woken for: a message it is handed when it stayed busy longer than SEND_WAIT, as in
    ``test_messages_leave_from_the_sending_thread``; on a loaded machine, once in a while)."""
    port, received, _ = scp
    assoc = _associate(port)
    dul = assoc.dul
    assoc.send_c_echo()  # the DUL thread may still be selecting on the socket, once
    turns: list[int] = []
    turn = dul._turn
    dul._turn = lambda: (turns.append(1), turn())[1]  # type: ignore[method-assign]
    wakeups: list[int] = []
    wake = dul.wakeup.set
    dul.wakeup.set = lambda: (wakeups.append(1), wake())[1]  # type: ignore[method-assign]
    started = time.monotonic()
    for n in range(50):
        assert assoc.send_c_echo().Status == 0
        assert assoc.send_c_store(dcmread(BytesIO(ct_slice("1.2.3", "1.2.3.6", n)))).Status == 0
    ticks = (time.monotonic() - started) / reactor.TICK
    assert dul._reader == threading.get_ident()
    assert len(received) == 50
    assert len(wakeups) < 5
    assert len(turns) <= ticks + len(wakeups) + 3
    assoc.release()  # the DUL thread reads the release's answer again
    assert assoc.is_released and dul._reader is None


def test_requests_are_read_by_the_acceptors_own_thread(scp) -> None:
    """An acceptor's association thread reads the requests while it waits for them: its DUL
    thread neither reads them nor wakes it for each (it only ticks, and takes the few turns
    it is woken for, as in ``test_responses_are_read_by_the_waiting_thread``)."""
    port, received, server_ae = scp
    assoc = _associate(port)
    assoc.send_c_echo()  # the served DUL thread may still be selecting on the socket, once
    [served] = server_ae.active_associations
    turns: list[int] = []
    turn = served.dul._turn
    served.dul._turn = lambda: (turns.append(1), turn())[1]
    wakeups: list[int] = []
    wake = served.dul.wakeup.set
    served.dul.wakeup.set = lambda: (wakeups.append(1), wake())[1]
    started = time.monotonic()
    for n in range(50):
        assert assoc.send_c_echo().Status == 0
        assert assoc.send_c_store(dcmread(BytesIO(ct_slice("1.2.3", "1.2.3.8", n)))).Status == 0
    ticks = (time.monotonic() - started) / reactor.TICK
    assert served.dul._reader == served.ident
    assert len(received) == 50
    assert len(wakeups) < 5
    assert len(turns) <= ticks + len(wakeups) + 3
    assoc.release()
    served.join(2)
    assert served.is_released and not served.is_alive()


def test_a_peer_abort_between_exchanges_is_seen(scp) -> None:
    """The socket a waiting thread read is taken back by the DUL thread when that thread does
    not read it any more: a peer's abort ends the association without another request."""
    port, _, server_ae = scp
    assoc = _associate(port)
    assert assoc.send_c_echo().Status == 0
    [served] = server_ae.active_associations
    served.abort()
    assoc.join(2)
    assert not assoc.is_alive() and assoc.is_aborted


def test_a_request_after_a_c_get_is_answered_at_once() -> None:
    """The association thread of a C-GET SCP reads its C-STOREs' responses itself, then gives
    the socket back before waiting for the next request (not a TICK later)."""
    sent = dcmread(BytesIO(ct_slice("1.2.3", "1.2.3.7", 1)))

    def on_get(event: evt.Event):
        yield 3
        for _ in range(3):
            yield 0xFF00, sent

    scp_ae = AE(ae_title="SCP")
    scp_ae.add_supported_context(Verification)
    scp_ae.add_supported_context(PatientRootQueryRetrieveInformationModelGet)
    scp_ae.add_supported_context(CTImageStorage, scu_role=True, scp_role=True)
    server = scp_ae.start_server(("127.0.0.1", 0), block=False, evt_handlers=[(evt.EVT_C_GET, on_get)])
    try:
        ae = AE(ae_title="SCU")
        ae.add_requested_context(Verification)
        ae.add_requested_context(PatientRootQueryRetrieveInformationModelGet)
        ae.add_requested_context(CTImageStorage)
        stored: list[int] = []
        assoc = ae.associate("127.0.0.1", server.server_address[1], ae_title="SCP",
                             ext_neg=[build_role(CTImageStorage, scp_role=True)],
                             evt_handlers=[(evt.EVT_C_STORE, lambda event: stored.append(1) or 0x0000)])
        assert assoc.is_established
        query = Dataset()
        query.QueryRetrieveLevel, query.PatientID = "PATIENT", "X"
        statuses = [status.Status for status, _ in assoc.send_c_get(query, PatientRootQueryRetrieveInformationModelGet)]
        assert statuses[-1] == 0x0000 and len(stored) == 3
        started = time.monotonic()
        assert assoc.send_c_echo().Status == 0
        assert time.monotonic() - started < reactor.TICK / 2
        assoc.release()
    finally:
        server.shutdown()


class _CountingCondition(threading.Condition):
    """A condition that counts its waits: each return to waiting after a notify is one."""

    def __init__(self, lock) -> None:
        super().__init__(lock)
        self.waits = 0

    def wait(self, timeout=None) -> bool:
        self.waits += 1
        return super().wait(timeout)


def test_a_paused_thread_is_not_disturbed() -> None:
    """A wake-up while the gate is closed waits for the opening; opening a gate the thread
    was not woken for leaves it asleep (each C-STORE sub-operation pauses the thread)."""
    gate = ReactorGate()
    gate._thread = _CountingCondition(gate._thread._lock)  # type: ignore[attr-defined]
    left = threading.Event()

    def reactor_thread() -> None:
        gate.idle(5)
        left.set()

    thread = threading.Thread(target=reactor_thread)
    thread.start()
    time.sleep(0.05)
    for _ in range(20):
        gate.clear()
        gate.set()
    time.sleep(0.05)
    assert gate._thread.waits == 1 and not left.is_set()
    gate.clear()
    gate.wake()
    time.sleep(0.05)
    assert gate._thread.waits == 1 and not left.is_set()
    gate.set()
    assert left.wait(1)
    thread.join(1)


def test_a_message_leaves_in_few_writes(scp) -> None:
    """A message's PDUs are written together: a small C-STORE's command and dataset in one
    write, a large dataset in writes of BATCH bytes; the peer receives the same dataset."""
    port, received, server_ae = scp
    server_ae.maximum_pdu_size = 16384
    assoc = _associate(port)
    writes: list[int] = []
    sock = assoc.dul.socket
    send = sock.send
    sock.send = lambda data: (writes.append(len(data)), send(data))[1]  # type: ignore[method-assign]
    small = dcmread(BytesIO(ct_slice("1.2.3", "1.2.3.8", 1)))
    assert assoc.send_c_store(small).Status == 0
    assert len(writes) == 1 and writes[0] > len(small.PixelData)
    writes.clear()
    large = dcmread(BytesIO(ct_slice("1.2.3", "1.2.3.8", 2, pixels=600)))
    assert assoc.send_c_store(large).Status == 0
    assert 1 < len(writes) <= sum(writes) // reactor.BATCH + 1  # not one per 16 KB PDU
    assoc.release()
    assert [ds.PixelData for ds in received] == [small.PixelData, large.PixelData]


PDV_CASES = [[(1, b"\x03" + bytes(range(40)))], [(3, b"\x00" + b"x" * 16377), (3, b"\x02y")], [(5, b"\x01")], []]


@pytest.mark.parametrize("pdvs", PDV_CASES)
def test_p_data_pdus_are_pynetdicoms_byte_for_byte(pdvs) -> None:
    """The P-DATA-TF written and read without pynetdicom's PDU objects (when nobody listens
    to its PDU events) are its own."""
    primitive = P_DATA()
    primitive.presentation_data_value_list.extend(pdvs)
    encoded = P_DATA_TF(primitive).encode()
    assert reactor.encode_p_data(primitive) == encoded
    decoded = P_DATA_TF()
    decoded.decode(encoded)
    assert reactor.decode_p_data(encoded) == decoded.to_primitive().presentation_data_value_list
    assert reactor._ReceivedData(pdvs).to_primitive().presentation_data_value_list == pdvs


@pytest.mark.parametrize("items", [b"\0\0\0\0\1", b"\0\0\0\x09\1abc", b"\0\0\0", b"\0\0\0\2\1a\0"])
def test_a_p_data_pdu_that_does_not_fit_is_left_to_pynetdicom(items: bytes) -> None:
    """pynetdicom refuses these (an invalid PDU, Evt19): they take its path."""
    pdu = b"\x04\x00" + len(items).to_bytes(4, "big") + items
    assert reactor.decode_p_data(pdu) is None
    with pytest.raises(Exception):  # noqa: B017, PT011 - pynetdicom's assertion or struct error
        P_DATA_TF().decode(pdu)


class _Socket:
    """What :func:`reactor._recv` uses of pynetdicom's ``AssociationSocket``."""

    def __init__(self, sock) -> None:
        self.socket = sock
        self._is_connected = True


def test_reads_take_what_the_peer_sent_ahead() -> None:
    """A read takes what the peer sent beyond the bytes asked for (the next PDU's header, a
    dataset behind its command): later reads are served from it, without the socket."""
    import socket

    mine, peer = socket.socketpair()
    try:
        pdus = [bytes([4, 0]) + len(body).to_bytes(4, "big") + body
                for body in (b"c" * 200, b"d" * 16_000, b"e" * 10)]
        peer.sendall(b"".join(pdus))
        wrapped = _Socket(mine)
        assert reactor._recv(wrapped, 6) == pdus[0][:6]
        mine.setblocking(False)  # from here a read of the socket would raise
        assert reactor._has_read_ahead(wrapped)
        assert reactor._recv(wrapped, 200) == pdus[0][6:]
        assert reactor._recv(wrapped, 6 + 16_000) == pdus[1]
        assert reactor._recv(wrapped, 16) == pdus[2]
        assert not reactor._has_read_ahead(wrapped)
        mine.setblocking(True)
        large = os.urandom(reactor.READ_AHEAD * 3)
        peer.sendall(large[:10])
        assert reactor._recv(wrapped, 4) == large[:4]  # 6 more wait ahead
        threading.Thread(target=peer.sendall, args=(large[10:],)).start()
        assert reactor._recv(wrapped, len(large) - 4) == large[4:]
        peer.sendall(b"xy")
        peer.close()
        assert reactor._recv(wrapped, 6) == b"xy"  # the connection ended: what came
    finally:
        mine.close()


def test_data_pdus_go_straight_to_dimse(scp, traced: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The thread reading an association hands each P-DATA-TF to DIMSE itself (DT-2's action)
    when nobody listens to the PDUs; traced, each goes through the state machine.  (Some
    may still go the machine's way untraced: those the DUL thread reads, when the reader
    was away for a while on a busy machine.)"""
    port, received, _ = scp
    acted: Counter[str] = Counter()
    delivered: list[int] = []
    act, receive = reactor.EventDUL._act, DIMSEServiceProvider.receive_primitive

    def counted_act(self, event: str) -> None:
        acted[event] += 1
        act(self, event)

    def counted_receive(self, primitive) -> None:
        delivered.append(1)
        receive(self, primitive)

    monkeypatch.setattr(reactor.EventDUL, "_act", counted_act)
    monkeypatch.setattr(DIMSEServiceProvider, "receive_primitive", counted_receive)
    assoc = _associate(port)
    sent = [dcmread(BytesIO(ct_slice("1.2.3", "1.2.3.9", n, pixels=300 if n % 3 else 16))) for n in range(12)]
    for ds in sent:
        assert assoc.send_c_store(ds).Status == 0
    assoc.release()
    assert [ds.PixelData for ds in received] == [ds.PixelData for ds in sent]
    # Both sides': the acceptor's requests, the requestor's answers.
    assert len(delivered) >= 12 * 2
    if traced == "none":
        assert acted["Evt10"] <= len(delivered) / 2, (acted, len(delivered))
    else:
        assert acted["Evt10"] == len(delivered), (acted, len(delivered))


@pytest.mark.parametrize("items", [b"\0\0\0\x09\1abc", b"\0\0\0\0\1"])
def test_a_malformed_p_data_pdu_aborts_the_association(scp, items: bytes) -> None:
    """Read straight or by pynetdicom, a P-DATA-TF that does not decode is an invalid PDU:
    the acceptor aborts."""
    port, _, server_ae = scp
    assoc = _associate(port)
    assert assoc.send_c_echo().Status == 0
    assoc.dul.socket.send(b"\x04\x00" + len(items).to_bytes(4, "big") + items)
    assoc.join(5)
    assert assoc.is_aborted
    _wait_for(lambda: not server_ae.active_associations)


def test_a_connection_cut_in_a_pdu_ends_the_association(scp) -> None:
    port, received, server_ae = scp
    assoc = _associate(port)
    assert assoc.send_c_echo().Status == 0
    body = b"\0\0\x40\x01\1\3" + b"x" * 0x4000
    assoc.dul.socket.socket.sendall(b"\x04\x00" + len(body).to_bytes(4, "big") + body[:5000])
    assoc.dul.socket.socket.shutdown(2)
    _wait_for(lambda: not server_ae.active_associations)
    assert not received
    assoc.abort()


def _wait_for(condition, timeout: float = 5) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline
        time.sleep(0.01)
