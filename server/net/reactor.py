"""Event-driven threads for pynetdicom's associations, in place of its polling loops.

pynetdicom 3.0.4 runs two loops per association.  The DUL thread reads the socket and
sends what the association queued for it, sleeping 1 ms whenever it found nothing to do;
the association thread sleeps 1 ms, then looks for a decoded message, a release or an abort.
Each DIMSE exchange so waits on both sleeps, and an idle association wakes thousands of
times a second: a C-STORE over one association spent about a third of its server time in
these loops (py-spy), and a C-ECHO on an open association took 3.6 ms where Orthanc takes 1.5.

Here both threads block until there is work.  The DUL thread waits in ``select`` on the
socket and on a pipe that anything queued for it writes to; the association thread waits
on :class:`ReactorGate`, which the DUL thread wakes after each event it has processed.
The ARTIM timer and the network timeout wake the thread that checks them when they are
due; otherwise an idle association's threads look at it once every :data:`READ_TICK`.
An acceptor's association thread, parked at its gate, reads the requests itself
(:meth:`EventDUL.read_requests`): a request wakes one thread, not the DUL thread and then it.

A thread that sends a request and waits for its response (``get_msg(block=True)``: every
SCU exchange, the C-STORE sub-operations of a C-MOVE or a C-GET) reads the socket itself
rather than waiting for the DUL thread to read and hand over the message
(:meth:`EventDUL.read_until`): each exchange so costs no wake-up of another thread.

:func:`install` makes pynetdicom build these classes; the rest of its machinery (the state
machine, ACSE, DIMSE, the service classes) is unchanged.  The overridden methods follow
pynetdicom 3.0.4's, which ``pyproject.toml`` pins (``tests/test_reactor.py`` checks it).
"""

from __future__ import annotations

import contextlib
import os
import queue
import select
import ssl
import struct
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from pynetdicom import ae as pynetdicom_ae
from pynetdicom import association as pynetdicom_association
from pynetdicom import dimse as pynetdicom_dimse
from pynetdicom import evt
from pynetdicom.association import Association
from pynetdicom.dimse import DIMSEServiceProvider
from pynetdicom.dul import DULServiceProvider
from pynetdicom.pdu import A_ABORT_RQ
from pynetdicom.pdu_primitives import P_DATA
from pynetdicom.transport import AssociationSocket

#: How soon the DUL thread takes the socket back from a reader that stopped reading, and
#: the shortest wait of an association's thread (seconds).
TICK = 0.1

#: The longest either thread waits without looking at its association when nothing comes:
#: each look at an idle association cost ~1 ms of CPU on this machine (cold caches).
READ_TICK = 1.0

#: How long a sender waits for the DUL thread to end its turn before queueing its message.
SEND_WAIT = 0.005

#: A sender writes a message's PDUs together up to this many bytes.
BATCH = 256 * 1024

#: The most a read of the socket takes (:func:`_recv`).
READ_AHEAD = 64 * 1024


class Wakeup:
    """A pipe whose read end ``select`` can wait on beside a socket."""

    def __init__(self) -> None:
        self._read, self._write = os.pipe()
        os.set_blocking(self._read, False)
        os.set_blocking(self._write, False)
        self._closed = False

    def fileno(self) -> int:
        return self._read

    def set(self) -> None:
        try:
            os.write(self._write, b"\0")
        except (BlockingIOError, OSError):
            pass  # already full of wake-ups, or closed: either way nobody misses one

    def drain(self) -> None:
        try:
            while os.read(self._read, 4096):
                pass
        except (BlockingIOError, OSError):
            pass

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            os.close(self._read)
            os.close(self._write)


class _WakingQueue(queue.Queue[Any]):
    """A queue that wakes the DUL thread when another thread puts something in it; for the
    event queue, not when the thread reading the socket in its place does (it acts on the
    events itself)."""

    def __init__(self, dul: EventDUL, events: bool) -> None:
        super().__init__()
        self._dul = dul
        self._events = events

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        super().put(item, block, timeout)
        me = threading.get_ident()
        dul = self._dul
        if me != dul.ident and not (self._events and dul._reading and me == dul._reader):
            dul.wakeup.set()


_PDU_HEADER = struct.Struct(">BBI")
_PDV_HEADER = struct.Struct(">IB")


