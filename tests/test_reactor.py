"""The event-driven association threads (server/net/reactor.py), in-process with pynetdicom
on both sides: messages flow both ways, idle associations sleep, timers and ends still work."""

from __future__ import annotations

import os
import resource
import threading
import time
import tomllib
from io import BytesIO
from pathlib import Path

import pynetdicom
import pytest
from pydicom import dcmread
from pynetdicom import AE, evt
from pynetdicom.sop_class import CTImageStorage, Verification

from helpers import ct_slice
from server.net import reactor
from server.net.reactor import EventAssociation, ReactorGate
from server.net.scp import PYNETDICOM_VERSION

reactor.install()


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


def test_an_idle_association_sleeps(scp) -> None:
    """pynetdicom's loops woke every millisecond on both sides (~9 % of a core here)."""
    port, _, _ = scp
    assoc = _associate(port)
    assoc.send_c_echo()
    before = resource.getrusage(resource.RUSAGE_SELF)
    time.sleep(1.0)
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    assert cpu < 0.03
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
