"""Where and how long the HTTP server listens: ``HttpBindAddresses`` (Orthanc 1.12.10),
``KeepAliveTimeout`` (1.11.3) and ``KeepAlive``, and Orthanc 1.13's refusal to start with
authentication, remote access and no declared user."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import requests

from conftest import REPO, UNSET, Isengard, Server, free_port


def _connects(address: str, port: int) -> bool:
    try:
        with socket.create_connection((address, port), timeout=2):
            return True
    except OSError:
        return False


def _outside_address() -> str | None:
    """This host's address on its default route (no packet is sent), if it has one."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.123", 9))
            address = probe.getsockname()[0]
        except OSError:
            return None
    return None if address.startswith("127.") else address


def _started_on(tmp_path: Path, address: str, **options: Any) -> Isengard:
    server = Isengard(tmp_path, **options)
    server.url = f"http://{address}:{server.http_port}"
    return server.start()


def test_bind_addresses_choose_who_can_connect(tmp_path: Path) -> None:
    server = _started_on(tmp_path, "127.0.0.2", HttpBindAddresses=["127.0.0.2", "127.0.0.3"])
    try:
        for address in ("127.0.0.2", "127.0.0.3"):
            answer = requests.get(f"http://{address}:{server.http_port}/system", timeout=10)
            assert answer.status_code == 200
        assert not _connects("127.0.0.1", server.http_port)  # "ListenAddress" no longer applies
    finally:
        server.stop()


def test_remote_access_still_applies_on_a_bound_address(tmp_path: Path) -> None:
    outside = _outside_address()
    if outside is None:
        pytest.skip("no non-loopback address on this host")
    server = _started_on(tmp_path, "127.0.0.1", HttpBindAddresses=[outside, "127.0.0.1"])
    try:
        assert requests.get(f"{server.url}/system", timeout=10).status_code == 200
        # a client from a non-loopback address reaches the server, and is refused
        assert requests.get(f"http://{outside}:{server.http_port}/system", timeout=10).status_code == 403
    finally:
        server.stop()


