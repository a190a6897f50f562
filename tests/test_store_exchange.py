"""The C-STORE exchange of our C-MOVE and C-GET sub-operations (server/net/scu.py,
server/net/query_retrieve.py), in-process against a pynetdicom SCP: the next file is read
while the peer stores the current one, and the status answered is pynetdicom's."""

from __future__ import annotations

import threading
from types import SimpleNamespace

import pytest
from pydicom.dataset import Dataset
from pynetdicom import AE, _config, evt
from pynetdicom.sop_class import CTImageStorage

from helpers import ct_slice
from server.errors import ErrorCode, OrthancError
from server.net import dimse_codec, reactor
from server.net.query_retrieve import ReadAhead
from server.net.scu import Outgoing, Sendable, send_c_store, store_request
from server.storage.index import ATTACHMENT_DICOM, Level, Resource

reactor.install()
dimse_codec.install()


@pytest.fixture(autouse=True)
def untraced(monkeypatch: pytest.MonkeyPatch) -> None:
    """As the server runs: pynetdicom's logging handlers unbound."""
    monkeypatch.setattr(_config, "LOG_HANDLER_LEVEL", "none")


@pytest.fixture
def peer():
    """A pynetdicom storage SCP whose answer each test sets: (port, set the handler)."""
    handler = [lambda event: 0x0000]
    ae = AE(ae_title="SCP")
    ae.add_supported_context(CTImageStorage)
    server = ae.start_server(("127.0.0.1", 0), block=False,
                             evt_handlers=[(evt.EVT_C_STORE, lambda event: handler[0](event))])
    try:
        yield server.server_address[1], handler
    finally:
        server.shutdown()


def _associate(port: int):
    ae = AE(ae_title="SCU")
    ae.add_requested_context(CTImageStorage, ["1.2.840.10008.1.2.1"])
    assoc = ae.associate("127.0.0.1", port, ae_title="SCP")
    assert assoc.is_established
    return assoc


def test_meanwhile_runs_while_the_peer_stores(peer) -> None:
    """The peer answers only once ``meanwhile`` has run: it runs after the request left and
    before the response is read (were it after, the peer would time out and refuse)."""
    port, handler = peer
    called = threading.Event()
    handler[0] = lambda event: 0x0000 if called.wait(5) else 0xA700
    assoc = _associate(port)
    try:
        item = Outgoing.stored(ct_slice("1.2.3", "1.2.3.1", 1))
        assert send_c_store(assoc, item.sendable(called.set)).Status == 0x0000
        called.clear()
        assert store_request(assoc, item, meanwhile=called.set).Status == 0x0000
    finally:
        assoc.release()


def test_the_status_and_its_comment_are_pynetdicoms(peer) -> None:
    port, handler = peer
    assoc = _associate(port)
    item = Outgoing.stored(ct_slice("1.2.3", "1.2.3.2", 1))
    try:
        handler[0] = lambda event: 0xB007
        status = store_request(assoc, item)
        assert list(status.keys()) == [0x00000900] and status.Status == 0xB007
        failure = Dataset()
        failure.Status, failure.ErrorComment = 0xA700, "Out of space"
        handler[0] = lambda event: failure
        status = store_request(assoc, item)
        assert (status.Status, status.ErrorComment) == (0xA700, "Out of space")
    finally:
        assoc.release()


def _instance(n: int) -> Resource:
    return Resource(n, Level.INSTANCE, f"instance-{n}", None)


def test_files_are_read_one_ahead_in_order(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each file is read once, in order, at most one ahead of the one being sent, its
    attachment looked up with a window of others; a file gone meanwhile becomes the stand-in
    pynetdicom counts as a failed sub-operation."""
    monkeypatch.setattr(ReadAhead, "WINDOW", 2)
    files = {n: ct_slice("1.2.3", "1.2.3.3", n) for n in (1, 2, 4, 5)}
    reads: list[int] = []
    lookups: list[list[int]] = []

    def attachments_many(ids: list[int], file_type: int) -> dict[int, str]:
        assert file_type == ATTACHMENT_DICOM
        lookups.append(ids)
        return {i: f"attachment {i}" for i in ids if i in files}

    def read_dicom(instance: Resource, attachment: str | None = None) -> bytes:
        reads.append(instance.internal_id)
        if instance.internal_id not in files:
            raise OrthancError(ErrorCode.INEXISTENT_FILE)
        assert attachment == f"attachment {instance.internal_id}"
        return files[instance.internal_id]

    services = SimpleNamespace(index=SimpleNamespace(attachments_many=attachments_many),
                               store=SimpleNamespace(read_dicom=read_dicom))
    ahead = ReadAhead(services, [_instance(n) for n in (1, 2, 3, 4, 5)])  # type: ignore[arg-type]
    sent = []
    for instance, item in ahead:
        assert reads[-1] == instance.internal_id  # nothing read past it yet
        ahead.read_next()
        ahead.read_next()  # once is enough
        assert reads == sorted(set(reads))
        sent.append((instance.internal_id, item))
    assert reads == [1, 2, 3, 4, 5]
    assert lookups == [[1, 2], [3, 4], [5]]
    assert [n for n, item in sent if isinstance(item, Outgoing)] == [1, 2, 4, 5]
    [(_, gone)] = [(n, item) for n, item in sent if n == 3]
    assert not isinstance(gone, Sendable) and gone.SOPInstanceUID == "0"