def encode_p_data(primitive: P_DATA) -> bytes:
    """The P-DATA-TF PDU of ``primitive``, as pynetdicom's ``P_DATA_TF(primitive).encode()``."""
    items = b"".join(_PDV_HEADER.pack(len(value) + 1, context_id) + value
                     for context_id, value in primitive.presentation_data_value_list)
    return _PDU_HEADER.pack(0x04, 0x00, len(items)) + items


def decode_p_data(pdu: bytes) -> list[tuple[int, bytes]] | None:
    """The (context ID, value) of each item of a P-DATA-TF PDU, as pynetdicom's decoding
    gives them; None when an item does not fit (pynetdicom's decoding then refuses it)."""
    values = []
    offset, end = 6, len(pdu)
    while offset < end:
        if offset + 5 > end:
            return None
        length, context_id = _PDV_HEADER.unpack_from(pdu, offset)
        if length < 1 or offset + 4 + length > end:
            return None
        values.append((context_id, pdu[offset + 5:offset + 4 + length]))
        offset += 4 + length
    return values


class _ReceivedData:
    """A received P-DATA-TF as DT-2 uses it: what gives its primitive."""

    def __init__(self, values: list[tuple[int, bytes]]) -> None:
        self._values = values

    def to_primitive(self) -> P_DATA:
        primitive = P_DATA()
        primitive.presentation_data_value_list = []  # as pynetdicom fills it: (ID, value) tuples
        primitive.presentation_data_value_list.extend(self._values)
        return primitive


