"""``/peers``: Isengard as an HTTP client of Orthanc peers (another Isengard, and fake peers)."""

from __future__ import annotations

import base64
import gzip
import io
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pydicom
import pytest

from conftest import Isengard, free_port, sample
from helpers import orthanc_error, wait_job


class FakePeer:
    """An HTTP server answering ``POST /instances`` with scripted statuses, recording the requests."""

    def __init__(self, statuses: list[int], delay: float = 0.0) -> None:
        self.statuses = statuses
        self.delay = delay
        self.requests: list[tuple[dict[str, str], bytes]] = []
        peer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                peer.requests.append(({k.lower(): v for k, v in self.headers.items()}, body))
                time.sleep(peer.delay)
                status = peer.statuses.pop(0) if len(peer.statuses) > 1 else peer.statuses[0]
                answer = b"{}" if status == 200 else b""
                self.send_response(status)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def fake_peers() -> Iterator[list[FakePeer]]:
    started: list[FakePeer] = []
    yield started
    for peer in started:
        peer.close()


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Isengard, Isengard]]:
    root = tmp_path_factory.mktemp("peers")
    b = Isengard(root / "b", DicomAet="ISENB").start()
    a = Isengard(root / "a", DicomAet="ISENA", JobsMaxRetries=1, StoreJobRetryDelay=0.2,
                 OrthancPeers={"b": [b.url], "dead": {"Url": f"http://127.0.0.1:{free_port()}",
                                                       "Username": "u", "Password": "secret"}}).start()
    yield a, b
    a.stop()
    b.stop()


def test_list_put_delete(pair: tuple[Isengard, Isengard]) -> None:
    a, b = pair
    assert a.json("/peers") == ["b", "dead"]
    expanded = a.json("/peers?expand")
    assert expanded["b"] == {"HttpHeaders": [], "Pkcs11": False, "Timeout": 0, "Url": b.url + "/"}
    assert expanded["dead"]["Password"] is None and expanded["dead"]["Username"] == "u"
    assert a.json("/peers/b") == ["configuration", "store", "store-straight", "system"]
    answer = a.put("/peers/new", json.dumps({"URL": "http://h:1", "HttpHeaders": {"X-A": "1"}, "Timeout": 5}))
    assert (answer.status_code, answer.text) == (200, "")
    assert a.json("/peers/new/configuration") == {"HttpHeaders": ["X-A"], "Pkcs11": False, "Timeout": 5,
                                                  "Url": "http://h:1/"}
    assert a.delete("/peers/new").status_code == 200
    assert a.get("/peers/new").status_code == 404
    assert orthanc_error(a.get("/peers/new/configuration")) == (404, 17, "No peer with symbolic name: new")
    assert orthanc_error(a.delete("/peers/new")) == (404, 7, "Unknown Orthanc peer: new")
    assert orthanc_error(a.put("/peers/x", "{}")) == (400, 15, "Empty URL")
    assert orthanc_error(a.put("/peers/x", '["http://h/", "user"]'))[:2] == (400, 15)


def test_store_to_a_peer(pair: tuple[Isengard, Isengard]) -> None:
    a, b = pair
    b.clear()
    sent = a.upload(sample("Issue143.dcm"))
    size = len(sample("Issue143.dcm").read_bytes())
    answer = a.post("/peers/b/store", json.dumps([sent["ParentStudy"]]))
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"Compress": False, "Description": "REST API", "FailedInstancesCount": 0,
                             "InstancesCount": 1, "ParentResources": [sent["ParentStudy"]],
                             "Peer": [b.url + "/"], "Size": str(size), "SizeMB": 1}
    assert b.json("/instances") == [sent["ID"]]
    assert b.get(f"/instances/{sent['ID']}/file").content == sample("Issue143.dcm").read_bytes()

    b.clear()
    job = a.post("/peers/b/store", json.dumps({"Resources": [sent["ID"]], "Compress": True,
                                               "Asynchronous": True})).json()
    state = wait_job(a, job["ID"])
    assert (state["State"], state["Type"], state["Content"]["Compress"]) == ("Success", "OrthancPeerStore", True)
    assert int(state["Content"]["Size"]) < size
    assert b.json("/instances") == [sent["ID"]]
    assert a.json("/peers/b/system") == b.json("/system")