def test_an_address_the_host_lacks_stops_start_up(tmp_path: Path) -> None:
    server = Isengard(tmp_path, HttpBindAddresses=["192.0.2.250"])
    result = subprocess.run([sys.executable, "-m", "server", str(server.config_path)], cwd=REPO,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert f'Cannot listen on HTTP port {server.http_port} of address "192.0.2.250"' in result.stderr
    assert '"HttpBindAddresses"' in result.stderr
    assert "Traceback" not in result.stderr


def _request(connection: socket.socket, rest: bytes = b"GET /system HTTP/1.1\r\nHost: x\r\n\r\n") -> bytes:
    """One keep-alive GET on a raw socket (or the ``rest`` of one): the answer's head."""
    connection.sendall(rest)
    answer = b""
    while b"\r\n\r\n" not in answer:
        answer += connection.recv(65536)
    head, _, body = answer.partition(b"\r\n\r\n")
    length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length:")))
    while len(body) < length:
        body += connection.recv(65536)
    return head


def _idle_seconds(connection: socket.socket) -> float:
    """How long the server keeps an idle connection before it closes it."""
    start = time.monotonic()
    connection.settimeout(30)
    assert connection.recv(1) == b""
    return time.monotonic() - start


def test_keep_alive_timeout_closes_idle_connections(make_isengard: Any) -> None:
    server = make_isengard(KeepAliveTimeout=2, HttpRequestTimeout=10)
    with socket.create_connection(("127.0.0.1", server.http_port)) as connection:
        head = _request(connection)
        assert b"\r\nConnection: keep-alive" in head
        assert b"\r\nKeep-Alive: timeout=2" in head
        time.sleep(1)
        _request(connection)  # still open within the timeout
        assert 1.5 < _idle_seconds(connection) < 4
    answer = requests.get(f"{server.url}/system", timeout=10)
    assert answer.headers["Keep-Alive"] == "timeout=2"


def test_a_connection_in_steady_use_stays_open_past_the_keep_alive_timeout(make_isengard: Any) -> None:
    """Only a wait of ``KeepAliveTimeout`` for the next request closes: requests whose gaps are
    shorter keep the connection for longer than the timeout, and the last wait closes it."""
    server = make_isengard(KeepAliveTimeout=1, HttpRequestTimeout=10)
    with socket.create_connection(("127.0.0.1", server.http_port), timeout=10) as connection:
        began = time.monotonic()
        assert _request(connection).startswith(b"HTTP/1.1 200")
        while time.monotonic() - began < 2.5:
            time.sleep(0.4)
            assert _request(connection).startswith(b"HTTP/1.1 200")
        # The last wait is timed from its answer: ~1 s (a sleep after it, as before, left a
        # margin of 0.2 s, which a busy machine's late wake-up took: 0.13 s measured once).
        assert 0.4 < _idle_seconds(connection) < 2.5


def test_the_first_request_still_has_the_request_timeout(make_isengard: Any) -> None:
    """A client slow to send its first headers is not cut at the keep-alive timeout."""
    server = make_isengard(KeepAliveTimeout=1, HttpRequestTimeout=10)
    with socket.create_connection(("127.0.0.1", server.http_port)) as connection:
        connection.sendall(b"GET /system HTTP/1.1\r\n")
        time.sleep(2.5)
        head = _request(connection, b"Host: x\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200")
        assert b"\r\nKeep-Alive: timeout=1" in head
        assert _idle_seconds(connection) < 2.5


def test_default_keep_alive_timeout_is_one_second(make_isengard: Any) -> None:
    isengard = make_isengard(KeepAliveTimeout=UNSET)  # the tests' servers have 30 s
    with socket.create_connection(("127.0.0.1", isengard.http_port)) as connection:
        assert b"\r\nKeep-Alive: timeout=1" in _request(connection)
        assert _idle_seconds(connection) < 2.5


def test_a_client_that_closes_is_told_close(isengard: Isengard) -> None:
    for request in (b"GET /system HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                    b"GET /system HTTP/1.0\r\n\r\n"):
        with socket.create_connection(("127.0.0.1", isengard.http_port)) as connection:
            head = _request(connection, request)
            assert b"\r\nConnection: close" in head
            assert b"Keep-Alive" not in head


def test_without_keep_alive_each_answer_closes(make_isengard: Any) -> None:
    server = make_isengard(KeepAlive=False)
    with socket.create_connection(("127.0.0.1", server.http_port)) as connection:
        head = _request(connection)
        assert b"\r\nConnection: close" in head
        assert b"Keep-Alive" not in head
        assert _idle_seconds(connection) < 1


def _launch(tmp_path: Path, **options: Any) -> tuple[subprocess.Popen, Server]:
    """Isengard started with ``options`` (none of the test defaults but the addresses)."""
    port = free_port()
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"HttpPort": port, "DicomServerEnabled": False, "ListenAddress": "127.0.0.1",
                                  "StorageDirectory": str(tmp_path / "storage"), **options}))
    process = subprocess.Popen([sys.executable, "-m", "server", str(config)], cwd=REPO,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return process, Server(port, 0, "")


def _refused(tmp_path: Path, **options: Any) -> str:
    process, _ = _launch(tmp_path, **options)
    output, _ = process.communicate(timeout=60)
    assert process.returncode == 1
    return output


def _served(tmp_path: Path, **options: Any) -> str:
    process, client = _launch(tmp_path, **options)
    try:
        client.wait_ready(process)
    finally:
        process.terminate()
        output, _ = process.communicate(timeout=30)
    return output


@pytest.mark.parametrize("options", [{"RemoteAccessAllowed": True},
                                     {"RemoteAccessAllowed": True, "AuthenticationEnabled": True}])
def test_remote_access_with_authentication_and_no_user_is_refused(tmp_path: Path, options: dict) -> None:
    output = _refused(tmp_path, **options)
    assert f"Invalid configuration in {tmp_path / 'config.json'}: HTTP authentication is enabled" in output
    for option in ('"AuthenticationEnabled"', '"RemoteAccessAllowed"', '"RegisteredUsers"'):
        assert option in output
    assert "Traceback" not in output


@pytest.mark.parametrize("options", [
    {"RemoteAccessAllowed": True, "AuthenticationEnabled": False},
    {"RemoteAccessAllowed": True, "RegisteredUsers": {"alice": "secret"}},
    {"RemoteAccessAllowed": False, "AuthenticationEnabled": True},
])
def test_other_setups_start(tmp_path: Path, options: dict) -> None:
    _served(tmp_path, **options)


def test_an_empty_user_list_only_warns(tmp_path: Path) -> None:
    output = _served(tmp_path, RemoteAccessAllowed=True, RegisteredUsers={})
    assert 'no user is declared, check the value of configuration option "RegisteredUsers"' in output


def test_a_request_that_crosses_the_keep_alive_timeout_is_answered(make_isengard: Any) -> None:
    """A next request begun before ``KeepAliveTimeout`` is answered even if it ends after it
    (closing then would drop it without an answer: the keep-alive race)."""
    server = make_isengard(KeepAliveTimeout=1, HttpRequestTimeout=10)
    with socket.create_connection(("127.0.0.1", server.http_port), timeout=10) as connection:
        assert _request(connection).startswith(b"HTTP/1.1 200")
        time.sleep(0.8)
        connection.sendall(b"GET /sys")
        time.sleep(0.6)
        connection.sendall(b"tem HTTP/1.1\r\nHost: x\r\n\r\n")
        assert connection.recv(65536).startswith(b"HTTP/1.1 200")