class EventDUL(DULServiceProvider):
    """pynetdicom's DUL provider, waiting in ``select`` instead of sleeping between polls."""

    def __init__(self, assoc: Association) -> None:
        self.wakeup = Wakeup()
        self._kill = False
        #: Set after each state-machine event: :meth:`EventAssociation.kill` waits on it.
        self.acted = threading.Event()
        #: Held by whichever thread runs the state machine: this one, a sender (:meth:`_send_now`)
        #: or a reader (:meth:`read_until`).
        self.acting = threading.Lock()
        #: The thread that reads the socket in this one's place (:meth:`read_until`), whether
        #: it is reading now, and when it last stopped.
        self._reader: int | None = None
        self._reading = False
        self._read_at = 0.0
        #: The PDUs :meth:`_send_now` is gathering for one write.
        self._corked: list[bytes] | None = None
        super().__init__(assoc)
        self.event_queue = _WakingQueue(self, events=True)
        self.to_provider_queue = _WakingQueue(self, events=False)
        # Only used by pynetdicom's ``stop_dul`` now, while it waits for this thread to end.
        self._run_loop_delay = 0.0005

    @property
    def _kill_thread(self) -> bool:
        return self._kill

    @_kill_thread.setter
    def _kill_thread(self, value: bool) -> None:
        """pynetdicom stops the thread by setting this flag: it must not sleep through it."""
        self._kill = value
        if value:
            self.wakeup.set()

    def run_reactor(self) -> None:
        """pynetdicom's loop (one primitive to send or one PDU to read per turn, then one
        state-machine event), waiting for the socket or the pipe when there is nothing to do."""
        self._idle_timer.start()
        try:
            while not self._kill:
                if not self.assoc._dul_ready.is_set():
                    self.assoc._dul_ready.set()
                if self.artim_timer.expired:
                    self.event_queue.put("Evt18")
                with self.acting:
                    self._take_back_socket()
                    if not self._turn():
                        return
                    event: str | None = None
                    with contextlib.suppress(queue.Empty):
                        event = self.event_queue.get(block=False)
                    if event is not None:
                        state = self.state_machine.current_state
                        try:
                            self._act(event)
                        except Exception:  # noqa: BLE001 - a malformed message, as a reader's (read_until)
                            self._abort_after_error()
                            return
                if event is None:
                    self._wait()
                    continue
                self.acted.set()
                if self._news_for_the_association(state):
                    _gate(self.assoc).wake()
        finally:
            self.wakeup.close()
            self.acted.set()
            _gate(self.assoc).wake()

    def _act(self, event: str) -> None:
        """The state machine's action for ``event``.  Both this thread and a reader lent the
        socket (:meth:`read_until`) may see the connection close: a second notice (Evt17)
        once the machine is back to idle (Sta1) is dropped, where pynetdicom's machine would
        raise InvalidEventError in this thread."""
        if event == "Evt17" and self.state_machine.current_state == "Sta1":
            return
        self.state_machine.do_action(event)

    def _news_for_the_association(self, state_before: str) -> bool:
        """Whether the association thread has something to look at after an event: a whole
        DIMSE message, an ACSE primitive (a release, an abort), a new state.  Not a fragment
        of a message still arriving: a C-STORE comes in several PDUs, and waking the thread
        for each cost a switch of threads apiece."""
        return bool(_waiting(self.assoc.dimse.msg_queue) or _waiting(self.to_user_queue)
                    or self.state_machine.current_state != state_before)

    def send_pdu(self, primitive: Any) -> None:
        """pynetdicom's (the primitive queued for this thread to send), but a P-DATA is sent
        by the calling thread itself when it can be (:meth:`_send_now`).  Anything else (a
        release, an abort) gives the socket back to this thread, which reads the answer."""
        if isinstance(primitive, P_DATA):
            self.send_data([primitive])
            return
        self._reader = None
        super().send_pdu(primitive)

    def send_data(self, fragments: Iterable[P_DATA]) -> None:
        """The P-DATA primitives of a DIMSE message, sent by the calling thread in writes of
        up to :data:`BATCH` bytes when it can (:meth:`_send_now`), else queued for this one.
        A small C-STORE's command and dataset, two PDUs, so leave in one write."""
        batch: list[P_DATA] = []
        size = 0
        for pdata in fragments:
            batch.append(pdata)
            size += sum(len(value) for _, value in pdata.presentation_data_value_list)
            if size >= BATCH:
                self._send_batch(batch)
                batch, size = [], 0
        if batch:
            self._send_batch(batch)

    def _send_batch(self, batch: list[P_DATA]) -> None:
        for pdata in batch[self._send_now(batch):]:
            DULServiceProvider.send_pdu(self, pdata)

    def _send_now(self, batch: list[P_DATA]) -> int:
        """Send ``batch`` from the calling thread: the state machine's own action (DT-1,
        "send a P-DATA-TF PDU") for each, under the lock this thread acts under, when the
        association is established and nothing was queued before; their PDUs are written
        together (:meth:`_send`).  Each DIMSE message so leaves without a hand-off to this
        thread (a wake-up, a switch of threads: ~15 % of a C-MOVE sub-operation).  How many
        were sent: none when this thread stays busy (reading a large PDU) or something
        waits, fewer when the association broke meanwhile (the rest is queued)."""
        if not self.acting.acquire(timeout=SEND_WAIT):
            return 0
        sent = 0
        try:
            self._corked = []
            unheard = not self._listened(evt.EVT_PDU_SENT, evt.EVT_FSM_TRANSITION)
            for pdata in batch:
                if self._kill or self.state_machine.current_state != "Sta6" or _waiting(self.to_provider_queue):
                    break
                if unheard:  # DT-1 (Sta6 -> Sta6), whose events nobody listens to, without the objects
                    self._corked.append(encode_p_data(pdata))
                else:
                    queue.Queue.put(self.to_provider_queue, pdata)  # no wake-up: DT-1 takes it now
                    self.state_machine.do_action("Evt9")
                sent += 1
            corked, self._corked = self._corked, None
            if corked and self.socket is not None:
                self.socket.send(b"".join(corked))
            return sent
        finally:
            self._corked = None
            self.acting.release()

    def _listened(self, *events: Any) -> bool:
        """Whether a handler is bound to one of these events (pynetdicom's own logging
        handlers are, when DICOM messages are traced)."""
        handlers = self.assoc._handlers
        return any(handlers.get(event) for event in events)

    def _decode_pdu(self, bytestream: bytearray) -> tuple[Any, str]:
        """pynetdicom's; a P-DATA-TF nobody listens for (``EVT_DATA_RECV``, ``EVT_PDU_RECV``)
        is cut into its values here (:func:`decode_p_data`): pynetdicom's PDU and item
        objects cost ~8 % of a C-MOVE sub-operation.  Anything unusual is pynetdicom's."""
        if bytestream[0] == 0x04 and not self._listened(evt.EVT_DATA_RECV, evt.EVT_PDU_RECV):
            values = decode_p_data(bytes(bytestream))
            if values is not None:
                return _ReceivedData(values), "Evt10"
        return super()._decode_pdu(bytestream)

    def _read_pdu_data(self) -> None:
        """pynetdicom's (read a PDU, queue it and its event for the state machine), except
        that a reader (:meth:`read_until`) hands a P-DATA-TF straight to DIMSE while the
        association is established, nothing else waits and nobody listens: the state
        machine's own action there (DT-2, Sta6 + Evt10 -> Sta6) without the two queues and
        the machine's bookkeeping between them: ~12 us of each PDU, and a C-STORE of a CT
        slice is four (its DIMSE side, storing aside: 0.33 -> 0.28 ms of CPU).  Anything
        else, a short read or a PDU that does not decode included, is pynetdicom's, from
        the same bytes."""
        sock = self.socket
        if sock is None or not self._hands_data_over():
            super()._read_pdu_data()
            return
        ahead = _read_ahead(sock)
        if not ahead.data:
            _fill(sock, ahead)
        if len(ahead.data) < 6 or ahead.data[0] != 0x04:
            super()._read_pdu_data()
            return
        length = _PDU_HEADER.unpack_from(ahead.data)[2]
        try:
            pdu = sock.recv(6 + length)
        except (OSError, TimeoutError):
            super()._read_pdu_data()  # the connection broke: pynetdicom's reading sees it again
            return
        values = decode_p_data(bytes(pdu)) if len(pdu) == 6 + length else None
        if values is None:
            ahead.data[:0] = pdu  # cut short, or malformed: pynetdicom reads it again
            super()._read_pdu_data()
            return
        self.assoc.dimse.receive_primitive(_ReceivedData(values).to_primitive())

    def _hands_data_over(self) -> bool:
        """Whether the calling thread may hand a P-DATA-TF to DIMSE itself (see
        :meth:`_read_pdu_data`): the reader lent the socket, in Sta6, with no event or PDU
        queued before it and no handler bound to what the state machine's way triggers."""
        return (self._reading and self._reader == threading.get_ident()
                and self.state_machine.current_state == "Sta6" and not _waiting(self.event_queue)
                and not _waiting(self._recv_pdu)
                and not self._listened(evt.EVT_DATA_RECV, evt.EVT_PDU_RECV, evt.EVT_FSM_TRANSITION))

    def _send(self, pdu: Any) -> None:
        """pynetdicom's (encode and write a PDU), keeping the bytes for one write while
        :meth:`_send_now` sends a batch."""
        if self._corked is not None and self.socket is not None:
            self._corked.append(pdu.encode())
            evt.trigger(self.assoc, evt.EVT_PDU_SENT, {"pdu": pdu})
        else:
            super()._send(pdu)

    def read_until(self, ready: Callable[[], bool], deadline: float | None, tick: float = TICK) -> bool:
        """Read PDUs and act on them from the calling thread (a sender waiting for its
        response) until ``ready()``, the ``deadline`` (``time.monotonic()``) or the end of
        the connection; this thread stays away from the socket meanwhile, and until it takes
        it back (:meth:`_take_back_socket`).  Waiting for a response used to cost two switches
        of threads: this thread woken by the response, then the sender by this one.

        False when the caller must wait for this thread to read instead: the association is
        not established (or stops being so while reading: this thread sees it to its end).
        True at once when the connection is gone (Sta1): no message can come any more, and
        waiting for one took the whole DIMSE timeout (each following C-STORE sub-operation
        of a C-MOVE whose destination died waited 30 s)."""
        me = threading.get_ident()
        with self.acting:
            if self.state_machine.current_state == "Sta1" or ready():
                return True
            if me == self.ident or not self._can_lend() or (self._reading and self._reader != me):
                return False  # (another thread reads: the association's, parked, or a pauser)
            self._reader, self._reading = me, True
        try:
            while not ready():
                if deadline is not None and time.monotonic() >= deadline:
                    return True
                if not self._wait_for_socket(deadline, tick):
                    continue
                with self.acting:
                    if self.state_machine.current_state == "Sta1":
                        return True
                    if self._reader != me or not self._can_lend():
                        return False
                    state = self.state_machine.current_state
                    try:
                        self._read_pdu_data()  # pynetdicom's _is_transport_event, whose select was ours
                        self._idle_timer.restart()
                        while not self._kill and not self.event_queue.empty():  # as this thread's turns
                            self._act(self.event_queue.get(block=False))
                    except Exception:  # noqa: BLE001 - as the DUL thread's turn would (_turn)
                        self._abort_after_error()
                        return True
                self.acted.set()
                if _waiting(self.to_user_queue) or self.state_machine.current_state != state:
                    _gate(self.assoc).wake()
            return True
        finally:
            with self.acting:
                if self._reader == me:  # (else taken by another thread, now reading)
                    self._reading = False
                    self._read_at = time.monotonic()
                    if self.state_machine.current_state != "Sta6":
                        self._reader = None
            if self._reader is None:
                self.wakeup.set()

    def read_requests(self, deadline: float) -> None:
        """Read from the association's own thread, parked at its gate, until a message or
        primitive awaits it, the gate closes or is woken, or the ``deadline``: each request
        so costs no wake-up of this thread and then of the association's (a switch of
        threads apiece; 8 threads fought for the GIL over 4 associations)."""
        gate = _gate(self.assoc)
        dimse_messages = self.assoc.dimse.msg_queue

        def news() -> bool:
            return bool(gate._woken or not gate._open or _waiting(dimse_messages) or _waiting(self.to_user_queue))

        self.read_until(news, deadline, READ_TICK)
        if _waiting(dimse_messages) or _waiting(self.to_user_queue):
            gate.wake()

    def reading_wait(self) -> float:
        """How long an association's thread waits (an acceptor's reads) before it looks at its
        association again: up to :data:`READ_TICK`, within the network timeout.  What comes
        on the socket (a request, a release, an abort, the end of the connection) wakes it at
        once; ticking every :data:`TICK` as well made an idle association's threads cost 20 %
        more (an acceptor's), or 10 wake-ups a second for nothing (a requestor's)."""
        return max(TICK, min(READ_TICK, self._idle_timer.remaining))

    def _can_lend(self) -> bool:
        return not self._kill and self.state_machine.current_state == "Sta6" and self.socket is not None \
            and self.socket._is_connected

    def _wait_for_socket(self, deadline: float | None, tick: float = TICK) -> bool:
        """Whether the socket has data, after waiting up to :data:`TICK` (or the deadline)."""
        sock = self.socket.socket if self.socket is not None else None
        if sock is None:
            return True  # the next look at the state machine ends the reading
        if (isinstance(sock, ssl.SSLSocket) and sock.pending()) or _has_read_ahead(self.socket):
            return True
        timeout = tick if deadline is None else max(0.0, min(tick, deadline - time.monotonic()))
        try:
            return bool(select.select([sock], [], [], timeout)[0])
        except (OSError, ValueError):
            return True  # closed under us: reading it tells the state machine

    def _take_back_socket(self) -> None:
        """A reader that has not read for a :data:`TICK` may be busy elsewhere: read again
        what the peer sends meanwhile (an abort, a release)."""
        if self._reader is not None and not self._reading and time.monotonic() - self._read_at > TICK:
            self._reader = None

    def _turn(self) -> bool:
        """Send a queued primitive or read a PDU (unless a reader has the socket); False when
        the association must end now (as pynetdicom does: on an unexpected error, an A-ABORT
        bypassing the state machine)."""
        try:
            if self._process_recv_primitive():
                pass
            elif self._reader is None and self._is_transport_event():
                self._idle_timer.restart()
            return True
        except Exception:  # noqa: BLE001 - pynetdicom's own handling, kept as it is
            self._abort_after_error()
            return False

    def _abort_after_error(self) -> None:
        """pynetdicom's handling of an error while reading or acting (a malformed message):
        log it, send an A-ABORT, end the association and this thread."""
        pynetdicom_association.LOGGER.exception("Exception in DUL.run(), aborting association")
        abort = A_ABORT_RQ()
        abort.source = 0x02
        abort.reason_diagnostic = 0x00
        if self.socket is not None:
            self.socket.send(abort.encode())
        self.assoc.is_aborted = True
        self.assoc.is_established = False
        self.assoc._kill = True
        self._kill_thread = True

    def _wait(self) -> None:
        """Until the socket has data, something was queued for this thread, or a timer is due.

        What this thread must do wakes it (the socket, the wake-up pipe, the ARTIM timer);
        otherwise it looks again every :data:`READ_TICK` while it or a reader watches the
        socket, and every :data:`TICK` while a reader that stopped reading keeps it (to take
        it back: the peer may abort meanwhile).  A reader that stops during a long wait is
        seen at its end: while an acceptor's thread serves a long request, an abort or a
        C-CANCEL from the peer may so wait up to a second to be read (a tenth before)."""
        waited: list[Any] = [self.wakeup]
        sock = self.socket.socket if self.socket is not None and self.socket._is_connected \
            and self._reader is None else None
        timeout = READ_TICK if self._reading else TICK
        if sock is not None:
            if (isinstance(sock, ssl.SSLSocket) and sock.pending()) or _has_read_ahead(self.socket):
                return
            waited.append(sock)
            timeout = READ_TICK
        if self.artim_timer._start_time is not None and self.artim_timer._end_time is None:
            timeout = max(0.0, min(timeout, self.artim_timer.remaining))
        try:
            select.select(waited, [], [], timeout)
        except (OSError, ValueError):
            time.sleep(0.001)  # the socket closed under us: the next turn sees it
        self.wakeup.drain()