def test_peer_settings_are_sent(pair: tuple[Isengard, Isengard], fake_peers: list[FakePeer]) -> None:
    a, _ = pair
    peer = FakePeer([200])
    fake_peers.append(peer)
    a.put("/peers/fake", json.dumps({"Url": peer.url, "Username": "alice", "Password": "pw",
                                     "HttpHeaders": {"X-Token": "abc"}}))
    sent = a.upload(sample("PatientIdsCollision/Image1.dcm"))
    answer = a.post("/peers/fake/store", json.dumps({"Resources": [sent["ID"]], "Compress": True}))
    assert answer.status_code == 200, answer.text
    assert answer.json()["Peer"] == {"HttpHeaders": {"X-Token": "abc"}, "Password": None, "Pkcs11": False,
                                     "Timeout": 0, "Url": peer.url, "Username": "alice"}
    headers, body = peer.requests[0]
    assert headers["x-token"] == "abc" and headers["content-encoding"] == "gzip"
    assert headers["authorization"] == "Basic " + base64.b64encode(b"alice:pw").decode()
    assert gzip.decompress(body) == sample("PatientIdsCollision/Image1.dcm").read_bytes()

    implicit = "1.2.840.10008.1.2"
    answer = a.post("/peers/fake/store", json.dumps({"Resources": [sent["ID"]], "Transcode": implicit}))
    assert answer.json()["Transcode"] == implicit
    received = pydicom.dcmread(io.BytesIO(peer.requests[1][1]))
    assert received.file_meta.TransferSyntaxUID == implicit
    assert received.SOPInstanceUID == pydicom.dcmread(sample("PatientIdsCollision/Image1.dcm")).SOPInstanceUID
    a.delete("/peers/fake")


def test_peer_failures(pair: tuple[Isengard, Isengard], fake_peers: list[FakePeer]) -> None:
    a, _ = pair
    sent = a.upload(sample("PatientIdsCollision/Image1.dcm"))
    body = json.dumps([sent["ID"]])
    assert orthanc_error(a.post("/peers/nope/store", body)) == (404, 17, "No peer with symbolic name: nope")
    assert orthanc_error(a.post("/peers/dead/store", body)) == (500, 9, "libCURL error: Couldn't connect to server")
    assert orthanc_error(a.get("/peers/dead/system")) == (500, 9, "libCURL error: Couldn't connect to server")

    failing = FakePeer([500])
    fake_peers.append(failing)
    a.put("/peers/failing", json.dumps([failing.url]))
    started = time.monotonic()
    assert orthanc_error(a.post("/peers/failing/store", body)) == (
        500, 9, f'Orthanc peer "failing" answered HTTP status 500 to POST {failing.url}instances')
    assert len(failing.requests) == 1 and time.monotonic() - started < 2, "a 500 is not retried"

    hung = FakePeer([200], delay=5)
    fake_peers.append(hung)
    a.put("/peers/hung", json.dumps({"Url": hung.url, "Timeout": 1}))
    started = time.monotonic()
    assert orthanc_error(a.post("/peers/hung/store", body)) == (500, 9, "libCURL error: Timeout was reached")
    assert time.monotonic() - started < 4, "one retry, each attempt bounded by the peer's Timeout"

    busy = FakePeer([503, 200])
    fake_peers.append(busy)
    a.put("/peers/busy", json.dumps([busy.url]))
    job = a.post("/peers/busy/store", json.dumps({"Resources": [sent["ID"]], "Asynchronous": True})).json()
    state = wait_job(a, job["ID"])
    assert state["State"] == "Success" and len(busy.requests) == 2, "503 is transient: retried"
    for name in ("failing", "hung", "busy"):
        a.delete(f"/peers/{name}")