class ReactorGate:
    """The association thread's one waiting place: pynetdicom's reactor checkpoint (a
    ``threading.Event`` others ``clear`` to pause the thread while they use the association)
    and the wake-up the DUL thread gives after each event.

    pynetdicom's pausers clear the checkpoint and then wait for ``_is_paused``, which the
    thread used to set *before* waiting on the checkpoint: a pauser arriving just after the
    wait returned went on while the thread was about to take messages from the queue, and
    the thread could take the pauser's response.  Here ``clear`` returns only once the
    thread is parked (idle or paused), and a parked thread does not leave while the gate is
    closed.  From the association thread itself (a service class sending requests, as C-GET
    does), ``clear`` returns at once.

    The thread is only notified when it may leave: a wake-up while the gate is closed is
    kept for when it opens, and opening it disturbs the thread only if it was woken or waits
    for the opening (each C-STORE sub-operation pauses the thread of its association: it
    used to be woken twice per sub-operation for nothing).
    """

    def __init__(self) -> None:
        lock = threading.Lock()
        #: Where the association thread waits.
        self._thread = threading.Condition(lock)
        #: Where pausers wait for it to park, and pynetdicom's own waits on the checkpoint.
        self._others = threading.Condition(lock)
        self._open = True
        self._woken = False
        self._parked = False
        #: The thread's wake-up came (or its time ran out): it only waits for the opening.
        self._leaving = False
        self._owner: int | None = None

    def is_set(self) -> bool:
        return self._open

    def set(self) -> None:
        with self._thread:
            self._open = True
            if self._woken or self._leaving:
                self._thread.notify()
            self._others.notify_all()

    def clear(self) -> None:
        with self._thread:
            self._open = False
            if threading.get_ident() == self._owner:
                return
            self._others.wait_for(lambda: self._parked or self._owner is None, TICK)

    def wait(self, timeout: float | None = None) -> bool:
        """pynetdicom's own waits on the checkpoint (before a release on a network timeout)."""
        with self._thread:
            self._parked = True
            self._others.notify_all()
            try:
                return self._others.wait_for(lambda: self._open, timeout)
            finally:
                self._parked = False

    def wake(self) -> None:
        with self._thread:
            self._woken = True
            if self._open:
                self._thread.notify()

    def idle(self, timeout: float, read: Callable[[float], None] | None = None) -> None:
        """Park until woken or ``timeout``, then until open.  While parked and open, the
        thread may ``read`` (its association's socket, until woken or the deadline) rather
        than wait for another thread to read and wake it.  A pauser closing the gate meanwhile
        finds it parked; a response read before the thread notices the closed gate waits in
        the queue for the pauser."""
        deadline = time.monotonic() + timeout
        with self._thread:
            self._owner = threading.get_ident()
            self._parked = True
            self._others.notify_all()
            reading = self._open and not self._woken
        if read is not None and reading:
            read(deadline)
        with self._thread:
            self._thread.wait_for(lambda: self._woken and self._open, max(0.0, deadline - time.monotonic()))
            self._leaving = True
            self._thread.wait_for(lambda: self._open)
            self._leaving = self._parked = self._woken = False

    def leave(self) -> None:
        """The association thread has ended: nobody need wait for it to park."""
        with self._thread:
            self._owner = None
            self._parked = True
            self._others.notify_all()


def _gate(assoc: Association) -> ReactorGate:
    return assoc._reactor_checkpoint  # type: ignore[return-value]


class EventAssociation(Association):
    """pynetdicom's association, whose thread sleeps until the DUL has news for it."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._reactor_checkpoint: ReactorGate = ReactorGate()  # type: ignore[assignment]

    def run_reactor(self) -> None:
        try:
            super().run_reactor()
        finally:
            _gate(self).leave()
            _drop_unfinished_dataset(self)

    def kill(self) -> None:
        """pynetdicom's, waiting for the DUL's next event rather than 10 ms at a time for its
        state machine to be idle again (the place of a released association frees sooner)."""
        self._reactor_checkpoint.set()
        self._kill = True
        self.is_established = False
        self._is_paused = True
        dul = self.dul
        assert isinstance(dul, EventDUL)
        while dul.is_alive():
            dul.acted.clear()
            if dul.stop_dul():
                break
            dul.acted.wait(0.01)
        _gate(self).wake()

    def _run_reactor(self) -> None:
        """pynetdicom's acceptor loop, with the 1 ms sleep replaced by the gate's wait."""
        gate = _gate(self)
        dul = self.dul
        assert isinstance(dul, EventDUL)
        # An acceptor's thread reads the requests itself; a requestor's waits (the threads
        # sending its requests read their responses, and would find the socket taken).
        read = dul.read_requests if self.is_acceptor else None
        while not self._kill:
            self._is_paused = True
            gate.idle(dul.reading_wait(), read)
            self._is_paused = False
            if self._kill:
                return
            context_id, msg = self.dimse.get_msg(block=False)
            if msg:
                self._serve_request(msg, context_id)  # type: ignore[arg-type]
            if self._finished():
                return

    def _finished(self) -> bool:
        """pynetdicom's checks after each turn: release, abort, the DUL's end, the network
        timeout; True when the association is over."""
        if self.is_established and self.acse.is_release_requested():
            self.acse.send_release(is_response=True)
            pynetdicom_association.LOGGER.info("Association Released")
            self.is_released = True
            self.is_established = False
            evt.trigger(self, evt.EVT_RELEASED, {})
            self.kill()
            return True
        if self.acse.is_aborted():
            message = "Association Aborted"
            if self.acse.is_aborted("a-p-abort"):
                message += " (A-P-ABORT)"
            pynetdicom_association.LOGGER.info(message)
            self.dul.receive_pdu(wait=False)
            self.is_aborted = True
            self.is_established = False
            evt.trigger(self, evt.EVT_ABORTED, {})
            self.kill()
            return True
        if not self.dul.is_alive():
            self.kill()
            return True
        if self.dul.idle_timer_expired():
            pynetdicom_association.LOGGER.error("Network timeout reached")
            if self.network_timeout_response == "A-RELEASE":
                self._is_paused = True
                self._reactor_checkpoint.wait()
                self.release()
                self._is_paused = False
            else:
                self.abort()
            self.kill()
            return True
        return False


def _drop_unfinished_dataset(assoc: Association) -> None:
    """The file a C-STORE's dataset was being written to (past ``IN_MEMORY_LIMIT``, or
    pynetdicom's chunked mode) when the association ended before its last fragment: closed
    and removed, where pynetdicom left one in the temporary folder per C-STORE cut short."""
    message = assoc.dimse.message
    spool = getattr(message, "_data_set_file", None)
    if spool is None:
        return
    assoc.dimse.message = None
    spool.close()
    path = message._data_set_path  # type: ignore[union-attr]
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path[0] if isinstance(path, tuple) else path)


class _ReadAhead:
    """What a socket's reads took beyond the bytes asked for, and the piece they read into."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.piece = memoryview(bytearray(READ_AHEAD))


def _read_ahead(sock: AssociationSocket) -> _ReadAhead:
    ahead = sock.__dict__.get("_isengard_read_ahead")
    if ahead is None:
        ahead = sock.__dict__["_isengard_read_ahead"] = _ReadAhead()
    return ahead


def _waiting(items: queue.Queue[Any]) -> bool:
    """Whether ``items`` holds something: a look at its deque, without the lock and the
    condition ``qsize`` takes (the reading loops ask after every PDU)."""
    return bool(items.queue)


def _fill(sock: AssociationSocket, ahead: _ReadAhead) -> None:
    """One read of what the peer sent into the read-ahead (nothing when the read fails:
    pynetdicom's reading then meets the failure again and reports it)."""
    assert sock.socket is not None
    try:
        got = sock.socket.recv_into(ahead.piece)
    except (OSError, TimeoutError):
        return
    ahead.data += ahead.piece[:got]


def _has_read_ahead(sock: AssociationSocket) -> bool:
    """Whether bytes the peer sent wait in ``sock``'s read-ahead (``select`` cannot see them)."""
    ahead = sock.__dict__.get("_isengard_read_ahead")
    return ahead is not None and len(ahead.data) > 0


def _recv(self: AssociationSocket, nr_bytes: int) -> bytearray:
    """pynetdicom's ``AssociationSocket.recv`` (blocking until ``nr_bytes`` are read or the
    connection breaks), each read taking whatever the peer sent, up to :data:`READ_AHEAD`.
    A PDU is read as its header, then its body; a 34 KB C-STORE comes as a command and
    three PDUs of 16 KB: read as asked, that was eight ``recv`` and four ``select`` calls,
    each releasing the GIL (a switch of threads apiece when four associations store at once),
    now one or two.  A larger body than that is read into its own buffer, as pynetdicom does."""
    sock = self.socket
    assert sock is not None
    ahead = _read_ahead(self)
    data = ahead.data
    if nr_bytes - len(data) > READ_AHEAD:
        buffer = bytearray(nr_bytes)
        view = memoryview(buffer)
        read = len(data)
        view[:read] = data
        data.clear()
        while read < nr_bytes:
            got = sock.recv_into(view[read:])
            if not got:
                return buffer[:read]
            read += got
        return buffer
    while len(data) < nr_bytes:
        got = sock.recv_into(ahead.piece)
        if not got:
            break
        data += ahead.piece[:got]
    wanted = data[:nr_bytes]
    del data[:nr_bytes]
    return wanted


def _ready(self: AssociationSocket) -> bool:
    """pynetdicom's ``AssociationSocket.ready``, true as well when bytes wait in the read-ahead."""
    return (_has_read_ahead(self) and self._is_connected) or _SOCKET_READY(self)


_SOCKET_READY = AssociationSocket.ready.fget  # type: ignore[attr-defined]


def _send_msg(self: DIMSEServiceProvider, primitive: Any, context_id: int) -> None:
    """pynetdicom's ``send_msg``, the message's P-DATA handed over together
    (:meth:`EventDUL.send_data`) rather than one by one."""
    if primitive.MessageIDBeingRespondedTo is None:
        message = pynetdicom_dimse._RQ_TO_MESSAGE[primitive.__class__]()
    else:
        message = pynetdicom_dimse._RSP_TO_MESSAGE[primitive.__class__]()
    message.primitive_to_message(primitive)
    message.context_id = context_id
    evt.trigger(self.assoc, evt.EVT_DIMSE_SENT, {"message": message})
    fragments = message.encode_msg(context_id, self.maximum_pdu_size)
    dul = self.dul
    if isinstance(dul, EventDUL):
        dul.send_data(fragments)
    else:
        for pdata in fragments:
            dul.send_pdu(pdata)


def _get_msg(self: DIMSEServiceProvider, block: bool = False) -> tuple[Any, Any]:
    """pynetdicom's ``get_msg``; a blocking one reads the message from the calling thread
    (:meth:`EventDUL.read_until`) when it can."""
    timeout = self.dimse_timeout
    dul = self.dul
    if block and isinstance(dul, EventDUL):
        deadline = None if timeout is None else time.monotonic() + timeout
        if dul.read_until(lambda: _waiting(self.msg_queue), deadline):
            block = False
        elif deadline is not None:
            timeout = max(0.0, deadline - time.monotonic())
    try:
        return self.msg_queue.get(block=block, timeout=timeout)
    except queue.Empty:
        return None, None


def install() -> None:
    """Make pynetdicom build :class:`EventAssociation` and :class:`EventDUL` (idempotent);
    written for the release :data:`~server.net.scp.PYNETDICOM_VERSION`."""
    pynetdicom_association.DULServiceProvider = EventDUL  # type: ignore[attr-defined]
    pynetdicom_association.Association = EventAssociation  # type: ignore[misc]
    pynetdicom_ae.Association = EventAssociation  # type: ignore[attr-defined]
    AssociationSocket.recv = _recv  # type: ignore[method-assign]
    AssociationSocket.ready = property(_ready)  # type: ignore[method-assign,assignment]
    DIMSEServiceProvider.get_msg = _get_msg  # type: ignore[method-assign]
    DIMSEServiceProvider.send_msg = _send_msg  # type: ignore[method-assign]
